"""scripts/check-layers.py on small trees made here: clean ones pass, each kind
of wrong include fails naming file and line. Needs no root, no build."""
import os
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "check-layers.py")


class CheckLayers(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="tapio-layers-")
        self.root = self.tmp.name
        # A clean tree: every layer including what it may.
        self.put("user/util/strbuf.h", "#include <stddef.h>\n")
        self.put("user/util/strbuf.c", '#include "util/strbuf.h"\n')
        self.put("user/core/event.h", '#include "util/strbuf.h"\n')
        self.put("user/kernel/kernel.c",
                 '#include "core/event.h"\n#include "bpf/events.h"\n#include "tapio.skel.h"\n')
        self.put("user/http/watch.c", '#include "core/event.h"\n')
        self.put("user/enrich/podmeta.c", '#include "core/event.h"\n')
        self.put("user/sink/sink.c", '#include "core/event.h"\n')
        self.put("user/pipeline/pipeline.c", '#include "sink/sink.h"\n')
        self.put("user/metrics/metrics.c", '#include "sink/sink.h"\n')
        self.put("collectors/k8s/collector.c",
                 '#include "collectors/k8s/k8s.h"\n#include "collectors/table.h"\n'
                 '#include "http/watch.h"\n#include "enrich/podmeta.h"\n')
        self.put("collectors/table.c", '#include "collectors/k8s/k8s.h"\n')
        self.put("user/cmd/agent.c",
                 '#include "collectors/k8s/k8s.h"\n#include "metrics/metrics.h"\n')
        self.put("user/main.c", '#include <stdio.h>\n#include "cmd/commands.h"\n')
        self.put("tests/unit/test_x.c", '#include "tests/lib/files.h"\n#include "sink/sink.h"\n')

    def tearDown(self):
        self.tmp.cleanup()

    def put(self, rel, text):
        path = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)

    def run_check(self, *extra):
        p = subprocess.run([sys.executable, SCRIPT, "--root", self.root, *extra],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        return p.returncode, p.stdout

    def assert_fails_with(self, line, *extra):
        rc, out = self.run_check(*extra)
        self.assertEqual(rc, 1, out)
        self.assertIn(line, out.splitlines(), out)

    def test_clean_tree_passes(self):
        rc, out = self.run_check()
        self.assertEqual(rc, 0, out)
        rc, out = self.run_check("--tests")
        self.assertEqual(rc, 0, out)

    def test_wrong_way_include_names_file_and_line(self):
        self.put("user/core/config.c",
                 '#include <string.h>\n#include "core/config.h"\n#include "metrics/metrics.h"\n')
        self.assert_fails_with("user/core/config.c:3: core may not include metrics/metrics.h")

    def test_util_includes_nothing_else(self):
        self.put("user/util/log.c", '#include "util/log.h"\n\n#include "core/event.h"\n')
        self.assert_fails_with("user/util/log.c:3: util may not include core/event.h")

    def test_sideways_include(self):
        self.put("user/kernel/kernel.c", '#include "enrich/podmeta.h"\n')
        self.assert_fails_with("user/kernel/kernel.c:1: kernel may not include enrich/podmeta.h")

    def test_sink_may_not_include_kernel(self):
        self.put("user/sink/format.c", '#include "kernel/kernel_decode.h"\n')
        self.assert_fails_with("user/sink/format.c:1: sink may not include kernel/kernel_decode.h")

    def test_collector_may_not_include_cmd_or_sink(self):
        self.put("collectors/etcd/collector.c", '#include "sink/sink.h"\n')
        self.assert_fails_with("collectors/etcd/collector.c:1: collectors may not include sink/sink.h")

    def test_collector_may_not_include_another_collector(self):
        self.put("collectors/etcd/collector.c", '#include "collectors/k8s/k8s.h"\n')
        rc, out = self.run_check()
        self.assertEqual(rc, 1, out)
        self.assertIn("collectors/etcd/collector.c:1: collectors/etcd may not include "
                      "collectors/k8s/k8s.h", out)

    def test_main_only_cmd_and_util(self):
        self.put("user/main.c", '#include "cmd/commands.h"\n#include "core/config.h"\n')
        self.assert_fails_with("user/main.c:2: main may not include core/config.h")

    def test_bare_include(self):
        self.put("user/sink/format.c", '#include "format.h"\n')
        rc, out = self.run_check()
        self.assertEqual(rc, 1, out)
        self.assertIn("user/sink/format.c:1: include \"format.h\" names no folder", out)

    def test_skeleton_only_in_kernel(self):
        self.put("user/cmd/probe.c", '#include "tapio.skel.h"\n')
        rc, out = self.run_check()
        self.assertEqual(rc, 1, out)
        self.assertIn("user/cmd/probe.c:1: cmd may not include tapio.skel.h", out)

    def test_tests_checked_only_with_flag(self):
        self.put("tests/unit/test_y.c", '#include "../lib/x.h"\n')
        rc, out = self.run_check()
        self.assertEqual(rc, 0, out)
        rc, out = self.run_check("--tests")
        self.assertEqual(rc, 1, out)
        self.assertIn("tests/unit/test_y.c:1: include \"../lib/x.h\" climbs folders", out)

    def test_every_problem_listed(self):
        self.put("user/core/a.c", '#include "sink/sink.h"\n')
        self.put("user/http/b.c", '#include "enrich/podmeta.h"\n')
        rc, out = self.run_check()
        self.assertEqual(rc, 1, out)
        self.assertIn("user/core/a.c:1: core may not include sink/sink.h", out)
        self.assertIn("user/http/b.c:1: http may not include enrich/podmeta.h", out)


if __name__ == "__main__":
    unittest.main()
