/* SPDX-License-Identifier: Apache-2.0 */
/* The etcd collector: one watch on a key prefix over etcd's JSON gateway
 * (POST /v3/watch), resumed by revision. See collectors/etcd/README.md.
 *
 * The watch-response parser and the event encoder are pure functions so that
 * they can be tested on their own. */
#ifndef TAPIO_ETCD_H
#define TAPIO_ETCD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct collector;
struct collector_env;
struct opt_group;
struct source_desc;
struct strbuf;

enum etcd_type { TYPE_ETCD_WATCH = 1, TYPE_ETCD_COMPACTED, ETCD_NTYPES };

/* The collector's options (--etcd-*). */
struct etcd_options {
	char *endpoints; /* comma list of etcd URLs */
	char *prefix;	 /* key prefix to watch */
	char *cacert;
	char *cert;
	char *key;
};
extern const struct opt_group etcd_options_group;
extern const struct source_desc etcd_source;

/* env->opts is a struct etcd_options. Returns NULL with errno and a one-line
 * reason in err for a bad config. */
struct collector *etcd_collector_new(const struct collector_env *env, char *err, size_t errlen);
/* True when the options name etcd endpoints (the agent's auto-selection). */
bool etcd_collector_available(const struct collector_env *env);

/* ---- the watch-response parser ---- */

enum etcd_resp_kind {
	ETCD_RESP_CREATED,   /* the watch was created; header_rev is the store's revision */
	ETCD_RESP_EVENTS,    /* one or more events (fragment: more of this batch follow) */
	ETCD_RESP_PROGRESS,  /* no events: every event up to header_rev has been sent */
	ETCD_RESP_COMPACTED, /* the start revision is compacted: compact_rev is the oldest left */
	ETCD_RESP_CANCELED,  /* canceled for another reason (cancel_reason) */
	ETCD_RESP_ERROR,     /* {"error": ...} from the gateway (error_msg, error_code) */
};

enum etcd_op { ETCD_PUT, ETCD_DELETE };

struct etcd_kv {
	/* base64 of the stored bytes as etcd sent it (validated), "" when empty */
	const char *value_b64;
	size_t value_b64_len;
	size_t value_len; /* decoded length */
	int64_t create_rev, mod_rev, version, lease;
};

struct etcd_event {
	enum etcd_op op;
	char *key; /* decoded key bytes (malloc'd, NUL-terminated; may hold NULs) */
	size_t key_len;
	struct etcd_kv kv;
	bool has_prev;
	struct etcd_kv prev;
};

struct etcd_watch_resp {
	enum etcd_resp_kind kind;
	int64_t header_rev;
	uint64_t cluster_id; /* the header's cluster_id (0 when absent) */
	int64_t compact_rev;
	int64_t watch_id;
	bool fragment;
	char cancel_reason[256];
	char error_msg[256];
	int64_t error_code; /* the gateway's http_code or grpc code */
	struct etcd_event *ev;
	size_t nev;
	size_t bad_events;    /* events skipped as malformed */
	char bad_reason[160]; /* why the first of them was */
	void *json;	      /* the parsed tree: value_b64 points into it */
};

/* Parses one watch response (one JSON object from the stream; not
 * NUL-terminated). Returns 0 with r filled (free it with
 * etcd_watch_resp_free), or -EBADMSG with a one-line reason in err when the
 * response as a whole is malformed (r is then empty), or -ENOMEM. Events that
 * are malformed on their own are left out and counted in r->bad_events. */
int etcd_watch_parse(const char *msg, size_t len, struct etcd_watch_resp *r, char *err,
		     size_t errlen);
/* Frees what the parser allocated. Accepts NULL and an empty response. */
void etcd_watch_resp_free(struct etcd_watch_resp *r);

/* Writes the event's data JSON: {"key","value","create_revision",
 * "mod_revision","version","lease"} plus "key_base64" when the key is not
 * valid UTF-8 and "prev_kv" when etcd sent the previous value. Check sb->err. */
void etcd_event_json(struct strbuf *sb, const struct etcd_event *e);

/* The resource type of a Kubernetes storage key: "pods" for
 * /registry/pods/ns/name, "crd.projectcalico.org/ippools" for an API group's
 * /registry/<group>/<resource>/...; "" when the key is not under /registry/.
 * Writes at most cap - 1 bytes and a NUL. */
void etcd_resource_type(const char *key, size_t key_len, char *out, size_t cap);

/* The watch request body for the prefix and start revision (0 = from now).
 * Check sb->err. */
void etcd_watch_body(struct strbuf *sb, const char *prefix, size_t prefix_len, int64_t start_rev);

#endif
