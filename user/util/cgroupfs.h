/* SPDX-License-Identifier: Apache-2.0 */
/* Finding the cgroup2 hierarchy, and on v1/hybrid hosts a v1 one. */
#ifndef TAPIO_UTIL_CGROUPFS_H
#define TAPIO_UTIL_CGROUPFS_H

#include <stddef.h>

/* Where cgroup2 is mounted: /sys/fs/cgroup (pure cgroup2),
 * /sys/fs/cgroup/unified (hybrid), else the first cgroup2 mount in
 * /proc/self/mountinfo. Returns 0 with the path in buf, or -ENOENT. */
int cgroup2_find_mount(char *buf, size_t len);

/* The v1 hierarchy that has controller (e.g. "memory"): its id in
 * proc_cgroup (the text of /proc/PID/cgroup, "ID:CONTROLLERS:PATH" lines).
 * Returns 0 with *hierarchy_id set, -ENOENT when no v1 hierarchy has it (a
 * pure cgroup2 host, or the controller is bound to cgroup2), -EINVAL for
 * NULL arguments. */
int cgroup_v1_hierarchy_parse(const char *proc_cgroup, const char *controller,
			      unsigned *hierarchy_id);

/* Where the v1 hierarchy with controller is mounted, from mountinfo (the
 * text of /proc/PID/mountinfo): the first "cgroup" mount whose super
 * options name it. Returns 0 with the path in buf, -ENOENT, -ENAMETOOLONG,
 * or -EINVAL. */
int cgroup_v1_mount_parse(const char *mountinfo, const char *controller, char *buf, size_t len);

/* Both, for this process. Returns 0, -ENOENT (no such v1 hierarchy), or
 * another negative errno. */
int cgroup_v1_find(const char *controller, unsigned *hierarchy_id, char *buf, size_t len);

#endif
