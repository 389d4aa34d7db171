/* SPDX-License-Identifier: Apache-2.0 */
/* The systemd journal collector (see README.md next to this file): its
 * options, ops and constructor. The reader thread is in reader.c, the journal
 * files check in filecheck.c.
 *
 * The cursor kept in the state directory is that of the last entry whose
 * event the sink has acknowledged, with every entry before it (core/ack.h):
 * a crash reads again what the sink may not have, never skips. An entry whose
 * event the queue refuses is retried; when the agent stops during such a
 * retry the entry is read again after the restart. The event id is the
 * entry's cursor, so a re-read entry is stored once by JetStream.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <systemd/sd-id128.h>

#include "collectors/systemd/internal.h"
#include "collectors/systemd/systemd.h"
#include "core/config.h"
#include "core/options.h"
#include "core/event.h"
#include "util/log.h"
#include "util/hash.h"

/* ---- config ---- */

/* A unit name as systemd allows it: printable ASCII, no '=' or space. */
static bool unit_name_ok(const char *u)
{
	size_t n = strlen(u);

	if (n == 0 || n > 255)
		return false;
	for (const char *p = u; *p; p++)
		if (*p <= ' ' || *p >= 0x7f || *p == '=' || *p == '/')
			return false;
	return true;
}

/* A journal cursor: ';'-separated key=value pairs with keys s, i, b, m, t, x. */
bool cursor_syntax_ok(const char *c)
{
	const char *p = c;
	bool any = false;

	if (!*c || strlen(c) >= CURSOR_MAX)
		return false;
	while (*p) {
		const char *end = strchr(p, ';');
		size_t n = end ? (size_t)(end - p) : strlen(p);

		if (n < 2 || p[1] != '=' || !strchr("sibmtx", p[0]))
			return false;
		for (size_t i = 2; i < n; i++)
			if (p[i] <= ' ' || p[i] >= 0x7f)
				return false;
		any = true;
		p += n;
		if (*p == ';')
			p++;
	}
	return any;
}

/* n lowercase hex digits at *p (any number when n is 0), then `end`. */
static bool hex_field(const char **p, char key, size_t n, char end)
{
	const char *s = *p;
	size_t i = 0;

	if (s[0] != key || s[1] != '=')
		return false;
	for (s += 2; (*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f'); s++)
		i++;
	if (i == 0 || (n && i != n) || *s != end)
		return false;
	*p = end ? s + 1 : s;
	return true;
}

/* A journal cursor as sd_journal_get_cursor() writes it, every field there:
 * s=<32 hex>;i=<hex>;b=<32 hex>;m=<hex>;t=<hex>;x=<hex>. A cut-short one
 * fails this, or lost digits of x= only (the position is s and i). */
bool cursor_complete(const char *c)
{
	const char *p = c;

	return hex_field(&p, 's', 32, ';') && hex_field(&p, 'i', 0, ';') &&
	       hex_field(&p, 'b', 32, ';') && hex_field(&p, 'm', 0, ';') &&
	       hex_field(&p, 't', 0, ';') && hex_field(&p, 'x', 0, '\0');
}

static bool is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* True when dir or one of its machine-id subdirectories holds a journal file. */
static bool dir_has_journal(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	bool found = false;

	if (!d)
		return false;
	while (!found && (de = readdir(d))) {
		sd_id128_t id;

		if (journal_file_name(de->d_name)) {
			found = true;
		} else if (sd_id128_from_string(de->d_name, &id) == 0) {
			char sub[PATH_MAX];

			if ((size_t)snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name) <
			    sizeof(sub)) {
				DIR *d2 = opendir(sub);
				struct dirent *e2;

				while (d2 && !found && (e2 = readdir(d2)))
					found = journal_file_name(e2->d_name);
				if (d2)
					closedir(d2);
			}
		}
	}
	closedir(d);
	return found;
}

/* An OS tree (a mounted host root) rather than a journal directory. */
static bool looks_like_os_root(const char *dir)
{
	char p[PATH_MAX];

	if ((size_t)snprintf(p, sizeof(p), "%s/var/log/journal", dir) < sizeof(p) && is_dir(p))
		return true;
	if ((size_t)snprintf(p, sizeof(p), "%s/run/log/journal", dir) < sizeof(p) && is_dir(p))
		return true;
	return false;
}

static int check_units(const char *units, char *err, size_t errlen)
{
	struct strlist l = {0};
	int r = 0;

	if (strlist_split(&l, units) < 0) {
		snprintf(err, errlen, "systemd: out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < l.n && !r; i++) {
		if (!unit_name_ok(l.v[i])) {
			snprintf(err, errlen, "--journal-units: '%.64s' is not a unit name",
				 l.v[i]);
			r = -EINVAL;
		}
	}
	strlist_free(&l);
	return r;
}

/* The option group's check; the constructor calls it too. */
static int systemd_options_check(const void *p, char *err, size_t errlen)
{
	const struct systemd_options *o = p;
	const char *dir = o->journal_dir ? o->journal_dir : "";
	const char *units = o->journal_units ? o->journal_units : SYSTEMD_DEFAULT_UNITS;
	const char *since = o->journal_since && *o->journal_since ? o->journal_since : "now";
	struct stat st;

	if (strlen(dir) >= PATH_MAX - 64) {
		snprintf(err, errlen, "--journal-dir: path too long");
		return -EINVAL;
	}
	/* a directory that does not exist yet is waited for; a file is a mistake */
	if (*dir && stat(dir, &st) == 0 && !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen,
			 "--journal-dir: %.200s is not a directory (give the journal "
			 "directory, not a file)",
			 dir);
		return -EINVAL;
	}
	if (strcmp(since, "now") && strcmp(since, "head") && !cursor_syntax_ok(since)) {
		snprintf(
		    err, errlen,
		    "--journal-since: '%.64s' is not now, head or a journal cursor (s=...;i=...)",
		    since);
		return -EINVAL;
	}
	return check_units(units, err, errlen);
}

#define SO(n, t, f, d, h) OPT_ENTRY(struct systemd_options, n, t, f, d, h)

static const struct opt systemd_opt_table[] = {
    SO("journal-dir", OPT_STR, journal_dir, "", "journal directory, empty = the local journal"),
    SO("journal-units", OPT_STR, journal_units,
       "kubelet.service,containerd.service,crio.service,docker.service",
       "comma list of units to follow"),
    SO("journal-since", OPT_STR, journal_since, "now",
       "first start without a cursor: now | head | a journal cursor"),
};

const struct opt_group systemd_options_group =
    OPT_GROUP("systemd", struct systemd_options, systemd_opt_table, systemd_options_check);

static const char *const systemd_type_names[SYSTEMD_NTYPES] = {
    [TYPE_SYSTEMD_JOURNAL] = "systemd.journal",
};

const struct source_desc systemd_source = {
    .name = "systemd",
    .types = systemd_type_names,
    .ntypes = SYSTEMD_NTYPES,
};

bool systemd_collector_available(const struct collector_env *env)
{
	const struct systemd_options *o = env->opts;
	const char *dir = o && o->journal_dir ? o->journal_dir : "";

	if (*dir)
		return is_dir(dir);
	return dir_has_journal("/var/log/journal") || dir_has_journal("/run/log/journal");
}

/* ---- collector ops ---- */

/* Loads the stored cursor. A missing one (first start) means
 * --journal-since. One that cannot be trusted (empty or cut short: a crash
 * between create and write, a full disk; or malformed) is reported by name
 * and the position is unknown: reading starts at --journal-since when that
 * names a place (head or a cursor), else at the head of the journal, never
 * silently "now"; what is read again is an entry the sink may already have,
 * with the same event id. */
static void load_cursor(struct systemd_collector *s)
{
	const char *why = NULL;
	int r;

	if (s->cur.dir[0]) {
		r = state_mkdir(s->cur.dir);
		if (r < 0) {
			/* the cursor stays in memory; saving it is retried */
			count(&s->base.n.errors);
			report(s, NULL, "state directory %s: %s", s->cur.dir, strerror(-r));
		}
	}
	bool legacy;
	r = cursor_load_legacy(&s->cur, cursor_complete, &legacy);
	if (legacy)
		report(s, NULL,
		       "stored cursor %s/%s has no final newline (from an older tapio, or cut "
		       "short); resuming from it",
		       s->cur.dir, SYSTEMD_CURSOR_FILE);
	if (r == -EBADMSG) {
		count(&s->base.n.errors);
		why = "is empty or cut short";
	} else if (r < 0) {
		count(&s->base.n.errors);
		report(s, NULL, "reading the cursor from %s/%s: %s; starting at --journal-since=%s",
		       s->cur.dir, SYSTEMD_CURSOR_FILE, strerror(-r), s->since);
	} else if (r > 0 && !cursor_syntax_ok(s->cur.val)) {
		count(&s->base.n.parse_errors);
		why = "is not a journal cursor";
		s->cur.val[0] = '\0';
	}
	if (why) {
		if (!strcmp(s->since, "now")) {
			char *h = strdup("head");
			if (h) {
				free(s->since);
				s->since = h;
			}
		}
		report(s, NULL,
		       "stored cursor %s/%s %s; the position is unknown: reading from "
		       "--journal-since=%s (entries read again keep their event ids)",
		       s->cur.dir, SYSTEMD_CURSOR_FILE, why, s->since);
	}
}

/* The tracker's commit (under its lock, from a sink thread): the sink has
 * every entry up to sequence safe; its cursor becomes the stored one. */
static void commit_seq(void *ctx, uint64_t safe)
{
	struct systemd_collector *s = ctx;
	const char *c = s->ring[safe % RING_SLOTS];
	int r;

	if (!c)
		return;
	r = cursor_update(&s->cur, c);
	if (r < 0) {
		count(&s->base.n.errors);
		report(s, &s->rl_emit, "saving the cursor in %s: %s", s->cur.dir, strerror(-r));
	}
}

void journal_event_id(const char *c, char *out, size_t outlen)
{
	size_t n = strlen(c);

	if (n <= ID_MAX) {
		snprintf(out, outlen, "%s", c);
		return;
	}
	uint64_t h = fnv1a64(c, n);
	snprintf(out, outlen, "journal-%016llx", (unsigned long long)h);
}

static int systemd_start(struct collector *c, struct queue *q)
{
	struct systemd_collector *s = to_sd(c);

	if (s->base.thread.started)
		return -EALREADY;
	s->q = q;
	load_cursor(s);
	ack_register(c->source, &s->ack);
	return collector_spawn(c, systemd_thread);
}

static void systemd_stop(struct collector *c)
{
	collector_join(c);
}

/* collector_destroy() has already destroyed the base's lock. */
static void systemd_destroy(struct collector *c)
{
	struct systemd_collector *s = to_sd(c);

	journal_close(s);
	if (s->ack_ok) {
		ack_unregister(c->source, &s->ack);
		/* what the sink acknowledged after the thread ended */
		int r = cursor_flush(&s->cur);
		if (r < 0)
			tlog(TLOG_WARN, "systemd", "saving the cursor in %s: %s", s->cur.dir,
			     strerror(-r));
		ack_destroy(&s->ack);
	}
	if (s->ring)
		for (size_t i = 0; i < RING_SLOTS; i++)
			free(s->ring[i]);
	free(s->ring);
	free(s->pos);
	free(s->dir);
	free(s->since);
	strlist_free(&s->units);
	cursor_destroy(&s->cur);
	sb_free(&s->arena);
	sb_free(&s->json);
	free(s->offs);
	free(s->lens);
	free(s->fields);
	files_free(s);
	free(s);
}

static void systemd_counters(struct collector *c, counter_fn fn, void *ctx)
{
	struct systemd_collector *s = to_sd(c);

	fn(ctx, "emit_retries", "", atomic_load(&s->emit_retries));
	fn(ctx, "journal_invalidations", "", atomic_load(&s->invalidations));
	fn(ctx, "bad_files", "", atomic_load(&s->bad_files));
	fn(ctx, "symlinks_refused", "", atomic_load(&s->symlinks_refused));
	fn(ctx, "acks_pending", "", s->ack_ok ? ack_pending(&s->ack) : 0);
}

static const struct collector_ops systemd_ops = {
    .name = "systemd",
    .start = systemd_start,
    .stop = systemd_stop,
    .destroy = systemd_destroy,
    .counters = systemd_counters,
};

struct collector *systemd_collector_new(const struct collector_env *env, char *err, size_t errlen)
{
	const struct tapio_config *cfg = env->cfg;
	const struct systemd_options *o = env->opts;
	struct systemd_collector *s;
	const char *dir = o->journal_dir ? o->journal_dir : "";
	const char *units = o->journal_units ? o->journal_units : SYSTEMD_DEFAULT_UNITS;
	const char *since = o->journal_since && *o->journal_since ? o->journal_since : "now";
	int r;

	if (errlen)
		err[0] = '\0';
	r = systemd_options_check(o, err, errlen);
	if (r < 0) {
		errno = -r;
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "systemd: out of memory");
		errno = ENOMEM;
		return NULL;
	}
	collector_init(&s->base, &systemd_ops, env->source);
	s->ifd = -1;
	s->rl_read.interval_ns = s->rl_entry.interval_ns = s->rl_emit.interval_ns = ERR_INTERVAL_NS;
	cursor_init(&s->cur, cfg->state_dir, SYSTEMD_CURSOR_FILE, CURSOR_DEFAULT_INTERVAL_MS);
	s->max_event_size = (size_t)cfg->max_event_size;
	s->dir = strdup(dir);
	s->since = strdup(since);
	s->ring = calloc(RING_SLOTS, sizeof(*s->ring));
	if (s->ring && ack_init(&s->ack, ACK_SLOTS, commit_seq, s) == 0)
		s->ack_ok = true;
	if (!s->dir || !s->since || !s->ack_ok || strlist_split(&s->units, units) < 0) {
		snprintf(err, errlen, "systemd: %s", strerror(ENOMEM));
		collector_destroy(&s->base);
		errno = ENOMEM;
		return NULL;
	}
	s->os_root = *dir && looks_like_os_root(dir);
	return &s->base;
}
