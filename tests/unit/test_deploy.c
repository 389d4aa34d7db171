// SPDX-License-Identifier: Apache-2.0
/* deploy/: every manifest parses with libyaml, and says what the design and
 * the agent need: the DaemonSet's capabilities, host mounts, probes and
 * NODE_NAME; RBAC on exactly the resources the k8s collector watches; a
 * ConfigMap whose config is deploy/config/agent.yaml, which the agent's own config
 * loader accepts. Run from the repository root (scripts/run-tests.py does). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <yaml.h>

#include "core/config.h"
#include "tests/lib/files.h"
#include "tests/lib/test_options.h"
#include "util/strlist.h"

#define MAXDOCS 16

struct docs {
	yaml_document_t d[MAXDOCS];
	size_t n;
};

static void load(const char *path, struct docs *ds)
{
	yaml_parser_t p;
	FILE *f = fopen(path, "re");

	cr_assert_not_null(f, "cannot open %s (run from the repository root)", path);
	memset(ds, 0, sizeof(*ds));
	yaml_parser_initialize(&p);
	yaml_parser_set_input_file(&p, f);
	for (;;) {
		yaml_document_t doc;

		cr_assert(yaml_parser_load(&p, &doc), "%s: YAML error at line %zu: %s", path,
			  p.problem_mark.line + 1, p.problem ? p.problem : "?");
		if (!yaml_document_get_root_node(&doc)) {
			yaml_document_delete(&doc);
			break;
		}
		cr_assert_lt(ds->n, MAXDOCS);
		ds->d[ds->n++] = doc;
	}
	yaml_parser_delete(&p);
	fclose(f);
}

static void unload(struct docs *ds)
{
	for (size_t i = 0; i < ds->n; i++)
		yaml_document_delete(&ds->d[i]);
}

static const char *scalar(yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static yaml_node_t *get(yaml_document_t *d, yaml_node_t *n, const char *key)
{
	if (!n || n->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
	     p++) {
		const char *k = scalar(yaml_document_get_node(d, p->key));

		if (k && !strcmp(k, key))
			return yaml_document_get_node(d, p->value);
	}
	return NULL;
}

/* Dotted path of mapping keys: "spec.template.spec". */
static yaml_node_t *path(yaml_document_t *d, yaml_node_t *n, const char *dotted)
{
	char buf[256], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", dotted);
	for (char *k = strtok_r(buf, ".", &save); k && n; k = strtok_r(NULL, ".", &save))
		n = get(d, n, k);
	return n;
}

static const char *spath(yaml_document_t *d, yaml_node_t *n, const char *dotted)
{
	return scalar(path(d, n, dotted));
}

static size_t seq_len(yaml_node_t *n)
{
	return n && n->type == YAML_SEQUENCE_NODE
		   ? (size_t)(n->data.sequence.items.top - n->data.sequence.items.start)
		   : 0;
}

static yaml_node_t *seq_at(yaml_document_t *d, yaml_node_t *n, size_t i)
{
	return i < seq_len(n) ? yaml_document_get_node(d, n->data.sequence.items.start[i]) : NULL;
}

/* The element of a sequence of mappings whose `key` is `val`. */
static yaml_node_t *find(yaml_document_t *d, yaml_node_t *seq, const char *key, const char *val)
{
	for (size_t i = 0; i < seq_len(seq); i++) {
		yaml_node_t *e = seq_at(d, seq, i);
		const char *v = spath(d, e, key);

		if (v && !strcmp(v, val))
			return e;
	}
	return NULL;
}

static bool seq_has(yaml_document_t *d, yaml_node_t *seq, const char *val)
{
	for (size_t i = 0; i < seq_len(seq); i++) {
		const char *v = scalar(seq_at(d, seq, i));

		if (v && !strcmp(v, val))
			return true;
	}
	return false;
}

static yaml_document_t *by_kind(struct docs *ds, const char *kind)
{
	for (size_t i = 0; i < ds->n; i++) {
		const char *k = spath(&ds->d[i], yaml_document_get_root_node(&ds->d[i]), "kind");

		if (k && !strcmp(k, kind))
			return &ds->d[i];
	}
	cr_assert_fail("no %s", kind);
	return NULL;
}

static bool doc_has(const char *file, const char *needle)
{
	size_t len;
	char *t = tl_read_file(file, &len);
	cr_assert_not_null(t, "%s", file);
	bool has = strstr(t, needle) != NULL;
	free(t);
	return has;
}

/* The Pod Security Standards level the DaemonSet's pod needs: "privileged"
 * when it does anything `baseline` refuses (host namespaces, hostPath
 * volumes, privileged, capabilities beyond baseline's set, seccomp
 * Unconfined), "baseline" otherwise (it runs as root, so never "restricted"). */
static const char *needed_pod_security_level(void)
{
	static const char *const baseline_caps[] = {
	    "AUDIT_WRITE", "CHOWN",  "DAC_OVERRIDE",	 "FOWNER",  "FSETID",
	    "KILL",	   "MKNOD",  "NET_BIND_SERVICE", "SETFCAP", "SETGID",
	    "SETPCAP",	   "SETUID", "SYS_CHROOT"};
	struct docs ds;
	load("deploy/daemonset.yaml", &ds);
	yaml_document_t *d = by_kind(&ds, "DaemonSet");
	yaml_node_t *pod = path(d, yaml_document_get_root_node(d), "spec.template.spec");
	bool priv = false;
	static const char *const host_ns[] = {"hostPID", "hostNetwork", "hostIPC"};
	for (size_t i = 0; i < 3; i++) {
		const char *v = spath(d, pod, host_ns[i]);
		priv |= v && !strcmp(v, "true");
	}
	yaml_node_t *vols = get(d, pod, "volumes");
	for (size_t i = 0; i < seq_len(vols); i++)
		priv |= get(d, seq_at(d, vols, i), "hostPath") != NULL;
	yaml_node_t *cs = get(d, pod, "containers");
	for (size_t i = 0; i < seq_len(cs); i++) {
		yaml_node_t *sc = get(d, seq_at(d, cs, i), "securityContext");
		const char *p = spath(d, sc, "privileged"),
			   *sp = spath(d, sc, "seccompProfile.type");
		priv |= (p && !strcmp(p, "true")) || (sp && !strcmp(sp, "Unconfined"));
		yaml_node_t *add = path(d, sc, "capabilities.add");
		for (size_t j = 0; j < seq_len(add); j++) {
			bool ok = false;
			for (size_t k = 0; k < sizeof(baseline_caps) / sizeof(baseline_caps[0]);
			     k++)
				ok |= !strcmp(scalar(seq_at(d, add, j)), baseline_caps[k]);
			priv |= !ok;
		}
	}
	unload(&ds);
	return priv ? "privileged" : "baseline";
}

/* The document of kind `kind` named `name`, or NULL. */
static yaml_document_t *by_kind_name(struct docs *ds, const char *kind, const char *name)
{
	for (size_t i = 0; i < ds->n; i++) {
		yaml_node_t *root = yaml_document_get_root_node(&ds->d[i]);
		const char *k = spath(&ds->d[i], root, "kind"),
			   *n = spath(&ds->d[i], root, "metadata.name");

		if (k && n && !strcmp(k, kind) && !strcmp(n, name))
			return &ds->d[i];
	}
	return NULL;
}

/* Checks that a ClusterRole reads exactly `want` (get/list/watch), core and
 * apps groups; returns how many resources it names. */
static size_t check_read_rules(yaml_document_t *cr, const char *const *want, size_t nwant)
{
	yaml_node_t *rules = path(cr, yaml_document_get_root_node(cr), "rules");
	size_t seen = 0;

	cr_assert_gt(seq_len(rules), 0);
	for (size_t i = 0; i < seq_len(rules); i++) {
		yaml_node_t *r = seq_at(cr, rules, i), *groups = get(cr, r, "apiGroups"),
			    *res = get(cr, r, "resources"), *verbs = get(cr, r, "verbs");

		/* the collector never reads a single object: no get, anywhere */
		cr_assert_eq(seq_len(verbs), 2, "rule %zu: verbs must be exactly list, watch", i);
		cr_assert(seq_has(cr, verbs, "list") && seq_has(cr, verbs, "watch"));
		cr_assert(!seq_has(cr, verbs, "get"), "rule %zu grants get", i);
		cr_assert_eq(seq_len(groups), 1);
		const char *g = scalar(seq_at(cr, groups, 0));
		cr_assert(!strcmp(g, "") || !strcmp(g, "apps"), "unexpected API group '%s'", g);
		for (size_t j = 0; j < seq_len(res); j++) {
			const char *name = scalar(seq_at(cr, res, j));
			bool ok = false;
			for (size_t k = 0; k < nwant; k++)
				ok |= !strcmp(name, want[k]);
			cr_assert(ok, "group '%s': %s is not this role's", g, name);
			bool apps = !strcmp(name, "deployments") || !strcmp(name, "replicasets");
			cr_assert_eq(apps, !strcmp(g, "apps"), "%s in group '%s'", name, g);
		}
		seen += seq_len(res);
		/* Secrets and ConfigMaps (metadata only) stand in a rule of their own. */
		if (seq_has(cr, res, "secrets") || seq_has(cr, res, "configmaps"))
			cr_assert_eq(seq_len(res),
				     (size_t)seq_has(cr, res, "secrets") +
					 (size_t)seq_has(cr, res, "configmaps"),
				     "secrets and configmaps share a rule with nothing else");
	}
	cr_assert_eq(seen, nwant);
	return seen;
}

static void check_binding(yaml_document_t *b, const char *kind, const char *role, const char *sa)
{
	yaml_node_t *root = yaml_document_get_root_node(b);
	cr_assert_str_eq(spath(b, root, "roleRef.kind"), kind);
	cr_assert_str_eq(spath(b, root, "roleRef.name"), role);
	yaml_node_t *subj = path(b, root, "subjects");
	cr_assert_eq(seq_len(subj), 1);
	cr_assert_str_eq(spath(b, seq_at(b, subj, 0), "kind"), "ServiceAccount");
	cr_assert_str_eq(spath(b, seq_at(b, subj, 0), "name"), sa);
	cr_assert_str_eq(spath(b, seq_at(b, subj, 0), "namespace"), "tapio");
}

Test(deploy, rbac_reads_exactly_what_the_k8s_collector_watches)
{
	struct docs ds;
	static const char *const node[] = {"pods"};
	static const char *const cluster[] = {"services", "nodes",	 "events",     "configmaps",
					      "secrets",  "deployments", "replicasets"};

	load("deploy/rbac.yaml", &ds);
	cr_assert_eq(ds.n, 8);
	yaml_document_t *sa = by_kind(&ds, "ServiceAccount");
	by_kind(&ds, "Namespace");
	cr_assert_str_eq(spath(sa, yaml_document_get_root_node(sa), "metadata.name"), "tapio");
	cr_assert_str_eq(spath(sa, yaml_document_get_root_node(sa), "metadata.namespace"), "tapio");

	/* The node role needs pods only; the cluster role the rest. */
	yaml_document_t *crn = by_kind_name(&ds, "ClusterRole", "tapio-node"),
			*crc = by_kind_name(&ds, "ClusterRole", "tapio-cluster");
	cr_assert(crn && crc);
	size_t seen = check_read_rules(crn, node, 1) + check_read_rules(crc, cluster, 7);
	cr_assert_eq(seen, 8);

	/* The namespace's Pod Security level is the narrowest that admits the
	 * DaemonSet: privileged only because baseline refuses what it needs. */
	yaml_document_t *ns = by_kind(&ds, "Namespace");
	const char *level =
	    scalar(get(ns, path(ns, yaml_document_get_root_node(ns), "metadata.labels"),
		       "pod-security.kubernetes.io/enforce"));
	cr_assert_not_null(level);
	cr_assert_str_eq(level, needed_pod_security_level());

	/* --k8s-role auto: the DaemonSet's ServiceAccount is bound to both. */
	yaml_document_t *b = by_kind_name(&ds, "ClusterRoleBinding", "tapio-node");
	cr_assert_not_null(b);
	check_binding(b, "ClusterRole", "tapio-node", "tapio");
	b = by_kind_name(&ds, "ClusterRoleBinding", "tapio-cluster");
	cr_assert_not_null(b);
	check_binding(b, "ClusterRole", "tapio-cluster", "tapio");
	unload(&ds);
}

/* The Lease: get and update on the one named Lease, create in the agent's
 * namespace (RBAC cannot name an object being created), nothing else. */
Test(deploy, rbac_lease_is_one_named_lease_in_the_namespace)
{
	struct docs ds;

	load("deploy/rbac.yaml", &ds);
	yaml_document_t *role = by_kind_name(&ds, "Role", "tapio-lease");
	cr_assert_not_null(role);
	yaml_node_t *root = yaml_document_get_root_node(role);
	cr_assert_str_eq(spath(role, root, "metadata.namespace"), "tapio");
	yaml_node_t *rules = path(role, root, "rules");
	cr_assert_eq(seq_len(rules), 2);
	bool named = false, create = false;
	for (size_t i = 0; i < seq_len(rules); i++) {
		yaml_node_t *r = seq_at(role, rules, i), *verbs = get(role, r, "verbs"),
			    *names = get(role, r, "resourceNames");

		cr_assert_eq(seq_len(get(role, r, "apiGroups")), 1);
		cr_assert_str_eq(scalar(seq_at(role, get(role, r, "apiGroups"), 0)),
				 "coordination.k8s.io");
		cr_assert_eq(seq_len(get(role, r, "resources")), 1);
		cr_assert_str_eq(scalar(seq_at(role, get(role, r, "resources"), 0)), "leases");
		if (names) {
			cr_assert_eq(seq_len(names), 1);
			cr_assert_str_eq(scalar(seq_at(role, names, 0)), "tapio-cluster");
			cr_assert_eq(seq_len(verbs), 2);
			cr_assert(seq_has(role, verbs, "get") && seq_has(role, verbs, "update"));
			named = true;
		} else {
			cr_assert_eq(seq_len(verbs), 1);
			cr_assert_str_eq(scalar(seq_at(role, verbs, 0)), "create");
			create = true;
		}
	}
	cr_assert(named && create);
	yaml_document_t *b = by_kind_name(&ds, "RoleBinding", "tapio-lease");
	cr_assert_not_null(b);
	cr_assert_str_eq(spath(b, yaml_document_get_root_node(b), "metadata.namespace"), "tapio");
	check_binding(b, "Role", "tapio-lease", "tapio");
	unload(&ds);
}

/* The optional fixed cluster-role instance: one replica, --k8s-role cluster,
 * its own ServiceAccount bound to the cluster role and the lease only. */
Test(deploy, cluster_deployment)
{
	struct docs ds;

	load("deploy/cluster-deployment.yaml", &ds);
	yaml_document_t *d = by_kind(&ds, "Deployment");
	yaml_node_t *root = yaml_document_get_root_node(d);
	cr_assert_str_eq(spath(d, root, "metadata.namespace"), "tapio");
	cr_assert_str_eq(spath(d, root, "spec.replicas"), "1");
	yaml_node_t *spec = path(d, root, "spec.template.spec");
	cr_assert_str_eq(spath(d, spec, "serviceAccountName"), "tapio-cluster");
	yaml_node_t *c = seq_at(d, get(d, spec, "containers"), 0);
	yaml_node_t *args = get(d, c, "args");
	bool role = false;
	for (size_t i = 0; i + 1 < seq_len(args); i++)
		role |= !strcmp(scalar(seq_at(d, args, i)), "--k8s-role") &&
			!strcmp(scalar(seq_at(d, args, i + 1)), "cluster");
	cr_assert(role, "the Deployment runs --k8s-role cluster");
	yaml_node_t *env = get(d, c, "env");
	cr_assert_str_eq(spath(d, find(d, env, "name", "POD_NAME"), "valueFrom.fieldRef.fieldPath"),
			 "metadata.name");
	cr_assert_str_eq(
	    spath(d, find(d, env, "name", "POD_NAMESPACE"), "valueFrom.fieldRef.fieldPath"),
	    "metadata.namespace");
	check_binding(by_kind(&ds, "ClusterRoleBinding"), "ClusterRole", "tapio-cluster",
		      "tapio-cluster");
	check_binding(by_kind(&ds, "RoleBinding"), "Role", "tapio-lease", "tapio-cluster");
	unload(&ds);
}

Test(deploy, daemonset)
{
	struct docs ds;
	static const struct {
		const char *host, *mount;
	} mounts[] = {
	    {"/sys/kernel/btf", "/sys/kernel/btf"},
	    {"/sys/fs/cgroup", "/sys/fs/cgroup"},
	    {"/proc", "/host/proc"},
	    {"/var/log/journal", "/var/log/journal"},
	    {"/run/log/journal", "/run/log/journal"},
	    {"/etc/machine-id", "/etc/machine-id"},
	    {"/var/lib/cni", "/var/lib/cni"},
	    {"/var/log/cni", "/var/log/cni"},
	    {"/run/netns", "/run/netns"},
	    {"/var/lib/tapio", "/var/lib/tapio"},
	};

	load("deploy/daemonset.yaml", &ds);
	cr_assert_eq(ds.n, 1);
	yaml_document_t *d = by_kind(&ds, "DaemonSet");
	yaml_node_t *root = yaml_document_get_root_node(d),
		    *pod = path(d, root, "spec.template.spec");

	cr_assert_str_eq(spath(d, root, "apiVersion"), "apps/v1");
	/* nothing needs the host's pid namespace */
	cr_assert(!spath(d, pod, "hostPID") || !strcmp(spath(d, pod, "hostPID"), "false"));
	cr_assert(!spath(d, pod, "hostNetwork") || !strcmp(spath(d, pod, "hostNetwork"), "false"));
	cr_assert_str_eq(spath(d, pod, "serviceAccountName"), "tapio");
	cr_assert_gt(seq_len(get(d, pod, "tolerations")), 0);
	cr_assert_str_eq(spath(d, seq_at(d, get(d, pod, "tolerations"), 0), "operator"), "Exists");

	yaml_node_t *c = find(d, get(d, pod, "containers"), "name", "tapio");
	cr_assert_not_null(c);
	yaml_node_t *sc = get(d, c, "securityContext");
	yaml_node_t *add = path(d, sc, "capabilities.add"),
		    *drop = path(d, sc, "capabilities.drop");
	cr_assert_eq(seq_len(add), 3, "capabilities: exactly BPF, PERFMON, SYS_RESOURCE");
	cr_assert(seq_has(d, add, "BPF") && seq_has(d, add, "PERFMON") &&
		  seq_has(d, add, "SYS_RESOURCE"));
	cr_assert(seq_has(d, drop, "ALL"));
	cr_assert_null(get(d, sc, "privileged"),
		       "privileged is the documented alternative, not the default");
	/* RuntimeDefault seccomp; Unconfined is only the documented fallback */
	cr_assert_str_eq(spath(d, sc, "seccompProfile.type"), "RuntimeDefault");
	cr_assert_null(path(d, pod, "securityContext.seccompProfile"));
	cr_assert(doc_has("deploy/README.md", "Unconfined"), "the fallback is not documented");
	cr_assert(doc_has("deploy/README.md", "Pod Security"), "the level is not documented");

	/* the metrics endpoint listens on the pod IP, not on every address */
	yaml_node_t *ma = find(d, get(d, c, "env"), "name", "TAPIO_METRICS_ADDR");
	cr_assert_not_null(ma);
	/* the bare pod IP, which --metrics-addr takes with port 9090 in either
	 * family: "$(POD_IP):9090" is not an address when the pod IP is IPv6 */
	cr_assert_str_eq(spath(d, ma, "value"), "$(POD_IP)");
	yaml_node_t *pip = find(d, get(d, c, "env"), "name", "POD_IP");
	cr_assert_not_null(pip);
	cr_assert_str_eq(spath(d, pip, "valueFrom.fieldRef.fieldPath"), "status.podIP");

	/* NODE_NAME from the downward API. */
	yaml_node_t *env = find(d, get(d, c, "env"), "name", "NODE_NAME");
	cr_assert_not_null(env);
	cr_assert_str_eq(spath(d, env, "valueFrom.fieldRef.fieldPath"), "spec.nodeName");
	/* The lease holder identity and namespace; the role is auto (the default). */
	yaml_node_t *envs = get(d, c, "env");
	cr_assert_str_eq(
	    spath(d, find(d, envs, "name", "POD_NAME"), "valueFrom.fieldRef.fieldPath"),
	    "metadata.name");
	cr_assert_str_eq(
	    spath(d, find(d, envs, "name", "POD_NAMESPACE"), "valueFrom.fieldRef.fieldPath"),
	    "metadata.namespace");
	for (size_t i = 0; i < seq_len(get(d, c, "args")); i++)
		cr_assert_str_neq(scalar(seq_at(d, get(d, c, "args"), i)), "--k8s-role",
				  "the DaemonSet runs the default role, auto");

	/* Probes on the metrics port. */
	cr_assert_str_eq(spath(d, c, "livenessProbe.httpGet.path"), "/healthz");
	cr_assert_str_eq(spath(d, c, "readinessProbe.httpGet.path"), "/readyz");
	yaml_node_t *port =
	    find(d, get(d, c, "ports"), "name", spath(d, c, "livenessProbe.httpGet.port"));
	cr_assert_not_null(port, "the liveness probe's port is not a declared port");
	cr_assert_str_eq(spath(d, port, "containerPort"), "9090");
	cr_assert_str_eq(spath(d, c, "readinessProbe.httpGet.port"),
			 spath(d, c, "livenessProbe.httpGet.port"));

	/* TAPIO_METRICS_ADDR as the kubelet expands it, for an IPv4 and an
	 * IPv6 pod IP: the agent accepts both and listens on the probes' port */
	const char *pod_ips[][2] = {{"10.244.1.17", "10.244.1.17:"},
				    {"fd00:10:244:1::17", "[fd00:10:244:1::17]:"}};
	const char *tmpl = spath(d, ma, "value");
	const char *at = strstr(tmpl, "$(POD_IP)");
	cr_assert_not_null(at);
	for (size_t i = 0; i < 2; i++) {
		char v[128], want[128], err[256];
		char *argv[] = {"agent", NULL};
		struct tapio_config cfg;

		snprintf(v, sizeof(v), "%.*s%s%s", (int)(at - tmpl), tmpl, pod_ips[i][0],
			 at + strlen("$(POD_IP)"));
		snprintf(want, sizeof(want), "%s%s", pod_ips[i][1],
			 spath(d, port, "containerPort"));
		setenv("TAPIO_METRICS_ADDR", v, 1);
		memset(&cfg, 0, sizeof(cfg));
		int rc = test_config_load(&cfg, 1, argv, err, sizeof(err));
		unsetenv("TAPIO_METRICS_ADDR");
		cr_assert_eq(rc, 0, "TAPIO_METRICS_ADDR=%s: %s", v, err);
		cr_assert_str_eq(cfg.metrics_addr, want);
		config_free(&cfg);
	}

	cr_assert_not_null(spath(d, c, "resources.requests.cpu"));
	cr_assert_not_null(spath(d, c, "resources.requests.memory"));
	cr_assert_not_null(spath(d, c, "resources.limits.memory"));

	/* Each host path is a volume mounted where the agent looks. */
	yaml_node_t *vols = get(d, pod, "volumes"), *vms = get(d, c, "volumeMounts");
	/* no tracefs: only `tapio probe` looks at it */
	cr_assert_null(find(d, vols, "hostPath.path", "/sys/kernel/tracing"));
	cr_assert_null(find(d, vols, "hostPath.path", "/sys/kernel/debug"));
	cr_assert_eq(seq_len(vols), sizeof(mounts) / sizeof(mounts[0]) + 2,
		     "a host path that the test does not know of (config and tmp aside)");
	for (size_t i = 0; i < sizeof(mounts) / sizeof(mounts[0]); i++) {
		yaml_node_t *v = find(d, vols, "hostPath.path", mounts[i].host);

		cr_assert_not_null(v, "no hostPath volume for %s", mounts[i].host);
		yaml_node_t *m = find(d, vms, "name", spath(d, v, "name"));
		cr_assert_not_null(m, "volume for %s is not mounted", mounts[i].host);
		cr_assert_str_eq(spath(d, m, "mountPath"), mounts[i].mount);
		if (!strcmp(mounts[i].host, "/run/netns"))
			cr_assert_str_eq(spath(d, m, "mountPropagation"), "HostToContainer");
		if (strcmp(mounts[i].host, "/var/lib/tapio"))
			cr_assert_str_eq(spath(d, m, "readOnly"), "true", "%s should be read-only",
					 mounts[i].host);
	}

	/* The config comes from the ConfigMap, at the path in args. */
	yaml_node_t *cv = find(d, vols, "configMap.name", "tapio-config");
	cr_assert_not_null(cv);
	yaml_node_t *cm = find(d, vms, "name", spath(d, cv, "name"));
	cr_assert_not_null(cm);
	char want[256];
	snprintf(want, sizeof(want), "%s/%s", spath(d, cm, "mountPath"),
		 spath(d, seq_at(d, path(d, cv, "configMap.items"), 0), "path"));
	yaml_node_t *args = get(d, c, "args");
	cr_assert_str_eq(scalar(seq_at(d, args, 0)), "agent");
	cr_assert_str_eq(scalar(seq_at(d, args, 1)), "--config");
	cr_assert_str_eq(scalar(seq_at(d, args, 2)), want);
	unload(&ds);
}

Test(deploy, configmap_is_the_example_config_and_the_agent_accepts_it)
{
	struct docs ds;
	struct tapio_config cfg;
	char err[256];
	char *argv[] = {"agent", "--config", "deploy/config/agent.yaml", NULL};
	char *file = tl_read_file("deploy/config/agent.yaml", NULL);
	cr_assert_not_null(file, "deploy/config/agent.yaml: %s", strerror(errno));

	load("deploy/configmap.yaml", &ds);
	yaml_document_t *d = by_kind(&ds, "ConfigMap");
	yaml_node_t *root = yaml_document_get_root_node(d);
	cr_assert_str_eq(spath(d, root, "metadata.name"), "tapio-config");
	cr_assert_str_eq(spath(d, root, "metadata.namespace"), "tapio");
	const char *embedded = scalar(get(d, get(d, root, "data"), "tapio.yaml"));
	cr_assert_not_null(embedded);
	cr_assert_str_eq(embedded, file, "configmap.yaml and agent.yaml differ");

	unsetenv("TAPIO_CONFIG");
	unsetenv("NODE_NAME");
	memset(&cfg, 0, sizeof(cfg));
	cr_assert_eq(test_config_load(&cfg, 3, argv, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(cfg.collectors, "");
	cr_assert_str_eq(cfg.metrics_addr, "127.0.0.1:9090");
	cr_assert_str_eq(cfg.state_dir, "/var/lib/tapio");
	cr_assert(!strncmp(cfg.output, "nats://", 7));
	cr_assert_str_eq(NATS_OPTS(&cfg)->stream, "TAPIO_EVENTS");
	cr_assert_str_eq(CNI_OPTS(&cfg)->netns_dir, "/run/netns");
	config_free(&cfg);
	free(file);
	unload(&ds);
}
