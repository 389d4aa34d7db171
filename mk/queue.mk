# The queue's extra targets.
#   make tsan-queue         user/queue.c + its unit tests under ThreadSanitizer
#   make bench-queue-lock   the queue bench with the spinlock reservation variant

TSAN_QUEUE := $(BUILD)/tsan/test_queue

# Criterion does not start under TSan (Snaipe/Criterion#274), so the concurrent
# tests also build as a plain program: tests/tsan/queue_tsan.c.
$(TSAN_QUEUE): user/queue.c tests/tsan/queue_tsan.c tests/unit/queue_stress.h user/queue.h
	$(call msg,TSAN,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) -O1 -g -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -Iuser -fsanitize=thread \
		user/queue.c tests/tsan/queue_tsan.c -lpthread -o $@

.PHONY: tsan-queue bench-queue-lock
tsan-queue: $(TSAN_QUEUE)
	$(Q)TSAN_OPTIONS=halt_on_error=1 $(TSAN_QUEUE)

$(BUILD)/bench-lock/bench_queue: user/queue.c bench/bench_queue.c user/queue.h
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) -O2 -g -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -Iuser -DQUEUE_LOCKED_RESERVE \
		user/queue.c bench/bench_queue.c -lpthread -o $@

bench-queue-lock: $(BUILD)/bench-lock/bench_queue
	$(Q)$<
