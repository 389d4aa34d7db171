"""The etcd collector against a real etcd (Debian's etcd-server): every field
of the events, the prefix boundary, resume after an etcd restart and after an
agent restart (nothing lost, nothing repeated), the compaction gap event,
progress notifications moving the cursor, TLS with client certificates, and
failover from a dead endpoint."""
import base64
import os
import shutil
import time
import unittest

from tapiotest import Tapio, free_port, need_cmd, need_root, tmpdir
from etcd_fixture import Etcd, make_certs

PREFIX_KEYS_OUTSIDE = ["/other/x", "/registry0", "/registryX/a", "/regist"]


def etcd_events(t, kind="etcd.watch"):
    return t.matching(lambda e: e.get("source") == "etcd" and e.get("type") == kind)


class EtcdCollectorTest(unittest.TestCase):
    def setUp(self):
        need_root(self)
        need_cmd(self, "etcd")
        self.dir = tmpdir(self, "tapio-etcd-")
        self.state = os.path.join(self.dir, "state")
        self.revfile = os.path.join(self.state, "etcd.revision")
        self.agents = []

    def tearDown(self):
        for a in self.agents:
            a.stop()

    def start_etcd(self, tls=None):
        e = Etcd(self.dir, tls=tls).start()
        self.addCleanup(e.stop)
        return e

    def agent(self, endpoints, *extra, wait_ready=True):
        """Starts `tapio agent` on the etcd collector. A fresh agent watches
        from "now": wait until it has stored the revision it started at."""
        t = Tapio("agent", "--collectors", "etcd", "--etcd-endpoints", endpoints,
                  "--state-dir", self.state, "--output", "stdout", *extra)
        self.agents.append(t)
        if wait_ready:
            deadline = time.time() + 15
            while not os.path.exists(self.revfile):
                if time.time() > deadline or t.proc.poll() is not None:
                    t.stop()
                    self.fail("the agent did not start watching:\n" + "\n".join(t.stderr_lines))
                time.sleep(0.05)
        return t

    def stop_agent(self, t):
        rc = t.stop()
        self.agents.remove(t)
        self.assertEqual(rc, 0, "\n".join(t.stderr_lines))
        s = t.summary()
        self.assertIsNotNone(s, "no summary line:\n" + "\n".join(t.stderr_lines))
        return s["etcd"]

    def wait_revs(self, t, revs, timeout=15):
        want = set(revs)
        ok = t.wait_for(lambda e: e.get("type") == "etcd.watch" and (want.discard(int(e["meta"]["revision"])) or not want),
                        timeout=timeout)
        if ok is None:
            got = [int(e["meta"]["revision"]) for e in etcd_events(t)]
            self.fail(f"revisions {sorted(want)} did not arrive; got {got}\n" + "\n".join(t.stderr_lines))

    def stored_rev(self):
        with open(self.revfile) as f:
            return int(f.read().strip())

    def check_put(self, ev, key, value, rev, create_rev, version):
        self.assertEqual(ev["source"], "etcd")
        self.assertEqual(ev["type"], "etcd.watch")
        m, d = ev["meta"], ev["data"]
        self.assertEqual(m["operation"], "PUT")
        self.assertEqual(m["revision"], str(rev))
        self.assertEqual(d["mod_revision"], rev)
        self.assertEqual(d["create_revision"], create_rev)
        self.assertEqual(d["version"], version)
        self.assertEqual(d["lease"], 0)
        self.assertEqual(base64.b64decode(d["value"]), value if isinstance(value, bytes) else value.encode())
        if isinstance(key, bytes):
            self.assertEqual(base64.b64decode(d["key_base64"]), key)
        else:
            self.assertEqual(d["key"], key)
            self.assertEqual(m["key"], key)
            self.assertNotIn("key_base64", d)

    def test_puts_deletes_prefix_and_every_field(self):
        etcd = self.start_etcd()
        t = self.agent(etcd.url)
        r1 = etcd.put("/registry/pods/default/web-1", '{"kind":"Pod"}')
        outside = [etcd.put(k, "x") for k in PREFIX_KEYS_OUTSIDE]
        binval = b"\x00\xff\xfe k8s\x00proto"
        r2 = etcd.put("/registry/pods/default/web-1", binval)
        r3, deleted = etcd.delete("/registry/pods/default/web-1")
        self.assertEqual(deleted, 1)
        r4 = etcd.txn_put([("/registry/configmaps/kube-system/cm", "one"),
                           ("/registry/crd.projectcalico.org/ippools/default", "two")])
        badkey = b"/registry/secrets/ns/\xff\xfe"
        r5 = etcd.put(badkey, "s")
        etcd.delete("/other/x")
        self.wait_revs(t, [r1, r2, r3, r4, r5])
        time.sleep(1.5)  # anything else would arrive now
        evs = etcd_events(t)
        self.assertEqual([int(e["meta"]["revision"]) for e in evs], [r1, r2, r3, r4, r4, r5],
                         "keys outside the prefix must not arrive (outside revisions %s)" % outside)

        self.check_put(evs[0], "/registry/pods/default/web-1", '{"kind":"Pod"}', r1, r1, 1)
        self.assertEqual(evs[0]["meta"]["resource_type"], "pods")
        self.assertNotIn("prev_kv", evs[0]["data"])
        self.check_put(evs[1], "/registry/pods/default/web-1", binval, r2, r1, 2)
        prev = evs[1]["data"]["prev_kv"]
        self.assertEqual(base64.b64decode(prev["value"]), b'{"kind":"Pod"}')
        self.assertEqual((prev["mod_revision"], prev["version"]), (r1, 1))

        d = evs[2]
        self.assertEqual(d["meta"]["operation"], "DELETE")
        self.assertEqual(d["meta"]["key"], "/registry/pods/default/web-1")
        self.assertEqual(d["meta"]["revision"], str(r3))
        self.assertEqual(d["data"]["mod_revision"], r3)
        self.assertEqual(d["data"]["value"], "")
        self.assertEqual((d["data"]["create_revision"], d["data"]["version"]), (0, 0))
        self.assertEqual(base64.b64decode(d["data"]["prev_kv"]["value"]), binval)
        self.assertEqual(d["data"]["prev_kv"]["mod_revision"], r2)

        self.check_put(evs[3], "/registry/configmaps/kube-system/cm", "one", r4, r4, 1)
        self.assertEqual(evs[3]["meta"]["resource_type"], "configmaps")
        self.check_put(evs[4], "/registry/crd.projectcalico.org/ippools/default", "two", r4, r4, 1)
        self.assertEqual(evs[4]["meta"]["resource_type"], "crd.projectcalico.org/ippools")
        self.check_put(evs[5], badkey, "s", r5, r5, 1)
        self.assertEqual(evs[5]["data"]["key"], "/registry/secrets/ns/\ufffd\ufffd")
        self.assertEqual(evs[5]["meta"]["resource_type"], "secrets")

        s = self.stop_agent(t)
        self.assertEqual(s["events"], 6)
        self.assertEqual(s["dropped"], 0)
        self.assertEqual(s["parse_errors"], 0)
        # the last write is outside the prefix: a progress notification may
        # or may not have moved the cursor to it yet
        self.assertIn(self.stored_rev(), (r5, etcd.revision()))

    def test_etcd_restarted_mid_stream_loses_and_repeats_nothing(self):
        etcd = self.start_etcd()
        t = self.agent(etcd.url)
        revs = [etcd.put(f"/registry/pods/ns/p{i}", f"v{i}") for i in range(5)]
        self.wait_revs(t, revs)
        etcd.restart()
        # written while the agent is still reconnecting (backoff from 0.8 s)
        revs += [etcd.put(f"/registry/pods/ns/p{i}", f"w{i}") for i in range(5)]
        self.wait_revs(t, revs, timeout=30)
        time.sleep(1.5)
        got = [int(e["meta"]["revision"]) for e in etcd_events(t)]
        self.assertEqual(got, revs)
        for e, i in zip(etcd_events(t)[5:], range(5)):
            self.check_put(e, f"/registry/pods/ns/p{i}", f"w{i}", revs[5 + i], revs[i], 2)
        s = self.stop_agent(t)
        self.assertGreaterEqual(s["reconnects"], 1)
        self.assertEqual(s["events"], 10)

    def test_agent_restart_resumes_exactly_the_missed_revisions(self):
        etcd = self.start_etcd()
        t = self.agent(etcd.url)
        first = [etcd.put(f"/registry/leases/ns/l{i}", str(i)) for i in range(3)]
        self.wait_revs(t, first)
        self.stop_agent(t)
        self.assertEqual(self.stored_rev(), first[-1])

        missed = [etcd.put(f"/registry/leases/ns/m{i}", str(i)) for i in range(4)]
        etcd.put("/elsewhere/k", "v")
        missed.append(etcd.delete("/registry/leases/ns/l0")[0])
        t2 = self.agent(etcd.url, wait_ready=False)
        self.wait_revs(t2, missed)
        later = etcd.put("/registry/leases/ns/after", "x")
        self.wait_revs(t2, [later])
        time.sleep(1.5)
        got = [int(e["meta"]["revision"]) for e in etcd_events(t2)]
        self.assertEqual(got, missed + [later])
        self.check_put(etcd_events(t2)[0], "/registry/leases/ns/m0", "0", missed[0], missed[0], 1)
        self.assertEqual(etcd_events(t2)[4]["meta"]["operation"], "DELETE")
        s = self.stop_agent(t2)
        self.assertEqual(s["events"], 6)
        self.assertEqual(s["reconnects"], 0)

    def test_compacted_start_revision_emits_the_gap(self):
        etcd = self.start_etcd()
        t = self.agent(etcd.url)
        r0 = etcd.put("/registry/pods/a/x", "1")
        self.wait_revs(t, [r0])
        self.stop_agent(t)
        cursor = self.stored_rev()
        self.assertEqual(cursor, r0)

        revs = [etcd.put(f"/registry/pods/a/y{i}", str(i)) for i in range(5)]
        etcd.compact(revs[3])  # revisions below revs[3] are gone
        t2 = self.agent(etcd.url, wait_ready=False)
        gap = t2.wait_for(lambda e: e.get("type") == "etcd.compacted", timeout=15)
        self.assertIsNotNone(gap, "\n".join(t2.stderr_lines))
        self.assertEqual(gap["source"], "etcd")
        self.assertEqual(gap["meta"]["operation"], "COMPACTED")
        self.assertEqual(gap["data"], {"requested_revision": cursor + 1, "compact_revision": revs[3],
                                       "lost_from": cursor + 1, "lost_to": revs[3] - 1})
        self.wait_revs(t2, [revs[3], revs[4]])
        time.sleep(1.5)
        self.assertEqual([int(e["meta"]["revision"]) for e in etcd_events(t2)], [revs[3], revs[4]])
        self.assertEqual(len(t2.matching(lambda e: e.get("type") == "etcd.compacted")), 1)
        # the gap event comes before the events after it
        types = [e["type"] for e in t2.matching(lambda e: e.get("source") == "etcd")]
        self.assertEqual(types, ["etcd.compacted", "etcd.watch", "etcd.watch"])
        self.check_put(etcd_events(t2)[0], "/registry/pods/a/y3", "3", revs[3], revs[3], 1)
        self.assertTrue(t2.wait_stderr("compacted", timeout=1))
        s = self.stop_agent(t2)
        self.assertEqual(s["events"], 3)

    def test_progress_notifications_advance_the_cursor(self):
        etcd = self.start_etcd()
        t = self.agent(etcd.url)
        start = self.stored_rev()
        last = [etcd.put(f"/not-k8s/{i}", "v") for i in range(3)][-1]
        self.assertGreater(last, start)
        deadline = time.time() + 10
        while self.stored_rev() < last and time.time() < deadline:
            time.sleep(0.2)
        self.assertEqual(self.stored_rev(), last, "progress notifications did not move the cursor")
        s = self.stop_agent(t)
        self.assertEqual(s["events"], 0)
        self.assertEqual(etcd_events(t), [])

    def test_tls_with_client_certificates(self):
        need_cmd(self, "openssl")
        pki = os.path.join(self.dir, "pki")
        os.mkdir(pki)
        certs = make_certs(pki)
        etcd = self.start_etcd(tls=certs)
        self.assertTrue(etcd.url.startswith("https://"))

        # Without a client certificate etcd refuses the connection: no events,
        # an error that names the endpoint.
        other_state = os.path.join(self.dir, "state-nocert")
        t0 = Tapio("agent", "--collectors", "etcd", "--etcd-endpoints", etcd.url,
                   "--etcd-cacert", certs["ca"], "--state-dir", other_state, "--output", "stdout")
        self.agents.append(t0)
        self.assertIsNotNone(t0.wait_stderr(etcd.url, timeout=10), "\n".join(t0.stderr_lines))
        self.stop_agent(t0)
        self.assertEqual(etcd_events(t0), [])
        self.assertFalse(os.path.exists(os.path.join(other_state, "etcd.revision")))

        t = self.agent(etcd.url, "--etcd-cacert", certs["ca"], "--etcd-cert", certs["client_cert"],
                       "--etcd-key", certs["client_key"])
        r = etcd.put("/registry/secrets/kube-system/tok", "c2VjcmV0")
        self.wait_revs(t, [r])
        self.check_put(etcd_events(t)[0], "/registry/secrets/kube-system/tok", "c2VjcmV0", r, r, 1)
        s = self.stop_agent(t)
        self.assertEqual(s["events"], 1)

    def test_failover_from_a_dead_endpoint(self):
        etcd = self.start_etcd()
        dead = f"http://127.0.0.1:{free_port()}"
        t0 = time.time()
        t = self.agent(f"{dead},{etcd.url}")
        self.assertLess(time.time() - t0, 5, "failover took too long")
        r = etcd.put("/registry/nodes/n1", "node")
        self.wait_revs(t, [r])
        self.check_put(etcd_events(t)[0], "/registry/nodes/n1", "node", r, r, 1)
        self.assertIsNotNone(t.wait_stderr(dead, timeout=1), "the dead endpoint is not named")
        s = self.stop_agent(t)
        self.assertGreaterEqual(s["errors"], 1)
        self.assertGreaterEqual(s["reconnects"], 1)

    def test_cursor_file_without_final_newline_resumes_from_it(self):
        """A whole revision without the newline tapio writes (a file from an
        older tapio) is trusted and reported; a cut-short one that is not a
        whole number is unknown: read from the oldest revision."""
        etcd = self.start_etcd()
        revs = [etcd.put(f"/legacy/k{i}", f"v{i}") for i in range(6)]
        os.makedirs(self.state, exist_ok=True)
        with open(self.revfile, "w") as f:
            f.write(str(revs[2]))  # no newline
        t = self.agent(etcd.url, "--etcd-prefix", "/legacy/", wait_ready=False)
        self.wait_revs(t, revs[3:])
        time.sleep(0.5)
        self.stop_agent(t)
        got = [int(e["meta"]["revision"]) for e in etcd_events(t)]
        self.assertEqual(got, revs[3:], "\n".join(t.stderr_lines))
        line = next((l for l in t.stderr_lines if "no final newline" in l), None)
        self.assertIsNotNone(line, "\n".join(t.stderr_lines))
        self.assertIn(self.revfile, line)
        with open(self.revfile) as f:
            self.assertEqual(f.read(), "%d\n" % revs[-1])

        with open(self.revfile, "w") as f:
            f.write("%d " % revs[2])  # not a whole number: unknown
        t = self.agent(etcd.url, "--etcd-prefix", "/legacy/", wait_ready=False)
        self.wait_revs(t, revs)
        self.stop_agent(t)
        self.assertEqual([int(e["meta"]["revision"]) for e in etcd_events(t)], revs)
        self.assertTrue(any("empty or cut short" in l for l in t.stderr_lines), "\n".join(t.stderr_lines))

    def test_bad_config_is_refused_with_a_clear_message(self):
        t = Tapio("agent", "--collectors", "etcd", "--etcd-endpoints", "ftp://127.0.0.1:1",
                  "--state-dir", self.state, "--output", "stdout")
        t.proc.wait(10)
        t.stop()
        rc = t.proc.returncode
        self.assertNotEqual(rc, 0)
        self.assertTrue(any("etcd" in l and "ftp://127.0.0.1:1" in l for l in t.stderr_lines),
                        "\n".join(t.stderr_lines))

        os.makedirs(self.state, exist_ok=True)
        with open(self.revfile, "w") as f:
            f.write("not-a-number")
        # A cursor that cannot be read is reported by name and read as
        # unknown (from the oldest revision etcd keeps), never as "now".
        t = Tapio("agent", "--collectors", "etcd", "--etcd-endpoints", "http://127.0.0.1:1",
                  "--state-dir", self.state, "--output", "stdout")
        line = t.wait_stderr("etcd.revision", 10)
        t.stop()
        self.assertIsNotNone(line, "\n".join(t.stderr_lines))
        self.assertIn("unknown", line)


if __name__ == "__main__":
    unittest.main()
