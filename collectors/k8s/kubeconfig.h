/* SPDX-License-Identifier: Apache-2.0 */
/* The kubeconfig parser: the few fields tapio needs from a kubeconfig file,
 * read with libyaml (document API). It does no I/O: the caller reads the file
 * and resolves relative paths with kubeconfig_resolve_paths().
 */
#ifndef TAPIO_K8S_KUBECONFIG_H
#define TAPIO_K8S_KUBECONFIG_H

#include <stdbool.h>
#include <stddef.h>

/* Every string is malloc'd and owned by the struct; NULL when absent. */
struct kubeconfig {
	char *context;		       /* the context used (current-context or the one asked for) */
	char *cluster;		       /* its cluster's name */
	char *user;		       /* its user's name (NULL: no user) */
	char *server;		       /* https://host:port[/prefix], no trailing '/' */
	char *ca_file;		       /* certificate-authority */
	char *ca_pem;		       /* certificate-authority-data, base64-decoded */
	bool insecure_skip_tls_verify; /* as the file says; the collector only
					  honours it together with --k8s-insecure */
	char *token;		       /* token */
	char *token_file;	       /* tokenFile */
	char *cert_file;	       /* client-certificate */
	char *cert_pem;		       /* client-certificate-data, decoded */
	char *key_file;		       /* client-key */
	char *key_pem;		       /* client-key-data, decoded */
};

/* Largest kubeconfig accepted, in bytes. */
#define KUBECONFIG_MAX (4u << 20)
/* Mappings and sequences nested deeper than this are refused (a kubeconfig
 * needs about 6 levels). */
#define KUBECONFIG_MAX_DEPTH 32

/* Parses len bytes of kubeconfig YAML. context NULL or "" uses the file's
 * current-context. Returns 0, or a negative errno after writing a one-line
 * reason into err: -EINVAL for bad YAML or a missing or malformed field (the
 * message names it), -ENOTSUP for credentials tapio cannot use (exec and
 * auth-provider plugins, username/password), -E2BIG over KUBECONFIG_MAX,
 * -ENOMEM. On error *out is left empty (nothing to free, though
 * kubeconfig_free is harmless). */
int kubeconfig_parse(const char *yaml, size_t len, const char *context, struct kubeconfig *out,
		     char *err, size_t errlen);

/* Makes the relative file paths (ca_file, token_file, cert_file, key_file)
 * relative to dir, as kubectl does for the file's own directory. Returns 0 or
 * -ENOMEM. */
int kubeconfig_resolve_paths(struct kubeconfig *kc, const char *dir);

/* Frees the strings and zeroes the struct. Accepts NULL. */
void kubeconfig_free(struct kubeconfig *kc);

#endif
