/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for cgroup_path_parse() (`make fuzz-cgroup-path`): any bytes
 * give 0, -ENOENT or -EINVAL, NUL-terminated fields, and ids of the right
 * shape. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "enrich/podmeta.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cgroup_ids ids;
	int rc = cgroup_path_parse((const char *)data, size, &ids);
	if (rc != 0 && rc != -ENOENT && rc != -EINVAL)
		abort();
	if (!memchr(ids.container_id, 0, sizeof(ids.container_id)) ||
	    !memchr(ids.pod_uid, 0, sizeof(ids.pod_uid)) ||
	    !memchr(ids.runtime, 0, sizeof(ids.runtime)))
		abort();
	size_t cl = strlen(ids.container_id), pl = strlen(ids.pod_uid);
	if ((cl != 0 && cl != 64) || (pl != 0 && pl != 32 && pl != 36))
		abort();
	if ((rc == 0) != (cl || pl))
		abort();
	/* an id comes from the input */
	if (cl && !memmem(data, size, ids.container_id, cl))
		abort();
	return 0;
}
