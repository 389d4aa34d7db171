/* SPDX-License-Identifier: Apache-2.0 */
/* The Kubernetes API collector: LIST then WATCH of each configured resource,
 * ADDED/MODIFIED/DELETED passed on as raw objects (collectors/k8s/README.md). */
#ifndef TAPIO_K8S_H
#define TAPIO_K8S_H

#include <stdbool.h>
#include <stddef.h>

struct collector;
struct collector_env;
struct opt_group;
struct source_desc;

enum k8s_type { TYPE_K8S_WATCH = 1, K8S_NTYPES };

/* node: this node's pods only; cluster: the cluster-wide resources, under
 * the lease; auto: node always, cluster while this agent holds the lease. */
enum k8s_role { K8S_ROLE_AUTO, K8S_ROLE_NODE, K8S_ROLE_CLUSTER };

/* The collector's options (--k8s-*). */
struct k8s_options {
	char *kubeconfig; /* kubeconfig file (else KUBECONFIG, else in-cluster) */
	char *resources;  /* comma list, "" = the default set */
	bool insecure;	  /* skip TLS verification (explicit only) */
	char *role;	  /* --k8s-role node|cluster|auto */
	char *lease_name; /* the Lease of the cluster role */
	char *lease_ns;	  /* "" = POD_NAMESPACE, else the serviceaccount's, else default */
	unsigned lease_renew_s, lease_duration_s;
};
extern const struct opt_group k8s_options_group;
extern const struct source_desc k8s_source;

/* Returns a new collector (destroy with collector_destroy), or NULL with errno
 * set and a one-line reason naming the source in err: EINVAL for a bad
 * config (unknown resource, bad kubeconfig, plain-http token), ENOENT when no
 * cluster connection is configured or a file is missing, ENOTSUP for
 * credential plugins, ENOMEM. */
/* env->opts is a struct k8s_options; env->hooks->pod_update (optional) hears
 * of every pod event. */
struct collector *k8s_collector_new(const struct collector_env *env, char *err, size_t errlen);

/* True when in-cluster env (KUBERNETES_SERVICE_HOST) or a kubeconfig
 * (--k8s-kubeconfig / KUBECONFIG / ~/.kube/config) is present. */
bool k8s_collector_available(const struct collector_env *env);

/* Reads one pod (GET /api/v1/namespaces/NS/pods/NAME) from the cluster that
 * o names (kubeconfig, else in-cluster), with the collector's credentials.
 * On 0, *json (malloc'd, *len bytes) is the pod object. Returns -ENOENT (no
 * such pod), -EHOSTUNREACH (no cluster configured, bad credentials or the
 * server cannot be reached), -EACCES (another status), or -ENOMEM; each with
 * a one-line reason in err. */
int k8s_pod_get(const struct k8s_options *o, const char *ns, const char *name, char **json,
		size_t *len, char *err, size_t errlen);

struct collector_hooks;

/* Gives a pod object's containers (status.containerStatuses and
 * initContainerStatuses: containerID without its scheme, name, image,
 * imageID) to h->pod_containers, and its metadata.labels to h->pod_labels,
 * for uid (each hook optional). */
void k8s_pod_containers(const struct collector_hooks *h, const char *uid, const char *obj,
			size_t len);

/* The serviceaccount directory used in-cluster; TAPIO_K8S_SA_DIR overrides
 * it (for tests). */
#define K8S_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

#endif
