/* SPDX-License-Identifier: Apache-2.0 */
/* tapio: entry point and subcommand dispatch. */
#include <stdio.h>
#include <string.h>

#include "cmd/commands.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: tapio <command> [options]\n"
		"\n"
		"commands:\n"
		"  trace    trace kernel events on this node (tapio trace --help)\n"
		"  agent    run the node agent: all collectors to one sink (tapio agent --help)\n"
		"  probe    report what this kernel supports and which programs would load\n"
		"  version  print the version\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "trace"))
		return cmd_trace(argc - 1, argv + 1);
	if (!strcmp(cmd, "agent"))
		return cmd_agent(argc - 1, argv + 1);
	if (!strcmp(cmd, "probe"))
		return cmd_probe(argc - 1, argv + 1);
	if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
		printf("tapio %s\n", TAPIO_VERSION);
		return 0;
	}
	if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "tapio: unknown command '%s'\n", cmd);
	usage(stderr);
	return 2;
}
