"""The k8s collector against the fixture API server (tests/integration/k8s_fixture.py).

Runs `tapio agent --collectors k8s` with a kubeconfig (or in-cluster env) that
points at a TLS fixture server made at test time, mutates objects, injects the
faults the real API server shows (410 in-band and as HTTP 410, closed streams,
events split across chunks, malformed lines, garbage, token rotation) and
checks that every object version the server produced arrives exactly once, in
order per object, across all of them and across an agent restart.
"""
import json
import os
import signal
import subprocess
import threading
import time
import unittest

import k8s_fixture
import tapiotest
from tapiotest import Tapio

PASSWORD_B64 = "aHVudGVyMi1zZWNyZXQ="  # "hunter2-secret"


def k8s_events(t):
    return t.matching(lambda e: e.get("source") == "k8s")


def key(e):
    m = e["meta"]
    return (m["resource"], m["uid"], m["type"], m["resource_version"])


class K8sTest(unittest.TestCase):
    def setUp(self):
        tapiotest.need_cmd(self, "openssl")
        if not os.path.exists(tapiotest.TAPIO):
            tapiotest.skip_or_fail(self, "build/tapio is not built (run make)")
        self.dir = tapiotest.tmpdir(self, "tapio-k8s-")
        self.fx = k8s_fixture.Fixture(self.dir).start()
        self.addCleanup(self.fx.stop)
        self.token_file = os.path.join(self.dir, "token")
        self.write_token("tok-1")
        self.kc = self.fx.kubeconfig(os.path.join(self.dir, "kubeconfig"), token_file=self.token_file)
        self.state = os.path.join(self.dir, "state")
        self.unobservable = set()  # versions compacted away before any watch could see them

    def write_token(self, tok):
        tmp = self.token_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(tok + "\n")
        os.rename(tmp, self.token_file)

    def agent(self, *extra, env=None, kubeconfig=None):
        t = Tapio("agent", "--collectors", "k8s", "--k8s-kubeconfig", kubeconfig or self.kc,
                  "--state-dir", self.state, "--output", "stdout", *extra, env=env)
        self.addCleanup(self.no_sanitizer_report, t)  # runs after the stop below
        self.addCleanup(t.stop)
        return t

    def no_sanitizer_report(self, t):
        """With TAPIO_BIN pointing at an ASan/UBSan build, any report fails the test."""
        bad = [l for l in t.stderr_lines if "Sanitizer" in l or "runtime error:" in l]
        self.assertFalse(bad, "\n".join(t.stderr_lines[-40:]))

    def wait_version(self, t, res, uid, rv, typ=None, timeout=15):
        ev = t.wait_for(lambda e: e.get("source") == "k8s" and e["meta"]["resource"] == res
                        and e["meta"]["uid"] == uid and e["meta"]["resource_version"] == rv
                        and (typ is None or e["meta"]["type"] == typ), timeout)
        self.assertIsNotNone(ev, "no %s %s %s@%s; stderr:\n%s" % (typ, res, uid, rv,
                                                                  "\n".join(t.stderr_lines[-20:])))
        return ev

    def wait_produced(self, t, timeout=15):
        """Waits until every version the store produced so far has arrived."""
        for p in list(self.fx.store.produced):
            if p not in self.unobservable:
                self.wait_version(t, p[0], p[1], p[3], p[2], timeout)

    def check_event_fields(self, e):
        m = e["meta"]
        self.assertEqual(e["type"], "k8s.watch")
        self.assertIn(m["type"], ("ADDED", "MODIFIED", "DELETED"))
        self.assertIn(m["origin"], ("list", "watch"))
        d = e["data"]
        self.assertIsInstance(d, dict)
        self.assertEqual(d["metadata"]["uid"], m["uid"])
        self.assertEqual(d["metadata"]["name"], m["name"])
        self.assertEqual(d["metadata"]["resourceVersion"], m["resource_version"])
        if "namespace" in d["metadata"]:
            self.assertEqual(d["metadata"]["namespace"], m["namespace"])
        else:
            self.assertNotIn("namespace", m)

    def test_exactly_once_across_faults_and_restart(self):
        fx, st = self.fx, self.fx.store
        fx.page_cap = 3  # make the LISTs page
        fx.bookmark_every = 0.5
        pods = [st.create("pods", "web-%d" % i, spec={"nodeName": "node-a", "containers": [{"name": "c"}]})
                for i in range(7)]
        node = st.create("nodes", "node-a", spec={"podCIDR": "10.0.0.0/24"})
        svc = st.create("services", "web", spec={"clusterIP": "10.96.0.10"})
        dep = st.create("deployments", "web", spec={"replicas": 2})
        st.create("replicasets", "web-abc", spec={"replicas": 2})
        st.create("events", "web-0.1", reason="Scheduled", message="assigned default/web-0 to node-a")
        st.create("configmaps", "cfg", data={"k": "v"})
        applied = {"kubectl.kubernetes.io/last-applied-configuration":
                   json.dumps({"data": {"password": PASSWORD_B64}}), "team": "db"}
        sec = st.create("secrets", "db", annotations=applied, type="Opaque", data={"password": PASSWORD_B64},
                        stringData={"p": "hunter2-secret"})
        uid = lambda o: o["metadata"]["uid"]

        t = self.agent()
        # 1. The LIST: every object arrives as ADDED, paged (3 items a page).
        self.wait_produced(t)
        for e in k8s_events(t):
            self.check_event_fields(e)
        self.assertGreaterEqual(len([l for l in fx.list_requests("pods") if "continue" in l["query"]]), 2)
        first_list = [e for e in k8s_events(t) if e["meta"]["resource"] == "pods"]
        self.assertTrue(all(e["meta"]["origin"] == "list" and e["meta"]["type"] == "ADDED" for e in first_list))
        # the watch starts from the list's resourceVersion, with bookmarks and a 5-10 min timeout
        deadline = time.time() + 10
        while time.time() < deadline and not fx.watch_requests("pods"):
            time.sleep(0.1)
        w = fx.watch_requests("pods")[0]["query"]
        self.assertEqual(w["allowWatchBookmarks"], "true")
        self.assertTrue(300 <= int(w["timeoutSeconds"]) <= 600, w)
        self.assertEqual(w["resourceVersion"], [l for l in fx.lists if l[0] == "pods"][0][1])

        # 2. Watch events, one split across two chunks, one after a malformed line.
        fx.fault("pods", "split")
        st.update("pods", uid(pods[0]))
        fx.fault("pods", "garbage_line")
        st.update("pods", uid(pods[1]))
        st.update("services", uid(svc))
        st.update("nodes", uid(node))
        self.wait_produced(t)
        self.assertEqual(fx.splits_sent, 1)
        self.assertEqual(fx.garbage_sent, 1)
        # the watch event's object is passed on exactly as the server sent it
        e = self.wait_version(t, "services", uid(svc), st.by_name("services", "web")["metadata"]["resourceVersion"])
        self.assertEqual(e["data"], st.by_name("services", "web"))
        self.assertEqual(e["meta"]["origin"], "watch")

        # 3. A stream that closes (after one event): the rest comes on the next watch.
        fx.fault("pods", "close_after", n=1)
        for p in pods[2:5]:
            st.update("pods", uid(p))
        self.wait_produced(t)

        # 4. A stream cut in the middle of an event: resumed, not repeated.
        fx.fault("pods", "hang_up")
        st.update("pods", uid(pods[5]))
        st.update("pods", uid(pods[6]))
        self.wait_produced(t)

        # 5. ERROR 410 in-band after a gap: the watch is paused, objects change,
        # the history is compacted, the stream ends; the collector relists and
        # emits only what it has not emitted, and a DELETED for what vanished.
        lists_before = len(fx.list_requests("pods"))
        fx.paused.add("pods")
        time.sleep(0.3)
        st.update("pods", uid(pods[0]))
        st.update("pods", uid(pods[3]))
        gone = st.delete("pods", uid(pods[4]))
        new = st.create("pods", "web-new", spec={"nodeName": "node-a"})
        self.unobservable.add(st.produced[-2])
        self.assertEqual(st.produced[-2][1:3], (uid(gone), "DELETED"))
        st.compact()
        fx.paused.discard("pods")
        fx.close_watches()
        for res, u, typ, rv in st.produced:
            if u == uid(gone) and typ == "DELETED":
                continue  # its version was compacted away before anyone saw it
            self.wait_version(t, res, u, rv, typ)
        tomb = t.wait_for(lambda e: e.get("source") == "k8s" and e["meta"]["uid"] == uid(gone)
                          and e["meta"]["type"] == "DELETED", 10)
        self.assertIsNotNone(tomb, "no DELETED for the pod deleted during the gap")
        self.assertEqual(tomb["meta"]["origin"], "list")
        self.assertEqual(tomb["data"]["metadata"]["name"], gone["metadata"]["name"])
        self.assertEqual(tomb["data"]["kind"], "Pod")
        self.assertGreater(len(fx.list_requests("pods")), lists_before)
        relisted = [e for e in k8s_events(t) if e["meta"]["uid"] == uid(new)]
        self.assertEqual([e["meta"]["origin"] for e in relisted], ["list"])
        self.assertEqual(relisted[0]["meta"]["type"], "ADDED")
        mod = [e for e in k8s_events(t) if e["meta"]["uid"] == uid(pods[3])][-1]
        self.assertEqual((mod["meta"]["type"], mod["meta"]["origin"]), ("MODIFIED", "list"))

        # 6. HTTP 410 on the next watch: relist, and nothing is emitted twice.
        lists_before = len(fx.list_requests("deployments"))
        fx.fault("deployments", "http_410")
        fx.close_watches()
        deadline = time.time() + 10
        while time.time() < deadline and len(fx.list_requests("deployments")) == lists_before:
            time.sleep(0.1)
        self.assertGreater(len(fx.list_requests("deployments")), lists_before)
        st.update("deployments", uid(dep))
        self.wait_produced(t)

        # 7. A server that sends garbage gets a reconnect with backoff.
        fx.fault("services", "garbage_stream")
        fx.close_watches()
        self.assertIsNotNone(t.wait_stderr("malformed lines in a row", 10), "\n".join(t.stderr_lines))
        st.update("services", uid(svc))
        self.wait_produced(t)

        # 8. The token rotates: 401, re-read the tokenFile, recover.
        unauth = fx.unauthorized
        self.write_token("tok-2")
        fx.rotate_token("tok-2")
        st.update("pods", uid(pods[1]))
        self.wait_produced(t, timeout=20)
        self.assertGreater(fx.unauthorized, unauth)
        self.assertIsNotNone(t.wait_stderr("HTTP 401", 5))
        last = fx.watch_requests("pods")[-1]
        self.assertEqual(last["auth"], "Bearer tok-2")

        # 9. Secrets: metadata only, asked for with the PartialObjectMetadata
        # Accept header; and stripped when a server ignores it.
        self.assertTrue(all("as=PartialObjectMetadata" in r["accept"] for r in fx.requests
                            if r["path"].endswith(("/secrets", "/configmaps"))))
        fx.ignore_partial = True
        st.update("secrets", uid(sec))  # a watch event with the full object
        self.wait_produced(t)
        fx.paused.add("secrets")
        time.sleep(0.3)
        db3 = st.create("secrets", "db3", annotations=applied, type="Opaque", data={"password": PASSWORD_B64})
        lists_before = len([l for l in fx.lists if l[0] == "secrets"])
        fx.fault("secrets", "http_410")  # and a relist that sends full objects
        fx.close_watches()
        deadline = time.time() + 10
        while time.time() < deadline and len([l for l in fx.lists if l[0] == "secrets"]) == lists_before:
            time.sleep(0.1)
        fx.paused.discard("secrets")
        ev = self.wait_version(t, "secrets", uid(db3), db3["metadata"]["resourceVersion"], "ADDED")
        self.assertEqual(ev["meta"]["origin"], "list")
        self.assertEqual(ev["data"]["metadata"]["annotations"], {"team": "db"})
        st.create("secrets", "db2", type="Opaque", data={"password": PASSWORD_B64})
        self.wait_produced(t)
        fx.ignore_partial = False

        rc = t.stop()
        self.assertEqual(rc, 0, "\n".join(t.stderr_lines[-20:]))
        self.assertFalse([l for l in t.stderr_lines if "Sanitizer" in l or "runtime error" in l])
        summary = t.summary()
        self.assertIsNotNone(summary, "\n".join(t.stderr_lines[-20:]))
        # one malformed line + at least the 8 in a row of the garbage stream
        self.assertGreaterEqual(summary["k8s"]["parse_errors"], 9)
        self.assertGreaterEqual(summary["k8s"]["reconnects"], 5)
        self.assertEqual(summary["k8s"]["dropped"], 0)
        self.assertEqual(summary["k8s"]["events"], len(k8s_events(t)))

        # 10. Restart: changes made while the agent is down arrive, exactly
        # the missed ones, from the saved resourceVersion (no relist).
        missed_from = len(st.produced)
        st.update("pods", uid(pods[2]))
        st.delete("pods", uid(pods[6]))
        st.create("configmaps", "cfg-2", data={"k": "v2"})
        lists_before = len(fx.lists)
        t2 = self.agent()
        for res, u, typ, rv in st.produced[missed_from:]:
            self.assertEqual(self.wait_version(t2, res, u, rv, typ)["meta"]["origin"], "watch")
        time.sleep(1.5)  # anything extra would show up now
        self.assertEqual(t2.stop(), 0)
        # The only LIST is the pods one that fills the pod cache (it emits
        # nothing: the events below are exactly the missed ones).
        relists = fx.lists[lists_before:]
        self.assertTrue(relists, "no pod-cache LIST at the restart")
        self.assertEqual({r for r, _, _ in relists}, {"pods"}, "the restart listed again")
        self.assertEqual(sorted(key(e) for e in k8s_events(t2)),
                         sorted((r, u, ty, rv) for r, u, ty, rv in st.produced[missed_from:]))

        # Exactly once, in order per object, over both runs.
        allev = k8s_events(t) + k8s_events(t2)
        keys = [key(e) for e in allev]
        dups = {k for k in keys if keys.count(k) > 1}
        self.assertFalse(dups, "emitted more than once: %s" % dups)
        produced = set(st.produced)
        for k in keys:
            if k not in produced:
                self.assertEqual(k[1], uid(gone), "emitted a version the server never made: %s" % (k,))
        missing = [p for p in st.produced if p not in set(keys) and not (p[1] == uid(gone) and p[2] == "DELETED")]
        self.assertFalse(missing, "never emitted: %s" % missing)
        by_obj = {}
        for e in allev:
            by_obj.setdefault(e["meta"]["uid"], []).append(int(e["meta"]["resource_version"]))
        for u, rvs in by_obj.items():
            self.assertEqual(rvs, sorted(rvs), "out of order for %s" % u)
        for e in allev:
            self.check_event_fields(e)

        # No secret data ever left, in any form.
        for e in allev:
            if e["meta"]["resource"] in ("secrets", "configmaps"):
                self.assertEqual(e["data"]["kind"], "PartialObjectMetadata", e)
                self.assertEqual(set(e["data"]), {"kind", "apiVersion", "metadata"}, e)
        text = json.dumps(allev)
        self.assertNotIn(PASSWORD_B64, text)
        self.assertNotIn("hunter2", text)
        self.assertNotIn("last-applied-configuration", text)
        self.assertEqual(len([e for e in allev if e["meta"]["resource"] == "secrets"]), 4)

    def test_node_field_selector(self):
        st = self.fx.store
        mine = st.create("pods", "mine", spec={"nodeName": "node-a"})
        st.create("pods", "other", spec={"nodeName": "node-b"})
        t = self.agent("--node-name", "node-a", "--k8s-resources", "pods,services")
        self.wait_version(t, "pods", mine["metadata"]["uid"], mine["metadata"]["resourceVersion"], "ADDED")
        upd = st.update("pods", mine["metadata"]["uid"])
        st.update("pods", st.by_name("pods", "other")["metadata"]["uid"])
        self.wait_version(t, "pods", mine["metadata"]["uid"], upd["metadata"]["resourceVersion"], "MODIFIED")
        time.sleep(1)
        t.stop()
        names = {e["meta"]["name"] for e in k8s_events(t) if e["meta"]["resource"] == "pods"}
        self.assertEqual(names, {"mine"})
        for r in self.fx.requests:
            if r["path"].endswith("/pods"):
                self.assertEqual(r["query"].get("fieldSelector"), "spec.nodeName=node-a", r)
            else:
                self.assertNotIn("fieldSelector", r["query"], r)

    def test_server_errors_back_off(self):
        st, fx = self.fx.store, self.fx
        a = st.create("services", "a")
        t = self.agent("--k8s-resources", "services")
        self.wait_version(t, "services", a["metadata"]["uid"], a["metadata"]["resourceVersion"], "ADDED")
        lists = len(fx.list_requests("services"))
        for fault, needle in (("http_500", "HTTP 500"), ("inband_500", "watch ERROR")):
            n = len(fx.watch_requests("services"))
            fx.fault("services", fault)
            fx.close_watches()
            line = t.wait_stderr(needle, 10)
            self.assertIsNotNone(line, "\n".join(t.stderr_lines))
            self.assertIn(fx.url, line)
            deadline = time.time() + 10
            while time.time() < deadline and len(fx.watch_requests("services")) < n + 2:
                time.sleep(0.05)
            w = fx.watch_requests("services")
            self.assertGreaterEqual(len(w), n + 2)
            gap = w[n + 1]["time"] - w[n]["time"]
            self.assertGreaterEqual(gap, 0.4, "no backoff after %s" % fault)  # 0.8 s with jitter in [0.5, 1]
            self.assertLess(gap, 5)
            self.assertEqual(w[n + 1]["query"]["resourceVersion"], w[n]["query"]["resourceVersion"])
            upd = st.update("services", a["metadata"]["uid"])
            self.wait_version(t, "services", a["metadata"]["uid"], upd["metadata"]["resourceVersion"], "MODIFIED")
        self.assertEqual(len(fx.list_requests("services")), lists, "a 500 is not a reason to relist")
        self.assertEqual(t.stop(), 0)
        self.assertGreaterEqual(t.summary()["k8s"]["errors"], 2)
        self.assertEqual(len(k8s_events(t)), 3)

    def test_inband_400_and_410_relist(self):
        """An in-band ERROR 400 (a resourceVersion the server cannot read) or
        410 ends the watch with a relist, not a retry of the same version; a
        server that keeps refusing is relisted with backoff."""
        st, fx = self.fx.store, self.fx
        a = st.create("services", "a")
        t = self.agent("--k8s-resources", "services")
        self.wait_version(t, "services", a["metadata"]["uid"], a["metadata"]["resourceVersion"], "ADDED")
        for fault, times in (("inband_400", 3), ("inband_410", 1)):
            n_w, n_l = len(fx.watch_requests("services")), len(fx.list_requests("services"))
            for _ in range(times):
                fx.fault("services", fault)
            fx.close_watches()
            deadline = time.time() + 20
            while time.time() < deadline and (len(fx.list_requests("services")) < n_l + times or
                                              len(fx.watch_requests("services")) < n_w + times + 1):
                time.sleep(0.05)
            w = fx.watch_requests("services")[n_w:]
            lst = fx.list_requests("services")[n_l:]
            self.assertEqual(len(lst), times, "%s: lists %s" % (fault, lst))
            self.assertGreaterEqual(len(w), times + 1)
            # Each refused watch is followed by a list before the next watch.
            for i in range(times):
                self.assertLess(w[i]["time"], lst[i]["time"], fault)
                self.assertLess(lst[i]["time"], w[i + 1]["time"], "%s: watched again before relisting" % fault)
                if fault == "inband_400":
                    self.assertGreaterEqual(lst[i]["time"] - w[i]["time"], 0.3, "no backoff before relist %d" % i)
            if fault == "inband_400":
                line = t.wait_stderr("code 400", 5)
                self.assertIsNotNone(line, "\n".join(t.stderr_lines))
                self.assertIn(fx.url, line)
                self.assertIn("relisting", line)
            upd = st.update("services", a["metadata"]["uid"])
            self.wait_version(t, "services", a["metadata"]["uid"], upd["metadata"]["resourceVersion"], "MODIFIED")
        self.assertEqual(t.stop(), 0)
        self.assertGreaterEqual(t.summary()["k8s"]["errors"], 3)
        self.assertEqual([e["meta"]["type"] for e in k8s_events(t)], ["ADDED", "MODIFIED", "MODIFIED"])

    def test_oversize_skipped_and_counted(self):
        st = self.fx.store
        big = st.create("pods", "big-listed", annotations={"blob": "x" * 100000})
        small = st.create("pods", "small")
        t = self.agent("--k8s-resources", "pods", "--max-event-size", "64K")
        self.wait_version(t, "pods", small["metadata"]["uid"], small["metadata"]["resourceVersion"], "ADDED")
        self.fx.fault("pods", "split")  # the big one comes split, too
        st.update("pods", small["metadata"]["uid"], lambda o: o["metadata"].setdefault("annotations", {}).update(blob="y" * 100000))
        after = st.update("pods", small["metadata"]["uid"], lambda o: o["metadata"]["annotations"].pop("blob"))
        self.wait_version(t, "pods", small["metadata"]["uid"], after["metadata"]["resourceVersion"], "MODIFIED")
        self.assertEqual(t.stop(), 0)
        names = [(e["meta"]["name"], e["meta"]["resource_version"]) for e in k8s_events(t)]
        self.assertEqual(names, [("small", small["metadata"]["resourceVersion"]),
                                 ("small", after["metadata"]["resourceVersion"])])
        self.assertEqual(t.summary()["k8s"]["oversize"], 2)
        self.assertEqual(t.summary()["k8s"]["parse_errors"], 0)
        self.assertIsNotNone(big)

    def test_wrong_ca_fails_clearly(self):
        other_ca, _, _ = k8s_fixture.make_pki(self.dir, "other")
        kc = self.fx.kubeconfig(os.path.join(self.dir, "kc-wrong"), token_file=self.token_file,
                                ca=other_ca, insecure=True)
        self.fx.store.create("pods", "p", spec={"nodeName": "node-a"})
        t = self.agent("--k8s-resources", "pods", kubeconfig=kc)
        line = t.wait_stderr("certificate", 10)
        self.assertIsNotNone(line, "\n".join(t.stderr_lines))
        self.assertIn(self.fx.url, line)
        self.assertIsNotNone(t.wait_stderr("insecure-skip-tls-verify is ignored", 2))
        time.sleep(1)
        self.assertEqual(t.stop(), 0)
        self.assertEqual(k8s_events(t), [])
        self.assertEqual(self.fx.requests, [], "a request got through an unverified TLS connection")
        self.assertGreaterEqual(t.summary()["k8s"]["errors"], 1)

        # Only the explicit flag turns verification off.
        t = self.agent("--k8s-resources", "pods", "--k8s-insecure", kubeconfig=kc)
        self.assertIsNotNone(t.wait_for(lambda e: e.get("source") == "k8s", 10), "\n".join(t.stderr_lines))
        t.stop()

    def test_client_certificate(self):
        d = tapiotest.tmpdir(self, "tapio-k8s-mtls-")
        fx = k8s_fixture.Fixture(d, tokens=(), client_certs=True).start()
        self.addCleanup(fx.stop)
        crt, key = k8s_fixture.make_client_cert(d)
        p = fx.store.create("services", "api")
        for inline in (True, False):
            kc = fx.kubeconfig(os.path.join(d, "kc-%s" % inline), inline=inline, client_cert=crt, client_key=key)
            # A lease of its own: the second run starts afresh, not from the first's cursors.
            t = self.agent("--k8s-resources", "services", "--k8s-lease-name", "run-%s" % str(inline).lower(),
                           kubeconfig=kc)
            self.wait_version(t, "services", p["metadata"]["uid"], p["metadata"]["resourceVersion"], "ADDED")
            self.assertEqual(t.stop(), 0)
            self.assertTrue(fx.client_cns and all(cn == "tapio-agent" for cn in fx.client_cns), fx.client_cns)
            self.assertTrue(all(r["auth"] == "" for r in fx.requests))
            self.state = os.path.join(d, "state-2")  # the second run lists again
        # Without the client certificate: 401, reported, no events.
        kc = fx.kubeconfig(os.path.join(d, "kc-none"))
        t = self.agent("--k8s-resources", "services", kubeconfig=kc)
        self.assertIsNotNone(t.wait_stderr("HTTP 401", 10), "\n".join(t.stderr_lines))
        self.assertEqual(t.stop(), 0)
        self.assertEqual(k8s_events(t), [])

    def test_full_queue_loses_nothing(self):
        """A sink that stalls (stdout nobody reads) fills a small queue; the
        collector's events time out in the queue, are counted as dropped, and
        come again from the cursor: in the end every version arrives, once."""
        st = self.fx.store
        pad = "p" * 1500
        for i in range(60):
            st.create("pods", "listed-%03d" % i, annotations={"pad": pad})
        env = dict(os.environ)
        proc = subprocess.Popen([tapiotest.TAPIO, "agent", "--collectors", "k8s", "--k8s-kubeconfig", self.kc,
                                 "--state-dir", self.state, "--output", "stdout", "--k8s-resources", "pods",
                                 "--queue-size", "64K", "--queue-wait-ms", "100"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        out, err = [], []
        reading = threading.Event()

        def read_out():
            reading.wait()
            for line in proc.stdout:
                out.append(json.loads(line))

        def read_err():
            for line in proc.stderr:
                err.append(line.decode(errors="replace").rstrip("\n"))

        threads = [threading.Thread(target=read_out, daemon=True), threading.Thread(target=read_err, daemon=True)]
        for th in threads:
            th.start()
        time.sleep(2)  # stdout (a 64 KiB pipe) and the 64 KiB queue fill up; the LIST is refused
        for i in range(60):
            st.create("pods", "watched-%03d" % i, annotations={"pad": pad})
        time.sleep(2)  # and so are the watch events
        reading.set()
        want = set(st.produced)
        deadline = time.time() + 30
        while time.time() < deadline and not want <= {key(e) for e in list(out)}:
            time.sleep(0.2)
        time.sleep(1)
        proc.send_signal(signal.SIGINT)
        self.assertEqual(proc.wait(20), 0)
        for th in threads:
            th.join(5)
        keys = [key(e) for e in out]
        self.assertEqual(sorted(keys), sorted(want), "\n".join(err[-10:]))
        summary = None
        for line in err:
            if line.startswith('{"summary"'):
                summary = json.loads(line)["summary"]
        self.assertIsNotNone(summary, "\n".join(err))
        self.assertGreater(summary["k8s"]["refetched"], 0, "the queue never filled: the test proved nothing")
        self.assertEqual(summary["k8s"]["dropped"], 0, "a refused event was lost, not read again")
        self.assertEqual(summary["k8s"]["events"], len(want))

    def test_in_cluster(self):
        sa = os.path.join(self.dir, "sa")
        os.makedirs(sa)
        with open(os.path.join(sa, "token"), "w") as f:
            f.write("tok-1")
        with open(self.fx.ca) as src, open(os.path.join(sa, "ca.crt"), "w") as dst:
            dst.write(src.read())
        p = self.fx.store.create("nodes", "n1")
        env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(self.fx.port),
               "TAPIO_K8S_SA_DIR": sa, "KUBECONFIG": "", "HOME": self.dir}
        t = Tapio("agent", "--collectors", "k8s", "--k8s-resources", "nodes", "--state-dir", self.state,
                  "--output", "stdout", env=env)
        self.addCleanup(t.stop)
        self.wait_version(t, "nodes", p["metadata"]["uid"], p["metadata"]["resourceVersion"], "ADDED")
        t.stop()

    def test_bad_config(self):
        bad = os.path.join(self.dir, "bad-kubeconfig")
        with open(bad, "w") as f:
            f.write("current-context: [unclosed\n")
        t = self.agent(kubeconfig=bad)
        rc = t.proc.wait(10)
        t.stop()
        self.assertNotEqual(rc, 0)
        err = "\n".join(t.stderr_lines)
        self.assertIn(bad, err)
        self.assertIn("bad YAML at line 2 column 1", err)
        t = self.agent("--k8s-resources", "pods,widgets")
        rc = t.proc.wait(10)
        t.stop()
        self.assertNotEqual(rc, 0)
        self.assertIn("unknown resource 'widgets'", "\n".join(t.stderr_lines))
        for what, kc, needle in (
                ("CA", self.fx.kubeconfig(os.path.join(self.dir, "kc-noca"), token="x",
                                          ca=os.path.join(self.dir, "missing-ca.crt")),
                 "certificate authority " + os.path.join(self.dir, "missing-ca.crt")),
                ("token file", self.fx.kubeconfig(os.path.join(self.dir, "kc-notok"),
                                                  token_file=os.path.join(self.dir, "missing-token")),
                 "token file " + os.path.join(self.dir, "missing-token"))):
            t = self.agent(kubeconfig=kc)
            rc = t.proc.wait(10)
            t.stop()
            self.assertNotEqual(rc, 0, what)
            err = "\n".join(t.stderr_lines)
            self.assertIn(needle, err)
            self.assertIn("No such file or directory", err)


if __name__ == "__main__":
    unittest.main()
