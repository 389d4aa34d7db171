/* SPDX-License-Identifier: Apache-2.0 */
/* The k8s collector's connection settings: the kubeconfig or the in-cluster
 * serviceaccount, and the bearer token (re-read from its file). */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "collectors/k8s/internal.h"
#include "collectors/k8s/kubeconfig.h"
#include "core/options.h"
#include "util/clock.h"
#include "util/fileio.h"
#include "util/log.h"
#include "util/strbuf.h"

char *k8s_read_file(const char *path, size_t max, size_t *lenp)
{
	struct strbuf sb = STRBUF_INIT;
	int rc = file_read_all(AT_FDCWD, path, max, 0, &sb, NULL);
	if (rc) {
		sb_free(&sb);
		errno = -rc;
		return NULL;
	}
	if (!sb.buf && !(sb.buf = strdup(""))) {
		errno = ENOMEM;
		return NULL;
	}
	if (lenp)
		*lenp = sb.len;
	return sb.buf;
}

static void trim(char *s)
{
	size_t n = strlen(s);
	while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
}

char *k8s_read_token(const char *path)
{
	char *t = k8s_read_file(path, K8S_TOKEN_MAX, NULL);
	if (!t)
		return NULL;
	trim(t);
	for (const char *p = t; *p; p++)
		if ((unsigned char)*p < ' ' || *p == 0x7f) {
			explicit_bzero(t, strlen(t));
			free(t);
			errno = EINVAL;
			return NULL;
		}
	return t;
}

char *k8s_token_get(struct k8s *k, bool force)
{
	pthread_mutex_lock(&k->tok_lock);
	if (k->token_file &&
	    (force || !k->token || mono_ns() - k->token_ns >= K8S_TOKEN_REREAD_NS)) {
		char *t = k8s_read_token(k->token_file);
		if (t) {
			if (k->token) {
				explicit_bzero(k->token, strlen(k->token));
				free(k->token);
			}
			k->token = t;
		} else {
			collector_error(
			    &k->base, "cannot read token file %s: %s (keeping the previous token)",
			    k->token_file, strerror(errno));
		}
		k->token_ns = mono_ns();
	}
	char *c = k->token ? strdup(k->token) : NULL;
	pthread_mutex_unlock(&k->tok_lock);
	return c;
}

/* The token in use now, without re-reading (malloc'd copy or NULL). */
static char *token_peek(struct k8s *k)
{
	pthread_mutex_lock(&k->tok_lock);
	char *c = k->token ? strdup(k->token) : NULL;
	pthread_mutex_unlock(&k->tok_lock);
	return c;
}

void k8s_token_free(char *t)
{
	if (t) {
		explicit_bzero(t, strlen(t));
		free(t);
	}
}

bool k8s_on_unauthorized(struct k8s_res *r, const char *what)
{
	struct k8s *k = r->k;
	char *before = token_peek(k);
	char *after = k8s_token_get(k, true);
	bool changed =
	    (before == NULL) != (after == NULL) || (before && after && strcmp(before, after));
	k8s_token_free(before);
	k8s_token_free(after);
	collector_error(&k->base, "%s: %s: HTTP 401 Unauthorized from %s%s", r->def->name, what,
			k->server,
			!k->token_file ? "; no token file to re-read"
			: changed      ? "; re-read the token file, it changed"
				       : "; re-read the token file, it did not change");
	return changed;
}

/* The kubeconfig path to use, or NULL for in-cluster / none. malloc'd.
 * The order is controller-runtime's: --k8s-kubeconfig, KUBECONFIG, in-cluster,
 * ~/.kube/config. */
char *k8s_kubeconfig_path(const struct k8s_options *o, bool *explicit_)
{
	*explicit_ = false;
	if (o && o->kubeconfig && *o->kubeconfig) {
		*explicit_ = true;
		return strdup(o->kubeconfig);
	}
	const char *kc = getenv("KUBECONFIG");
	if (kc && *kc) {
		*explicit_ = true;
		return strndup(kc, strcspn(kc, ":"));
	}
	if (getenv("KUBERNETES_SERVICE_HOST") && *getenv("KUBERNETES_SERVICE_HOST"))
		return NULL;
	const char *home = getenv("HOME");
	if (!home || !*home)
		return NULL;
	char *p;
	if (asprintf(&p, "%s/.kube/config", home) < 0)
		return NULL;
	if (access(p, R_OK)) {
		free(p);
		return NULL;
	}
	return p;
}

static bool loopback_url(const char *u)
{
	const char *h = strstr(u, "://");
	h = h ? h + 3 : u;
	return !strncmp(h, "127.", 4) || !strncmp(h, "localhost", 9) || !strncmp(h, "[::1]", 5);
}

static int from_kubeconfig(struct k8s *k, const struct k8s_options *o, const char *path, char *err,
			   size_t errlen)
{
	size_t len = 0;
	char *y = k8s_read_file(path, KUBECONFIG_MAX, &len);
	if (!y) {
		int e = errno;
		err_printf(err, errlen, "cannot read kubeconfig %s: %s", path, strerror(e));
		return e == EFBIG ? -EINVAL : -e;
	}
	struct kubeconfig kc;
	char why[256];
	int rc = kubeconfig_parse(y, len, NULL, &kc, why, sizeof(why));
	explicit_bzero(y, len);
	free(y);
	if (rc) {
		err_printf(err, errlen, "%s: %s", path, why);
		return rc;
	}
	char *pc = strdup(path);
	if (!pc || kubeconfig_resolve_paths(&kc, dirname(pc))) {
		free(pc);
		kubeconfig_free(&kc);
		return -ENOMEM;
	}
	free(pc);
	if (asprintf(&k->source, "kubeconfig %s (context %s)", path, kc.context) < 0)
		k->source = NULL;
	k->server = kc.server, kc.server = NULL;
	k->ca_file = kc.ca_file, kc.ca_file = NULL;
	k->ca_pem = kc.ca_pem, kc.ca_pem = NULL;
	k->cert_file = kc.cert_file, kc.cert_file = NULL;
	k->cert_pem = kc.cert_pem, kc.cert_pem = NULL;
	k->key_file = kc.key_file, kc.key_file = NULL;
	k->key_pem = kc.key_pem, kc.key_pem = NULL;
	k->token = kc.token, kc.token = NULL;
	k->token_file = kc.token_file, kc.token_file = NULL;
	if (kc.insecure_skip_tls_verify && !o->insecure)
		tlog(TLOG_WARN, "k8s",
		     "%s: insecure-skip-tls-verify is ignored: TLS verification stays on unless "
		     "--k8s-insecure is given",
		     path);
	kubeconfig_free(&kc);
	if (k->token && k->token_file) {
		/* kubectl prefers token; so do we, and the file is not re-read. */
		free(k->token_file);
		k->token_file = NULL;
	}
	return 0;
}

static int in_cluster(struct k8s *k, char *err, size_t errlen)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	const char *sa = getenv("TAPIO_K8S_SA_DIR");
	if (!sa || !*sa)
		sa = K8S_SA_DIR;
	if (!port || !*port)
		port = "443";
	if (strpbrk(host, "/?#@ \t\r\n") || strpbrk(port, "/?#@ \t\r\n")) {
		err_printf(err, errlen, "KUBERNETES_SERVICE_HOST/PORT is not a host and port");
		return -EINVAL;
	}
	bool v6 = strchr(host, ':') != NULL;
	if (asprintf(&k->server, "https://%s%s%s:%s", v6 ? "[" : "", host, v6 ? "]" : "", port) <
		0 ||
	    asprintf(&k->token_file, "%s/token", sa) < 0 ||
	    asprintf(&k->ca_file, "%s/ca.crt", sa) < 0 ||
	    !(k->source = strdup("in-cluster serviceaccount")))
		return -ENOMEM;
	return 0;
}

/* Picks the kubeconfig or the in-cluster serviceaccount. */
static int find_cluster(struct k8s *k, const struct k8s_options *o, char *err, size_t errlen)
{
	bool ex;
	char *path = k8s_kubeconfig_path(o, &ex);
	if (path) {
		int rc = from_kubeconfig(k, o, path, err, errlen);
		free(path);
		return rc;
	}
	if (getenv("KUBERNETES_SERVICE_HOST") && *getenv("KUBERNETES_SERVICE_HOST"))
		return in_cluster(k, err, errlen);
	err_printf(err, errlen,
		   "k8s: no cluster to watch: give --k8s-kubeconfig, set KUBECONFIG, or run in "
		   "a pod "
		   "(KUBERNETES_SERVICE_HOST)");
	return -ENOENT;
}

/* Checks that the credential files are readable, reads the token file and
 * refuses to send a token over plain http to another host. */
static int check_credentials(struct k8s *k, char *err, size_t errlen)
{
	const char *files[][2] = {{k->ca_file, "certificate authority"},
				  {k->cert_file, "client certificate"},
				  {k->key_file, "client key"}};
	for (size_t i = 0; i < 3; i++)
		if (files[i][0] && access(files[i][0], R_OK)) {
			int rc = -errno;
			err_printf(err, errlen, "%s: %s %s: %s", k->source, files[i][1],
				   files[i][0], strerror(errno));
			return rc;
		}
	if (k->token_file) {
		char *t = k8s_read_token(k->token_file);
		if (!t) {
			int rc = -errno;
			err_printf(err, errlen, "%s: token file %s: %s", k->source, k->token_file,
				   errno == EINVAL ? "has a control character" : strerror(errno));
			return rc;
		}
		k->token = t;
		k->token_ns = mono_ns();
	}
	if (!strncmp(k->server, "http://", 7) && (k->token || k->token_file) &&
	    !loopback_url(k->server)) {
		err_printf(err, errlen, "%s: refusing to send a bearer token over plain http to %s",
			   k->source, k->server);
		return -EINVAL;
	}
	return 0;
}

int k8s_setup_auth(struct k8s *k, const struct k8s_options *o, char *err, size_t errlen)
{
	int rc = find_cluster(k, o, err, errlen);
	if (!rc)
		rc = check_credentials(k, err, errlen);
	if (rc)
		return rc;
	k->tls = (struct watch_tls){
	    .ca_file = k->ca_file,
	    .ca_pem = k->ca_pem,
	    .cert_file = k->cert_file,
	    .cert_pem = k->cert_pem,
	    .key_file = k->key_file,
	    .key_pem = k->key_pem,
	    .insecure = o->insecure,
	};
	return 0;
}
