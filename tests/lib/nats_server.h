/* SPDX-License-Identifier: Apache-2.0 */
/* Test helper: a real `nats-server -js` on a free loopback port with a temp
 * store dir, and a libnats reader for what landed in a stream. Header-only so
 * that each test binary can include it. */
#ifndef TAPIO_TEST_NATS_SERVER_H
#define TAPIO_TEST_NATS_SERVER_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <nats/nats.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/lib/loopback.h"
#include "tests/lib/tmpdir.h"

#define NATS_SERVER_BIN "/usr/sbin/nats-server"

struct nats_srv {
	pid_t pid;
	int port;
	char dir[128];
	char url[64];
};

static inline int ns_port_open(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ok;

	if (fd < 0)
		return 0;
	ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(fd);
	return ok;
}

static inline void ns_sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* Starts (or restarts, same port and dir) the server; 0 or -1. */
static inline int ns_start(struct nats_srv *s)
{
	char port[16];

	if (!s->dir[0]) {
		if (!tl_mkdtemp(s->dir, sizeof(s->dir), "nats"))
			return -1;
		s->port = tl_free_port();
		snprintf(s->url, sizeof(s->url), "nats://127.0.0.1:%d", s->port);
	}
	snprintf(port, sizeof(port), "%d", s->port);
	s->pid = fork();
	if (s->pid < 0)
		return -1;
	if (s->pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);

		if (devnull >= 0) {
			dup2(devnull, 1);
			dup2(devnull, 2);
		}
		execl(NATS_SERVER_BIN, "nats-server", "-js", "-a", "127.0.0.1", "-p", port, "-sd",
		      s->dir, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 100; i++) {
		if (ns_port_open(s->port))
			return 0;
		if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
			s->pid = 0;
			return -1;
		}
		ns_sleep_ms(50);
	}
	return -1;
}

static inline void ns_kill(struct nats_srv *s, int sig)
{
	if (s->pid > 0) {
		kill(s->pid, sig);
		/* kill() returns before a server running on another CPU has
		 * stopped: wait for it, so nothing is answered after this. */
		if (sig == SIGSTOP)
			waitpid(s->pid, NULL, WUNTRACED);
		if (sig == SIGKILL || sig == SIGTERM) {
			waitpid(s->pid, NULL, 0);
			s->pid = 0;
		}
	}
}

static inline void ns_stop(struct nats_srv *s)
{
	if (s->pid > 0) {
		kill(s->pid, SIGCONT);
		ns_kill(s, SIGKILL);
	}
	if (s->dir[0]) {
		if (tl_rmtree(s->dir) != 0)
			fprintf(stderr, "could not remove %s\n", s->dir);
		s->dir[0] = '\0';
	}
}

/* One message read back from a stream. */
struct ns_msg {
	uint64_t seq;
	char subject[256];
	char id[200];
	char *data; /* malloc'd, NUL-terminated */
	int len;
};

/* Reads every message of the stream into *out (malloc'd array, *n entries).
 * Returns 0 or -1. */
static inline int ns_read_stream(const char *url, const char *stream, struct ns_msg **out,
				 size_t *n)
{
	natsConnection *nc = NULL;
	jsCtx *js = NULL;
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	int rc = -1;

	*out = NULL;
	*n = 0;
	if (natsConnection_ConnectTo(&nc, url) != NATS_OK)
		return -1;
	if (natsConnection_JetStream(&js, nc, NULL) != NATS_OK)
		goto out;
	if (js_GetStreamInfo(&si, js, stream, NULL, &jerr) != NATS_OK)
		goto out;
	*out = calloc(si->State.Msgs + 1, sizeof(**out));
	for (uint64_t seq = si->State.FirstSeq; si->State.Msgs && seq <= si->State.LastSeq; seq++) {
		natsMsg *m = NULL;
		const char *id = NULL;
		struct ns_msg *e;

		if (js_GetMsg(&m, js, stream, seq, NULL, &jerr) != NATS_OK)
			continue; /* deleted */
		if (*n == si->State.Msgs) {
			natsMsg_Destroy(m);
			break;
		}
		e = &(*out)[(*n)++];
		e->seq = seq;
		snprintf(e->subject, sizeof(e->subject), "%s", natsMsg_GetSubject(m));
		if (natsMsgHeader_Get(m, "Nats-Msg-Id", &id) == NATS_OK && id)
			snprintf(e->id, sizeof(e->id), "%s", id);
		e->len = natsMsg_GetDataLength(m);
		e->data = malloc((size_t)e->len + 1);
		memcpy(e->data, natsMsg_GetData(m), (size_t)e->len);
		e->data[e->len] = '\0';
		natsMsg_Destroy(m);
	}
	rc = 0;
out:
	jsStreamInfo_Destroy(si);
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	return rc;
}

static inline void ns_free_msgs(struct ns_msg *m, size_t n)
{
	for (size_t i = 0; m && i < n; i++)
		free(m[i].data);
	free(m);
}

#endif
