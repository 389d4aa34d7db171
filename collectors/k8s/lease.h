/* SPDX-License-Identifier: Apache-2.0 */
/* Leader election for the k8s collector's cluster role with a
 * coordination.k8s.io/v1 Lease, the way client-go's leaderelection does it:
 * acquire when the lease is free or expired, renew every renew period with
 * optimistic concurrency (metadata.resourceVersion; a 409 means another agent
 * wrote first), give up after a failed renew before the lease expires, and
 * release (an empty holder) on stop so that a successor takes over at once.
 *
 * Expiry is judged from local observation, not from the holder's clock: a
 * lease is expired when its record (holder, renewTime) has not changed for
 * leaseDurationSeconds since this agent first saw it. The holder stops its
 * cluster role when (duration + renew) / 2 has passed since the start of its
 * last successful write, which is before any other agent can see the lease
 * expire.
 *
 * Every request on the lease is bounded by the time left until that give-up
 * point, and the cluster role emits nothing past it (k8s_lease_may_emit),
 * even while a request to a server that does not answer is still under way.
 *
 * The lease also carries the cluster role's cursors, one annotation per
 * resource (tapio.io/rv-<resource>: resourceVersion), written with every
 * renew and read by the next holder. The holder renews early once the sink
 * has acknowledged cursors the lease does not carry yet, at most once per
 * K8S_LEASE_CURSOR_DIV-th of the renew period: what a successor emits again
 * after a crash is what was acknowledged since that write. The election
 * thread does not poll for moved cursors: the acknowledgement that moves
 * one wakes it (k8s_lease_cursor_moved), so an idle holder wakes only to
 * renew. */
#ifndef TAPIO_K8S_LEASE_H
#define TAPIO_K8S_LEASE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "http/watch.h"

struct strbuf;
struct k8s;

#define K8S_LEASE_MAX_CURSORS 16
#define K8S_LEASE_ANNOTATION "tapio.io/rv-"
#define K8S_LEASE_CURSOR_DIV 4 /* cursor writes: at most 4 per renew period */

/* The parts of a Lease object that the election reads and writes. */
struct k8s_lease_rec {
	char rv[64];	   /* metadata.resourceVersion */
	char holder[256];  /* spec.holderIdentity, "" when free */
	char acquire[40];  /* spec.acquireTime (RFC 3339 micro) */
	char renew[40];	   /* spec.renewTime */
	unsigned duration; /* spec.leaseDurationSeconds */
	unsigned transitions;
	size_t ncur;
	struct {
		char res[32];
		char rv[64];
	} cur[K8S_LEASE_MAX_CURSORS];
};

/* Parses a Lease (a GET, create or update response). Returns 0, or -EBADMSG
 * with the reason in why, or -ENOMEM. Unknown annotations are ignored. */
int k8s_lease_parse(const char *json, size_t len, struct k8s_lease_rec *rec, char *why,
		    size_t whylen);
/* Writes the Lease object for a create (rec->rv "") or an update (with
 * metadata.resourceVersion). Returns 0 or sb's error. */
int k8s_lease_body(struct strbuf *sb, const char *name, const char *ns,
		   const struct k8s_lease_rec *rec);
/* The cursor of resource res in rec, or NULL. */
const char *k8s_lease_cursor(const struct k8s_lease_rec *rec, const char *res);
/* Sets (or adds) the cursor of res. Returns 0, or -ENOSPC / -ENAMETOOLONG. */
int k8s_lease_set_cursor(struct k8s_lease_rec *rec, const char *res, const char *rv);
/* An RFC 3339 time with microseconds (the MicroTime of the API) for ns since
 * the epoch. */
void k8s_lease_microtime(uint64_t ns, char *buf, size_t size);

/* The time the holder keeps its role after its last successful write. */
static inline unsigned k8s_lease_deadline_ms(unsigned duration_ms, unsigned renew_ms)
{
	return (duration_ms + renew_ms) / 2;
}

struct k8s_lease {
	struct k8s *k;
	char *name, *ns, *holder;
	char *url;	/* .../namespaces/NS/leases/NAME */
	char *coll_url; /* .../namespaces/NS/leases */
	unsigned renew_ms, duration_ms;
	pthread_t thr;
	bool started;
	atomic_bool stop;
	atomic_bool leader;
	/* While held: the give-up point (monotonic ns) of the last successful
	 * write; 0 otherwise. */
	_Atomic uint64_t until_mono;
	atomic_bool expired;   /* an emission found the give-up point passed */
	atomic_bool reachable; /* the last request got an answer of the Lease protocol */
	_Atomic uint64_t renew_failures, acquired, lost;
	/* the election thread's own state */
	struct k8s_lease_rec obs; /* the record last read */
	uint64_t obs_mono;	  /* when obs's holder/renewTime last changed */
	bool have_obs;
	uint64_t ok_mono;	/* start of the last successful write as holder */
	int last_err;		/* the last failure reported, to report changes only */
	struct watch_conn conn; /* its requests' kept connection (the thread's) */
	/* a cursor moved since the thread last looked (k8s_lease_cursor_moved) */
	pthread_mutex_t moved_lock;
	pthread_cond_t moved_cv; /* CLOCK_MONOTONIC */
	bool moved, moved_ok;
};

/* Wakes a holder that waits for moved cursors (any thread; cheap when none
 * waits). */
void k8s_lease_cursor_moved(struct k8s_lease *l);

/* Whether the cluster role may emit now: only before the give-up point of
 * the lease's last successful write. Past it, notes that the role outlived
 * its lease (the election thread then stops it). */
bool k8s_lease_may_emit(struct k8s_lease *l);

/* Starts and stops the election thread. k8s_lease_stop stops the cluster
 * role (k8s_role_cluster_stop) and then releases the lease when held. */
int k8s_lease_start(struct k8s_lease *l);
void k8s_lease_stop(struct k8s_lease *l);
void k8s_lease_free(struct k8s_lease *l);

#endif
