"""Test fixtures for the NATS JetStream sink (stdlib only).

- NatsServer: a real `nats-server -js` on a free loopback port with a temp
  store dir; kill() and start() again on the same port and store.
- NatsCluster: three of them as one JetStream cluster on loopback (cluster
  routes between them, a store dir each); any node can be killed and
  started again.
- JsReader: a small client of the NATS text protocol (INFO/CONNECT/PING,
  SUB, PUB, MSG/HMSG) that asks the JetStream API for stream info and reads
  stored messages one by one ($JS.API.STREAM.MSG.GET), headers included.
  No NATS client library for Python is packaged in Debian 12, and the
  JetStream API is plain JSON request/reply, so this is enough to read back
  what the agent stored.
"""
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


class NatsServer:
    def __init__(self, port, args=()):
        self.port = port
        self.args = list(args)
        self.store = tempfile.mkdtemp(prefix="tapio-nats-")
        self.proc = None
        self.url = f"nats://127.0.0.1:{port}"

    def start(self, timeout=10.0):
        self.proc = subprocess.Popen(
            [NATS_SERVER, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", self.store]
            + self.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nats-server did not listen in time")

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def close(self):
        self.kill()
        shutil.rmtree(self.store, True)


class NatsCluster:
    """Three JetStream servers n1..n3 routed into one cluster on loopback."""

    def __init__(self, free_port, size=3, name="tapio-test"):
        ports = [(free_port(), free_port()) for _ in range(size)]
        routes = ",".join(f"nats://127.0.0.1:{cp}" for _, cp in ports)
        self.nodes = {}
        for i, (p, cp) in enumerate(ports, 1):
            self.nodes[f"n{i}"] = NatsServer(p, ["--server_name", f"n{i}", "--cluster_name", name,
                                                 "--cluster", f"nats://127.0.0.1:{cp}",
                                                 "--routes", routes])
        self.url = ",".join(n.url for n in self.nodes.values())

    def start(self, timeout=30.0):
        for n in self.nodes.values():
            n.start()
        # JetStream is ready once the cluster has a meta leader.
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                r = JsReader(self.any().port)
                try:
                    info = r.api("INFO")
                finally:
                    r.close()
                if "error" not in info:
                    return self
            except (OSError, RuntimeError, ValueError):
                pass
            time.sleep(0.2)
        raise RuntimeError("the JetStream cluster did not form in time")

    def any(self):
        """A running node."""
        return next(n for n in self.nodes.values() if n.proc)

    def reader(self):
        return JsReader(self.any().port)

    def close(self):
        for n in self.nodes.values():
            n.close()


class JsReader:
    """A synchronous request/reply NATS client for the JetStream API."""

    def __init__(self, port, timeout=5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.sid = 0
        self.inbox = "_INBOX.tapiotest%d" % os.getpid()
        line = self._line()
        if not line.startswith(b"INFO "):
            raise RuntimeError(f"expected INFO, got {line!r}")
        self._send(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,'
                   b'"no_responders":true,"protocol":1}\r\nPING\r\n')
        while True:
            line = self._line()
            if line == b"PONG":
                break
            if line.startswith(b"-ERR"):
                raise RuntimeError(line.decode())
        self._send(f"SUB {self.inbox}.* 1\r\n".encode())
        self.n = 0

    def close(self):
        self.sock.close()

    def _send(self, b):
        self.sock.sendall(b)

    def _fill(self):
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buf += chunk

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _bytes(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def request(self, subject, payload):
        """Sends one request; returns (headers bytes or None, payload bytes)."""
        self.n += 1
        reply = f"{self.inbox}.{self.n}"
        body = payload.encode() if isinstance(payload, str) else payload
        self._send(f"PUB {subject} {reply} {len(body)}\r\n".encode() + body + b"\r\n")
        while True:
            line = self._line()
            if line == b"PING":
                self._send(b"PONG\r\n")
                continue
            if line.startswith(b"-ERR"):
                raise RuntimeError(line.decode())
            parts = line.split()
            if parts and parts[0] == b"MSG":
                data = self._bytes(int(parts[-1]))
                hdrs = None
            elif parts and parts[0] == b"HMSG":
                hlen, tlen = int(parts[-2]), int(parts[-1])
                raw = self._bytes(tlen)
                hdrs, data = raw[:hlen], raw[hlen:]
            else:
                continue
            if parts[1].decode() != reply:
                continue  # a late answer to an earlier request
            return hdrs, data

    def api(self, subject, req=""):
        hdrs, data = self.request("$JS.API." + subject, req)
        if hdrs and b" 503" in hdrs.split(b"\r\n", 1)[0]:
            raise RuntimeError("no responders (JetStream not ready)")
        return json.loads(data)

    def stream_info(self, stream):
        return self.api("STREAM.INFO." + stream)

    def get(self, stream, seq):
        """One stored message: dict subject, seq, headers (dict), data (bytes),
        or None when that sequence was deleted."""
        r = self.api("STREAM.MSG.GET." + stream, json.dumps({"seq": seq}))
        if "error" in r:
            return None
        m = r["message"]
        headers = {}
        if m.get("hdrs"):
            for l in base64.b64decode(m["hdrs"]).decode().split("\r\n")[1:]:
                if ":" in l:
                    k, v = l.split(":", 1)
                    headers[k.strip()] = v.strip()
        data = base64.b64decode(m.get("data", "")) if m.get("data") else b""
        return {"subject": m["subject"], "seq": m["seq"], "headers": headers, "data": data}

    def read_all(self, stream):
        info = self.stream_info(stream)
        st = info["state"]
        out = []
        if st.get("messages", 0):
            for seq in range(st["first_seq"], st["last_seq"] + 1):
                m = self.get(stream, seq)
                if m is not None:
                    out.append(m)
        return info, out
