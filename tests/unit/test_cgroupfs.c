// SPDX-License-Identifier: Apache-2.0
/* Unit tests for the v1 hierarchy parsers (user/util/cgroupfs.c): hybrid,
 * pure cgroup2 and odd /proc/PID/cgroup and mountinfo texts. */
#include <criterion/criterion.h>
#include <errno.h>

#include "util/cgroupfs.h"

/* This machine's shape: v1 controllers beside cgroup2 at .../unified. */
static const char hybrid_cgroup[] = "9:name=systemd:/\n"
				    "8:pids:/\n"
				    "5:devices:/\n"
				    "4:memory:/process_api/3b6c\n"
				    "2:cpu,cpuacct:/\n"
				    "0::/\n";

static const char hybrid_mountinfo[] =
    "25 1 0:22 / /sys rw,nosuid - sysfs sysfs rw\n"
    "30 25 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755\n"
    "31 30 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
    "32 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
    "33 30 0:29 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory\n"
    "34 30 0:30 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n";

Test(cgroupfs, hybrid_host_has_a_v1_memory_hierarchy)
{
	unsigned id = 0;
	char buf[64];

	cr_assert_eq(cgroup_v1_hierarchy_parse(hybrid_cgroup, "memory", &id), 0);
	cr_assert_eq(id, 4);
	cr_assert_eq(cgroup_v1_hierarchy_parse(hybrid_cgroup, "cpuacct", &id), 0);
	cr_assert_eq(id, 2);
	cr_assert_eq(cgroup_v1_hierarchy_parse(hybrid_cgroup, "name=systemd", &id), 0);
	cr_assert_eq(id, 9);
	cr_assert_eq(cgroup_v1_mount_parse(hybrid_mountinfo, "memory", buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "/sys/fs/cgroup/memory");
	cr_assert_eq(cgroup_v1_mount_parse(hybrid_mountinfo, "cpu", buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "/sys/fs/cgroup/cpu,cpuacct");
	/* a controller name is matched whole: "mem" is not "memory" */
	cr_assert_eq(cgroup_v1_hierarchy_parse(hybrid_cgroup, "mem", &id), -ENOENT);
	cr_assert_eq(cgroup_v1_mount_parse(hybrid_mountinfo, "mem", buf, sizeof(buf)), -ENOENT);
	/* a buffer too small */
	cr_assert_eq(cgroup_v1_mount_parse(hybrid_mountinfo, "memory", buf, 8), -ENAMETOOLONG);
}

Test(cgroupfs, pure_cgroup2_host_has_none)
{
	unsigned id = 77;
	char buf[64];

	cr_assert_eq(cgroup_v1_hierarchy_parse("0::/user.slice/session-1.scope\n", "memory", &id),
		     -ENOENT);
	cr_assert_eq(id, 77);
	cr_assert_eq(cgroup_v1_mount_parse("31 30 0:27 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
					   "memory", buf, sizeof(buf)),
		     -ENOENT);
}

Test(cgroupfs, odd_input_is_refused_not_misread)
{
	unsigned id = 0;
	char buf[64];

	cr_assert_eq(cgroup_v1_hierarchy_parse("", "memory", &id), -ENOENT);
	cr_assert_eq(cgroup_v1_hierarchy_parse("x:memory:/\n:memory:/\n4:memory", "memory", &id),
		     -ENOENT);
	cr_assert_eq(cgroup_v1_hierarchy_parse("99999999999:memory:/\n", "memory", &id), -ENOENT);
	cr_assert_eq(cgroup_v1_hierarchy_parse("4:memory:/", "memory", &id), 0); /* no newline */
	cr_assert_eq(id, 4);
	cr_assert_eq(cgroup_v1_hierarchy_parse(NULL, "memory", &id), -EINVAL);
	cr_assert_eq(cgroup_v1_mount_parse("33 30 0:29 / - cgroup cgroup rw,memory\n", "memory",
					   buf, sizeof(buf)),
		     -ENOENT);
	cr_assert_eq(cgroup_v1_mount_parse(" - cgroup", "memory", buf, sizeof(buf)), -ENOENT);
	cr_assert_eq(cgroup_v1_mount_parse(NULL, "memory", buf, sizeof(buf)), -EINVAL);
}
