// SPDX-License-Identifier: Apache-2.0
/* libFuzzer target for the framers. The first byte picks the mode and the
 * maximum message size; the second the split stride. The same input is framed
 * once in one piece and once in pieces; both runs must give the same messages
 * and counters, and every message must respect its mode's shape and the max.
 *
 * Build and run: make fuzz-framer && build/fuzz/fuzz_framer -max_total_time=60
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/watch.h"

struct out {
	char *buf;
	size_t len, cap;
	size_t n;
	enum framing mode;
	size_t max;
};

static int rec(void *ctx, const char *m, size_t len)
{
	struct out *o = ctx;
	if (len > o->max)
		abort();
	if (o->mode == FRAME_JSON_OBJECTS && (len < 2 || m[0] != '{' || m[len - 1] != '}'))
		abort();
	if (o->mode == FRAME_LINES && (len == 0 || memchr(m, '\n', len)))
		abort();
	/* record as length + bytes so the two runs can be compared */
	size_t need = o->len + sizeof(len) + len;
	if (need > o->cap) {
		size_t cap = o->cap ? o->cap : 256;
		while (cap < need)
			cap *= 2;
		o->buf = realloc(o->buf, cap);
		if (!o->buf)
			abort();
		o->cap = cap;
	}
	memcpy(o->buf + o->len, &len, sizeof(len));
	memcpy(o->buf + o->len + sizeof(len), m, len);
	o->len = need;
	o->n++;
	return 0;
}

static void run(enum framing mode, size_t max, const uint8_t *d, size_t n, size_t stride,
		struct out *o, struct framer *f, bool *trunc)
{
	o->mode = mode;
	if (framer_init(f, mode, max) != 0)
		abort();
	o->max = f->max;
	if (stride == 0) {
		if (framer_feed(f, (const char *)d, n, rec, o) != 0)
			abort();
	} else {
		/* varying piece sizes: stride, stride+1, ... wrapping */
		size_t i = 0, k = stride;
		while (i < n) {
			size_t take = n - i < k ? n - i : k;
			if (framer_feed(f, (const char *)d + i, take, rec, o) != 0)
				abort();
			i += take;
			k = k % 13 + 1;
		}
	}
	if (framer_finish(f, rec, o, trunc) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	enum framing mode = (enum framing)(data[0] % 3);
	static const size_t maxes[] = {1, 2, 8, 64, 4096, 0};
	size_t max = maxes[(data[0] / 3) % 6];
	size_t stride = data[1] % 17 + 1;
	data += 2;
	size -= 2;

	struct out a = {0}, b = {0};
	struct framer fa, fb;
	bool ta, tb;
	run(mode, max, data, size, 0, &a, &fa, &ta);
	run(mode, max, data, size, stride, &b, &fb, &tb);
	if (a.n != b.n || a.len != b.len || (a.len && memcmp(a.buf, b.buf, a.len) != 0))
		abort();
	if (ta != tb || fa.oversize != fb.oversize || fa.junk != fb.junk)
		abort();
	framer_free(&fa);
	framer_free(&fb);
	free(a.buf);
	free(b.buf);
	return 0;
}
