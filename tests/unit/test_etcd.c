// SPDX-License-Identifier: Apache-2.0
/* The etcd collector's pure parts: the watch-response parser (real etcd 3.4
 * responses, truncated, wrong types, missing fields, hostile input), the
 * event encoder, resource types, the request body, and config checks. */
#include <criterion/criterion.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/collector.h"
#include "collectors/etcd/etcd.h"
#include "collectors/etcd/internal.h"
#include "core/config.h"
#include "core/state.h"
#include "util/strbuf.h"
#include "tests/lib/test_env.h"

/* Responses as etcd 3.4.23's gateway wrote them. */
#define HDR                                                                                        \
	"\"header\":{\"cluster_id\":\"15118495548433857066\",\"member_id\":"                       \
	"\"13668033151171901709\",\"revision\":\"%s\",\"raft_term\":\"2\"}"
static const char created[] = "{\"result\":{\"header\":{\"cluster_id\":\"1\",\"member_id\":\"2\","
			      "\"revision\":\"2\",\"raft_term\":\"2\"},\"created\":true}}";
static const char put_with_prev[] =
    "{\"result\":{\"header\":{\"cluster_id\":\"1\",\"revision\":\"3\"},\"events\":[{\"kv\":{"
    "\"key\":\"L3JlZ2lzdHJ5L3BvZHMvZGVmYXVsdC9h\","
    "\"create_revision\":\"2\",\"mod_revision\":\"3\",\"version\":\"2\",\"value\":\"d29ybGQ=\","
    "\"lease\":\"7587\"},"
    "\"prev_kv\":{\"key\":\"L3JlZ2lzdHJ5L3BvZHMvZGVmYXVsdC9h\",\"create_revision\":\"2\",\"mod_"
    "revision\":\"2\",\"version\":\"1\",\"value\":\"aGVsbG8=\"}}]}}";
static const char del[] =
    "{\"result\":{\"header\":{\"revision\":\"4\"},\"events\":[{\"type\":\"DELETE\",\"kv\":{\"key\":"
    "\"L3JlZ2lzdHJ5L3BvZHMvZGVmYXVsdC9h\","
    "\"mod_revision\":\"4\"},\"prev_kv\":{\"key\":\"L3JlZ2lzdHJ5L3BvZHMvZGVmYXVsdC9h\",\"create_"
    "revision\":\"2\",\"mod_revision\":\"3\",\"version\":\"2\",\"value\":\"d29ybGQ=\"}}]}}";
static const char progress[] =
    "{\"result\":{\"header\":{\"cluster_id\":\"1\",\"revision\":\"42\"}}}";
static const char compacted[] =
    "{\"result\":{\"header\":{\"revision\":\"20\"},\"canceled\":true,\"compact_revision\":\"15\"}}";

static void parse_ok(const char *s, struct etcd_watch_resp *r)
{
	char err[200] = "";
	int rc = etcd_watch_parse(s, strlen(s), r, err, sizeof(err));
	cr_assert_eq(rc, 0, "parse failed: %s", err);
}

static void parse_bad(const char *s, size_t n, const char *want_err)
{
	struct etcd_watch_resp r;
	char err[200] = "";
	int rc = etcd_watch_parse(s, n, &r, err, sizeof(err));
	cr_assert_eq(rc, -EBADMSG, "accepted %.*s", (int)n, s);
	cr_assert_neq(err[0], '\0');
	if (want_err)
		cr_assert(strstr(err, want_err), "error '%s' lacks '%s'", err, want_err);
	cr_assert_eq(r.nev, 0);
	cr_assert_null(r.json);
	etcd_watch_resp_free(&r);
}

Test(etcd_parse, created)
{
	struct etcd_watch_resp r;
	parse_ok(created, &r);
	cr_assert_eq(r.kind, ETCD_RESP_CREATED);
	cr_assert_eq(r.header_rev, 2);
	cr_assert_eq(r.nev, 0);
	etcd_watch_resp_free(&r);
}

Test(etcd_parse, put_with_prev_kv)
{
	struct etcd_watch_resp r;
	parse_ok(put_with_prev, &r);
	cr_assert_eq(r.kind, ETCD_RESP_EVENTS);
	cr_assert_eq(r.header_rev, 3);
	cr_assert_eq(r.nev, 1);
	struct etcd_event *e = &r.ev[0];
	cr_assert_eq(e->op, ETCD_PUT);
	cr_assert_eq(e->key_len, strlen("/registry/pods/default/a"));
	cr_assert_str_eq(e->key, "/registry/pods/default/a");
	cr_assert_str_eq(e->kv.value_b64, "d29ybGQ=");
	cr_assert_eq(e->kv.value_len, 5);
	cr_assert_eq(e->kv.create_rev, 2);
	cr_assert_eq(e->kv.mod_rev, 3);
	cr_assert_eq(e->kv.version, 2);
	cr_assert_eq(e->kv.lease, 7587);
	cr_assert(e->has_prev);
	cr_assert_str_eq(e->prev.value_b64, "aGVsbG8=");
	cr_assert_eq(e->prev.mod_rev, 2);
	cr_assert_eq(e->prev.version, 1);
	etcd_watch_resp_free(&r);
	etcd_watch_resp_free(&r); /* twice is fine */
	etcd_watch_resp_free(NULL);
}

Test(etcd_parse, delete_has_no_value_and_zero_fields)
{
	struct etcd_watch_resp r;
	parse_ok(del, &r);
	cr_assert_eq(r.nev, 1);
	cr_assert_eq(r.ev[0].op, ETCD_DELETE);
	cr_assert_str_eq(r.ev[0].kv.value_b64, "");
	cr_assert_eq(r.ev[0].kv.value_len, 0);
	cr_assert_eq(r.ev[0].kv.create_rev, 0);
	cr_assert_eq(r.ev[0].kv.mod_rev, 4);
	cr_assert_eq(r.ev[0].kv.version, 0);
	cr_assert_str_eq(r.ev[0].prev.value_b64, "d29ybGQ=");
	etcd_watch_resp_free(&r);
}

Test(etcd_parse, progress_compacted_canceled_error)
{
	struct etcd_watch_resp r;
	parse_ok(progress, &r);
	cr_assert_eq(r.kind, ETCD_RESP_PROGRESS);
	cr_assert_eq(r.header_rev, 42);
	etcd_watch_resp_free(&r);

	parse_ok(compacted, &r);
	cr_assert_eq(r.kind, ETCD_RESP_COMPACTED);
	cr_assert_eq(r.compact_rev, 15);
	cr_assert_eq(r.header_rev, 20);
	etcd_watch_resp_free(&r);

	parse_ok(
	    "{\"result\":{\"canceled\":true,\"cancel_reason\":\"etcdserver: permission denied\"}}",
	    &r);
	cr_assert_eq(r.kind, ETCD_RESP_CANCELED);
	cr_assert_str_eq(r.cancel_reason, "etcdserver: permission denied");
	etcd_watch_resp_free(&r);

	parse_ok("{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":\"etcdserver: no "
		 "leader\",\"http_status\":\"Service Unavailable\"}}",
		 &r);
	cr_assert_eq(r.kind, ETCD_RESP_ERROR);
	cr_assert_eq(r.error_code, 503);
	cr_assert_str_eq(r.error_msg, "etcdserver: no leader");
	etcd_watch_resp_free(&r);

	/* progress notification with the int64 as a JSON number */
	parse_ok("{\"result\":{\"header\":{\"revision\":9007199254740992}}}", &r);
	cr_assert_eq(r.header_rev, 9007199254740992LL);
	etcd_watch_resp_free(&r);
}

Test(etcd_parse, transaction_with_several_events_and_numeric_type)
{
	struct etcd_watch_resp r;
	parse_ok("{\"result\":{\"events\":[{\"kv\":{\"key\":\"YQ==\",\"mod_revision\":\"9\","
		 "\"value\":\"MQ==\"}},"
		 "{\"type\":1,\"kv\":{\"key\":\"Yg==\",\"mod_revision\":9}},{\"type\":\"PUT\","
		 "\"kv\":{\"key\":\"Yw==\",\"mod_revision\":\"9\"}}],\"fragment\":true}}",
		 &r);
	cr_assert_eq(r.kind, ETCD_RESP_EVENTS);
	cr_assert(r.fragment);
	cr_assert_eq(r.nev, 3);
	cr_assert_str_eq(r.ev[0].key, "a");
	cr_assert_eq(r.ev[1].op, ETCD_DELETE);
	cr_assert_str_eq(r.ev[1].key, "b");
	cr_assert_eq(r.ev[2].op, ETCD_PUT);
	cr_assert_eq(r.bad_events, 0);
	etcd_watch_resp_free(&r);
}

Test(etcd_parse, every_truncation_is_rejected)
{
	const char *all[] = {created, put_with_prev, del, progress, compacted};
	for (size_t k = 0; k < sizeof(all) / sizeof(all[0]); k++) {
		size_t n = strlen(all[k]);
		for (size_t i = 0; i < n; i++) {
			struct etcd_watch_resp r;
			char err[200];
			int rc = etcd_watch_parse(all[k], i, &r, err, sizeof(err));
			cr_assert_eq(rc, -EBADMSG, "prefix %zu of %zu of message %zu accepted", i,
				     n, k);
			etcd_watch_resp_free(&r);
		}
	}
}

Test(etcd_parse, malformed_responses)
{
	parse_bad("", sizeof("") - 1, "empty");
	parse_bad("[]", sizeof("[]") - 1, "not a JSON object");
	parse_bad("\"x\"", sizeof("\"x\"") - 1, "not a JSON object");
	parse_bad("{}", sizeof("{}") - 1, "no \"result\"");
	parse_bad("{\"result\":[]}", sizeof("{\"result\":[]}") - 1, "no \"result\"");
	parse_bad("{\"result\":{}} x", sizeof("{\"result\":{}} x") - 1, "after its JSON");
	parse_bad("{\"result\":{\"header\":{\"revision\":{}}}}",
		  sizeof("{\"result\":{\"header\":{\"revision\":{}}}}") - 1, "header");
	parse_bad("{\"result\":{\"header\":\"x\"}}", sizeof("{\"result\":{\"header\":\"x\"}}") - 1,
		  "header");
	parse_bad("{\"result\":{\"header\":{\"revision\":\"12x\"}}}",
		  sizeof("{\"result\":{\"header\":{\"revision\":\"12x\"}}}") - 1, "header");
	parse_bad("{\"result\":{\"header\":{\"revision\":\"99999999999999999999\"}}}",
		  sizeof("{\"result\":{\"header\":{\"revision\":\"99999999999999999999\"}}}") - 1,
		  "header");
	parse_bad("{\"result\":{\"header\":{\"revision\":1.5}}}",
		  sizeof("{\"result\":{\"header\":{\"revision\":1.5}}}") - 1, "header");
	parse_bad("{\"result\":{\"header\":{\"revision\":\"-3\"}}}",
		  sizeof("{\"result\":{\"header\":{\"revision\":\"-3\"}}}") - 1, "negative");
	parse_bad("{\"result\":{\"created\":\"yes\"}}",
		  sizeof("{\"result\":{\"created\":\"yes\"}}") - 1, "wrong type");
	parse_bad("{\"result\":{\"compact_revision\":true}}",
		  sizeof("{\"result\":{\"compact_revision\":true}}") - 1, "wrong type");
	parse_bad("{\"result\":{\"events\":{}}}", sizeof("{\"result\":{\"events\":{}}}") - 1,
		  "not an array");
	parse_bad("{\"error\":\"boom\"}", sizeof("{\"error\":\"boom\"}") - 1, "error");
	/* a NUL inside the message */
	parse_bad("{\"result\":{}\0}", sizeof("{\"result\":{}\0}") - 1, "control byte 0x00");
	parse_bad("{\"result\":{\"cancel_reason\":\"a\x01\"}}",
		  sizeof("{\"result\":{\"cancel_reason\":\"a\x01\"}}") - 1, "control byte 0x01");
}

Test(etcd_parse, malformed_events_are_skipped_and_counted)
{
	struct etcd_watch_resp r;
	parse_ok(
	    "{\"result\":{\"events\":["
	    "7,"						  /* not an object */
	    "{\"kv\":{\"key\":\"YQ==\",\"mod_revision\":\"5\"}}," /* good */
	    "{\"type\":\"FOO\",\"kv\":{\"key\":\"YQ==\",\"mod_revision\":\"5\"}}," /* bad type */
	    "{\"type\":2,\"kv\":{\"key\":\"YQ==\",\"mod_revision\":\"5\"}},"	   /* bad type */
	    "{},"								   /* no kv */
	    "{\"kv\":{\"mod_revision\":\"5\"}},"				   /* no key */
	    "{\"kv\":{\"key\":5,\"mod_revision\":\"5\"}},"	  /* key not a string */
	    "{\"kv\":{\"key\":\"a*b=\",\"mod_revision\":\"5\"}}," /* key not base64 */
	    "{\"kv\":{\"key\":\"YQ=\",\"mod_revision\":\"5\"}},"  /* bad length */
	    "{\"kv\":{\"key\":\"YQ==\"}},"			  /* no mod_revision */
	    "{\"kv\":{\"key\":\"YQ==\",\"mod_revision\":\"x\"}}," /* not an integer */
	    "{\"kv\":{\"key\":\"YQ==\",\"mod_revision\":\"6\",\"value\":\"@@@@\"}}," /* value */
	    "{\"kv\":{\"key\":\"YQ==\",\"mod_revision\":\"6\",\"value\":7}}," /* value type */
	    "{\"kv\":{\"key\":\"YQ==\",\"mod_revision\":\"6\",\"version\":\"-1\"}}," /* negative */
	    "{\"kv\":{\"key\":\"YQ==\",\"mod_revision\":\"6\"},\"prev_kv\":[]},"     /* prev_kv */
	    "{\"kv\":{\"key\":\"YQ==\",\"mod_revision\":\"6\"},\"prev_kv\":{\"lease\":{}}}," /* prev
												lease
											      */
	    "{\"kv\":{\"key\":\"Yg==\",\"mod_revision\":\"7\",\"value\":\"\"}}" /* good */
	    "]}}",
	    &r);
	cr_assert_eq(r.kind, ETCD_RESP_EVENTS);
	cr_assert_eq(r.nev, 2);
	cr_assert_eq(r.bad_events, 15);
	cr_assert_str_eq(r.bad_reason, "an event is not an object");
	cr_assert_str_eq(r.ev[0].key, "a");
	cr_assert_eq(r.ev[0].kv.mod_rev, 5);
	cr_assert_str_eq(r.ev[1].key, "b");
	cr_assert_eq(r.ev[1].kv.mod_rev, 7);
	etcd_watch_resp_free(&r);

	/* only bad events: still an events response, with nothing in it */
	parse_ok("{\"result\":{\"events\":[{}]}}", &r);
	cr_assert_eq(r.kind, ETCD_RESP_EVENTS);
	cr_assert_eq(r.nev, 0);
	cr_assert_eq(r.bad_events, 1);
	etcd_watch_resp_free(&r);
}

Test(etcd_parse, hostile_input)
{
	/* deep nesting: cJSON's nesting limit turns it down, no stack overflow */
	size_t n = 200000;
	char *s = malloc(2 * n + 32);
	strcpy(s, "{\"result\":{\"x\":");
	size_t p = strlen(s);
	memset(s + p, '[', n);
	memset(s + p + n, ']', n);
	strcpy(s + p + 2 * n, "}}");
	parse_bad(s, strlen(s), "not valid JSON");
	free(s);

	/* keys with NULs, quotes and invalid UTF-8 decode byte for byte */
	struct etcd_watch_resp r;
	/* "a\0\"\xff" = YQAi/w== */
	parse_ok(
	    "{\"result\":{\"events\":[{\"kv\":{\"key\":\"YQAi/w==\",\"mod_revision\":\"3\"}}]}}",
	    &r);
	cr_assert_eq(r.nev, 1);
	cr_assert_eq(r.ev[0].key_len, 4);
	cr_assert_eq(memcmp(r.ev[0].key, "a\0\"\xff", 4), 0);
	etcd_watch_resp_free(&r);

	/* strings with escapes and invalid UTF-8 in places we copy */
	parse_ok("{\"result\":{\"canceled\":true,\"cancel_reason\":\"\\u0000x\\\"\xff\"}}", &r);
	cr_assert_eq(r.kind, ETCD_RESP_CANCELED);
	etcd_watch_resp_free(&r);

	/* a very long cancel reason is cut, not overflowed */
	char big[2000];
	memset(big, 'r', sizeof(big));
	int l = snprintf(s = malloc(4096), 4096,
			 "{\"result\":{\"canceled\":true,\"cancel_reason\":\"%.*s\"}}",
			 (int)sizeof(big), big);
	char err[100];
	cr_assert_eq(etcd_watch_parse(s, (size_t)l, &r, err, sizeof(err)), 0);
	cr_assert_eq(strlen(r.cancel_reason), sizeof(r.cancel_reason) - 1);
	etcd_watch_resp_free(&r);
	free(s);

	/* duplicate keys: cJSON takes the first; no crash, no leak */
	parse_ok("{\"result\":{\"header\":{\"revision\":\"1\"},\"header\":{\"revision\":\"2\"}}}",
		 &r);
	cr_assert_eq(r.header_rev, 1);
	etcd_watch_resp_free(&r);
}

static cJSON *encode(const struct etcd_event *e)
{
	struct strbuf sb = STRBUF_INIT;
	etcd_event_json(&sb, e);
	cr_assert_eq(sb.err, 0);
	cJSON *j = cJSON_ParseWithLength(sb.buf, sb.len);
	cr_assert_not_null(j, "not JSON: %s", sb.buf);
	sb_free(&sb);
	return j;
}

static int64_t num(const cJSON *o, const char *k)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);
	cr_assert(cJSON_IsNumber(it), "%s is not a number", k);
	return (int64_t)it->valuedouble;
}

static const char *str(const cJSON *o, const char *k)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);
	cr_assert(cJSON_IsString(it), "%s is not a string", k);
	return it->valuestring;
}

Test(etcd_event, json_fields)
{
	struct etcd_watch_resp r;
	parse_ok(put_with_prev, &r);
	cJSON *j = encode(&r.ev[0]);
	cr_assert_str_eq(str(j, "key"), "/registry/pods/default/a");
	cr_assert_str_eq(str(j, "value"), "d29ybGQ=");
	cr_assert_eq(num(j, "create_revision"), 2);
	cr_assert_eq(num(j, "mod_revision"), 3);
	cr_assert_eq(num(j, "version"), 2);
	cr_assert_eq(num(j, "lease"), 7587);
	cr_assert_null(cJSON_GetObjectItemCaseSensitive(j, "key_base64"));
	const cJSON *prev = cJSON_GetObjectItemCaseSensitive(j, "prev_kv");
	cr_assert(cJSON_IsObject(prev));
	cr_assert_str_eq(str(prev, "value"), "aGVsbG8=");
	cr_assert_eq(num(prev, "mod_revision"), 2);
	cJSON_Delete(j);
	etcd_watch_resp_free(&r);

	/* a key that is not UTF-8 keeps its exact bytes in key_base64 */
	parse_ok(
	    "{\"result\":{\"events\":[{\"kv\":{\"key\":\"YQAi/w==\",\"mod_revision\":\"3\"}}]}}",
	    &r);
	j = encode(&r.ev[0]);
	cr_assert_str_eq(str(j, "key_base64"), "YQAi/w==");
	const char *k = str(j, "key"); /* cJSON stops at the escaped NUL */
	cr_assert_str_eq(k, "a");
	cr_assert_null(cJSON_GetObjectItemCaseSensitive(j, "prev_kv"));
	cr_assert_str_eq(str(j, "value"), "");
	cJSON_Delete(j);
	etcd_watch_resp_free(&r);

	/* a UTF-8 key with a quote and a newline is escaped, no key_base64 */
	parse_ok(
	    "{\"result\":{\"events\":[{\"kv\":{\"key\":\"w6kiCg==\",\"mod_revision\":\"3\"}}]}}",
	    &r);
	j = encode(&r.ev[0]);
	cr_assert_str_eq(str(j, "key"), "\xc3\xa9\"\n");
	cr_assert_null(cJSON_GetObjectItemCaseSensitive(j, "key_base64"));
	cJSON_Delete(j);
	etcd_watch_resp_free(&r);
}

Test(etcd_event, resource_type)
{
	char out[64];
#define RT(k, want)                                                                                \
	do {                                                                                       \
		etcd_resource_type(k, sizeof(k) - 1, out, sizeof(out));                            \
		cr_assert_str_eq(out, want, "key %s", k);                                          \
	} while (0)
	RT("/registry/pods/default/web-1", "pods");
	RT("/registry/minions/node-1", "minions");
	RT("/registry/ranges/serviceips", "ranges");
	RT("/registry/crd.projectcalico.org/ippools/default-ipv4", "crd.projectcalico.org/ippools");
	RT("/registry/apiregistration.k8s.io/apiservices/v1.",
	   "apiregistration.k8s.io/apiservices");
	RT("/registry/health", "health");
	RT("/registry/", "");
	RT("/registry", "");
	RT("/other/pods/x", "");
	RT("", "");
	RT("/registry/po\0ds/x", "po");
	char small[4];
	etcd_resource_type("/registry/deployments/a/b", 25, small, sizeof(small));
	cr_assert_str_eq(small, "dep");
}

static char *body_field(const char *body, const char *k, char *buf, size_t cap)
{
	cJSON *j = cJSON_Parse(body);
	cr_assert_not_null(j, "%s", body);
	const cJSON *cr = cJSON_GetObjectItemCaseSensitive(j, "create_request");
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(cr, k);
	if (!it) {
		cJSON_Delete(j);
		return NULL;
	}
	if (cJSON_IsString(it))
		snprintf(buf, cap, "%s", it->valuestring);
	else
		snprintf(buf, cap, "%s", cJSON_IsTrue(it) ? "true" : "other");
	cJSON_Delete(j);
	return buf;
}

Test(etcd_event, watch_body)
{
	struct strbuf sb = STRBUF_INIT;
	char b[128];
	etcd_watch_body(&sb, "/registry/", 10, 0);
	cr_assert_str_eq(body_field(sb.buf, "key", b, sizeof(b)),
			 "L3JlZ2lzdHJ5Lw=="); /* /registry/ */
	cr_assert_str_eq(body_field(sb.buf, "range_end", b, sizeof(b)),
			 "L3JlZ2lzdHJ5MA=="); /* /registry0 */
	cr_assert_null(body_field(sb.buf, "start_revision", b, sizeof(b)));
	cr_assert_str_eq(body_field(sb.buf, "prev_kv", b, sizeof(b)), "true");
	cr_assert_str_eq(body_field(sb.buf, "progress_notify", b, sizeof(b)), "true");
	cr_assert_str_eq(body_field(sb.buf, "fragment", b, sizeof(b)), "true");

	sb_reset(&sb);
	etcd_watch_body(&sb, "a\xff\xff", 3, 1234);
	cr_assert_str_eq(body_field(sb.buf, "range_end", b, sizeof(b)), "Yg=="); /* "b" */
	cr_assert_str_eq(body_field(sb.buf, "start_revision", b, sizeof(b)), "1234");

	sb_reset(&sb);
	etcd_watch_body(&sb, "\xff", 1, 0);
	cr_assert_str_eq(body_field(sb.buf, "range_end", b, sizeof(b)), "AA==");
	sb_reset(&sb);
	etcd_watch_body(&sb, "", 0, 0);
	cr_assert_str_eq(body_field(sb.buf, "key", b, sizeof(b)), "AA==");
	cr_assert_str_eq(body_field(sb.buf, "range_end", b, sizeof(b)), "AA==");
	sb_free(&sb);
}

/* ---- config ---- */

static struct tcfg base_cfg(char *state_dir)
{
	struct tcfg c;
	memset(&c, 0, sizeof(c));
	c.etcd.endpoints = "http://127.0.0.1:1";
	c.etcd.prefix = "/registry/";
	c.etcd.cacert = "";
	c.etcd.cert = "";
	c.etcd.key = "";
	c.base.state_dir = state_dir;
	return c;
}

static void new_fails(struct tcfg *c, const char *want)
{
	char err[256] = "";
	errno = 0;
	struct collector *col = etcd_collector_new(tenv(c, SRC_ETCD), err, sizeof(err));
	cr_assert_null(col, "accepted a bad config (want '%s')", want);
	cr_assert_neq(errno, 0);
	cr_assert(strstr(err, want), "error '%s' lacks '%s'", err, want);
}

Test(etcd_config, errors_and_cursor)
{
	char dir[] = "/tmp/tapio-etcd-unit-XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	struct tcfg c = base_cfg(dir);
	char err[256];

	cr_assert(etcd_collector_available(tenv(&c, SRC_ETCD)));
	c.etcd.endpoints = "";
	cr_assert_not(etcd_collector_available(tenv(&c, SRC_ETCD)));
	new_fails(&c, "etcd-endpoints");
	c.etcd.endpoints = " , ";
	new_fails(&c, "no endpoint");
	c.etcd.endpoints = "http://a:1,ftp://b";
	new_fails(&c, "'ftp://b' is not an http");
	c = base_cfg(dir);
	c.etcd.cert = "/nonexistent/cert.pem";
	new_fails(&c, "give both");
	c.etcd.key = "/nonexistent/key.pem";
	new_fails(&c, "etcd-cert: /nonexistent/cert.pem");
	c = base_cfg(dir);
	c.etcd.cacert = "/nonexistent/ca.pem";
	new_fails(&c, "etcd-cacert: /nonexistent/ca.pem: No such file");

	/* a good config with a stored revision */
	c = base_cfg(dir);
	cr_assert_eq(state_write(dir, "etcd.revision", "41\n", 3), 0);
	struct collector *col = etcd_collector_new(tenv(&c, SRC_ETCD), err, sizeof(err));
	cr_assert_not_null(col, "%s", err);
	cr_assert_str_eq(collector_name(col), "etcd");
	cr_assert_not(collector_healthy(col));
	collector_stop(col); /* never started: fine */
	collector_destroy(col);
	collector_destroy(NULL);

	/* a stored revision that is not a number, empty or cut short is reported
	 * by name and read as unknown (from the oldest revision), never "now" */
	const char *bad[] = {"garbage\n", "-5\n", "", "41 "};
	const char *why[] = {"does not hold a revision", "does not hold a revision",
			     "empty or cut short", "empty or cut short"};
	for (size_t i = 0; i < 4; i++) {
		cr_assert_eq(state_write(dir, "etcd.revision", bad[i], strlen(bad[i])), 0);
		col = etcd_collector_new(tenv(&c, SRC_ETCD), err, sizeof(err));
		cr_assert_not_null(col, "%s", err);
		char last[256];
		collector_last_error(col, last, sizeof(last));
		cr_assert(strstr(last, "etcd.revision") && strstr(last, why[i]) &&
			      strstr(last, "unknown"),
			  "%s", last);
		cr_assert_eq(to_etcd(col)->rev_done, 0);
		cr_assert(to_etcd(col)->have_rev);
		collector_destroy(col);
	}
	/* a whole revision without the newline (an older tapio's file) is
	 * trusted and reported: a cut-short revision is only an older one */
	{
		char last[256];
		cr_assert_eq(state_write(dir, "etcd.revision", "41", 2), 0);
		col = etcd_collector_new(tenv(&c, SRC_ETCD), err, sizeof(err));
		cr_assert_not_null(col, "%s", err);
		collector_last_error(col, last, sizeof(last));
		cr_assert(strstr(last, "etcd.revision") && strstr(last, "no final newline"), "%s",
			  last);
		cr_assert_eq(to_etcd(col)->rev_done, 41);
		cr_assert(to_etcd(col)->have_rev);
		collector_destroy(col);
	}
	/* the message names the file, never its content (it may be a secret) */
	{
		char last[256];
		cr_assert_eq(state_write(dir, "etcd.revision", "s3cr3t-token\n", 13), 0);
		col = etcd_collector_new(tenv(&c, SRC_ETCD), err, sizeof(err));
		cr_assert_not_null(col, "%s", err);
		collector_last_error(col, last, sizeof(last));
		cr_assert(strstr(last, "etcd.revision"), "%s", last);
		cr_assert_null(strstr(last, "s3cr3t"), "%s", last);
		collector_destroy(col);
	}
	/* a symlink planted as the cursor is refused, not read */
	{
		char link[128];
		snprintf(link, sizeof(link), "%s/etcd.revision", dir);
		unlink(link);
		cr_assert_eq(symlink("/etc/hostname", link), 0);
		cr_assert_null(etcd_collector_new(tenv(&c, SRC_ETCD), err, sizeof(err)));
		cr_assert(strstr(err, "etcd.revision"), "%s", err);
		unlink(link);
	}

	char path[128];
	snprintf(path, sizeof(path), "%s/etcd.revision", dir);
	unlink(path);
	rmdir(dir);
}
