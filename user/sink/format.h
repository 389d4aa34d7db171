/* SPDX-License-Identifier: Apache-2.0 */
/* Event formatting for the sinks: JSON Lines (README.md "JSON Lines output", docs/architecture.md)
 * and the aligned text table of `tapio trace`. Pure functions on one event. */
#ifndef TAPIO_FORMAT_H
#define TAPIO_FORMAT_H

#include <stdbool.h>

struct strbuf;
struct tapio_event;

/* Appends one JSON line, with the trailing newline. Returns 0 or -EINVAL for
 * a record that does not hold together (then nothing useful was appended). */
int format_json(const struct tapio_event *ev, struct strbuf *out);

/* Appends one text line: TIME TYPE PID COMM DETAILS, with the newline. */
int format_text(const struct tapio_event *ev, struct strbuf *out);

/* The header line of the text table. */
void format_text_header(struct strbuf *out);

/* The same, with POD (namespace/name) and CONTAINER columns after COMM when
 * pods is true ("-" where the event has no pod_name / container_name). */
int format_text_pods(const struct tapio_event *ev, struct strbuf *out, bool pods);
void format_text_header_pods(struct strbuf *out, bool pods);

#endif
