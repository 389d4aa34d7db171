"""`tapio trace --pod NAME -N NS` end to end (needs root): the pod is read
from the fixture API server (k8s_fixture.py) through a kubeconfig, its uid
found in a kubelet-shaped cgroup2 tree (kernel_fixture.make_pod_cgroup), and
the kernel filters on that subtree: an exec inside the pod's container cgroup
is traced with its pod and container, one outside is not. The errors: a pod
that does not exist, an API server that cannot be reached, a pod with no
cgroup on this node: one line each and exit 2."""
import json
import os
import subprocess
import time
import unittest

import k8s_fixture
import tapiotest
from kernel_fixture import cgroup2_root, make_pod_cgroup


class TracePod(unittest.TestCase):
    def setUp(self):
        tapiotest.need_root(self)
        tapiotest.need_cmd(self, "openssl")
        if not os.path.exists(tapiotest.TAPIO):
            tapiotest.skip_or_fail(self, "build/tapio is not built (run make)")
        self.root = cgroup2_root()
        self.assertIsNotNone(self.root, "no cgroup2 mount")
        self.dir = tapiotest.tmpdir(self, "tapio-tracepod-")
        self.fx = k8s_fixture.Fixture(self.dir).start()
        self.addCleanup(self.fx.stop)
        self.kc = self.fx.kubeconfig(os.path.join(self.dir, "kubeconfig"), token="tok-1")

    def pod(self, name, ns, cid):
        return self.fx.store.create(
            "pods", name, namespace=ns,
            spec={"nodeName": "node-a", "containers": [{"name": "app"}]},
            status={"containerStatuses": [
                {"name": "app", "containerID": "containerd://" + cid,
                 "image": "registry.example/app:3", "imageID": "registry.example/app@sha256:"
                 + "ef" * 32}]})

    def exec_in(self, path, marker):
        subprocess.run(["/bin/sh", "-c", 'echo $$ > "%s/cgroup.procs" && exec /bin/echo %s'
                        % (path, marker)], stdout=subprocess.DEVNULL, check=True)

    def trace(self, *args, timeout=30):
        return subprocess.run([tapiotest.TAPIO, "trace", *args], capture_output=True, text=True,
                              timeout=timeout)

    def run_traced(self, args, path, inside, outside):
        p = subprocess.Popen([tapiotest.TAPIO, "trace", *args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.time() + 20
            line = ""
            while time.time() < deadline and "tracing" not in line:
                line = p.stderr.readline()
                if not line and p.poll() is not None:
                    break
            self.assertIn("tracing", line, p.stderr.read() if p.poll() is not None else line)
            self.assertIn("cgroup " + self.root, line)
            subprocess.run(["/bin/echo", outside], stdout=subprocess.DEVNULL, check=True)
            self.exec_in(path, inside)
            out, err = p.communicate(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, 0, err)
        return out, err

    def test_pod_is_traced_with_its_container_and_nothing_else(self):
        cid = "%064x" % (0xACE0 + os.getpid())
        pod = self.pod("api-7", "shop", cid)
        uid = pod["metadata"]["uid"]
        path = make_pod_cgroup(self, self.root, "burstable", uid, cid)
        inside = "tapio-tracepod-in-%d" % os.getpid()
        outside = "tapio-tracepod-out-%d" % os.getpid()
        out, err = self.run_traced(["--pod", "api-7", "-N", "shop", "--kubeconfig", self.kc,
                                    "-e", "process.exec", "-o", "json", "-d", "4"],
                                   path, inside, outside)
        evs = [json.loads(l) for l in out.splitlines() if l.strip()]
        mine = [e for e in evs if inside in e["data"].get("args", [])]
        self.assertEqual(len(mine), 1, out)
        meta = mine[0]["meta"]
        self.assertEqual(meta["pod_uid"], uid)
        self.assertEqual(meta["pod_name"], "api-7")
        self.assertEqual(meta["pod_namespace"], "shop")
        self.assertEqual(meta["container_id"], cid)
        self.assertEqual(meta["container_name"], "app")
        self.assertEqual(meta["image"], "registry.example/app:3")
        self.assertFalse([e for e in evs if outside in e["data"].get("args", [])],
                         "a host exec got through the pod filter")
        for e in evs:
            self.assertEqual(e["meta"].get("pod_uid"), uid, e)

        # text: POD and CONTAINER columns
        inside2 = inside + "-text"
        out, err = self.run_traced(["--pod", "api-7", "--namespace", "shop", "--kubeconfig",
                                    self.kc, "-e", "process.exec", "-d", "4"],
                                   path, inside2, outside + "-text")
        lines = out.splitlines()
        self.assertTrue(lines[0].split()[:6] == ["TIME", "TYPE", "PID", "COMM", "POD",
                                                  "CONTAINER"], lines[0])
        row = [l for l in lines if inside2 in l]
        self.assertEqual(len(row), 1, out)
        cols = row[0].split()
        self.assertEqual(cols[1], "process.exec")
        self.assertEqual(cols[3], "echo")
        self.assertEqual(cols[4], "shop/api-7")
        self.assertEqual(cols[5], "app")
        self.assertNotIn(outside + "-text", out)

    def test_pod_uid_without_the_api(self):
        cid = "%064x" % (0xB0B0 + os.getpid())
        uid = "5a1d9f3c-1111-4222-8333-%012x" % os.getpid()
        path = make_pod_cgroup(self, self.root, "besteffort", uid, cid)
        inside = "tapio-tracepod-uid-%d" % os.getpid()
        out, err = self.run_traced(["--pod-uid", uid, "-e", "process.exec", "-o", "json",
                                    "-d", "4"], path, inside, inside + "-out")
        evs = [json.loads(l) for l in out.splitlines() if l.strip()]
        self.assertEqual(len([e for e in evs if inside in e["data"].get("args", [])]), 1, out)
        self.assertFalse([e for e in evs if inside + "-out" in e["data"].get("args", [])])

    def err_line(self, r):
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertEqual(r.stdout, "")
        return lines[0]

    def test_pod_that_does_not_exist(self):
        line = self.err_line(self.trace("--pod", "nope-0", "-N", "shop", "--kubeconfig", self.kc))
        self.assertIn("pod shop/nope-0 not found", line)

    def test_api_that_cannot_be_reached(self):
        kc = os.path.join(self.dir, "kc-down")
        with open(self.kc) as f:
            text = f.read()
        port = tapiotest.free_port()
        with open(kc, "w") as f:
            f.write(text.replace(self.fx.url.rsplit(":", 1)[1], str(port)))
        line = self.err_line(self.trace("--pod", "api-7", "--kubeconfig", kc, timeout=60))
        self.assertIn("cannot reach the API server", line)
        self.assertIn(str(port), line)

    def test_no_kubeconfig_at_all(self):
        env = {k: v for k, v in os.environ.items()
               if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
        env["HOME"] = self.dir
        r = subprocess.run([tapiotest.TAPIO, "trace", "--pod", "x"], capture_output=True,
                           text=True, timeout=30, env=env)
        self.assertIn("no cluster", self.err_line(r))

    def test_pod_not_on_this_node(self):
        self.pod("elsewhere-1", "shop", "%064x" % 1)
        line = self.err_line(self.trace("--pod", "elsewhere-1", "-N", "shop", "--kubeconfig",
                                        self.kc))
        self.assertIn("has no cgroup", line)

    def test_bad_flags(self):
        self.assertEqual(self.trace("--pod", "a", "--pod-uid", "x" * 36).returncode, 2)
        self.assertEqual(self.trace("-N", "shop").returncode, 2)
        self.assertEqual(self.trace("--pod-uid", "not-a-uid").returncode, 2)


if __name__ == "__main__":
    unittest.main()
