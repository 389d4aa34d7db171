# The CNI collector's extra targets.
#   make fuzz-cni     its parsers under libFuzzer + ASan/UBSan (FUZZ_SECONDS, default 60)

FUZZ_SECONDS ?= 60
FUZZ_CNI := $(BUILD)/fuzz/fuzz_cni
FUZZ_CNI_SRCS := tests/fuzz/fuzz_cni.c collectors/cni/parse.c collectors/cni/tail.c user/util/strbuf.c

$(FUZZ_CNI): $(FUZZ_CNI_SRCS) collectors/cni/parse.h collectors/cni/tail.h user/util/strbuf.h
	$(call msg,FUZZ,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CLANG) -O1 -g -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -Iuser -I. \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
		$(FUZZ_CNI_SRCS) -lcjson -o $@

.PHONY: fuzz-cni
fuzz-cni: $(FUZZ_CNI)
	$(Q)mkdir -p $(BUILD)/fuzz/corpus-cni
	$(Q)$(FUZZ_CNI) -max_total_time=$(FUZZ_SECONDS) -max_len=4096 $(BUILD)/fuzz/corpus-cni tests/fuzz/corpus-cni
