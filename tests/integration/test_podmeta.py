"""Pod metadata on kernel events, end to end (needs root).

`tapio agent --collectors kernel,k8s` against the fixture API server
(k8s_fixture.py): a pod is created in the fixture, a cgroup2 directory with
the kubelet's shape for that pod's uid is made, and a process moved into it
execs a marker. The first exec event of the cgroup carries its cgroup_id and
pod_meta=pending (the cgroup is resolved off the ring buffer thread); the
next ones must carry container_id and pod_uid (from the cgroup path) and
pod_name and pod_namespace (from the k8s stream); after the pod is deleted
in the API, a new exec keeps the ids but loses the name.
"""
import json
import os
import subprocess
import time
import unittest

import k8s_fixture
import tapiotest
from kernel_fixture import cgroup2_root, make_pod_cgroup
from tapiotest import Tapio


def in_container():
    with open("/proc/self/cgroup") as f:
        text = f.read()
    return any(w in text for w in ("docker", "kubepods", "crio", "containerd", "libpod", "lxc"))


class PodNames(unittest.TestCase):
    def setUp(self):
        tapiotest.need_root(self)
        tapiotest.need_cmd(self, "openssl")
        if not os.path.exists(tapiotest.TAPIO):
            tapiotest.skip_or_fail(self, "build/tapio is not built (run make)")
        self.root = cgroup2_root()
        self.assertIsNotNone(self.root, "no cgroup2 mount")
        self.dir = tapiotest.tmpdir(self, "tapio-podmeta-")
        self.fx = k8s_fixture.Fixture(self.dir).start()
        self.addCleanup(self.fx.stop)
        self.kc = self.fx.kubeconfig(os.path.join(self.dir, "kubeconfig"), token="tok-1")

    def make_pod_cgroup(self, uid, cid):
        return make_pod_cgroup(self, self.root, "burstable", uid, cid)

    def exec_in(self, path, marker):
        # The shell moves itself into the cgroup, then execs the marker.
        subprocess.run(["/bin/sh", "-c", 'echo $$ > "%s/cgroup.procs" && exec /bin/echo %s'
                        % (path, marker)], stdout=subprocess.DEVNULL, check=True)

    def exec_until_resolved(self, t, path, marker, tries=50):
        """Execs marker-N in the cgroup until an event is no longer pending
        (the resolver answers in microseconds; the bound is for a loaded
        machine). Returns that event."""
        for i in range(tries):
            self.exec_in(path, "%s-%d" % (marker, i))
            ev = self.wait_exec(t, "%s-%d" % (marker, i))
            if ev["meta"].get("pod_meta") != "pending":
                return ev
            time.sleep(0.1)
        self.fail("still pending after %d execs: %s" % (tries, ev["meta"]))

    def wait_exec(self, t, marker):
        ev = t.wait_for(lambda e: e.get("type") == "process.exec"
                        and e["data"].get("filename") == "/bin/echo"
                        and marker in e["data"].get("args", []), 15)
        self.assertIsNotNone(ev, "the exec of %s did not arrive; stderr:\n%s"
                             % (marker, "\n".join(t.stderr_lines[-20:])))
        return ev

    def test_exec_in_a_pod_gets_its_name_and_namespace(self):
        cid = "%064x" % (0xBADC0DE + os.getpid())
        other = "%064x" % (0xF00D + os.getpid())
        image_id = "registry.example/shop/web@sha256:" + "ab" * 32
        pod = self.fx.store.create(
            "pods", "web-0", namespace="shop",
            spec={"nodeName": "node-a", "containers": [{"name": "web"}, {"name": "side"}]},
            status={"containerStatuses": [
                {"name": "side", "containerID": "containerd://" + other,
                 "image": "registry.example/side:2", "imageID": "registry.example/side@sha256:"
                 + "cd" * 32},
                {"name": "web", "containerID": "containerd://" + cid,
                 "image": "registry.example/shop/web:1.4", "imageID": image_id}],
                "initContainerStatuses": [{"name": "init", "image": "busybox"}]})
        uid = pod["metadata"]["uid"]

        def labels(obj):
            obj["metadata"]["labels"].update({"tier": "front", "team": "payments"})
        self.fx.store.update("pods", uid, labels)
        path = self.make_pod_cgroup(uid, cid)
        state = tapiotest.tmpdir(self)
        with Tapio("agent", "--metrics-addr=", "--collectors", "kernel,k8s",
                   "--k8s-kubeconfig", self.kc, "--k8s-resources", "pods",
                   "--pod-labels", "tier,app,absent",
                   "--events", "process.exec", "--state-dir", state, "--output", "stdout") as t:
            # the pod has passed through the pipeline (and so the pod cache)
            added = t.wait_for(lambda e: e.get("source") == "k8s" and e["meta"].get("uid") == uid
                               and e["meta"].get("type") in ("ADDED", "MODIFIED"), 15)
            self.assertIsNotNone(added, "\n".join(t.stderr_lines[-20:]))

            # The cgroup's first event: its id, pod_meta=pending (the path is
            # resolved on the resolver thread, not on the ring buffer's).
            marker = "tapio-podname-%d" % os.getpid()
            self.exec_in(path, marker + "-first")
            meta = self.wait_exec(t, marker + "-first")["meta"]
            self.assertEqual(meta.get("pod_meta"), "pending", meta)
            self.assertEqual(int(meta["cgroup_id"]), os.stat(path).st_ino)
            self.assertNotIn("pod_uid", meta)
            # the next ones carry everything, once the resolver has answered
            ev = self.exec_until_resolved(t, path, marker)
            meta = ev["meta"]
            self.assertNotIn("pod_meta", meta)
            self.assertEqual(meta.get("container_id"), cid, meta)
            self.assertEqual(meta.get("pod_uid"), uid, meta)
            self.assertEqual(meta.get("pod_name"), "web-0", meta)
            self.assertEqual(meta.get("pod_namespace"), "shop", meta)
            self.assertEqual(meta.get("container_name"), "web", meta)
            self.assertEqual(meta.get("image"), "registry.example/shop/web:1.4", meta)
            self.assertEqual(meta.get("image_id"), image_id, meta)
            # only the labels asked for
            self.assertEqual(meta.get("pod_label.tier"), "front", meta)
            self.assertEqual(meta.get("pod_label.app"), "web-0", meta)
            self.assertNotIn("pod_label.team", meta)
            self.assertNotIn("pod_label.absent", meta)
            self.assertEqual(int(meta["cgroup_id"]), os.stat(path).st_ino)

            # the pod goes away in the API: the ids stay, the name goes
            self.fx.store.delete("pods", uid)
            gone = t.wait_for(lambda e: e.get("source") == "k8s" and e["meta"].get("uid") == uid
                              and e["meta"].get("type") == "DELETED", 15)
            self.assertIsNotNone(gone, "\n".join(t.stderr_lines[-20:]))
            marker2 = marker + "-after"
            self.exec_in(path, marker2)
            meta = self.wait_exec(t, marker2)["meta"]
            self.assertEqual(meta.get("container_id"), cid, meta)
            self.assertEqual(meta.get("pod_uid"), uid, meta)
            self.assertNotIn("pod_name", meta)
            self.assertNotIn("pod_namespace", meta)
            self.assertNotIn("container_name", meta)
            self.assertNotIn("image", meta)
            self.assertNotIn("pod_label.tier", meta)

            # a host process gets none of these keys (when the tests
            # themselves do not run in a container)
            if not in_container():
                marker3 = marker + "-host"
                subprocess.run(["/bin/echo", marker3], stdout=subprocess.DEVNULL, check=True)
                meta = self.wait_exec(t, marker3)["meta"]
                for k in ("container_id", "pod_uid", "pod_name", "pod_namespace",
                          "container_name", "image"):
                    self.assertNotIn(k, meta)
        self.assertEqual(t.proc.returncode, 0, "\n".join(t.stderr_lines[-20:]))

    def test_restart_that_resumes_its_cursor_still_names_pods(self):
        pod = self.fx.store.create("pods", "api-1", namespace="shop",
                                   spec={"nodeName": "node-a", "containers": [{"name": "api"}]})
        uid = pod["metadata"]["uid"]
        cid = "%064x" % (0xFEED + os.getpid())
        path = self.make_pod_cgroup(uid, cid)
        state = tapiotest.tmpdir(self)
        args = ("agent", "--metrics-addr=", "--collectors", "kernel,k8s",
                "--k8s-kubeconfig", self.kc, "--k8s-resources", "pods",
                "--events", "process.exec", "--state-dir", state, "--output", "stdout")
        with Tapio(*args) as t:
            added = t.wait_for(lambda e: e.get("source") == "k8s" and e["meta"].get("uid") == uid, 15)
            self.assertIsNotNone(added, "\n".join(t.stderr_lines[-20:]))
        with Tapio(*args) as t:
            self.assertIsNotNone(t.wait_stderr("agent running", 15), t.stderr_lines)
            marker = "tapio-resumed-%d" % os.getpid()
            # The pod cache is filled before the watch; give the LIST a moment.
            ev = None
            for i in range(30):
                self.exec_in(path, "%s-%d" % (marker, i))
                ev = self.wait_exec(t, "%s-%d" % (marker, i))
                if ev["meta"].get("pod_name"):
                    break
            meta = ev["meta"]
            self.assertEqual(meta.get("pod_name"), "api-1", meta)
            self.assertEqual(meta.get("pod_namespace"), "shop", meta)
            # It resumed: the pod was not emitted again.
            self.assertFalse([e for e in t.events if e.get("source") == "k8s"
                              and e["meta"].get("uid") == uid], "the restart relisted")


if __name__ == "__main__":
    unittest.main()
