# libFuzzer targets: one rule template, one line per target.
#
#   make fuzz              every target for FUZZ_SECONDS each (default 60), one after the other
#   make fuzz-<name>       one target: cni, etcd-parse, framer, k8s, kernel-decode,
#                          cgroup-path, systemd, format, otlp, cgroupfs,
#                          nats-wire
#   make fuzz-ci           every target for FUZZ_CI_SECONDS each (default 20)
#   make fuzz-build        build them all, run none
#
# Each target builds build/fuzz/<harness> with clang, -fsanitize=fuzzer plus
# ASan and UBSan (any UB aborts), from the harness tests/fuzz/<harness>.c and
# the sources it exercises. A run reads the committed seeds in
# tests/fuzz/corpus/<name>/ and keeps what it finds in build/fuzz/corpus/<name>/.
#
# When a parser's file is split or renamed, update its *_SRCS line here.

FUZZ_SECONDS ?= 60
FUZZ_CI_SECONDS ?= 20
FUZZ_CFLAGS := -O1 -g -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -Iuser -I. \
               -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined

# What each harness links: the code under test and its util/core helpers.
FUZZ_STRBUF_SRCS        := user/util/strbuf.c user/util/textstate.c
FUZZ_CNI_SRCS           := collectors/cni/parse.c collectors/cni/tail.c user/util/parse.c user/util/vec.c $(FUZZ_STRBUF_SRCS)
FUZZ_ETCD_PARSE_SRCS    := collectors/etcd/parse.c $(FUZZ_STRBUF_SRCS)
FUZZ_FRAMER_SRCS        := user/http/watch.c
FUZZ_K8S_SRCS           := collectors/k8s/k8s_parse.c collectors/k8s/kubeconfig.c \
                           collectors/k8s/seen.c $(FUZZ_STRBUF_SRCS)
FUZZ_KERNEL_DECODE_SRCS := user/kernel/kernel_decode.c $(FUZZ_STRBUF_SRCS)
FUZZ_CGROUP_PATH_SRCS   := user/enrich/cgroup_path.c user/util/parse.c
FUZZ_SYSTEMD_SRCS       := collectors/systemd/entry.c $(FUZZ_STRBUF_SRCS)
FUZZ_FORMAT_SRCS        := user/sink/format.c user/sink/json_embed.c user/core/event.c \
                           user/core/queue.c $(FUZZ_STRBUF_SRCS)
FUZZ_CGROUPFS_SRCS      := user/util/cgroupfs.c user/util/fileio.c $(FUZZ_STRBUF_SRCS)
FUZZ_OTLP_SRCS          := user/sink/otlp_encode.c user/core/event.c user/core/queue.c $(FUZZ_STRBUF_SRCS)
FUZZ_NATS_WIRE_SRCS     := user/sink/nats_wire.c $(FUZZ_STRBUF_SRCS)

FUZZ_TARGETS :=

# $(call FUZZ_TARGET,name,harness,sources,libs,max_len)
#   name     make fuzz-<name>; seeds in tests/fuzz/corpus/<name>/
#   harness  tests/fuzz/<harness>.c, built as $(BUILD)/fuzz/<harness>
#   sources  the .c files it links (their folders' headers and bpf/*.h are prerequisites)
#   libs     -l flags
#   max_len  libFuzzer's -max_len
define FUZZ_TARGET
FUZZ_TARGETS += $(1)
FUZZ_BIN_$(1) := $$(BUILD)/fuzz/$(2)

$$(BUILD)/fuzz/$(2): tests/fuzz/$(2).c $(3) $$(wildcard $$(addsuffix *.h,$$(sort $$(dir $(3)))) bpf/*.h)
	$$(call msg,FUZZ,$$@)
	$$(Q)mkdir -p $$(@D)
	$$(Q)$$(CLANG) $$(FUZZ_CFLAGS) tests/fuzz/$(2).c $(3) $(4) -o $$@

.PHONY: fuzz-$(1)
fuzz-$(1): $$(BUILD)/fuzz/$(2)
	$$(Q)mkdir -p $$(BUILD)/fuzz/corpus/$(1)
	$$(Q)$$< -max_total_time=$$(FUZZ_SECONDS) -max_len=$(5) -print_final_stats=1 \
		$$(BUILD)/fuzz/corpus/$(1) tests/fuzz/corpus/$(1)
endef

$(eval $(call FUZZ_TARGET,cni,fuzz_cni,$(FUZZ_CNI_SRCS),-lcjson,4096))
$(eval $(call FUZZ_TARGET,etcd-parse,fuzz_etcd_parse,$(FUZZ_ETCD_PARSE_SRCS),-lcjson,8192))
$(eval $(call FUZZ_TARGET,framer,fuzz_framer,$(FUZZ_FRAMER_SRCS),-lcurl -lpthread,4096))
$(eval $(call FUZZ_TARGET,k8s,fuzz_k8s,$(FUZZ_K8S_SRCS),-lcjson -lyaml,8192))
$(eval $(call FUZZ_TARGET,kernel-decode,fuzz_kernel_decode,$(FUZZ_KERNEL_DECODE_SRCS),,2048))
$(eval $(call FUZZ_TARGET,cgroup-path,fuzz_cgroup_path,$(FUZZ_CGROUP_PATH_SRCS),-lcjson -lpthread,4200))
$(eval $(call FUZZ_TARGET,systemd,systemd_entry_fuzz,$(FUZZ_SYSTEMD_SRCS),-lcjson,65536))
$(eval $(call FUZZ_TARGET,format,fuzz_format,$(FUZZ_FORMAT_SRCS),-lcjson -lpthread,8192))
$(eval $(call FUZZ_TARGET,otlp,fuzz_otlp,$(FUZZ_OTLP_SRCS),-lpthread,8192))
$(eval $(call FUZZ_TARGET,cgroupfs,fuzz_cgroupfs,$(FUZZ_CGROUPFS_SRCS),,8192))
$(eval $(call FUZZ_TARGET,nats-wire,fuzz_nats_wire,$(FUZZ_NATS_WIRE_SRCS),,8192))

.PHONY: fuzz fuzz-ci fuzz-build
fuzz-build: $(foreach t,$(FUZZ_TARGETS),$(FUZZ_BIN_$(t)))

# One after the other even under -j: each run takes the time it is given.
fuzz: fuzz-build
	$(Q)for t in $(FUZZ_TARGETS); do \
		echo "== fuzz-$$t ($(FUZZ_SECONDS)s)"; \
		$(MAKE) --no-print-directory fuzz-$$t FUZZ_SECONDS=$(FUZZ_SECONDS) || exit 1; \
	done

fuzz-ci:
	$(Q)$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(FUZZ_CI_SECONDS)
