/* SPDX-License-Identifier: Apache-2.0 */
/* The Kubernetes API collector: LIST then WATCH of each configured resource,
 * ADDED/MODIFIED/DELETED passed on as raw objects (collectors/k8s/README.md). */
#ifndef TAPIO_K8S_H
#define TAPIO_K8S_H

#include <stdbool.h>
#include <stddef.h>

struct collector;
struct tapio_config;

/* Returns a new collector (destroy with collector_destroy), or NULL with errno
 * set and a one-line reason naming the source in err: EINVAL for a bad
 * config (unknown resource, bad kubeconfig, plain-http token), ENOENT when no
 * cluster connection is configured or a file is missing, ENOTSUP for
 * credential plugins, ENOMEM. */
struct collector *k8s_collector_new(const struct tapio_config *cfg, char *err, size_t errlen);

/* True when in-cluster env (KUBERNETES_SERVICE_HOST) or a kubeconfig
 * (cfg->k8s_kubeconfig / KUBECONFIG / ~/.kube/config) is present. */
bool k8s_collector_available(const struct tapio_config *cfg);

/* The serviceaccount directory used in-cluster; TAPIO_K8S_SA_DIR overrides
 * it (for tests). */
#define K8S_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

#endif
