/* SPDX-License-Identifier: Apache-2.0 */
/* Tests: the agent's options and every module's, as a constructor gets them
 * (struct collector_env), without the config loader. */
#ifndef TAPIO_TEST_ENV_H
#define TAPIO_TEST_ENV_H

#include <string.h>

#include "collectors/cni/cni.h"
#include "collectors/etcd/etcd.h"
#include "collectors/k8s/k8s.h"
#include "collectors/systemd/systemd.h"
#include "collectors/table.h"
#include "core/collector.h"
#include "core/config.h"
#include "kernel/kernel.h"
#include "sink/sink_nats.h"

struct tcfg {
	struct tapio_config base;
	struct kernel_options kernel;
	struct k8s_options k8s;
	struct systemd_options systemd;
	struct cni_options cni;
	struct etcd_options etcd;
	struct nats_options nats;
	struct collector_env env;
	struct collector_hooks hooks;
};

/* The env for source src, pointing into c (call it after c stops moving). */
static inline const struct collector_env *tenv(struct tcfg *c, unsigned src)
{
	const void *opts[SRC__COUNT] = {[SRC_KERNEL] = &c->kernel,
					[SRC_K8S] = &c->k8s,
					[SRC_SYSTEMD] = &c->systemd,
					[SRC_CNI] = &c->cni,
					[SRC_ETCD] = &c->etcd};
	c->env = (struct collector_env){.cfg = &c->base, .opts = opts[src], .source = src};
	if (c->hooks.pod_update || c->hooks.cgroup_meta || c->hooks.cgroup_removed)
		c->env.hooks = &c->hooks;
	return &c->env;
}

#endif
