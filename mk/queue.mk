# The queue's extra targets.
#   make tsan-queue         user/core/queue.c + its unit tests under ThreadSanitizer
#   make bench-queue-lock   the queue bench with the spinlock reservation variant

TSAN_QUEUE := $(BUILD)/tsan/test_queue

# Criterion does not start under TSan (Snaipe/Criterion#274), so the concurrent
# tests also build as a plain program: tests/tsan/queue_tsan.c.
$(TSAN_QUEUE): user/core/queue.c tests/tsan/queue_tsan.c tests/lib/queue_stress.h user/core/queue.h
	$(call msg,TSAN,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) -O1 -g -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -Iuser -I. -fsanitize=thread \
		user/core/queue.c tests/tsan/queue_tsan.c -lpthread -o $@

.PHONY: tsan-queue bench-queue-lock
tsan-queue: $(TSAN_QUEUE)
	$(Q)TSAN_OPTIONS=halt_on_error=1 $(TSAN_QUEUE)

$(BUILD)/bench-lock/bench_queue: user/core/queue.c bench/bench_queue.c user/core/queue.h
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) -O2 -g -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -Iuser -DQUEUE_LOCKED_RESERVE \
		user/core/queue.c bench/bench_queue.c -lpthread -o $@

bench-queue-lock: $(BUILD)/bench-lock/bench_queue
	$(Q)$<

# podmeta's concurrent use under TSan (event.c and queue.c come along for event_meta_get).
TSAN_PODMETA := $(BUILD)/tsan/podmeta_tsan

TSAN_PODMETA_SRCS := user/enrich/podmeta.c user/enrich/pods.c user/enrich/cgroup_resolve.c \
		     user/enrich/cgroup_path.c user/util/cgroupfs.c user/util/strlist.c user/core/event.c \
		     user/core/queue.c user/util/parse.c user/util/worker.c user/util/fileio.c user/util/strbuf.c \
		     tests/tsan/podmeta_tsan.c

$(TSAN_PODMETA): $(TSAN_PODMETA_SRCS) $(wildcard user/enrich/*.h) tests/lib/tmpdir.h
	$(call msg,TSAN,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) -O1 -g -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -Iuser -I. -fsanitize=thread \
		$(TSAN_PODMETA_SRCS) -lcjson -lpthread -o $@

.PHONY: tsan-podmeta
tsan-podmeta: $(TSAN_PODMETA)
	$(Q)TSAN_OPTIONS=halt_on_error=1 $(TSAN_PODMETA)
