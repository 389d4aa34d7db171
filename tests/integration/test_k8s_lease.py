"""The k8s collector's cluster role under a Lease, against the fixture API
server (tests/integration/k8s_fixture.py, which has Leases with the real
409 semantics and a per-token partition switch).

Several agents, each with its own node name, token and state directory:
exactly one (the lease holder) publishes the cluster-wide resources, every one
its own node's pods; a SIGKILLed leader is replaced and the successor resumes
from the cursors on the lease; a SIGTERMed one hands over at once; a
partitioned one stops before the lease can expire; one whose Lease requests
hang stops at its give-up point, not later; one refused the Lease (403) is
unhealthy while its pods go on; the API server sees one watch per cluster
resource, whatever the number of agents. With NATS, every object version is
in the stream exactly once across a SIGKILL failover.
"""
import calendar
import json
import os
import signal
import threading
import time
import unittest
import urllib.error
import urllib.request

import k8s_fixture
import nats_fixture
import tapiotest
from tapiotest import Tapio

RENEW, DURATION = 1, 3
CLUSTER_RES = ("services", "nodes", "events", "deployments", "replicasets", "configmaps", "secrets")


def key(e):
    m = e["meta"]
    return (m["resource"], m["uid"], m["type"], m["resource_version"])


def ts_s(e):
    """An event's ts (RFC 3339 with nanoseconds, UTC) in seconds since the epoch."""
    day, frac = e["ts"].rstrip("Z").split(".")
    return calendar.timegm(time.strptime(day, "%Y-%m-%dT%H:%M:%S")) + int(frac.ljust(9, "0")) / 1e9


def http_get(port, path):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return None, ""


def metric(text, name):
    """The value of sample `name` (labels as rendered), or None."""
    for line in text.splitlines():
        if not line.startswith("#") and " " in line:
            k, v = line.rsplit(" ", 1)
            if k == name:
                return float(v)
    return None


class LeaseTest(unittest.TestCase):
    def setUp(self):
        tapiotest.need_cmd(self, "openssl")
        if not os.path.exists(tapiotest.TAPIO):
            tapiotest.skip_or_fail(self, "build/tapio is not built (run make)")
        self.dir = tapiotest.tmpdir(self, "tapio-lease-")
        self.fx = k8s_fixture.Fixture(self.dir, tokens=()).start()
        self.addCleanup(self.fx.stop)
        self.agents = {}

    def agent(self, node, *extra, role=None, renew=RENEW, duration=DURATION, output="stdout"):
        tok = "tok-" + node
        self.fx.tokens.add(tok)
        kc = self.fx.kubeconfig(os.path.join(self.dir, "kc-" + node), token=tok)
        state = os.path.join(self.dir, "state-" + node)
        args = ["agent", "--collectors", "k8s", "--k8s-kubeconfig", kc, "--state-dir", state,
                "--output", output, "--node-name", node, "--queue-size", "1M",
                "--k8s-lease-renew", renew, "--k8s-lease-duration", duration]
        if role:
            args += ["--k8s-role", role]
        t = Tapio(*args, *extra, env={"POD_NAMESPACE": "tapio", "POD_NAME": "tapio-" + node})
        t.node, t.token = node, tok
        self.addCleanup(self.no_sanitizer_report, t)
        self.addCleanup(t.stop)
        self.agents[node] = t
        return t

    def no_sanitizer_report(self, t):
        bad = [l for l in t.stderr_lines if "Sanitizer" in l or "runtime error:" in l]
        self.assertFalse(bad, "\n".join(t.stderr_lines[-40:]))

    def lease(self):
        with self.fx.lock:
            return self.fx.leases.get(("tapio", "tapio-cluster"))

    def holder(self):
        l = self.lease()
        return l["spec"].get("holderIdentity", "") if l else None

    def wait_holder(self, pred, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            h = self.holder()
            if h is not None and pred(h):
                return h, time.monotonic()
            time.sleep(0.02)
        self.fail("no lease holder as wanted within %.1f s (now %r)" % (timeout, self.holder()))

    def leader(self):
        h = self.holder()
        for t in self.agents.values():
            if h == "%s/tapio-%s" % (t.node, t.node) and t.proc.poll() is None:
                return t
        return None

    @staticmethod
    def cluster_events(t):
        return t.matching(lambda e: e.get("source") == "k8s" and e["meta"]["resource"] != "pods")

    def cluster_keys(self):
        out = []
        for t in self.agents.values():
            out += [key(e) for e in self.cluster_events(t)]
        return out

    def produced_cluster(self):
        return [p for p in self.fx.store.produced if p[0] != "pods"]

    def wait_all_cluster(self, timeout=20):
        deadline = time.monotonic() + timeout
        want = set(self.produced_cluster())
        while time.monotonic() < deadline:
            if want <= set(self.cluster_keys()):
                return
            time.sleep(0.1)
        missing = want - set(self.cluster_keys())
        logs = "\n".join("--- %s\n%s" % (name, "\n".join(t.stderr_lines[-15:]))
                         for name, t in self.agents.items())
        self.fail("%d cluster versions never arrived, e.g. %s\n%s" %
                  (len(missing), sorted(missing)[:3], logs))

    def populate(self, nodes):
        st = self.fx.store
        for n in nodes:
            st.create("nodes", n)
            for i in range(2):
                st.create("pods", "%s-p%d" % (n, i), spec={"nodeName": n, "containers": [{"name": "c"}]})
        self.svc = st.create("services", "web", spec={"clusterIP": "10.96.0.10"})
        self.dep = st.create("deployments", "web", spec={"replicas": 2})
        st.create("events", "web.1", reason="Scheduled")
        st.create("configmaps", "cfg", data={"k": "v"})

    def settle_watches(self, n_agents, timeout=20):
        """Waits until every agent's pod watch and the leader's cluster watches are open."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (len(self.fx.watch_requests("pods")) >= n_agents
                    and all(len(self.fx.watch_requests(r)) >= 1 for r in CLUSTER_RES)):
                return
            time.sleep(0.1)
        self.fail("watches never opened: pods %d" % len(self.fx.watch_requests("pods")))

    def check_pods_own_node(self):
        for t in self.agents.values():
            pods = t.matching(lambda e: e.get("source") == "k8s" and e["meta"]["resource"] == "pods")
            self.assertEqual(len({e["meta"]["uid"] for e in pods}), 2, t.node)
            for e in pods:
                self.assertEqual(e["data"]["spec"]["nodeName"], t.node)

    def start_three(self, wait_output=True, **kw):
        nodes = ("node-a", "node-b", "node-c")
        self.populate(nodes)
        for n in nodes:
            self.agent(n, **kw)
        self.wait_holder(lambda h: h != "", 10)
        self.settle_watches(3)
        if wait_output:
            self.wait_all_cluster()
        return nodes

    def holder_of(self, t):
        return "%s/tapio-%s" % (t.node, t.node)

    def last_write_by(self, holder):
        """The fixture's time (monotonic) of the last Lease write holding `holder`."""
        with self.fx.lock:
            return max((w[0] for w in self.fx.lease_log if w[4] == holder), default=None)

    def churn(self, period=0.05):
        """Updates the service and the deployment in turn until the returned
        event is set, from a thread of its own."""
        done = threading.Event()
        st = self.fx.store
        self.churned = {}  # resourceVersion -> monotonic time it was made

        def run():
            i = 0
            while not done.is_set():
                if i % 2:
                    o = st.update("deployments", self.dep["metadata"]["uid"])
                else:
                    o = st.update("services", self.svc["metadata"]["uid"])
                self.churned[o["metadata"]["resourceVersion"]] = time.monotonic()
                i += 1
                done.wait(period)
        th = threading.Thread(target=run, daemon=True)
        th.start()

        def stop():
            done.set()
            th.join(5)
        self.addCleanup(stop)
        return stop

    # ---- tests ----

    def test_one_leader_three_agents(self):
        self.start_three()
        st = self.fx.store
        for i in range(5):
            st.update("services", self.svc["metadata"]["uid"])
            st.update("deployments", self.dep["metadata"]["uid"])
        self.wait_all_cluster()
        time.sleep(2 * RENEW)
        publishers = [t.node for t in self.agents.values() if self.cluster_events(t)]
        self.assertEqual(len(publishers), 1, publishers)
        self.assertIs(self.leader(), self.agents[publishers[0]])
        keys = self.cluster_keys()
        self.assertEqual(len(keys), len(set(keys)), "a cluster version published twice")
        self.assertEqual(set(keys), set(self.produced_cluster()))
        self.check_pods_own_node()
        # One watch per cluster resource, one pods watch per agent.
        self.assertEqual(len(self.fx.watch_requests("pods")), 3)
        for r in CLUSTER_RES:
            self.assertEqual(len(self.fx.watch_requests(r)), 1, r)
        for r in self.fx.watch_requests("pods"):
            self.assertIn("spec.nodeName=node-", r["query"]["fieldSelector"])
        # The cursors ride on the lease.
        ann = self.lease()["metadata"].get("annotations", {})
        self.assertEqual(set(ann), {"tapio.io/rv-" + r for r in CLUSTER_RES})
        svc_rv = st.objects["services"][self.svc["metadata"]["uid"]]["metadata"]["resourceVersion"]
        self.assertGreaterEqual(int(ann["tapio.io/rv-services"]), int(svc_rv))  # bookmarks move it on

    def test_sigkill_failover_resumes_from_the_lease(self):
        self.start_three()
        st = self.fx.store
        for i in range(3):
            st.update("services", self.svc["metadata"]["uid"])
        self.wait_all_cluster()
        time.sleep(RENEW + 0.5)  # a renew carries the cursor of the last version
        old = self.leader()
        self.assertIsNotNone(old)
        old_holder = self.holder()
        lists_before = {r: len(self.fx.list_requests(r)) for r in CLUSTER_RES}
        old.proc.send_signal(signal.SIGKILL)
        t_kill = time.monotonic()
        for i in range(4):  # changes while nobody leads
            st.update("services", self.svc["metadata"]["uid"])
            st.update("deployments", self.dep["metadata"]["uid"])
            time.sleep(0.2)
        new_holder, t_new = self.wait_holder(lambda h: h not in ("", old_holder), DURATION + 2 * RENEW + 1)
        failover = t_new - t_kill
        print("\nSIGKILL failover: %.2f s (lease %d s, renew %d s)" % (failover, DURATION, RENEW))
        self.assertLessEqual(failover, DURATION + 2 * RENEW)
        self.wait_all_cluster()
        keys = self.cluster_keys()
        dups = [k for k in set(keys) if keys.count(k) > 1]
        self.assertEqual(dups, [], "versions published twice across the failover")
        self.assertEqual(set(keys), set(self.produced_cluster()))
        # The successor resumed by WATCH from the lease's cursors: no new LIST.
        for r in CLUSTER_RES:
            self.assertEqual(len(self.fx.list_requests(r)), lists_before[r], r)
        new = self.leader()
        self.assertIsNot(new, old)
        self.assertTrue(self.cluster_events(new))

    def test_sigkill_mid_churn_repeats_only_what_the_lease_missed(self):
        """File sink (stdout), versions made every 50 ms, the leader SIGKILLed
        three times at arbitrary points (the killed agent comes back as a
        follower). Nothing is missing; a successor repeats only versions past
        the cursors on the lease at the kill, and the lease's cursors are at
        most a quarter of a renew period (plus the acknowledgement) behind,
        because the holder writes them soon after the sink acknowledged."""
        self.start_three()
        self.wait_cursors_on_lease()
        stop_churn = self.churn()
        repeats, ages, covered = [], [], []
        for rnd in range(3):
            t_churn = time.monotonic()
            time.sleep(1.3 + 0.37 * rnd)  # not in step with the renew period
            old = self.leader()
            old_holder = self.holder()
            if rnd == 0:
                # While versions come, the holder writes its cursors every
                # quarter renew period: sooner than the renew, never more often.
                with self.fx.lock:
                    w = [x[0] for x in self.fx.lease_log if x[4] == old_holder and x[0] > t_churn + 0.3]
                gaps = [b - a for a, b in zip(w, w[1:])]
                print("\nlease writes under churn, gaps: %s" % ["%.3f" % g for g in gaps])
                # (the fixture's times: one write's latency shortens the next gap)
                self.assertGreaterEqual(len(gaps), 2)
                self.assertGreaterEqual(sum(gaps) / len(gaps), 0.8 * RENEW / 4)
                self.assertLessEqual(sum(gaps) / len(gaps), RENEW / 4 + 0.15)
                self.assertLessEqual(max(gaps), RENEW / 4 + 0.3)
            old.proc.send_signal(signal.SIGKILL)
            t_kill = time.monotonic()
            old.proc.wait(5)
            ann = self.lease()["metadata"]["annotations"]
            cur = {r: int(ann["tapio.io/rv-" + r]) for r in ("services", "deployments")}
            self.wait_holder(lambda h: h not in ("", old_holder), DURATION + 2 * RENEW + 1)
            time.sleep(0.5)
            self.wait_all_cluster()
            new = self.leader()
            mine = lambda t: {key(e) for e in self.cluster_events(t)
                              if e["meta"]["resource"] in cur}
            again = sorted(mine(old) & mine(new), key=lambda k: int(k[3]))
            repeats.append(len(again))
            covered += [k for k in again if int(k[3]) <= cur[k[0]]]
            # the age at the kill of each repeated version made by the churn
            ages += [t_kill - self.churned[k[3]] for k in again if k[3] in self.churned]
            # The killed agent comes back, as a follower.
            name = old.node
            del self.agents[name]
            self.agents[name + "-%d" % rnd] = old
            self.agent(name)
        stop_churn()
        self.wait_all_cluster()
        print("\nSIGKILL mid-churn (a version every 50 ms, renew %d s): repeats per failover %s, "
              "the oldest %.2f s old at the kill" % (RENEW, repeats, max(ages, default=0)))
        keys = self.cluster_keys()
        self.assertEqual(set(keys), set(self.produced_cluster()))
        self.assertEqual(covered, [], "versions repeated though the lease carried them")
        self.assertLess(max(ages, default=0), RENEW / 4 + 0.35, "the lease's cursors were stale")

    def test_sigterm_hands_over_within_a_renew(self):
        self.start_three()
        old = self.leader()
        old_holder = self.holder()
        t0 = time.monotonic()
        old.proc.send_signal(signal.SIGTERM)
        _, t_rel = self.wait_holder(lambda h: h == "", 5)
        _, t_new = self.wait_holder(lambda h: h not in ("", old_holder), RENEW + 2)
        print("\nSIGTERM hand-over: released %.2f s after the signal, taken %.2f s after the release"
              % (t_rel - t0, t_new - t_rel))
        self.assertLessEqual(t_new - t_rel, RENEW + 0.5)
        self.assertEqual(old.proc.wait(10), 0)
        st = self.fx.store
        st.update("services", self.svc["metadata"]["uid"])
        self.wait_all_cluster()
        keys = self.cluster_keys()
        self.assertEqual(len(keys), len(set(keys)))

    def test_sigterm_during_an_applied_unanswered_renew_still_releases(self):
        """The server applies the leader's renew and does not answer; SIGTERM
        cancels that request. The Lease changed under the leader (a new
        resourceVersion), so its release must look at the Lease again
        rather than end on a 409 and leave the Lease held until expiry."""
        self.start_three()
        old = self.leader()
        with self.fx.lock:
            self.fx.lease_apply_then_hang.add(old.token)
        self.addCleanup(self.fx.lease_apply_then_hang.discard, old.token)
        deadline = time.monotonic() + RENEW * 3
        while old.token in self.fx.lease_apply_then_hang and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertNotIn(old.token, self.fx.lease_apply_then_hang, "no renew was applied and held")
        time.sleep(0.05)
        old.proc.send_signal(signal.SIGTERM)
        self.wait_holder(lambda h: h == "", 5)
        self.assertEqual(old.proc.wait(10), 0)
        self.assertIsNotNone(old.wait_stderr("released", 1), "\n".join(old.stderr_lines[-10:]))

    def wait_cursors_on_lease(self, timeout=RENEW * 3 + 2):
        """The leader has renewed with every cluster resource's cursor: a
        successor resumes from there instead of relisting (a relist gives
        each object's latest version only)."""
        deadline = time.monotonic() + timeout
        want = {"tapio.io/rv-" + r for r in CLUSTER_RES}
        while time.monotonic() < deadline:
            l = self.lease()
            if l and want <= set(l["metadata"].get("annotations", {})):
                return
            time.sleep(0.1)
        self.fail("the leader never put its cursors on the lease")

    def test_partitioned_leader_stops_before_expiry(self):
        self.start_three()
        st = self.fx.store
        old = self.leader()
        old_holder = self.holder()
        self.wait_cursors_on_lease()
        self.fx.partitioned.add(old.token)  # its open watches still deliver
        t_part = time.monotonic()
        stop_line = None
        deadline = time.monotonic() + DURATION + 3 * RENEW + 2
        new_holder = None
        while time.monotonic() < deadline and not (stop_line and new_holder):
            st.update("services", self.svc["metadata"]["uid"])
            time.sleep(0.1)
            stop_line = stop_line or next((l for l in old.stderr_lines if "given up" in l), None)
            h = self.holder()
            if h not in ("", old_holder):
                new_holder = h
        self.assertIsNotNone(stop_line, "\n".join(old.stderr_lines[-10:]))
        self.assertIsNotNone(new_holder)
        print("\npartition: new holder %.2f s after the partition" % (time.monotonic() - t_part))
        self.fx.partitioned.discard(old.token)
        for i in range(3):
            st.update("services", self.svc["metadata"]["uid"])
        time.sleep(0.5)
        new = self.leader()
        self.assertIsNot(new, old)
        old_ev = self.cluster_events(old)
        new_ev = [e for e in self.cluster_events(new)]
        self.assertTrue(old_ev and new_ev)
        # No overlap: the old leader's last cluster event comes before the new one's first.
        self.assertLess(max(e["ts"] for e in old_ev), min(e["ts"] for e in new_ev))
        self.wait_all_cluster()

    def test_hung_lease_request_stops_the_role_at_the_give_up_point(self):
        """The server accepts the leader's Lease requests and never answers: the
        leader stops its cluster role at (duration + renew) / 2 after its last
        good renew, not at the end of a request timeout, and before anyone else
        takes the lease or emits."""
        renew, duration = 2, 4  # a renew timed out by the renew period would end at 2 x renew
        give_up = (duration + renew) / 2
        self.start_three(renew=renew, duration=duration)
        self.wait_cursors_on_lease(timeout=3 * renew + 2)
        old = self.leader()
        old_holder = self.holder()
        # Hang the renew after the next one, so that the whole window lies ahead.
        n = len(self.fx.lease_log)
        deadline = time.monotonic() + 2 * renew + 1
        while len(self.fx.lease_log) == n and time.monotonic() < deadline:
            time.sleep(0.005)
        self.fx.lease_hung.add(old.token)
        self.addCleanup(self.fx.lease_hung.discard, old.token)
        stop_churn = self.churn()
        line = old.wait_stderr("given up", give_up + renew + 2)
        t_stop = time.monotonic()
        self.assertIsNotNone(line, "\n".join(old.stderr_lines[-10:]))
        new_holder, _ = self.wait_holder(lambda h: h not in ("", old_holder), duration + 2 * renew + 2)
        time.sleep(0.5)
        stop_churn()
        self.assertTrue([h for h in self.fx.lease_hangs if h[2] == old.token], "no request hung")
        t_last = self.last_write_by(old_holder)
        with self.fx.lock:
            t_acq = min(w[0] for w in self.fx.lease_log if w[4] == new_holder)
        print("\nhung server: the role stopped %.3f s after the last good renew (give-up point %.1f s); "
              "the successor took the lease %.3f s after it" % (t_stop - t_last, give_up, t_acq - t_last))
        self.assertLessEqual(t_stop - t_last, give_up + 0.4, line)
        self.assertLess(t_stop, t_acq)
        old_ev = self.cluster_events(old)
        new_ev = self.cluster_events(self.leader())
        self.assertTrue(old_ev and new_ev)
        last_old, first_new = max(ts_s(e) for e in old_ev), min(ts_s(e) for e in new_ev)
        wall = time.time() - time.monotonic()
        self.assertLessEqual(last_old, t_last + wall + give_up + 0.05)
        self.assertLess(last_old, first_new)
        self.wait_all_cluster()

    def test_forbidden_lease_marks_the_collector_unhealthy(self):
        """RBAC refuses the Lease (403): the collector is unhealthy in /metrics
        and /readyz, the log names the Lease and the status, and the node role
        goes on; once the Lease is allowed the agent leads and is healthy."""
        self.populate(("node-a",))
        self.fx.lease_forbidden.add("tok-node-a")
        mport = tapiotest.free_port()
        t = self.agent("node-a", "--metrics-addr", "127.0.0.1:%d" % mport)
        line = t.wait_stderr("HTTP 403", 15)
        self.assertIsNotNone(line, "\n".join(t.stderr_lines[-10:]))
        self.assertIn("lease tapio/tapio-cluster", line)
        self.assertIn("/namespaces/tapio/leases/tapio-cluster", line)
        pods = lambda: {e["meta"]["uid"] for e in t.matching(
            lambda e: e.get("source") == "k8s" and e["meta"]["resource"] == "pods")}
        deadline = time.monotonic() + 15
        while len(pods()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(len(pods()), 2)
        p0 = self.fx.store.by_name("pods", "node-a-p0")
        upd = self.fx.store.update("pods", p0["metadata"]["uid"])
        self.assertIsNotNone(t.wait_for(lambda e: e.get("meta", {}).get("resource_version") ==
                                        upd["metadata"]["resourceVersion"], 10))

        def sample(name):
            code, body = http_get(mport, "/metrics")
            return metric(body, name) if code == 200 else None
        healthy = 'tapio_collector_healthy{collector="k8s"}'
        deadline = time.monotonic() + 10
        while sample('tapio_up{collector="k8s",resource="pods"}') != 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(sample('tapio_up{collector="k8s",resource="pods"}'), 1)
        self.assertEqual(sample(healthy), 0)
        self.assertEqual(sample('tapio_k8s_lease_up{collector="k8s"}'), 0)
        self.assertEqual(sample('tapio_k8s_leader{collector="k8s"}'), 0)
        code, body = http_get(mport, "/readyz")
        self.assertEqual(code, 503)
        self.assertIn("collector k8s: unhealthy", body)
        self.assertIn("tapio-cluster", body)
        self.assertIn("403", body)
        self.assertIsNone(self.lease())
        self.assertEqual(self.cluster_events(t), [])
        # The RBAC is mended: the agent takes the lease and is healthy again.
        self.fx.lease_forbidden.discard("tok-node-a")
        deadline = time.monotonic() + 3 * RENEW + 5
        while (sample(healthy), sample('tapio_k8s_leader{collector="k8s"}')) != (1, 1) \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(sample(healthy), 1, http_get(mport, "/readyz")[1])
        self.assertEqual(sample('tapio_k8s_lease_up{collector="k8s"}'), 1)
        self.assertEqual(sample('tapio_k8s_leader{collector="k8s"}'), 1)
        self.wait_all_cluster()

    def stream_messages(self, port, stream):
        r = nats_fixture.JsReader(port)
        try:
            return r.read_all(stream)[1]
        except (RuntimeError, KeyError):
            return []
        finally:
            r.close()

    @staticmethod
    def cluster_in_stream(msgs):
        """(key, Nats-Msg-Id) of every stored cluster-resource event."""
        out = []
        for m in msgs:
            e = json.loads(m["data"])
            if e.get("source") == "k8s" and e["meta"]["resource"] != "pods":
                out.append((key(e), m["headers"].get("Nats-Msg-Id")))
        return out

    def test_nats_every_version_once_across_a_sigkill_failover(self):
        """Three agents publish to one JetStream stream; the leader is SIGKILLed
        right after an emission that its lease cursor does not cover yet. The
        successor resumes from the lease and publishes those versions again,
        and JetStream's duplicate window drops them (the ids are stable): every
        (resource, uid, resourceVersion) the fixture made is stored once."""
        if not os.access(nats_fixture.NATS_SERVER, os.X_OK):
            tapiotest.skip_or_fail(self, "nats-server is not installed (make deps installs it)")
        srv = nats_fixture.NatsServer(tapiotest.free_port())
        self.addCleanup(srv.close)
        srv.start()
        stream = "TAPIO_LEASE"
        mports = {}
        nodes = ("node-a", "node-b", "node-c")
        self.populate(nodes)
        for n in nodes:
            mports[n] = tapiotest.free_port()
            self.agent(n, "--nats-stream", stream, "--metrics-addr", "127.0.0.1:%d" % mports[n],
                       output=srv.url)
        self.wait_holder(lambda h: h != "", 10)
        self.settle_watches(3)

        def stored():
            return self.cluster_in_stream(self.stream_messages(srv.port, stream))

        def wait_stored(want, timeout):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                have = {k for k, _ in stored()}
                if want <= have:
                    return
                time.sleep(0.2)
            self.fail("%d versions not in the stream" % len(want - {k for k, _ in stored()}))
        wait_stored(set(self.produced_cluster()), 20)
        self.wait_cursors_on_lease()
        stop_churn = self.churn()
        old = self.leader()
        old_holder = self.holder()
        def past_cursor(have):
            ann = self.lease()["metadata"]["annotations"]
            cur = {r: int(ann["tapio.io/rv-" + r]) for r in ("services", "deployments")}
            return [k for k in have if k[0] in cur and int(k[3]) > cur[k[0]]]
        # Kill as soon as the stream holds a version that the cursors on the
        # lease do not cover yet: right after an emission.
        time.sleep(RENEW)
        deadline = time.monotonic() + 3 * RENEW
        while time.monotonic() < deadline:
            have = [k for k, _ in stored()]
            if past_cursor(have):
                break
        old.proc.send_signal(signal.SIGKILL)
        t_kill = time.monotonic()
        old.proc.wait(5)
        uncovered = past_cursor(have)  # against the lease as the old leader left it
        self.assertTrue(uncovered, "no version stored past the lease cursor")
        new_holder, t_new = self.wait_holder(lambda h: h not in ("", old_holder), DURATION + 2 * RENEW + 1)
        time.sleep(1)
        stop_churn()
        want = set(self.produced_cluster())
        wait_stored(want, 20)
        time.sleep(RENEW)  # anything late would show now
        got = stored()
        keys = [k for k, _ in got]
        twice = sorted(k for k in set(keys) if keys.count(k) > 1)
        new = self.leader()
        code, body = http_get(mports[new.node], "/metrics")
        dups = metric(body, 'tapio_sink_nats_duplicates_total{sink="nats"}') or 0
        print("\nNATS failover: %d cluster versions stored, %d twice, %d missing; %d stored past the "
              "lease cursor at the kill; the successor's sink saw %d duplicates; takeover %.2f s"
              % (len(set(keys)), len(twice), len(want - set(keys)), len(uncovered), dups, t_new - t_kill))
        self.assertEqual(twice, [])
        self.assertEqual(set(keys), want)
        for (res, uid, _, rv), mid in got:
            self.assertEqual(mid, "k8s-%s-%s-%s" % (res, uid, rv))
        # The successor sent those again, and the stream dropped them.
        self.assertGreaterEqual(dups, len(uncovered), body)

    def test_watch_count_for_3_and_20_agents(self):
        for n_agents in (3, 20):
            with self.subTest(agents=n_agents):
                for t in list(self.agents.values()):
                    t.stop()
                self.agents.clear()
                with self.fx.lock:
                    self.fx.leases.clear()
                    self.fx.requests.clear()
                nodes = ["n%02d" % i for i in range(n_agents)]
                for n in nodes:
                    self.agent(n)
                self.wait_holder(lambda h: h != "", 15)
                self.settle_watches(n_agents, timeout=60)
                time.sleep(2 * RENEW)
                counts = {r: len(self.fx.watch_requests(r)) for r in ("pods",) + CLUSTER_RES}
                total = sum(counts.values())
                print("\n%d agents: %d watch requests (%s)" % (n_agents, total, counts))
                self.assertEqual(counts["pods"], n_agents)
                for r in CLUSTER_RES:
                    self.assertEqual(counts[r], 1, r)
                self.assertEqual(total, n_agents + len(CLUSTER_RES))


if __name__ == "__main__":
    unittest.main()
