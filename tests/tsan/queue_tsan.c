/* SPDX-License-Identifier: Apache-2.0 */
/* The queue's concurrent tests without Criterion, for ThreadSanitizer
 * (`make tsan-queue`): the stress test on a small and a large arena, and a
 * close racing with producers. Exits 0 when every check passed. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define STRESS_CHECK(cond, ...)                                                                    \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "queue_tsan: %s:%d: ", __FILE__, __LINE__);                \
			fprintf(stderr, __VA_ARGS__);                                              \
			fputc('\n', stderr);                                                       \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)
#include "tests/lib/queue_stress.h"

struct closer {
	struct queue *q;
	unsigned src;
	unsigned long ok;
};

static void *close_producer(void *arg)
{
	struct closer *c = arg;
	for (;;) {
		unsigned char *p = queue_reserve(c->q, c->src, 48);
		if (!p) {
			if (errno == ESHUTDOWN)
				return NULL;
			sched_yield();
			continue;
		}
		memcpy(p, &c->ok, sizeof(c->ok));
		queue_commit(c->q, p);
		c->ok++;
	}
}

/* Producers race with queue_close(): every record whose reserve succeeded is
 * delivered, and the consumer then sees ESHUTDOWN. */
static void close_race(void)
{
	struct queue *q = queue_new(1 << 16);
	struct closer c[3];
	pthread_t th[3];
	for (unsigned i = 0; i < 3; i++) {
		c[i] = (struct closer){.q = q, .src = i};
		if (i == 2)
			queue_set_wait(q, i, 1000);
		pthread_create(&th[i], NULL, close_producer, &c[i]);
	}
	unsigned long seen[3] = {0};
	for (int n = 0;; n++) {
		if (n == 20000)
			queue_close(q);
		size_t len;
		unsigned src;
		unsigned char *p = queue_peek(q, &len, &src, 10000);
		if (!p) {
			STRESS_CHECK(errno == ESHUTDOWN, "peek: errno %d", errno);
			break;
		}
		unsigned long v;
		memcpy(&v, p, sizeof(v));
		STRESS_CHECK(v == seen[src], "source %u: record %lu, want %lu", src, v, seen[src]);
		seen[src]++;
		queue_release(q, p);
	}
	for (unsigned i = 0; i < 3; i++) {
		pthread_join(th[i], NULL);
		STRESS_CHECK(seen[i] == c[i].ok, "source %u: saw %lu of %lu", i, seen[i], c[i].ok);
	}
	queue_free(q);
}

int main(void)
{
	stress_run(16384, 20000);
	stress_run(1 << 20, 50000);
	for (int i = 0; i < 5; i++)
		close_race();
	printf("queue_tsan: stress and close race passed\n");
	return 0;
}
