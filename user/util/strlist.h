/* SPDX-License-Identifier: Apache-2.0 */
/* Comma lists: "a, b,c" split once, the same way everywhere. */
#ifndef TAPIO_UTIL_STRLIST_H
#define TAPIO_UTIL_STRLIST_H

#include <stdbool.h>
#include <stddef.h>

/* Items trimmed of spaces; empty items left out. */
struct strlist {
	char **v;
	size_t n;
};

/* Returns 0 or -ENOMEM (the list is then empty). csv NULL gives an empty list. */
int strlist_split(struct strlist *l, const char *csv);
/* True when s is in the list. */
bool strlist_has(const struct strlist *l, const char *s);
/* Accepts a zeroed or freed list. */
void strlist_free(struct strlist *l);

#endif
