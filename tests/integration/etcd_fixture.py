"""A real etcd (Debian's etcd-server, /usr/bin/etcd) for the etcd collector's
tests: started on free loopback ports with a temporary data dir, optionally
with TLS and client-certificate auth (certificates made with the openssl CLI
at test time). Keys are written through etcd's own JSON gateway (/v3/kv/*),
which returns the revision of each write, so tests can assert revisions."""
import base64
import json
import os
import shutil
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request

from tapiotest import free_port

ETCD = shutil.which("etcd") or "/usr/bin/etcd"


def b64(b):
    if isinstance(b, str):
        b = b.encode()
    return base64.b64encode(b).decode()


def make_certs(d):
    """A CA, a server certificate for 127.0.0.1 and a client certificate,
    in the kubeadm file names. Returns a dict of paths."""
    def run(*args):
        subprocess.run(["openssl"] + list(args), check=True, cwd=d,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "1", "-subj", "/CN=etcd-ca")
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n")
    with open(os.path.join(d, "client.ext"), "w") as f:
        f.write("extendedKeyUsage=clientAuth\n")
    for name, cn, ext in (("server", "etcd-server", "server.ext"),
                          ("apiserver-etcd-client", "kube-apiserver-etcd-client", "client.ext")):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out", name + ".csr",
            "-subj", "/CN=" + cn)
        run("x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", name + ".crt", "-days", "1", "-extfile", ext)
    return {k: os.path.join(d, v) for k, v in (
        ("ca", "ca.crt"), ("server_cert", "server.crt"), ("server_key", "server.key"),
        ("client_cert", "apiserver-etcd-client.crt"), ("client_key", "apiserver-etcd-client.key"))}


class Etcd:
    def __init__(self, workdir, tls=None, progress_notify="1s"):
        self.dir = workdir
        self.progress_notify = progress_notify  # etcd's default is 10m
        self.data = os.path.join(workdir, "etcd-data")
        self.port = free_port()
        self.peer = free_port()
        self.tls = tls
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.proc = None
        self.log = None
        self.ctx = None
        if tls:
            self.ctx = ssl.create_default_context(cafile=tls["ca"])
            self.ctx.load_cert_chain(tls["client_cert"], tls["client_key"])

    def start(self, timeout=20.0):
        args = [ETCD, "--name", "default", "--data-dir", self.data,
                "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
                "--listen-peer-urls", f"http://127.0.0.1:{self.peer}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer}",
                "--initial-cluster", f"default=http://127.0.0.1:{self.peer}",
                "--experimental-watch-progress-notify-interval", self.progress_notify]
        if self.tls:
            args += ["--cert-file", self.tls["server_cert"], "--key-file", self.tls["server_key"],
                     "--client-cert-auth", "--trusted-ca-file", self.tls["ca"]]
        self.log = open(os.path.join(self.dir, "etcd.log"), "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("etcd exited: " + self.log_tail())
            try:
                self.revision()
                return self
            except (OSError, urllib.error.URLError, ValueError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("etcd did not come up: " + self.log_tail())

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self.log:
            self.log.close()
            self.log = None

    def restart(self):
        self.stop()
        return self.start()

    def log_tail(self):
        try:
            with open(os.path.join(self.dir, "etcd.log"), "rb") as f:
                return f.read()[-2000:].decode(errors="replace")
        except OSError:
            return ""

    def call(self, path, body):
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=10, context=self.ctx) as r:
            return json.loads(r.read())

    def revision(self):
        return int(self.call("/v3/kv/range", {"key": b64("\0"), "limit": 1})["header"]["revision"])

    def put(self, key, value):
        """Writes key=value (str or bytes); returns the revision of the write."""
        return int(self.call("/v3/kv/put", {"key": b64(key), "value": b64(value)})["header"]["revision"])

    def delete(self, key):
        r = self.call("/v3/kv/deleterange", {"key": b64(key)})
        return int(r["header"]["revision"]), int(r.get("deleted", 0))

    def txn_put(self, pairs):
        """Puts several keys in one transaction (one revision); returns it."""
        ops = [{"request_put": {"key": b64(k), "value": b64(v)}} for k, v in pairs]
        return int(self.call("/v3/kv/txn", {"success": ops})["header"]["revision"])

    def compact(self, rev):
        self.call("/v3/kv/compaction", {"revision": rev, "physical": True})
