/* SPDX-License-Identifier: Apache-2.0 */
/* Parsers for what the Kubernetes API server sends: one watch-stream line
 * ({"type":..,"object":{..}}), a List response body, and the metadata-only
 * filter for configmaps and secrets. Pure functions over cJSON: no I/O, no
 * printing. The object's bytes are located in the input, so that the collector
 * can pass them on exactly as received.
 */
#ifndef TAPIO_K8S_PARSE_H
#define TAPIO_K8S_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum k8s_ev {
	K8S_EV_ADDED = 0,
	K8S_EV_MODIFIED,
	K8S_EV_DELETED,
	K8S_EV_BOOKMARK,
	K8S_EV_ERROR,
};

/* "ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR". */
const char *k8s_ev_name(enum k8s_ev t);

/* The object metadata tapio uses; "" when absent. Longer values than these
 * fields hold make the object malformed (Kubernetes' own limits are smaller:
 * names 253, namespaces 63, uids 36). */
struct k8s_objmeta {
	char name[256];
	char ns[64];
	char uid[64];
	char rv[64];
};

struct k8s_watch_event {
	enum k8s_ev type;
	const char *obj; /* the "object" value's bytes inside the line */
	size_t obj_len;
	struct k8s_objmeta meta; /* ADDED/MODIFIED/DELETED/BOOKMARK */
	long code;		 /* ERROR: the Status's code (0 if none) */
	char reason[64];	 /* ERROR: reason ("Expired", "Gone", ...) */
	char message[256];	 /* ERROR: message, cut to fit */
};

/* Parses one watch line (len bytes, need not be NUL-terminated). Returns 0,
 * or -EBADMSG after writing a short reason into err (never any of the
 * object's content): invalid JSON, trailing bytes, a missing or duplicate
 * type/object, an unknown type, or an ADDED/MODIFIED/DELETED object without
 * metadata.name, uid or resourceVersion, or a BOOKMARK without
 * resourceVersion. ev->obj points into line. */
int k8s_parse_watch_line(const char *line, size_t len, struct k8s_watch_event *ev, char *err,
			 size_t errlen);

/* Called per List item with its bytes (inside the body) and metadata. Return
 * 0 to go on or a negative errno to stop (k8s_parse_list returns it). */
typedef int (*k8s_item_fn)(void *ctx, const char *obj, size_t len, const struct k8s_objmeta *m);

struct k8s_list_info {
	char rv[64];	    /* metadata.resourceVersion of the list */
	char *cont;	    /* metadata.continue, malloc'd; NULL on the last page */
	uint64_t bad_items; /* items skipped: not objects or no name/uid/resourceVersion */
};

/* Parses a List response body: calls fn for each good item in order and fills
 * info (free info->cont). Returns 0, the callback's error, -ENOMEM, or
 * -EBADMSG with a reason in err (not JSON, no items array, no
 * metadata.resourceVersion). */
int k8s_parse_list(const char *body, size_t len, k8s_item_fn fn, void *ctx,
		   struct k8s_list_info *info, char *err, size_t errlen);

/* For resources fetched as metadata only (configmaps, secrets): checks that
 * obj carries nothing but kind, apiVersion and metadata, and no
 * kubectl.kubernetes.io/last-applied-configuration annotation (which holds a
 * copy of the data). Returns 0 when obj may be passed on as is; 1 when it may
 * not, after writing a stripped copy into *out (malloc'd, caller frees; a
 * PartialObjectMetadata with the object's metadata minus that annotation);
 * -EBADMSG when obj is not a JSON object with a metadata object; -ENOMEM. */
int k8s_metadata_only(const char *obj, size_t len, char **out, size_t *outlen);

#endif
