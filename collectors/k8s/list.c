/* SPDX-License-Identifier: Apache-2.0 */
/* The k8s collector's LIST: paged, then relisted after a 410 (or a 400 for a
 * stored resourceVersion), with DELETED events for the objects that went
 * away in between. The list's resourceVersion becomes the stored cursor
 * once the sink has every item (commit.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collectors/k8s/internal.h"
#include "util/strbuf.h"

/* ---- LIST ---- */

static int list_item(void *ctx, const char *obj, size_t len, const struct k8s_objmeta *m)
{
	struct k8s_res *r = ctx;
	struct seen_entry *e = seen_get(&r->seen, m->uid);
	if (e)
		e->gen = r->gen; /* still there */
	if (seen_has(&r->seen, m->uid, m->rv)) {
		atomic_fetch_add(&r->duplicates, 1);
		return 0;
	}
	if (len > r->k->max_msg) {
		/* The same limit as for a watch line: skipped and counted. */
		atomic_fetch_add(&r->k->base.n.oversize, 1);
		collector_error(&r->k->base,
				"%s: skipped %s/%s from the list: %zu bytes is over %zu",
				r->def->name, m->ns, m->name, len, r->k->max_msg);
		k8s_remember(r, m, false);
		return 0;
	}
	int rc =
	    k8s_emit(r, e && !e->deleted ? "MODIFIED" : "ADDED", obj, len, m, "list", NULL, NULL);
	if (rc < 0)
		return rc;
	if (rc == 0)
		k8s_remember(r, m, false);
	return 0;
}

static int list_page(void *ctx, const char *msg, size_t len)
{
	struct k8s_res *r = ctx;
	struct k8s_list_info info;
	char why[160];
	int rc = k8s_parse_list(msg, len, list_item, r, &info, why, sizeof(why));
	if (rc == -EBADMSG) {
		k8s_log_parse_error(r, "list response", why);
		r->list_err = -EBADMSG;
		return rc;
	}
	if (rc) {
		r->list_err = rc;
		return rc;
	}
	if (info.bad_items)
		atomic_fetch_add(&r->k->base.n.parse_errors, info.bad_items);
	if (!r->list_rv[0])
		snprintf(r->list_rv, sizeof(r->list_rv), "%s", info.rv);
	free(r->list_cont);
	r->list_cont = info.cont;
	r->got_msg = true;
	return 0;
}

/* Emits a DELETED for every object that a complete relist did not return
 * and whose deletion was not seen. Returns 0 or k8s_emit()'s error. */
static int emit_vanished(struct k8s_res *r)
{
	struct seen_map *m = &r->seen;
	struct strbuf sb = STRBUF_INIT;
	int rc = 0;
	for (size_t i = 0; m->b && i < m->nb && !rc; i++)
		for (struct seen_entry *e = m->b[i]; e && !rc; e = e->next) {
			if (e->gen == r->gen || e->deleted)
				continue;
			struct k8s_objmeta om;
			snprintf(om.name, sizeof(om.name), "%s", e->name);
			snprintf(om.ns, sizeof(om.ns), "%s", e->ns);
			snprintf(om.uid, sizeof(om.uid), "%s", e->uid);
			snprintf(om.rv, sizeof(om.rv), "%s", r->list_rv);
			sb_reset(&sb);
			sb_puts(&sb, "{\"kind\":");
			sb_json_cstr(&sb,
				     r->def->meta_only ? "PartialObjectMetadata" : r->def->kind);
			sb_puts(&sb, ",\"apiVersion\":");
			sb_json_cstr(&sb,
				     r->def->meta_only ? "meta.k8s.io/v1" : r->def->api_version);
			sb_puts(&sb, ",\"metadata\":{\"name\":");
			sb_json_cstr(&sb, e->name);
			if (e->ns[0]) {
				sb_puts(&sb, ",\"namespace\":");
				sb_json_cstr(&sb, e->ns);
			}
			sb_puts(&sb, ",\"uid\":");
			sb_json_cstr(&sb, e->uid);
			sb_puts(&sb, ",\"resourceVersion\":");
			sb_json_cstr(&sb, r->list_rv);
			sb_puts(&sb, "}}");
			if (sb.err) {
				rc = sb.err;
				break;
			}
			/* An object vanishes once: the id does not depend on the
			 * list that noticed it. */
			int erc =
			    k8s_emit(r, "DELETED", sb.buf, sb.len, &om, "list", NULL, "vanished");
			if (erc < 0) {
				rc = erc;
				break;
			}
			e->deleted = true;
			m->dirty = true;
			atomic_fetch_add(&r->tombstones, 1);
		}
	sb_free(&sb);
	return rc;
}

int k8s_do_list(struct k8s_res *r, long *http)
{
	struct k8s *k = r->k;
	struct strbuf url = STRBUF_INIT;
	unsigned limit = K8S_LIST_LIMIT;
	int rc = 0;
	*http = 0;
	r->gen++;
	r->list_rv[0] = '\0';
	free(r->list_cont);
	r->list_cont = NULL;
	atomic_fetch_add(&r->relists, 1);
	do {
		k8s_build_url(r, &url, false, limit, 0);
		if (url.err) {
			rc = url.err;
			break;
		}
		struct watch_result res;
		char *tok = k8s_token_get(k, false);
		r->list_err = 0;
		r->got_msg = false;
		rc = k8s_run(r, url.buf, false, 0, list_page, tok, &res);
		k8s_token_free(tok);
		*http = res.http_status;
		if (rc == 0 && res.oversize && !r->got_msg) {
			if (limit > 1) {
				limit /= 2; /* the page was too big: ask for fewer items */
				watch_result_free(&res);
				continue;
			}
			collector_error(&k->base,
					"%s: one object is larger than %zu bytes; cannot list",
					r->def->name, (size_t)K8S_LIST_MAX_BODY);
			rc = -EFBIG;
		} else if (rc == 0 && !r->got_msg) {
			k8s_log_parse_error(r, "list response", "an empty body");
			rc = -EBADMSG;
		} else if (rc && rc != -ECANCELED && rc != -EAGAIN && r->list_err != -EBADMSG) {
			atomic_fetch_add(&k->base.n.errors, 1);
			if (res.http_status != 401 && res.http_status != 410)
				collector_error(&k->base, "%s: list %s%s: %s", r->def->name,
						k->server, r->def->path, res.error);
		}
		watch_result_free(&res);
		if (rc)
			break;
	} while (r->list_cont && !k8s_res_stopped(r));
	sb_free(&url);
	if (rc == 0 && k8s_res_stopped(r))
		rc = -ECANCELED;
	if (rc == 0)
		rc = emit_vanished(r);
	if (rc == 0) {
		seen_sweep(&r->seen, r->gen, NULL, NULL);
		rc = k8s_list_done(r, r->list_rv);
		cursor_flush(&r->cur);
		k8s_save_seen(r, true);
	}
	free(r->list_cont);
	r->list_cont = NULL;
	return rc;
}
