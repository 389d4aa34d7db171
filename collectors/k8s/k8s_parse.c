/* SPDX-License-Identifier: Apache-2.0 */
/* Watch-line, List and metadata-only parsing. cJSON does all the tokenising:
 * a top-level object is walked member by member with
 * cJSON_ParseWithLengthOpts, which also says where each value ends, so the
 * bytes of "object" (or of each List item) can be handed on untouched. */
#include "collectors/k8s/k8s_parse.h"
#include "util/strbuf.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LAST_APPLIED "kubectl.kubernetes.io/last-applied-configuration"

const char *k8s_ev_name(enum k8s_ev t)
{
	switch (t) {
	case K8S_EV_ADDED:
		return "ADDED";
	case K8S_EV_MODIFIED:
		return "MODIFIED";
	case K8S_EV_DELETED:
		return "DELETED";
	case K8S_EV_BOOKMARK:
		return "BOOKMARK";
	case K8S_EV_ERROR:
		return "ERROR";
	}
	return "UNKNOWN";
}

static const char *skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* Parses one JSON value at *p (after whitespace). On success returns the
 * item, sets *vstart and *vend to its bytes and *p past it. NULL when invalid. */
static cJSON *parse_value(const char **p, const char *end, const char **vstart, const char **vend)
{
	const char *s = skip_ws(*p, end);
	if (s >= end)
		return NULL;
	const char *e = NULL;
	cJSON *it = cJSON_ParseWithLengthOpts(s, (size_t)(end - s), &e, 0);
	if (!it || !e || e > end || e <= s) {
		cJSON_Delete(it);
		return NULL;
	}
	*vstart = s;
	*vend = e;
	*p = e;
	return it;
}

/* Walks the members of the object at *p. For each, calls fn(key, value item,
 * value bytes); fn returns 1 to keep the item (it takes ownership), 0 to let
 * it be freed, or a negative errno to stop. Returns 0 (with *p after the
 * closing brace) or -EBADMSG / the callback's error. */
typedef int (*member_fn)(void *ctx, const char *key, cJSON *val, const char *vs, const char *ve);

static int walk_object(const char **pp, const char *end, member_fn fn, void *ctx)
{
	const char *p = skip_ws(*pp, end);
	if (p >= end || *p != '{')
		return -EBADMSG;
	p = skip_ws(p + 1, end);
	if (p < end && *p == '}') {
		*pp = p + 1;
		return 0;
	}
	for (;;) {
		const char *ks, *ke, *vs, *ve;
		cJSON *k = parse_value(&p, end, &ks, &ke);
		if (!k || !cJSON_IsString(k)) {
			cJSON_Delete(k);
			return -EBADMSG;
		}
		p = skip_ws(p, end);
		if (p >= end || *p != ':') {
			cJSON_Delete(k);
			return -EBADMSG;
		}
		p++;
		cJSON *v = parse_value(&p, end, &vs, &ve);
		if (!v) {
			cJSON_Delete(k);
			return -EBADMSG;
		}
		int rc = fn(ctx, k->valuestring, v, vs, ve);
		cJSON_Delete(k);
		if (rc <= 0)
			cJSON_Delete(v);
		if (rc < 0)
			return rc;
		p = skip_ws(p, end);
		if (p < end && *p == ',') {
			p++;
			continue;
		}
		if (p < end && *p == '}') {
			*pp = p + 1;
			return 0;
		}
		return -EBADMSG;
	}
}

/* Copies a string member into dst; returns false when it is present but not
 * a string or too long (empty/missing is fine: dst = ""). */
static bool copy_str(const cJSON *obj, const char *key, char *dst, size_t cap)
{
	dst[0] = '\0';
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (!v || cJSON_IsNull(v))
		return true;
	if (!cJSON_IsString(v) || !v->valuestring)
		return false;
	size_t n = strlen(v->valuestring);
	if (n >= cap)
		return false;
	memcpy(dst, v->valuestring, n + 1);
	return true;
}

/* Fills m from obj.metadata. Returns NULL or a reason. need_id: name, uid and
 * resourceVersion are required (else only resourceVersion). */
static const char *objmeta(const cJSON *obj, struct k8s_objmeta *m, bool need_id)
{
	memset(m, 0, sizeof(*m));
	if (!cJSON_IsObject(obj))
		return "the object is not a JSON object";
	const cJSON *md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
	if (!cJSON_IsObject(md))
		return "the object has no metadata";
	if (!copy_str(md, "name", m->name, sizeof(m->name)) ||
	    !copy_str(md, "namespace", m->ns, sizeof(m->ns)) ||
	    !copy_str(md, "uid", m->uid, sizeof(m->uid)) ||
	    !copy_str(md, "resourceVersion", m->rv, sizeof(m->rv)))
		return "a metadata field is not a string or is too long";
	if (!m->rv[0])
		return "the object has no metadata.resourceVersion";
	if (need_id && (!m->name[0] || !m->uid[0]))
		return "the object has no metadata.name or metadata.uid";
	return NULL;
}

struct line_ctx {
	cJSON *type, *object;
	const char *os, *oe;
	bool dup;
};

static int line_member(void *ctx, const char *key, cJSON *val, const char *vs, const char *ve)
{
	struct line_ctx *l = ctx;
	if (!strcmp(key, "type")) {
		if (l->type) {
			l->dup = true;
			return 0;
		}
		l->type = val;
		return 1;
	}
	if (!strcmp(key, "object")) {
		if (l->object) {
			l->dup = true;
			return 0;
		}
		l->object = val;
		l->os = vs;
		l->oe = ve;
		return 1;
	}
	return 0;
}

int k8s_parse_watch_line(const char *line, size_t len, struct k8s_watch_event *ev, char *err,
			 size_t errlen)
{
	memset(ev, 0, sizeof(*ev));
	struct line_ctx l = {0};
	const char *p = line, *end = line + len;
	int rc = -EBADMSG;
	if (!line) {
		err_printf(err, errlen, "empty line");
		return -EBADMSG;
	}
	int w = walk_object(&p, end, line_member, &l);
	if (w == -ENOMEM) {
		err_printf(err, errlen, "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	if (w) {
		err_printf(err, errlen, "not a JSON object");
		goto out;
	}
	if (skip_ws(p, end) != end) {
		err_printf(err, errlen, "bytes after the JSON object");
		goto out;
	}
	if (l.dup) {
		err_printf(err, errlen, "duplicate type or object key");
		goto out;
	}
	if (!cJSON_IsString(l.type) || !l.object) {
		err_printf(err, errlen, "no type or no object");
		goto out;
	}
	const char *t = l.type->valuestring;
	if (!strcmp(t, "ADDED"))
		ev->type = K8S_EV_ADDED;
	else if (!strcmp(t, "MODIFIED"))
		ev->type = K8S_EV_MODIFIED;
	else if (!strcmp(t, "DELETED"))
		ev->type = K8S_EV_DELETED;
	else if (!strcmp(t, "BOOKMARK"))
		ev->type = K8S_EV_BOOKMARK;
	else if (!strcmp(t, "ERROR"))
		ev->type = K8S_EV_ERROR;
	else {
		err_printf(err, errlen, "unknown event type");
		goto out;
	}
	ev->obj = l.os;
	ev->obj_len = (size_t)(l.oe - l.os);
	if (ev->type == K8S_EV_ERROR) {
		if (!cJSON_IsObject(l.object)) {
			err_printf(err, errlen, "ERROR without a Status object");
			goto out;
		}
		const cJSON *code = cJSON_GetObjectItemCaseSensitive(l.object, "code");
		if (cJSON_IsNumber(code) && code->valuedouble >= 0 && code->valuedouble < 1000)
			ev->code = (long)code->valuedouble;
		const cJSON *r = cJSON_GetObjectItemCaseSensitive(l.object, "reason");
		if (cJSON_IsString(r))
			snprintf(ev->reason, sizeof(ev->reason), "%s", r->valuestring);
		const cJSON *m = cJSON_GetObjectItemCaseSensitive(l.object, "message");
		if (cJSON_IsString(m))
			snprintf(ev->message, sizeof(ev->message), "%s", m->valuestring);
		rc = 0;
		goto out;
	}
	const char *why = objmeta(l.object, &ev->meta, ev->type != K8S_EV_BOOKMARK);
	if (why) {
		err_printf(err, errlen, "%s %s", t, why);
		goto out;
	}
	rc = 0;
out:
	cJSON_Delete(l.type);
	cJSON_Delete(l.object);
	if (rc)
		ev->obj = NULL, ev->obj_len = 0;
	return rc;
}

/* ---- List ---- */

struct list_ctx {
	k8s_item_fn fn;
	void *ctx;
	struct k8s_list_info *info;
	bool have_items, have_meta;
	int cb_rc;
	const char *why;
};

static int list_items(struct list_ctx *lc, const char *s, const char *e)
{
	const char *p = skip_ws(s, e);
	if (p >= e || *p != '[')
		return -EBADMSG;
	p = skip_ws(p + 1, e);
	if (p < e && *p == ']')
		return 0;
	for (;;) {
		const char *vs, *ve;
		cJSON *it = parse_value(&p, e, &vs, &ve);
		if (!it)
			return -EBADMSG;
		struct k8s_objmeta m;
		if (objmeta(it, &m, true)) {
			lc->info->bad_items++;
		} else {
			int rc = lc->fn(lc->ctx, vs, (size_t)(ve - vs), &m);
			if (rc) {
				cJSON_Delete(it);
				lc->cb_rc = rc;
				return rc;
			}
		}
		cJSON_Delete(it);
		p = skip_ws(p, e);
		if (p < e && *p == ',') {
			p++;
			continue;
		}
		if (p < e && *p == ']')
			return 0;
		return -EBADMSG;
	}
}

static int list_member(void *ctx, const char *key, cJSON *val, const char *vs, const char *ve)
{
	struct list_ctx *lc = ctx;
	if (!strcmp(key, "metadata")) {
		if (lc->have_meta || !cJSON_IsObject(val))
			return -EBADMSG;
		lc->have_meta = true;
		if (!copy_str(val, "resourceVersion", lc->info->rv, sizeof(lc->info->rv))) {
			lc->why = "metadata.resourceVersion is not a string or too long";
			return -EBADMSG;
		}
		const cJSON *c = cJSON_GetObjectItemCaseSensitive(val, "continue");
		if (cJSON_IsString(c) && c->valuestring[0]) {
			if (!(lc->info->cont = strdup(c->valuestring)))
				return -ENOMEM;
		}
		return 0;
	}
	if (!strcmp(key, "items")) {
		if (lc->have_items)
			return -EBADMSG;
		lc->have_items = true;
		if (cJSON_IsNull(val))
			return 0;
		if (!cJSON_IsArray(val))
			return -EBADMSG;
		/* Walk the raw bytes again so each item's span is known. */
		return list_items(lc, vs, ve);
	}
	return 0;
}

int k8s_parse_list(const char *body, size_t len, k8s_item_fn fn, void *ctx,
		   struct k8s_list_info *info, char *err, size_t errlen)
{
	memset(info, 0, sizeof(*info));
	struct list_ctx lc = {.fn = fn, .ctx = ctx, .info = info};
	const char *p = body, *end = body ? body + len : body;
	int rc = body ? walk_object(&p, end, list_member, &lc) : -EBADMSG;
	if (lc.cb_rc) {
		rc = lc.cb_rc;
	} else if (rc == -ENOMEM) {
		err_printf(err, errlen, "out of memory");
	} else if (rc) {
		err_printf(err, errlen, "list body: %s",
			   lc.why ? lc.why : "not a valid JSON List object");
	} else if (skip_ws(p, end) != end) {
		err_printf(err, errlen, "list body: bytes after the JSON object");
		rc = -EBADMSG;
	} else if (!lc.have_items) {
		err_printf(err, errlen, "list body: no items");
		rc = -EBADMSG;
	} else if (!info->rv[0]) {
		err_printf(err, errlen, "list body: no metadata.resourceVersion");
		rc = -EBADMSG;
	}
	if (rc) {
		free(info->cont);
		info->cont = NULL;
	}
	return rc;
}

/* ---- metadata only ---- */

int k8s_metadata_only(const char *obj, size_t len, char **out, size_t *outlen)
{
	*out = NULL;
	*outlen = 0;
	if (!obj)
		return -EBADMSG;
	cJSON *o = cJSON_ParseWithLength(obj, len);
	if (!o)
		return -EBADMSG;
	int rc = -EBADMSG;
	cJSON *md = cJSON_GetObjectItemCaseSensitive(o, "metadata");
	if (!cJSON_IsObject(o) || !cJSON_IsObject(md))
		goto out;
	/* Clean: kind, apiVersion and metadata, each once; metadata.annotations
	 * at most once and without the last-applied copy. Duplicate keys count
	 * as unclean since other JSON readers take the last one. */
	bool clean = true;
	int nkind = 0, napi = 0, nmeta = 0, nann = 0;
	for (cJSON *it = o->child; it; it = it->next) {
		if (!strcmp(it->string, "kind"))
			nkind++;
		else if (!strcmp(it->string, "apiVersion"))
			napi++;
		else if (!strcmp(it->string, "metadata"))
			nmeta++;
		else
			clean = false;
	}
	for (cJSON *it = md->child; it; it = it->next)
		if (!strcmp(it->string, "annotations")) {
			nann++;
			if (cJSON_GetObjectItemCaseSensitive(it, LAST_APPLIED))
				clean = false;
		}
	if (nkind > 1 || napi > 1 || nmeta > 1 || nann > 1)
		clean = false;
	if (clean) {
		rc = 0;
		goto out;
	}
	cJSON *meta = cJSON_DetachItemFromObjectCaseSensitive(o, "metadata");
	/* Keep the first annotations object only, without the last-applied copy
	 * (every duplicate of it removed). */
	cJSON *a = cJSON_DetachItemFromObjectCaseSensitive(meta, "annotations");
	while (cJSON_GetObjectItemCaseSensitive(meta, "annotations"))
		cJSON_DeleteItemFromObjectCaseSensitive(meta, "annotations");
	if (cJSON_IsObject(a)) {
		while (cJSON_GetObjectItemCaseSensitive(a, LAST_APPLIED))
			cJSON_DeleteItemFromObjectCaseSensitive(a, LAST_APPLIED);
	}
	if (a)
		cJSON_AddItemToObject(meta, "annotations", a);
	cJSON *n = cJSON_CreateObject();
	if (!n || !cJSON_AddStringToObject(n, "kind", "PartialObjectMetadata") ||
	    !cJSON_AddStringToObject(n, "apiVersion", "meta.k8s.io/v1")) {
		cJSON_Delete(n);
		cJSON_Delete(meta);
		rc = -ENOMEM;
		goto out;
	}
	cJSON_AddItemToObject(n, "metadata", meta);
	char *s = cJSON_PrintUnformatted(n);
	cJSON_Delete(n);
	if (!s) {
		rc = -ENOMEM;
		goto out;
	}
	*out = s;
	*outlen = strlen(s);
	rc = 1;
out:
	cJSON_Delete(o);
	return rc;
}
