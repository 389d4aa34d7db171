// SPDX-License-Identifier: Apache-2.0
/* Unit tests for the CNI collector's pure parsers: log line metadata, libcni
 * result cache files and their names, host-local IPAM files. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collectors/cni/parse.h"
#include "util/strbuf.h"

static int line(const char *s, struct cni_meta *m)
{
	return cni_line_meta(s, strlen(s), m);
}

Test(cni_line, calico_populated_endpoint)
{
	struct cni_meta m;
	int n = line(
	    "2021-03-04 10:11:12.345 [INFO][4567] k8s.go 392: Populated endpoint "
	    "ContainerID=\"b6d9a1f2\" Namespace=\"kube-system\" Pod=\"coredns-74ff55c5b-x8k2p\" "
	    "WorkloadEndpoint=\"node1-k8s-coredns--74ff55c5b--x8k2p-eth0\"",
	    &m);
	cr_assert_eq(n, 3);
	cr_assert_str_eq(m.container_id, "b6d9a1f2");
	cr_assert_str_eq(m.namespace, "kube-system");
	cr_assert_str_eq(m.pod, "coredns-74ff55c5b-x8k2p");
	cr_assert_str_eq(m.operation, "");
	cr_assert_str_eq(m.plugin, "");
	cr_assert_str_eq(m.netns, "");
}

Test(cni_line, calico_cmdargs_go_struct)
{
	struct cni_meta m;
	line("2020-11-02 14:50:14.666 [INFO][28163] plugin.go 326: Calico CNI ADD "
	     "args=&skel.CmdArgs{ContainerID:\"abc123\", Netns:\"/var/run/netns/cni-1234\", "
	     "IfName:\"eth0\", "
	     "Args:\"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=nginx-7c5;"
	     "K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=u-1\", Path:\"/opt/cni/bin\", "
	     "StdinData:\"{\\\"cniVersion\\\":\\\"0.3.1\\\",\\\"name\\\":\\\"k8s-pod-network\\\","
	     "\\\"type\\\":\\\"calico\\\"}\"}",
	     &m);
	cr_assert_str_eq(m.operation, "ADD");
	cr_assert_str_eq(m.container_id, "abc123");
	cr_assert_str_eq(m.netns, "/var/run/netns/cni-1234");
	cr_assert_str_eq(m.pod, "nginx-7c5");
	cr_assert_str_eq(m.namespace, "default");
	cr_assert_str_eq(m.plugin, "calico");
}

Test(cni_line, calico_cni_text_names_plugin)
{
	struct cni_meta m;
	line("2020-11-02 14:50:14.850 [INFO][28180] ipam_plugin.go 75: Calico CNI IPAM request "
	     "count IPv4=1 IPv6=0 "
	     "ContainerID=\"f00d\" HandleID=\"k8s-pod-network.f00d\" "
	     "Workload=\"node1-k8s-nginx-eth0\"",
	     &m);
	cr_assert_str_eq(m.plugin, "calico");
	cr_assert_str_eq(m.container_id, "f00d");
	cr_assert_str_eq(m.operation, "");
}

Test(cni_line, plain_cni_env_and_cmd)
{
	struct cni_meta m;
	line("time=\"2024-01-01T00:00:00Z\" level=debug msg=\"cmdDel\" CNI_COMMAND=DEL "
	     "CNI_CONTAINERID=9f9f "
	     "CNI_NETNS=/proc/42/ns/net CNI_ARGS=K8S_POD_NAMESPACE=prod;K8S_POD_NAME=api-0 "
	     "plugin=bridge",
	     &m);
	cr_assert_str_eq(m.operation, "DEL");
	cr_assert_str_eq(m.container_id, "9f9f");
	cr_assert_str_eq(m.netns, "/proc/42/ns/net");
	cr_assert_str_eq(m.namespace, "prod");
	cr_assert_str_eq(m.pod, "api-0");
	cr_assert_str_eq(m.plugin, "bridge");
}

Test(cni_line, json_log_line)
{
	struct cni_meta m;
	line("{\"level\":\"info\",\"msg\":\"CmdAdd "
	     "done\",\"containerID\":\"77aa\",\"netns\":\"/var/run/netns/x\","
	     "\"pod\":\"web-1\",\"namespace\":\"shop\",\"type\":\"macvlan\"}",
	     &m);
	cr_assert_str_eq(m.operation, "ADD");
	cr_assert_str_eq(m.container_id, "77aa");
	cr_assert_str_eq(m.netns, "/var/run/netns/x");
	cr_assert_str_eq(m.pod, "web-1");
	cr_assert_str_eq(m.namespace, "shop");
	cr_assert_str_eq(m.plugin, "macvlan");
}

Test(cni_line, multus_style_cmdadd)
{
	struct cni_meta m;
	line("2023-01-01T00:00:00Z [debug] CmdAdd: &{ContainerID:e1e1 Netns:/var/run/netns/cni-9 "
	     "IfName:eth0 "
	     "Args:IgnoreUnknown=true;K8S_POD_NAMESPACE=default;K8S_POD_NAME=busybox;K8S_POD_INFRA_"
	     "CONTAINER_ID=e1e1 "
	     "Path:/opt/cni/bin StdinData:[123 34 99]}",
	     &m);
	cr_assert_str_eq(m.operation, "ADD");
	cr_assert_str_eq(m.container_id, "e1e1");
	cr_assert_str_eq(m.netns, "/var/run/netns/cni-9");
	cr_assert_str_eq(m.pod, "busybox");
	cr_assert_str_eq(m.namespace, "default");
}

Test(cni_line, no_metadata)
{
	struct cni_meta m;
	cr_assert_eq(line("just some words about ADDRESS and DELIVERY", &m), 0);
	cr_assert_str_eq(m.operation, "");
	cr_assert_eq(line("", &m), 0);
	cr_assert_eq(cni_line_meta(NULL, 0, &m), 0);
}

Test(cni_line, whole_identifiers_only)
{
	struct cni_meta m;
	line("XContainerID=\"nope\" ContainerIDs=\"nope\" Podcast=x Pod deleted", &m);
	cr_assert_str_eq(m.container_id, "");
	cr_assert_str_eq(m.pod, "");
}

Test(cni_line, hostile_values_left_out)
{
	struct cni_meta m;
	/* empty, unterminated, escaped and control-character values */
	line("ContainerID=\"\" Pod=\"unterminated K8S_POD_NAMESPACE= Netns=\"a\\\"b\" "
	     "plugin=\"x\x01y\"",
	     &m);
	cr_assert_str_eq(m.container_id, "");
	cr_assert_str_eq(m.pod, "");
	cr_assert_str_eq(m.namespace, "");
	cr_assert_str_eq(m.netns, "");
	cr_assert_str_eq(m.plugin, "");
	/* a later good occurrence is still found */
	line("ContainerID=\"\" ContainerID=\"good\"", &m);
	cr_assert_str_eq(m.container_id, "good");
}

Test(cni_line, overlong_value_not_truncated)
{
	struct cni_meta m;
	size_t n = 5000;
	char *s = malloc(n + 32);
	strcpy(s, "ContainerID=");
	memset(s + 12, 'a', n);
	strcpy(s + 12 + n, " Pod=ok");
	line(s, &m);
	cr_assert_str_eq(m.container_id, "");
	cr_assert_str_eq(m.pod, "ok");
	free(s);
}

Test(cni_line, length_bounded_not_nul_terminated)
{
	/* The value ends at len even though more bytes follow in memory. */
	const char buf[] = "Pod=abcdef";
	struct cni_meta m;
	cni_line_meta(buf, 7, &m);
	cr_assert_str_eq(m.pod, "abc");
	/* A key cut off by len is not found. */
	cni_line_meta(buf, 3, &m);
	cr_assert_str_eq(m.pod, "");
	/* Embedded NUL bytes end nothing: they are bare-value terminators. */
	const char nul[] = "Pod=ab\0cd ContainerID=x";
	cni_line_meta(nul, sizeof(nul) - 1, &m);
	cr_assert_str_eq(m.pod, "ab");
	cr_assert_str_eq(m.container_id, "x");
}

Test(cni_line, every_prefix_is_safe)
{
	const char *s = "2020 [INFO] Calico CNI CNI_COMMAND=ADD ContainerID:\"abc\" Netns:\"/n\" "
			"Args:\"K8S_POD_NAME=p;K8S_POD_NAMESPACE=n\" \\\"type\\\":\\\"calico\\\"";
	size_t n = strlen(s);
	for (size_t i = 0; i <= n; i++) {
		char *cp = malloc(i ? i : 1); /* exact size: ASan catches overreads */
		memcpy(cp, s, i);
		struct cni_meta m;
		cni_line_meta(cp, i, &m);
		cr_assert(strlen(m.pod) < sizeof(m.pod));
		free(cp);
	}
}

Test(cni_line, operation_words)
{
	struct cni_meta m;
	line("Command=\"check\"", &m);
	cr_assert_str_eq(m.operation, "CHECK");
	line("teardown: DEL for sandbox", &m);
	cr_assert_str_eq(m.operation, "DEL");
	line("command=VERSION", &m);
	cr_assert_str_eq(m.operation, "");
}

/* ---- result cache ---- */

static char *b64(const char *s)
{
	struct strbuf sb = STRBUF_INIT;
	sb_base64(&sb, s, strlen(s));
	return sb.buf;
}

Test(cni_result, libcni_cache_file_conflist)
{
	char *conf =
	    b64("{\"cniVersion\":\"1.0.0\",\"name\":\"k8s-pod-network\",\"plugins\":"
		"[{\"type\":\"calico\"},{\"type\":\"portmap\"},{\"type\":\"bandwidth\"}]}");
	char buf[2048];
	snprintf(buf, sizeof(buf),
		 "{\"kind\":\"cniCacheV1\",\"containerId\":\"c0ffee\",\"config\":\"%s\",\"ifName\":"
		 "\"eth0\","
		 "\"networkName\":\"k8s-pod-network\",\"netns\":\"/var/run/netns/cni-77\","
		 "\"cniArgs\":[[\"IgnoreUnknown\",\"1\"],[\"K8S_POD_NAMESPACE\",\"default\"],"
		 "[\"K8S_POD_NAME\",\"nginx\"],[\"K8S_POD_INFRA_CONTAINER_ID\",\"c0ffee\"]],"
		 "\"result\":{\"cniVersion\":\"1.0.0\",\"ips\":[{\"address\":\"10.1.2.3/32\"}]}}",
		 conf);
	free(conf);
	struct cni_meta m;
	cr_assert_eq(cni_result_parse(buf, strlen(buf), &m), 0);
	cr_assert_str_eq(m.container_id, "c0ffee");
	cr_assert_str_eq(m.ifname, "eth0");
	cr_assert_str_eq(m.network, "k8s-pod-network");
	cr_assert_str_eq(m.netns, "/var/run/netns/cni-77");
	cr_assert_str_eq(m.pod, "nginx");
	cr_assert_str_eq(m.namespace, "default");
	cr_assert_str_eq(m.plugin, "calico,portmap,bandwidth");
	cr_assert_str_eq(m.operation, "");
}

Test(cni_result, single_plugin_config_and_fallbacks)
{
	char *conf = b64("{\"cniVersion\":\"0.4.0\",\"name\":\"mynet\",\"type\":\"bridge\"}");
	char buf[1024];
	snprintf(buf, sizeof(buf),
		 "{\"kind\":\"cniCacheV1\",\"config\":\"%s\",\"cniArgs\":[[\"K8S_POD_INFRA_"
		 "CONTAINER_ID\",\"dd\"]]}",
		 conf);
	free(conf);
	struct cni_meta m;
	cr_assert_eq(cni_result_parse(buf, strlen(buf), &m), 0);
	cr_assert_str_eq(m.plugin, "bridge");
	cr_assert_str_eq(m.network, "mynet"); /* from the config when networkName is absent */
	cr_assert_str_eq(m.container_id, "dd");
}

Test(cni_result, wrong_types_skipped)
{
	const char *s =
	    "{\"containerId\":5,\"ifName\":[\"x\"],\"networkName\":null,\"config\":\"%%%\","
	    "\"cniArgs\":[[\"K8S_POD_NAME\"],[1,2],\"x\",[\"K8S_POD_NAME\",7],[\"K8S_POD_NAME\","
	    "\"ok\"]]}";
	struct cni_meta m;
	cr_assert_eq(cni_result_parse(s, strlen(s), &m), 0);
	cr_assert_str_eq(m.container_id, "");
	cr_assert_str_eq(m.ifname, "");
	cr_assert_str_eq(m.network, "");
	cr_assert_str_eq(m.plugin, "");
	cr_assert_str_eq(m.pod, "ok");
}

Test(cni_result, not_json)
{
	struct cni_meta m;
	const char *bad[] = {
	    "", "{", "[1,2]", "\"str\"", "{\"a\":1", "{\"containerId\":\"x\"} trailing", "nul\0"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = cni_result_parse(bad[i], strlen(bad[i]), &m);
		cr_assert_eq(rc, -EINVAL, "input %zu", i);
		cr_assert_str_eq(m.container_id, "");
	}
	/* the zero-filled tail a crash can leave: the file is not JSON as a whole */
	const char zeros[] = "{\"containerId\":\"x\"}\n\0\0\0";
	cr_assert_eq(cni_result_parse(zeros, sizeof(zeros) - 1, &m), -EINVAL);
	/* trailing white space is fine */
	const char ws[] = "{\"containerId\":\"x\"}\n \t";
	cr_assert_eq(cni_result_parse(ws, sizeof(ws) - 1, &m), 0);
	cr_assert_str_eq(m.container_id, "x");
	cr_assert_eq(cni_result_parse(NULL, 0, &m), -EINVAL);
}

Test(cni_result, truncated_prefixes)
{
	const char *s = "{\"kind\":\"cniCacheV1\",\"containerId\":\"abc\",\"ifName\":\"eth0\","
			"\"cniArgs\":[[\"K8S_POD_NAME\",\"p\"]]}";
	size_t n = strlen(s);
	struct cni_meta m;
	for (size_t i = 0; i < n; i++) {
		char *cp = malloc(i ? i : 1);
		memcpy(cp, s, i);
		cr_assert_eq(cni_result_parse(cp, i, &m), -EINVAL, "prefix %zu", i);
		free(cp);
	}
	cr_assert_eq(cni_result_parse(s, n, &m), 0);
	cr_assert_str_eq(m.pod, "p");
}

Test(cni_result, file_names)
{
	struct cni_meta m = {0};
	cr_assert_eq(cni_result_name_parse("k8s-pod-network-0123abcd-eth0", &m), 0);
	cr_assert_str_eq(m.network, "k8s-pod-network");
	cr_assert_str_eq(m.container_id, "0123abcd");
	cr_assert_str_eq(m.ifname, "eth0");
	const char *bad[] = {"",	  "noDashes", "a-b",	       "-cid-eth0",
			     "net--eth0", "net-cid-", "net-c\x01-eth0"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct cni_meta z = {0};
		cr_assert_eq(cni_result_name_parse(bad[i], &z), -EINVAL, "%s", bad[i]);
		cr_assert_str_eq(z.network, "");
	}
	cr_assert_eq(cni_result_name_parse(NULL, &m), -EINVAL);
}

Test(cni_result, temp_names_skipped)
{
	cr_assert(cni_result_name_skip(".net-c-eth0.swp"));
	cr_assert(cni_result_name_skip("net-c-eth0.tmp"));
	cr_assert(cni_result_name_skip("net-c-eth0~"));
	cr_assert(!cni_result_name_skip("net-c-eth0"));
}

/* ---- IPAM ---- */

Test(cni_ipam, reservation_file)
{
	struct cni_meta m = {0};
	cr_assert_eq(cni_ipam_parse("abc123\neth0", 11, &m), 0);
	cr_assert_str_eq(m.container_id, "abc123");
	cr_assert_str_eq(m.ifname, "eth0");
	cr_assert_eq(cni_ipam_parse("  abc\r\neth1\r\n", 13, &m), 0);
	cr_assert_str_eq(m.container_id, "abc");
	cr_assert_str_eq(m.ifname, "eth1");
	cr_assert_eq(cni_ipam_parse("old-style-id", 12, &m), 0); /* before CNI 0.x added ifname */
	cr_assert_str_eq(m.container_id, "old-style-id");
	cr_assert_str_eq(m.ifname, "");
}

Test(cni_ipam, bad_reservation)
{
	struct cni_meta m = {0};
	cr_assert_eq(cni_ipam_parse("", 0, &m), -EINVAL);
	cr_assert_eq(cni_ipam_parse(" \n ", 3, &m), -EINVAL);
	cr_assert_eq(cni_ipam_parse("a b\neth0", 8, &m), -EINVAL);
	cr_assert_eq(cni_ipam_parse("\x01\x02", 2, &m), -EINVAL);
	cr_assert_eq(cni_ipam_parse(NULL, 0, &m), -EINVAL);
	cr_assert_str_eq(m.container_id, "");
	/* length-bounded: the part after len is not read */
	cr_assert_eq(cni_ipam_parse("abcdef", 3, &m), 0);
	cr_assert_str_eq(m.container_id, "abc");
}

Test(cni_ipam, names)
{
	cr_assert(cni_ipam_name_ok("10.22.0.5"));
	cr_assert(cni_ipam_name_ok("fd00::5"));
	cr_assert(!cni_ipam_name_ok("lock"));
	cr_assert(!cni_ipam_name_ok("last_reserved_ip.0"));
	cr_assert(!cni_ipam_name_ok("10.22.0.256"));
	cr_assert(!cni_ipam_name_ok(NULL));
}

Test(cni_log, names_skipped)
{
	cr_assert(cni_log_name_skip("cni.log.2.gz"));
	cr_assert(cni_log_name_skip("cni.log.1.zst"));
	cr_assert(cni_log_name_skip(""));
	cr_assert(!cni_log_name_skip("cni.log"));
	cr_assert(!cni_log_name_skip("cni.log.1"));
}

Test(cni_log, rotated_names)
{
	cr_assert(cni_log_name_rotated("cni.log.1"));
	cr_assert(cni_log_name_rotated("cni.log.12"));
	cr_assert(cni_log_name_rotated("cni.log-20240101"));
	cr_assert(cni_log_name_rotated("cni.log.old"));
	cr_assert(!cni_log_name_rotated("cni.log"));
	cr_assert(!cni_log_name_rotated("cni-1.log"));
	cr_assert(!cni_log_name_rotated("cni.log-12"));
	cr_assert(!cni_log_name_rotated("12345"));
	cr_assert(!cni_log_name_rotated(".1"));
	cr_assert(!cni_log_name_rotated(NULL));
}

/* ---- directory snapshot file ---- */

Test(cni_dirstate, round_trip)
{
	struct cni_dirstate_ent e = {0}, back;
	e.kind = 'r';
	e.ino = 1234567;
	e.mtime_ns = 1700000000123456789LL;
	e.size = 987;
	strcpy(e.m.container_id, "c0ffee");
	strcpy(e.m.pod, "nginx");
	strcpy(e.m.plugin, "calico,portmap");
	strcpy(e.path, "/var/lib/cni/results/k8s-pod-network-c0ffee-eth0 with space");
	struct strbuf sb = STRBUF_INIT;
	cr_assert_eq(cni_dirstate_format(&sb, &e), 0);
	cr_assert_eq(sb.buf[sb.len - 1], '\n');
	cr_assert_eq(cni_dirstate_parse(sb.buf, sb.len - 1, &back), 0);
	cr_assert_eq(back.kind, 'r');
	cr_assert_eq(back.ino, 1234567);
	cr_assert_eq(back.mtime_ns, 1700000000123456789LL);
	cr_assert_eq(back.size, 987);
	cr_assert_str_eq(back.m.container_id, "c0ffee");
	cr_assert_str_eq(back.m.pod, "nginx");
	cr_assert_str_eq(back.m.namespace, "");
	cr_assert_str_eq(back.m.plugin, "calico,portmap");
	cr_assert_str_eq(back.path, e.path);
	/* a path with a tab cannot be kept */
	strcpy(e.path, "/x/a\tb");
	size_t len = sb.len;
	cr_assert_eq(cni_dirstate_format(&sb, &e), -EINVAL);
	cr_assert_eq(sb.len, len);
	sb_free(&sb);
}

Test(cni_dirstate, bad_lines)
{
	struct cni_dirstate_ent e;
	const char *bad[] = {
	    "",
	    "x\t1\t2\t3\t\t\t\t\t\t\t\t/p",		       /* unknown kind */
	    "n\t1\t2\t3\t\t\t\t\t\t\t/p",		       /* one field short */
	    "n\ta\t2\t3\t\t\t\t\t\t\t\t/p",		       /* not a number */
	    "n\t1\t2\t3\t\t\t\t\t\t\t\trelative",	       /* not absolute */
	    "n\t1\t2\t3\t\t\t\t\t\t\t\t",		       /* no path */
	    "n\t1\t99999999999999999999\t3\t\t\t\t\t\t\t\t/p", /* overflow */
	    "r\t1\t2\t3\tc d\t\t\t\t\t\t\t/p",		       /* a space in a value */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(cni_dirstate_parse(bad[i], strlen(bad[i]), &e), -EINVAL, "line %zu",
			     i);
	const char *ok = "i\t5\t-1\t0\tabc\t\t\t\tnet\t\teth0\t/var/lib/cni/networks/net/10.0.0.1";
	cr_assert_eq(cni_dirstate_parse(ok, strlen(ok), &e), 0);
	cr_assert_eq(e.mtime_ns, -1);
	cr_assert_str_eq(e.m.network, "net");
	/* a path may hold a tab-free anything after the 11th tab, but never a tab */
	const char *tab = "n\t1\t2\t3\t\t\t\t\t\t\t\t/a\tb";
	cr_assert_eq(cni_dirstate_parse(tab, strlen(tab), &e), -EINVAL);
	/* length-bounded */
	cr_assert_eq(cni_dirstate_parse(ok, strlen(ok) - 9, &e), 0);
	cr_assert_str_eq(e.path, "/var/lib/cni/networks/net");
	for (size_t i = 0; i < strlen(ok); i++) {
		char *cp = malloc(i ? i : 1);
		memcpy(cp, ok, i);
		cni_dirstate_parse(cp, i, &e);
		free(cp);
	}
}
