/* SPDX-License-Identifier: Apache-2.0 */
/* kubeconfig parsing with libyaml's document API. Only the chosen context,
 * its cluster and its user are looked at. */
#include "collectors/k8s/kubeconfig.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "util/strbuf.h"

/* A scalar's value as a C string (libyaml NUL-terminates scalars), or NULL
 * when the node is not a scalar. */
static const char *scalar(yaml_node_t *n)
{
	if (!n || n->type != YAML_SCALAR_NODE)
		return NULL;
	return (const char *)n->data.scalar.value;
}

/* The value node of key in a mapping node, or NULL. */
static yaml_node_t *map_get(yaml_document_t *doc, yaml_node_t *map, const char *key)
{
	if (!map || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		const char *k = scalar(yaml_document_get_node(doc, p->key));
		if (k && !strcmp(k, key))
			return yaml_document_get_node(doc, p->value);
	}
	return NULL;
}

/* In a sequence of {name: X, <field>: {...}} entries (clusters, users,
 * contexts), the <field> mapping of the entry named name. *found tells
 * whether the entry was there at all. */
static yaml_node_t *named_entry(yaml_document_t *doc, yaml_node_t *seq, const char *name,
				const char *field, bool *found)
{
	*found = false;
	if (!seq || seq->type != YAML_SEQUENCE_NODE)
		return NULL;
	for (yaml_node_item_t *it = seq->data.sequence.items.start;
	     it < seq->data.sequence.items.top; it++) {
		yaml_node_t *e = yaml_document_get_node(doc, *it);
		const char *n = scalar(map_get(doc, e, "name"));
		if (n && !strcmp(n, name)) {
			*found = true;
			return map_get(doc, e, field);
		}
	}
	return NULL;
}

/* Copies an optional string field. Returns 0, -EINVAL (present but not a
 * string) or -ENOMEM. */
static int get_str(yaml_document_t *doc, yaml_node_t *map, const char *key, char **out,
		   const char *where, char *err, size_t errlen)
{
	yaml_node_t *v = map_get(doc, map, key);
	if (!v)
		return 0;
	const char *s = scalar(v);
	if (!s) {
		err_printf(err, errlen, "kubeconfig: %s.%s is not a string", where, key);
		return -EINVAL;
	}
	if (!*s)
		return 0;
	if (strlen(s) != v->data.scalar.length) {
		err_printf(err, errlen, "kubeconfig: %s.%s contains a NUL byte", where, key);
		return -EINVAL;
	}
	*out = strdup(s);
	return *out ? 0 : -ENOMEM;
}

/* Decodes a base64 *-data field into a NUL-terminated string. */
static int get_b64(yaml_document_t *doc, yaml_node_t *map, const char *key, char **out,
		   const char *where, char *err, size_t errlen)
{
	char *b64 = NULL;
	int rc = get_str(doc, map, key, &b64, where, err, errlen);
	if (rc || !b64)
		return rc;
	/* libyaml folds plain multi-line scalars; drop whitespace anyway. */
	size_t w = 0;
	for (size_t r = 0; b64[r]; r++)
		if (b64[r] != ' ' && b64[r] != '\n' && b64[r] != '\r' && b64[r] != '\t')
			b64[w++] = b64[r];
	b64[w] = '\0';
	size_t cap = w / 4 * 3 + 4;
	char *dec = malloc(cap + 1);
	if (!dec) {
		free(b64);
		return -ENOMEM;
	}
	long n = base64_decode(b64, w, dec, cap);
	free(b64);
	if (n < 0) {
		free(dec);
		err_printf(err, errlen, "kubeconfig: %s.%s is not valid base64", where, key);
		return -EINVAL;
	}
	if (memchr(dec, '\0', (size_t)n)) {
		free(dec);
		err_printf(err, errlen, "kubeconfig: %s.%s does not decode to PEM text", where,
			   key);
		return -EINVAL;
	}
	dec[n] = '\0';
	*out = dec;
	return 0;
}

static int get_bool(yaml_document_t *doc, yaml_node_t *map, const char *key, bool *out,
		    const char *where, char *err, size_t errlen)
{
	yaml_node_t *v = map_get(doc, map, key);
	if (!v)
		return 0;
	const char *s = scalar(v);
	if (s && (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))) {
		*out = true;
		return 0;
	}
	if (s && (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))) {
		*out = false;
		return 0;
	}
	err_printf(err, errlen, "kubeconfig: %s.%s is not a boolean", where, key);
	return -EINVAL;
}

void kubeconfig_free(struct kubeconfig *kc)
{
	if (!kc)
		return;
	char **f[] = {&kc->context,   &kc->cluster,  &kc->user,	    &kc->server,
		      &kc->ca_file,   &kc->ca_pem,   &kc->token,    &kc->token_file,
		      &kc->cert_file, &kc->cert_pem, &kc->key_file, &kc->key_pem};
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		free(*f[i]);
	memset(kc, 0, sizeof(*kc));
}

/* The context: current-context (or the one asked for) -> cluster and user
 * names. */
static int parse_context(yaml_document_t *doc, yaml_node_t *root, const char *context,
			 struct kubeconfig *kc, char *err, size_t errlen)
{
	int rc;
	bool found;
	const char *ctx = context && *context ? context : NULL;
	if (!ctx) {
		yaml_node_t *cc = map_get(doc, root, "current-context");
		ctx = scalar(cc);
		if (!ctx || !*ctx) {
			err_printf(
			    err, errlen,
			    "kubeconfig: no current-context is set and no context was asked for");
			return -EINVAL;
		}
	}
	if (!(kc->context = strdup(ctx)))
		return -ENOMEM;

	yaml_node_t *cx = named_entry(doc, map_get(doc, root, "contexts"), ctx, "context", &found);
	if (!found) {
		err_printf(err, errlen, "kubeconfig: context '%s' is not in contexts", ctx);
		return -EINVAL;
	}
	if (!cx || cx->type != YAML_MAPPING_NODE) {
		err_printf(err, errlen, "kubeconfig: context '%s' has no context mapping", ctx);
		return -EINVAL;
	}
	if ((rc = get_str(doc, cx, "cluster", &kc->cluster, "context", err, errlen)) ||
	    (rc = get_str(doc, cx, "user", &kc->user, "context", err, errlen)))
		return rc;
	if (!kc->cluster) {
		err_printf(err, errlen, "kubeconfig: context '%s' names no cluster", ctx);
		return -EINVAL;
	}

	return 0;
}

/* The cluster: server URL, CA, insecure-skip-tls-verify. */
static int parse_cluster(yaml_document_t *doc, yaml_node_t *root, struct kubeconfig *kc, char *err,
			 size_t errlen)
{
	int rc;
	bool found;
	yaml_node_t *cl =
	    named_entry(doc, map_get(doc, root, "clusters"), kc->cluster, "cluster", &found);
	if (!found) {
		err_printf(err, errlen, "kubeconfig: cluster '%s' is not in clusters", kc->cluster);
		return -EINVAL;
	}
	if (!cl || cl->type != YAML_MAPPING_NODE) {
		err_printf(err, errlen, "kubeconfig: cluster '%s' has no cluster mapping",
			   kc->cluster);
		return -EINVAL;
	}
	if ((rc = get_str(doc, cl, "server", &kc->server, "cluster", err, errlen)) ||
	    (rc =
		 get_str(doc, cl, "certificate-authority", &kc->ca_file, "cluster", err, errlen)) ||
	    (rc = get_b64(doc, cl, "certificate-authority-data", &kc->ca_pem, "cluster", err,
			  errlen)) ||
	    (rc = get_bool(doc, cl, "insecure-skip-tls-verify", &kc->insecure_skip_tls_verify,
			   "cluster", err, errlen)))
		return rc;
	if (!kc->server) {
		err_printf(err, errlen, "kubeconfig: cluster '%s' has no server", kc->cluster);
		return -EINVAL;
	}
	if (strncmp(kc->server, "https://", 8) && strncmp(kc->server, "http://", 7)) {
		err_printf(err, errlen,
			   "kubeconfig: cluster '%s' server '%.100s' is not an http(s) URL",
			   kc->cluster, kc->server);
		return -EINVAL;
	}
	for (const char *p = kc->server; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f) {
			err_printf(
			    err, errlen,
			    "kubeconfig: cluster '%s' server has a space or control character",
			    kc->cluster);
			return -EINVAL;
		}
	size_t sl = strlen(kc->server);
	while (sl > 0 && kc->server[sl - 1] == '/')
		kc->server[--sl] = '\0';

	return 0;
}

/* The user: token, token file or client certificate; no exec plugins. */
static int parse_user(yaml_document_t *doc, yaml_node_t *root, struct kubeconfig *kc, char *err,
		      size_t errlen)
{
	int rc;
	bool found;
	if (!kc->user)
		return 0;
	yaml_node_t *us = named_entry(doc, map_get(doc, root, "users"), kc->user, "user", &found);
	if (!found) {
		err_printf(err, errlen, "kubeconfig: user '%s' is not in users", kc->user);
		return -EINVAL;
	}
	const char *us_s = scalar(us);
	if (!us || (us_s && (!*us_s || !strcmp(us_s, "~") || !strcmp(us_s, "null"))))
		return 0; /* "user:" with nothing (null): anonymous */
	if (us->type != YAML_MAPPING_NODE) {
		err_printf(err, errlen, "kubeconfig: user '%s' is not a mapping", kc->user);
		return -EINVAL;
	}
	static const char *unsupported[] = {"exec", "auth-provider", "username", "password"};
	for (size_t i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++)
		if (map_get(doc, us, unsupported[i])) {
			err_printf(
			    err, errlen,
			    "kubeconfig: user '%s' uses '%s', which tapio does not support (use "
			    "a token, "
			    "tokenFile or a client certificate)",
			    kc->user, unsupported[i]);
			return -ENOTSUP;
		}
	if ((rc = get_str(doc, us, "token", &kc->token, "user", err, errlen)) ||
	    (rc = get_str(doc, us, "tokenFile", &kc->token_file, "user", err, errlen)) ||
	    (rc = get_str(doc, us, "client-certificate", &kc->cert_file, "user", err, errlen)) ||
	    (rc =
		 get_b64(doc, us, "client-certificate-data", &kc->cert_pem, "user", err, errlen)) ||
	    (rc = get_str(doc, us, "client-key", &kc->key_file, "user", err, errlen)) ||
	    (rc = get_b64(doc, us, "client-key-data", &kc->key_pem, "user", err, errlen)))
		return rc;
	if (kc->token)
		for (const char *p = kc->token; *p; p++)
			if ((unsigned char)*p < ' ' || *p == 0x7f) {
				err_printf(err, errlen,
					   "kubeconfig: user '%s' token has a control character",
					   kc->user);
				return -EINVAL;
			}
	bool has_cert = kc->cert_file || kc->cert_pem, has_key = kc->key_file || kc->key_pem;
	if (has_cert != has_key) {
		err_printf(err, errlen, "kubeconfig: user '%s' has a client %s without a client %s",
			   kc->user, has_cert ? "certificate" : "key",
			   has_cert ? "key" : "certificate");
		return -EINVAL;
	}
	return 0;
}

static int parse_doc(yaml_document_t *doc, const char *context, struct kubeconfig *kc, char *err,
		     size_t errlen)
{
	int rc;
	yaml_node_t *root = yaml_document_get_root_node(doc);
	if (!root) {
		err_printf(err, errlen, "kubeconfig: the file is empty");
		return -EINVAL;
	}
	if (root->type != YAML_MAPPING_NODE) {
		err_printf(err, errlen, "kubeconfig: the top level is not a mapping");
		return -EINVAL;
	}

	if ((rc = parse_context(doc, root, context, kc, err, errlen)) ||
	    (rc = parse_cluster(doc, root, kc, err, errlen)))
		return rc;
	return parse_user(doc, root, kc, err, errlen);
}

/* A first pass over the events that stops at the first mapping or sequence
 * deeper than KUBECONFIG_MAX_DEPTH. libyaml's scanner keeps a stack per open
 * level and walks it for every token, so a deep document costs depth x size;
 * stopping at a small depth keeps the whole parse linear in the size. */
static int check_depth(const char *yaml, size_t len, char *err, size_t errlen)
{
	yaml_parser_t p;
	if (!yaml_parser_initialize(&p))
		return -ENOMEM;
	yaml_parser_set_input_string(&p, (const unsigned char *)yaml, len);
	int depth = 0, rc = 0;
	for (;;) {
		yaml_event_t ev;
		if (!yaml_parser_parse(&p, &ev))
			break; /* the load reports the syntax error with its position */
		yaml_event_type_t t = ev.type;
		size_t line = ev.start_mark.line + 1;
		yaml_event_delete(&ev);
		if (t == YAML_MAPPING_START_EVENT || t == YAML_SEQUENCE_START_EVENT) {
			if (++depth > KUBECONFIG_MAX_DEPTH) {
				err_printf(err, errlen,
					   "kubeconfig: line %zu: nested deeper than %d levels",
					   line, KUBECONFIG_MAX_DEPTH);
				rc = -EINVAL;
				break;
			}
		} else if (t == YAML_MAPPING_END_EVENT || t == YAML_SEQUENCE_END_EVENT) {
			depth--;
		} else if (t == YAML_STREAM_END_EVENT) {
			break;
		}
	}
	yaml_parser_delete(&p);
	return rc;
}

int kubeconfig_parse(const char *yaml, size_t len, const char *context, struct kubeconfig *out,
		     char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (err && errlen)
		err[0] = '\0';
	if (len > KUBECONFIG_MAX) {
		err_printf(err, errlen, "kubeconfig: %zu bytes is over the %u byte limit", len,
			   KUBECONFIG_MAX);
		return -E2BIG;
	}
	if (!yaml)
		len = 0;
	int drc = check_depth(yaml ? yaml : "", len, err, errlen);
	if (drc)
		return drc;
	yaml_parser_t parser;
	yaml_document_t doc;
	if (!yaml_parser_initialize(&parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&parser, (const unsigned char *)(yaml ? yaml : ""), len);
	if (!yaml_parser_load(&parser, &doc)) {
		err_printf(err, errlen, "kubeconfig: bad YAML at line %zu column %zu: %s",
			   parser.problem_mark.line + 1, parser.problem_mark.column + 1,
			   parser.problem ? parser.problem : "parse error");
		yaml_parser_delete(&parser);
		return -EINVAL;
	}
	int rc = parse_doc(&doc, context, out, err, errlen);
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	if (rc) {
		if (rc == -ENOMEM)
			err_printf(err, errlen, "kubeconfig: out of memory");
		kubeconfig_free(out);
	}
	return rc;
}

static int resolve(char **path, const char *dir)
{
	if (!*path || (*path)[0] == '/' || !dir || !*dir)
		return 0;
	char *p;
	if (asprintf(&p, "%s/%s", dir, *path) < 0)
		return -ENOMEM;
	free(*path);
	*path = p;
	return 0;
}

int kubeconfig_resolve_paths(struct kubeconfig *kc, const char *dir)
{
	if (resolve(&kc->ca_file, dir) || resolve(&kc->token_file, dir) ||
	    resolve(&kc->cert_file, dir) || resolve(&kc->key_file, dir))
		return -ENOMEM;
	return 0;
}
