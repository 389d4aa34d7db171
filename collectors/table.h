/* SPDX-License-Identifier: Apache-2.0 */
/* The collector table: the one place that lists the collectors. A row gives
 * the collector's name, its source (name, type names, decoders), whether its
 * source keeps the data (resumable), its option group, "is its source
 * present here" and its constructor (struct collector_desc in
 * core/collector.h). A row's index is its source id.
 *
 * Adding a collector: a folder collectors/<name>/ with the collector, and
 * one row below (see docs/architecture.md). */
#ifndef TAPIO_COLLECTORS_TABLE_H
#define TAPIO_COLLECTORS_TABLE_H

#include <stddef.h>

#include "core/collector.h"

/* Source ids: the rows' indexes. */
enum collector_source {
	SRC_KERNEL,
	SRC_K8S,
	SRC_SYSTEMD,
	SRC_CNI,
	SRC_ETCD,
	SRC__COUNT,
};

extern const struct collector_desc collector_table[SRC__COUNT];

/* The row of that name, or NULL. */
const struct collector_desc *collector_table_find(const char *name);

/* Registers every row's source (name, type names, decoders) with the core.
 * Idempotent; the program and the tests call it at start (a constructor in
 * table.c does so for any program that links the table). */
void collector_table_register(void);

/* The option groups of every row that has one, in table order, into out
 * (room for max). Returns the count. */
size_t collector_table_groups(const struct opt_group **out, size_t max);

/* "kernel, k8s, systemd, cni, etcd" */
const char *collector_table_names(void);

#endif
