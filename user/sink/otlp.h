/* SPDX-License-Identifier: Apache-2.0 */
/* The OTLP/HTTP logs sink: binary protobuf (otlp_encode.h) over libcurl.
 *
 * write() encodes the event into the open batch (the record is then
 * released). A batch is sealed when it reaches --otlp-batch-size bytes, or
 * when it is --otlp-batch-ms old and the pipeline polls (its queue ran
 * empty), or on flush. A sender thread gzips each sealed batch and POSTs it
 * (curl multi), with at most --otlp-max-inflight requests under way.
 *
 * Answers: 200 is the acknowledgement: the batch's events are written, less
 * partial_success.rejected_log_records (counted failed, with the server's
 * message logged, rate-limited). 429, 502, 503, 504 and transport errors
 * (refused, timed out) are retried with exponential backoff, after
 * Retry-After when the server gives one. Any other status fails the batch
 * for good: counted failed, the status and the server's message logged
 * (rate-limited).
 *
 * Bounded: at most max_inflight requests and as many sealed batches waiting
 * (for a slot or for their retry time). When all are taken, write() answers
 * -EAGAIN and the pipeline's queue buffers (and drops, counted there, once
 * it is full).
 *
 * connected() (/readyz, tapio_sink_connected) is false while the last
 * attempt got no HTTP answer or every batch slot is taken.
 *
 * close() seals, waits up to --otlp-timeout-ms for what is under way, then
 * counts what is left unconfirmed as failed ("abandoned").
 *
 * Counters: requests, retried (attempts answered with a retryable status or
 * error), http_errors (batches failed for good), rejected (records in
 * partial success), abandoned, bytes_sent (compressed), and the levels
 * inflight (requests under way) and batches_pending (sealed, not under way).
 */
#ifndef TAPIO_SINK_OTLP_H
#define TAPIO_SINK_OTLP_H

#include <stdint.h>

#include "sink/sink.h"

struct opt_group;

/* The sink's options (--otlp-*). */
struct otlp_options {
	char *ca;	       /* PEM CA bundle for otlps:// ("" = the system's) */
	char *cert;	       /* client certificate (PEM), "" = none */
	char *key;	       /* its key */
	uint64_t batch_size;   /* uncompressed bytes per request, at most */
	unsigned batch_ms;     /* how long an open batch may wait */
	unsigned max_inflight; /* requests under way at most */
	unsigned timeout_ms;   /* per request; also the wait in close() */
	unsigned gzip;	       /* 0 = off, else the zlib level (1..9) */
};
extern const struct opt_group otlp_options_group;

/* Checks "otlp://HOST:PORT[/PATH]" or "otlps://...". On success (0), fills
 * url (the http:// or https:// URL with /v1/logs when no path is given).
 * Returns -EINVAL with a one-line reason in err. */
int otlp_parse_url(const char *spec, char *url, size_t urllen, char *err, size_t errlen);

/* Opens the sink. node: for k8s.node.name (NULL or "" = none). The sender
 * starts at once; a receiver that is down is retried (the queue buffers).
 * Returns NULL with errno EINVAL (bad URL or options, reason in err), ENOMEM
 * or EIO (libcurl could not be set up). o is read during the call only. */
struct sink *sink_otlp_new(const char *spec, const struct otlp_options *o, const char *node,
			   char *err, size_t errlen);

#endif
