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
#include "metrics/metrics.h"
#include "util/strbuf.h"

enum opt_type { OPT_STR, OPT_BOOL, OPT_UINT, OPT_SIZE, OPT_U64 };

struct opt {
	const char *name; /* flag name without "--"; file key with '_' or '-' */
	enum opt_type type;
	size_t off;
	const char *def;
	const char *help;
};

#define O(n, t, f, d, h) {n, t, offsetof(struct tapio_config, f), d, h}

static const struct opt opts[] = {
	O("config", OPT_STR, config_file, "", "YAML (or JSON) config file"),
	O("collectors", OPT_STR, collectors, "",
	  "comma list of kernel,k8s,systemd,cni,etcd; empty = those whose source exists"),
	O("output", OPT_STR, output, "stdout", "stdout | file:PATH | nats://HOST:PORT[,...]"),
	O("queue-size", OPT_SIZE, queue_size, "16M", "event queue arena, a power of two (K/M/G)"),
	O("queue-wait-ms", OPT_UINT, queue_wait_ms, "2000",
	  "how long resumable sources (k8s, etcd, systemd) wait on a full queue"),
	O("state-dir", OPT_STR, state_dir, "/var/lib/tapio", "where resume cursors are kept"),
	O("metrics-addr", OPT_STR, metrics_addr, "127.0.0.1:9090",
	  "HOST:PORT for /metrics, /healthz, /readyz; empty = off"),
	O("node-name", OPT_STR, node_name, "", "this node's name (also NODE_NAME)"),
	O("max-event-size", OPT_SIZE, max_event_size, "16M",
	  "larger collector input is skipped and counted"),
	O("events", OPT_STR, events, "", "kernel event types or prefixes, empty = all"),
	O("ringbuf-size", OPT_SIZE, ringbuf_size, "8M", "BPF ring buffer size, a power of two"),
	O("containers", OPT_BOOL, containers_only, "false", "kernel events from containers only"),
	O("all-threads", OPT_BOOL, all_threads, "false", "process.exit for every thread"),
	O("k8s-kubeconfig", OPT_STR, k8s_kubeconfig, "",
	  "kubeconfig file (else KUBECONFIG, else in-cluster)"),
	O("k8s-resources", OPT_STR, k8s_resources, "",
	  "comma list of resources to watch, empty = the default set"),
	O("k8s-insecure", OPT_BOOL, k8s_insecure, "false",
	  "do not verify the API server's certificate"),
	O("etcd-endpoints", OPT_STR, etcd_endpoints, "", "comma list of etcd URLs"),
	O("etcd-prefix", OPT_STR, etcd_prefix, "/registry/", "key prefix to watch"),
	O("etcd-cacert", OPT_STR, etcd_cacert, "", "CA bundle for etcd"),
	O("etcd-cert", OPT_STR, etcd_cert, "", "client certificate for etcd"),
	O("etcd-key", OPT_STR, etcd_key, "", "client key for etcd"),
	O("journal-dir", OPT_STR, journal_dir, "", "journal directory, empty = the local journal"),
	O("journal-units", OPT_STR, journal_units,
	  "kubelet.service,containerd.service,crio.service,docker.service",
	  "comma list of units to follow"),
	O("journal-since", OPT_STR, journal_since, "now",
	  "first start without a cursor: now | head | a journal cursor"),
	O("cni-log-dirs", OPT_STR, cni_log_dirs, "/var/log/cni,/var/log/calico/cni",
	  "comma list of CNI log directories"),
	O("netns-dir", OPT_STR, netns_dir, "/var/run/netns", "network namespace directory"),
	O("cni-state-dir", OPT_STR, cni_state_dir, "/var/lib/cni",
	  "CNI state: results/ and networks/ below it"),
	O("nats-subject-prefix", OPT_STR, nats_subject_prefix, "tapio.events",
	  "subject prefix: <prefix>.<source>.<type>"),
	O("nats-stream", OPT_STR, nats_stream, "TAPIO_EVENTS", "JetStream stream name"),
	O("nats-retention", OPT_STR, nats_retention, "limits", "limits | interest | workqueue"),
	O("nats-max-age", OPT_U64, nats_max_age_s, "0", "stream max age in seconds, 0 = unlimited"),
	O("nats-max-inflight", OPT_UINT, nats_max_inflight, "4096", "unacked publishes at most"),
	O("nats-ack-wait-ms", OPT_UINT, nats_ack_wait_ms, "5000",
	  "on shutdown, how long to wait for acks"),
	O("print-config", OPT_BOOL, print_config, "false", "print the effective config and exit"),
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static void *field(struct tapio_config *cfg, const struct opt *o)
{
	return (char *)cfg + o->off;
}

static const void *cfield(const struct tapio_config *cfg, const struct opt *o)
{
	return (const char *)cfg + o->off;
}

/* Flag and file key spellings: "queue-size" matches queue-size and queue_size. */
static const struct opt *find_opt(const char *name, size_t len)
{
	for (size_t i = 0; i < NOPTS; i++) {
		const char *n = opts[i].name;
		if (strlen(n) != len)
			continue;
		size_t j = 0;
		for (; j < len; j++) {
			char a = name[j] == '_' ? '-' : name[j];
			if (a != n[j])
				break;
		}
		if (j == len)
			return &opts[i];
	}
	return NULL;
}

static int parse_u64(const char *s, uint64_t *out, bool size_suffix)
{
	if (!*s)
		return -EINVAL;
	for (const char *p = s; *p; p++)
		if (*p == '-')
			return -EINVAL;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -EINVAL;
	uint64_t mul = 1;
	if (size_suffix && *end) {
		switch (toupper((unsigned char)*end)) {
		case 'K':
			mul = 1ull << 10;
			break;
		case 'M':
			mul = 1ull << 20;
			break;
		case 'G':
			mul = 1ull << 30;
			break;
		default:
			return -EINVAL;
		}
		end++;
		if (toupper((unsigned char)*end) == 'I')
			end++;
		if (toupper((unsigned char)*end) == 'B')
			end++;
	}
	if (*end)
		return -EINVAL;
	if (v > UINT64_MAX / mul)
		return -ERANGE;
	*out = v * mul;
	return 0;
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

/* Where each option's value came from ("default", "flag --x", "env TAPIO_X",
 * "config FILE"), for the messages of validate(). config_load runs once, in
 * the main thread. */
static char origins[NOPTS][320];

/* Sets one option from text. `from` names where the value came from, for the
 * error message. */
static int set_opt(struct tapio_config *cfg, const struct opt *o, const char *val,
		   const char *from, char *err, size_t errlen)
{
	uint64_t u;
	int rc;
	snprintf(origins[o - opts], sizeof(origins[0]), "%s", from);
	switch (o->type) {
	case OPT_STR: {
		char *dup = strdup(val);
		if (!dup) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		char **slot = field(cfg, o);
		free(*slot);
		*slot = dup;
		return 0;
	}
	case OPT_BOOL:
		if (parse_bool(val, field(cfg, o))) {
			snprintf(err, errlen, "%s: %s: '%s' is not a boolean (true/false)", from,
				 o->name, val);
			return -EINVAL;
		}
		return 0;
	case OPT_UINT:
	case OPT_SIZE:
	case OPT_U64:
		rc = parse_u64(val, &u, o->type == OPT_SIZE);
		if (rc || (o->type == OPT_UINT && u > UINT32_MAX)) {
			snprintf(err, errlen, "%s: %s: '%s' is not a %s", from, o->name, val,
				 o->type == OPT_SIZE ? "size (e.g. 65536, 64K, 16M)"
						     : "non-negative number in range");
			return -EINVAL;
		}
		if (o->type == OPT_UINT)
			*(unsigned *)field(cfg, o) = (unsigned)u;
		else
			*(uint64_t *)field(cfg, o) = u;
		return 0;
	}
	return -EINVAL;
}

/* ---- YAML file ---- */

/* Reads a flat mapping; nested mappings join keys with '_' (etcd: {prefix: x}
 * is etcd_prefix), sequences of scalars become comma lists. */
static int load_file(struct tapio_config *cfg, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	if (!f) {
		snprintf(err, errlen, "config %s: %s", path, strerror(errno));
		return -EINVAL;
	}
	yaml_parser_t p;
	yaml_event_t ev;
	if (!yaml_parser_initialize(&p)) {
		fclose(f);
		snprintf(err, errlen, "config %s: out of memory", path);
		return -ENOMEM;
	}
	yaml_parser_set_input_file(&p, f);

	char prefix[8][256];
	int depth = 0;            /* mapping depth */
	bool want_key[9] = {true}; /* per depth: next scalar is a key */
	char key[256] = "";
	char list[4096];
	bool in_list = false;
	int rc = 0;
	bool done = false;
	size_t list_len = 0;

	while (!done && rc == 0) {
		if (!yaml_parser_parse(&p, &ev)) {
			snprintf(err, errlen, "config %s: line %zu: %s", path,
				 p.problem_mark.line + 1, p.problem ? p.problem : "YAML error");
			rc = -EINVAL;
			break;
		}
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		case YAML_MAPPING_START_EVENT:
			if (in_list) {
				snprintf(err, errlen, "config %s: line %zu: %s: a list may hold only plain values",
					 path, ev.start_mark.line + 1, key);
				rc = -EINVAL;
				break;
			}
			if (depth > 0) {
				if (want_key[depth] || depth >= 7) {
					snprintf(err, errlen, "config %s: line %zu: unexpected mapping", path,
						 ev.start_mark.line + 1);
					rc = -EINVAL;
					break;
				}
				snprintf(prefix[depth], sizeof(prefix[depth]), "%s", key);
			}
			depth++;
			want_key[depth] = true;
			break;
		case YAML_MAPPING_END_EVENT:
			depth--;
			if (depth > 0)
				want_key[depth] = true;
			break;
		case YAML_SEQUENCE_START_EVENT:
			if (depth == 0 || want_key[depth] || in_list) {
				snprintf(err, errlen, "config %s: line %zu: unexpected list", path,
					 ev.start_mark.line + 1);
				rc = -EINVAL;
				break;
			}
			in_list = true;
			list_len = 0;
			list[0] = '\0';
			break;
		case YAML_SEQUENCE_END_EVENT: {
			in_list = false;
			want_key[depth] = true;
			const struct opt *o = find_opt(key, strlen(key));
			if (!o) {
				snprintf(err, errlen, "config %s: unknown key '%s'", path, key);
				rc = -EINVAL;
				break;
			}
			char from[300];
			snprintf(from, sizeof(from), "config %s", path);
			rc = set_opt(cfg, o, list, from, err, errlen);
			break;
		}
		case YAML_SCALAR_EVENT: {
			const char *val = (const char *)ev.data.scalar.value;
			size_t vlen = ev.data.scalar.length;
			if (depth == 0) {
				snprintf(err, errlen, "config %s: the top level must be a mapping of keys", path);
				rc = -EINVAL;
				break;
			}
			if (in_list) {
				if (list_len + vlen + 2 > sizeof(list)) {
					snprintf(err, errlen, "config %s: %s: list too long", path, key);
					rc = -EINVAL;
					break;
				}
				if (list_len)
					list[list_len++] = ',';
				memcpy(list + list_len, val, vlen);
				list_len += vlen;
				list[list_len] = '\0';
				break;
			}
			if (want_key[depth]) {
				struct strbuf kb = STRBUF_INIT;
				for (int d = 1; d < depth; d++) {
					sb_puts(&kb, prefix[d]);
					sb_putc(&kb, '_');
				}
				sb_add(&kb, val, vlen);
				if (kb.err || kb.len >= sizeof(key)) {
					sb_free(&kb);
					snprintf(err, errlen, "config %s: line %zu: key too long", path,
						 ev.start_mark.line + 1);
					rc = -EINVAL;
					break;
				}
				memcpy(key, kb.buf, kb.len + 1);
				sb_free(&kb);
				want_key[depth] = false;
				break;
			}
			want_key[depth] = true;
			const struct opt *o = find_opt(key, strlen(key));
			if (!o || !strcmp(o->name, "config")) {
				snprintf(err, errlen, "config %s: line %zu: unknown key '%s'", path,
					 ev.start_mark.line + 1, key);
				rc = -EINVAL;
				break;
			}
			if (memchr(val, '\0', vlen)) {
				snprintf(err, errlen, "config %s: %s: value holds a NUL byte", path, key);
				rc = -EINVAL;
				break;
			}
			char from[300];
			snprintf(from, sizeof(from), "config %s", path);
			/* null / ~ means "leave the default" */
			if (ev.data.scalar.plain_implicit && (!strcmp(val, "~") || !strcmp(val, "null")))
				break;
			rc = set_opt(cfg, o, val, from, err, errlen);
			break;
		}
		case YAML_ALIAS_EVENT:
			snprintf(err, errlen, "config %s: line %zu: aliases are not supported", path,
				 ev.start_mark.line + 1);
			rc = -EINVAL;
			break;
		default:
			break;
		}
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
	if (nn && *nn) {
		int rc = set_opt(cfg, find_opt("node-name", 9), nn, "env NODE_NAME", err, errlen);
		if (rc)
			return rc;
	}
	for (size_t i = 0; i < NOPTS; i++) {
		char name[64];
		env_name(&opts[i], name, sizeof(name));
		const char *v = getenv(name);
		if (!v || !strcmp(opts[i].name, "config"))
			continue;
		char from[80];
		snprintf(from, sizeof(from), "env %s", name);
		int rc = set_opt(cfg, &opts[i], v, from, err, errlen);
		if (rc)
			return rc;
	}
	return 0;
}

/* Walks argv; with only_config, just finds --config. */
static int load_args(struct tapio_config *cfg, int argc, char **argv, bool only_config,
		     const char **config_path, char *err, size_t errlen)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strncmp(a, "--", 2) || !a[2]) {
			snprintf(err, errlen, "unexpected argument '%s' (flags are --name value)", a);
			return -EINVAL;
		}
		const char *name = a + 2;
		const char *eq = strchr(name, '=');
		size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
		bool negated = false;
		const struct opt *o = find_opt(name, nlen);
		if (!o && nlen > 3 && !strncmp(name, "no-", 3)) {
			o = find_opt(name + 3, nlen - 3);
			negated = o && o->type == OPT_BOOL;
			if (!negated)
				o = NULL;
		}
		if (!o) {
			snprintf(err, errlen, "unknown flag '--%.*s' (see tapio agent --help)", (int)nlen,
				 name);
			return -EINVAL;
		}
		const char *val;
		if (eq) {
			val = eq + 1;
		} else if (o->type == OPT_BOOL) {
			val = negated ? "false" : "true";
		} else {
			if (i + 1 >= argc) {
				snprintf(err, errlen, "flag --%s needs a value", o->name);
				return -EINVAL;
			}
			val = argv[++i];
		}
		if (!strcmp(o->name, "config")) {
			*config_path = val;
			continue;
		}
		if (only_config)
			continue;
		char from[80];
		snprintf(from, sizeof(from), "flag --%s", o->name);
		int rc = set_opt(cfg, o, val, from, err, errlen);
		if (rc)
			return rc;
	}
	return 0;
}

/* Appends " (from <origin>)" for the key that err starts with. */
static int invalid(char *err, size_t errlen)
{
	char key[64];
	size_t n = strcspn(err, ":");
	if (n < sizeof(key)) {
		memcpy(key, err, n);
		key[n] = '\0';
		const struct opt *o = find_opt(key, n);
		if (o) {
			size_t len = strlen(err);
			snprintf(err + len, errlen - len, " (from %s)", origins[o - opts]);
		}
	}
	return -EINVAL;
}

static int validate(const struct tapio_config *cfg, char *err, size_t errlen)
{
	uint64_t qs = cfg->queue_size;
	if (qs < 4096 || qs > (1ull << 30) || (qs & (qs - 1))) {
		snprintf(err, errlen, "queue-size: %" PRIu64 " must be a power of two from 4K to 1G", qs);
		return invalid(err, errlen);
	}
	uint64_t rb = cfg->ringbuf_size;
	if (rb < 4096 || rb > (1ull << 30) || (rb & (rb - 1))) {
		snprintf(err, errlen, "ringbuf-size: %" PRIu64 " must be a power of two from 4K to 1G",
			 rb);
		return invalid(err, errlen);
	}
	if (cfg->max_event_size < 1024 || cfg->max_event_size > (1ull << 30)) {
		snprintf(err, errlen, "max-event-size: %" PRIu64 " must be from 1K to 1G",
			 cfg->max_event_size);
		return invalid(err, errlen);
	}
	const char *o = cfg->output;
	if (!(!strcmp(o, "stdout") || !strcmp(o, "-") || (!strncmp(o, "file:", 5) && o[5]) ||
	      !strncmp(o, "nats://", 7))) {
		snprintf(err, errlen, "output: '%s' is not stdout, file:PATH or nats://HOST:PORT", o);
		return invalid(err, errlen);
	}
	if (*cfg->metrics_addr) {
		char host[256];
		unsigned port;
		unsigned char buf[sizeof(struct in6_addr)];
		if (metrics_split_addr(cfg->metrics_addr, host, sizeof(host), &port) ||
		    !(!host[0] || !strcmp(host, "localhost") || inet_pton(AF_INET, host, buf) == 1 ||
		      inet_pton(AF_INET6, host, buf) == 1)) {
			snprintf(err, errlen,
				 "metrics-addr: '%s' is not IP:PORT, [IPv6]:PORT, localhost:PORT or :PORT",
				 cfg->metrics_addr);
			return invalid(err, errlen);
		}
	}
	static const char *const ret[] = {"limits", "interest", "workqueue"};
	bool ok = false;
	for (size_t i = 0; i < 3; i++)
		ok |= !strcmp(cfg->nats_retention, ret[i]);
	if (!ok) {
		snprintf(err, errlen, "nats-retention: '%s' is not limits, interest or workqueue",
			 cfg->nats_retention);
		return invalid(err, errlen);
	}
	if (cfg->nats_max_inflight == 0) {
		snprintf(err, errlen, "nats-max-inflight: must be at least 1");
		return invalid(err, errlen);
	}
	struct strlist l;
	if (strlist_split(&l, cfg->collectors))
		return -ENOMEM;
	static const char *const known[] = {"kernel", "k8s", "systemd", "cni", "etcd"};
	for (size_t i = 0; i < l.n; i++) {
		bool k = false;
		for (size_t j = 0; j < 5; j++)
			k |= !strcmp(l.v[i], known[j]);
		if (!k) {
			snprintf(err, errlen,
				 "collectors: unknown collector '%s' (kernel, k8s, systemd, cni, etcd)",
				 l.v[i]);
			strlist_free(&l);
			return invalid(err, errlen);
		}
	}
	strlist_free(&l);
	return 0;
}

int config_load(struct tapio_config *cfg, int argc, char **argv, char *err, size_t errlen)
{
	memset(cfg, 0, sizeof(*cfg));
	err[0] = '\0';
	for (size_t i = 0; i < NOPTS; i++) {
		int rc = set_opt(cfg, &opts[i], opts[i].def, "default", err, errlen);
		if (rc)
			return rc;
	}
	const char *path = getenv("TAPIO_CONFIG");
	int rc = load_args(cfg, argc, argv, true, &path, err, errlen);
	if (rc)
		return rc;
	if (path && *path) {
		rc = set_opt(cfg, &opts[0], path, "config", err, errlen);
		if (!rc)
			rc = load_file(cfg, path, err, errlen);
		if (rc)
			return rc;
	}
	rc = load_env(cfg, err, errlen);
	if (!rc)
		rc = load_args(cfg, argc, argv, false, &path, err, errlen);
	if (!rc)
		rc = validate(cfg, err, errlen);
	return rc;
}

void config_print(const struct tapio_config *cfg, FILE *out)
{
	for (size_t i = 0; i < NOPTS; i++) {
		const struct opt *o = &opts[i];
		if (!strcmp(o->name, "print-config"))
			continue;
		char key[64];
		snprintf(key, sizeof(key), "%s", o->name);
		for (char *p = key; *p; p++)
			if (*p == '-')
				*p = '_';
		switch (o->type) {
		case OPT_STR: {
			const char *v = *(char *const *)cfield(cfg, o);
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
			break;
		}
		case OPT_BOOL:
			fprintf(out, "%s: %s\n", key, *(const bool *)cfield(cfg, o) ? "true" : "false");
			break;
		case OPT_UINT:
			fprintf(out, "%s: %u\n", key, *(const unsigned *)cfield(cfg, o));
			break;
		case OPT_SIZE:
		case OPT_U64:
			fprintf(out, "%s: %" PRIu64 "\n", key, *(const uint64_t *)cfield(cfg, o));
			break;
		}
	}
}

void config_usage(FILE *out)
{
	fprintf(out, "usage: tapio agent [--name value | --name=value ...]\n\n"
		     "Every flag is also an environment variable (--queue-size: TAPIO_QUEUE_SIZE)\n"
		     "and a key of the YAML config file (queue_size or queue-size). Precedence:\n"
		     "flag, environment, file, default. Booleans take --name, --no-name or\n"
		     "--name=true|false.\n\n");
	for (size_t i = 0; i < NOPTS; i++) {
		const struct opt *o = &opts[i];
		char flag[64];
		snprintf(flag, sizeof(flag), "--%s%s", o->name, o->type == OPT_BOOL ? "" : " V");
		fprintf(out, "  %-26s %s", flag, o->help);
		if (o->def[0] && o->type != OPT_BOOL)
			fprintf(out, " [%s]", o->def);
		fputc('\n', out);
	}
}

void config_free(struct tapio_config *cfg)
{
	for (size_t i = 0; i < NOPTS; i++) {
		if (opts[i].type != OPT_STR)
			continue;
		char **slot = field(cfg, &opts[i]);
		free(*slot);
		*slot = NULL;
	}
}

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
	const char *p = csv;
	for (;;) {
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
