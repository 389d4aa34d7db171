/* SPDX-License-Identifier: Apache-2.0 */
/* Subcommands. Each takes argv with argv[0] = the subcommand name and returns
 * the process exit code (0 ok, 1 failure, 2 usage or config error). */
#ifndef TAPIO_COMMANDS_H
#define TAPIO_COMMANDS_H

int cmd_trace(int argc, char **argv); /* user/cmd/trace.c */
int cmd_probe(int argc, char **argv); /* user/cmd/probe.c */
int cmd_agent(int argc, char **argv); /* user/cmd/agent.c */

#endif
