/* SPDX-License-Identifier: Apache-2.0 */
/* kubeconfig_parse: good files, every credential form, and bad input. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <time.h>

#include "collectors/k8s/kubeconfig.h"

#define HEAD                                                                                       \
	"apiVersion: v1\n"                                                                         \
	"kind: Config\n"

static const char *good = HEAD "current-context: dev\n"
			       "clusters:\n"
			       "- name: prod-cluster\n"
			       "  cluster:\n"
			       "    server: https://prod.example:6443\n"
			       "- name: dev-cluster\n"
			       "  cluster:\n"
			       "    server: https://127.0.0.1:6443/\n"
			       "    certificate-authority: ca.crt\n"
			       "contexts:\n"
			       "- name: prod\n"
			       "  context: {cluster: prod-cluster, user: prod-user}\n"
			       "- name: dev\n"
			       "  context:\n"
			       "    cluster: dev-cluster\n"
			       "    user: dev-user\n"
			       "users:\n"
			       "- name: prod-user\n"
			       "  user:\n"
			       "    tokenFile: /var/run/token\n"
			       "- name: dev-user\n"
			       "  user:\n"
			       "    token: abc.def\n"
			       "    client-certificate: /etc/c.crt\n"
			       "    client-key: k.key\n";

static int parse(const char *y, const char *ctx, struct kubeconfig *kc, char *err)
{
	return kubeconfig_parse(y, y ? strlen(y) : 0, ctx, kc, err, 256);
}

Test(kubeconfig, current_context)
{
	struct kubeconfig kc;
	char err[256];
	cr_assert_eq(parse(good, NULL, &kc, err), 0, "%s", err);
	cr_assert_str_eq(kc.context, "dev");
	cr_assert_str_eq(kc.cluster, "dev-cluster");
	cr_assert_str_eq(kc.user, "dev-user");
	cr_assert_str_eq(kc.server, "https://127.0.0.1:6443"); /* trailing '/' dropped */
	cr_assert_str_eq(kc.ca_file, "ca.crt");
	cr_assert_str_eq(kc.token, "abc.def");
	cr_assert_null(kc.token_file);
	cr_assert_str_eq(kc.cert_file, "/etc/c.crt");
	cr_assert_str_eq(kc.key_file, "k.key");
	cr_assert_null(kc.ca_pem);
	cr_assert_not(kc.insecure_skip_tls_verify);
	cr_assert_eq(kubeconfig_resolve_paths(&kc, "/home/u/.kube"), 0);
	cr_assert_str_eq(kc.ca_file, "/home/u/.kube/ca.crt");
	cr_assert_str_eq(kc.cert_file, "/etc/c.crt");
	cr_assert_str_eq(kc.key_file, "/home/u/.kube/k.key");
	kubeconfig_free(&kc);
	kubeconfig_free(&kc); /* zeroed: harmless */
	kubeconfig_free(NULL);
}

Test(kubeconfig, explicit_context)
{
	struct kubeconfig kc;
	char err[256];
	cr_assert_eq(parse(good, "prod", &kc, err), 0, "%s", err);
	cr_assert_str_eq(kc.server, "https://prod.example:6443");
	cr_assert_str_eq(kc.token_file, "/var/run/token");
	cr_assert_null(kc.token);
	kubeconfig_free(&kc);
	cr_assert_eq(parse(good, "nope", &kc, err), -EINVAL);
	cr_assert(strstr(err, "context 'nope'"), "%s", err);
}

Test(kubeconfig, data_fields_decoded)
{
	/* "-----BEGIN CERTIFICATE-----\nCA\n" etc. in base64 */
	const char *y =
	    HEAD "current-context: c\n"
		 "clusters: [{name: k, cluster: {server: 'https://h:1', insecure-skip-tls-verify: "
		 "true,\n"
		 "  certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCkNBCg==}}]\n"
		 "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
		 "users:\n"
		 "- name: u\n"
		 "  user:\n"
		 "    client-certificate-data: Q0VSVAo=\n"
		 "    client-key-data: S0VZCg==\n";
	struct kubeconfig kc;
	char err[256];
	cr_assert_eq(parse(y, NULL, &kc, err), 0, "%s", err);
	cr_assert_str_eq(kc.ca_pem, "-----BEGIN CERTIFICATE-----\nCA\n");
	cr_assert_str_eq(kc.cert_pem, "CERT\n");
	cr_assert_str_eq(kc.key_pem, "KEY\n");
	cr_assert(kc.insecure_skip_tls_verify);
	kubeconfig_free(&kc);
}

Test(kubeconfig, anonymous_and_json)
{
	/* JSON is YAML too; a context without a user is anonymous. */
	const char *y =
	    "{\"current-context\":\"c\",\"clusters\":[{\"name\":\"k\",\"cluster\":{\"server\":"
	    "\"http://"
	    "127.0.0.1:8001\"}}],\"contexts\":[{\"name\":\"c\",\"context\":{\"cluster\":\"k\"}}]}";
	struct kubeconfig kc;
	char err[256];
	cr_assert_eq(parse(y, NULL, &kc, err), 0, "%s", err);
	cr_assert_str_eq(kc.server, "http://127.0.0.1:8001");
	cr_assert_null(kc.user);
	cr_assert_null(kc.token);
	kubeconfig_free(&kc);

	/* "user:" with nothing under it is null: anonymous too. */
	const char *y2 =
	    "current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n"
	    "clusters: [{name: k, cluster: {server: 'https://x'}}]\n"
	    "users:\n- name: u\n  user:\n";
	cr_assert_eq(parse(y2, NULL, &kc, err), 0, "%s", err);
	cr_assert_str_eq(kc.user, "u");
	cr_assert_null(kc.token);
	cr_assert_null(kc.cert_pem);
	kubeconfig_free(&kc);
}

struct bad {
	const char *yaml;
	int rc;
	const char *msg;
};

Test(kubeconfig, bad_input)
{
	static const struct bad cases[] = {
	    {"", -EINVAL, "empty"},
	    {"- a\n- b\n", -EINVAL, "not a mapping"},
	    {"current-context: [unclosed\n", -EINVAL, "bad YAML at line"},
	    {"a: 'unterminated\n", -EINVAL, "bad YAML"},
	    {"\t\x01\x02: x", -EINVAL, "bad YAML"},
	    {"clusters: []\n", -EINVAL, "no current-context"},
	    {"current-context: c\n", -EINVAL, "context 'c' is not in contexts"},
	    {"current-context: c\ncontexts: [{name: c}]\n", -EINVAL, "no context mapping"},
	    {"current-context: c\ncontexts: [{name: c, context: {user: u}}]\n", -EINVAL,
	     "names no cluster"},
	    {"current-context: c\ncontexts: [{name: c, context: {cluster: k}}]\n", -EINVAL,
	     "cluster 'k' is not in clusters"},
	    {"current-context: c\ncontexts: [{name: c, context: {cluster: k}}]\nclusters: [{name: "
	     "k, cluster: {}}]\n",
	     -EINVAL, "has no server"},
	    {"current-context: c\ncontexts: [{name: c, context: {cluster: k}}]\n"
	     "clusters: [{name: k, cluster: {server: [a]}}]\n",
	     -EINVAL, "server is not a string"},
	    {"current-context: c\ncontexts: [{name: c, context: {cluster: k}}]\n"
	     "clusters: [{name: k, cluster: {server: 'ftp://x'}}]\n",
	     -EINVAL, "not an http(s) URL"},
	    {"current-context: c\ncontexts: [{name: c, context: {cluster: k}}]\n"
	     "clusters: [{name: k, cluster: {server: \"https://a b\"}}]\n",
	     -EINVAL, "space or control"},
	    {"current-context: c\ncontexts: [{name: c, context: {cluster: k}}]\n"
	     "clusters: [{name: k, cluster: {server: 'https://x', certificate-authority-data: "
	     "'!!notb64'}}]\n",
	     -EINVAL, "certificate-authority-data is not valid base64"},
	    {"current-context: c\ncontexts: [{name: c, context: {cluster: k}}]\n"
	     "clusters: [{name: k, cluster: {server: 'https://x', insecure-skip-tls-verify: "
	     "maybe}}]\n",
	     -EINVAL, "not a boolean"},
	    {"current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n"
	     "clusters: [{name: k, cluster: {server: 'https://x'}}]\n",
	     -EINVAL, "user 'u' is not in users"},
	    {"current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n"
	     "clusters: [{name: k, cluster: {server: 'https://x'}}]\n"
	     "users: [{name: u, user: {exec: {command: aws}}}]\n",
	     -ENOTSUP, "uses 'exec'"},
	    {"current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n"
	     "clusters: [{name: k, cluster: {server: 'https://x'}}]\n"
	     "users: [{name: u, user: {auth-provider: {name: gcp}}}]\n",
	     -ENOTSUP, "auth-provider"},
	    {"current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n"
	     "clusters: [{name: k, cluster: {server: 'https://x'}}]\n"
	     "users: [{name: u, user: {client-certificate: /c}}]\n",
	     -EINVAL, "without a client key"},
	    {"current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n"
	     "clusters: [{name: k, cluster: {server: 'https://x'}}]\n"
	     "users: [{name: u, user: {token: \"a\\r\\nX-Evil: 1\"}}]\n",
	     -EINVAL, "control character"},
	    {"current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n"
	     "clusters: [{name: k, cluster: {server: 'https://x'}}]\n"
	     "users: [{name: u, user: {token: \"a\\0b\"}}]\n",
	     -EINVAL, "NUL byte"},
	    {"current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n"
	     "clusters: [{name: k, cluster: {server: 'https://x'}}]\n"
	     "users: [{name: u, user: [1, 2]}]\n",
	     -EINVAL, "is not a mapping"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct kubeconfig kc;
		char err[256] = "";
		int rc = parse(cases[i].yaml, NULL, &kc, err);
		cr_expect_eq(rc, cases[i].rc, "case %zu: rc %d, want %d (%s)", i, rc, cases[i].rc,
			     err);
		cr_expect(strstr(err, cases[i].msg), "case %zu: '%s' lacks '%s'", i, err,
			  cases[i].msg);
		cr_expect(strncmp(err, "kubeconfig: ", 12) == 0,
			  "case %zu: '%s' does not name the source", i, err);
		cr_expect_null(kc.server, "case %zu: not emptied on error", i);
	}
}

Test(kubeconfig, truncated_at_every_byte)
{
	/* Every prefix of a good file parses or fails cleanly (ASan checks the rest). */
	size_t n = strlen(good);
	int ok = 0;
	for (size_t i = 0; i <= n; i++) {
		struct kubeconfig kc;
		char err[256];
		int rc = kubeconfig_parse(good, i, NULL, &kc, err, sizeof(err));
		cr_assert(rc == 0 || rc == -EINVAL, "prefix %zu: rc %d", i, rc);
		if (rc == 0) {
			ok++;
			cr_assert_not_null(kc.server);
		}
		kubeconfig_free(&kc);
	}
	cr_assert_gt(ok, 0);
}

Test(kubeconfig, hostile)
{
	struct kubeconfig kc;
	char err[256];
	/* An alias bomb: libyaml's loader shares nodes, so this costs nothing. */
	const char *bomb = "a: &a [x, x, x, x, x, x, x, x]\n"
			   "b: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n"
			   "c: &c [*b, *b, *b, *b, *b, *b, *b, *b]\n"
			   "d: &d [*c, *c, *c, *c, *c, *c, *c, *c]\n"
			   "current-context: *d\n";
	cr_assert_eq(parse(bomb, NULL, &kc, err), -EINVAL);
	/* Deep nesting. */
	char deep[20001];
	memset(deep, '[', 20000);
	deep[20000] = '\0';
	int rc = parse(deep, NULL, &kc, err);
	cr_assert(rc == -EINVAL, "rc %d", rc);
	/* Too big. */
	cr_assert_eq(kubeconfig_parse("a: b", KUBECONFIG_MAX + 1, NULL, &kc, err, sizeof(err)),
		     -E2BIG);
	/* NULL input and a tiny err buffer. */
	cr_assert_eq(kubeconfig_parse(NULL, 0, NULL, &kc, err, 1), -EINVAL);
	cr_assert_eq(err[0], '\0');
	/* A context whose name is not a string, with a mapping as current-context. */
	cr_assert_eq(parse("current-context: {a: b}\n", NULL, &kc, err), -EINVAL);
	/* Non-UTF-8 bytes. */
	cr_assert_eq(parse("current-context: \xff\xfe\n", NULL, &kc, err), -EINVAL);
}

static double secs_since(const struct timespec *a)
{
	struct timespec b;
	clock_gettime(CLOCK_MONOTONIC, &b);
	return (double)(b.tv_sec - a->tv_sec) + (double)(b.tv_nsec - a->tv_nsec) / 1e9;
}

/* 200 KB nested 100,000 deep (block and flow forms): refused, naming the
 * limit, in well under a second (it took 23 s before the depth check). */
Test(kubeconfig, deep_nesting_refused_fast)
{
	struct kubeconfig kc;
	char err[256];
	static char deep[200001];
	memset(deep, '[', 100000);
	memset(deep + 100000, ']', 100000);
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	cr_assert_eq(kubeconfig_parse(deep, 200000, NULL, &kc, err, sizeof(err)), -EINVAL);
	double s = secs_since(&t);
	cr_assert_lt(s, 1.0, "flow nesting took %.2f s", s);
	cr_assert(strstr(err, "nested deeper than 32 levels"), "%s", err);
	/* "- - - - ..." is a sequence in a sequence in ... */
	for (size_t i = 0; i < 100000; i++) {
		deep[2 * i] = '-';
		deep[2 * i + 1] = ' ';
	}
	deep[199999] = 'x';
	clock_gettime(CLOCK_MONOTONIC, &t);
	cr_assert_eq(kubeconfig_parse(deep, 200000, NULL, &kc, err, sizeof(err)), -EINVAL);
	s = secs_since(&t);
	cr_assert_lt(s, 1.0, "block nesting took %.2f s", s);
	cr_assert(strstr(err, "nested deeper"), "%s", err);
	/* the good file still parses: its depth is well within the limit */
	cr_assert_eq(kubeconfig_parse(good, strlen(good), NULL, &kc, err, sizeof(err)), 0, "%s",
		     err);
	kubeconfig_free(&kc);
}
