/* SPDX-License-Identifier: Apache-2.0 */
/* Journal entry to JSON (see entry.h). No journal access here: the input is
 * the list of "NAME=value" blobs, so every case is unit-testable. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "collectors/systemd/entry.h"
#include "util/strbuf.h"

/* Length of the name part, or -1 when there is no '=' or the name is empty. */
static long field_name_len(const struct journal_field *f)
{
	const char *eq;

	if (!f->data || f->len == 0)
		return -1;
	eq = memchr(f->data, '=', f->len);
	if (!eq || eq == (const char *)f->data)
		return -1;
	return eq - (const char *)f->data;
}

struct name_ref {
	const char *name;
	size_t len;
	size_t idx; /* position in the entry */
};

static int name_ref_cmp(const void *a, const void *b)
{
	const struct name_ref *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int r = memcmp(x->name, y->name, n);

	if (r)
		return r;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return x->idx < y->idx ? -1 : (x->idx > y->idx);
}

static void put_value(struct strbuf *sb, const char *v, size_t len)
{
	if (utf8_valid(v, len)) {
		sb_json_str(sb, v, len);
	} else {
		sb_puts(sb, "{\"base64\":\"");
		sb_base64(sb, v, len);
		sb_puts(sb, "\"}");
	}
}

/* Indexes the well-formed fields by name into refs (sorted by name, then
 * entry order) and sets first[i] to the start of entry i's group when i is
 * the group's first member, else SIZE_MAX. Returns the count of malformed
 * fields. */
static size_t group_fields(const struct journal_field *f, size_t n, struct name_ref *refs,
			   size_t *first, size_t *nrefs)
{
	size_t nbad = 0;

	*nrefs = 0;
	for (size_t i = 0; i < n; i++) {
		long nl = field_name_len(&f[i]);

		first[i] = SIZE_MAX;
		if (nl < 0) {
			nbad++;
			continue;
		}
		refs[(*nrefs)++] =
		    (struct name_ref){.name = f[i].data, .len = (size_t)nl, .idx = i};
	}
	qsort(refs, *nrefs, sizeof(*refs), name_ref_cmp);
	/* refs is sorted by (name, idx): a group's first member has the lowest idx */
	for (size_t g = 0; g < *nrefs;) {
		size_t e = g + 1;

		while (e < *nrefs && refs[e].len == refs[g].len &&
		       !memcmp(refs[e].name, refs[g].name, refs[g].len))
			e++;
		first[refs[g].idx] = g;
		g = e;
	}
	return nbad;
}

/* Appends the group of fields that starts at refs[g] as "name":value, or
 * "name":[values] when the name repeats. Returns 0, -E2BIG when the object
 * (started at start) would pass max_len, or sb's error. */
static int put_group(struct strbuf *sb, const struct journal_field *f, const struct name_ref *refs,
		     size_t g, size_t nrefs, size_t start, size_t max_len, bool comma)
{
	size_t e, raw;

	for (e = g + 1; e < nrefs && refs[e].len == refs[g].len &&
			!memcmp(refs[e].name, refs[g].name, refs[g].len);
	     e++)
		;
	/* the JSON of a value is never shorter than its raw bytes: stop
	 * before building a huge field that cannot fit */
	raw = refs[g].len;
	for (size_t k = g; k < e; k++)
		raw += f[refs[k].idx].len - refs[k].len - 1;
	if (max_len && sb->len - start + raw > max_len)
		return -E2BIG;
	if (comma)
		sb_putc(sb, ',');
	sb_json_str(sb, refs[g].name, refs[g].len);
	sb_putc(sb, ':');
	if (e - g > 1)
		sb_putc(sb, '[');
	for (size_t k = g; k < e; k++) {
		const char *v = (const char *)f[refs[k].idx].data + refs[k].len + 1;

		if (k > g)
			sb_putc(sb, ',');
		put_value(sb, v, f[refs[k].idx].len - refs[k].len - 1);
	}
	if (e - g > 1)
		sb_putc(sb, ']');
	if (sb->err)
		return sb->err;
	if (max_len && sb->len - start + 1 > max_len)
		return -E2BIG;
	return 0;
}

int journal_entry_json(struct strbuf *sb, const struct journal_field *f, size_t n, size_t max_len,
		       size_t *bad)
{
	struct name_ref stack_refs[64], *refs = stack_refs;
	size_t stack_first[64],
	    *first = stack_first; /* entry idx -> start of its group in refs, or SIZE_MAX */
	size_t start = sb->len, nrefs = 0, nbad = 0;
	bool comma = false;
	int ret = 0;

	if (n > 64) {
		refs = calloc(n, sizeof(*refs));
		first = calloc(n, sizeof(*first));
		if (!refs || !first) {
			ret = -ENOMEM;
			goto out;
		}
	}
	nbad = group_fields(f, n, refs, first, &nrefs);
	sb_putc(sb, '{');
	for (size_t i = 0; i < n && !ret; i++) {
		if (first[i] == SIZE_MAX)
			continue;
		ret = put_group(sb, f, refs, first[i], nrefs, start, max_len, comma);
		comma = true;
	}
	if (ret)
		goto out;
	sb_putc(sb, '}');
	if (sb->err)
		ret = sb->err;
	else if (max_len && sb->len - start > max_len)
		ret = -E2BIG;
out:
	if (refs != stack_refs)
		free(refs);
	if (first != stack_first)
		free(first);
	if (bad)
		*bad = nbad;
	return ret;
}

int journal_field_get(const struct journal_field *f, size_t n, const char *name, char *buf,
		      size_t size)
{
	size_t nl = strlen(name);

	if (size)
		buf[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		const char *d = f[i].data;
		size_t vl;

		if (!d || f[i].len <= nl || d[nl] != '=' || memcmp(d, name, nl))
			continue;
		vl = f[i].len - nl - 1;
		if (!utf8_valid(d + nl + 1, vl))
			return -EINVAL;
		if (vl >= size)
			return -ENOSPC;
		memcpy(buf, d + nl + 1, vl);
		buf[vl] = '\0';
		return (int)(vl > INT32_MAX ? INT32_MAX : vl);
	}
	return -ENOENT;
}
