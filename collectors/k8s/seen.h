/* SPDX-License-Identifier: Apache-2.0 */
/* The k8s collector's record of what it has passed on: per object uid, the
 * last resourceVersion emitted and whether the object was deleted. It makes
 * delivery exactly-once across relists (a relisted object whose version was
 * already emitted is skipped) and lets a relist notice objects that vanished.
 * Bounded: past `max` entries new objects are not recorded (counted in
 * overflow) and may then repeat after a relist. Saved in the state directory
 * as text lines; seen_parse() is the loader and skips bad lines.
 * Not thread-safe: one map per resource thread.
 */
#ifndef TAPIO_K8S_SEEN_H
#define TAPIO_K8S_SEEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct strbuf;

struct seen_entry {
	struct seen_entry *next;
	uint32_t gen; /* the last list generation that had it */
	bool deleted; /* its last event was DELETED */
	char rv[32];
	char *uid, *ns, *name; /* inside the same allocation */
};

struct seen_map {
	struct seen_entry **b;
	size_t nb, n, max;
	uint64_t overflow; /* objects not recorded because the map was full */
	bool dirty;	   /* changed since seen_serialize */
};

#define SEEN_DEFAULT_MAX (1u << 20)

/* max 0 = SEEN_DEFAULT_MAX. Returns 0 or -ENOMEM. */
int seen_init(struct seen_map *m, size_t max);
/* Frees every entry. Accepts a zeroed map. */
void seen_free(struct seen_map *m);
void seen_clear(struct seen_map *m);

/* Compares resourceVersions: both decimal integers compare by value; anything
 * else is only equal or not. Returns -1, 0, 1, or 2 for "different but not
 * ordered". */
int k8s_rv_cmp(const char *a, const char *b);

/* The entry for uid, or NULL. */
struct seen_entry *seen_get(const struct seen_map *m, const char *uid);

/* True when the version rv of uid (or a later one) was already passed on. */
bool seen_has(const struct seen_map *m, const char *uid, const char *rv);

/* Records that rv of the object was passed on (deleted: it was a deletion).
 * gen is the current list generation. Returns 0, -ENOSPC when the map is
 * full (counted in overflow), -ENAMETOOLONG for an rv over 31 bytes (not
 * recorded), -EINVAL for an empty uid, or -ENOMEM. */
int seen_put(struct seen_map *m, const char *uid, const char *ns, const char *name, const char *rv,
	     bool deleted, uint32_t gen);

/* Calls fn for every entry whose gen differs from gen (objects a relist did
 * not return), then removes those entries. */
void seen_sweep(struct seen_map *m, uint32_t gen, void (*fn)(void *ctx, const struct seen_entry *e),
		void *ctx);

/* Appends the map as text ("tapio-k8s-seen 1" then "uid\trv\tD\tns\tname"
 * lines; entries with a tab or newline in a field are left out). Clears dirty.
 * Returns 0 or -ENOMEM. */
int seen_serialize(struct seen_map *m, struct strbuf *sb);

/* Loads entries from seen_serialize() text (gen 0). Bad lines are skipped and
 * counted in *bad. Returns 0, -EINVAL when the header is wrong (nothing is
 * loaded), or -ENOMEM. */
int seen_parse(struct seen_map *m, const char *buf, size_t len, uint64_t *bad);

#endif
