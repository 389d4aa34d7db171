// SPDX-License-Identifier: Apache-2.0
/* The workloads of bench/overhead.py:
 *   storm connect N   N loopback TCP connections (connect, accept, close both)
 *   storm exec N      N fork + exec /bin/true + wait
 * Prints one JSON line with the wall time per operation. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int connect_storm(long n)
{
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	int one = 1;

	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 128) ||
	    getsockname(l, (struct sockaddr *)&a, &al)) {
		perror("storm: listen");
		return 1;
	}
	for (long i = 0; i < n; i++) {
		int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof(a))) {
			perror("storm: connect");
			return 1;
		}
		int s = accept(l, NULL, NULL);
		if (s < 0) {
			perror("storm: accept");
			return 1;
		}
		close(c);
		close(s);
	}
	close(l);
	return 0;
}

static int exec_storm(long n)
{
	for (long i = 0; i < n; i++) {
		pid_t p = fork();
		if (p < 0) {
			perror("storm: fork");
			return 1;
		}
		if (p == 0) {
			execl("/bin/true", "true", (char *)NULL);
			_exit(127);
		}
		int st;
		if (waitpid(p, &st, 0) != p || !WIFEXITED(st) || WEXITSTATUS(st)) {
			fprintf(stderr, "storm: /bin/true failed\n");
			return 1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 3 || (strcmp(argv[1], "connect") && strcmp(argv[1], "exec"))) {
		fprintf(stderr, "usage: storm connect|exec N\n");
		return 2;
	}
	long n = atol(argv[2]);
	double t0 = now_s();
	int rc = !strcmp(argv[1], "connect") ? connect_storm(n) : exec_storm(n);
	double dt = now_s() - t0;
	if (rc)
		return rc;
	printf("{\"ops\":%ld,\"seconds\":%.6f,\"us_per_op\":%.3f}\n", n, dt, dt / n * 1e6);
	return 0;
}
