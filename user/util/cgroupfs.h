/* SPDX-License-Identifier: Apache-2.0 */
/* Finding the cgroup2 hierarchy. */
#ifndef TAPIO_UTIL_CGROUPFS_H
#define TAPIO_UTIL_CGROUPFS_H

#include <stddef.h>

/* Where cgroup2 is mounted: /sys/fs/cgroup (pure cgroup2),
 * /sys/fs/cgroup/unified (hybrid), else the first cgroup2 mount in
 * /proc/self/mountinfo. Returns 0 with the path in buf, or -ENOENT. */
int cgroup2_find_mount(char *buf, size_t len);

#endif
