/* SPDX-License-Identifier: Apache-2.0 */
/* The pod cache (see pods.h). */
#include "enrich/pods.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/collector.h"
#include "core/event.h"
#include "util/strlist.h"
#include "enrich/lru.h"

static size_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return (size_t)h;
}

int pod_table_init(struct pod_table *t, size_t max, size_t hash_size)
{
	t->hash = calloc(hash_size, sizeof(*t->hash));
	t->hmask = hash_size - 1;
	t->n = 0;
	t->max = max;
	t->lru.next = t->lru.prev = &t->lru;
	return t->hash ? 0 : -1;
}

void pod_table_free(struct pod_table *t)
{
	if (t->hash)
		for (struct pod_entry *p = t->lru.next, *n; p != &t->lru; p = n) {
			n = p->next;
			free(p->cont);
			free(p);
		}
	free(t->hash);
	t->hash = NULL;
}

struct pod_entry *pod_table_find(struct pod_table *t, const char *uid)
{
	for (struct pod_entry *p = t->hash[hash_str(uid) & t->hmask]; p; p = p->hnext)
		if (!strcmp(p->uid, uid))
			return p;
	return NULL;
}

static void pod_remove(struct pod_table *t, struct pod_entry *p)
{
	struct pod_entry **pp = &t->hash[hash_str(p->uid) & t->hmask];
	while (*pp && *pp != p)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = p->hnext;
	LRU_UNLINK(p);
	free(p->cont);
	free(p);
	t->n--;
}

unsigned pod_table_update(struct pod_table *t, const char *uid, const char *ns, const char *name,
			  bool deleted)
{
	unsigned evicted = 0;
	struct pod_entry *p = pod_table_find(t, uid);
	if (deleted) {
		if (p)
			pod_remove(t, p);
		return 0;
	}
	if (!p) {
		if (t->n >= t->max) {
			pod_remove(t, t->lru.prev);
			evicted++;
		}
		p = calloc(1, sizeof(*p));
		if (!p)
			return evicted;
		snprintf(p->uid, sizeof(p->uid), "%s", uid);
		size_t b = hash_str(uid) & t->hmask;
		p->hnext = t->hash[b];
		t->hash[b] = p;
		t->n++;
	} else {
		LRU_UNLINK(p);
	}
	LRU_PUSH(&t->lru, p);
	snprintf(p->ns, sizeof(p->ns), "%s", ns ? ns : "");
	snprintf(p->name, sizeof(p->name), "%s", name ? name : "");
	return evicted;
}

void pod_table_set_containers(struct pod_table *t, const char *uid, const struct pod_container *c,
			      size_t n)
{
	struct pod_entry *p = pod_table_find(t, uid);
	if (!p)
		return;
	free(p->cont);
	p->cont = NULL;
	p->ncont = 0;
	if (!n)
		return;
	if (n > POD_MAX_CONTAINERS)
		n = POD_MAX_CONTAINERS;
	p->cont = calloc(n, sizeof(*p->cont));
	if (!p->cont)
		return;
	for (size_t i = 0; i < n; i++) {
		if (!c[i].id || strlen(c[i].id) != 64)
			continue;
		struct pod_cont *o = &p->cont[p->ncont++];
		memcpy(o->id, c[i].id, 65);
		snprintf(o->name, sizeof(o->name), "%s", c[i].name ? c[i].name : "");
		snprintf(o->image, sizeof(o->image), "%s", c[i].image ? c[i].image : "");
		snprintf(o->image_id, sizeof(o->image_id), "%s",
			 c[i].image_id ? c[i].image_id : "");
	}
}

const struct pod_cont *pod_entry_container(const struct pod_entry *p, const char *id)
{
	for (size_t i = 0; i < p->ncont; i++)
		if (p->cont[i].id[0] == id[0] && !memcmp(p->cont[i].id, id, 64))
			return &p->cont[i];
	return NULL;
}

void pod_table_set_labels(struct pod_table *t, const char *uid, const struct meta_kv *kv, size_t n,
			  const struct strlist *want)
{
	struct pod_entry *p = pod_table_find(t, uid);
	if (!p)
		return;
	p->labels_len = 0;
	for (size_t i = 0; i < n; i++) {
		if (!kv[i].key || !kv[i].val || !strlist_has(want, kv[i].key))
			continue;
		size_t kl = strlen(kv[i].key), vl = strlen(kv[i].val);
		if (p->labels_len + kl + vl + 2 > sizeof(p->labels))
			continue;
		memcpy(p->labels + p->labels_len, kv[i].key, kl + 1);
		memcpy(p->labels + p->labels_len + kl + 1, kv[i].val, vl + 1);
		p->labels_len += kl + vl + 2;
	}
}
