# etcd collector and the watch-stream client: fuzz target for the framers.
# `make fuzz-framer` builds build/fuzz/fuzz_framer (clang, libFuzzer, ASan+UBSan);
# `make fuzz-framer-run` runs it for FUZZ_SECONDS (default 60).
FUZZ_SECONDS ?= 60
FUZZ_FLAGS := -O1 -g -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -Iuser -I. \
              -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined

.PHONY: fuzz-framer fuzz-framer-run
fuzz-framer: $(BUILD)/fuzz/fuzz_framer

$(BUILD)/fuzz/fuzz_framer: tests/fuzz/fuzz_framer.c user/http/watch.c user/http/watch.h
	$(call msg,FUZZ,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CLANG) $(FUZZ_FLAGS) tests/fuzz/fuzz_framer.c user/http/watch.c -lcurl -lpthread -o $@

fuzz-framer-run: $(BUILD)/fuzz/fuzz_framer
	$(Q)mkdir -p $(BUILD)/fuzz/corpus-framer
	$(Q)$(BUILD)/fuzz/fuzz_framer -max_total_time=$(FUZZ_SECONDS) -max_len=4096 $(BUILD)/fuzz/corpus-framer

# The etcd watch-response parser: `make fuzz-etcd-parse`, `make fuzz-etcd-parse-run`.
.PHONY: fuzz-etcd-parse fuzz-etcd-parse-run
fuzz-etcd-parse: $(BUILD)/fuzz/fuzz_etcd_parse

$(BUILD)/fuzz/fuzz_etcd_parse: tests/fuzz/fuzz_etcd_parse.c collectors/etcd/parse.c collectors/etcd/etcd.h user/util/strbuf.c user/util/strbuf.h
	$(call msg,FUZZ,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CLANG) $(FUZZ_FLAGS) tests/fuzz/fuzz_etcd_parse.c collectors/etcd/parse.c user/util/strbuf.c -lcjson -o $@

fuzz-etcd-parse-run: $(BUILD)/fuzz/fuzz_etcd_parse
	$(Q)mkdir -p $(BUILD)/fuzz/corpus-etcd
	$(Q)$(BUILD)/fuzz/fuzz_etcd_parse -max_total_time=$(FUZZ_SECONDS) -max_len=8192 $(BUILD)/fuzz/corpus-etcd
