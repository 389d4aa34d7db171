// SPDX-License-Identifier: Apache-2.0
/* Agent configuration: one table of options, read from defaults, the YAML
 * file, TAPIO_* environment variables and flags, in rising precedence. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "core/config.h"
#include "util/parse.h"
#include "util/strbuf.h"

#define O(n, t, f, d, h) OPT_ENTRY(struct tapio_config, n, t, f, d, h)

/* The port of a --metrics-addr that is a bare IP address. */
#define METRICS_DEFAULT_PORT "9090"

static const struct opt agent_opts[] = {
    O("config", OPT_STR, config_file, "", "YAML (or JSON) config file"),
    O("collectors", OPT_STR, collectors, "",
      "comma list of collectors; empty = those whose source exists"),
    O("output", OPT_STR, output, "stdout",
      "stdout | file:PATH | nats://HOST:PORT[,...] | otlp[s]://HOST:PORT[/PATH]"),
    O("file-sync", OPT_STR, file_sync, "none",
      "file output: none | batch (fdatasync each write) | always (each event)"),
    O("queue-size", OPT_SIZE, queue_size, "16M", "event queue arena, a power of two (K/M/G)"),
    O("queue-wait-ms", OPT_UINT, queue_wait_ms, "2000",
      "how long resumable sources (k8s, etcd, systemd) wait on a full queue"),
    O("state-dir", OPT_STR, state_dir, "/var/lib/tapio", "where resume cursors are kept"),
    O("metrics-addr", OPT_STR, metrics_addr, "127.0.0.1:9090",
      "HOST:PORT, [IPV6]:PORT, :PORT or a bare IP (port " METRICS_DEFAULT_PORT
      ") for /metrics, /healthz, /readyz; empty = off"),
    O("node-name", OPT_STR, node_name, "", "this node's name (also NODE_NAME)"),
    O("pod-labels", OPT_STR, pod_labels, "",
      "comma list of pod label keys to put on kernel events (pod_label.KEY)"),
    O("max-event-size", OPT_SIZE, max_event_size, "16M",
      "larger collector input is skipped and counted"),
    O("print-config", OPT_BOOL, print_config, "false", "print the effective config and exit"),
};

static int agent_check(const void *opts, char *err, size_t errlen);

const struct opt_group agent_options =
    OPT_GROUP("agent", struct tapio_config, agent_opts, agent_check);

/* One option of one group, and the struct it lives in. */
struct slot {
	size_t gi; /* 0 = the agent's own group */
	const struct opt *o;
};

#define OPTS_PER_GROUP_MAX 32

/* Where each option's value came from ("default", "flag --x", "env TAPIO_X",
 * "config FILE"), for the messages of the checks. config_load runs once, in
 * the main thread. */
static char origins[CONFIG_GROUPS_MAX + 1][OPTS_PER_GROUP_MAX][200];

static const struct opt_group *group_at(const struct tapio_config *cfg, size_t gi)
{
	return gi == 0 ? &agent_options : cfg->groups[gi - 1];
}

static size_t group_count(const struct tapio_config *cfg)
{
	return cfg->ngroups + 1;
}

static void *group_base(struct tapio_config *cfg, size_t gi)
{
	return gi == 0 ? (void *)cfg : cfg->vals[gi - 1];
}

static const void *cgroup_base(const struct tapio_config *cfg, size_t gi)
{
	return gi == 0 ? (const void *)cfg : cfg->vals[gi - 1];
}

static void *field(struct tapio_config *cfg, struct slot sl)
{
	return (char *)group_base(cfg, sl.gi) + sl.o->off;
}

static const void *cfield(const struct tapio_config *cfg, struct slot sl)
{
	return (const char *)cgroup_base(cfg, sl.gi) + sl.o->off;
}

static char *origin(const struct tapio_config *cfg, struct slot sl)
{
	return origins[sl.gi][sl.o - group_at(cfg, sl.gi)->opts];
}

static bool name_is(const char *n, const char *name, size_t len)
{
	if (strlen(n) != len)
		return false;
	for (size_t j = 0; j < len; j++) {
		char a = name[j] == '_' ? '-' : name[j];
		if (a != n[j])
			return false;
	}
	return true;
}

/* Flag and file key spellings: "queue-size" matches queue-size and queue_size.
 * Returns false when no group has it. */
static bool find_opt(const struct tapio_config *cfg, const char *name, size_t len, struct slot *out)
{
	for (size_t gi = 0; gi < group_count(cfg); gi++) {
		const struct opt_group *g = group_at(cfg, gi);
		for (size_t i = 0; i < g->nopts; i++) {
			if (name_is(g->opts[i].name, name, len)) {
				*out = (struct slot){gi, &g->opts[i]};
				return true;
			}
		}
	}
	return false;
}

static int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};
	for (size_t i = 0; i < 4; i++) {
		if (!strcasecmp(s, yes[i])) {
			*out = true;
			return 0;
		}
		if (!strcasecmp(s, no[i])) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

/* Sets one option from text. `from` names where the value came from, for the
 * error message. */
static int set_opt(struct tapio_config *cfg, struct slot sl, const char *val, const char *from,
		   char *err, size_t errlen)
{
	const struct opt *o = sl.o;
	uint64_t u;
	int rc;
	snprintf(origin(cfg, sl), sizeof(origins[0][0]), "%s", from);
	switch (o->type) {
	case OPT_STR: {
		char *dup = strdup(val);
		if (!dup) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		char **p = field(cfg, sl);
		free(*p);
		*p = dup;
		return 0;
	}
	case OPT_BOOL:
		if (parse_bool(val, field(cfg, sl))) {
			snprintf(err, errlen, "%s: %s: '%s' is not a boolean (true/false)", from,
				 o->name, val);
			return -EINVAL;
		}
		return 0;
	case OPT_UINT:
	case OPT_SIZE:
	case OPT_U64:
		rc = o->type == OPT_SIZE ? parse_size(val, &u) : parse_u64(val, UINT64_MAX, &u);
		if (rc || (o->type == OPT_UINT && u > UINT32_MAX)) {
			snprintf(err, errlen, "%s: %s: '%s' is not a %s", from, o->name, val,
				 o->type == OPT_SIZE ? "size (e.g. 65536, 64K, 16M)"
						     : "non-negative number in range");
			return -EINVAL;
		}
		if (o->type == OPT_UINT)
			*(unsigned *)field(cfg, sl) = (unsigned)u;
		else
			*(uint64_t *)field(cfg, sl) = u;
		return 0;
	}
	return -EINVAL;
}

/* ---- YAML file ---- */

/* The reader of a flat mapping: nested mappings join keys with '_' (etcd:
 * {prefix: x} is etcd_prefix), sequences of scalars become comma lists. */
struct yaml_reader {
	struct tapio_config *cfg;
	const char *path;
	char from[300];
	char *err;
	size_t errlen;
	char prefix[8][256];
	int depth;	  /* mapping depth */
	bool want_key[9]; /* per depth: next scalar is a key */
	char key[256];
	char list[4096];
	size_t list_len;
	bool in_list;
};

static int yerr(struct yaml_reader *r, const yaml_event_t *ev, const char *what)
{
	snprintf(r->err, r->errlen, "config %s: line %zu: %s", r->path, ev->start_mark.line + 1,
		 what);
	return -EINVAL;
}

static int set_key(struct yaml_reader *r, const char *val, const yaml_event_t *ev)
{
	struct slot sl;
	if (!find_opt(r->cfg, r->key, strlen(r->key), &sl) || !strcmp(sl.o->name, "config")) {
		if (ev)
			snprintf(r->err, r->errlen, "config %s: line %zu: unknown key '%s'",
				 r->path, ev->start_mark.line + 1, r->key);
		else
			snprintf(r->err, r->errlen, "config %s: unknown key '%s'", r->path, r->key);
		return -EINVAL;
	}
	return set_opt(r->cfg, sl, val, r->from, r->err, r->errlen);
}

static int on_mapping_start(struct yaml_reader *r, const yaml_event_t *ev)
{
	if (r->in_list) {
		snprintf(r->err, r->errlen,
			 "config %s: line %zu: %s: a list may hold only plain values", r->path,
			 ev->start_mark.line + 1, r->key);
		return -EINVAL;
	}
	if (r->depth > 0) {
		if (r->want_key[r->depth] || r->depth >= 7)
			return yerr(r, ev, "unexpected mapping");
		snprintf(r->prefix[r->depth], sizeof(r->prefix[0]), "%s", r->key);
	}
	r->depth++;
	r->want_key[r->depth] = true;
	return 0;
}

static int on_key(struct yaml_reader *r, const char *val, size_t vlen, const yaml_event_t *ev)
{
	struct strbuf kb = STRBUF_INIT;
	for (int d = 1; d < r->depth; d++) {
		sb_puts(&kb, r->prefix[d]);
		sb_putc(&kb, '_');
	}
	sb_add(&kb, val, vlen);
	if (kb.err || kb.len >= sizeof(r->key)) {
		sb_free(&kb);
		return yerr(r, ev, "key too long");
	}
	memcpy(r->key, kb.buf, kb.len + 1);
	sb_free(&kb);
	r->want_key[r->depth] = false;
	return 0;
}

static int on_scalar(struct yaml_reader *r, const yaml_event_t *ev)
{
	const char *val = (const char *)ev->data.scalar.value;
	size_t vlen = ev->data.scalar.length;
	if (r->depth == 0) {
		snprintf(r->err, r->errlen, "config %s: the top level must be a mapping of keys",
			 r->path);
		return -EINVAL;
	}
	if (r->in_list) {
		if (r->list_len + vlen + 2 > sizeof(r->list)) {
			snprintf(r->err, r->errlen, "config %s: %s: list too long", r->path,
				 r->key);
			return -EINVAL;
		}
		if (r->list_len)
			r->list[r->list_len++] = ',';
		memcpy(r->list + r->list_len, val, vlen);
		r->list_len += vlen;
		r->list[r->list_len] = '\0';
		return 0;
	}
	if (r->want_key[r->depth])
		return on_key(r, val, vlen, ev);
	r->want_key[r->depth] = true;
	struct slot sl;
	if (!find_opt(r->cfg, r->key, strlen(r->key), &sl) || !strcmp(sl.o->name, "config"))
		return set_key(r, val, ev); /* reports the unknown key */
	if (memchr(val, '\0', vlen)) {
		snprintf(r->err, r->errlen, "config %s: %s: value holds a NUL byte", r->path,
			 r->key);
		return -EINVAL;
	}
	/* null / ~ means "leave the default" */
	if (ev->data.scalar.plain_implicit && (!strcmp(val, "~") || !strcmp(val, "null")))
		return 0;
	return set_key(r, val, ev);
}

static int on_event(struct yaml_reader *r, const yaml_event_t *ev, bool *done)
{
	switch (ev->type) {
	case YAML_STREAM_END_EVENT:
		*done = true;
		return 0;
	case YAML_MAPPING_START_EVENT:
		return on_mapping_start(r, ev);
	case YAML_MAPPING_END_EVENT:
		r->depth--;
		if (r->depth > 0)
			r->want_key[r->depth] = true;
		return 0;
	case YAML_SEQUENCE_START_EVENT:
		if (r->depth == 0 || r->want_key[r->depth] || r->in_list)
			return yerr(r, ev, "unexpected list");
		r->in_list = true;
		r->list_len = 0;
		r->list[0] = '\0';
		return 0;
	case YAML_SEQUENCE_END_EVENT:
		r->in_list = false;
		r->want_key[r->depth] = true;
		return set_key(r, r->list, NULL);
	case YAML_SCALAR_EVENT:
		return on_scalar(r, ev);
	case YAML_ALIAS_EVENT:
		return yerr(r, ev, "aliases are not supported");
	default:
		return 0;
	}
}

static int load_file(struct tapio_config *cfg, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	if (!f) {
		snprintf(err, errlen, "config %s: %s", path, strerror(errno));
		return -EINVAL;
	}
	yaml_parser_t p;
	if (!yaml_parser_initialize(&p)) {
		fclose(f);
		snprintf(err, errlen, "config %s: out of memory", path);
		return -ENOMEM;
	}
	yaml_parser_set_input_file(&p, f);
	static struct yaml_reader r; /* config_load runs once, in the main thread */
	memset(&r, 0, sizeof(r));
	r.cfg = cfg;
	r.path = path;
	r.err = err;
	r.errlen = errlen;
	r.want_key[0] = true;
	snprintf(r.from, sizeof(r.from), "config %s", path);
	int rc = 0;
	bool done = false;
	while (!done && rc == 0) {
		yaml_event_t ev;
		if (!yaml_parser_parse(&p, &ev)) {
			snprintf(err, errlen, "config %s: line %zu: %s", path,
				 p.problem_mark.line + 1, p.problem ? p.problem : "YAML error");
			rc = -EINVAL;
			break;
		}
		rc = on_event(&r, &ev, &done);
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&p);
	fclose(f);
	return rc;
}

/* ---- environment and flags ---- */

static void env_name(const struct opt *o, char *buf, size_t len)
{
	size_t i = (size_t)snprintf(buf, len, "TAPIO_");
	for (const char *p = o->name; *p && i + 1 < len; p++)
		buf[i++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
	buf[i] = '\0';
}

static int load_env(struct tapio_config *cfg, char *err, size_t errlen)
{
	const char *nn = getenv("NODE_NAME");
	struct slot sl;
	if (nn && *nn && find_opt(cfg, "node-name", 9, &sl)) {
		int rc = set_opt(cfg, sl, nn, "env NODE_NAME", err, errlen);
		if (rc)
			return rc;
	}
	for (size_t gi = 0; gi < group_count(cfg); gi++) {
		const struct opt_group *g = group_at(cfg, gi);
		for (size_t i = 0; i < g->nopts; i++) {
			char name[64];
			env_name(&g->opts[i], name, sizeof(name));
			const char *v = getenv(name);
			if (!v || !strcmp(g->opts[i].name, "config"))
				continue;
			char from[80];
			snprintf(from, sizeof(from), "env %s", name);
			int rc = set_opt(cfg, (struct slot){gi, &g->opts[i]}, v, from, err, errlen);
			if (rc)
				return rc;
		}
	}
	return 0;
}

/* Finds the option of flag argument a ("--name", "--name=v", "--no-name"). */
static int flag_opt(const struct tapio_config *cfg, const char *a, struct slot *sl, bool *negated,
		    const char **eq, char *err, size_t errlen)
{
	if (strncmp(a, "--", 2) || !a[2]) {
		snprintf(err, errlen, "unexpected argument '%s' (flags are --name value)", a);
		return -EINVAL;
	}
	const char *name = a + 2;
	*eq = strchr(name, '=');
	size_t nlen = *eq ? (size_t)(*eq - name) : strlen(name);
	*negated = false;
	if (find_opt(cfg, name, nlen, sl))
		return 0;
	if (nlen > 3 && !strncmp(name, "no-", 3) && find_opt(cfg, name + 3, nlen - 3, sl) &&
	    sl->o->type == OPT_BOOL) {
		*negated = true;
		return 0;
	}
	snprintf(err, errlen, "unknown flag '--%.*s' (see tapio agent --help)", (int)nlen, name);
	return -EINVAL;
}

/* Walks argv; with only_config, just finds --config. */
static int load_args(struct tapio_config *cfg, int argc, char **argv, bool only_config,
		     const char **config_path, char *err, size_t errlen)
{
	for (int i = 1; i < argc; i++) {
		struct slot sl;
		bool negated;
		const char *eq, *val;
		int rc = flag_opt(cfg, argv[i], &sl, &negated, &eq, err, errlen);
		if (rc)
			return rc;
		if (eq) {
			val = eq + 1;
		} else if (sl.o->type == OPT_BOOL) {
			val = negated ? "false" : "true";
		} else {
			if (i + 1 >= argc) {
				snprintf(err, errlen, "flag --%s needs a value", sl.o->name);
				return -EINVAL;
			}
			val = argv[++i];
		}
		if (!strcmp(sl.o->name, "config")) {
			*config_path = val;
			continue;
		}
		if (only_config)
			continue;
		char from[80];
		snprintf(from, sizeof(from), "flag --%s", sl.o->name);
		rc = set_opt(cfg, sl, val, from, err, errlen);
		if (rc)
			return rc;
	}
	return 0;
}

/* ---- checks ---- */

/* Appends " (from <origin>)" for the key that err starts with. */
static int invalid(const struct tapio_config *cfg, char *err, size_t errlen)
{
	size_t n = strcspn(err, ":");
	struct slot sl;
	if (find_opt(cfg, err, n, &sl)) {
		size_t len = strlen(err);
		snprintf(err + len, errlen - len, " (from %s)",
			 origins[sl.gi][sl.o - group_at(cfg, sl.gi)->opts]);
	}
	return -EINVAL;
}

/* A --metrics-addr that is an IP address alone: IPv4, or IPv6 without
 * brackets (as the downward API's status.podIP gives either). The whole
 * string is the address, so "::1:9090" is the IPv6 address ::1:9090. */
static int metrics_bare_ip(const char *a)
{
	unsigned char buf[sizeof(struct in6_addr)];

	if (inet_pton(AF_INET, a, buf) == 1)
		return AF_INET;
	if (inet_pton(AF_INET6, a, buf) == 1)
		return AF_INET6;
	return 0;
}

/* A bare IP --metrics-addr becomes HOST:PORT with the default port (IPv6 in
 * brackets), so that what is printed and listened on is one form. */
static int metrics_addr_normalize(struct tapio_config *cfg, char *err, size_t errlen)
{
	int af = *cfg->metrics_addr ? metrics_bare_ip(cfg->metrics_addr) : 0;
	char *a;

	if (!af)
		return 0;
	if (asprintf(&a, af == AF_INET6 ? "[%s]:%s" : "%s:%s", cfg->metrics_addr,
		     METRICS_DEFAULT_PORT) < 0) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	free(cfg->metrics_addr);
	cfg->metrics_addr = a;
	return 0;
}

static int agent_check(const void *opts, char *err, size_t errlen)
{
	const struct tapio_config *cfg = opts;
	uint64_t qs = cfg->queue_size;
	if (qs < 4096 || qs > (1ull << 30) || (qs & (qs - 1))) {
		snprintf(err, errlen,
			 "queue-size: %" PRIu64 " must be a power of two from 4K to 1G", qs);
		return -EINVAL;
	}
	if (cfg->max_event_size < 1024 || cfg->max_event_size > (1ull << 30)) {
		snprintf(err, errlen, "max-event-size: %" PRIu64 " must be from 1K to 1G",
			 cfg->max_event_size);
		return -EINVAL;
	}
	const char *fs = cfg->file_sync ? cfg->file_sync : "none";
	if (strcmp(fs, "none") && strcmp(fs, "batch") && strcmp(fs, "always")) {
		snprintf(err, errlen, "file-sync: '%.40s' is not none, batch or always", fs);
		return -EINVAL;
	}
	const char *o = cfg->output;
	if (!(!strcmp(o, "stdout") || !strcmp(o, "-") || (!strncmp(o, "file:", 5) && o[5]) ||
	      !strncmp(o, "nats://", 7) || !strncmp(o, "otlp://", 7) ||
	      !strncmp(o, "otlps://", 8))) {
		snprintf(err, errlen,
			 "output: '%s' is not stdout, file:PATH, nats://HOST:PORT or "
			 "otlp[s]://HOST:PORT[/PATH]",
			 o);
		return -EINVAL;
	}
	if (*cfg->metrics_addr && !metrics_bare_ip(cfg->metrics_addr)) {
		char host[256];
		unsigned port;
		unsigned char buf[sizeof(struct in6_addr)];
		if (parse_hostport(cfg->metrics_addr, host, sizeof(host), &port) ||
		    !(!host[0] || !strcmp(host, "localhost") ||
		      inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1)) {
			snprintf(err, errlen,
				 "metrics-addr: '%s' is not IP:PORT, [IPv6]:PORT, localhost:PORT, "
				 ":PORT or a bare IP address",
				 cfg->metrics_addr);
			return -EINVAL;
		}
	}
	return 0;
}

static int check_all(const struct tapio_config *cfg, char *err, size_t errlen)
{
	for (size_t gi = 0; gi < group_count(cfg); gi++) {
		const struct opt_group *g = group_at(cfg, gi);
		if (g->check && g->check(cgroup_base(cfg, gi), err, errlen))
			return invalid(cfg, err, errlen);
	}
	return 0;
}

/* ---- load, print, usage, free ---- */

static int set_groups(struct tapio_config *cfg, const struct opt_group *const *groups,
		      size_t ngroups, char *err, size_t errlen)
{
	if (ngroups > CONFIG_GROUPS_MAX) {
		snprintf(err, errlen, "too many option groups (%zu)", ngroups);
		return -E2BIG;
	}
	for (size_t i = 0; i < ngroups; i++) {
		if (groups[i]->nopts > OPTS_PER_GROUP_MAX) {
			snprintf(err, errlen, "option group %s: too many options", groups[i]->name);
			return -E2BIG;
		}
		cfg->groups[i] = groups[i];
		cfg->vals[i] = calloc(1, groups[i]->size);
		cfg->ngroups = i + 1;
		if (!cfg->vals[i]) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
	}
	return 0;
}

static int set_defaults(struct tapio_config *cfg, char *err, size_t errlen)
{
	for (size_t gi = 0; gi < group_count(cfg); gi++) {
		const struct opt_group *g = group_at(cfg, gi);
		for (size_t i = 0; i < g->nopts; i++) {
			int rc = set_opt(cfg, (struct slot){gi, &g->opts[i]}, g->opts[i].def,
					 "default", err, errlen);
			if (rc)
				return rc;
		}
	}
	return 0;
}

int config_load(struct tapio_config *cfg, const struct opt_group *const *groups, size_t ngroups,
		int argc, char **argv, char *err, size_t errlen)
{
	memset(cfg, 0, sizeof(*cfg));
	err[0] = '\0';
	int rc = set_groups(cfg, groups, ngroups, err, errlen);
	if (!rc)
		rc = set_defaults(cfg, err, errlen);
	if (rc)
		return rc;
	const char *path = getenv("TAPIO_CONFIG");
	rc = load_args(cfg, argc, argv, true, &path, err, errlen);
	if (rc)
		return rc;
	if (path && *path) {
		rc = set_opt(cfg, (struct slot){0, &agent_opts[0]}, path, "config", err, errlen);
		if (!rc)
			rc = load_file(cfg, path, err, errlen);
		if (rc)
			return rc;
	}
	rc = load_env(cfg, err, errlen);
	if (!rc)
		rc = load_args(cfg, argc, argv, false, &path, err, errlen);
	if (!rc)
		rc = check_all(cfg, err, errlen);
	if (!rc)
		rc = metrics_addr_normalize(cfg, err, errlen);
	return rc;
}

const void *config_group(const struct tapio_config *cfg, const struct opt_group *g)
{
	for (size_t i = 0; i < cfg->ngroups; i++)
		if (cfg->groups[i] == g)
			return cfg->vals[i];
	return NULL;
}

static void print_str(FILE *out, const char *key, const char *v)
{
	fputs(key, out);
	fputs(": \"", out);
	for (const char *p = v ? v : ""; *p; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch == '"' || ch == '\\')
			fprintf(out, "\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			fprintf(out, "\\x%02x", ch); /* YAML double-quoted escape */
		else
			fputc(ch, out);
	}
	fputs("\"\n", out);
}

static void print_opt(const struct tapio_config *cfg, struct slot sl, FILE *out)
{
	char key[64];
	snprintf(key, sizeof(key), "%s", sl.o->name);
	for (char *p = key; *p; p++)
		if (*p == '-')
			*p = '_';
	switch (sl.o->type) {
	case OPT_STR:
		print_str(out, key, *(char *const *)cfield(cfg, sl));
		break;
	case OPT_BOOL:
		fprintf(out, "%s: %s\n", key, *(const bool *)cfield(cfg, sl) ? "true" : "false");
		break;
	case OPT_UINT:
		fprintf(out, "%s: %u\n", key, *(const unsigned *)cfield(cfg, sl));
		break;
	case OPT_SIZE:
	case OPT_U64:
		fprintf(out, "%s: %" PRIu64 "\n", key, *(const uint64_t *)cfield(cfg, sl));
		break;
	}
}

void config_print(const struct tapio_config *cfg, FILE *out)
{
	for (size_t gi = 0; gi < group_count(cfg); gi++) {
		const struct opt_group *g = group_at(cfg, gi);
		for (size_t i = 0; i < g->nopts; i++)
			if (strcmp(g->opts[i].name, "print-config"))
				print_opt(cfg, (struct slot){gi, &g->opts[i]}, out);
	}
}

static void usage_group(const struct opt_group *g, FILE *out)
{
	for (size_t i = 0; i < g->nopts; i++) {
		const struct opt *o = &g->opts[i];
		char flag[64];
		snprintf(flag, sizeof(flag), "--%s%s", o->name, o->type == OPT_BOOL ? "" : " V");
		fprintf(out, "  %-26s %s", flag, o->help);
		if (o->def[0] && o->type != OPT_BOOL)
			fprintf(out, " [%s]", o->def);
		fputc('\n', out);
	}
}

void config_usage(const struct opt_group *const *groups, size_t ngroups, FILE *out)
{
	fprintf(out, "usage: tapio agent [--name value | --name=value ...]\n\n"
		     "Every flag is also an environment variable (--queue-size: TAPIO_QUEUE_SIZE)\n"
		     "and a key of the YAML config file (queue_size or queue-size). Precedence:\n"
		     "flag, environment, file, default. Booleans take --name, --no-name or\n"
		     "--name=true|false.\n\n");
	usage_group(&agent_options, out);
	for (size_t i = 0; i < ngroups; i++) {
		fprintf(out, "\n %s:\n", groups[i]->name);
		usage_group(groups[i], out);
	}
}

void config_free(struct tapio_config *cfg)
{
	for (size_t gi = 0; gi < group_count(cfg); gi++) {
		const struct opt_group *g = group_at(cfg, gi);
		if (!group_base(cfg, gi))
			continue;
		for (size_t i = 0; i < g->nopts; i++) {
			if (g->opts[i].type != OPT_STR)
				continue;
			char **p = field(cfg, (struct slot){gi, &g->opts[i]});
			free(*p);
			*p = NULL;
		}
	}
	for (size_t i = 0; i < cfg->ngroups; i++) {
		free(cfg->vals[i]);
		cfg->vals[i] = NULL;
	}
	cfg->ngroups = 0;
}
