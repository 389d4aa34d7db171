/* SPDX-License-Identifier: Apache-2.0 */
/* Option tables. Each module that takes options (the agent itself, each
 * collector, each sink) declares one group: its options with their flag
 * name, type, default and help, at offsets into the module's own options
 * struct, and an optional check of the whole group. config_load() fills
 * every group from defaults, the file, the environment and flags, then runs
 * the checks: a module receives a filled, validated struct and neither
 * re-defaults nor re-validates it. */
#ifndef TAPIO_CORE_OPTIONS_H
#define TAPIO_CORE_OPTIONS_H

#include <stddef.h>

enum opt_type {
	OPT_STR,  /* char *, owned by the config */
	OPT_BOOL, /* bool */
	OPT_UINT, /* unsigned, up to UINT32_MAX */
	OPT_SIZE, /* uint64_t, with K/M/G suffixes */
	OPT_U64,  /* uint64_t */
};

struct opt {
	const char *name; /* flag name without "--"; file key with '_' or '-' */
	enum opt_type type;
	size_t off;	 /* in the group's struct */
	const char *def; /* default, as text */
	const char *help;
};

struct opt_group {
	const char *name; /* "agent", "kernel", "k8s", "nats", ... */
	const struct opt *opts;
	size_t nopts;
	size_t size; /* bytes of the group's struct */
	/* Optional: checks the filled struct. Returns 0, or -EINVAL after writing
	 * "<option>: <reason>" into err (the loader appends where the value came
	 * from). */
	int (*check)(const void *opts, char *err, size_t errlen);
};

#define OPT_ENTRY(type_, name_, kind_, field_, def_, help_)                                        \
	{                                                                                          \
		(name_), (kind_), offsetof(type_, field_), (def_), (help_)                         \
	}

#define OPT_GROUP(name_, type_, table_, check_)                                                    \
	{                                                                                          \
		(name_), (table_), sizeof(table_) / sizeof((table_)[0]), sizeof(type_), (check_)   \
	}

#endif
