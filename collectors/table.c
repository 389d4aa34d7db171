// SPDX-License-Identifier: Apache-2.0
#include "collectors/table.h"

#include <stdio.h>
#include <string.h>

#include "collectors/cni/cni.h"
#include "collectors/etcd/etcd.h"
#include "collectors/k8s/k8s.h"
#include "collectors/systemd/systemd.h"
#include "core/event.h"
#include "kernel/kernel.h"
#include "kernel/kernel_decode.h"

const struct collector_desc collector_table[SRC__COUNT] = {
    [SRC_KERNEL] = {"kernel", &kernel_source, false, &kernel_options_group,
		    kernel_collector_present, kernel_collector_create},
    [SRC_K8S] = {"k8s", &k8s_source, true, &k8s_options_group, k8s_collector_available,
		 k8s_collector_new},
    [SRC_SYSTEMD] = {"systemd", &systemd_source, true, &systemd_options_group,
		     systemd_collector_available, systemd_collector_new},
    [SRC_CNI] = {"cni", &cni_source, true, &cni_options_group, cni_collector_available,
		 cni_collector_new},
    [SRC_ETCD] = {"etcd", &etcd_source, true, &etcd_options_group, etcd_collector_available,
		  etcd_collector_new},
};

_Static_assert(SRC__COUNT <= SRC_MAX, "more collectors than source ids");

const struct collector_desc *collector_table_find(const char *name)
{
	for (size_t i = 0; i < SRC__COUNT; i++)
		if (!strcmp(collector_table[i].name, name))
			return &collector_table[i];
	return NULL;
}

void collector_table_register(void)
{
	for (unsigned i = 0; i < SRC__COUNT; i++)
		source_register(i, collector_table[i].source);
}

__attribute__((constructor)) static void table_init(void)
{
	collector_table_register();
}

size_t collector_table_groups(const struct opt_group **out, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < SRC__COUNT && n < max; i++)
		if (collector_table[i].options)
			out[n++] = collector_table[i].options;
	return n;
}

const char *collector_table_names(void)
{
	static char names[256];
	if (!names[0]) {
		size_t len = 0;
		for (size_t i = 0; i < SRC__COUNT; i++)
			len += (size_t)snprintf(names + len, sizeof(names) - len, "%s%s",
						i ? ", " : "", collector_table[i].name);
	}
	return names;
}
