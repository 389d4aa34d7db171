/* SPDX-License-Identifier: Apache-2.0 */
/* The watch-line, List and metadata-only parsers on good, truncated, split
 * and hostile input. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collectors/k8s/k8s_parse.h"

#define POD                                                                                        \
	"{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"web-1\",\"namespace\":"  \
	"\"default\","                                                                             \
	"\"uid\":\"0b1c\",\"resourceVersion\":\"42\"},\"spec\":{\"x\":\"}\\\"{\"}}"

static int parse(const char *l, struct k8s_watch_event *ev, char *err)
{
	return k8s_parse_watch_line(l, strlen(l), ev, err, 128);
}

Test(k8s_watch_line, added_object_span_is_exact)
{
	const char *line = "{\"type\":\"ADDED\", \"object\" : " POD " }";
	struct k8s_watch_event ev;
	char err[128];
	cr_assert_eq(parse(line, &ev, err), 0, "%s", err);
	cr_assert_eq(ev.type, K8S_EV_ADDED);
	cr_assert_eq(ev.obj_len, strlen(POD));
	cr_assert(memcmp(ev.obj, POD, ev.obj_len) == 0);
	cr_assert_str_eq(ev.meta.name, "web-1");
	cr_assert_str_eq(ev.meta.ns, "default");
	cr_assert_str_eq(ev.meta.uid, "0b1c");
	cr_assert_str_eq(ev.meta.rv, "42");
	cr_assert_str_eq(k8s_ev_name(ev.type), "ADDED");
}

Test(k8s_watch_line, types)
{
	struct k8s_watch_event ev;
	char err[128];
	cr_assert_eq(parse("{\"object\":" POD ",\"type\":\"MODIFIED\"}", &ev, err), 0);
	cr_assert_eq(ev.type, K8S_EV_MODIFIED);
	cr_assert_eq(parse("{\"type\":\"DELETED\",\"object\":" POD "}\r", &ev, err), 0);
	cr_assert_eq(ev.type, K8S_EV_DELETED);
	/* Cluster-scoped: no namespace. */
	cr_assert_eq(
	    parse("{\"type\":\"ADDED\",\"object\":{\"kind\":\"Node\",\"metadata\":{\"name\":\"n1\","
		  "\"uid\":\"u\",\"resourceVersion\":\"7\"}}}",
		  &ev, err),
	    0);
	cr_assert_str_eq(ev.meta.ns, "");
	/* The real BOOKMARK shape: only resourceVersion in the metadata. */
	cr_assert_eq(
	    parse("{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Pod\",\"apiVersion\":\"v1\","
		  "\"metadata\":{\"resourceVersion\":\"12746\",\"annotations\":{\"k8s.io/"
		  "initial-events-end\":"
		  "\"true\"}}}}",
		  &ev, err),
	    0, "%s", err);
	cr_assert_eq(ev.type, K8S_EV_BOOKMARK);
	cr_assert_str_eq(ev.meta.rv, "12746");
	/* The real 410 Status. */
	cr_assert_eq(parse("{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":"
			   "\"v1\",\"metadata\":{},"
			   "\"status\":\"Failure\",\"message\":\"too old resource version: 1 (5)\","
			   "\"reason\":\"Expired\",\"code\":410}}",
			   &ev, err),
		     0, "%s", err);
	cr_assert_eq(ev.type, K8S_EV_ERROR);
	cr_assert_eq(ev.code, 410);
	cr_assert_str_eq(ev.reason, "Expired");
	cr_assert_str_eq(ev.message, "too old resource version: 1 (5)");
}

Test(k8s_watch_line, malformed)
{
	static const char *bad[] = {
	    "",
	    "   ",
	    "not json",
	    "[1,2]",
	    "\"ADDED\"",
	    "{}",
	    "{\"type\":\"ADDED\"}",
	    "{\"object\":" POD "}",
	    "{\"type\":\"ADDED\",\"object\":" POD "} x",
	    "{\"type\":\"ADDED\",\"object\":" POD "}{}",
	    "{\"type\":\"ADDED\",\"object\":" POD ",}",
	    "{\"type\":\"ADDED\",,\"object\":" POD "}",
	    "{\"type\":\"ADDED\" \"object\":" POD "}",
	    "{\"type\":ADDED,\"object\":" POD "}",
	    "{\"type\":\"EXPLODED\",\"object\":" POD "}",
	    "{\"type\":1,\"object\":" POD "}",
	    "{\"type\":\"ADDED\",\"type\":\"DELETED\",\"object\":" POD "}",
	    "{\"type\":\"ADDED\",\"object\":" POD ",\"object\":{}}",
	    "{\"type\":\"ADDED\",\"object\":[]}",
	    "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\",\"resourceVersion\":"
	    "\"1\"}}}",
	    "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\",\"uid\":\"u\"}}}",
	    "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":7,\"uid\":\"u\","
	    "\"resourceVersion\":\"1\"}}}",
	    "{\"type\":\"ADDED\",\"object\":{\"metadata\":\"x\"}}",
	    "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{}}}",
	    "{\"type\":\"ERROR\",\"object\":\"gone\"}",
	    "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\",\"uid\":\"u\","
	    "\"resourceVersion\":"
	    "\"0123456789012345678901234567890123456789012345678901234567890123456789\"}}}",
	    "<html><body>502 Bad Gateway</body></html>",
	    "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\\ud800\",\"uid\":\"u\","
	    "\"resourceVersion\":\"1\"",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct k8s_watch_event ev;
		char err[128] = "";
		cr_expect_eq(parse(bad[i], &ev, err), -EBADMSG, "case %zu accepted", i);
		cr_expect(err[0], "case %zu: no reason", i);
		cr_expect_null(ev.obj, "case %zu", i);
	}
}

Test(k8s_watch_line, truncated_and_split)
{
	/* Every strict prefix of a good line is rejected; the two halves of a
	 * split line are rejected on their own; the whole is accepted. */
	const char *line = "{\"type\":\"MODIFIED\",\"object\":" POD "}";
	size_t n = strlen(line);
	for (size_t i = 0; i < n; i++) {
		struct k8s_watch_event ev;
		char err[128];
		/* a copy without a NUL after it, so ASan catches reads past the end */
		char *cp = malloc(i ? i : 1);
		memcpy(cp, line, i);
		cr_assert_eq(k8s_parse_watch_line(cp, i, &ev, err, sizeof(err)), -EBADMSG,
			     "prefix %zu", i);
		cr_assert_eq(k8s_parse_watch_line(line + i, n - i, &ev, err, sizeof(err)) == 0,
			     i == 0, "suffix %zu", i);
		free(cp);
	}
}

Test(k8s_watch_line, hostile)
{
	struct k8s_watch_event ev;
	char err[128];
	/* Deep nesting inside the object: cJSON's nesting limit refuses it. */
	size_t depth = 100000;
	char *deep = malloc(depth * 2 + 64);
	strcpy(deep, "{\"type\":\"ADDED\",\"object\":");
	size_t p = strlen(deep);
	memset(deep + p, '[', depth);
	memset(deep + p + depth, ']', depth);
	strcpy(deep + p + 2 * depth, "}");
	cr_assert_eq(parse(deep, &ev, err), -EBADMSG);
	free(deep);
	/* NUL bytes inside the line. */
	const char nul[] = "{\"type\":\"ADDED\"\0,\"object\":" POD "}";
	cr_assert_eq(k8s_parse_watch_line(nul, sizeof(nul) - 1, &ev, err, sizeof(err)), -EBADMSG);
	/* A NUL escaped in a key does not make "type\u0000x" count as "type" twice... */
	cr_assert_eq(parse("{\"type\":\"ADDED\",\"object\":" POD ",\"typ\\u0000e\":1}", &ev, err),
		     0);
	/* Long reason and message are cut, not overflowed. */
	char big[4096];
	char filler[1500];
	memset(filler, 'm', sizeof(filler) - 1);
	filler[sizeof(filler) - 1] = '\0';
	snprintf(
	    big, sizeof(big),
	    "{\"type\":\"ERROR\",\"object\":{\"code\":1e300,\"reason\":\"%s\",\"message\":\"%s\"}}",
	    filler + 1000, filler);
	cr_assert_eq(parse(big, &ev, err), 0);
	cr_assert_eq(ev.code, 0);
	cr_assert_eq(strlen(ev.reason), sizeof(ev.reason) - 1);
	cr_assert_eq(strlen(ev.message), sizeof(ev.message) - 1);
	/* NULL line. */
	cr_assert_eq(k8s_parse_watch_line(NULL, 0, &ev, err, sizeof(err)), -EBADMSG);
}

/* ---- List ---- */

struct items {
	int n;
	char spans[8][512];
	struct k8s_objmeta m[8];
	int stop_at;
};

static int on_item(void *ctx, const char *obj, size_t len, const struct k8s_objmeta *m)
{
	struct items *it = ctx;
	if (it->n == it->stop_at)
		return -ECANCELED;
	cr_assert_lt(len, sizeof(it->spans[0]));
	memcpy(it->spans[it->n], obj, len);
	it->spans[it->n][len] = '\0';
	it->m[it->n] = *m;
	it->n++;
	return 0;
}

#define ITEM(n, rv)                                                                                \
	"{\"metadata\":{\"name\":\"" n "\",\"uid\":\"uid-" n "\",\"resourceVersion\":\"" rv "\"}}"

Test(k8s_list, pages)
{
	const char *body =
	    "{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":\"100\","
	    "\"continue\":\"eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ\",\"remainingItemCount\":3},\"items\":"
	    "[" ITEM("a", "90") " , " ITEM(
		"b", "95") ",{\"metadata\":{\"name\":\"nouid\",\"resourceVersion\":\"1\"}},7]}\n";
	struct items it = {.stop_at = -1};
	struct k8s_list_info info;
	char err[128];
	cr_assert_eq(k8s_parse_list(body, strlen(body), on_item, &it, &info, err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_eq(it.n, 2);
	cr_assert_str_eq(it.spans[0], ITEM("a", "90"));
	cr_assert_str_eq(it.spans[1], ITEM("b", "95"));
	cr_assert_str_eq(it.m[1].uid, "uid-b");
	cr_assert_str_eq(info.rv, "100");
	cr_assert_str_eq(info.cont, "eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ");
	cr_assert_eq(info.bad_items, 2);
	free(info.cont);

	const char *last = "{\"kind\":\"PodList\",\"items\":[],\"metadata\":{\"resourceVersion\":"
			   "\"100\",\"continue\":\"\"}}";
	cr_assert_eq(k8s_parse_list(last, strlen(last), on_item, &it, &info, err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_null(info.cont);
	const char *nullitems =
	    "{\"kind\":\"PodList\",\"items\":null,\"metadata\":{\"resourceVersion\":\"5\"}}";
	cr_assert_eq(
	    k8s_parse_list(nullitems, strlen(nullitems), on_item, &it, &info, err, sizeof(err)), 0);
}

Test(k8s_list, callback_stops)
{
	const char *body =
	    "{\"metadata\":{\"resourceVersion\":\"1\",\"continue\":\"c\"},\"items\":[" ITEM(
		"a", "1") "," ITEM("b", "1") "]}";
	struct items it = {.stop_at = 1};
	struct k8s_list_info info;
	char err[128];
	cr_assert_eq(k8s_parse_list(body, strlen(body), on_item, &it, &info, err, sizeof(err)),
		     -ECANCELED);
	cr_assert_eq(it.n, 1);
	cr_assert_null(info.cont);
}

Test(k8s_list, bad)
{
	static const char *bad[] = {
	    "",
	    "null",
	    "{\"metadata\":{\"resourceVersion\":\"1\"}}",
	    "{\"items\":[]}",
	    "{\"items\":{},\"metadata\":{\"resourceVersion\":\"1\"}}",
	    "{\"items\":[],\"metadata\":{\"resourceVersion\":1}}",
	    "{\"items\":[],\"items\":[],\"metadata\":{\"resourceVersion\":\"1\"}}",
	    "{\"items\":[" ITEM("a", "1") "],\"metadata\":{\"resourceVersion\":\"1\"}} trailing",
	    "{\"items\":[" ITEM("a", "1") ",],\"metadata\":{\"resourceVersion\":\"1\"}}",
	    "{\"kind\":\"Status\",\"code\":410,\"reason\":\"Expired\"}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct items it = {.stop_at = -1};
		struct k8s_list_info info;
		char err[128] = "";
		cr_expect_eq(
		    k8s_parse_list(bad[i], strlen(bad[i]), on_item, &it, &info, err, sizeof(err)),
		    -EBADMSG, "case %zu", i);
		cr_expect(strstr(err, "list body"), "case %zu: '%s'", i, err);
		cr_expect_null(info.cont);
	}
	/* Truncated at every byte. */
	const char *body =
	    "{\"metadata\":{\"resourceVersion\":\"1\",\"continue\":\"c\"},\"items\":[" ITEM(
		"a", "1") "]}";
	size_t n = strlen(body);
	for (size_t i = 0; i < n; i++) {
		struct items it = {.stop_at = -1};
		struct k8s_list_info info;
		char err[128];
		char *cp = malloc(i ? i : 1);
		memcpy(cp, body, i);
		cr_assert_eq(k8s_parse_list(cp, i, on_item, &it, &info, err, sizeof(err)), -EBADMSG,
			     "prefix %zu", i);
		cr_assert_null(info.cont);
		free(cp);
	}
}

/* ---- metadata only ---- */

Test(k8s_metadata_only, clean_passes)
{
	const char *o = "{\"kind\":\"PartialObjectMetadata\",\"apiVersion\":\"meta.k8s.io/"
			"v1\",\"metadata\":{\"name\":"
			"\"s\",\"annotations\":{\"a\":\"b\"}}}";
	char *out;
	size_t n;
	cr_assert_eq(k8s_metadata_only(o, strlen(o), &out, &n), 0);
	cr_assert_null(out);
}

Test(k8s_metadata_only, data_is_stripped)
{
	const char *o =
	    "{\"kind\":\"Secret\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"db\","
	    "\"namespace\":\"ns\","
	    "\"annotations\":{\"keep\":\"me\",\"kubectl.kubernetes.io/last-applied-configuration\":"
	    "\"{\\\"data\\\":{\\\"password\\\":\\\"aHVudGVyMg==\\\"}}\"}},"
	    "\"data\":{\"password\":\"aHVudGVyMg==\"},\"stringData\":{\"p\":\"hunter2\"},\"type\":"
	    "\"Opaque\"}";
	char *out;
	size_t n;
	cr_assert_eq(k8s_metadata_only(o, strlen(o), &out, &n), 1);
	cr_assert_eq(strlen(out), n);
	cr_assert_null(strstr(out, "aHVudGVyMg"), "%s", out);
	cr_assert_null(strstr(out, "hunter2"), "%s", out);
	cr_assert_null(strstr(out, "Opaque"), "%s", out);
	cr_assert_str_eq(
	    out,
	    "{\"kind\":\"PartialObjectMetadata\",\"apiVersion\":\"meta.k8s.io/v1\",\"metadata\":{"
	    "\"name\":\"db\",\"namespace\":\"ns\",\"annotations\":{\"keep\":\"me\"}}}");
	free(out);

	/* A PartialObjectMetadata that still has the annotation, twice. */
	const char *o2 =
	    "{\"kind\":\"PartialObjectMetadata\",\"metadata\":{\"name\":\"x\",\"annotations\":{"
	    "\"kubectl.kubernetes.io/last-applied-configuration\":\"S1\","
	    "\"kubectl.kubernetes.io/last-applied-configuration\":\"S2\"}}}";
	cr_assert_eq(k8s_metadata_only(o2, strlen(o2), &out, &n), 1);
	cr_assert_null(strstr(out, "S1"));
	cr_assert_null(strstr(out, "S2"));
	free(out);

	/* Duplicate metadata or annotations keys smuggling a copy. */
	const char *o3 =
	    "{\"kind\":\"PartialObjectMetadata\",\"metadata\":{\"name\":\"x\"},\"metadata\":{"
	    "\"name\":\"x\","
	    "\"annotations\":{\"kubectl.kubernetes.io/last-applied-configuration\":\"S3\"}}}";
	cr_assert_eq(k8s_metadata_only(o3, strlen(o3), &out, &n), 1);
	cr_assert_null(strstr(out, "S3"));
	free(out);
	const char *o4 = "{\"metadata\":{\"name\":\"x\",\"annotations\":{},\"annotations\":{"
			 "\"kubectl.kubernetes.io/last-applied-configuration\":\"S4\"}}}";
	cr_assert_eq(k8s_metadata_only(o4, strlen(o4), &out, &n), 1);
	cr_assert_null(strstr(out, "S4"), "%s", out);
	free(out);
}

Test(k8s_metadata_only, bad)
{
	static const char *bad[] = {
	    "", "[]", "{\"data\":{}}", "{\"metadata\":1}", "{\"metadata\":{}", "nul"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *out;
		size_t n;
		cr_expect_eq(k8s_metadata_only(bad[i], strlen(bad[i]), &out, &n), -EBADMSG,
			     "case %zu", i);
		cr_expect_null(out);
	}
}
