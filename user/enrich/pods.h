/* SPDX-License-Identifier: Apache-2.0 */
/* The pod cache: pod uid -> name and namespace, bounded, least recently
 * updated evicted first. Not locked: podmeta holds its mutex around it. */
#ifndef TAPIO_PODS_H
#define TAPIO_PODS_H

#include <stdbool.h>
#include <stddef.h>

struct pod_entry {
	char uid[40];
	char ns[64];
	char name[254];
	struct pod_entry *hnext;
	struct pod_entry *prev, *next;
};

struct pod_table {
	struct pod_entry **hash;
	size_t hmask, n, max;
	struct pod_entry lru; /* sentinel */
};

/* max bounds the entries, hash_size (a power of two) sizes the hash.
 * Returns 0, or -1 with the table empty when out of memory. */
int pod_table_init(struct pod_table *t, size_t max, size_t hash_size);
void pod_table_free(struct pod_table *t);

/* The entry for uid, or NULL. */
struct pod_entry *pod_table_find(struct pod_table *t, const char *uid);

/* Adds or refreshes a pod (or, deleted, removes it); uid shorter than
 * sizeof(pod_entry.uid). Returns how many entries were evicted (0 or 1). */
unsigned pod_table_update(struct pod_table *t, const char *uid, const char *ns, const char *name,
			  bool deleted);

#endif
