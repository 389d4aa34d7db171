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

#include "core/options.h"

#define CONFIG_GROUPS_MAX 12

/* The agent's own options. Every other module's options are a group of its
 * own (core/options.h), loaded beside these. */
struct tapio_config {
	char *config_file;
	char *collectors;    /* comma list; NULL or "" = every collector whose source exists */
	char *output;	     /* stdout | file:PATH | nats://HOST:PORT[,...] */
	char *file_sync;     /* file output: none | batch | always (fdatasync policy) */
	uint64_t queue_size; /* bytes, power of two */
	char *state_dir;
	char *metrics_addr; /* HOST:PORT ([IPV6]:PORT; a bare IP gets port 9090), "" = off */
	char *node_name;
	char *pod_labels;	 /* comma list of pod label keys for kernel events, "" = none */
	uint64_t max_event_size; /* collector input larger than this is skipped */
	unsigned queue_wait_ms;	 /* resumable sources wait this long on a full queue */
	bool print_config;

	/* the other groups given to config_load(), and their filled structs */
	const struct opt_group *groups[CONFIG_GROUPS_MAX];
	void *vals[CONFIG_GROUPS_MAX];
	size_t ngroups;
};

/* The agent's own group ("agent"), the first of every config. */
extern const struct opt_group agent_options;

/* Fills defaults, then the file (--config / TAPIO_CONFIG), then the
 * environment, then argv (argv[0] is the subcommand name and is skipped), for
 * the agent's options and each of the ngroups groups; then runs each group's
 * check. Returns 0, or -EINVAL after writing a one-line message that names the
 * key or flag and the reason into err (-ENOMEM, -E2BIG: too many groups). */
int config_load(struct tapio_config *cfg, const struct opt_group *const *groups, size_t ngroups,
		int argc, char **argv, char *err, size_t errlen);

/* The filled struct of group g, or NULL when g was not loaded. */
const void *config_group(const struct tapio_config *cfg, const struct opt_group *g);

/* Writes the effective config as YAML. */
void config_print(const struct tapio_config *cfg, FILE *out);

/* Writes the --help text for the agent's flags and those of the groups. */
void config_usage(const struct opt_group *const *groups, size_t ngroups, FILE *out);

/* Frees every string and group struct. Accepts a zeroed config. */
void config_free(struct tapio_config *cfg);

#endif
