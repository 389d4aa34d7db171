#include <stdbool.h>
#include <stdint.h>
#include "event.h"
struct kernel_opts {
	uint64_t type_mask; int32_t pid; const char *cgroup_path; bool containers_only; bool all_threads; uint32_t ringbuf_size;
	size_t (*cgroup_meta)(void *ctx, uint64_t cgroup_id, struct meta_kv *kv, size_t max, char *scratch, size_t scratch_len);
	void (*cgroup_removed)(void *ctx, uint64_t cgroup_id);
	void *meta_ctx;
};
struct collector *kernel_collector_new(const struct kernel_opts *o, char *err, size_t errlen);
int kernel_parse_events(const char *list, uint64_t *mask, char *err, size_t errlen);
bool kernel_collector_available(void);
const char *kernel_collector_disabled(struct collector *c);
