// SPDX-License-Identifier: Apache-2.0
/* The framers (split, hostile and oversized input), backoff, and watch_run
 * against a small HTTP server on loopback. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http/watch.h"
#include "util/backoff.h"
#include "tests/lib/loopback.h"

/* True when the client's connection to 127.0.0.1:port is close-on-exec.
 * (curl's internal wake-up socketpair is curl's own business.) */
static bool client_socket_cloexec(int port)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	bool found = false, ok = true;
	while (d && (de = readdir(d))) {
		int fd = atoi(de->d_name);
		struct sockaddr_in a;
		socklen_t al = sizeof(a);
		if (getpeername(fd, (struct sockaddr *)&a, &al) != 0 || a.sin_family != AF_INET ||
		    ntohs(a.sin_port) != port)
			continue;
		found = true;
		if (!(fcntl(fd, F_GETFD) & FD_CLOEXEC))
			ok = false;
	}
	if (d)
		closedir(d);
	return found && ok;
}

/* ---- a collecting callback ---- */

struct msgs {
	char *v[256];
	size_t len[256];
	size_t n;
	int fail_at;	/* return -EPIPE for message number fail_at (1-based), 0 = never */
	int check_port; /* check the client socket to this port during a callback */
	bool fds_ok;
};

static int collect(void *ctx, const char *m, size_t len)
{
	struct msgs *ms = ctx;
	if (ms->fail_at && (int)ms->n + 1 == ms->fail_at)
		return -EPIPE;
	cr_assert(ms->n < 256);
	if (ms->check_port)
		ms->fds_ok = client_socket_cloexec(ms->check_port);
	ms->v[ms->n] = malloc(len + 1);
	memcpy(ms->v[ms->n], m, len);
	ms->v[ms->n][len] = '\0';
	ms->len[ms->n] = len;
	ms->n++;
	return 0;
}

static void msgs_free(struct msgs *ms)
{
	for (size_t i = 0; i < ms->n; i++)
		free(ms->v[i]);
	memset(ms, 0, sizeof(*ms));
}

/* Feeds s in pieces cut at the given positions, then finishes. */
static void feed_cuts(struct framer *f, const char *s, size_t n, const size_t *cuts, size_t ncuts,
		      struct msgs *ms, bool *trunc)
{
	size_t prev = 0;
	for (size_t i = 0; i <= ncuts; i++) {
		size_t end = i < ncuts ? cuts[i] : n;
		cr_assert_eq(framer_feed(f, s + prev, end - prev, collect, ms), 0);
		prev = end;
	}
	cr_assert_eq(framer_finish(f, collect, ms, trunc), 0);
}

static void expect(struct msgs *ms, const char *const *want, size_t nwant)
{
	cr_assert_eq(ms->n, nwant, "got %zu messages, want %zu", ms->n, nwant);
	for (size_t i = 0; i < nwant; i++)
		cr_assert_str_eq(ms->v[i], want[i], "message %zu", i);
}

/* Runs input through mode in one piece, cut at every single position, cut at
 * every pair of positions (short inputs) and byte by byte; each time the same
 * messages must come out. */
static void check_all_splits(enum framing mode, size_t max, const char *s, size_t n,
			     const char *const *want, size_t nwant, bool want_trunc,
			     uint64_t want_oversize, uint64_t want_junk)
{
	struct framer f;
	struct msgs ms = {0};
	bool trunc;

	for (size_t a = 0; a <= n; a++) {
		for (size_t b = a; b <= n; b++) {
			if (n > 200 && b != a)
				break;
			size_t cuts[2] = {a, b};
			cr_assert_eq(framer_init(&f, mode, max), 0);
			feed_cuts(&f, s, n, cuts, 2, &ms, &trunc);
			expect(&ms, want, nwant);
			cr_assert_eq(trunc, want_trunc, "truncated at cuts %zu,%zu", a, b);
			cr_assert_eq(f.oversize, want_oversize, "oversize at cuts %zu,%zu: %lu", a,
				     b, (unsigned long)f.oversize);
			cr_assert_eq(f.junk, want_junk, "junk at cuts %zu,%zu: %lu", a, b,
				     (unsigned long)f.junk);
			msgs_free(&ms);
			framer_free(&f);
		}
	}
	/* byte by byte */
	cr_assert_eq(framer_init(&f, mode, max), 0);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(framer_feed(&f, s + i, 1, collect, &ms), 0);
	cr_assert_eq(framer_finish(&f, collect, &ms, &trunc), 0);
	expect(&ms, want, nwant);
	cr_assert_eq(trunc, want_trunc);
	cr_assert_eq(f.oversize, want_oversize);
	cr_assert_eq(f.junk, want_junk);
	msgs_free(&ms);
	framer_free(&f);
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- FRAME_LINES ---- */

Test(framer_lines, basic_crlf_and_empty_lines)
{
	const char s[] = "a\nbb\r\n\n\r\nccc\n";
	const char *want[] = {"a", "bb", "ccc"};
	check_all_splits(FRAME_LINES, 0, s, sizeof(s) - 1, want, N(want), false, 0, 0);
}

Test(framer_lines, last_line_without_newline_is_delivered_at_finish)
{
	const char s[] = "{\"a\":1}\n{\"b\":2}";
	const char *want[] = {"{\"a\":1}", "{\"b\":2}"};
	check_all_splits(FRAME_LINES, 0, s, sizeof(s) - 1, want, N(want), false, 0, 0);
}

Test(framer_lines, oversize_then_good_line)
{
	/* max 4: "12345" is skipped, the stream resyncs at the newline. */
	const char s[] = "ab\n12345\nok\n1234\n123456789\r\nz";
	const char *want[] = {"ab", "ok", "1234", "z"};
	check_all_splits(FRAME_LINES, 4, s, sizeof(s) - 1, want, N(want), false, 2, 0);
}

Test(framer_lines, oversize_unterminated_line_at_end_is_not_delivered)
{
	const char s[] = "ok\n0123456789";
	const char *want[] = {"ok"};
	check_all_splits(FRAME_LINES, 4, s, sizeof(s) - 1, want, N(want), false, 1, 0);
}

Test(framer_lines, crlf_does_not_count_against_max_and_last_line_is_checked)
{
	/* "1234\r" is a 4-byte message; a final unterminated "12345" is over max. */
	const char s[] = "1234\r\nab\r\n12345";
	const char *want[] = {"1234", "ab"};
	check_all_splits(FRAME_LINES, 4, s, sizeof(s) - 1, want, N(want), false, 1, 0);
}

Test(framer_lines, nul_bytes_are_kept)
{
	const char s[] = "a\0b\n\0\n";
	struct framer f;
	struct msgs ms = {0};
	cr_assert_eq(framer_init(&f, FRAME_LINES, 0), 0);
	cr_assert_eq(framer_feed(&f, s, sizeof(s) - 1, collect, &ms), 0);
	cr_assert_eq(ms.n, 2);
	cr_assert_eq(ms.len[0], 3);
	cr_assert_eq(memcmp(ms.v[0], "a\0b", 3), 0);
	cr_assert_eq(ms.len[1], 1);
	cr_assert_eq(ms.v[1][0], '\0');
	msgs_free(&ms);
	framer_free(&f);
}

/* ---- FRAME_JSON_OBJECTS ---- */

Test(framer_json, objects_back_to_back_and_with_whitespace)
{
	const char s[] = "{\"a\":1}{\"b\":{\"c\":[1,{}]}}\n  \r\n\t{}";
	const char *want[] = {"{\"a\":1}", "{\"b\":{\"c\":[1,{}]}}", "{}"};
	check_all_splits(FRAME_JSON_OBJECTS, 0, s, sizeof(s) - 1, want, N(want), false, 0, 0);
}

Test(framer_json, braces_and_escaped_quotes_inside_strings)
{
	const char s[] = "{\"k\":\"}{\\\"}\\\\\",\"x\":\"\\\\\"}{\"y\":\"{{{\"}";
	/* first object: {"k":"}{\"}\\","x":"\\"}  second: {"y":"{{{"} */
	const char *want[] = {"{\"k\":\"}{\\\"}\\\\\",\"x\":\"\\\\\"}", "{\"y\":\"{{{\"}"};
	check_all_splits(FRAME_JSON_OBJECTS, 0, s, sizeof(s) - 1, want, N(want), false, 0, 0);
}

Test(framer_json, garbage_between_objects_is_skipped_and_counted)
{
	const char s[] = "xx{\"a\":1}]]}}[1,2]\"str\"{\"b\":2}zz";
	/* stray: "xx" 2, "]]}}" 4, "[1,2]" 5, "\"str\"" 5, "zz" 2 = 18 */
	const char *want[] = {"{\"a\":1}", "{\"b\":2}"};
	check_all_splits(FRAME_JSON_OBJECTS, 0, s, sizeof(s) - 1, want, N(want), false, 0, 18);
}

Test(framer_json, truncated_end_is_dropped_and_reported)
{
	const char s[] = "{\"a\":1}{\"b\":{\"c\":\"}";
	const char *want[] = {"{\"a\":1}"};
	check_all_splits(FRAME_JSON_OBJECTS, 0, s, sizeof(s) - 1, want, N(want), true, 0, 0);
}

Test(framer_json, unbalanced_open_brace_swallows_the_rest_and_is_truncated)
{
	/* A missing '}' makes the first object take in everything after it: the
	 * framer cannot know better; the stream ends truncated, nothing delivered. */
	const char s[] = "{\"a\":{\"b\":1}{\"ok\":1}";
	check_all_splits(FRAME_JSON_OBJECTS, 0, s, sizeof(s) - 1, NULL, 0, true, 0, 0);
	/* With a max, the runaway is skipped and counted once. */
	check_all_splits(FRAME_JSON_OBJECTS, 8, s, sizeof(s) - 1, NULL, 0, false, 1, 0);
}

Test(framer_json, nested_oversize_then_good_object)
{
	/* A deep object over max is skipped by depth tracking; the good one after
	 * it still arrives. */
	const char s[] = "{{{{\"aaaaaaaaaaaaaaaaaaaa\"}}}}{\"ok\":1}";
	const char *want[] = {"{\"ok\":1}"};
	check_all_splits(FRAME_JSON_OBJECTS, 16, s, sizeof(s) - 1, want, N(want), false, 1, 0);
}

Test(framer_json, oversize_then_good_object)
{
	const char s[] = "{\"big\":\"0123456789abcdef}{\"}\n{\"ok\":true}\n{\"big2\":"
			 "\"0123456789abcdefghij\"}{}";
	const char *want[] = {"{\"ok\":true}", "{}"};
	check_all_splits(FRAME_JSON_OBJECTS, 16, s, sizeof(s) - 1, want, N(want), false, 2, 0);
}

Test(framer_json, exactly_max_is_delivered)
{
	const char s[] = "{\"a\":\"123456\"}"; /* 14 bytes */
	const char *want[] = {"{\"a\":\"123456\"}"};
	check_all_splits(FRAME_JSON_OBJECTS, 14, s, sizeof(s) - 1, want, N(want), false, 0, 0);
	check_all_splits(FRAME_JSON_OBJECTS, 13, s, sizeof(s) - 1, NULL, 0, false, 1, 0);
}

Test(framer_json, nul_bytes_inside_and_outside)
{
	const char s[] = "\0{\"a\":\"x\0y\"}\0\0{\"b\":1}";
	struct framer f;
	struct msgs ms = {0};
	bool trunc;
	cr_assert_eq(framer_init(&f, FRAME_JSON_OBJECTS, 0), 0);
	size_t cuts[1] = {5};
	feed_cuts(&f, s, sizeof(s) - 1, cuts, 1, &ms, &trunc);
	cr_assert_eq(ms.n, 2);
	cr_assert_eq(ms.len[0], 11);
	cr_assert_eq(memcmp(ms.v[0], "{\"a\":\"x\0y\"}", 11), 0);
	cr_assert_str_eq(ms.v[1], "{\"b\":1}");
	cr_assert_eq(f.junk, 3);
	cr_assert_not(trunc);
	msgs_free(&ms);
	framer_free(&f);
}

Test(framer_json, one_object_over_many_feeds)
{
	/* A 100 KB object fed 7 bytes at a time. */
	size_t n = 100000;
	char *s = malloc(n + 16);
	strcpy(s, "{\"v\":\"");
	size_t p = strlen(s);
	while (p < n)
		s[p] = (char)('a' + p % 26), p++;
	strcpy(s + p, "\"}");
	n = strlen(s);
	struct framer f;
	struct msgs ms = {0};
	bool trunc;
	cr_assert_eq(framer_init(&f, FRAME_JSON_OBJECTS, 0), 0);
	for (size_t i = 0; i < n; i += 7)
		cr_assert_eq(framer_feed(&f, s + i, n - i < 7 ? n - i : 7, collect, &ms), 0);
	cr_assert_eq(framer_finish(&f, collect, &ms, &trunc), 0);
	cr_assert_eq(ms.n, 1);
	cr_assert_eq(ms.len[0], n);
	cr_assert_eq(memcmp(ms.v[0], s, n), 0);
	msgs_free(&ms);
	framer_free(&f);
	free(s);
}

Test(framer_json, callback_error_stops_the_feed)
{
	const char s[] = "{}{\"a\":1}{}";
	struct framer f;
	struct msgs ms = {.fail_at = 2};
	cr_assert_eq(framer_init(&f, FRAME_JSON_OBJECTS, 0), 0);
	cr_assert_eq(framer_feed(&f, s, sizeof(s) - 1, collect, &ms), -EPIPE);
	cr_assert_eq(ms.n, 1);
	msgs_free(&ms);
	framer_free(&f);
}

Test(framer_json, reset_forgets_a_partial_object)
{
	struct framer f;
	struct msgs ms = {0};
	cr_assert_eq(framer_init(&f, FRAME_JSON_OBJECTS, 0), 0);
	cr_assert_eq(framer_feed(&f, "{\"a\":\"}", 7, collect, &ms), 0);
	framer_reset(&f);
	cr_assert_eq(framer_feed(&f, "{\"b\":2}", 7, collect, &ms), 0);
	cr_assert_eq(ms.n, 1);
	cr_assert_str_eq(ms.v[0], "{\"b\":2}");
	msgs_free(&ms);
	framer_free(&f);
}

/* ---- FRAME_WHOLE ---- */

Test(framer_whole, body_and_oversize)
{
	const char s[] = "{\"items\":[]}\n";
	const char *want[] = {"{\"items\":[]}\n"};
	check_all_splits(FRAME_WHOLE, 0, s, sizeof(s) - 1, want, N(want), false, 0, 0);
	check_all_splits(FRAME_WHOLE, 5, s, sizeof(s) - 1, NULL, 0, false, 1, 0);
	const char *empty[] = {""};
	check_all_splits(FRAME_WHOLE, 0, "", 0, empty, 1, false, 0, 0);
}

Test(framer, init_rejects_bad_mode)
{
	struct framer f;
	cr_assert_eq(framer_init(&f, (enum framing)42, 0), -EINVAL);
	cr_assert_eq(framer_init(NULL, FRAME_LINES, 0), -EINVAL);
	cr_assert_eq(framer_init(&f, FRAME_LINES, 0), 0);
	cr_assert_eq(f.max, (size_t)16 << 20);
	framer_free(&f);
	framer_free(NULL);
}

/* ---- backoff ---- */

Test(backoff, bounds_and_cap)
{
	for (unsigned attempt = 0; attempt < 100; attempt++) {
		uint64_t d = 800;
		for (unsigned i = 0; i < attempt && d < 30000; i++)
			d *= 2;
		if (d > 30000)
			d = 30000;
		unsigned lo = ~0u, hi = 0;
		for (int k = 0; k < 200; k++) {
			unsigned v = backoff_ms(attempt, 800, 30000);
			cr_assert(v >= d / 2 && v <= d, "attempt %u: %u not in [%lu, %lu]", attempt,
				  v, (unsigned long)(d / 2), (unsigned long)d);
			lo = v < lo ? v : lo;
			hi = v > hi ? v : hi;
		}
		/* jitter: 200 draws are not all the same */
		cr_assert_lt(lo, hi, "attempt %u: no jitter", attempt);
	}
	cr_assert_eq(backoff_ms(~0u, ~0u, ~0u) >= ~0u / 2, true);
	cr_assert_eq(backoff_ms(5, 0, 30000), 0);
}

Test(backoff, sleep_or_stop)
{
	atomic_bool stop = false;
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	cr_assert_not(sleep_or_stop(120, &stop));
	clock_gettime(CLOCK_MONOTONIC, &b);
	long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
	cr_assert(ms >= 110, "slept %ld ms", ms);
	atomic_store(&stop, true);
	clock_gettime(CLOCK_MONOTONIC, &a);
	cr_assert(sleep_or_stop(10000, &stop));
	clock_gettime(CLOCK_MONOTONIC, &b);
	ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
	cr_assert(ms < 100, "stop took %ld ms", ms);
}

/* ---- watch_run against a loopback server ---- */

struct srv {
	int lfd;
	int port;
	pthread_t t;
	/* what to send: parts written with a pause between them */
	const char *parts[8];
	size_t nparts;
	unsigned pause_ms;
	bool hold;	/* keep the connection open after the parts */
	char req[8192]; /* the request received */
	size_t req_len;
	atomic_bool done;
};

static void *srv_main(void *arg)
{
	struct srv *s = arg;
	int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return NULL;
	/* read the head, then the body by Content-Length */
	for (;;) {
		ssize_t r = read(fd, s->req + s->req_len, sizeof(s->req) - 1 - s->req_len);
		if (r <= 0)
			break;
		s->req_len += (size_t)r;
		s->req[s->req_len] = '\0';
		char *end = strstr(s->req, "\r\n\r\n");
		if (!end)
			continue;
		size_t clen = 0;
		char *cl = strcasestr(s->req, "content-length:");
		if (cl)
			clen = strtoul(cl + 15, NULL, 10);
		if (s->req_len >= (size_t)(end + 4 - s->req) + clen)
			break;
	}
	for (size_t i = 0; i < s->nparts; i++) {
		if (send(fd, s->parts[i], strlen(s->parts[i]), MSG_NOSIGNAL) < 0)
			break;
		if (s->pause_ms)
			usleep(s->pause_ms * 1000);
	}
	while (s->hold && !atomic_load(&s->done))
		usleep(10000);
	close(fd);
	return NULL;
}

static void srv_start(struct srv *s)
{
	s->lfd = tl_listen_loopback(4, &s->port);
	cr_assert_geq(s->lfd, 0, "listen on loopback: %s", strerror(errno));
	cr_assert_eq(pthread_create(&s->t, NULL, srv_main, s), 0);
}

static void srv_stop(struct srv *s)
{
	atomic_store(&s->done, true);
	shutdown(s->lfd, SHUT_RDWR);
	pthread_join(s->t, NULL);
	close(s->lfd);
}

Test(watch_run, chunked_stream_split_inside_objects)
{
	struct srv s = {
	    .parts = {"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: "
		      "chunked\r\n\r\n",
		      "10\r\n{\"result\":{\"a\":1\r\n", "9\r\n}}\n{\"resu\r\n",
		      "8\r\nlt\":2}  \r\n", "0\r\n\r\n"},
	    .nparts = 5,
	    .pause_ms = 30,
	};
	srv_start(&s);
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v3/watch", s.port);
	struct msgs ms = {.check_port = s.port};
	struct watch_req req = {.url = url,
				.method = "POST",
				.body = "{\"create_request\":{}}",
				.bearer_token = "tok123",
				.framing = FRAME_JSON_OBJECTS,
				.on_msg = collect,
				.ctx = &ms};
	struct watch_result res;
	int rc = watch_run(&req, &res);
	srv_stop(&s);
	cr_assert_eq(rc, 0, "rc %d: %s", rc, res.error);
	cr_assert_eq(res.http_status, 200);
	cr_assert_eq(res.messages, 2);
	cr_assert_not(res.truncated);
	cr_assert(ms.fds_ok, "the connection socket is not close-on-exec");
	const char *want[] = {"{\"result\":{\"a\":1}}", "{\"result\":2}"};
	expect(&ms, want, 2);
	cr_assert(strncmp(s.req, "POST /v3/watch HTTP/1.1\r\n", 25) == 0, "%s", s.req);
	cr_assert_not_null(strstr(s.req, "Authorization: Bearer tok123\r\n"));
	cr_assert_not_null(strstr(s.req, "Content-Type: application/json\r\n"));
	cr_assert_not_null(strstr(s.req, "\r\n\r\n{\"create_request\":{}}"));
	msgs_free(&ms);
	watch_result_free(&res);
}

Test(watch_run, error_status_keeps_the_body_and_delivers_nothing)
{
	struct srv s = {
	    .parts = {"HTTP/1.1 404 Not Found\r\nContent-Length: "
		      "25\r\n\r\n{\"code\":5}\n{\"x\":\"second\"}"},
	    .nparts = 1,
	};
	srv_start(&s);
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v3/watch", s.port);
	struct msgs ms = {0};
	struct watch_req req = {
	    .url = url, .framing = FRAME_JSON_OBJECTS, .on_msg = collect, .ctx = &ms};
	struct watch_result res;
	int rc = watch_run(&req, &res);
	srv_stop(&s);
	cr_assert_eq(rc, -EPROTO);
	cr_assert_eq(res.http_status, 404);
	cr_assert_eq(ms.n, 0);
	cr_assert_eq(res.err_body_len, 25);
	cr_assert_str_eq(res.err_body, "{\"code\":5}\n{\"x\":\"second\"}");
	cr_assert_str_eq(res.error, "HTTP 404: {\"code\":5}");
	cr_assert(strncmp(s.req, "GET /v3/watch HTTP/1.1\r\n", 24) == 0);
	watch_result_free(&res);
	watch_result_free(NULL);
}

Test(watch_run, stream_cut_inside_a_message_is_truncated)
{
	struct srv s = {
	    .parts = {"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"a\":1}\n{\"b\":"},
	    .nparts = 1,
	};
	srv_start(&s);
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", s.port);
	struct msgs ms = {0};
	struct watch_req req = {.url = url, .framing = FRAME_LINES, .on_msg = collect, .ctx = &ms};
	struct watch_result res;
	int rc = watch_run(&req, &res);
	srv_stop(&s);
	cr_assert_lt(rc, 0);
	cr_assert_neq(res.curl_code, 0);
	cr_assert(res.truncated);
	const char *want[] = {"{\"a\":1}"};
	expect(&ms, want, 1);
	msgs_free(&ms);
	watch_result_free(&res);
}

static atomic_bool stop_flag;

static void *set_stop_later(void *arg)
{
	(void)arg;
	usleep(300000);
	atomic_store(&stop_flag, true);
	watch_stop_notify();
	return NULL;
}

Test(watch_run, stop_aborts_an_idle_stream_promptly)
{
	struct srv s = {
	    .parts = {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "3\r\n{}\n\r\n"},
	    .nparts = 2,
	    .hold = true,
	};
	srv_start(&s);
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", s.port);
	struct msgs ms = {0};
	atomic_store(&stop_flag, false);
	struct watch_req req = {
	    .url = url, .framing = FRAME_LINES, .on_msg = collect, .ctx = &ms, .stop = &stop_flag};
	struct watch_result res;
	pthread_t t;
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	pthread_create(&t, NULL, set_stop_later, NULL);
	int rc = watch_run(&req, &res);
	clock_gettime(CLOCK_MONOTONIC, &b);
	pthread_join(t, NULL);
	srv_stop(&s);
	long ms_el = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
	cr_assert_eq(rc, -ECANCELED, "rc %d %s", rc, res.error);
	cr_assert(res.stopped);
	/* 300 ms until the stop, then woken by the notify, not by a poll slice */
	cr_assert_lt(ms_el, 600, "stop took %ld ms", ms_el);
	cr_assert_eq(ms.n, 1);
	cr_assert_str_eq(ms.v[0], "{}");
	msgs_free(&ms);
	watch_result_free(&res);
}

Test(watch_run, idle_timeout)
{
	struct srv s = {
	    .parts = {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"},
	    .nparts = 1,
	    .hold = true,
	};
	srv_start(&s);
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", s.port);
	struct watch_req req = {.url = url, .framing = FRAME_LINES, .idle_timeout_s = 1};
	struct watch_result res;
	int rc = watch_run(&req, &res);
	srv_stop(&s);
	cr_assert_eq(rc, -ETIMEDOUT, "rc %d: %s", rc, res.error);
	watch_result_free(&res);
}

static long elapsed_ms(const struct timespec *a)
{
	struct timespec b;
	clock_gettime(CLOCK_MONOTONIC, &b);
	return (b.tv_sec - a->tv_sec) * 1000 + (b.tv_nsec - a->tv_nsec) / 1000000;
}

/* timeout_ms bounds the whole request: a server that never answers, and one
 * that trickles bytes (which keeps the idle timeout from firing). */
Test(watch_run, whole_request_timeout)
{
	struct srv hung = {.hold = true};
	srv_start(&hung);
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", hung.port);
	struct watch_req req = {
	    .url = url, .framing = FRAME_WHOLE, .idle_timeout_s = 10, .timeout_ms = 300};
	struct watch_result res;
	struct timespec a;
	clock_gettime(CLOCK_MONOTONIC, &a);
	int rc = watch_run(&req, &res);
	long ms = elapsed_ms(&a);
	srv_stop(&hung);
	cr_assert_eq(rc, -ETIMEDOUT, "rc %d: %s", rc, res.error);
	cr_assert_geq(ms, 280, "ended after %ld ms", ms);
	cr_assert_lt(ms, 800, "ended after %ld ms", ms);
	watch_result_free(&res);

	struct srv trickle = {
	    .parts = {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "3\r\n{}\n\r\n",
		      "3\r\n{}\n\r\n", "3\r\n{}\n\r\n", "3\r\n{}\n\r\n", "3\r\n{}\n\r\n",
		      "3\r\n{}\n\r\n", "3\r\n{}\n\r\n"},
	    .nparts = 8,
	    .pause_ms = 150,
	    .hold = true,
	};
	srv_start(&trickle);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", trickle.port);
	struct msgs got = {0};
	struct watch_req req2 = {.url = url,
				 .framing = FRAME_LINES,
				 .idle_timeout_s = 1,
				 .timeout_ms = 400,
				 .on_msg = collect,
				 .ctx = &got};
	clock_gettime(CLOCK_MONOTONIC, &a);
	rc = watch_run(&req2, &res);
	ms = elapsed_ms(&a);
	srv_stop(&trickle);
	cr_assert_eq(rc, -ETIMEDOUT, "rc %d: %s", rc, res.error);
	cr_assert_lt(ms, 900, "ended after %ld ms", ms);
	cr_assert_gt(got.n, 0);
	cr_assert_lt(got.n, 7, "%zu messages: the timeout did not end the stream", got.n);
	msgs_free(&got);
	watch_result_free(&res);
}

Test(watch_run, connection_refused_and_bad_url)
{
	int port = tl_free_port();
	cr_assert_gt(port, 0);
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
	struct watch_req req = {.url = url, .framing = FRAME_LINES};
	struct watch_result res;
	cr_assert_eq(watch_run(&req, &res), -ECONNREFUSED, "%s", res.error);
	cr_assert_eq(res.http_status, 0);
	cr_assert_neq(res.error[0], '\0');
	watch_result_free(&res);

	req.url = "ftp://127.0.0.1/";
	cr_assert_eq(watch_run(&req, &res), -EINVAL, "%s", res.error);
	watch_result_free(&res);
}

Test(watch_run, https_without_a_trusted_ca_fails_verification)
{
	/* A plain-HTTP server answering a TLS client: the handshake fails, and
	 * the error is a TLS one, not a hang. */
	struct srv s = {.parts = {"HTTP/1.1 200 OK\r\n\r\n"}, .nparts = 1};
	srv_start(&s);
	char url[64];
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/", s.port);
	struct watch_tls tls = {
	    .ca_pem = "-----BEGIN CERTIFICATE-----\nbad\n-----END CERTIFICATE-----\n"};
	struct watch_req req = {
	    .url = url, .framing = FRAME_LINES, .tls = &tls, .connect_timeout_ms = 2000};
	struct watch_result res;
	int rc = watch_run(&req, &res);
	srv_stop(&s);
	cr_assert_lt(rc, 0);
	cr_assert_neq(res.curl_code, 0);
	watch_result_free(&res);
}

static void *notify_later(void *arg)
{
	usleep(200000);
	if (arg)
		atomic_store(&stop_flag, true);
	watch_stop_notify();
	return NULL;
}

/* A sleep ends at a notify once its flag is set; a notify for someone else
 * (its flag unset) does not end it. */
Test(sleep_or_stop, wakes_on_notify_only_when_its_flag_is_set)
{
	struct timespec a, b;
	pthread_t t;
	atomic_store(&stop_flag, false);
	clock_gettime(CLOCK_MONOTONIC, &a);
	pthread_create(&t, NULL, notify_later, &stop_flag);
	cr_assert(sleep_or_stop(5000, &stop_flag));
	clock_gettime(CLOCK_MONOTONIC, &b);
	pthread_join(t, NULL);
	long el = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
	cr_assert(el >= 190 && el < 500, "woken after %ld ms", el);

	atomic_store(&stop_flag, false);
	clock_gettime(CLOCK_MONOTONIC, &a);
	pthread_create(&t, NULL, notify_later, NULL);
	cr_assert_not(sleep_or_stop(700, &stop_flag));
	clock_gettime(CLOCK_MONOTONIC, &b);
	pthread_join(t, NULL);
	el = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
	cr_assert(el >= 690 && el < 1200, "slept %ld ms of 700", el);
}

/* A keep-alive server: serves every request on a connection (a small JSON
 * body with Content-Length) until the client closes it, then accepts the
 * next; counts connections and requests. */
struct ka_srv {
	int lfd, port;
	pthread_t t;
	atomic_int conns, reqs;
};

static void *ka_main(void *arg)
{
	struct ka_srv *s = arg;
	static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n{}\n";
	for (;;) {
		int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			return NULL;
		atomic_fetch_add(&s->conns, 1);
		char buf[4096];
		size_t have = 0;
		for (;;) {
			ssize_t r = read(fd, buf + have, sizeof(buf) - 1 - have);
			if (r <= 0)
				break;
			have += (size_t)r;
			buf[have] = '\0';
			char *end;
			while ((end = strstr(buf, "\r\n\r\n"))) {
				atomic_fetch_add(&s->reqs, 1);
				if (send(fd, resp, sizeof(resp) - 1, MSG_NOSIGNAL) < 0)
					break;
				size_t used = (size_t)(end + 4 - buf);
				memmove(buf, buf + used, have - used + 1);
				have -= used;
			}
		}
		close(fd);
	}
}

static int ka_requests(struct ka_srv *s, struct watch_conn *conn, int n)
{
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/lease", s->port);
	for (int i = 0; i < n; i++) {
		struct msgs ms = {0};
		struct watch_req req = {.url = url,
					.framing = FRAME_WHOLE,
					.on_msg = collect,
					.ctx = &ms,
					.conn = conn};
		struct watch_result res;
		int rc = watch_run(&req, &res);
		cr_assert_eq(rc, 0, "request %d: %s", i, res.error);
		cr_assert_eq(ms.n, 1);
		msgs_free(&ms);
		watch_result_free(&res);
	}
	return 0;
}

/* With a watch_conn, a thread's requests share one kept-alive connection;
 * without, each request opens its own. */
Test(watch_run, a_watch_conn_keeps_the_connection_between_requests)
{
	struct ka_srv s = {0};
	s.lfd = tl_listen_loopback(4, &s.port);
	cr_assert_geq(s.lfd, 0);
	cr_assert_eq(pthread_create(&s.t, NULL, ka_main, &s), 0);

	struct watch_conn conn = {0};
	ka_requests(&s, &conn, 3);
	cr_assert_eq(atomic_load(&s.reqs), 3);
	cr_assert_eq(atomic_load(&s.conns), 1, "%d connections", atomic_load(&s.conns));
	watch_conn_close(&conn);
	watch_conn_close(&conn); /* twice is fine */
	watch_conn_close(NULL);

	ka_requests(&s, NULL, 2);
	for (int i = 0; i < 100 && atomic_load(&s.reqs) < 5; i++)
		usleep(10000);
	cr_assert_eq(atomic_load(&s.reqs), 5);
	cr_assert_eq(atomic_load(&s.conns), 3, "%d connections", atomic_load(&s.conns));

	shutdown(s.lfd, SHUT_RDWR);
	pthread_join(s.t, NULL);
	close(s.lfd);
}
