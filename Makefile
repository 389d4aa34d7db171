# tapio: one entry point. Targets: deps, all (build/tapio), test, check, bench,
# vmtest, run, fuzz (mk/fuzz.mk).
# `make V=1` shows the commands. Modules add rules in mk/*.mk.

.DELETE_ON_ERROR:
.SECONDARY:
.DEFAULT_GOAL := all

# ARCH: the machine tapio is built for (uname -m names). Another ARCH than
# this machine's cross-compiles the userspace with Debian's cross toolchain
# (gcc-$(ARCH)-linux-gnu) against the multiarch libraries (libbpf-dev:arm64
# ...), which `make deps ARCH=...` installs; the BPF side and the skeleton are
# built by the host's clang and bpftool for any ARCH.
HOST_ARCH := $(shell uname -m)
ARCH ?= $(HOST_ARCH)
ifeq ($(ARCH),x86_64)
BPF_ARCH := x86
else ifeq ($(ARCH),aarch64)
BPF_ARCH := arm64
else
$(error unsupported ARCH '$(ARCH)': add it to the Makefile and commit vmlinux/$(ARCH)/vmlinux.h)
endif
# A cross build gets its own default build directory (build/arm64): objects
# of two machines must not meet.
ifneq ($(ARCH),$(HOST_ARCH))
CROSS_COMPILE ?= $(ARCH)-linux-gnu-
BUILD ?= build/$(BPF_ARCH)
endif
# make's built-in CC (cc) is replaced only when nobody chose one.
ifeq ($(origin CC),default)
CC := $(CROSS_COMPILE)gcc
endif
# scripts/deps.sh installs for this ARCH, scripts/vmtest.sh boots its kernels
# with $(BUILD)/tapio.
export DEPS_ARCH := $(ARCH)
export VMTEST_ARCH := $(ARCH)

BUILD   ?= build
export BUILD
OBJ     := $(BUILD)/obj
CLANG   ?= clang
BPFTOOL ?= bpftool
PYTHON  ?= python3

ifeq ($(V),1)
Q :=
msg = @true
else
Q := @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)"
endif

VERSION := $(shell git describe --always --dirty 2>/dev/null || echo unknown)

SAN_FLAGS :=
ifeq ($(SAN),1)
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
endif

CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Werror -MMD -MP -D_GNU_SOURCE \
           -DTAPIO_VERSION='"$(VERSION)"' -Iuser -I. -I$(BUILD) $(SAN_FLAGS)
LDFLAGS += $(SAN_FLAGS)
LDLIBS  += -lbpf -lelf -lz -lsystemd -lcurl -lcjson -lyaml -lnats -lmicrohttpd -lpthread -lm

# Every user/*/*.c, collectors/*.c and collectors/*/*.c is part of the program; main.c is the
# entry point, the rest also links into the unit tests.
# HELD: sources that wait for modules not merged yet (removed as they land).
HELD     :=
LIB_SRCS := $(filter-out user/main.c $(HELD),$(sort $(wildcard user/*/*.c collectors/*.c collectors/*/*.c)))
LIB_OBJS := $(patsubst %.c,$(OBJ)/%.o,$(LIB_SRCS))
LIB      := $(BUILD)/libtapio.a
MAIN_OBJ := $(OBJ)/user/main.o
# The collector table registers the sources' names at start (a constructor):
# tests and benchmarks link it whole, not through the archive.
TABLE_OBJ := $(OBJ)/collectors/table.o

# Criterion tests, all linked to $(BUILD)/tests/test_*: tests/unit/ need
# nothing but the code; tests/component/ start servers (nats-server, fixture
# HTTP servers on loopback). Shared helpers are headers in tests/lib/.
UNIT_SRCS      := $(sort $(wildcard tests/unit/test_*.c))
COMPONENT_SRCS := $(sort $(wildcard tests/component/test_*.c))
UNIT_BINS      := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
COMPONENT_BINS := $(patsubst tests/component/%.c,$(BUILD)/tests/%,$(COMPONENT_SRCS))
TEST_OBJS      := $(patsubst %.c,$(OBJ)/%.o,$(UNIT_SRCS) $(COMPONENT_SRCS))

BENCH_SRCS := $(sort $(wildcard bench/*.c))
BENCH_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRCS))

.PHONY: all deps test unit component integration bench vmtest run clean format check check-layers check-format
all: $(BUILD)/tapio

$(OBJ)/%.o: %.c
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

# Tests and benchmarks link the archive: each pulls in only what it uses.
$(LIB): $(LIB_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@
	$(Q)ar rcs $@ $^

$(BUILD)/tapio: $(MAIN_OBJ) $(LIB_OBJS)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(UNIT_BINS): $(BUILD)/tests/%: $(OBJ)/tests/unit/%.o $(TABLE_OBJ) $(LIB)
	$(call msg,LINK,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -lcriterion -o $@

$(COMPONENT_BINS): $(BUILD)/tests/%: $(OBJ)/tests/component/%.o $(TABLE_OBJ) $(LIB)
	$(call msg,LINK,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -lcriterion -o $@

$(BUILD)/bench/%: $(OBJ)/bench/%.o $(TABLE_OBJ) $(LIB)
	$(call msg,LINK,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# Module rules (BPF objects and skeleton, extra targets).
-include mk/*.mk

deps:
	$(Q)scripts/deps.sh

# `make unit` builds every Criterion binary (tests/unit and tests/component);
# `make component` only those that start servers.
unit: $(UNIT_BINS) $(COMPONENT_BINS)
component: $(COMPONENT_BINS)

# `make check`: the include directions (scripts/check-layers.py holds the layer
# table) and the format (.clang-format, clang-format 14). Both run and report;
# it fails if either does.
check:
	$(Q)rc=0; \
	$(MAKE) --no-print-directory check-layers || rc=1; \
	$(MAKE) --no-print-directory check-format || rc=1; \
	exit $$rc

check-layers:
	$(Q)$(PYTHON) scripts/check-layers.py

check-format:
	$(Q)scripts/check-format.sh

# `make test`: install what is missing, run `make check`, build, then run every
# test: unit and component tests (plain and under ASan+UBSan), the script
# tests, the queue and pod-cache stress tests under ThreadSanitizer, and the
# root integration tests.
test: deps
	$(Q)$(MAKE) --no-print-directory check
	$(Q)$(MAKE) --no-print-directory all unit
	$(Q)$(MAKE) --no-print-directory BUILD=$(BUILD)/san SAN=1 unit
	$(Q)$(MAKE) --no-print-directory tsan-queue tsan-podmeta
	$(Q)$(PYTHON) scripts/run-tests.py --build $(BUILD) --san-build $(BUILD)/san

bench: $(BENCH_BINS)
	$(Q)for b in $(BENCH_BINS); do echo "== $$b"; $$b || exit 1; done

vmtest: all
	$(Q)scripts/vmtest.sh $(KERNELS)

ARGS ?=
run: deps
	$(Q)$(MAKE) --no-print-directory all
	$(BUILD)/tapio agent $(ARGS)

# Rewrites every C file (user/, collectors/, bpf/, tests/, bench/) to .clang-format.
format:
	$(Q)scripts/check-format.sh --fix

clean:
	rm -rf $(BUILD)

-include $(patsubst %.o,%.d,$(MAIN_OBJ) $(LIB_OBJS) $(TEST_OBJS))
