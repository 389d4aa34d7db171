# `make bench-overhead` (also part of `make bench`): workload slowdown and
# tracer CPU per event under tapio and its peers, and the consumer's ceiling
# from a flooded ring buffer (bench/overhead.py). Its helpers live in
# bench/overhead/ so that `make bench` does not run them as benchmarks.

OVH := $(BUILD)/bench-overhead

$(OVH)/storm: bench/overhead/storm.c
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) $< -o $@

$(OVH)/flood.bpf.o: bench/overhead/flood.bpf.c bpf/submit.bpf.h bpf/maps.h bpf/events.h
	$(call msg,BPF,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(OVH)/flood.skel.h: $(OVH)/flood.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name flood > $@.tmp
	$(Q)mv $@.tmp $@

$(OVH)/flood: bench/overhead/flood.c $(OVH)/flood.skel.h
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -I$(OVH) $< $(LDFLAGS) $(LDLIBS) -o $@

.PHONY: bench-overhead
bench-overhead: $(BUILD)/tapio $(OVH)/storm $(OVH)/flood
	$(Q)$(PYTHON) bench/overhead.py --build $(BUILD) $(OVERHEAD_ARGS)

bench: bench-overhead
