// SPDX-License-Identifier: Apache-2.0
/* libFuzzer target for the JSON Lines encoder: whatever the event holds
 * (meta keys and values, JSON, text or binary data, any bytes), every line
 * format_json writes must be strict UTF-8 (checked here, byte by byte), free
 * of raw control bytes, one line, and parse back as JSON with cJSON.
 * `make fuzz-format` (FUZZ_SECONDS=60 by default).
 *
 * Input: byte 0 picks the format (low 2 bits), byte 1 the meta length; the
 * rest is meta ("key\0value\0" pairs, possibly malformed) then data. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/event.h"
#include "sink/format.h"
#include "sink/json_embed.h"
#include "util/strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const types[] = {"", "fuzz.event"};
static const struct source_desc desc = {.name = "fuzz", .types = types, .ntypes = 2};

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, <= U+10FFFF. */
static int strict_utf8(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned c = s[i];
		size_t len;
		unsigned cp, min;
		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			len = 2, cp = c & 0x1f, min = 0x80;
		} else if (c >= 0xe0 && c <= 0xef) {
			len = 3, cp = c & 0x0f, min = 0x800;
		} else if (c >= 0xf0 && c <= 0xf4) {
			len = 4, cp = c & 0x07, min = 0x10000;
		} else {
			return 0;
		}
		if (i + len > n)
			return 0;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += len;
	}
	return 1;
}

static void check_line(const struct strbuf *sb)
{
	if (sb->err)
		return;
	const unsigned char *s = (const unsigned char *)sb->buf;
	if (sb->len < 2 || s[sb->len - 1] != '\n' || s[sb->len - 2] != '}')
		abort();
	for (size_t i = 0; i + 1 < sb->len; i++)
		if (s[i] < 0x20)
			abort(); /* a raw control byte or a second line */
	if (!strict_utf8(s, sb->len))
		abort();
	cJSON *j = cJSON_ParseWithLength(sb->buf, sb->len);
	if (!j || !cJSON_IsObject(j) || !cJSON_GetObjectItemCaseSensitive(j, "data"))
		abort();
	cJSON_Delete(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int registered;
	if (!registered) {
		source_register(0, &desc);
		registered = 1;
	}
	if (size < 2)
		return 0;
	unsigned fmt = data[0] & 3;
	size_t mlen = data[1];
	data += 2;
	size -= 2;
	if (mlen > size)
		mlen = size;
	struct tapio_event *ev = calloc(1, sizeof(*ev) + size + 1);
	if (!ev)
		return 0;
	ev->ts = (uint64_t)size * 1000003u;
	ev->source = 0;
	ev->type = 1;
	ev->fmt = (uint8_t)fmt;
	ev->meta_len = (uint32_t)mlen;
	ev->data_len = (uint32_t)(size - mlen);
	memcpy(event_meta(ev), data, size);

	struct strbuf sb = STRBUF_INIT;
	if (format_json(ev, &sb) == 0)
		check_line(&sb);

	/* the embedder alone, at the top of a value */
	sb_reset(&sb);
	json_embed(&sb, (const char *)data, size);
	if (!sb.err) {
		if (!strict_utf8((const unsigned char *)sb.buf, sb.len))
			abort();
		for (size_t i = 0; i < sb.len; i++)
			if ((unsigned char)sb.buf[i] < 0x20)
				abort();
		cJSON *j = cJSON_ParseWithLength(sb.buf, sb.len);
		if (!j)
			abort();
		cJSON_Delete(j);
	}
	sb_free(&sb);
	free(ev);
	return 0;
}
