// SPDX-License-Identifier: Apache-2.0
/* Pure parts of the etcd collector: the watch-response parser (etcd's JSON
 * gateway encoding of etcdserverpb.WatchResponse), the event encoder, the
 * resource type of a key and the watch request body. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collectors/etcd/etcd.h"
#include "util/strbuf.h"

/* An int64 field. proto3 leaves zero values out, so a missing field is 0. The
 * gateway writes int64 as a decimal string; a JSON number is accepted when it
 * is an exact integer. Returns 0 or -EINVAL (wrong type or not an integer). */
static int get_i64(const cJSON *obj, const char *name, int64_t *out)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
	*out = 0;
	if (!it || cJSON_IsNull(it))
		return 0;
	if (cJSON_IsString(it)) {
		const char *s = it->valuestring;
		char *end;
		if (!*s || !((*s >= '0' && *s <= '9') || *s == '-'))
			return -EINVAL;
		errno = 0;
		long long v = strtoll(s, &end, 10);
		if (errno || *end)
			return -EINVAL;
		*out = v;
		return 0;
	}
	if (cJSON_IsNumber(it)) {
		double d = it->valuedouble;
		if (!(d >= -9007199254740992.0 && d <= 9007199254740992.0) ||
		    d != (double)(int64_t)d)
			return -EINVAL;
		*out = (int64_t)d;
		return 0;
	}
	return -EINVAL;
}

static int get_bool(const cJSON *obj, const char *name, bool *out)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
	*out = false;
	if (!it || cJSON_IsNull(it))
		return 0;
	if (!cJSON_IsBool(it))
		return -EINVAL;
	*out = cJSON_IsTrue(it);
	return 0;
}

/* A string field: missing = "" (proto3), wrong type = -EINVAL. */
static int get_str(const cJSON *obj, const char *name, const char **out)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
	*out = "";
	if (!it || cJSON_IsNull(it))
		return 0;
	if (!cJSON_IsString(it))
		return -EINVAL;
	*out = it->valuestring;
	return 0;
}

/* Checks standard base64 with padding (what Go's encoding/json writes for
 * []byte). Returns the decoded length, or -EINVAL. */
static long b64_check(const char *s, size_t n)
{
	if (n % 4)
		return -EINVAL;
	size_t pad = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '=') {
			pad++;
			continue;
		}
		if (pad)
			return -EINVAL;
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '+' || c == '/'))
			return -EINVAL;
	}
	if (pad > 2)
		return -EINVAL;
	return (long)(n / 4 * 3 - pad);
}

/* Fills kv from a mvccpb.KeyValue object (the key is handled by the caller). */
static int parse_kv(const cJSON *o, struct etcd_kv *kv, const char **why)
{
	const char *v;
	if (get_str(o, "value", &v)) {
		*why = "kv.value is not a string";
		return -EINVAL;
	}
	size_t vl = strlen(v);
	long dl = b64_check(v, vl);
	if (dl < 0) {
		*why = "kv.value is not base64";
		return -EINVAL;
	}
	kv->value_b64 = v;
	kv->value_b64_len = vl;
	kv->value_len = (size_t)dl;
	if (get_i64(o, "create_revision", &kv->create_rev) ||
	    get_i64(o, "mod_revision", &kv->mod_rev) || get_i64(o, "version", &kv->version) ||
	    get_i64(o, "lease", &kv->lease)) {
		*why = "a kv revision, version or lease is not an integer";
		return -EINVAL;
	}
	if (kv->create_rev < 0 || kv->mod_rev < 0 || kv->version < 0) {
		*why = "a kv revision or version is negative";
		return -EINVAL;
	}
	return 0;
}

static int parse_event(const cJSON *e, struct etcd_event *ev, const char **why)
{
	memset(ev, 0, sizeof(*ev));
	if (!cJSON_IsObject(e)) {
		*why = "an event is not an object";
		return -EINVAL;
	}
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(e, "type");
	if (!t || cJSON_IsNull(t) || (cJSON_IsString(t) && !strcmp(t->valuestring, "PUT")) ||
	    (cJSON_IsNumber(t) && t->valuedouble == 0)) {
		ev->op = ETCD_PUT;
	} else if ((cJSON_IsString(t) && !strcmp(t->valuestring, "DELETE")) ||
		   (cJSON_IsNumber(t) && t->valuedouble == 1)) {
		ev->op = ETCD_DELETE;
	} else {
		*why = "event type is neither PUT nor DELETE";
		return -EINVAL;
	}
	const cJSON *kv = cJSON_GetObjectItemCaseSensitive(e, "kv");
	if (!cJSON_IsObject(kv)) {
		*why = "event without a kv object";
		return -EINVAL;
	}
	const cJSON *k = cJSON_GetObjectItemCaseSensitive(kv, "key");
	if (!cJSON_IsString(k) || !*k->valuestring) {
		*why = "kv.key is missing or not a string";
		return -EINVAL;
	}
	size_t kl = strlen(k->valuestring);
	long dl = b64_check(k->valuestring, kl);
	if (dl <= 0) {
		*why = "kv.key is not base64";
		return -EINVAL;
	}
	if (parse_kv(kv, &ev->kv, why))
		return -EINVAL;
	if (ev->kv.mod_rev <= 0) {
		*why = "kv.mod_revision is missing";
		return -EINVAL;
	}
	const cJSON *pkv = cJSON_GetObjectItemCaseSensitive(e, "prev_kv");
	if (pkv && !cJSON_IsNull(pkv)) {
		if (!cJSON_IsObject(pkv) || parse_kv(pkv, &ev->prev, why)) {
			if (!cJSON_IsObject(pkv))
				*why = "prev_kv is not an object";
			return -EINVAL;
		}
		ev->has_prev = true;
	}
	ev->key = malloc((size_t)dl + 1);
	if (!ev->key)
		return -ENOMEM;
	long got = base64_decode(k->valuestring, kl, ev->key, (size_t)dl);
	if (got != dl) {
		free(ev->key);
		ev->key = NULL;
		*why = "kv.key is not base64";
		return -EINVAL;
	}
	ev->key[dl] = '\0';
	ev->key_len = (size_t)dl;
	return 0;
}

void etcd_watch_resp_free(struct etcd_watch_resp *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nev; i++)
		free(r->ev[i].key);
	free(r->ev);
	cJSON_Delete(r->json);
	memset(r, 0, sizeof(*r));
}

/* Parses msg as one JSON object with nothing but whitespace around it.
 * Returns the root (owned by the caller) or NULL with err set. */
static cJSON *parse_object(const char *msg, size_t len, char *err, size_t errlen)
{
	const char *end = NULL;
	/* cJSON skips every byte up to 0x20 as whitespace; JSON allows only four,
	 * and no raw control byte inside strings. */
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)msg[i];
		if (ch < 0x20 && ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r') {
			err_printf(err, errlen,
				   "watch response holds control byte 0x%02x at byte %zu", ch, i);
			return NULL;
		}
	}
	cJSON *root = cJSON_ParseWithLengthOpts(msg, len, &end, 0);
	if (!root) {
		size_t at = end && end >= msg && end <= msg + len ? (size_t)(end - msg) : 0;
		err_printf(err, errlen, "watch response is not valid JSON (at byte %zu of %zu)", at,
			   len);
		return NULL;
	}
	while (end && end < msg + len &&
	       (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t'))
		end++;
	if (end != msg + len) {
		err_printf(err, errlen, "watch response has %zu bytes after its JSON value",
			   (size_t)(msg + len - end));
	} else if (!cJSON_IsObject(root)) {
		err_printf(err, errlen, "watch response is not a JSON object");
	} else {
		return root;
	}
	cJSON_Delete(root);
	return NULL;
}

/* {"error": {...}} from the gateway. Returns 1 when there is none, 0 when
 * r holds it, -EBADMSG when it is malformed. */
static int parse_error(const cJSON *root, struct etcd_watch_resp *r, char *err, size_t errlen)
{
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
	const char *m = "";
	if (!e || cJSON_IsNull(e))
		return 1;
	if (!cJSON_IsObject(e) || get_str(e, "message", &m)) {
		err_printf(err, errlen, "watch response has a malformed \"error\"");
		return -EBADMSG;
	}
	if (get_i64(e, "http_code", &r->error_code) || !r->error_code)
		get_i64(e, "code", &r->error_code);
	snprintf(r->error_msg, sizeof(r->error_msg), "%s", *m ? m : "(no message)");
	r->kind = ETCD_RESP_ERROR;
	return 0;
}

/* An optional unsigned 64-bit field (the gateway writes uint64 as a string);
 * 0 when it is absent or not a number. */
static uint64_t get_u64_opt(const cJSON *obj, const char *name)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
	if (cJSON_IsString(it) && it->valuestring[0] >= '0' && it->valuestring[0] <= '9') {
		char *end;
		errno = 0;
		unsigned long long v = strtoull(it->valuestring, &end, 10);
		return errno || *end ? 0 : (uint64_t)v;
	}
	if (cJSON_IsNumber(it) && it->valuedouble >= 0 && it->valuedouble < 9007199254740992.0)
		return (uint64_t)it->valuedouble;
	return 0;
}

/* The result's header and scalar fields. Returns 0 or -EBADMSG. */
static int parse_result_fields(const cJSON *res, struct etcd_watch_resp *r, bool *created,
			       bool *canceled, char *err, size_t errlen)
{
	const cJSON *hdr = cJSON_GetObjectItemCaseSensitive(res, "header");
	const char *reason;
	if (hdr && !cJSON_IsNull(hdr)) {
		if (!cJSON_IsObject(hdr) || get_i64(hdr, "revision", &r->header_rev)) {
			err_printf(err, errlen, "watch response has a malformed header");
			return -EBADMSG;
		}
		r->cluster_id = get_u64_opt(hdr, "cluster_id");
	}
	if (get_i64(res, "watch_id", &r->watch_id) || get_bool(res, "created", created) ||
	    get_bool(res, "canceled", canceled) || get_bool(res, "fragment", &r->fragment) ||
	    get_i64(res, "compact_revision", &r->compact_rev) ||
	    get_str(res, "cancel_reason", &reason)) {
		err_printf(err, errlen, "watch response has a field of the wrong type");
		return -EBADMSG;
	}
	if (r->header_rev < 0 || r->compact_rev < 0) {
		err_printf(err, errlen, "watch response has a negative revision");
		return -EBADMSG;
	}
	snprintf(r->cancel_reason, sizeof(r->cancel_reason), "%s", reason);
	return 0;
}

/* The result's events: bad ones are counted and skipped. Returns 0,
 * -EBADMSG or -ENOMEM. */
static int parse_events(const cJSON *res, struct etcd_watch_resp *r, char *err, size_t errlen)
{
	const cJSON *evs = cJSON_GetObjectItemCaseSensitive(res, "events");
	if (!evs || cJSON_IsNull(evs))
		return 0;
	if (!cJSON_IsArray(evs)) {
		err_printf(err, errlen, "watch response \"events\" is not an array");
		return -EBADMSG;
	}
	int n = cJSON_GetArraySize(evs);
	if (n > 0 && !(r->ev = calloc((size_t)n, sizeof(*r->ev)))) {
		err_printf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	const cJSON *it;
	cJSON_ArrayForEach(it, evs)
	{
		const char *why = "";
		int erc = parse_event(it, &r->ev[r->nev], &why);
		if (erc == -ENOMEM) {
			err_printf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		if (erc) {
			if (!r->bad_events)
				snprintf(r->bad_reason, sizeof(r->bad_reason), "%s", why);
			r->bad_events++;
			continue;
		}
		r->nev++;
	}
	return 0;
}

int etcd_watch_parse(const char *msg, size_t len, struct etcd_watch_resp *r, char *err,
		     size_t errlen)
{
	int rc;
	bool created, canceled;

	memset(r, 0, sizeof(*r));
	if (!msg || len == 0) {
		err_printf(err, errlen, "empty watch response");
		return -EBADMSG;
	}
	cJSON *root = parse_object(msg, len, err, errlen);
	if (!root)
		return -EBADMSG;
	r->json = root;
	rc = parse_error(root, r, err, errlen);
	if (rc <= 0) {
		if (rc == 0)
			return 0;
		goto bad;
	}
	const cJSON *res = cJSON_GetObjectItemCaseSensitive(root, "result");
	if (!cJSON_IsObject(res)) {
		err_printf(err, errlen, "watch response has no \"result\" object");
		rc = -EBADMSG;
		goto bad;
	}
	rc = parse_result_fields(res, r, &created, &canceled, err, errlen);
	if (!rc)
		rc = parse_events(res, r, err, errlen);
	if (rc)
		goto bad;
	if (r->compact_rev > 0)
		r->kind = ETCD_RESP_COMPACTED;
	else if (canceled)
		r->kind = ETCD_RESP_CANCELED;
	else if (created)
		r->kind = ETCD_RESP_CREATED;
	else if (r->nev || r->bad_events || r->fragment)
		r->kind = ETCD_RESP_EVENTS;
	else
		r->kind = ETCD_RESP_PROGRESS;
	return 0;

bad:
	etcd_watch_resp_free(r);
	return rc;
}

static void kv_fields(struct strbuf *sb, const struct etcd_kv *kv)
{
	sb_puts(sb, "\"value\":\"");
	sb_add(sb, kv->value_b64, kv->value_b64_len);
	sb_puts(sb, "\",\"create_revision\":");
	sb_i64(sb, kv->create_rev);
	sb_puts(sb, ",\"mod_revision\":");
	sb_i64(sb, kv->mod_rev);
	sb_puts(sb, ",\"version\":");
	sb_i64(sb, kv->version);
	sb_puts(sb, ",\"lease\":");
	sb_i64(sb, kv->lease);
}

void etcd_event_json(struct strbuf *sb, const struct etcd_event *e)
{
	sb_puts(sb, "{\"key\":");
	sb_json_str(sb, e->key, e->key_len);
	if (!utf8_valid(e->key, e->key_len)) {
		sb_puts(sb, ",\"key_base64\":\"");
		sb_base64(sb, e->key, e->key_len);
		sb_putc(sb, '"');
	}
	sb_putc(sb, ',');
	kv_fields(sb, &e->kv);
	if (e->has_prev) {
		sb_puts(sb, ",\"prev_kv\":{");
		kv_fields(sb, &e->prev);
		sb_putc(sb, '}');
	}
	sb_putc(sb, '}');
}

void etcd_resource_type(const char *key, size_t key_len, char *out, size_t cap)
{
	static const char pre[] = "/registry/";
	const size_t pl = sizeof(pre) - 1;

	if (!cap)
		return;
	out[0] = '\0';
	if (key_len <= pl || memcmp(key, pre, pl) != 0)
		return;
	const char *s = key + pl;
	const char *end = key + key_len;
	const char *nul = memchr(s, '\0', (size_t)(end - s));
	if (nul)
		end = nul;
	const char *slash = memchr(s, '/', (size_t)(end - s));
	const char *seg_end = slash ? slash : end;
	/* An API group ("crd.projectcalico.org") is followed by the resource. */
	if (slash && memchr(s, '.', (size_t)(slash - s))) {
		const char *s2 = slash + 1;
		const char *slash2 = memchr(s2, '/', (size_t)(end - s2));
		if (slash2 && slash2 > s2)
			seg_end = slash2;
	}
	size_t n = (size_t)(seg_end - s);
	if (n >= cap)
		n = cap - 1;
	memcpy(out, s, n);
	out[n] = '\0';
}

void etcd_watch_body(struct strbuf *sb, const char *prefix, size_t prefix_len, int64_t start_rev)
{
	/* range_end = the prefix with its last byte below 0xff incremented and
	 * what follows it cut (etcd's GetPrefixRangeEnd); "\0" = to the end of
	 * the keyspace. An empty prefix watches every key: key "\0". */
	unsigned char end[4096];
	size_t el = prefix_len < sizeof(end) ? prefix_len : sizeof(end);
	memcpy(end, prefix, el);
	while (el > 0 && end[el - 1] == 0xff)
		el--;
	if (el > 0)
		end[el - 1]++;
	else
		end[el++] = 0;

	sb_puts(sb, "{\"create_request\":{\"key\":\"");
	if (prefix_len)
		sb_base64(sb, prefix, prefix_len);
	else
		sb_puts(sb, "AA==");
	sb_puts(sb, "\",\"range_end\":\"");
	sb_base64(sb, end, el);
	sb_putc(sb, '"');
	if (start_rev > 0) {
		sb_puts(sb, ",\"start_revision\":\"");
		sb_i64(sb, start_rev);
		sb_putc(sb, '"');
	}
	sb_puts(sb, ",\"prev_kv\":true,\"progress_notify\":true,\"fragment\":true}}");
}
