/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for the OTLP encoder (`make fuzz-otlp`): any bytes, as
 * JSON, give a well-formed AnyValue (strings UTF-8, lengths whole); as an
 * event (format, meta and data from the input), a well-formed LogRecord;
 * and as a response, no crash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/event.h"
#include "sink/otlp_encode.h"
#include "tests/lib/pb_walk.h"
#include "util/strbuf.h"

static void check_record(const struct strbuf *out)
{
	const uint8_t *p = (const uint8_t *)out->buf, *end = p + out->len, *sub;
	size_t sl = 0;
	unsigned f, wt;
	if (!pbw_field(&p, end, &f, &wt, &sub, &sl) || f != 2 || wt != 2 || p != end)
		abort();
	const uint8_t *q = sub, *qe = sub + sl;
	while (q < qe) {
		if (!pbw_field(&q, qe, &f, &wt, &sub, &sl))
			abort();
		if ((f == 1 || f == 11) && wt != 1)
			abort();
		if (f == 12 && (wt != 2 || !pbw_utf8(sub, sl)))
			abort();
		if (f == 6 && (wt != 2 || !pbw_keyvalue_ok(sub, sl, 0)))
			abort();
		if (f == 5 && (wt != 2 || !pb_anyvalue_ok(sub, sl, 0)))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct strbuf out, scratch;
	sb_reset(&out);
	if (otlp_json_anyvalue((const char *)data, size, &out))
		abort();
	if (!pb_anyvalue_ok((const uint8_t *)out.buf, out.len, 0))
		abort();

	int64_t rej;
	char msg[64];
	otlp_decode_response(data, size, &rej, msg, sizeof(msg));

	if (size < 2)
		return 0;
	size_t meta = data[1] < size - 2 ? data[1] : size - 2;
	size_t dlen = size - 2 - meta;
	struct tapio_event *ev = calloc(1, sizeof(*ev) + size);
	if (!ev)
		return 0;
	ev->ts = 1;
	ev->source = data[0] >> 4;
	ev->type = 1;
	ev->fmt = data[0] & 3;
	ev->meta_len = (uint32_t)meta;
	ev->data_len = (uint32_t)dlen;
	memcpy(event_meta(ev), data + 2, meta);
	memcpy(event_data(ev), data + 2 + meta, dlen);
	sb_reset(&out);
	if (otlp_encode_record(ev, 2, &scratch, &out) == 0)
		check_record(&out);
	free(ev);
	return 0;
}
