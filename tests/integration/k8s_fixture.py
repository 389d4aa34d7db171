"""A fixture Kubernetes API server for tapio's k8s collector tests.

Python's standard library only (http.server's ThreadingHTTPServer and ssl).
It speaks the parts of the real protocol the collector uses:

- TLS with a CA made at test time by the openssl CLI (make_pki), and a
  bearer-token check (401 with a Status object otherwise); the set of valid
  tokens can be rotated.
- Paged LIST (limit + continue, metadata.resourceVersion, remainingItemCount)
  from a consistent snapshot; kind <Kind>List.
- WATCH (?watch=1&resourceVersion=RV) as a chunked stream
  (Transfer-Encoding: chunked) of {"type":..,"object":..} lines, BOOKMARKs when
  allowWatchBookmarks=true, ERROR 410 (a Status with reason Expired) in-band
  when the resourceVersion is older than the compaction point, or HTTP 410 on
  request; timeoutSeconds honoured.
- fieldSelector=spec.nodeName=X for pods.
- coordination.k8s.io/v1 Leases (GET, POST, PUT) with the real conflict
  semantics: 409 AlreadyExists on a create of an existing name, 409 Conflict
  on an update with a stale metadata.resourceVersion, 404 NotFound. Every
  write is logged in `lease_log`. A token in `partitioned` gets 503 on every
  new request (its open watch streams go on, as behind a broken link). A
  token in `lease_forbidden` gets 403 Forbidden on Leases (RBAC without the
  Lease verbs); a token in `lease_hung` has its Lease requests read and never
  answered while it stays there (a hung server), each hang logged in
  `lease_hangs`.
- Accept: application/json;as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1
  answered with metadata only (unless ignore_partial is set, to test that the
  client strips data itself).

A scriptable object store: create/update/delete assign increasing
resourceVersions, fan events out to open watches, and log every version in
`produced`. Faults are queued per resource with fault(resource, kind, **args)
and consumed by the next watch request(s) of that resource:

  close_after n=N       end the stream cleanly after N more events
  split                 send the next event in two chunks, 0.3 s apart
  garbage_line          send one line that is not JSON before the next event
  garbage_stream        answer with 200 and lines of HTML, then close
  http_410              answer the watch with HTTP 410 and a Status body
  inband_410            send an ERROR 410 line at once and end the stream
  http_500              answer the watch with HTTP 500 and a Status body
  inband_500            send an ERROR line with a code 500 Status and end the stream
  inband_400            send an ERROR line with a code 400 Status (a resourceVersion
                        the server cannot read) and end the stream
  hang_up               close the TCP connection in the middle of an event
"""
import base64
import copy
import json
import os
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KINDS = {
    # resource: (path prefix, kind, apiVersion)
    "pods": ("/api/v1", "Pod", "v1"),
    "services": ("/api/v1", "Service", "v1"),
    "nodes": ("/api/v1", "Node", "v1"),
    "events": ("/api/v1", "Event", "v1"),
    "configmaps": ("/api/v1", "ConfigMap", "v1"),
    "secrets": ("/api/v1", "Secret", "v1"),
    "deployments": ("/apis/apps/v1", "Deployment", "apps/v1"),
    "replicasets": ("/apis/apps/v1", "ReplicaSet", "apps/v1"),
}
CLUSTER_SCOPED = {"nodes"}
STREAM_FAULTS = ("close_after", "garbage_stream", "http_410", "inband_410", "http_500", "inband_500", "inband_400")
EVENT_FAULTS = ("split", "garbage_line", "hang_up")


def _run(*cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_pki(d, name="ca"):
    """Makes d/<name>.crt (a CA) and d/<name>-server.{crt,key} for 127.0.0.1
    and localhost, with the openssl CLI. Returns (ca, cert, key) paths."""
    ca_key, ca = os.path.join(d, name + ".key"), os.path.join(d, name + ".crt")
    key, csr = os.path.join(d, name + "-server.key"), os.path.join(d, name + "-server.csr")
    crt, ext = os.path.join(d, name + "-server.crt"), os.path.join(d, name + "-ext.cnf")
    _run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca,
         "-days", "2", "-subj", "/CN=tapio-test-" + name)
    _run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
         "-subj", "/CN=127.0.0.1")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                "extendedKeyUsage=serverAuth\n")
    _run("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
         "-out", crt, "-days", "2", "-extfile", ext)
    return ca, crt, key


def make_client_cert(d, name="ca", cn="tapio-agent"):
    """A client certificate signed by d/<name>.crt (from make_pki).
    Returns (cert, key) paths."""
    ca_key, ca = os.path.join(d, name + ".key"), os.path.join(d, name + ".crt")
    key, csr = os.path.join(d, name + "-client.key"), os.path.join(d, name + "-client.csr")
    crt, ext = os.path.join(d, name + "-client.crt"), os.path.join(d, name + "-client-ext.cnf")
    _run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
         "-subj", "/O=system:nodes/CN=" + cn)
    with open(ext, "w") as f:
        f.write("extendedKeyUsage=clientAuth\n")
    _run("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
         "-out", crt, "-days", "2", "-extfile", ext)
    return crt, key


def status(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


class Store:
    """Objects, resourceVersions and the event history watches read from."""

    def __init__(self, start_rv=1000):
        self.cv = threading.Condition()
        self.rv = start_rv
        self.objects = {r: {} for r in KINDS}  # resource -> uid -> object
        self.history = []  # (rv, resource, type, object)
        self.compacted = 0  # watches from an rv below this get 410
        self.produced = []  # (resource, uid, type, rv) for every version made

    def _next(self):
        self.rv += 1
        return str(self.rv)

    def _record(self, res, typ, obj):
        rv = int(obj["metadata"]["resourceVersion"])
        self.history.append((rv, res, typ, copy.deepcopy(obj)))
        self.produced.append((res, obj["metadata"]["uid"], typ, str(rv)))
        self.cv.notify_all()

    def create(self, res, name, namespace="default", annotations=None, **fields):
        kind, api = KINDS[res][1], KINDS[res][2]
        with self.cv:
            md = {"name": name, "uid": str(uuid.uuid4()), "resourceVersion": self._next(),
                  "creationTimestamp": "2026-11-27T00:00:00Z", "labels": {"app": name}}
            if annotations:
                md["annotations"] = dict(annotations)
            if res not in CLUSTER_SCOPED:
                md["namespace"] = namespace
            obj = {"kind": kind, "apiVersion": api, "metadata": md}
            obj.update(copy.deepcopy(fields))
            self.objects[res][md["uid"]] = obj
            self._record(res, "ADDED", obj)
            return copy.deepcopy(obj)

    def update(self, res, uid, fn=None):
        with self.cv:
            obj = self.objects[res][uid]
            if fn:
                fn(obj)
            obj["metadata"]["resourceVersion"] = self._next()
            obj["metadata"].setdefault("annotations", {})["tick"] = obj["metadata"]["resourceVersion"]
            self._record(res, "MODIFIED", obj)
            return copy.deepcopy(obj)

    def delete(self, res, uid):
        with self.cv:
            obj = self.objects[res].pop(uid)
            obj["metadata"]["resourceVersion"] = self._next()
            self._record(res, "DELETED", obj)
            return copy.deepcopy(obj)

    def compact(self):
        """Forgets the history up to now: watches from older versions get 410."""
        with self.cv:
            self.compacted = self.rv
            self.history = [h for h in self.history if h[0] > self.compacted]
            self.cv.notify_all()

    def by_name(self, res, name):
        with self.cv:
            for o in self.objects[res].values():
                if o["metadata"]["name"] == name:
                    return copy.deepcopy(o)
        return None


def partial(obj):
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": copy.deepcopy(obj["metadata"])}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fixture-apiserver"

    def log_message(self, fmt, *args):  # quiet
        pass

    # ---- plumbing ----

    def _send_json(self, code, obj, extra=None):
        body = json.dumps(obj, separators=(",", ":")).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _chunk(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _end_chunks(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    LEASES = "/apis/coordination.k8s.io/v1/namespaces/"

    def _client_cn(self):
        """The verified client certificate's CN (recorded), or None."""
        fx = self.server.fixture
        if not fx.client_certs:
            return None
        client_cn = None
        peer = self.connection.getpeercert() or {}
        for rdn in peer.get("subject", ()):
            for k, v in rdn:
                if k == "commonName":
                    client_cn = v
        with fx.lock:
            fx.client_cns.append(client_cn)
        return client_cn

    def _authorized(self):
        """Checks the bearer token; answers 401 or 503 (partitioned) itself."""
        fx = self.server.fixture
        auth = self.headers.get("Authorization", "")
        tok = auth[7:] if auth.startswith("Bearer ") else None
        if tok is not None and tok in fx.partitioned:
            with fx.lock:
                fx.partition_refused += 1
            self._send_json(503, status(503, "ServiceUnavailable", "partitioned"))
            return False
        if tok is None or tok not in fx.tokens:
            with fx.lock:
                fx.unauthorized += 1
            self._send_json(401, status(401, "Unauthorized", "Unauthorized"))
            return False
        return True

    def _lease(self, method):
        fx = self.server.fixture
        u = urllib.parse.urlsplit(self.path)
        rest = u.path[len(self.LEASES):].split("/")
        body = None
        if method in ("POST", "PUT"):
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n)
        with fx.lock:
            fx.requests.append({"path": u.path, "query": {}, "accept": self.headers.get("Accept", ""),
                                "time": time.monotonic(), "method": method,
                                "auth": self.headers.get("Authorization", ""), "watch": False})
        if self._client_cn() is None and not self._authorized():
            return
        tok = self.headers.get("Authorization", "")[7:]
        if tok in fx.lease_forbidden:
            self._send_json(403, status(403, "Forbidden", 'leases.coordination.k8s.io is forbidden: User '
                                        '"system:serviceaccount:tapio:tapio" cannot %s resource "leases" '
                                        'in API group "coordination.k8s.io"' % method.lower()))
            return
        if tok in fx.lease_hung:
            with fx.lock:
                fx.lease_hangs.append((time.monotonic(), method, tok))
            while tok in fx.lease_hung and not fx.stopping:
                time.sleep(0.05)
            self.close_connection = True
            return
        if len(rest) < 2 or rest[1] != "leases" or len(rest) > 3:
            self._send_json(404, status(404, "NotFound", "the server could not find the requested resource"))
            return
        ns, name = rest[0], (rest[2] if len(rest) == 3 else None)
        if method in ("POST", "PUT"):
            try:
                body = json.loads(raw)
                md = body["metadata"]
            except (ValueError, KeyError, TypeError):
                self._send_json(400, status(400, "BadRequest", "not a Lease"))
                return
        with fx.lock:
            if method == "GET":
                obj = fx.leases.get((ns, name))
                if obj is None:
                    self._send_json(404, status(404, "NotFound", 'leases "%s" not found' % name))
                else:
                    self._send_json(200, obj)
                return
            if method == "POST":
                name = md.get("name")
                if name is None or name == "" or name != md.get("name"):
                    self._send_json(400, status(400, "BadRequest", "no name"))
                    return
                if (ns, name) in fx.leases:
                    fx.lease_conflicts += 1
                    self._send_json(409, status(409, "AlreadyExists", 'leases "%s" already exists' % name))
                    return
                code = 201
            else:
                cur = fx.leases.get((ns, name))
                if cur is None:
                    self._send_json(404, status(404, "NotFound", 'leases "%s" not found' % name))
                    return
                if md.get("resourceVersion") != cur["metadata"]["resourceVersion"]:
                    fx.lease_conflicts += 1
                    self._send_json(409, status(
                        409, "Conflict", 'Operation cannot be fulfilled on leases "%s": the object has '
                        'been modified; please apply your changes to the latest version and try again' % name))
                    return
                code = 200
            fx.lease_rv += 1
            obj = {"kind": "Lease", "apiVersion": "coordination.k8s.io/v1",
                   "metadata": {"name": name, "namespace": ns, "resourceVersion": str(fx.lease_rv),
                                "uid": fx.leases.get((ns, name), {}).get("metadata", {}).get(
                                    "uid", str(uuid.uuid4()))},
                   "spec": body.get("spec") or {}}
            if md.get("annotations"):
                obj["metadata"]["annotations"] = dict(md["annotations"])
            fx.leases[(ns, name)] = obj
            fx.lease_log.append((time.monotonic(), method, ns, name, obj["spec"].get("holderIdentity", ""),
                                 copy.deepcopy(obj)))
            hang = method == "PUT" and tok in fx.lease_apply_then_hang
            if hang:
                fx.lease_apply_then_hang.discard(tok)
                fx.lease_hangs.append((time.monotonic(), "PUT applied", tok))
        if hang:
            # applied, never answered: the client gives up on the request
            deadline = time.monotonic() + 30
            while not fx.stopping and time.monotonic() < deadline:
                time.sleep(0.05)
            self.close_connection = True
            return
        self._send_json(code, obj)

    def do_POST(self):
        if self.path.startswith(self.LEASES):
            return self._lease("POST")
        self._send_json(405, status(405, "MethodNotAllowed", "not here"))

    def do_PUT(self):
        if self.path.startswith(self.LEASES):
            return self._lease("PUT")
        self._send_json(405, status(405, "MethodNotAllowed", "not here"))

    def do_GET(self):
        fx = self.server.fixture
        if self.path.startswith(self.LEASES):
            return self._lease("GET")
        u = urllib.parse.urlsplit(self.path)
        q = {k: v[-1] for k, v in urllib.parse.parse_qs(u.query, keep_blank_values=True).items()}
        res = None
        for r, (prefix, _, _) in KINDS.items():
            if u.path == prefix + "/" + r:
                res = r
        with fx.lock:
            fx.requests.append({"path": u.path, "query": q, "accept": self.headers.get("Accept", ""),
                                "time": time.monotonic(),
                                "auth": self.headers.get("Authorization", ""),
                                "watch": q.get("watch") in ("1", "true")})
        client_cn = self._client_cn()
        if client_cn is None and not self._authorized():
            return
        if res is None and self._get_one(u.path):
            return
        if res is None:
            self._send_json(404, status(404, "NotFound", "the server could not find the requested resource"))
            return
        accept = self.headers.get("Accept", "")
        as_partial = "as=PartialObjectMetadata" in accept and not fx.ignore_partial
        if q.get("watch") in ("1", "true"):
            self._watch(res, q, as_partial)
        else:
            self._list(res, q, as_partial)

    # ---- GET of one object: PREFIX/namespaces/NS/RES/NAME ----

    def _get_one(self, path):
        fx = self.server.fixture
        for r, (prefix, _, _) in KINDS.items():
            head = prefix + "/namespaces/"
            if not path.startswith(head):
                continue
            parts = path[len(head):].split("/")
            if len(parts) != 3 or parts[1] != r:
                continue
            ns, name = urllib.parse.unquote(parts[0]), urllib.parse.unquote(parts[2])
            with fx.store.cv:
                found = [o for o in fx.store.objects[r].values()
                         if o["metadata"]["name"] == name and o["metadata"].get("namespace") == ns]
                obj = copy.deepcopy(found[0]) if found else None
            if obj is None:
                self._send_json(404, status(404, "NotFound", f'{r} "{name}" not found'))
            else:
                self._send_json(200, obj)
            return True
        return False

    # ---- LIST ----

    def _selected(self, res, obj, q):
        sel = q.get("fieldSelector", "")
        if sel and res == "pods":
            k, _, v = sel.partition("=")
            if k == "spec.nodeName":
                return obj.get("spec", {}).get("nodeName") == v
        return True

    def _list(self, res, q, as_partial):
        fx = self.server.fixture
        st = fx.store
        limit = int(q.get("limit") or 0)
        cont = q.get("continue")
        if cont:
            try:
                tok = json.loads(base64.urlsafe_b64decode(cont.encode() + b"=="))
                snap = fx.snapshots[tok["id"]]
                start = tok["start"]
            except (ValueError, KeyError):
                self._send_json(400, status(400, "BadRequest", "invalid continue token"))
                return
            rv, items = snap
            if int(rv) < st.compacted and fx.expire_continue:
                self._send_json(410, status(410, "Expired",
                                            "The provided continue parameter is too old to display a "
                                            "consistent list result."))
                return
        else:
            with st.cv:
                rv = str(st.rv)
                items = [copy.deepcopy(o) for o in sorted(st.objects[res].values(),
                                                          key=lambda o: o["metadata"]["name"])
                         if self._selected(res, o, q)]
            start = 0
        if fx.page_cap:
            limit = min(limit, fx.page_cap) if limit else fx.page_cap
        page = items[start:start + limit] if limit else items[start:]
        nxt = start + len(page)
        md = {"resourceVersion": rv}
        if nxt < len(items):
            with fx.lock:
                fx.snap_id += 1
                fx.snapshots[fx.snap_id] = (rv, items)
                sid = fx.snap_id
            md["continue"] = base64.urlsafe_b64encode(
                json.dumps({"id": sid, "start": nxt, "rv": rv}).encode()).decode().rstrip("=")
            md["remainingItemCount"] = len(items) - nxt
        out = []
        for o in page:
            if as_partial:
                out.append(partial(o))
            else:
                o = dict(o)
                o.pop("kind", None)  # list items carry no kind/apiVersion
                o.pop("apiVersion", None)
                out.append(o)
        kind, api = KINDS[res][1] + "List", KINDS[res][2]
        if as_partial:
            kind, api = "PartialObjectMetadataList", "meta.k8s.io/v1"
        with fx.lock:
            fx.lists.append((res, rv, bool(cont)))
        self._send_json(200, {"kind": kind, "apiVersion": api, "metadata": md, "items": out})

    # ---- WATCH ----

    def _watch(self, res, q, as_partial):
        fx = self.server.fixture
        st = fx.store
        faults = fx.take_faults(res, only=STREAM_FAULTS)
        if "http_410" in faults:
            self._send_json(410, status(410, "Gone", "too old resource version"))
            return
        if "http_500" in faults:
            self._send_json(500, status(500, "InternalError", "etcdserver: request timed out"))
            return
        try:
            since = int(q.get("resourceVersion") or st.rv)
        except ValueError:
            self._send_json(400, status(400, "BadRequest", "bad resourceVersion"))
            return
        timeout = min(int(q.get("timeoutSeconds") or 1800), fx.max_watch_seconds)
        bookmarks = q.get("allowWatchBookmarks") == "true"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        with fx.lock:
            fx.watches.append((res, since))
        if "garbage_stream" in faults:
            for _ in range(12):
                self._chunk("<html><body><h1>502 Bad Gateway</h1></body></html>\n")
            self._end_chunks()
            return
        if "inband_500" in faults:
            self._chunk(json.dumps({"type": "ERROR", "object": status(
                500, "InternalError", "etcdserver: leader changed")}) + "\n")
            self._end_chunks()
            return
        if "inband_400" in faults:
            self._chunk(json.dumps({"type": "ERROR", "object": status(
                400, "BadRequest", "invalid resource version: %d" % since)}) + "\n")
            self._end_chunks()
            return
        if "inband_410" in faults or since < st.compacted:
            self._chunk(json.dumps({"type": "ERROR", "object": status(
                410, "Expired", "too old resource version: %d (%d)" % (since, st.compacted))}) + "\n")
            self._end_chunks()
            return
        close_after = faults.get("close_after")
        deadline = time.time() + timeout
        last_bm = time.time()
        sent = 0
        pos = since
        gen = fx.close_gen
        try:
            while True:
                with st.cv:
                    evs = [h for h in st.history if h[0] > pos and h[1] == res]
                    if not evs:
                        st.cv.wait(0.1)
                        evs = [h for h in st.history if h[0] > pos and h[1] == res]
                    cur = st.rv
                if fx.close_gen != gen or fx.stopping:
                    break
                if res in fx.paused:
                    time.sleep(0.05)
                    continue
                if time.time() >= deadline:
                    break
                if not evs and bookmarks and time.time() - last_bm >= fx.bookmark_every and cur > pos:
                    obj = {"kind": KINDS[res][1], "apiVersion": KINDS[res][2],
                           "metadata": {"resourceVersion": str(cur)}}
                    self._chunk(json.dumps({"type": "BOOKMARK", "object": obj}) + "\n")
                    with fx.lock:
                        fx.bookmarks_sent += 1
                    pos = cur
                    last_bm = time.time()
                    continue
                for rv, _, typ, obj in evs:
                    pos = rv
                    if not self._selected(res, obj, q):
                        continue
                    o = partial(obj) if as_partial else obj
                    line = json.dumps({"type": typ, "object": o}) + "\n"
                    extra = fx.take_faults(res, only=EVENT_FAULTS)
                    if "garbage_line" in extra:
                        self._chunk("{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"cut\n")
                        with fx.lock:
                            fx.garbage_sent += 1
                    if "hang_up" in extra:
                        half = len(line) // 2
                        self._chunk(line[:half])
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    if "split" in extra:
                        half = len(line) // 2
                        self._chunk(line[:half])
                        time.sleep(0.3)
                        self._chunk(line[half:])
                        with fx.lock:
                            fx.splits_sent += 1
                    else:
                        self._chunk(line)
                    sent += 1
                    if close_after is not None and sent >= close_after:
                        raise StopIteration
        except StopIteration:
            pass
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            return
        try:
            self._end_chunks()
        except OSError:
            pass


class Fixture:
    """The server. Use as a context manager or call start()/stop()."""

    def __init__(self, certdir, tls=True, tokens=("tok-1",), client_certs=False):
        self.store = Store()
        self.tokens = set(tokens)
        self.lock = threading.Lock()
        self.requests = []
        self.lists = []
        self.watches = []
        self.faults = {}
        self.snapshots = {}
        self.snap_id = 0
        self.unauthorized = 0
        self.bookmarks_sent = 0
        self.garbage_sent = 0
        self.splits_sent = 0
        self.ignore_partial = False
        self.client_certs = client_certs
        self.client_cns = []  # the verified client certificate CN of each request
        self.page_cap = 0  # > 0: pages hold at most this many items, whatever the limit
        self.paused = set()  # resources whose watch streams deliver nothing for now
        self.expire_continue = True
        self.bookmark_every = 1.0
        self.max_watch_seconds = 3600
        self.close_gen = 0
        self.stopping = False
        self.leases = {}  # (namespace, name) -> Lease
        self.lease_rv = 0
        self.lease_log = []  # (monotonic time, method, namespace, name, holder, object) per write
        self.lease_conflicts = 0
        self.partitioned = set()  # tokens whose new requests get 503
        self.partition_refused = 0
        self.lease_forbidden = set()  # tokens that get 403 on Leases
        self.lease_hung = set()  # tokens whose Lease requests are never answered
        self.lease_hangs = []  # (monotonic time, method, token) per hung request
        # tokens whose next PUT is applied and then left unanswered (once)
        self.lease_apply_then_hang = set()
        self.certdir = certdir
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.fixture = self
        self.ca = None
        if tls:
            self.ca, crt, key = make_pki(certdir)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(crt, key)
            if client_certs:  # ask for a client certificate; a verified one authenticates
                ctx.verify_mode = ssl.CERT_OPTIONAL
                ctx.load_verify_locations(self.ca)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.url = ("https" if tls else "http") + "://127.0.0.1:%d" % self.port
        self.thread = None

    def start(self):
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                       daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.stopping = True
        with self.store.cv:
            self.store.cv.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- scripting ----

    def fault(self, res, kind, **args):
        with self.lock:
            self.faults.setdefault(res, []).append((kind, args))

    def take_faults(self, res, only):
        """Pops the queued faults for res of the kinds in only, one of each.
        Returns {kind: arg}."""
        out = {}
        with self.lock:
            q = self.faults.get(res, [])
            keep = []
            for kind, args in q:
                if kind in only and kind not in out:
                    out[kind] = args.get("n", True)
                else:
                    keep.append((kind, args))
            self.faults[res] = keep
        return out

    def close_watches(self):
        """Ends every open watch stream cleanly (as an apiserver restart would)."""
        self.close_gen += 1
        with self.store.cv:
            self.store.cv.notify_all()

    def rotate_token(self, new):
        self.tokens = {new}
        self.close_watches()

    def watch_requests(self, res):
        with self.lock:
            return [r for r in self.requests if r["path"].endswith("/" + res) and r["watch"]]

    def list_requests(self, res):
        with self.lock:
            return [r for r in self.requests if r["path"].endswith("/" + res) and not r["watch"]]

    def kubeconfig(self, path, token=None, token_file=None, ca=None, insecure=False, inline=False,
                   client_cert=None, client_key=None):
        """Writes a kubeconfig for this server (YAML, written by hand here:
        only tapio parses it). inline: certificates as base64 *-data fields."""
        def b64(p):
            with open(p, "rb") as f:
                return base64.b64encode(f.read()).decode()
        lines = ["apiVersion: v1", "kind: Config", "current-context: fixture", "clusters:",
                 "- name: fixture-cluster", "  cluster:", "    server: " + self.url]
        if ca or self.ca:
            if inline:
                lines.append("    certificate-authority-data: " + b64(ca or self.ca))
            else:
                lines.append("    certificate-authority: " + (ca or self.ca))
        if insecure:
            lines.append("    insecure-skip-tls-verify: true")
        lines += ["contexts:", "- name: other", "  context: {cluster: nowhere, user: nobody}",
                  "- name: fixture", "  context:", "    cluster: fixture-cluster", "    user: fixture-user",
                  "users:", "- name: fixture-user", "  user:"]
        if token:
            lines.append("    token: " + token)
        if token_file:
            lines.append("    tokenFile: " + token_file)
        if client_cert and inline:
            lines.append("    client-certificate-data: " + b64(client_cert))
            lines.append("    client-key-data: " + b64(client_key))
        elif client_cert:
            lines.append("    client-certificate: " + client_cert)
            lines.append("    client-key: " + client_key)
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path
