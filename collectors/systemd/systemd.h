/* SPDX-License-Identifier: Apache-2.0 */
/* The systemd journal collector: follows the journal with libsystemd's
 * sd-journal and emits one systemd.journal event per entry of the watched
 * units. See collectors/systemd/README.md. */
#ifndef TAPIO_COLLECTORS_SYSTEMD_H
#define TAPIO_COLLECTORS_SYSTEMD_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"

struct collector;

/* Builds the collector from cfg (journal_dir, journal_units, journal_since,
 * state_dir, max_event_size); nothing is opened until start(). The caller owns
 * the result and frees it with collector_destroy() after collector_stop().
 * Returns NULL with errno and a one-line reason in err for a bad config
 * (EINVAL) or ENOMEM. */
struct collector *systemd_collector_new(const struct tapio_config *cfg, char *err, size_t errlen);

/* True when a journal exists: cfg->journal_dir is a directory, or (when it is
 * empty) /var/log/journal or /run/log/journal holds a journal file. */
bool systemd_collector_available(const struct tapio_config *cfg);

#endif
