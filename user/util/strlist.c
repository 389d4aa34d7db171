// SPDX-License-Identifier: Apache-2.0
#include "util/strlist.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

int strlist_split(struct strlist *l, const char *csv)
{
	l->v = NULL;
	l->n = 0;
	if (!csv)
		return 0;
	size_t cap = 1;
	for (const char *p = csv; *p; p++)
		cap += *p == ',';
	l->v = calloc(cap, sizeof(char *));
	if (!l->v)
		return -ENOMEM;
	for (const char *p = csv;;) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		const char *s = p;
		while (n && isspace((unsigned char)*s)) {
			s++;
			n--;
		}
		while (n && isspace((unsigned char)s[n - 1]))
			n--;
		if (n) {
			l->v[l->n] = strndup(s, n);
			if (!l->v[l->n]) {
				strlist_free(l);
				return -ENOMEM;
			}
			l->n++;
		}
		if (!e)
			break;
		p = e + 1;
	}
	return 0;
}

bool strlist_has(const struct strlist *l, const char *s)
{
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->v[i], s))
			return true;
	return false;
}

void strlist_free(struct strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}
