/* SPDX-License-Identifier: Apache-2.0 */
/* podmeta under ThreadSanitizer (`make tsan-podmeta`): lookups, forgets and
 * pod updates from several threads over a directory tree resolved by the walk,
 * with a cache smaller than the set so that entries are evicted; then the same
 * with the resolver thread, through podmeta_lookup_nowait (an answer may be
 * pending; one that comes must be right). Exits 0 when every lookup gave the
 * right ids. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "enrich/podmeta.h"
#include "tests/lib/tmpdir.h"

#define UID "4f6d2a1e-9b3c-4d5e-8f70-a1b2c3d4e5f6"
enum { N = 12, THREADS = 3, ROUNDS = 3000 };

static struct podmeta *pm;
static uint64_t ids[N];
static int errors, pending, async_mode;

static void *lookups(void *arg)
{
	unsigned x = (unsigned)(uintptr_t)arg * 7919u + 1;
	for (int r = 0; r < ROUNDS; r++) {
		x = x * 1103515245u + 12345u;
		int i = (int)((x >> 16) % N);
		struct podmeta_entry e;
		int rc = async_mode ? podmeta_lookup_nowait(pm, ids[i], &e)
				    : podmeta_lookup(pm, ids[i], &e);
		if (async_mode && (rc == -EINPROGRESS || rc == -EAGAIN)) {
			__atomic_fetch_add(&pending, 1, __ATOMIC_RELAXED);
			continue;
		}
		char want[65];
		snprintf(want, sizeof(want), "%064x", i + 1);
		if (rc || strcmp(e.ids.container_id, want) || strcmp(e.ids.pod_uid, UID) ||
		    (e.pod_name[0] && strcmp(e.pod_name, "web")))
			__atomic_fetch_add(&errors, 1, __ATOMIC_RELAXED);
		if (r % 50 == 0)
			podmeta_forget(pm, ids[(i + 1) % N]);
	}
	return NULL;
}

int main(void)
{
	char tree[64];
	if (!tl_mkdtemp(tree, sizeof(tree), "podmeta-tsan")) {
		perror("mkdtemp");
		return 1;
	}
	char path[512];
	snprintf(path, sizeof(path), "%s/kubepods", tree);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/kubepods/pod" UID, tree);
	mkdir(path, 0755);
	for (int i = 0; i < N; i++) {
		snprintf(path, sizeof(path), "%s/kubepods/pod" UID "/%064x", tree, i + 1);
		struct stat st;
		if (mkdir(path, 0755) || stat(path, &st)) {
			perror(path);
			return 1;
		}
		ids[i] = st.st_ino;
	}
	struct podmeta_stats st = {0};
	for (async_mode = 0; async_mode < 2; async_mode++) {
		/* with the resolver, room for the set: answers come and stay
		 * (until a forget) instead of being evicted while pending */
		pm = podmeta_new(tree, async_mode ? 64 : 8);
		if (!pm || (async_mode && podmeta_start_resolver(pm))) {
			perror("podmeta_new");
			return 1;
		}
		pthread_t th[THREADS];
		for (long i = 0; i < THREADS; i++)
			pthread_create(&th[i], NULL, lookups, (void *)i);
		for (int r = 0; r < 2000; r++)
			podmeta_pod_update(pm, UID, "ns", "web", r % 2);
		for (int i = 0; i < THREADS; i++)
			pthread_join(th[i], NULL);
		if (!async_mode)
			podmeta_get_stats(pm, &st);
		podmeta_free(pm);
	}
	if (tl_rmtree(tree))
		fprintf(stderr, "podmeta_tsan: could not remove %s\n", tree);
	if (errors || st.hits + st.misses != (uint64_t)THREADS * ROUNDS) {
		fprintf(stderr, "podmeta_tsan: %d wrong lookups, %lu hits + %lu misses\n", errors,
			(unsigned long)st.hits, (unsigned long)st.misses);
		return 1;
	}
	printf("podmeta_tsan: %lu hits, %lu misses, %lu evictions, no errors; with the resolver "
	       "%d of %d lookups pending, the rest right\n",
	       (unsigned long)st.hits, (unsigned long)st.misses, (unsigned long)st.evictions,
	       pending, THREADS * ROUNDS);
	return 0;
}
