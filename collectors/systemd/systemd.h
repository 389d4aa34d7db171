/* SPDX-License-Identifier: Apache-2.0 */
/* The systemd journal collector: follows the journal with libsystemd's
 * sd-journal and emits one systemd.journal event per entry of the watched
 * units. See collectors/systemd/README.md. */
#ifndef TAPIO_COLLECTORS_SYSTEMD_H
#define TAPIO_COLLECTORS_SYSTEMD_H

#include <stdbool.h>
#include <stddef.h>

struct collector;
struct collector_env;
struct opt_group;
struct source_desc;

enum systemd_type { TYPE_SYSTEMD_JOURNAL = 1, SYSTEMD_NTYPES };

/* The collector's options (--journal-*). */
struct systemd_options {
	char *journal_dir;   /* "" = the local journal */
	char *journal_units; /* comma list */
	char *journal_since; /* first start: "now", "head", or a journal cursor */
};
extern const struct opt_group systemd_options_group;
extern const struct source_desc systemd_source;

/* Builds the collector from env->opts (a struct systemd_options) and the
 * agent's state_dir and max_event_size; nothing is opened until start(). The caller owns
 * the result and frees it with collector_destroy() after collector_stop().
 * Returns NULL with errno and a one-line reason in err for a bad config
 * (EINVAL) or ENOMEM. */
struct collector *systemd_collector_new(const struct collector_env *env, char *err, size_t errlen);

/* True when a journal exists: --journal-dir is a directory, or (when it is
 * empty) /var/log/journal or /run/log/journal holds a journal file. */
bool systemd_collector_available(const struct collector_env *env);

#endif
