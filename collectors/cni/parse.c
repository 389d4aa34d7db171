// SPDX-License-Identifier: Apache-2.0
/* Pure parsers of the CNI collector (see parse.h). */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collectors/cni/parse.h"
#include "util/parse.h"
#include "util/strbuf.h"

static bool is_ident(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_';
}

static bool printable(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

/* Copies n bytes into out when they are non-empty, printable and fit. */
static bool put(char *out, size_t cap, const char *s, size_t n)
{
	if (n == 0 || n >= cap || !printable(s, n))
		return false;
	memcpy(out, s, n);
	out[n] = '\0';
	return true;
}

static bool is_bare_end(unsigned char c)
{
	return c <= ' ' || c == ';' || c == ',' || c == '}' || c == ')' || c == ']' || c == '"' ||
	       c == '\'' || c == '&' || c == '\\' || c == 0x7f;
}

/* Reads the value that starts at s[i] (after the separator). Sets *vs and *vn.
 * Returns false when there is no usable value. */
static bool read_value(const char *s, size_t n, size_t i, const char **vs, size_t *vn)
{
	if (i >= n)
		return false;
	if (s[i] == '\\' && i + 1 < n && s[i + 1] == '"') {
		/* Go-escaped JSON inside a quoted string: \"value\" */
		size_t b = i + 2;
		for (size_t j = b; j + 1 < n; j++) {
			if (s[j] == '\\' && s[j + 1] == '"') {
				*vs = s + b;
				*vn = j - b;
				return true;
			}
			if (s[j] == '\\')
				return false;
		}
		return false;
	}
	if (s[i] == '"') {
		size_t b = i + 1;
		for (size_t j = b; j < n; j++) {
			if (s[j] == '\\')
				return false; /* escapes never occur in the values we take */
			if (s[j] == '"') {
				*vs = s + b;
				*vn = j - b;
				return true;
			}
		}
		return false; /* unterminated */
	}
	size_t j = i;
	while (j < n && !is_bare_end((unsigned char)s[j]))
		j++;
	*vs = s + i;
	*vn = j - i;
	return j > i;
}

/* Finds `key` as a whole identifier followed by '=' or ':' and a value.
 * quoted: the key must be written "key" (or \"key\"). Copies the first usable
 * value into out. */
static bool find_key(const char *s, size_t n, const char *key, bool quoted, char *out, size_t cap)
{
	size_t kl = strlen(key);
	const char *p = s;
	while ((size_t)(p - s) + kl <= n) {
		const char *hit = memmem(p, n - (size_t)(p - s), key, kl);
		if (!hit)
			return false;
		size_t at = (size_t)(hit - s);
		p = hit + 1;
		if (at > 0 && is_ident((unsigned char)s[at - 1]))
			continue;
		if (quoted && (at == 0 || s[at - 1] != '"'))
			continue;
		size_t i = at + kl;
		if (i < n && is_ident((unsigned char)s[i]))
			continue;
		if (i < n && s[i] == '\\' && i + 1 < n && s[i + 1] == '"')
			i += 2;
		else if (i < n && s[i] == '"')
			i++;
		else if (quoted)
			continue;
		while (i < n && s[i] == ' ')
			i++;
		if (i >= n || (s[i] != '=' && s[i] != ':'))
			continue;
		/* "key": "value" may have spaces; key= value is an empty value. */
		if (s[i++] == ':')
			while (i < n && s[i] == ' ')
				i++;
		const char *vs;
		size_t vn;
		if (read_value(s, n, i, &vs, &vn) && put(out, cap, vs, vn))
			return true;
	}
	return false;
}

static bool find_any(const char *s, size_t n, const char *const *keys, bool quoted, char *out,
		     size_t cap)
{
	for (size_t i = 0; keys[i]; i++)
		if (find_key(s, n, keys[i], quoted, out, cap))
			return true;
	return false;
}

/* Normalises an operation word; NULL when it is not one. */
static const char *op_word(const char *s, size_t n)
{
	static const char *const ops[] = {"ADD", "DEL", "CHECK", NULL};
	for (size_t i = 0; ops[i]; i++)
		if (n == strlen(ops[i]) && !strncasecmp(s, ops[i], n))
			return ops[i];
	return NULL;
}

/* A whole word (not part of an identifier) at any place in the line. */
static bool find_word(const char *s, size_t n, const char *w)
{
	size_t wl = strlen(w);
	const char *p = s;
	while ((size_t)(p - s) + wl <= n) {
		const char *hit = memmem(p, n - (size_t)(p - s), w, wl);
		if (!hit)
			return false;
		size_t at = (size_t)(hit - s);
		p = hit + 1;
		if (at > 0 && is_ident((unsigned char)s[at - 1]))
			continue;
		if (at + wl < n && is_ident((unsigned char)s[at + wl]))
			continue;
		return true;
	}
	return false;
}

static void find_operation(const char *s, size_t n, struct cni_meta *m)
{
	static const char *const keys[] = {"CNI_COMMAND", "Command", "command", "cniCommand", NULL};
	char v[16];
	for (size_t i = 0; keys[i]; i++) {
		if (find_key(s, n, keys[i], false, v, sizeof(v))) {
			const char *op = op_word(v, strlen(v));
			if (op) {
				strcpy(m->operation, op);
				return;
			}
		}
	}
	static const struct {
		const char *word;
		const char *op;
	} words[] = {
	    {"cmdAdd", "ADD"}, {"CmdAdd", "ADD"},     {"cmdDel", "DEL"},
	    {"CmdDel", "DEL"}, {"cmdCheck", "CHECK"}, {"CmdCheck", "CHECK"},
	    {"ADD", "ADD"},    {"DEL", "DEL"},	      {"CHECK", "CHECK"},
	};
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		if (find_word(s, n, words[i].word)) {
			strcpy(m->operation, words[i].op);
			return;
		}
	}
}

int cni_line_meta(const char *line, size_t len, struct cni_meta *m)
{
	static const char *const cid[] = {"ContainerID",
					  "containerID",
					  "containerId",
					  "container_id",
					  "K8S_POD_INFRA_CONTAINER_ID",
					  "CNI_CONTAINERID",
					  NULL};
	static const char *const pod[] = {"K8S_POD_NAME", "Pod", "pod", "podName", NULL};
	static const char *const ns[] = {"K8S_POD_NAMESPACE", "Namespace", "namespace",
					 "podNamespace", NULL};
	static const char *const netns[] = {"Netns", "netns", "NetNS", "netNS", "CNI_NETNS", NULL};
	static const char *const plugin[] = {"plugin", "Plugin", "pluginType", NULL};
	static const char *const type[] = {"type", NULL};

	memset(m, 0, sizeof(*m));
	if (!line)
		return 0;
	int found = 0;
	find_operation(line, len, m);
	found += m->operation[0] != '\0';
	found += find_any(line, len, cid, false, m->container_id, sizeof(m->container_id));
	found += find_any(line, len, pod, false, m->pod, sizeof(m->pod));
	found += find_any(line, len, ns, false, m->namespace, sizeof(m->namespace));
	found += find_any(line, len, netns, false, m->netns, sizeof(m->netns));
	if (find_any(line, len, plugin, false, m->plugin, sizeof(m->plugin)) ||
	    find_any(line, len, type, true, m->plugin, sizeof(m->plugin)))
		found++;
	else if (memmem(line, len, "Calico CNI", 10)) {
		strcpy(m->plugin, "calico");
		found++;
	}
	return found;
}

/* ---- result cache files ---- */

static void json_str(const cJSON *obj, const char *key, char *out, size_t cap)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (cJSON_IsString(v) && v->valuestring)
		put(out, cap, v->valuestring, strlen(v->valuestring));
}

static void add_plugin(struct cni_meta *m, const cJSON *conf)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(conf, "type");
	if (!cJSON_IsString(t) || !t->valuestring)
		return;
	size_t tl = strlen(t->valuestring), cur = strlen(m->plugin);
	if (tl == 0 || !printable(t->valuestring, tl) || strchr(t->valuestring, ','))
		return;
	if (cur + (cur ? 1 : 0) + tl >= sizeof(m->plugin))
		return;
	if (cur)
		m->plugin[cur++] = ',';
	memcpy(m->plugin + cur, t->valuestring, tl + 1);
}

/* config is base64 of the network config (one plugin, "type") or of a
 * conflist ("plugins": [{"type": ...}, ...]). */
static void parse_config(const cJSON *root, struct cni_meta *m)
{
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(root, "config");
	if (!cJSON_IsString(c) || !c->valuestring)
		return;
	size_t n = strlen(c->valuestring);
	char *raw = malloc(n / 4 * 3 + 4);
	if (!raw)
		return;
	long dl = base64_decode(c->valuestring, n, raw, n / 4 * 3 + 4);
	cJSON *conf = dl > 0 ? cJSON_ParseWithLength(raw, (size_t)dl) : NULL;
	free(raw);
	if (!cJSON_IsObject(conf)) {
		cJSON_Delete(conf);
		return;
	}
	if (!m->network[0])
		json_str(conf, "name", m->network, sizeof(m->network));
	const cJSON *plugins = cJSON_GetObjectItemCaseSensitive(conf, "plugins");
	if (cJSON_IsArray(plugins)) {
		const cJSON *p;
		cJSON_ArrayForEach(p, plugins)
		{
			if (cJSON_IsObject(p))
				add_plugin(m, p);
		}
	} else {
		add_plugin(m, conf);
	}
	cJSON_Delete(conf);
}

int cni_result_parse(const char *buf, size_t len, struct cni_meta *m)
{
	memset(m, 0, sizeof(*m));
	if (!buf)
		return -EINVAL;
	/* The whole file must be the object: cJSON_ParseWithLength accepts
	 * trailing bytes (e.g. the zero-filled tail of a file after a crash),
	 * and the file is emitted as JSON when this succeeds. */
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
	if (!root)
		return -EINVAL;
	while (end && end < buf + len &&
	       (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t'))
		end++;
	if (!end || end != buf + len || !cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return -EINVAL;
	}
	json_str(root, "containerId", m->container_id, sizeof(m->container_id));
	json_str(root, "ifName", m->ifname, sizeof(m->ifname));
	json_str(root, "networkName", m->network, sizeof(m->network));
	json_str(root, "netns", m->netns, sizeof(m->netns));
	const cJSON *args = cJSON_GetObjectItemCaseSensitive(root, "cniArgs");
	if (cJSON_IsArray(args)) {
		const cJSON *pair;
		cJSON_ArrayForEach(pair, args)
		{
			if (!cJSON_IsArray(pair) || cJSON_GetArraySize(pair) != 2)
				continue;
			const cJSON *k = cJSON_GetArrayItem(pair, 0),
				    *v = cJSON_GetArrayItem(pair, 1);
			if (!cJSON_IsString(k) || !cJSON_IsString(v) || !k->valuestring ||
			    !v->valuestring)
				continue;
			const char *val = v->valuestring;
			if (!strcmp(k->valuestring, "K8S_POD_NAME") && !m->pod[0])
				put(m->pod, sizeof(m->pod), val, strlen(val));
			else if (!strcmp(k->valuestring, "K8S_POD_NAMESPACE") && !m->namespace[0])
				put(m->namespace, sizeof(m->namespace), val, strlen(val));
			else if (!strcmp(k->valuestring, "K8S_POD_INFRA_CONTAINER_ID") &&
				 !m->container_id[0])
				put(m->container_id, sizeof(m->container_id), val, strlen(val));
		}
	}
	parse_config(root, m);
	cJSON_Delete(root);
	return 0;
}

int cni_result_name_parse(const char *name, struct cni_meta *m)
{
	if (!name)
		return -EINVAL;
	const char *last = strrchr(name, '-');
	if (!last || last == name || !last[1])
		return -EINVAL;
	const char *mid = last - 1;
	while (mid > name && *mid != '-')
		mid--;
	if (*mid != '-' || mid == name || mid + 1 == last)
		return -EINVAL;
	char net[sizeof(m->network)], cid[sizeof(m->container_id)], ifn[sizeof(m->ifname)];
	if (!put(net, sizeof(net), name, (size_t)(mid - name)) ||
	    !put(cid, sizeof(cid), mid + 1, (size_t)(last - mid - 1)) ||
	    !put(ifn, sizeof(ifn), last + 1, strlen(last + 1)))
		return -EINVAL;
	strcpy(m->network, net);
	strcpy(m->container_id, cid);
	strcpy(m->ifname, ifn);
	return 0;
}

static bool space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int cni_ipam_parse(const char *buf, size_t len, struct cni_meta *m)
{
	if (!buf)
		return -EINVAL;
	size_t b = 0, e = len;
	while (b < e && space(buf[b]))
		b++;
	while (e > b && space(buf[e - 1]))
		e--;
	const char *nl = memchr(buf + b, '\n', e - b);
	size_t l1 = nl ? (size_t)(nl - buf) - b : e - b;
	while (l1 > 0 && buf[b + l1 - 1] == '\r')
		l1--;
	char cid[sizeof(m->container_id)];
	if (!put(cid, sizeof(cid), buf + b, l1))
		return -EINVAL;
	strcpy(m->container_id, cid);
	m->ifname[0] = '\0';
	if (nl) {
		size_t i = (size_t)(nl - buf) + 1;
		while (i < e && space(buf[i]))
			i++;
		size_t j = i;
		while (j < e && buf[j] != '\n' && buf[j] != '\r')
			j++;
		put(m->ifname, sizeof(m->ifname), buf + i, j - i);
	}
	return 0;
}

bool cni_ipam_name_ok(const char *name)
{
	unsigned char a[16];
	return name && (inet_pton(AF_INET, name, a) == 1 || inet_pton(AF_INET6, name, a) == 1);
}

bool cni_log_name_skip(const char *name)
{
	static const char *const sufs[] = {".gz", ".bz2", ".xz", ".zst", ".lz4", ".zip", NULL};
	if (!name || !*name || !strcmp(name, ".") || !strcmp(name, ".."))
		return true;
	for (size_t i = 0; sufs[i]; i++)
		if (has_suffix(name, sufs[i]))
			return true;
	return false;
}

bool cni_log_name_rotated(const char *name)
{
	if (!name)
		return false;
	size_t n = strlen(name), d = 0;
	while (d < n && name[n - 1 - d] >= '0' && name[n - 1 - d] <= '9')
		d++;
	if (d > 0 && d < n) {
		char sep = name[n - 1 - d];
		if (sep == '.' && n - d > 1)
			return true;
		if (sep == '-' && d >= 8 && n - d > 1)
			return true;
	}
	return n > 4 && has_suffix(name, ".old");
}

bool cni_result_name_skip(const char *name)
{
	return !name || !*name || name[0] == '.' || has_suffix(name, ".tmp") ||
	       has_suffix(name, "~");
}

/* ---- directory snapshot file ---- */

static bool field_num(const char *s, size_t n, bool sign, unsigned long long *out, bool *neg)
{
	size_t i = 0;
	*neg = false;
	if (sign && n > 0 && s[0] == '-') {
		*neg = true;
		i = 1;
	}
	if (i >= n || n - i > 19)
		return false;
	unsigned long long v = 0;
	for (; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*out = v;
	return true;
}

int cni_dirstate_parse(const char *line, size_t len, struct cni_dirstate_ent *e)
{
	const char *f[12];
	size_t fl[12], nf = 0, start = 0;
	memset(e, 0, sizeof(*e));
	if (!line)
		return -EINVAL;
	for (size_t i = 0; i <= len && nf < 12; i++) {
		if (i == len || (line[i] == '\t' && nf < 11)) {
			f[nf] = line + start;
			fl[nf] = i - start;
			nf++;
			start = i + 1;
		}
	}
	if (nf != 12 || fl[0] != 1 || (line[0] != 'n' && line[0] != 'r' && line[0] != 'i'))
		return -EINVAL;
	e->kind = line[0];
	bool neg, unused;
	unsigned long long v;
	if (!field_num(f[1], fl[1], false, &e->ino, &unused) ||
	    !field_num(f[2], fl[2], true, &v, &neg) || v > (unsigned long long)INT64_MAX ||
	    !field_num(f[3], fl[3], false, &e->size, &unused))
		return -EINVAL;
	e->mtime_ns = neg ? -(long long)v : (long long)v;
	struct {
		char *dst;
		size_t cap;
	} meta[] = {
	    {e->m.container_id, sizeof(e->m.container_id)},
	    {e->m.pod, sizeof(e->m.pod)},
	    {e->m.namespace, sizeof(e->m.namespace)},
	    {e->m.netns, sizeof(e->m.netns)},
	    {e->m.network, sizeof(e->m.network)},
	    {e->m.plugin, sizeof(e->m.plugin)},
	    {e->m.ifname, sizeof(e->m.ifname)},
	};
	for (size_t i = 0; i < 7; i++)
		if (fl[4 + i] && !put(meta[i].dst, meta[i].cap, f[4 + i], fl[4 + i]))
			return -EINVAL;
	const char *p = f[11];
	size_t pl = fl[11];
	if (pl == 0 || pl >= sizeof(e->path) || p[0] != '/' || memchr(p, '\0', pl) ||
	    memchr(p, '\t', pl))
		return -EINVAL;
	memcpy(e->path, p, pl);
	e->path[pl] = '\0';
	return 0;
}

int cni_dirstate_format(struct strbuf *sb, const struct cni_dirstate_ent *e)
{
	const char *vals[] = {e->m.container_id, e->m.pod,    e->m.namespace, e->m.netns,
			      e->m.network,	 e->m.plugin, e->m.ifname};
	if (strpbrk(e->path, "\t\n") || e->path[0] != '/')
		return -EINVAL;
	for (size_t i = 0; i < 7; i++)
		if (strpbrk(vals[i], "\t\n"))
			return -EINVAL;
	sb_printf(sb, "%c\t%llu\t%lld\t%llu", e->kind, e->ino, e->mtime_ns, e->size);
	for (size_t i = 0; i < 7; i++) {
		sb_putc(sb, '\t');
		sb_puts(sb, vals[i]);
	}
	sb_putc(sb, '\t');
	sb_puts(sb, e->path);
	sb_putc(sb, '\n');
	return 0;
}
