// SPDX-License-Identifier: Apache-2.0
#include "util/worker.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <unistd.h>

void worker_init(struct worker *w)
{
	w->started = false;
	atomic_init(&w->stop, false);
	w->wake_fd = -1;
}

int worker_start(struct worker *w, void *(*fn)(void *), void *arg)
{
	if (w->started)
		return -EALREADY;
	w->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->wake_fd < 0)
		return -errno;
	atomic_store_explicit(&w->stop, false, memory_order_release);
	int rc = pthread_create(&w->thread, NULL, fn, arg);
	if (rc) {
		close(w->wake_fd);
		w->wake_fd = -1;
		return -rc;
	}
	w->started = true;
	return 0;
}

void worker_set_name(struct worker *w, const char *name)
{
	char comm[16];
	if (!w->started || !name)
		return;
	snprintf(comm, sizeof(comm), "%s", name);
	pthread_setname_np(w->thread, comm);
}

void worker_signal_stop(struct worker *w)
{
	uint64_t one = 1;
	atomic_store_explicit(&w->stop, true, memory_order_release);
	if (w->wake_fd >= 0 && write(w->wake_fd, &one, sizeof(one)) < 0) {
		/* the counter is saturated: the fd is readable anyway */
	}
}

void worker_stop(struct worker *w)
{
	if (w->started) {
		worker_signal_stop(w);
		pthread_join(w->thread, NULL);
		w->started = false;
	}
	if (w->wake_fd >= 0) {
		close(w->wake_fd);
		w->wake_fd = -1;
	}
}
