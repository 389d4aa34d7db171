/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for the v1 hierarchy parsers of util/cgroupfs.c
 * (`make fuzz-cgroupfs`): the input, as /proc/PID/cgroup and as mountinfo
 * text, gives 0, -ENOENT or -ENAMETOOLONG; a found hierarchy id is nonzero
 * and a found mount point is NUL-terminated, comes from the input and has
 * no space. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/cgroupfs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	char buf[64];
	unsigned id = 0;
	int rc;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	rc = cgroup_v1_hierarchy_parse(text, "memory", &id);
	if (rc != 0 && rc != -ENOENT)
		abort();
	if (rc == 0 && id == 0)
		abort();
	memset(buf, 'x', sizeof(buf));
	rc = cgroup_v1_mount_parse(text, "memory", buf, sizeof(buf));
	if (rc != 0 && rc != -ENOENT && rc != -ENAMETOOLONG)
		abort();
	if (rc == 0) {
		size_t n = strnlen(buf, sizeof(buf));

		if (n == sizeof(buf) || memchr(buf, ' ', n) || (n && !memmem(text, size, buf, n)))
			abort();
	}
	free(text);
	return 0;
}
