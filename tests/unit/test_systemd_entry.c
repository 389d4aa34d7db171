/* SPDX-License-Identifier: Apache-2.0 */
/* journal_entry_json() and journal_field_get(): journal fields to JSON. */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collectors/systemd/entry.h"
#include "util/strbuf.h"

#define F(s)                                                                                       \
	{                                                                                          \
		.data = (s), .len = sizeof(s) - 1                                                  \
	}

/* Converts and parses the result; fails the test when the JSON is invalid. */
static cJSON *convert(const struct journal_field *f, size_t n, size_t *bad)
{
	struct strbuf sb = STRBUF_INIT;
	int r = journal_entry_json(&sb, f, n, 0, bad);

	cr_assert_eq(r, 0, "journal_entry_json: %d", r);
	cJSON *j = cJSON_ParseWithLength(sb.buf, sb.len);
	cr_assert_not_null(j, "invalid JSON: %s", sb.buf);
	cr_assert(cJSON_IsObject(j));
	sb_free(&sb);
	return j;
}

static const char *str(cJSON *o, const char *key)
{
	cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	cr_assert(cJSON_IsString(v), "%s is not a string", key);
	return v->valuestring;
}

/* The bytes of a {"base64": "..."} value. */
static size_t b64(cJSON *o, const char *key, unsigned char *out, size_t cap)
{
	cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	cr_assert(cJSON_IsObject(v), "%s is not a binary object", key);
	cr_assert_eq(cJSON_GetArraySize(v), 1);
	cJSON *s = cJSON_GetObjectItemCaseSensitive(v, "base64");
	cr_assert(cJSON_IsString(s));
	long n = base64_decode(s->valuestring, strlen(s->valuestring), out, cap);
	cr_assert_geq(n, 0);
	return (size_t)n;
}

Test(systemd_entry, text_fields)
{
	struct journal_field f[] = {
	    F("MESSAGE=hello world"),
	    F("PRIORITY=6"),
	    F("_SYSTEMD_UNIT=kubelet.service"),
	    F("EMPTY="),
	    F("EQ=a=b=c"),
	    F("ML=line one\nline two\t\"q\" \\"),
	    F("U=p\xc3\xa4iv\xc3\xa4\xc3\xa4"),
	};
	size_t bad = 99;
	cJSON *j = convert(f, 7, &bad);

	cr_assert_eq(bad, 0);
	cr_assert_eq(cJSON_GetArraySize(j), 7);
	cr_assert_str_eq(str(j, "MESSAGE"), "hello world");
	cr_assert_str_eq(str(j, "PRIORITY"), "6");
	cr_assert_str_eq(str(j, "_SYSTEMD_UNIT"), "kubelet.service");
	cr_assert_str_eq(str(j, "EMPTY"), "");
	cr_assert_str_eq(str(j, "EQ"), "a=b=c");
	cr_assert_str_eq(str(j, "ML"), "line one\nline two\t\"q\" \\");
	cr_assert_str_eq(str(j, "U"), "p\xc3\xa4iv\xc3\xa4\xc3\xa4");
	cJSON_Delete(j);
}

Test(systemd_entry, key_order_is_entry_order)
{
	struct journal_field f[] = {F("Z=1"), F("A=2"), F("M=3")};
	struct strbuf sb = STRBUF_INIT;

	cr_assert_eq(journal_entry_json(&sb, f, 3, 0, NULL), 0);
	cr_assert_str_eq(sb.buf, "{\"Z\":\"1\",\"A\":\"2\",\"M\":\"3\"}");
	sb_free(&sb);
}

Test(systemd_entry, binary_values_are_base64_objects)
{
	static const char nul[] = "BLOB=\x00\x01\x02\xff";
	static const char inv[] = "MESSAGE=bad \xff\xfe bytes";
	static const char overlong[] = "O=\xc0\xaf";	  /* overlong '/' */
	static const char surrogate[] = "S=\xed\xa0\x80"; /* UTF-16 surrogate */
	static const char cut[] = "C=ok \xe2\x82";	  /* truncated sequence at the end */
	struct journal_field f[] = {
	    {nul, sizeof(nul) - 1},	      {inv, sizeof(inv) - 1},
	    {overlong, sizeof(overlong) - 1}, {surrogate, sizeof(surrogate) - 1},
	    {cut, sizeof(cut) - 1},
	};
	unsigned char out[64];
	cJSON *j = convert(f, 5, NULL);

	cr_assert_eq(b64(j, "BLOB", out, sizeof(out)), 4);
	cr_assert_eq(memcmp(out, "\x00\x01\x02\xff", 4), 0);
	cr_assert_eq(b64(j, "MESSAGE", out, sizeof(out)), 12);
	cr_assert_eq(memcmp(out, "bad \xff\xfe bytes", 12), 0);
	cr_assert_eq(b64(j, "O", out, sizeof(out)), 2);
	cr_assert_eq(b64(j, "S", out, sizeof(out)), 3);
	cr_assert_eq(b64(j, "C", out, sizeof(out)), 5);
	cr_assert_eq(memcmp(out, "ok \xe2\x82", 5), 0);
	cJSON_Delete(j);
}

Test(systemd_entry, malformed_fields_skipped_and_counted)
{
	static const char noeq[] = "NOEQUALS";
	static const char emptyname[] = "=value";
	struct journal_field f[] = {
	    F("A=1"),
	    {noeq, sizeof(noeq) - 1},
	    {emptyname, sizeof(emptyname) - 1},
	    {"B=2", 0},		     /* empty */
	    {NULL, 5},		     /* no data */
	    {"MESSAGE=cut here", 3}, /* truncated to "MES": no '=' */
	    F("C=3"),
	};
	size_t bad = 0;
	cJSON *j = convert(f, 7, &bad);

	cr_assert_eq(bad, 5);
	cr_assert_eq(cJSON_GetArraySize(j), 2);
	cr_assert_str_eq(str(j, "A"), "1");
	cr_assert_str_eq(str(j, "C"), "3");
	cJSON_Delete(j);
}

Test(systemd_entry, hostile_names_are_escaped)
{
	static const char name_bin[] = "N\"\\\n\xff=v";
	struct journal_field f[] = {{name_bin, sizeof(name_bin) - 1}};
	cJSON *j = convert(f, 1, NULL);
	cJSON *only = j->child;

	cr_assert_not_null(only);
	cr_assert_str_eq(only->string, "N\"\\\n\xef\xbf\xbd");
	cr_assert_str_eq(only->valuestring, "v");
	cJSON_Delete(j);
}

Test(systemd_entry, repeated_names_become_arrays)
{
	/* BIN=\x00 holds a NUL: binary; BIN=\x01 is valid UTF-8: a string */
	struct journal_field f[] = {
	    F("TAG=a"), F("MESSAGE=m"),	 F("TAG=b"),	  F("X=1"),
	    F("TAG=c"), {"BIN=\x00", 5}, {"BIN=\x01", 5},
	};
	struct strbuf sb = STRBUF_INIT;

	cr_assert_eq(journal_entry_json(&sb, f, 7, 0, NULL), 0);
	cr_assert_str_eq(sb.buf, "{\"TAG\":[\"a\",\"b\",\"c\"],\"MESSAGE\":\"m\",\"X\":\"1\","
				 "\"BIN\":[{\"base64\":\"AA==\"},\"\\u0001\"]}");
	sb_free(&sb);
}

Test(systemd_entry, many_fields_with_repeats)
{
	/* more than the on-stack limit: the heap path */
	enum { N = 1000 };
	struct journal_field f[N];
	char(*bufs)[32] = calloc(N, 32);
	size_t bad = 1;

	for (int i = 0; i < N; i++) {
		/* 250 distinct names, each 4 times */
		int n = snprintf(bufs[i], 32, "F%03d=%d", i % 250, i);
		f[i] = (struct journal_field){bufs[i], (size_t)n};
	}
	cJSON *j = convert(f, N, &bad);
	cr_assert_eq(bad, 0);
	cr_assert_eq(cJSON_GetArraySize(j), 250);
	cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "F007");
	cr_assert(cJSON_IsArray(a));
	cr_assert_eq(cJSON_GetArraySize(a), 4);
	cr_assert_str_eq(cJSON_GetArrayItem(a, 0)->valuestring, "7");
	cr_assert_str_eq(cJSON_GetArrayItem(a, 3)->valuestring, "757");
	cr_assert_str_eq(j->child->string, "F000");
	cJSON_Delete(j);
	free(bufs);
}

Test(systemd_entry, huge_field)
{
	size_t n = 4u << 20;
	char *big = malloc(n + 8);
	struct strbuf sb = STRBUF_INIT;

	memcpy(big, "MESSAGE=", 8);
	memset(big + 8, 'x', n);
	struct journal_field f[] = {F("A=1"), {big, n + 8}};

	/* no limit: the whole value */
	cr_assert_eq(journal_entry_json(&sb, f, 2, 0, NULL), 0);
	cJSON *j = cJSON_ParseWithLength(sb.buf, sb.len);
	cr_assert_not_null(j);
	cr_assert_eq(strlen(str(j, "MESSAGE")), n);
	cJSON_Delete(j);

	/* over the limit: refused before the value is copied */
	sb_reset(&sb);
	cr_assert_eq(journal_entry_json(&sb, f, 2, 65536, NULL), -E2BIG);
	cr_assert_lt(sb.len, 65536);

	/* a binary huge field grows by base64: the limit is on the output */
	big[100] = '\0';
	sb_reset(&sb);
	cr_assert_eq(journal_entry_json(&sb, f, 2, n + 100, NULL), -E2BIG);
	sb_reset(&sb);
	cr_assert_eq(journal_entry_json(&sb, f, 2, n * 2, NULL), 0);
	j = cJSON_ParseWithLength(sb.buf, sb.len);
	cr_assert_not_null(j);
	cr_assert(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "MESSAGE")));
	cJSON_Delete(j);
	sb_free(&sb);
	free(big);
}

Test(systemd_entry, limit_is_exact)
{
	struct journal_field f[] = {F("A=12345")};
	struct strbuf sb = STRBUF_INIT;

	/* {"A":"12345"} is 13 bytes */
	cr_assert_eq(journal_entry_json(&sb, f, 1, 13, NULL), 0);
	cr_assert_eq(sb.len, 13);
	sb_reset(&sb);
	cr_assert_eq(journal_entry_json(&sb, f, 1, 12, NULL), -E2BIG);
	sb_free(&sb);
}

Test(systemd_entry, empty_entry)
{
	struct strbuf sb = STRBUF_INIT;

	cr_assert_eq(journal_entry_json(&sb, NULL, 0, 0, NULL), 0);
	cr_assert_str_eq(sb.buf, "{}");
	sb_free(&sb);
}

Test(systemd_entry, appends_to_existing_buffer)
{
	struct journal_field f[] = {F("A=1")};
	struct strbuf sb = STRBUF_INIT;

	sb_puts(&sb, "prefix:");
	/* the limit counts only the object */
	cr_assert_eq(journal_entry_json(&sb, f, 1, 9, NULL), 0);
	cr_assert_str_eq(sb.buf, "prefix:{\"A\":\"1\"}");
	sb_free(&sb);
}

Test(systemd_entry, field_get)
{
	static const char bin[] = "BIN=\x00x";
	struct journal_field f[] = {
	    F("_PID2=9"), F("_PID=42"), F("_HOSTNAME=node-a"), {bin, sizeof(bin) - 1},
	    F("E="),	  {"NOEQ", 4},	F("_PID=43"),
	};
	char buf[16];

	cr_assert_eq(journal_field_get(f, 7, "_PID", buf, sizeof(buf)), 2);
	cr_assert_str_eq(buf, "42"); /* the first one */
	cr_assert_eq(journal_field_get(f, 7, "_HOSTNAME", buf, sizeof(buf)), 6);
	cr_assert_str_eq(buf, "node-a");
	cr_assert_eq(journal_field_get(f, 7, "E", buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "");
	cr_assert_eq(journal_field_get(f, 7, "MISSING", buf, sizeof(buf)), -ENOENT);
	cr_assert_eq(journal_field_get(f, 7, "NOEQ", buf, sizeof(buf)), -ENOENT);
	cr_assert_eq(journal_field_get(f, 7, "BIN", buf, sizeof(buf)), -EINVAL);
	cr_assert_eq(journal_field_get(f, 7, "_HOSTNAME", buf, 6), -ENOSPC);
	cr_assert_str_eq(buf, "");
	cr_assert_eq(journal_field_get(f, 7, "_HOSTNAME", buf, 7), 6);
}
