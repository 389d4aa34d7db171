/* SPDX-License-Identifier: Apache-2.0 */
/* Private to enrich/: the intrusive LRU list and hash sizing the pod cache
 * and the cgroup cache share. A list has a sentinel head; most recent first. */
#ifndef TAPIO_ENRICH_LRU_H
#define TAPIO_ENRICH_LRU_H

#include <stddef.h>

static inline size_t pow2_at_least(size_t n)
{
	size_t p = 16;
	while (p < n)
		p <<= 1;
	return p;
}

#define LRU_UNLINK(e)                                                                              \
	do {                                                                                       \
		(e)->prev->next = (e)->next;                                                       \
		(e)->next->prev = (e)->prev;                                                       \
	} while (0)
#define LRU_PUSH(head, e)                                                                          \
	do {                                                                                       \
		(e)->next = (head)->next;                                                          \
		(e)->prev = (head);                                                                \
		(head)->next->prev = (e);                                                          \
		(head)->next = (e);                                                                \
	} while (0)

#endif
