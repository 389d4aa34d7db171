/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for journal_entry_json() and journal_field_get().
 * Input: byte 0 picks the size limit, then fields as [u16 little-endian
 * length][bytes]. The output must always be valid JSON (checked with cJSON)
 * or a clean -E2BIG. `make fuzz-systemd` builds and runs it. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "collectors/systemd/entry.h"
#include "util/strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	struct journal_field f[256];
	size_t nf = 0, pos = 1, bad = 0, limit;
	struct strbuf sb = STRBUF_INIT;
	char buf[64];

	if (n < 1)
		return 0;
	limit = d[0] < 16 ? 0 : (size_t)d[0] * 8;
	while (pos + 2 <= n && nf < 256) {
		size_t len = (size_t)d[pos] | (size_t)d[pos + 1] << 8;

		pos += 2;
		if (len > n - pos)
			len = n - pos;
		f[nf++] = (struct journal_field){d + pos, len};
		pos += len;
	}
	int r = journal_entry_json(&sb, f, nf, limit, &bad);
	if (r == 0) {
		cJSON *j = cJSON_ParseWithLength(sb.buf, sb.len);

		if (!j || !cJSON_IsObject(j))
			abort();
		if (limit && sb.len > limit)
			abort();
		cJSON_Delete(j);
	} else if (r != -E2BIG) {
		abort();
	}
	if (bad > nf)
		abort();
	(void)journal_field_get(f, nf, "MESSAGE", buf, sizeof(buf));
	sb_free(&sb);
	return 0;
}
