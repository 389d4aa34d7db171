/* SPDX-License-Identifier: Apache-2.0 */
/* Pure parsers of the CNI collector: no I/O, no globals, safe on any bytes.
 *
 * They only copy out what the input itself states. A value that does not fit
 * its field, is empty, or holds bytes outside printable ASCII (0x21..0x7e) is
 * left out rather than truncated. */
#ifndef TAPIO_CNI_PARSE_H
#define TAPIO_CNI_PARSE_H

#include <stdbool.h>
#include <stddef.h>

/* Metadata found in a log line or a cache file. "" means not stated. */
struct cni_meta {
	char operation[8];	/* ADD, DEL or CHECK */
	char plugin[128];	/* plugin type(s); a cache file's conflist gives "a,b,c" */
	char pod[256];		/* K8S_POD_NAME */
	char namespace[256];	/* K8S_POD_NAMESPACE */
	char container_id[256]; /* ContainerID / K8S_POD_INFRA_CONTAINER_ID */
	char netns[256];	/* network namespace path or name */
	char network[256];	/* network name (cache files, IPAM dirs) */
	char ifname[64];	/* interface name (cache files, IPAM files) */
};

/* Extracts metadata from one log line (len bytes, no trailing '\n', need not
 * be NUL-terminated). Understands `key=value`, `key="value"`, `key:"value"`,
 * `key: value`, JSON `"key":"value"` and Go-escaped `\"key\":\"value\"`, and
 * CNI_ARGS lists (`K8S_POD_NAME=x;K8S_POD_NAMESPACE=y`). Fills *m (zeroed
 * first); returns how many fields were found (0 for a line that states none). */
int cni_line_meta(const char *line, size_t len, struct cni_meta *m);

/* Parses a libcni result cache file (kind "cniCacheV1": containerId, ifName,
 * networkName, netns, cniArgs [[K, V], ...], config (base64 of the network
 * config or conflist, whose "type" fields give the plugin)). Fills *m (zeroed
 * first; operation stays ""). Returns 0 for a JSON object, -EINVAL when buf is
 * not a JSON object (*m then holds nothing), -ENOMEM. Fields of the wrong type
 * are skipped. */
int cni_result_parse(const char *buf, size_t len, struct cni_meta *m);

/* Splits a cache file name "<network>-<containerid>-<ifname>" (the container
 * ID and interface name may not contain '-'; the network name may). Fills
 * network, container_id and ifname of *m (other fields untouched). Returns 0
 * or -EINVAL when the name does not have that shape. */
int cni_result_name_parse(const char *name, struct cni_meta *m);

/* Parses a host-local IPAM reservation file: "containerid" or
 * "containerid\nifname" (also "\r\n"), surrounding whitespace ignored. Fills
 * container_id and ifname of *m. Returns 0, or -EINVAL when the first line is
 * empty or not printable ASCII. */
int cni_ipam_parse(const char *buf, size_t len, struct cni_meta *m);

/* True when name is an IPv4 or IPv6 address (a host-local reservation file;
 * "lock" and "last_reserved_ip.0" are not). */
bool cni_ipam_name_ok(const char *name);

/* True for names the collector never tails as logs: compressed rotations
 * (.gz .bz2 .xz .zst .lz4 .zip) and "." / "..". */
bool cni_log_name_skip(const char *name);

/* True for names a rotation gives: "<name>.<digits>", "<name>-<8+ digits>"
 * (logrotate dateext) or "<name>.old". A new file with such a name is a copy
 * of lines already read (copytruncate) and is not tailed; a followed file that
 * is renamed to one is still finished. */
bool cni_log_name_rotated(const char *name);

/* True for names in the result cache that are temporary files of an atomic
 * writer: a leading '.', or a ".tmp" / "~" suffix. */
bool cni_result_name_skip(const char *name);

/* One entry of the directory snapshot file (netns, results and IPAM entries
 * seen by the last run), so that a restart reports what changed meanwhile.
 * A line is tab-separated:
 *   kind ino mtime_ns size container_id pod namespace netns network plugin ifname path
 * kind is 'n' (netns), 'r' (result) or 'i' (IPAM); meta fields may be empty;
 * path is absolute and last. */
#define CNI_DIRSTATE_KIND "cni-dirs"
#define CNI_DIRSTATE_VERSION 1
struct cni_dirstate_ent {
	char kind;
	unsigned long long ino;
	long long mtime_ns;
	unsigned long long size;
	struct cni_meta m; /* operation unused */
	char path[4096];
};

/* Parses one line (without its '\n'). Returns 0, or -EINVAL for a bad line
 * (*e is then unspecified). */
int cni_dirstate_parse(const char *line, size_t len, struct cni_dirstate_ent *e);

struct strbuf;
/* Appends e as one line with its '\n'. Returns 0, or -EINVAL when the path
 * holds a tab or newline, or a meta value a tab (nothing is appended). */
int cni_dirstate_format(struct strbuf *sb, const struct cni_dirstate_ent *e);

#endif
