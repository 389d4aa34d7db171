/* SPDX-License-Identifier: Apache-2.0 */
/* Embedding JSON text that came from outside (a CNI result, a Kubernetes
 * object, an etcd value, a journal entry) into an output line.
 *
 * The text is checked in one linear pass and written out strict: valid UTF-8
 * only, no raw control bytes, on one line. Inside strings an invalid UTF-8
 * byte becomes \ufffd, a raw control byte \u00XX, and an escaped lone
 * surrogate \ufffd; whitespace between tokens becomes spaces. Text that is
 * not one JSON value (a syntax error, trailing bytes, nesting deeper than
 * JSON_EMBED_MAX_DEPTH) is carried as a JSON string instead (sb_json_str). */
#ifndef TAPIO_JSON_EMBED_H
#define TAPIO_JSON_EMBED_H

#include <stddef.h>

struct strbuf;

#define JSON_EMBED_MAX_DEPTH 256

/* Appends the n bytes of p as strict JSON. Returns 1 when p was one valid
 * JSON value (embedded as such), 0 when it was carried as a string. */
int json_embed(struct strbuf *sb, const char *p, size_t n);

#endif
