# The systemd collector's extra targets.
#   make fuzz-systemd   libFuzzer on the journal-entry-to-JSON conversion
#                       (FUZZ_SECONDS, default 60; corpus in $(BUILD)/fuzz/systemd-corpus)

FUZZ_SECONDS ?= 60
FUZZ_SYSTEMD := $(BUILD)/fuzz/systemd_entry_fuzz

$(FUZZ_SYSTEMD): tests/fuzz/systemd_entry_fuzz.c collectors/systemd/entry.c collectors/systemd/entry.h user/util/strbuf.c user/util/strbuf.h
	$(call msg,FUZZ,$@)
	$(Q)mkdir -p $(@D) $(BUILD)/fuzz/systemd-corpus
	$(Q)$(CLANG) -O1 -g -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -Iuser -I. \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
		tests/fuzz/systemd_entry_fuzz.c collectors/systemd/entry.c user/util/strbuf.c -lcjson -o $@

.PHONY: fuzz-systemd
fuzz-systemd: $(FUZZ_SYSTEMD)
	$(Q)$(FUZZ_SYSTEMD) -max_total_time=$(FUZZ_SECONDS) -max_len=65536 $(BUILD)/fuzz/systemd-corpus
