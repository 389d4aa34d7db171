// SPDX-License-Identifier: Apache-2.0
/* libFuzzer target for the kernel event decoder: any bytes as a ring buffer
 * record. Built and run by `make fuzz-kernel-decode` (mk/fuzz.mk). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/kernel_decode.h"
#include "util/strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct strbuf sb = STRBUF_INIT;
	uint32_t pid;
	char comm[16];
	/* An exact-size copy, so any read past the record trips ASan. */
	uint8_t *rec = malloc(size ? size : 1);

	if (!rec)
		return 0;
	memcpy(rec, data, size);
	if (kevent_json(rec, size, &sb) == 0 && !utf8_valid(sb.buf, sb.len))
		abort(); /* the JSON must always be valid UTF-8 */
	sb_reset(&sb);
	(void)kevent_text(rec, size, &sb);
	(void)kevent_pid_comm(rec, size, &pid, comm);
	if (kevent_used_len(rec, size) > size)
		abort();
	sb_free(&sb);
	free(rec);
	return 0;
}
