// SPDX-License-Identifier: Apache-2.0
/* The NATS client protocol as the sink's own publisher speaks it: pure
 * functions over bytes, no I/O, no allocation (sink/sink_nats.c does the I/O).
 *
 * Server frames (docs.nats.io, "Client protocol"; operation names are case
 * insensitive, arguments are separated by spaces or tabs, lines end in CRLF):
 *   INFO {json}                      PING   PONG   +OK   -ERR 'text'
 *   MSG <subject> <sid> [reply] <#bytes>\r\n<payload>\r\n
 *   HMSG <subject> <sid> [reply] <#header bytes> <#total bytes>\r\n
 *        NATS/1.0[ <status>[ <text>]]\r\n[Name: value\r\n...]\r\n<payload>\r\n
 * (the header bytes count everything up to the empty line, which included).
 *
 * A JetStream PubAck is the payload of a MSG on the publish's reply subject:
 *   {"stream":"S","seq":N[,"duplicate":true]}
 *   {"error":{"code":C,"err_code":E,"description":"..."}}
 * "No responders" (no stream leader yet, or no stream) is an HMSG with the
 * status line "NATS/1.0 503" and no payload.
 */
#ifndef TAPIO_NATS_WIRE_H
#define TAPIO_NATS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A control line longer than this (INFO with a long connect_urls list
 * included) is a protocol error. */
#define NW_MAX_LINE 65536

enum nw_kind { NW_INFO = 1, NW_MSG, NW_HMSG, NW_PING, NW_PONG, NW_OK, NW_ERR };

/* One server frame; the pointers point into the parsed buffer. */
struct nw_frame {
	enum nw_kind kind;
	const char *subject, *reply; /* MSG, HMSG (reply NULL when absent) */
	size_t subject_len, reply_len;
	uint64_t sid;
	const char *hdr; /* HMSG: the header block, "NATS/1.0..." up to the empty line */
	size_t hdr_len;
	/* INFO: the JSON; -ERR: the text without quotes; MSG, HMSG: the payload */
	const char *data;
	size_t data_len;
};

/* Parses the frame at the start of buf[0..len). Returns the bytes it takes
 * (> 0), 0 when the frame is not complete yet (read more and call again with
 * the same start), or -1 with a one-line reason in err: an unknown operation,
 * bad arguments, a line over NW_MAX_LINE, a message longer than max_msg, a
 * payload not followed by CRLF. After -1 the stream cannot be followed any
 * more: the connection must be dropped. */
long nw_parse(const char *buf, size_t len, size_t max_msg, struct nw_frame *f, char *err,
	      size_t errlen);

/* The status code of an HMSG header block ("NATS/1.0 503" -> 503), 0 when it
 * has none, -1 when the block does not start with "NATS/1.0". */
int nw_hdr_status(const char *hdr, size_t len);

/* A PubAck. */
struct nw_puback {
	bool error;	/* {"error":{...}} */
	bool duplicate; /* "duplicate":true */
	uint64_t seq;
	int code;	 /* error: HTTP-like code (503, 400, ...) */
	int err_code;	 /* error: the JetStream error code (10077, ...) */
	char stream[64]; /* "stream" (cut) */
	char desc[160];	 /* error: "description" (cut) */
};

/* Parses a PubAck. 0, or -1 with a reason in err for what is not JSON, not
 * an object, or has neither "seq" nor "error". Unknown keys are skipped. */
int nw_parse_puback(const char *json, size_t len, struct nw_puback *pa, char *err, size_t errlen);

/* The number after the last '.' of reply when reply is "<prefix>.<n>" (prefix
 * given with its length, without the dot). 0 and *n, or -1. */
int nw_reply_num(const char *reply, size_t len, const char *prefix, size_t plen, uint64_t *n);

/* From the INFO JSON: "max_payload" (0 when absent) and whether the server
 * requires TLS or authentication, which the sink does not speak. 0, or -1
 * with a reason in err when it is not a JSON object. */
struct nw_info {
	uint64_t max_payload;
	bool headers; /* the server supports headers */
	bool tls_required, auth_required;
	char server_id[64];
};
int nw_parse_info(const char *json, size_t len, struct nw_info *info, char *err, size_t errlen);

#endif
