#!/usr/bin/env bash
# Checks (default) or applies (--fix) .clang-format on every C file of the
# project: user/, collectors/, bpf/, tests/, bench/ (*.c, *.h; not the
# generated vmlinux headers). Check mode names each file that would change
# and exits 1 if there is any.
set -euo pipefail
cd "$(dirname "$0")/.."

CLANG_FORMAT=${CLANG_FORMAT:-clang-format}
fix=0
[ "${1:-}" = "--fix" ] && fix=1

if ! command -v "$CLANG_FORMAT" >/dev/null; then
	echo "check-format: $CLANG_FORMAT not found (apt-get install clang-format)" >&2
	exit 2
fi
[ -f .clang-format ] || { echo "check-format: no .clang-format at the top" >&2; exit 2; }

mapfile -t files < <(find user collectors bpf tests bench -type f \( -name '*.c' -o -name '*.h' \) \
	! -name 'vmlinux*' 2>/dev/null | LC_ALL=C sort)

if [ "$fix" = 1 ]; then
	"$CLANG_FORMAT" -i --style=file "${files[@]}"
	echo "format: ${#files[@]} files"
	exit 0
fi

bad=()
for f in "${files[@]}"; do
	if ! "$CLANG_FORMAT" --dry-run -Werror --style=file "$f" >/dev/null 2>&1; then
		bad+=("$f")
	fi
done
if [ "${#bad[@]}" -gt 0 ]; then
	printf '%s: not formatted (make format)\n' "${bad[@]}"
	echo "check-format: ${#bad[@]} of ${#files[@]} files differ from .clang-format" >&2
	exit 1
fi
echo "check-format: ${#files[@]} files follow .clang-format"
