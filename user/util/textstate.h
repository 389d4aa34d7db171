/* SPDX-License-Identifier: Apache-2.0 */
/* Versioned text state files: a first line "tapio-<kind> <version>\n", then
 * the body the module parses. One shape for every state file that is more
 * than a single cursor (the CNI offsets and directory snapshot, the k8s
 * seen map). Pure functions: no I/O. */
#ifndef TAPIO_UTIL_TEXTSTATE_H
#define TAPIO_UTIL_TEXTSTATE_H

#include <stddef.h>

struct strbuf;

/* Appends the header line. */
void textstate_header(struct strbuf *sb, const char *kind, unsigned version);

/* Checks that buf starts with kind's header of a version from 1 to max.
 * Returns the offset of the body and sets *version (optional), or -EINVAL
 * (not this kind of file, or a broken header) or -EPROTO (a newer version
 * than max: written by a newer tapio). */
long textstate_body(const char *buf, size_t len, const char *kind, unsigned max, unsigned *version);

#endif
