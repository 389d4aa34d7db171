# The BPF side: each bpf/*.bpf.c compiles to $(BUILD)/bpf/*.bpf.o, `bpftool
# gen object` links them into one object (maps and options defined __weak in
# bpf/maps.h merge), and `bpftool gen skeleton` turns that into
# $(BUILD)/tapio.skel.h, which embeds the object in the binary.

VMLINUX_H := vmlinux/$(ARCH)/vmlinux.h
ifeq ($(wildcard $(VMLINUX_H)),)
$(error $(VMLINUX_H) is missing: run scripts/gen-vmlinux.sh on a $(ARCH) machine with BTF and commit it)
endif

BPF_SRCS := $(sort $(wildcard bpf/*.bpf.c))
BPF_OBJS := $(patsubst bpf/%.bpf.c,$(BUILD)/bpf/%.bpf.o,$(BPF_SRCS))
BPF_LINKED := $(BUILD)/bpf/tapio.o
BPF_SKEL := $(BUILD)/tapio.skel.h
BPF_CFLAGS ?= -g -O2
BPF_CFLAGS += -target bpf -D__TARGET_ARCH_$(BPF_ARCH) -I$(dir $(VMLINUX_H)) -Ibpf \
              -Wall -Werror -MMD -MP
ifeq ($(BPF_DEBUG),1)
BPF_CFLAGS += -DTAPIO_BPF_DEBUG
endif

$(BUILD)/bpf/%.bpf.o: bpf/%.bpf.c
	$(call msg,BPF,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BPF_LINKED): $(BPF_OBJS)
	$(call msg,GEN-OBJ,$@)
	$(Q)$(BPFTOOL) gen object $@ $^

$(BPF_SKEL): $(BPF_LINKED)
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name tapio > $@.tmp
	$(Q)mv $@.tmp $@

# User objects include the skeleton (user/kernel/internal.h): build it first. -MMD
# then records it as a dependency of the objects that include it.
$(LIB_OBJS) $(MAIN_OBJ): | $(BPF_SKEL)

-include $(patsubst %.o,%.d,$(BPF_OBJS))
