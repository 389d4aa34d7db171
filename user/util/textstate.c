// SPDX-License-Identifier: Apache-2.0
#include "util/textstate.h"

#include <errno.h>
#include <string.h>

#include "util/strbuf.h"

void textstate_header(struct strbuf *sb, const char *kind, unsigned version)
{
	sb_puts(sb, "tapio-");
	sb_puts(sb, kind);
	sb_printf(sb, " %u\n", version);
}

long textstate_body(const char *buf, size_t len, const char *kind, unsigned max, unsigned *version)
{
	size_t kl = strlen(kind), i = 6 + kl;
	if (len < i + 3 || memcmp(buf, "tapio-", 6) || memcmp(buf + 6, kind, kl) || buf[i] != ' ')
		return -EINVAL;
	unsigned v = 0;
	size_t d = ++i;
	for (; i < len && i - d < 9 && buf[i] >= '0' && buf[i] <= '9'; i++)
		v = v * 10 + (unsigned)(buf[i] - '0');
	if (i == d || i >= len || buf[i] != '\n' || v == 0)
		return -EINVAL;
	if (v > max)
		return -EPROTO;
	if (version)
		*version = v;
	return (long)(i + 1);
}
