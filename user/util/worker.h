/* SPDX-License-Identifier: Apache-2.0 */
/* A thread with a stop flag and a wake-up fd: start, ask to stop, join. The
 * thread polls worker_wake_fd() beside its own fds (it becomes readable on
 * stop) or checks worker_stopping() between bounded waits. */
#ifndef TAPIO_UTIL_WORKER_H
#define TAPIO_UTIL_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

struct worker {
	pthread_t thread;
	bool started;
	atomic_bool stop;
	int wake_fd; /* eventfd; -1 before worker_start */
};

/* Sets w up; touches no resource. */
void worker_init(struct worker *w);
/* Creates the eventfd and starts fn(arg). Returns 0, -EALREADY when running,
 * or a negative errno (nothing left running). */
int worker_start(struct worker *w, void *(*fn)(void *), void *arg);
/* Names the running thread (its comm in /proc/PID/task/TID, cut to 15
 * bytes), so that per-thread CPU and wake-ups can be told apart. */
void worker_set_name(struct worker *w, const char *name);
/* Sets the stop flag and wakes the thread (it still has to see it). */
void worker_signal_stop(struct worker *w);
/* worker_signal_stop, then joins. Safe to call twice or unstarted; closes the
 * eventfd. */
void worker_stop(struct worker *w);

static inline bool worker_stopping(struct worker *w)
{
	return atomic_load_explicit(&w->stop, memory_order_acquire);
}

static inline int worker_wake_fd(const struct worker *w)
{
	return w->wake_fd;
}

#endif
