/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for the NATS sink's protocol parser (`make fuzz-nats-wire`):
 * any bytes, read as a server's stream, give frames that lie inside the input
 * and take what they say, or an error; PubAcks, INFO and header blocks out of
 * them parse or fail, never crash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sink/nats_wire.h"

static void inside(const char *base, size_t len, const char *p, size_t n)
{
	if (n && (p < base || p + n > base + len))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	size_t off = 0;
	char err[200];

	while (off < size) {
		struct nw_frame f;
		long n = nw_parse(buf + off, size - off, 4096, &f, err, sizeof(err));

		if (n < 0) {
			if (!err[0])
				abort(); /* an error always says why */
			break;
		}
		if (n == 0)
			break;
		if ((size_t)n > size - off)
			abort();
		const char *fb = buf + off;
		inside(fb, (size_t)n, f.subject, f.subject_len);
		inside(fb, (size_t)n, f.reply, f.reply_len);
		inside(fb, (size_t)n, f.hdr, f.hdr_len);
		inside(fb, (size_t)n, f.data, f.data_len);
		if (f.kind == NW_MSG || f.kind == NW_HMSG) {
			struct nw_puback pa;
			uint64_t r;

			nw_parse_puback(f.data, f.data_len, &pa, err, sizeof(err));
			if (memchr(pa.stream, 0, sizeof(pa.stream)) == NULL ||
			    memchr(pa.desc, 0, sizeof(pa.desc)) == NULL)
				abort();
			nw_reply_num(f.subject, f.subject_len, "_INBOX.t", 8, &r);
			if (f.kind == NW_HMSG)
				nw_hdr_status(f.hdr, f.hdr_len);
		} else if (f.kind == NW_INFO) {
			struct nw_info in;

			nw_parse_info(f.data, f.data_len, &in, err, sizeof(err));
		}
		off += (size_t)n;
	}
	return 0;
}
