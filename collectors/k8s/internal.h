/* SPDX-License-Identifier: Apache-2.0 */
/* The k8s collector's private parts, shared by its files: collector.c (ops,
 * the per-resource threads, construction), auth.c (kubeconfig, in-cluster,
 * tokens), list.c (LIST and relist) and stream.c (WATCH, requests and event
 * emission). */
#ifndef TAPIO_K8S_INTERNAL_H
#define TAPIO_K8S_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/ack.h"
#include "core/collector.h"
#include "core/state.h"
#include "collectors/k8s/k8s.h"
#include "collectors/k8s/k8s_parse.h"
#include "collectors/k8s/lease.h"
#include "collectors/k8s/seen.h"
#include "http/watch.h"

struct strbuf;

#define K8S_BACKOFF_BASE_MS 800
#define K8S_BACKOFF_CAP_MS 30000
#define K8S_LIST_LIMIT 500
#define K8S_LIST_MAX_BODY (64u << 20)
#define K8S_TOKEN_MAX (64u << 10)
#define K8S_TOKEN_REREAD_NS (60ull * 1000000000ull)
#define K8S_GARBAGE_LINES 8 /* malformed lines in a row that mean "reconnect" */
#define K8S_SEEN_SAVE_NS (10ull * 1000000000ull)
#define K8S_DEFAULT_RESOURCES                                                                      \
	"pods,services,nodes,events,deployments,replicasets,configmaps,secrets"

#define ACCEPT_JSON "application/json"
#define ACCEPT_META "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"
#define ACCEPT_META_LIST                                                                           \
	"application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"

struct res_def {
	const char *name, *path, *kind, *api_version;
	bool meta_only;	  /* fetched as PartialObjectMetadata */
	bool node_scoped; /* filtered by spec.nodeName when a node name is set */
};

struct k8s;

/* What the sink's acknowledgement of one tracked position commits (see
 * commit.c): the resource's cursor, its seen map, or both. */
enum {
	SLOT_CURSOR = 1,   /* rv is the resource's cursor once this is acknowledged */
	SLOT_SEEN = 2,	   /* obj/orv go into the committed seen map */
	SLOT_DELETED = 4,  /* ... as a deletion */
	SLOT_LIST_END = 8, /* a complete list: drop the committed deletions */
};

struct k8s_slot {
	uint32_t res; /* index in k8s.res */
	uint32_t flags;
	char rv[64];  /* SLOT_CURSOR */
	char orv[32]; /* SLOT_SEEN: the object's resourceVersion */
	char *obj;    /* SLOT_SEEN: "uid\0ns\0name\0", malloc'd */
};

struct k8s_res {
	struct k8s *k;
	const struct res_def *def;
	pthread_t thr;
	bool started;
	bool cluster;	   /* in the cluster role (role.c) */
	atomic_bool stop;  /* this thread's stop: the collector's, or a lost lease */
	char lease_rv[64]; /* the cursor the lease handed over, "" for none */
	atomic_bool healthy;
	struct cursor cur;    /* holds the committed (acknowledged) resourceVersion */
	char rv[64];	      /* the resourceVersion passed on (a watch resumes here) */
	struct seen_map seen; /* what was passed on: skips repeats within a run */
	/* What the sink acknowledged: the map that is saved. cseen_lock guards
	 * it (the sink's thread commits into it, this thread saves it). */
	struct seen_map cseen;
	pthread_mutex_t cseen_lock;
	uint32_t gen;
	uint64_t seen_saved_ns;
	char seen_file[128];
	/* state of the request in progress */
	unsigned bad_streak;
	bool got_msg;
	bool refused; /* the watch ended with an in-band ERROR 400 */
	int list_err;
	char list_rv[64];
	char *list_cont;
	/* counters */
	_Atomic uint64_t relists, duplicates, stripped, tombstones;
	uint64_t parse_logged;
};

struct k8s {
	struct collector base;
	struct queue *q;
	const struct collector_hooks *hooks; /* pod_update for the pod cache */
	atomic_bool stop;
	char *server;
	char *source; /* "kubeconfig FILE (context C)" or "in-cluster" */
	struct watch_tls tls;
	char *ca_file, *ca_pem, *cert_file, *cert_pem, *key_file, *key_pem;
	pthread_mutex_t tok_lock;
	char *token;
	char *token_file;
	uint64_t token_ns;
	char *node_sel; /* URL-encoded "spec.nodeName=NODE", or NULL */
	char *state_dir;
	size_t max_msg;
	struct k8s_res *res;
	size_t nres;
	/* role.c */
	enum k8s_role role;
	bool use_lease; /* cluster-role resources run under the lease */
	struct k8s_lease lease;
	pthread_mutex_t role_lock; /* cluster role start/stop */
	bool cluster_running;
	/* Acknowledgements: one tracker for the source, shared by the resources.
	 * Tags are a sequence (emit_lock keeps them in order); slots[tag & mask]
	 * says what the tag commits. applied: the last tag committed. */
	struct ack_tracker ack;
	bool ack_ok;
	pthread_mutex_t emit_lock;
	uint64_t seq, applied;
	struct k8s_slot *slots;
	uint32_t slot_mask;
};

static inline bool k8s_stopped(struct k8s *k)
{
	return atomic_load(&k->stop);
}

static inline bool k8s_res_stopped(struct k8s_res *r)
{
	return atomic_load(&r->stop);
}

/* ---- auth.c ---- */

/* Reads a whole small file. Returns a malloc'd NUL-terminated copy or NULL
 * with errno (EFBIG when over max). */
char *k8s_read_file(const char *path, size_t max, size_t *lenp);
/* A token file's content; NULL with errno on error (EINVAL: a control byte). */
char *k8s_read_token(const char *path);
/* The current bearer token (malloc'd copy; NULL when none). Re-reads the
 * token file when force is set or a minute has passed. */
char *k8s_token_get(struct k8s *k, bool force);
/* Wipes and frees a token copy; accepts NULL. */
void k8s_token_free(char *t);
/* A 401: re-reads the token. Returns true when it changed (retry at once). */
bool k8s_on_unauthorized(struct k8s_res *r, const char *what);
/* The kubeconfig path to use, or NULL for in-cluster / none. malloc'd. */
char *k8s_kubeconfig_path(const struct k8s_options *o, bool *explicit_);
/* Fills server, credentials and source from the kubeconfig, the in-cluster
 * serviceaccount, or fails with ENOENT when there is neither; then checks
 * that the files are readable and that no token goes over plain http. */
int k8s_setup_auth(struct k8s *k, const struct k8s_options *o, char *err, size_t errlen);

/* ---- stream.c ---- */

/* Percent-encodes everything but RFC 3986 unreserved characters. */
void k8s_url_escape(struct strbuf *sb, const char *s);
void k8s_build_url(struct k8s_res *r, struct strbuf *sb, bool watch, unsigned limit,
		   unsigned timeout);
int k8s_run(struct k8s_res *r, const char *url, bool watch, unsigned timeout, frame_fn fn,
	    char *token, struct watch_result *res);
void k8s_log_parse_error(struct k8s_res *r, const char *what, const char *why);
/* Emits one object with the stable id k8s-<resource>-<uid>-<resourceVersion>
 * (id_rv NULL) or k8s-<resource>-<uid>-<id_rv>. cursor_rv: the resource's
 * cursor once the sink has it (NULL: none, a list item). Returns 0 when it
 * was passed on (or refused for good and counted, e.g. too big for the
 * queue: then committed at once), 1 when it was skipped as malformed,
 * -EAGAIN when the queue stayed full (the caller resumes from its cursor),
 * -ECANCELED when the queue is closed, -ENOMEM. */
int k8s_emit(struct k8s_res *r, const char *type, const char *obj, size_t len,
	     const struct k8s_objmeta *m, const char *origin, const char *cursor_rv,
	     const char *id_rv);
/* Sets the resourceVersion passed on (r->rv); the cursor follows once the
 * sink has acknowledged everything before it. */
void k8s_set_rv(struct k8s_res *r, const char *rv);
/* A complete list at rv: the cursor and the committed seen map follow it
 * once the sink has everything before. Returns 0 or -EAGAIN (too many
 * unacknowledged). */
int k8s_list_done(struct k8s_res *r, const char *rv);
/* Saves the committed seen map (at most every K8S_SEEN_SAVE_NS unless force). */
void k8s_save_seen(struct k8s_res *r, bool force);
void k8s_remember(struct k8s_res *r, const struct k8s_objmeta *m, bool deleted);

enum k8s_outcome { OUT_AGAIN, OUT_RELIST, OUT_FAIL, OUT_STOP };

/* One WATCH from r->rv to its end. *http gets the HTTP status. */
enum k8s_outcome k8s_do_watch(struct k8s_res *r, long *http);

/* ---- commit.c ---- */

int k8s_ack_init(struct k8s *k);
/* Frees the slots not committed. */
void k8s_ack_destroy(struct k8s *k);
/* Tracks a slot (emit_lock held). Returns its token, 0 when full. The tag
 * is k->seq after the call. */
uint32_t k8s_track(struct k8s_res *r, const struct k8s_slot *s);
/* Gives back the slot last tracked (emit_lock held). */
void k8s_untrack(struct k8s_res *r, uint32_t token);
/* The slot last tracked went into the queue (emit_lock held). */
void k8s_tracked(struct k8s_res *r);
/* Tracks, passes and settles a slot that has no event (a bookmark, a list's
 * end, an event refused for good). Returns 0 or -EAGAIN when full. */
int k8s_mark(struct k8s_res *r, const struct k8s_slot *s);
/* Fills s's SLOT_SEEN part from m (orv: m->rv). Returns 0 or -ENOMEM. */
int k8s_slot_obj(struct k8s_slot *s, const struct k8s_objmeta *m, bool deleted);

/* ---- list.c ---- */

/* One complete paged LIST. Returns 0 (r->rv set to the list's version),
 * -ECANCELED when stopping, -EAGAIN (queue full), or another negative errno
 * after reporting it. *http gets the status of a failed request. */
int k8s_do_list(struct k8s_res *r, long *http);
/* prime.c: for pods resumed from a cursor, one LIST that fills the pod cache
 * (the pod_update hook) and emits nothing. Returns 0 or a negative errno. */
int k8s_prime_pods(struct k8s_res *r);

/* ---- collector.c ---- */

/* Starts and stops one resource's thread (stop: sets its stop and joins). */
int k8s_res_start(struct k8s_res *r);
void k8s_res_stop(struct k8s_res *r);

/* ---- role.c ---- */

/* "node", "cluster" or "auto". Returns 0 or -EINVAL. */
int k8s_role_parse(const char *s, enum k8s_role *out);
/* Whether a resource belongs to the cluster role: everything but the
 * node-scoped ones when a node name is set. */
bool k8s_role_is_cluster(const struct k8s *k, const struct res_def *d);
/* Whether role runs the resource at all. */
bool k8s_role_runs(const struct k8s *k, const struct res_def *d);
/* The lease's name, namespace, holder identity and URLs, from the options and
 * the environment (POD_NAMESPACE, POD_NAME, the serviceaccount namespace). */
int k8s_role_setup(struct k8s *k, const struct k8s_options *o, const char *node, char *err,
		   size_t errlen);
/* Starts the node role's threads and the election (or the cluster role when
 * there is no lease); stops all of it, releasing the lease. */
int k8s_role_start(struct k8s *k);
void k8s_role_stop(struct k8s *k);
/* Called by the election: the cluster role starts from the lease's cursors,
 * and stops (joined: no event of it is emitted after the return). */
void k8s_role_cluster_start(struct k8s *k, const struct k8s_lease_rec *rec);
void k8s_role_cluster_stop(struct k8s *k);
/* The cluster role's current cursors, into rec (kept as they are for
 * resources with none yet). */
void k8s_role_cursors(struct k8s *k, struct k8s_lease_rec *rec);
/* k8s_leader, k8s_lease_acquired/lost/renew_failures. */
void k8s_role_counters(struct k8s *k, counter_fn fn, void *ctx);

#endif
