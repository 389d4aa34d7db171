/* SPDX-License-Identifier: Apache-2.0 */
/* The pod cache at start. A collector that resumes from its cursor watches
 * from there and does no LIST, so the pod metadata cache (kernel events'
 * pod names) would stay empty until pods change: one paged LIST of pods at
 * start feeds the pod_update hook. It emits nothing, and moves neither the
 * cursor nor the seen set. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "collectors/k8s/internal.h"
#include "util/strbuf.h"

static int prime_item(void *ctx, const char *obj, size_t len, const struct k8s_objmeta *m)
{
	const struct collector_hooks *h = ((struct k8s_res *)ctx)->k->hooks;

	(void)obj;
	(void)len;
	if (m->uid[0] && m->name[0])
		h->pod_update(h->ctx, m->uid, m->ns, m->name, false);
	return 0;
}

static int prime_page(void *ctx, const char *msg, size_t len)
{
	struct k8s_res *r = ctx;
	struct k8s_list_info info;
	char why[160];
	int rc = k8s_parse_list(msg, len, prime_item, r, &info, why, sizeof(why));

	if (rc == -EBADMSG)
		k8s_log_parse_error(r, "pod list", why);
	if (rc)
		return rc;
	free(r->list_cont);
	r->list_cont = info.cont;
	r->got_msg = true;
	return 0;
}

int k8s_prime_pods(struct k8s_res *r)
{
	struct k8s *k = r->k;
	const struct collector_hooks *h = k->hooks;
	struct strbuf url = STRBUF_INIT;
	int rc = 0;

	if (!h || !h->pod_update || strcmp(r->def->name, "pods"))
		return 0;
	free(r->list_cont);
	r->list_cont = NULL;
	do {
		struct watch_result res;
		char *tok;

		k8s_build_url(r, &url, false, K8S_LIST_LIMIT, 0);
		if (url.err) {
			rc = url.err;
			break;
		}
		tok = k8s_token_get(k, false);
		r->got_msg = false;
		rc = k8s_run(r, url.buf, false, 0, prime_page, tok, &res);
		k8s_token_free(tok);
		if (rc && rc != -ECANCELED)
			collector_error(&k->base, "pods: listing for the pod cache: %s",
					res.error[0] ? res.error : "failed");
		watch_result_free(&res);
	} while (!rc && r->list_cont && !k8s_stopped(k));
	free(r->list_cont);
	r->list_cont = NULL;
	sb_free(&url);
	return rc;
}
