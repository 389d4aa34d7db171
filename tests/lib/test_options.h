/* SPDX-License-Identifier: Apache-2.0 */
/* Tests: the agent's option groups, and each module's filled options. */
#ifndef TAPIO_TEST_OPTIONS_H
#define TAPIO_TEST_OPTIONS_H

#include "cmd/commands.h"
#include "collectors/cni/cni.h"
#include "collectors/etcd/etcd.h"
#include "collectors/k8s/k8s.h"
#include "collectors/systemd/systemd.h"
#include "collectors/table.h"
#include "core/config.h"
#include "kernel/kernel.h"
#include "sink/sink_nats.h"

/* config_load() with every group of `tapio agent`, as the agent does it. */
static inline int test_config_load(struct tapio_config *c, int argc, char **argv, char *err,
				   size_t errlen)
{
	return agent_config_load(c, argc, argv, err, errlen);
}

#define KERNEL_OPTS(c) ((struct kernel_options *)config_group((c), &kernel_options_group))
#define K8S_OPTS(c) ((struct k8s_options *)config_group((c), &k8s_options_group))
#define SYSTEMD_OPTS(c) ((struct systemd_options *)config_group((c), &systemd_options_group))
#define CNI_OPTS(c) ((struct cni_options *)config_group((c), &cni_options_group))
#define ETCD_OPTS(c) ((struct etcd_options *)config_group((c), &etcd_options_group))
#define NATS_OPTS(c) ((struct nats_options *)config_group((c), &nats_options_group))

#endif
