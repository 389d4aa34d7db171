/* SPDX-License-Identifier: Apache-2.0 */
/* The pod cache: pod uid -> name and namespace, bounded, least recently
 * updated evicted first. Not locked: podmeta holds its mutex around it. */
#ifndef TAPIO_PODS_H
#define TAPIO_PODS_H

#include <stdbool.h>
#include <stddef.h>

struct strlist;

#define POD_MAX_CONTAINERS 32

struct pod_cont {
	char id[65];
	char name[64];
	char image[256];
	char image_id[256];
};

struct pod_entry {
	char uid[40];
	struct pod_cont *cont; /* ncont of them, or NULL */
	size_t ncont;
	char labels[512]; /* the wanted labels: "key\0value\0" pairs */
	size_t labels_len;
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

struct pod_container;

/* Sets the containers of a known pod (at most POD_MAX_CONTAINERS are kept;
 * ids not of 64 characters are left out). No-op for an unknown uid. */
void pod_table_set_containers(struct pod_table *t, const char *uid, const struct pod_container *c,
			      size_t n);

struct meta_kv;

/* Keeps those of a known pod's labels whose key is in want (as many as fit
 * in pod_entry.labels). No-op for an unknown uid. */
void pod_table_set_labels(struct pod_table *t, const char *uid, const struct meta_kv *kv, size_t n,
			  const struct strlist *want);

/* The container of a pod entry with this id, or NULL. */
const struct pod_cont *pod_entry_container(const struct pod_entry *p, const char *id);

#endif
