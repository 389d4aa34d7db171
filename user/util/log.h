/* SPDX-License-Identifier: Apache-2.0 */
/* The log hook. Library-like modules (queue, parsers, collectors, sinks) never
 * print; they call tlog(), and the program decides where it goes (stderr by
 * default, one line per message, rate-limited per call site by the caller when
 * it can repeat per event). */
#ifndef TAPIO_LOG_H
#define TAPIO_LOG_H

#include <stdarg.h>

enum log_level { TLOG_ERR = 3, TLOG_WARN = 4, TLOG_INFO = 6, TLOG_DEBUG = 7 };

typedef void (*log_fn)(int level, const char *who, const char *msg);

/* Replaces the hook (NULL restores the default: "tapio: <who>: <msg>\n" on
 * stderr for levels up to the current verbosity). */
void log_set_hook(log_fn fn);
/* Messages with a level above this are dropped (default TLOG_INFO). */
void log_set_level(int level);
void tlog(int level, const char *who, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void vtlog(int level, const char *who, const char *fmt, va_list ap);

#endif
