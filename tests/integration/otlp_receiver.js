// SPDX-License-Identifier: Apache-2.0
// An OTLP/HTTP logs receiver for the tests. It decodes each request with the
// OpenTelemetry project's own generated protobuf code (the
// ExportLogsServiceRequest of @opentelemetry/otlp-transformer, installed by
// `make deps` into build/node), not with tapio's, and writes one JSON line
// per request to --out: {"n": request number, "status": answered status,
// "request": the decoded request as an object}.
//
// Usage: node otlp_receiver.js --port P --out FILE [--fail N --fail-status S
//        --retry-after SECS] [--always S --message TEXT] [--delay-ms MS]
//        [--reject N]
//   --fail N        answer the first N requests with --fail-status (503)
//   --always S      answer every request with S and a google.rpc.Status
//                   carrying --message
//   --delay-ms MS   wait MS before answering each request
//   --reject N      answer 200 with partial_success.rejected_log_records = N
//   --tls-cert F --tls-key F [--client-ca F]
//                   HTTPS; with --client-ca a client certificate signed by it
//                   is required (its CN is recorded as "client_cn")
'use strict';
const http = require('http');
const https = require('https');
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');

const NODE_DIR = process.env.TAPIO_NODE_DIR ||
	path.join(__dirname, '..', '..', 'build', 'node', 'node_modules');
const root = require(path.join(NODE_DIR, '@opentelemetry/otlp-transformer/build/src/generated/root'));
const logsv1 = root.opentelemetry.proto.collector.logs.v1;

const args = {};
for (let i = 2; i < process.argv.length; i += 2)
	args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const port = Number(args.port || 0);
const out = fs.openSync(args.out, 'a');
const failN = Number(args.fail || 0);
const failStatus = Number(args['fail-status'] || 503);
const retryAfter = args['retry-after'];
const always = Number(args.always || 0);
const message = args.message || 'rejected by the test receiver';
const delayMs = Number(args['delay-ms'] || 0);
const reject = Number(args.reject || 0);
let n = 0;

// google.rpc.Status { int32 code = 1; string message = 2; }, by hand: the
// receiver's own answer, not what is under test.
function rpcStatus(code, msg) {
	const m = Buffer.from(msg, 'utf8');
	return Buffer.concat([Buffer.from([0x08, code, 0x12, m.length]), m]);
}

function answer(res, status, body) {
	res.writeHead(status, {'Content-Type': 'application/x-protobuf'});
	res.end(body);
}

const handler = (req, res) => {
	const chunks = [];
	req.on('data', (c) => chunks.push(c));
	req.on('end', () => {
		let buf = Buffer.concat(chunks);
		const num = ++n;
		const peer = req.socket.getPeerCertificate ? req.socket.getPeerCertificate() : null;
		const rec = {n: num, path: req.url, method: req.method,
			     client_cn: peer && peer.subject ? peer.subject.CN : null,
			     content_type: req.headers['content-type'] || '',
			     content_encoding: req.headers['content-encoding'] || ''};
		let status = 200;
		if (num <= failN) {
			status = failStatus;
		} else if (always) {
			status = always;
		}
		if (status === 200) {
			try {
				if (rec.content_encoding === 'gzip')
					buf = zlib.gunzipSync(buf);
				const msg = logsv1.ExportLogsServiceRequest.decode(buf);
				rec.request = logsv1.ExportLogsServiceRequest.toObject(msg, {
					longs: String, bytes: String, defaults: false, oneofs: false});
			} catch (e) {
				status = 400;
				rec.decode_error = String(e);
			}
		}
		rec.status = status;
		fs.writeSync(out, JSON.stringify(rec) + '\n');
		const send = () => {
			if (status === 200) {
				const r = reject ? {partialSuccess: {rejectedLogRecords: reject,
								      errorMessage: 'some were rejected'}} : {};
				answer(res, 200, logsv1.ExportLogsServiceResponse.encode(
					logsv1.ExportLogsServiceResponse.create(r)).finish());
			} else if (num <= failN) {
				const h = {'Content-Type': 'text/plain'};
				if (retryAfter !== undefined)
					h['Retry-After'] = retryAfter;
				res.writeHead(status, h);
				res.end('try later');
			} else {
				answer(res, status, rpcStatus(3, message));
			}
		};
		if (delayMs)
			setTimeout(send, delayMs);
		else
			send();
	});
};
const server = args['tls-cert']
	? https.createServer({cert: fs.readFileSync(args['tls-cert']), key: fs.readFileSync(args['tls-key']),
			      ca: args['client-ca'] ? fs.readFileSync(args['client-ca']) : undefined,
			      requestCert: !!args['client-ca'], rejectUnauthorized: !!args['client-ca']},
			     handler)
	: http.createServer(handler);
server.listen(port, '127.0.0.1', () => {
	process.stdout.write('listening ' + server.address().port + '\n');
});
process.on('SIGTERM', () => process.exit(0));
