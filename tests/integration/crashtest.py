"""What the crash tests share: killing an agent, reading what JetStream
stored, and counting what is missing or stored twice."""
from nats_fixture import JsReader


class CrashTest:
    """Mixin for a unittest.TestCase with self.agents (a list of Tapio) and
    a class attribute STREAM (the JetStream stream the agent publishes to)."""

    def kill(self, t):
        t.proc.kill()
        t.stop()
        self.agents.remove(t)

    def stored(self, srv):
        r = JsReader(srv.port)
        try:
            _, msgs = r.read_all(self.STREAM)
        finally:
            r.close()
        return msgs


def tally(want, got):
    """(sorted missing items of want, sorted items of got seen more than once)"""
    seen, twice = set(), set()
    for n in got:
        (twice if n in seen else seen).add(n)
    return sorted(set(want) - seen), sorted(twice)
