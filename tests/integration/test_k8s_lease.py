"""The k8s collector's cluster role under a Lease, against the fixture API
server (tests/integration/k8s_fixture.py, which has Leases with the real
409 semantics and a per-token partition switch).

Several agents, each with its own node name, token and state directory:
exactly one (the lease holder) publishes the cluster-wide resources, every one
its own node's pods; a SIGKILLed leader is replaced and the successor resumes
from the cursors on the lease; a SIGTERMed one hands over at once; a
partitioned one stops before the lease can expire; the API server sees one
watch per cluster resource, whatever the number of agents.
"""
import os
import signal
import time
import unittest

import k8s_fixture
import tapiotest
from tapiotest import Tapio

RENEW, DURATION = 1, 3
CLUSTER_RES = ("services", "nodes", "events", "deployments", "replicasets", "configmaps", "secrets")


def key(e):
    m = e["meta"]
    return (m["resource"], m["uid"], m["type"], m["resource_version"])


class LeaseTest(unittest.TestCase):
    def setUp(self):
        tapiotest.need_cmd(self, "openssl")
        if not os.path.exists(tapiotest.TAPIO):
            tapiotest.skip_or_fail(self, "build/tapio is not built (run make)")
        self.dir = tapiotest.tmpdir(self, "tapio-lease-")
        self.fx = k8s_fixture.Fixture(self.dir, tokens=()).start()
        self.addCleanup(self.fx.stop)
        self.agents = {}

    def agent(self, node, *extra, role=None):
        tok = "tok-" + node
        self.fx.tokens.add(tok)
        kc = self.fx.kubeconfig(os.path.join(self.dir, "kc-" + node), token=tok)
        state = os.path.join(self.dir, "state-" + node)
        args = ["agent", "--collectors", "k8s", "--k8s-kubeconfig", kc, "--state-dir", state,
                "--output", "stdout", "--node-name", node, "--queue-size", "1M",
                "--k8s-lease-renew", RENEW, "--k8s-lease-duration", DURATION]
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
            if h == "%s/tapio-%s" % (t.node, t.node):
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

    def start_three(self):
        nodes = ("node-a", "node-b", "node-c")
        self.populate(nodes)
        for n in nodes:
            self.agent(n)
        self.wait_holder(lambda h: h != "", 10)
        self.settle_watches(3)
        self.wait_all_cluster()
        return nodes

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
