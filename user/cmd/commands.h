/* SPDX-License-Identifier: Apache-2.0 */
/* Subcommands. Each takes argv with argv[0] = the subcommand name and returns
 * the process exit code (0 ok, 1 failure, 2 usage or config error). */
#ifndef TAPIO_COMMANDS_H
#define TAPIO_COMMANDS_H

#include <stddef.h>

int cmd_trace(int argc, char **argv); /* user/cmd/trace.c */
int cmd_probe(int argc, char **argv); /* user/cmd/probe.c */
int cmd_agent(int argc, char **argv); /* user/cmd/agent.c */

struct opt_group;
struct tapio_config;

/* The option groups of `tapio agent` besides its own: each collector's (table
 * order), then each sink's. Returns the count (at most max). */
size_t agent_option_groups(const struct opt_group **g, size_t max); /* user/cmd/agent.c */

/* config_load() with those groups, then the check that every name in
 * --collectors is a row of the collector table. Returns 0 or -EINVAL (err
 * says why). */
int agent_config_load(struct tapio_config *cfg, int argc, char **argv, char *err, size_t errlen);

#endif
