# The kernel decoder's fuzz target (libFuzzer, clang).
#   make fuzz-kernel-decode [FUZZ_SECONDS=60]

FUZZ_SECONDS ?= 60
FUZZ_KDEC := $(BUILD)/fuzz/fuzz_kernel_decode

$(FUZZ_KDEC): tests/fuzz/fuzz_kernel_decode.c user/kernel/kernel_decode.c user/util/strbuf.c user/kernel/kernel_decode.h \
	      user/util/strbuf.h bpf/events.h
	$(call msg,FUZZ,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CLANG) -O1 -g -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -Iuser -I. \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
		tests/fuzz/fuzz_kernel_decode.c user/kernel/kernel_decode.c user/util/strbuf.c -o $@

.PHONY: fuzz-kernel-decode
fuzz-kernel-decode: $(FUZZ_KDEC)
	$(Q)mkdir -p $(BUILD)/fuzz/corpus-kernel-decode
	$(Q)$(FUZZ_KDEC) -max_total_time=$(FUZZ_SECONDS) -max_len=2048 $(BUILD)/fuzz/corpus-kernel-decode
