// SPDX-License-Identifier: Apache-2.0
/* CNI collector bench: how fast a log file is split into lines and each line's
 * metadata extracted (tail_read + cni_line_meta), the work the collector's
 * thread does per line before event_emit. Prints lines/s and MB/s. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "collectors/cni/parse.h"
#include "collectors/cni/tail.h"

static const char *const shapes[] = {
    "2024-05-10 12:34:56.789 [INFO][12345] plugin.go 326: Calico CNI ADD "
    "args=&skel.CmdArgs{ContainerID:\"4f2a9c0d1e2f\", Netns:\"/var/run/netns/cni-5e1d\", "
    "IfName:\"eth0\", Args:\"IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0;"
    "K8S_POD_INFRA_CONTAINER_ID=4f2a9c0d1e2f\"}",
    "2024-05-10 12:34:56.790 [INFO][12345] k8s.go 392: Populated endpoint ContainerID=\"4f2a9c\" "
    "Namespace=\"shop\" Pod=\"web-0\" WorkloadEndpoint=\"node1-k8s-web--0-eth0\"",
    "time=\"2024-05-10T12:34:57Z\" level=info msg=\"cmdDel done\" CNI_COMMAND=DEL "
    "CNI_CONTAINERID=77ee CNI_NETNS=/proc/4242/ns/net plugin=bridge",
    "2024-05-10 12:34:56.791 [INFO][12345] ipam.go 1100: Successfully claimed IPs: [10.244.1.7/26]",
};

struct ctx {
	unsigned long lines, found;
};

static void on_line(void *p, const char *l, size_t n)
{
	struct ctx *c = p;
	struct cni_meta m;
	c->lines++;
	c->found += (unsigned long)cni_line_meta(l, n, &m);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(void)
{
	char path[] = "/tmp/tapio-bench-cni-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0) {
		perror("mkstemp");
		return 1;
	}
	unlink(path);
	const size_t target = 64u << 20;
	size_t written = 0, i = 0;
	char line[512];
	while (written < target) {
		int n = snprintf(line, sizeof(line), "%s\n", shapes[i++ % 4]);
		if (write(fd, line, (size_t)n) != n) {
			perror("write");
			return 1;
		}
		written += (size_t)n;
	}
	size_t cap = 64 * 1024 + 64 * 1024;
	char *buf = malloc(cap);
	struct ctx c = {0};
	struct tail_cb cb = {on_line, NULL, NULL};
	struct tail_file f = {.fd = fd};
	double t0 = now();
	int rc = tail_read(&f, buf, cap, 64 * 1024, 0, &cb, &c);
	double dt = now() - t0;
	if (rc != 0 || f.commit != written) {
		fprintf(stderr, "bench_cni: read %llu of %zu bytes (rc %d)\n",
			(unsigned long long)f.commit, written, rc);
		return 1;
	}
	printf("cni tail+meta: %lu lines, %.1f MB in %.3f s: %.0f lines/s, %.0f MB/s (%.2f "
	       "fields/line)\n",
	       c.lines, (double)written / 1e6, dt, (double)c.lines / dt, (double)written / 1e6 / dt,
	       (double)c.found / (double)c.lines);
	free(buf);
	close(fd);
	return 0;
}
