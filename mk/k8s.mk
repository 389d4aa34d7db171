# k8s collector: a libFuzzer target for its parsers (watch lines, List bodies,
# the metadata-only filter, kubeconfig, the state file).
# `make fuzz-k8s` builds build/fuzz/fuzz_k8s (clang, libFuzzer, ASan+UBSan);
# `make fuzz-k8s-run` runs it for FUZZ_SECONDS (default 60).
FUZZ_SECONDS ?= 60
K8S_FUZZ_FLAGS := -O1 -g -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -Iuser -I. \
                  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
K8S_FUZZ_SRCS := tests/fuzz/fuzz_k8s.c collectors/k8s/k8s_parse.c collectors/k8s/kubeconfig.c \
                 collectors/k8s/seen.c user/util/strbuf.c

.PHONY: fuzz-k8s fuzz-k8s-run
fuzz-k8s: $(BUILD)/fuzz/fuzz_k8s

$(BUILD)/fuzz/fuzz_k8s: $(K8S_FUZZ_SRCS) $(wildcard collectors/k8s/*.h)
	$(call msg,FUZZ,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CLANG) $(K8S_FUZZ_FLAGS) $(K8S_FUZZ_SRCS) -lcjson -lyaml -o $@

fuzz-k8s-run: $(BUILD)/fuzz/fuzz_k8s
	$(Q)mkdir -p $(BUILD)/fuzz/corpus-k8s
	$(Q)cp -n tests/fuzz/k8s-seeds/* $(BUILD)/fuzz/corpus-k8s/
	$(Q)$(BUILD)/fuzz/fuzz_k8s -max_total_time=$(FUZZ_SECONDS) -max_len=8192 $(BUILD)/fuzz/corpus-k8s
