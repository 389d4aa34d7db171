/* SPDX-License-Identifier: Apache-2.0 */
/* uid -> last emitted resourceVersion, a chained hash table. */
#include "collectors/k8s/seen.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/strbuf.h"
#include "util/textstate.h"

#define SEEN_KIND "k8s-seen"
#define SEEN_VERSION 1

static uint64_t hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

int seen_init(struct seen_map *m, size_t max)
{
	memset(m, 0, sizeof(*m));
	m->max = max ? max : SEEN_DEFAULT_MAX;
	m->nb = 256;
	m->b = calloc(m->nb, sizeof(*m->b));
	return m->b ? 0 : -ENOMEM;
}

void seen_clear(struct seen_map *m)
{
	for (size_t i = 0; m->b && i < m->nb; i++) {
		struct seen_entry *e = m->b[i], *n;
		for (; e; e = n) {
			n = e->next;
			free(e);
		}
		m->b[i] = NULL;
	}
	m->n = 0;
	m->dirty = true;
}

void seen_free(struct seen_map *m)
{
	if (!m)
		return;
	seen_clear(m);
	free(m->b);
	memset(m, 0, sizeof(*m));
}

static bool decimal(const char *s, size_t *len)
{
	size_t n = 0;
	for (; s[n]; n++)
		if (s[n] < '0' || s[n] > '9')
			return false;
	*len = n;
	return n > 0;
}

int k8s_rv_cmp(const char *a, const char *b)
{
	size_t la, lb;
	if (decimal(a, &la) && decimal(b, &lb)) {
		while (la > 1 && *a == '0')
			a++, la--;
		while (lb > 1 && *b == '0')
			b++, lb--;
		if (la != lb)
			return la < lb ? -1 : 1;
		int c = strcmp(a, b);
		return c < 0 ? -1 : c > 0;
	}
	return strcmp(a, b) ? 2 : 0;
}

struct seen_entry *seen_get(const struct seen_map *m, const char *uid)
{
	if (!m->b)
		return NULL;
	for (struct seen_entry *e = m->b[hash(uid) & (m->nb - 1)]; e; e = e->next)
		if (!strcmp(e->uid, uid))
			return e;
	return NULL;
}

bool seen_has(const struct seen_map *m, const char *uid, const char *rv)
{
	const struct seen_entry *e = seen_get(m, uid);
	if (!e)
		return false;
	int c = k8s_rv_cmp(rv, e->rv);
	return c == 0 || c == -1;
}

static void grow(struct seen_map *m)
{
	size_t nb = m->nb * 2;
	struct seen_entry **b = calloc(nb, sizeof(*b));
	if (!b)
		return; /* keep the longer chains */
	for (size_t i = 0; i < m->nb; i++) {
		struct seen_entry *e = m->b[i], *n;
		for (; e; e = n) {
			n = e->next;
			size_t j = hash(e->uid) & (nb - 1);
			e->next = b[j];
			b[j] = e;
		}
	}
	free(m->b);
	m->b = b;
	m->nb = nb;
}

int seen_put(struct seen_map *m, const char *uid, const char *ns, const char *name, const char *rv,
	     bool deleted, uint32_t gen)
{
	if (!uid || !*uid)
		return -EINVAL;
	if (strlen(rv) >= sizeof(((struct seen_entry *)0)->rv))
		return -ENAMETOOLONG;
	struct seen_entry *e = seen_get(m, uid);
	if (e) {
		strcpy(e->rv, rv);
		e->deleted = deleted;
		e->gen = gen;
		m->dirty = true;
		return 0;
	}
	if (m->n >= m->max) {
		m->overflow++;
		return -ENOSPC;
	}
	ns = ns ? ns : "";
	name = name ? name : "";
	size_t lu = strlen(uid) + 1, ln = strlen(ns) + 1, lm = strlen(name) + 1;
	e = malloc(sizeof(*e) + lu + ln + lm);
	if (!e)
		return -ENOMEM;
	char *p = (char *)(e + 1);
	e->uid = memcpy(p, uid, lu);
	e->ns = memcpy(p + lu, ns, ln);
	e->name = memcpy(p + lu + ln, name, lm);
	strcpy(e->rv, rv);
	e->deleted = deleted;
	e->gen = gen;
	if (m->n >= m->nb)
		grow(m);
	size_t i = hash(uid) & (m->nb - 1);
	e->next = m->b[i];
	m->b[i] = e;
	m->n++;
	m->dirty = true;
	return 0;
}

void seen_sweep(struct seen_map *m, uint32_t gen, void (*fn)(void *ctx, const struct seen_entry *e),
		void *ctx)
{
	for (size_t i = 0; m->b && i < m->nb; i++) {
		struct seen_entry **pp = &m->b[i];
		while (*pp) {
			struct seen_entry *e = *pp;
			if (e->gen == gen) {
				pp = &e->next;
				continue;
			}
			if (fn)
				fn(ctx, e);
			*pp = e->next;
			free(e);
			m->n--;
			m->dirty = true;
		}
	}
}

static bool plain(const char *s)
{
	for (; *s; s++)
		if (*s == '\t' || *s == '\n' || *s == '\r')
			return false;
	return true;
}

int seen_serialize(struct seen_map *m, struct strbuf *sb)
{
	textstate_header(sb, SEEN_KIND, SEEN_VERSION);
	for (size_t i = 0; m->b && i < m->nb; i++)
		for (struct seen_entry *e = m->b[i]; e; e = e->next) {
			if (!plain(e->uid) || !plain(e->rv) || !plain(e->ns) || !plain(e->name))
				continue;
			sb_printf(sb, "%s\t%s\t%c\t%s\t%s\n", e->uid, e->rv, e->deleted ? '1' : '0',
				  e->ns, e->name);
		}
	if (sb->err)
		return sb->err;
	m->dirty = false;
	return 0;
}

int seen_parse(struct seen_map *m, const char *buf, size_t len, uint64_t *bad)
{
	long hl = textstate_body(buf, len, SEEN_KIND, SEEN_VERSION, NULL);
	if (hl < 0)
		return (int)hl;
	const char *p = buf + hl, *end = buf + len;
	char line[1024];
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		const char *next = nl ? nl + 1 : end;
		char *f[5];
		size_t nf = 0;
		if (!nl || n >= sizeof(line) || memchr(p, '\0', n)) {
			(*bad)++;
			p = next;
			continue;
		}
		memcpy(line, p, n);
		line[n] = '\0';
		p = next;
		char *s = line;
		/* Four tab-ended fields, then the name (which may not hold a tab). */
		for (;;) {
			f[nf++] = s;
			char *t = nf < 5 ? strchr(s, '\t') : NULL;
			if (!t)
				break;
			*t = '\0';
			s = t + 1;
		}
		if (nf != 5 || strchr(f[4], '\t') || (strcmp(f[2], "0") && strcmp(f[2], "1")) ||
		    !*f[0] || !*f[1]) {
			(*bad)++;
			continue;
		}
		int rc = seen_put(m, f[0], f[3], f[4], f[1], f[2][0] == '1', 0);
		if (rc == -ENOMEM)
			return rc;
		if (rc && rc != -ENOSPC)
			(*bad)++;
	}
	m->dirty = false;
	return 0;
}
