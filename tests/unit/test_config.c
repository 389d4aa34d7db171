// SPDX-License-Identifier: Apache-2.0
/* Config: defaults, YAML file, environment, flags, precedence, bad input. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "tests/lib/test_options.h"
#include "util/strlist.h"

static char path[64];

static const char *write_file(const char *text)
{
	strcpy(path, "/tmp/tapio-cfg-XXXXXX");
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static int load(struct tapio_config *c, char *err, int argc, ...)
{
	char *argv[16] = {"agent"};
	va_list ap;
	va_start(ap, argc);
	for (int i = 0; i < argc; i++)
		argv[i + 1] = va_arg(ap, char *);
	va_end(ap);
	return test_config_load(c, argc + 1, argv, err, 256);
}

static void clean_env(void)
{
	unsetenv("TAPIO_QUEUE_SIZE");
	unsetenv("TAPIO_OUTPUT");
	unsetenv("TAPIO_CONFIG");
	unsetenv("NODE_NAME");
	unsetenv("TAPIO_NODE_NAME");
}

Test(config, defaults, .init = clean_env)
{
	struct tapio_config c;
	char err[256];
	cr_assert_eq(load(&c, err, 0), 0, "%s", err);
	cr_assert_eq(c.queue_size, 16u << 20);
	cr_assert_str_eq(c.output, "stdout");
	cr_assert_str_eq(c.state_dir, "/var/lib/tapio");
	cr_assert_str_eq(ETCD_OPTS(&c)->prefix, "/registry/");
	cr_assert_eq(K8S_OPTS(&c)->insecure, false);
	config_free(&c);
}

Test(config, precedence_flag_env_file_default, .init = clean_env)
{
	const char *f = write_file("queue_size: 1M\n"
				   "output: file:/tmp/from-file\n"
				   "state-dir: /tmp/state-file\n"
				   "etcd:\n  prefix: /nested/\n"
				   "collectors: [kernel, etcd]\n");
	struct tapio_config c;
	char err[256];
	setenv("TAPIO_QUEUE_SIZE", "2M", 1);
	setenv("TAPIO_OUTPUT", "file:/tmp/from-env", 1);
	setenv("NODE_NAME", "node-a", 1);
	cr_assert_eq(load(&c, err, 4, "--config", f, "--queue-size=4M", "--containers"), 0, "%s",
		     err);
	cr_assert_eq(c.queue_size, 4u << 20, "flag beats env and file");
	cr_assert_str_eq(c.output, "file:/tmp/from-env", "env beats file");
	cr_assert_str_eq(c.state_dir, "/tmp/state-file", "file beats default");
	cr_assert_str_eq(ETCD_OPTS(&c)->prefix, "/nested/");
	cr_assert_str_eq(c.collectors, "kernel,etcd");
	cr_assert_str_eq(c.node_name, "node-a");
	cr_assert(KERNEL_OPTS(&c)->containers_only);
	config_free(&c);
	setenv("TAPIO_CONFIG", f, 1);
	cr_assert_eq(load(&c, err, 0), 0, "%s", err);
	cr_assert_eq(c.queue_size, 2u << 20, "TAPIO_CONFIG is read");
	config_free(&c);
	unlink(f);
}

Test(config, bad_input_names_key, .init = clean_env)
{
	struct tapio_config c;
	char err[256];
	cr_assert_eq(load(&c, err, 2, "--queue-size", "3M"), -EINVAL);
	cr_assert(strstr(err, "queue-size"), "%s", err);
	config_free(&c);
	cr_assert_eq(load(&c, err, 1, "--bogus"), -EINVAL);
	cr_assert(strstr(err, "--bogus"), "%s", err);
	config_free(&c);
	cr_assert_eq(load(&c, err, 1, "--output"), -EINVAL);
	cr_assert(strstr(err, "needs a value"), "%s", err);
	config_free(&c);
	cr_assert_eq(load(&c, err, 2, "--collectors", "kernel,nope"), -EINVAL);
	cr_assert(strstr(err, "nope"), "%s", err);
	config_free(&c);
	cr_assert_eq(load(&c, err, 1, "--containers=maybe"), -EINVAL);
	cr_assert(strstr(err, "containers"), "%s", err);
	config_free(&c);
	cr_assert_eq(load(&c, err, 2, "--output", "ftp://x"), -EINVAL);
	cr_assert(strstr(err, "output"), "%s", err);
	config_free(&c);
	cr_assert_eq(load(&c, err, 2, "--file-sync", "sometimes"), -EINVAL);
	cr_assert(strstr(err, "file-sync") && strstr(err, "sometimes"), "%s", err);
	config_free(&c);
	cr_assert_eq(load(&c, err, 0), 0, "%s", err);
	cr_assert_str_eq(c.file_sync, "none");
	config_free(&c);
	cr_assert_eq(load(&c, err, 2, "--file-sync", "always"), 0, "%s", err);
	cr_assert_str_eq(c.file_sync, "always");
	config_free(&c);
	const char *bad_addr[] = {
	    "nohost", "[::1]",		 "a b:9090",   "1.2.3.4.5:9090", "[::1]9090:1",
	    ":+80",   "127.0.0.1:65536", "127.0.0.1:", "fd00::1%eth0:1", "::g"};
	for (size_t i = 0; i < sizeof(bad_addr) / sizeof(bad_addr[0]); i++) {
		cr_assert_eq(load(&c, err, 2, "--metrics-addr", bad_addr[i]), -EINVAL,
			     "accepted %s", bad_addr[i]);
		cr_assert(strstr(err, "metrics-addr"), "%s", err);
		config_free(&c);
	}
	const char *good_addr[] = {"0.0.0.0:9090", "[::1]:9090", ":9090", "localhost:1", ""};
	for (size_t i = 0; i < sizeof(good_addr) / sizeof(good_addr[0]); i++) {
		cr_assert_eq(load(&c, err, 2, "--metrics-addr", good_addr[i]), 0, "%s: %s",
			     good_addr[i], err);
		cr_assert_str_eq(c.metrics_addr, good_addr[i]);
		config_free(&c);
	}
	/* a bare IP (the downward API's status.podIP, either family) listens
	 * on port 9090; IPv6 is put in brackets. The whole string is the
	 * address: "::1:9090" is the IPv6 address ::1:9090. */
	const char *bare[][2] = {{"10.1.2.3", "10.1.2.3:9090"},
				 {"fd00:10:244::5", "[fd00:10:244::5]:9090"},
				 {"::1", "[::1]:9090"},
				 {"::1:9090", "[::1:9090]:9090"},
				 {"::ffff:10.0.0.1", "[::ffff:10.0.0.1]:9090"}};
	for (size_t i = 0; i < sizeof(bare) / sizeof(bare[0]); i++) {
		cr_assert_eq(load(&c, err, 2, "--metrics-addr", bare[i][0]), 0, "%s: %s",
			     bare[i][0], err);
		cr_assert_str_eq(c.metrics_addr, bare[i][1]);
		config_free(&c);
	}
	/* from the environment, as the DaemonSet sets it */
	setenv("TAPIO_METRICS_ADDR", "fd00:10:244:1::17", 1);
	cr_assert_eq(load(&c, err, 0), 0, "%s", err);
	unsetenv("TAPIO_METRICS_ADDR");
	cr_assert_str_eq(c.metrics_addr, "[fd00:10:244:1::17]:9090");
	config_free(&c);
	cr_assert_eq(load(&c, err, 2, "--queue-size", "-1"), -EINVAL);
	config_free(&c);

	const char *bad[] = {
	    "queue_size: [1\n",	   /* YAML syntax */
	    "no_such_key: 1\n",	   /* unknown key */
	    "- a\n- b\n",	   /* not a mapping */
	    "queue_size: 12x\n",   /* bad value */
	    "a: &x 1\nb: *x\n",	   /* alias */
	    "collectors: [[a]]\n", /* nested list */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *f = write_file(bad[i]);
		cr_assert_eq(load(&c, err, 2, "--config", f), -EINVAL, "accepted: %s", bad[i]);
		cr_assert(strstr(err, f), "error does not name the file: %s", err);
		config_free(&c);
		unlink(f);
	}
	cr_assert_eq(load(&c, err, 2, "--config", "/nonexistent/x.yaml"), -EINVAL);
	cr_assert(strstr(err, "/nonexistent/x.yaml"), "%s", err);
	config_free(&c);
}

Test(config, json_file_and_print, .init = clean_env)
{
	const char *f = write_file("{\"queue-size\": \"64K\", \"k8s_insecure\": true}");
	struct tapio_config c;
	char err[256];
	cr_assert_eq(load(&c, err, 2, "--config", f), 0, "%s", err);
	cr_assert_eq(c.queue_size, 65536);
	cr_assert(K8S_OPTS(&c)->insecure);
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	config_print(&c, m);
	fclose(m);
	cr_assert(strstr(buf, "queue_size: 65536\n"), "%s", buf);
	cr_assert(strstr(buf, "k8s_insecure: true\n"), "%s", buf);
	free(buf);
	config_free(&c);
	unlink(f);
}

Test(config, strlist)
{
	struct strlist l;
	cr_assert_eq(strlist_split(&l, " a, ,b ,c,"), 0);
	cr_assert_eq(l.n, 3);
	cr_assert_str_eq(l.v[0], "a");
	cr_assert_str_eq(l.v[2], "c");
	cr_assert(strlist_has(&l, "b"));
	cr_assert_not(strlist_has(&l, ""));
	strlist_free(&l);
	cr_assert_eq(strlist_split(&l, NULL), 0);
	cr_assert_eq(l.n, 0);
	strlist_free(&l);
}
