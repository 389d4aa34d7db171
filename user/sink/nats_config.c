// SPDX-License-Identifier: Apache-2.0
/* The NATS sink's configuration: the server list and the options group. */
#include <errno.h>
#include <inttypes.h>
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/options.h"
#include "sink/nats_internal.h"

/* ---- configuration checks ---- */

static int parse_one_server(const char *item, size_t len, char **out, char *err, size_t errlen)
{
	const char *p = item, *end = item + len, *host, *hend, *port;
	char *url;
	long pv = 0;

	if (len >= 7 && !strncmp(p, "nats://", 7))
		p += 7;
	else if (memchr(p, ':', len) && strstr(p, "://") && strstr(p, "://") < end) {
		err_printf(err, errlen, "nats: server '%.*s': only the nats:// scheme is supported",
			   (int)len, item);
		return -EINVAL;
	}
	if (p == end) {
		err_printf(err, errlen, "nats: server '%.*s': empty host", (int)len, item);
		return -EINVAL;
	}
	if (*p == '[') {
		host = p;
		hend = memchr(p, ']', (size_t)(end - p));
		if (!hend || hend == p + 1) {
			err_printf(err, errlen, "nats: server '%.*s': bad IPv6 address", (int)len,
				   item);
			return -EINVAL;
		}
		hend++;
		if (hend == end || *hend != ':') {
			err_printf(err, errlen, "nats: server '%.*s': missing :PORT", (int)len,
				   item);
			return -EINVAL;
		}
	} else {
		host = p;
		hend = memchr(p, ':', (size_t)(end - p));
		if (!hend) {
			err_printf(err, errlen, "nats: server '%.*s': missing :PORT", (int)len,
				   item);
			return -EINVAL;
		}
		if (hend == host) {
			err_printf(err, errlen, "nats: server '%.*s': empty host", (int)len, item);
			return -EINVAL;
		}
		for (const char *c = host; c < hend; c++) {
			if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
			      (*c >= '0' && *c <= '9') || *c == '.' || *c == '-' || *c == '_')) {
				err_printf(err, errlen,
					   "nats: server '%.*s': bad character in host", (int)len,
					   item);
				return -EINVAL;
			}
		}
	}
	port = hend + 1;
	if (port == end) {
		err_printf(err, errlen, "nats: server '%.*s': empty port", (int)len, item);
		return -EINVAL;
	}
	for (const char *c = port; c < end; c++) {
		if (*c < '0' || *c > '9' || pv > 65535) {
			err_printf(err, errlen, "nats: server '%.*s': bad port", (int)len, item);
			return -EINVAL;
		}
		pv = pv * 10 + (*c - '0');
	}
	if (pv < 1 || pv > 65535) {
		err_printf(err, errlen, "nats: server '%.*s': port out of range", (int)len, item);
		return -EINVAL;
	}
	if (asprintf(&url, "nats://%.*s:%ld", (int)(hend - host), host, pv) < 0)
		return -ENOMEM;
	*out = url;
	return 0;
}

int sink_nats_parse_url(const char *url, char **out, size_t max, size_t *n, char *err,
			size_t errlen)
{
	const char *p = url;
	int rc;

	*n = 0;
	if (!url || !*url) {
		err_printf(err, errlen, "nats: empty server list");
		return -EINVAL;
	}
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);

		while (len && (*p == ' ' || *p == '\t')) {
			p++;
			len--;
		}
		while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (!len) {
			err_printf(err, errlen, "nats: empty item in server list '%s'", url);
			rc = -EINVAL;
			goto fail;
		}
		if (*n == max) {
			err_printf(err, errlen, "nats: more than %zu servers in '%s'", max, url);
			rc = -EINVAL;
			goto fail;
		}
		rc = parse_one_server(p, len, &out[*n], err, errlen);
		if (rc)
			goto fail;
		(*n)++;
		if (!comma)
			return 0;
		p = comma + 1;
	}
fail:
	while (*n)
		free(out[--(*n)]);
	return rc;
}

/* A subject prefix: dot-separated non-empty tokens of printable characters
 * without wildcards. */
static bool subject_prefix_ok(const char *s)
{
	bool tok = false;

	if (!s || !*s)
		return false;
	for (; *s; s++) {
		if (*s == '.') {
			if (!tok)
				return false;
			tok = false;
		} else if (*s <= ' ' || *s == '*' || *s == '>' || (unsigned char)*s >= 0x7f) {
			return false;
		} else {
			tok = true;
		}
	}
	return tok;
}

static bool stream_name_ok(const char *s)
{
	if (!s || !*s || strlen(s) > 64)
		return false;
	for (; *s; s++)
		if (*s <= ' ' || *s == '.' || *s == '*' || *s == '>' || *s == '/' || *s == '\\' ||
		    (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

int nats_parse_retention(const char *r, jsRetentionPolicy *out)
{
	if (!r || !*r || !strcmp(r, "limits"))
		*out = js_LimitsPolicy;
	else if (!strcmp(r, "interest"))
		*out = js_InterestPolicy;
	else if (!strcmp(r, "workqueue"))
		*out = js_WorkQueuePolicy;
	else
		return -EINVAL;
	return 0;
}

#define NO(n, t, f, d, h) OPT_ENTRY(struct nats_options, n, t, f, d, h)

static const struct opt nats_opt_table[] = {
    NO("nats-subject-prefix", OPT_STR, subject_prefix, "tapio.events",
       "subject prefix: <prefix>.<source>.<type>"),
    NO("nats-stream", OPT_STR, stream, "TAPIO_EVENTS", "JetStream stream name"),
    NO("nats-retention", OPT_STR, retention, "limits", "limits | interest | workqueue"),
    NO("nats-max-age", OPT_U64, max_age_s, "0", "stream max age in seconds, 0 = unlimited"),
    NO("nats-max-inflight", OPT_UINT, max_inflight, "4096", "unacked publishes at most"),
    NO("nats-ack-wait-ms", OPT_UINT, ack_wait_ms, "5000", "on shutdown, how long to wait for acks"),
    NO("nats-replicas", OPT_UINT, replicas, "1",
       "the stream's replicas when tapio creates it (1..5; a cluster)"),
    NO("nats-duplicate-window", OPT_U64, dup_window_s, "120",
       "seconds: the stream's duplicate window when tapio creates it; the longest outage "
       "ridden out without duplicates"),
    NO("nats-max-attempts", OPT_UINT, max_attempts, "10",
       "publishes of one event at most before it is counted lost (1..1000)"),
};

int nats_options_check(const void *p, char *err, size_t errlen)
{
	const struct nats_options *o = p;
	jsRetentionPolicy rp;
	if (!subject_prefix_ok(o->subject_prefix)) {
		err_printf(err, errlen,
			   "nats-subject-prefix: '%s' is not a subject (dot-separated tokens, no "
			   "spaces or "
			   "wildcards)",
			   o->subject_prefix);
		return -EINVAL;
	}
	if (!stream_name_ok(o->stream)) {
		err_printf(err, errlen,
			   "nats-stream: '%s' is not a stream name (no spaces, '.', '*', '>', '/')",
			   o->stream);
		return -EINVAL;
	}
	if (nats_parse_retention(o->retention, &rp)) {
		err_printf(err, errlen, "nats-retention: '%s' is not limits, interest or workqueue",
			   o->retention);
		return -EINVAL;
	}
	if (o->max_inflight == 0) {
		err_printf(err, errlen, "nats-max-inflight: must be at least 1");
		return -EINVAL;
	}
	if (o->max_attempts > 1000) { /* 0: the default */
		err_printf(err, errlen, "nats-max-attempts: %u is not 1..1000", o->max_attempts);
		return -EINVAL;
	}
	if (o->max_age_s > (uint64_t)INT64_MAX / 1000000000ull) {
		err_printf(err, errlen, "nats-max-age: %" PRIu64 " is too large", o->max_age_s);
		return -EINVAL;
	}
	if (o->replicas > 5) { /* 0: the default, 1 */
		err_printf(err, errlen, "nats-replicas: %u is not 1..5", o->replicas);
		return -EINVAL;
	}
	if (o->dup_window_s > (uint64_t)INT64_MAX / 1000000000ull) { /* 0: the default, 120 */
		err_printf(err, errlen, "nats-duplicate-window: %" PRIu64 " is too large",
			   o->dup_window_s);
		return -EINVAL;
	}
	if (o->max_age_s && (o->dup_window_s ? o->dup_window_s : 120) > o->max_age_s) {
		err_printf(err, errlen,
			   "nats-duplicate-window: %" PRIu64
			   " s is longer than nats-max-age %" PRIu64 " s (JetStream refuses it)",
			   o->dup_window_s, o->max_age_s);
		return -EINVAL;
	}
	return 0;
}

const struct opt_group nats_options_group =
    OPT_GROUP("nats", struct nats_options, nats_opt_table, nats_options_check);
