// SPDX-License-Identifier: Apache-2.0
/* Unit tests for json_embed: embedded JSON comes out strict (UTF-8, no raw
 * control bytes, one line), and what is not JSON is carried as a string. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <string.h>
#include <time.h>

#include "sink/json_embed.h"
#include "util/strbuf.h"

static struct strbuf sb;

static const char *emb(const char *s, size_t n, int want_valid)
{
	sb_reset(&sb);
	cr_assert_eq(json_embed(&sb, s, n), want_valid, "%.*s", (int)n, s);
	cr_assert_eq(sb.err, 0);
	cr_assert(utf8_valid(sb.buf, sb.len), "not UTF-8: %s", sb.buf);
	for (size_t i = 0; i < sb.len; i++)
		cr_assert((unsigned char)sb.buf[i] >= 0x20, "raw control byte in %s", sb.buf);
	cJSON *j = cJSON_ParseWithLength(sb.buf, sb.len);
	cr_assert_not_null(j, "not JSON: %s", sb.buf);
	cJSON_Delete(j);
	return sb.buf;
}
#define EMB(lit, v) emb(lit, sizeof(lit) - 1, v)

Test(json_embed, valid_json_is_kept)
{
	cr_assert_str_eq(EMB("{\"a\":[1,-2.5e+3,true,false,null,{}],\"b\":\"x\\n\\u00e9\"}", 1),
			 "{\"a\":[1,-2.5e+3,true,false,null,{}],\"b\":\"x\\n\\u00e9\"}");
	cr_assert_str_eq(EMB(" [ ]\r\n", 1), " [ ]  ");
	cr_assert_str_eq(EMB("\"caf\xc3\xa9 \xf0\x9f\x98\x80\"", 1),
			 "\"caf\xc3\xa9 \xf0\x9f\x98\x80\"");
	cr_assert_str_eq(EMB("\"\\ud83d\\ude00\"", 1), "\"\\ud83d\\ude00\"");
	cr_assert_str_eq(EMB("{\"a\":\n1}", 1), "{\"a\": 1}");
	sb_free(&sb);
}

Test(json_embed, hostile_bytes_in_strings_are_repaired)
{
	cr_assert_str_eq(EMB("{\"k\":\"a\xff\xfe\x1b[2Jb\"}", 1),
			 "{\"k\":\"a\\ufffd\\ufffd\\u001b[2Jb\"}");
	cr_assert_str_eq(EMB("[\"\xc0\xaf\xed\xa0\x80\"]", 1), /* overlong, surrogate */
			 "[\"\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\"]");
	cr_assert_str_eq(EMB("[\"\\ud800x\",\"\\udc00\"]", 1), "[\"\\ufffdx\",\"\\ufffd\"]");
	cr_assert_str_eq(EMB("{\"\xff\":1}", 1), "{\"\\ufffd\":1}");
	sb_free(&sb);
}

Test(json_embed, not_json_is_carried_as_a_string)
{
	cr_assert_str_eq(EMB("{\"a\":1", 0), "\"{\\\"a\\\":1\"");
	cr_assert_str_eq(EMB("{\"a\":1} x", 0), "\"{\\\"a\\\":1} x\"");
	cr_assert_str_eq(EMB("plain \xff\x1b", 0), "\"plain \\ufffd\\u001b\"");
	EMB("[01]", 0);
	EMB("[1.]", 0);
	EMB("{\"a\" 1}", 0);
	EMB("[1,]", 0);
	EMB("\"\\x\"", 0);
	EMB("\"\\u12g4\"", 0);
	EMB("tru", 0);
	EMB("", 0);
	EMB("[\"a\x00\"]", 1); /* a raw NUL inside a string: \u0000 */
	sb_free(&sb);
}

Test(json_embed, deep_nesting_is_text_in_linear_time)
{
	static char deep[400001];
	memset(deep, '[', 200000);
	memset(deep + 200000, ']', 200000);
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	sb_reset(&sb);
	cr_assert_eq(json_embed(&sb, deep, 400000), 0);
	clock_gettime(CLOCK_MONOTONIC, &b);
	double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	cr_assert_lt(s, 1.0, "%.3f s", s);
	cr_assert_eq(sb.buf[0], '"');
	memset(deep, '[', JSON_EMBED_MAX_DEPTH);
	memset(deep + JSON_EMBED_MAX_DEPTH, ']', JSON_EMBED_MAX_DEPTH);
	emb(deep, 2 * JSON_EMBED_MAX_DEPTH, 1);
	sb_free(&sb);
}
