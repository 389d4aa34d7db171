// SPDX-License-Identifier: Apache-2.0
#include "core/ack.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/event.h"

#define TOKEN_BITS 0x7fffffffu
#define TOKEN_FLAG 0x80000000u

int ack_init(struct ack_tracker *t, uint32_t slots, void (*commit)(void *ctx, uint64_t safe),
	     void *ctx)
{
	memset(t, 0, sizeof(*t));
	if (!slots)
		slots = ACK_DEFAULT_SLOTS;
	if (slots & (slots - 1) || slots > (1u << 30))
		return -EINVAL;
	t->tag = calloc(slots, sizeof(*t->tag));
	t->done = calloc(slots, 1);
	if (!t->tag || !t->done) {
		free(t->tag);
		free(t->done);
		t->tag = NULL;
		t->done = NULL;
		return -ENOMEM;
	}
	t->mask = slots - 1;
	t->commit = commit;
	t->ctx = ctx;
	pthread_mutex_init(&t->lock, NULL);
	return 0;
}

void ack_destroy(struct ack_tracker *t)
{
	if (!t->tag)
		return;
	free(t->tag);
	free(t->done);
	t->tag = NULL;
	t->done = NULL;
	pthread_mutex_destroy(&t->lock);
}

static uint32_t token_of(uint64_t seq)
{
	return ((uint32_t)seq & TOKEN_BITS) | TOKEN_FLAG;
}

/* The sequence of a token among the pending ones; false when it is not. */
static bool seq_of(const struct ack_tracker *t, uint32_t token, uint64_t *seq)
{
	if (!(token & TOKEN_FLAG))
		return false;
	uint64_t s = t->head + (((token & TOKEN_BITS) - (uint32_t)t->head) & TOKEN_BITS);
	if (s >= t->tail)
		return false;
	*seq = s;
	return true;
}

/* Recomputes the safe point and hands it on when it grew. Under lock. */
static void advance_locked(struct ack_tracker *t)
{
	while (t->head < t->tail && t->done[t->head & t->mask])
		t->head++;
	if (!t->have_through)
		return;
	uint64_t safe = t->through;
	if (t->head < t->tail) {
		uint64_t oldest = t->tag[t->head & t->mask];
		if (oldest == 0)
			return;
		if (oldest - 1 < safe)
			safe = oldest - 1;
	}
	if (t->have_safe && safe <= t->safe)
		return;
	t->safe = safe;
	t->have_safe = true;
	if (t->commit)
		t->commit(t->ctx, safe);
}

uint32_t ack_track(struct ack_tracker *t, uint64_t tag)
{
	pthread_mutex_lock(&t->lock);
	uint32_t token = 0;
	if (t->tail - t->head <= t->mask) {
		t->tag[t->tail & t->mask] = tag;
		t->done[t->tail & t->mask] = 0;
		token = token_of(t->tail);
		t->tail++;
		atomic_fetch_add(&t->tracked, 1);
	} else {
		atomic_fetch_add(&t->full, 1);
	}
	pthread_mutex_unlock(&t->lock);
	return token;
}

void ack_untrack(struct ack_tracker *t, uint32_t token)
{
	pthread_mutex_lock(&t->lock);
	if (t->tail > t->head && token == token_of(t->tail - 1)) {
		t->tail--;
		atomic_fetch_sub(&t->tracked, 1);
		advance_locked(t);
	}
	pthread_mutex_unlock(&t->lock);
}

void ack_settle(struct ack_tracker *t, uint32_t token)
{
	uint64_t seq;
	pthread_mutex_lock(&t->lock);
	if (seq_of(t, token, &seq) && !t->done[seq & t->mask]) {
		t->done[seq & t->mask] = 1;
		atomic_fetch_add(&t->settled, 1);
		advance_locked(t);
	} else {
		atomic_fetch_add(&t->stale, 1);
	}
	pthread_mutex_unlock(&t->lock);
}

void ack_through(struct ack_tracker *t, uint64_t v)
{
	pthread_mutex_lock(&t->lock);
	if (!t->have_through || v > t->through) {
		t->through = v;
		t->have_through = true;
	}
	advance_locked(t);
	pthread_mutex_unlock(&t->lock);
}

uint64_t ack_pending(struct ack_tracker *t)
{
	pthread_mutex_lock(&t->lock);
	uint64_t n = 0;
	for (uint64_t s = t->head; s < t->tail; s++)
		n += !t->done[s & t->mask];
	pthread_mutex_unlock(&t->lock);
	return n;
}

bool ack_safe(struct ack_tracker *t, uint64_t *v)
{
	pthread_mutex_lock(&t->lock);
	bool have = t->have_safe;
	if (have)
		*v = t->safe;
	pthread_mutex_unlock(&t->lock);
	return have;
}

static struct ack_tracker *_Atomic trackers[SRC_MAX];

void ack_register(unsigned src, struct ack_tracker *t)
{
	if (src < SRC_MAX)
		atomic_store(&trackers[src], t);
}

void ack_unregister(unsigned src, struct ack_tracker *t)
{
	struct ack_tracker *cur = t;
	if (src < SRC_MAX)
		atomic_compare_exchange_strong(&trackers[src], &cur, NULL);
}

void ack_settle_src(unsigned src, uint32_t token)
{
	if (!token || src >= SRC_MAX)
		return;
	struct ack_tracker *t = atomic_load(&trackers[src]);
	if (t)
		ack_settle(t, token);
}
