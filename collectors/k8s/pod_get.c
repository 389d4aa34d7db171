// SPDX-License-Identifier: Apache-2.0
/* One pod from the API server, for `tapio trace --pod` (k8s.h): the same
 * cluster choice and credentials as the collector (auth.c), one GET. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collectors/k8s/internal.h"
#include "collectors/k8s/k8s.h"
#include "util/strbuf.h"

static int keep_body(void *ctx, const char *msg, size_t len)
{
	struct strbuf *sb = ctx;
	sb_reset(sb);
	sb_add(sb, msg, len);
	return sb->err;
}

static void free_auth(struct k8s *k)
{
	char **f[] = {&k->server,   &k->source,	  &k->ca_file, &k->ca_pem,    &k->cert_file,
		      &k->cert_pem, &k->key_file, &k->key_pem, &k->token_file};
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		free(*f[i]);
		*f[i] = NULL;
	}
	if (k->token) {
		explicit_bzero(k->token, strlen(k->token));
		free(k->token);
		k->token = NULL;
	}
}

/* The server's reason from a Status body, or "". */
static void status_message(const char *body, size_t len, char *out, size_t outlen)
{
	out[0] = '\0';
	cJSON *j = body ? cJSON_ParseWithLength(body, len) : NULL;
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
	if (cJSON_IsString(m))
		snprintf(out, outlen, "%s", m->valuestring);
	cJSON_Delete(j);
}

int k8s_pod_get(const struct k8s_options *o, const char *ns, const char *name, char **json,
		size_t *len, char *err, size_t errlen)
{
	struct k8s k;
	memset(&k, 0, sizeof(k));
	*json = NULL;
	int rc = k8s_setup_auth(&k, o, err, errlen);
	if (rc) {
		free_auth(&k);
		return rc == -ENOMEM ? rc : -EHOSTUNREACH;
	}
	struct strbuf url = STRBUF_INIT, body = STRBUF_INIT;
	sb_puts(&url, k.server);
	sb_puts(&url, "/api/v1/namespaces/");
	k8s_url_escape(&url, ns);
	sb_puts(&url, "/pods/");
	k8s_url_escape(&url, name);
	struct watch_req req = {
	    .url = url.buf,
	    .accept = ACCEPT_JSON,
	    .bearer_token = k.token,
	    .tls = &k.tls,
	    .framing = FRAME_WHOLE,
	    .max_msg = K8S_LIST_MAX_BODY,
	    .connect_timeout_ms = 5000,
	    .idle_timeout_s = 10,
	    .on_msg = keep_body,
	    .ctx = &body,
	};
	struct watch_result res;
	rc = url.err ? -ENOMEM : watch_run(&req, &res);
	if (rc == -EPROTO && res.http_status == 404) {
		err_printf(err, errlen, "pod %s/%s not found (%s)", ns, name, k.server);
		rc = -ENOENT;
	} else if (rc == -EPROTO) {
		char why[256];
		status_message(res.err_body, res.err_body_len, why, sizeof(why));
		err_printf(err, errlen, "the API server %s answered %ld for pod %s/%s%s%s",
			   k.server, res.http_status, ns, name, why[0] ? ": " : "", why);
		rc = -EACCES;
	} else if (rc) {
		err_printf(err, errlen, "cannot reach the API server %s (%s): %s", k.server,
			   k.source ? k.source : "", res.error[0] ? res.error : strerror(-rc));
		rc = -EHOSTUNREACH;
	} else {
		*json = body.buf;
		*len = body.len;
		body.buf = NULL;
	}
	if (rc != -ENOMEM && url.err == 0)
		watch_result_free(&res);
	sb_free(&url);
	sb_free(&body);
	free_auth(&k);
	return rc;
}
