/* SPDX-License-Identifier: Apache-2.0 */
/* Layer 1 (reading): the path of an open file, as the kernel's d_path()
 * shows it in /proc/PID/exe. For process.exec, where the filename alone
 * can be "/dev/fd/N" (fexecve(), execveat(fd, "", AT_EMPTY_PATH)).
 *
 * Two passes, so that the verifier's work stays linear in the bound: the
 * walk up the dentries and mounts notes each step's dentry in the per-CPU
 * path_walks entry; then the names are written from the file's up,
 * backwards, so that a path too long keeps its last components. */
#ifndef TAPIO_BPF_PATH_H
#define TAPIO_BPF_PATH_H

#include "maps.h"
#include "read.bpf.h"

#define TAPIO_TMPFS_MAGIC 0x01021994u	  /* include/uapi/linux/magic.h */
#define TAPIO_HUGETLBFS_MAGIC 0x958458f6u /* memfd_create(MFD_HUGETLB) */

/* True for a memfd: memfd_create() names its file "memfd:NAME" on the
 * internal shmem (or hugetlbfs) mount. */
static __always_inline bool dentry_is_memfd(struct dentry *d)
{
	char head[6] = {};
	__u64 magic = BPF_CORE_READ(d, d_sb, s_magic);

	if (magic != TAPIO_TMPFS_MAGIC && magic != TAPIO_HUGETLBFS_MAGIC)
		return false;
	bpf_probe_read_kernel(head, sizeof(head), BPF_CORE_READ(d, d_name.name));
	return head[0] == 'm' && head[1] == 'e' && head[2] == 'm' && head[3] == 'f' &&
	       head[4] == 'd' && head[5] == ':';
}

/* Writes the path of file f (relative to the root of task t, " (deleted)"
 * after an unlinked file, "/NAME (deleted)" for a pseudo file such as a
 * memfd) into out (TAPIO_EXE_MAX bytes, NUL-terminated). The walk goes up
 * the dentries and, at each mount's root, to its mount point, for at most
 * TAPIO_PATH_WALK_MAX steps. Returns the path's length; *cut is set when
 * only its last components fit (too long, or too deep). */
static __always_inline __u32 file_path_into(struct task_struct *t, struct file *f, char *out,
					    bool *cut)
{
	static const char deleted[] = " (deleted)";
	struct dentry *d = BPF_CORE_READ(f, f_path.dentry);
	struct vfsmount *vmnt = BPF_CORE_READ(f, f_path.mnt);
	unsigned long mnt_off = bpf_core_field_offset(struct mount, mnt);
	struct mount *mnt = (struct mount *)((char *)vmnt - mnt_off);
	struct dentry *root_d = BPF_CORE_READ(t, fs, root.dentry);
	struct vfsmount *root_mnt = BPF_CORE_READ(t, fs, root.mnt);
	struct dentry *mnt_root = BPF_CORE_READ(vmnt, mnt_root);
	struct dentry *parent = BPF_CORE_READ(d, d_parent);
	__u32 zero = 0, off = TAPIO_EXE_MAX - 1, steps, len;
	struct path_walk *w;
	bool done = false;
	int i;

	*cut = false;
	out[0] = '\0';
	w = bpf_map_lookup_elem(&path_walks, &zero);
	if (!w || !d || !vmnt)
		return 0;
	w->buf[TAPIO_EXE_MAX - 1] = '\0';
	/* A pseudo file (alloc_file_pseudo(): its own parent, not a mount's
	 * root) shows as simple_dname() writes it: "/NAME (deleted)". Other
	 * files get the suffix when d_unlinked(): unhashed and not a root. */
	if ((parent == d && d != mnt_root) || (parent != d && !BPF_CORE_READ(d, d_hash.pprev))) {
		off -= sizeof(deleted) - 1;
		__builtin_memcpy(&w->buf[TAPIO_EXE_MAX - sizeof(deleted)], deleted,
				 sizeof(deleted) - 1);
	}

	for (i = 0; i < TAPIO_PATH_WALK_MAX; i++) {
		if (d == root_d && vmnt == root_mnt) {
			done = true;
			break;
		}
		if (d == mnt_root) {
			struct mount *up = BPF_CORE_READ(mnt, mnt_parent);

			if (!up || up == mnt) { /* the top of its mount tree */
				done = true;
				break;
			}
			w->dentries[i] = 0;
			d = BPF_CORE_READ(mnt, mnt_mountpoint);
			mnt = up;
			vmnt = (struct vfsmount *)((char *)up + mnt_off);
			mnt_root = BPF_CORE_READ(vmnt, mnt_root);
			continue;
		}
		w->dentries[i] = (__u64)d;
		parent = BPF_CORE_READ(d, d_parent);
		if (!parent || parent == d) { /* a pseudo or disconnected dentry */
			done = true;
			i++;
			break;
		}
		d = parent;
	}
	w->steps = i;
	*cut = !done;

	/* steps and off go through memory: the verifier then sees one
	 * state per step of this pass, whichever way the walk ended and
	 * whichever names came before. */
	w->off = off;
	steps = *(volatile __u32 *)&w->steps;
	for (int j = 0; j < TAPIO_PATH_WALK_MAX; j++) {
		struct dentry *dj;

		if (j >= steps)
			break;
		dj = (struct dentry *)w->dentries[j];
		if (!dj)
			continue;
		off = *(volatile __u32 *)&w->off & (TAPIO_EXE_MAX - 1);
		len = BPF_CORE_READ(dj, d_name.len);
		if (len >= TAPIO_EXE_MAX || len + 1 > off) {
			*cut = true;
			break;
		}
		off -= len + 1;
		barrier_var(off); /* keep the masks: they bound the writes */
		w->buf[off & (TAPIO_EXE_MAX - 1)] = '/';
		bpf_probe_read_kernel(&w->buf[(off & (TAPIO_EXE_MAX - 1)) + 1],
				      len & (TAPIO_EXE_MAX - 1), BPF_CORE_READ(dj, d_name.name));
		*(volatile __u32 *)&w->off = off;
	}
	off = *(volatile __u32 *)&w->off & (TAPIO_EXE_MAX - 1);
	if (off == TAPIO_EXE_MAX - 1) /* nothing written: the root itself */
		w->buf[--off] = '/';
	len = TAPIO_EXE_MAX - off; /* with the NUL */
	bpf_probe_read_kernel(out, len, &w->buf[off]);
	return len - 1;
}

#endif
