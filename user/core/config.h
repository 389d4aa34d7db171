/* SPDX-License-Identifier: Apache-2.0 */
/* Agent configuration. Every key is a long flag (--queue-size), an environment
 * variable (TAPIO_QUEUE_SIZE) and a key in the config file (queue_size or
 * queue-size). Precedence: flag, then environment, then file, then default.
 * The config file is YAML (JSON is valid YAML), parsed with libyaml. */
#ifndef TAPIO_CONFIG_H
#define TAPIO_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct tapio_config {
	/* agent */
	char *config_file;
	char *collectors;   /* comma list; NULL or "" = every collector whose source exists */
	char *output;       /* stdout | file:PATH | nats://HOST:PORT[,...] */
	uint64_t queue_size; /* bytes, power of two */
	char *state_dir;
	char *metrics_addr; /* HOST:PORT, "" = off */
	char *node_name;
	uint64_t max_event_size; /* k8s/etcd/systemd/cni: larger input is skipped */
	unsigned queue_wait_ms;  /* resumable sources wait this long on a full queue */
	bool print_config;

	/* kernel */
	char *events;        /* event type names/prefixes, "" = all */
	uint64_t ringbuf_size;
	bool containers_only;
	bool all_threads;    /* process.exit for every thread */

	/* k8s */
	char *k8s_kubeconfig;
	char *k8s_resources; /* comma list, "" = default set */
	bool k8s_insecure;   /* skip TLS verification (explicit only) */

	/* etcd */
	char *etcd_endpoints;
	char *etcd_prefix;
	char *etcd_cacert;
	char *etcd_cert;
	char *etcd_key;

	/* systemd */
	char *journal_dir;   /* "" = the local journal */
	char *journal_units; /* comma list */
	char *journal_since; /* first start: "now" (default), "head", or a journal cursor */

	/* cni */
	char *cni_log_dirs;  /* comma list */
	char *netns_dir;
	char *cni_state_dir; /* /var/lib/cni: results/ and networks/ below it */

	/* nats */
	char *nats_subject_prefix; /* tapio.events */
	char *nats_stream;         /* TAPIO_EVENTS */
	char *nats_retention;      /* limits | interest | workqueue */
	uint64_t nats_max_age_s;   /* 0 = unlimited */
	unsigned nats_max_inflight;
	unsigned nats_ack_wait_ms; /* on shutdown */
};

/* Fills defaults, then the file (--config / TAPIO_CONFIG), then the
 * environment, then argv (argv[0] is the subcommand name and is skipped).
 * Returns 0, or -EINVAL after writing a one-line message that names the key or
 * flag and the reason into err. */
int config_load(struct tapio_config *cfg, int argc, char **argv, char *err, size_t errlen);

/* Writes the effective config as YAML. */
void config_print(const struct tapio_config *cfg, FILE *out);

/* Writes the --help text for the agent flags. */
void config_usage(FILE *out);

void config_free(struct tapio_config *cfg);

/* A list parsed from "a, b,c": trimmed, empty items left out. */
struct strlist {
	char **v;
	size_t n;
};
/* Returns 0 or -ENOMEM. csv NULL gives an empty list. */
int strlist_split(struct strlist *l, const char *csv);
/* True when s is in the list. */
bool strlist_has(const struct strlist *l, const char *s);
void strlist_free(struct strlist *l);

#endif
