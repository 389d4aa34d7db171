/* SPDX-License-Identifier: Apache-2.0 */
/* Journal entry to JSON: the pure part of the systemd collector. */
#ifndef TAPIO_COLLECTORS_SYSTEMD_ENTRY_H
#define TAPIO_COLLECTORS_SYSTEMD_ENTRY_H

#include <stddef.h>

struct strbuf;

/* One journal field as sd_journal_enumerate_data() gives it: "NAME=value",
 * not NUL-terminated; the value may hold any bytes. */
struct journal_field {
	const void *data;
	size_t len;
};

/* Appends the fields to sb as one JSON object.
 * - The key is the bytes before the first '='.
 * - A value that is valid UTF-8 with no NUL byte becomes a JSON string (control
 *   characters escaped). Any other value becomes {"base64":"..."}: a reader
 *   tells binary from text by the JSON type (object vs string).
 * - A name that appears more than once becomes an array of its values in
 *   entry order; keys keep the order of their first appearance.
 * - A field with no '=' or an empty name is skipped and counted in *bad
 *   (optional, set to the count).
 * Returns 0; -E2BIG when the object would pass max_len bytes (0 = no limit);
 * -ENOMEM. On error sb holds a partial object: the caller resets it. */
int journal_entry_json(struct strbuf *sb, const struct journal_field *f, size_t n, size_t max_len,
		       size_t *bad);

/* Finds the first field called name (NUL-terminated) and copies its value as
 * a C string into buf. Returns the value length; -ENOENT when missing;
 * -EINVAL when the value is not valid UTF-8 text (or holds NUL); -ENOSPC when
 * it does not fit in size bytes (buf is then ""). */
int journal_field_get(const struct journal_field *f, size_t n, const char *name, char *buf,
		      size_t size);

#endif
