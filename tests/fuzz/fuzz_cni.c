// SPDX-License-Identifier: Apache-2.0
/* libFuzzer target for the CNI collector's parsers: log line metadata, result
 * cache files and names, IPAM files, the snapshot and offsets file formats.
 * `make fuzz-cni` (FUZZ_SECONDS=60 by default). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "collectors/cni/parse.h"
#include "collectors/cni/tail.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct cni_meta m;
	cni_line_meta(s, size, &m);
	cni_result_parse(s, size, &m);
	cni_ipam_parse(s, size, &m);

	char *z = malloc(size + 1);
	if (!z)
		return 0;
	memcpy(z, data, size);
	z[size] = '\0';
	cni_result_name_parse(z, &m);
	cni_ipam_name_ok(z);
	cni_log_name_skip(z);
	cni_log_name_rotated(z);
	cni_result_name_skip(z);
	free(z);

	struct cni_dirstate_ent *e = malloc(sizeof(*e));
	if (e) {
		cni_dirstate_parse(s, size, e);
		free(e);
	}
	struct tail_state st = {0};
	size_t bad;
	tail_state_parse(&st, s, size, &bad);
	tail_state_free(&st);
	return 0;
}
