/* SPDX-License-Identifier: Apache-2.0 */
/* The OTLP logs encoder: tapio events as OpenTelemetry LogRecords in the
 * protobuf wire format of opentelemetry-proto (logs/v1, collector/logs/v1),
 * written by hand (no protobuf library: it is on the hot path).
 *
 * One event is one LogRecord (README.md "OTLP output" has the mapping):
 *   time_unix_nano = the event's ts, observed_time_unix_nano = observed,
 *   event_name = the tapio type ("process.exec"), attributes tapio.type and
 *   tapio.source, the meta keys under their semantic-convention names
 *   (pod_name -> k8s.pod.name ...; image split into container.image.name,
 *   .tags and .repo_digests) or else as tapio.<key>, process.pid and
 *   process.executable.name for events whose source knows a pid and comm;
 *   body = the data: JSON (and decoded kernel structs) as an AnyValue
 *   kvlist/array/scalar tree, text as a string, binary as bytes.
 *
 * A batch is a run of encoded LogRecords (each a complete field 2 of
 * ScopeLogs); otlp_request_prefix() writes what goes before them so that
 * prefix + records is one ExportLogsServiceRequest.
 */
#ifndef TAPIO_OTLP_ENCODE_H
#define TAPIO_OTLP_ENCODE_H

#include <stddef.h>
#include <stdint.h>

struct strbuf;
struct tapio_event;

/* Appends one LogRecord (as ScopeLogs field 2, tag and length included).
 * observed_ns: when tapio read the event; scratch: a buffer the caller keeps
 * (reused, for decoded structs). Returns 0, -EINVAL for a record
 * that does not hold together (nothing appended), or -ENOMEM. */
int otlp_encode_record(const struct tapio_event *ev, uint64_t observed_ns, struct strbuf *scratch,
		       struct strbuf *out);

/* Appends the JSON text (n bytes) as an AnyValue message body (the fields of
 * AnyValue, no tag or length of its own). Text that is not JSON, or nested
 * deeper than 64, becomes a string_value of the text. Returns 0 or -ENOMEM. */
int otlp_json_anyvalue(const char *json, size_t n, struct strbuf *out);

struct otlp_resource {
	const char *service_version; /* NULL = left out */
	const char *host_name;
	const char *node_name;
};

/* Writes (into out, reset first) the bytes of an ExportLogsServiceRequest up
 * to its first LogRecord, for records_len bytes of records: one ResourceLogs
 * with the resource attributes service.name=tapio, service.version,
 * host.name, k8s.node.name, and one ScopeLogs with the scope "tapio".
 * Returns 0 or -ENOMEM. */
int otlp_request_prefix(const struct otlp_resource *r, size_t records_len, struct strbuf *out);

/* Reads an ExportLogsServiceResponse: *rejected = partial_success.
 * rejected_log_records (0 when absent), msg (msglen bytes, NUL-terminated)
 * its error_message. Returns 0 or -EINVAL for bytes that are not one. */
int otlp_decode_response(const void *buf, size_t len, int64_t *rejected, char *msg, size_t msglen);

#endif
