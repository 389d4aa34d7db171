/* SPDX-License-Identifier: Apache-2.0 */
/* The k8s collector's acknowledgements: what moves the stored cursors and
 * the saved seen maps.
 *
 * All resources share the source, so they share one tracker (core/ack.h).
 * Every position that matters is tracked in emit order under emit_lock with
 * the next tag of a sequence: an emitted object (its token rides in the
 * event), a bookmark's resourceVersion, a list's end. slots[tag & mask] says
 * what the tag commits: a resource's cursor (the resourceVersion to watch
 * from), an entry of its committed seen map, or both. When the sink has
 * acknowledged every tag up to S, the tracker calls commit_to(S), which
 * applies the slots up to S in order. So a stored resourceVersion is never
 * past an object version the sink does not have, and the saved seen map
 * holds only what the sink has. The cost of the shared sequence: a
 * resource's cursor also waits for the other resources' older events. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "collectors/k8s/internal.h"

static void apply(struct k8s *k, struct k8s_slot *s)
{
	struct k8s_res *r = &k->res[s->res];
	if (s->flags & (SLOT_SEEN | SLOT_LIST_END)) {
		pthread_mutex_lock(&r->cseen_lock);
		if (s->flags & SLOT_SEEN) {
			const char *uid = s->obj, *ns = uid + strlen(uid) + 1;
			const char *name = ns + strlen(ns) + 1;
			bool del = s->flags & SLOT_DELETED;
			/* gen 1 marks a deletion, for the sweep at a list's end */
			seen_put(&r->cseen, uid, ns, name, s->orv, del, del ? 1 : 0);
		}
		if (s->flags & SLOT_LIST_END)
			seen_sweep(&r->cseen, 0, NULL, NULL); /* as the list swept its map */
		pthread_mutex_unlock(&r->cseen_lock);
	}
	if (s->flags & SLOT_CURSOR) {
		int rc = cursor_update(&r->cur, s->rv);
		if (r->cluster && k->use_lease)
			k8s_lease_cursor_moved(&k->lease); /* the lease carries it */
		if (rc && rc != -ENAMETOOLONG && r->cur.last_err != rc) {
			atomic_fetch_add(&k->base.n.errors, 1);
			collector_error(&k->base, "%s: cannot save the resourceVersion in %s: %s",
					r->def->name, k->state_dir, strerror(-rc));
		}
	}
	free(s->obj);
	s->obj = NULL;
	s->flags = 0;
}

/* The tracker's commit (under its lock): the sink has every tag <= safe. */
static void commit_to(void *ctx, uint64_t safe)
{
	struct k8s *k = ctx;
	while (k->applied < safe) {
		k->applied++;
		apply(k, &k->slots[k->applied & k->slot_mask]);
	}
}

int k8s_ack_init(struct k8s *k)
{
	int rc = ack_init(&k->ack, ACK_DEFAULT_SLOTS, commit_to, k);
	if (rc)
		return rc;
	k->slots = calloc(ACK_DEFAULT_SLOTS, sizeof(*k->slots));
	if (!k->slots) {
		ack_destroy(&k->ack);
		return -ENOMEM;
	}
	k->slot_mask = ACK_DEFAULT_SLOTS - 1;
	pthread_mutex_init(&k->emit_lock, NULL);
	k->ack_ok = true;
	return 0;
}

void k8s_ack_destroy(struct k8s *k)
{
	if (!k->ack_ok)
		return;
	for (uint64_t t = k->applied + 1; t <= k->seq; t++)
		free(k->slots[t & k->slot_mask].obj);
	free(k->slots);
	k->slots = NULL;
	ack_destroy(&k->ack);
	pthread_mutex_destroy(&k->emit_lock);
	k->ack_ok = false;
}

uint32_t k8s_track(struct k8s_res *r, const struct k8s_slot *s)
{
	struct k8s *k = r->k;
	uint32_t token = ack_track(&k->ack, k->seq + 1);
	if (!token)
		return 0;
	/* The slot is free: its tag is more than a ring behind (ack_track
	 * keeps at most mask + 1 unsettled, and commit_to emptied it). */
	struct k8s_slot *d = &k->slots[++k->seq & k->slot_mask];
	*d = *s;
	d->res = (uint32_t)(r - k->res);
	return token;
}

void k8s_untrack(struct k8s_res *r, uint32_t token)
{
	struct k8s *k = r->k;
	struct k8s_slot *d = &k->slots[k->seq & k->slot_mask];
	free(d->obj);
	d->obj = NULL;
	d->flags = 0;
	k->seq--;
	ack_untrack(&k->ack, token);
}

void k8s_tracked(struct k8s_res *r)
{
	ack_through(&r->k->ack, r->k->seq);
}

int k8s_mark(struct k8s_res *r, const struct k8s_slot *s)
{
	struct k8s *k = r->k;
	pthread_mutex_lock(&k->emit_lock);
	uint32_t token = k8s_track(r, s);
	if (token) {
		k8s_tracked(r);
		ack_settle(&k->ack, token);
	}
	pthread_mutex_unlock(&k->emit_lock);
	return token ? 0 : -EAGAIN;
}

int k8s_slot_obj(struct k8s_slot *s, const struct k8s_objmeta *m, bool deleted)
{
	size_t lu = strlen(m->uid) + 1, ln = strlen(m->ns) + 1, lm = strlen(m->name) + 1;
	if (strlen(m->rv) >= sizeof(s->orv))
		return 0; /* not recorded, as seen_put would not */
	s->obj = malloc(lu + ln + lm);
	if (!s->obj)
		return -ENOMEM;
	memcpy(s->obj, m->uid, lu);
	memcpy(s->obj + lu, m->ns, ln);
	memcpy(s->obj + lu + ln, m->name, lm);
	strcpy(s->orv, m->rv);
	s->flags |= SLOT_SEEN | (deleted ? SLOT_DELETED : 0);
	return 0;
}
