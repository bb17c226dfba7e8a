"""The tracer's per-namespace hop cache, and the agent client's line reader, at the sizes of a large run.

The tracer turns each of a probe's ~60 trace events into a hop with its rule's comment; the hops
repeat across probes, so they are cached per namespace, and the cache must follow the namespace's
rules when they are dumped again (a reload gives handles new comments). The agent answers a batch
of thousands of traced probes with one JSON line of tens of MB: the client must read it whole,
whatever the pipe's chunking. No namespace, no root.
"""

from __future__ import annotations

import subprocess
import sys

from netiso.backends.trace_parse import PacketInfo
from netiso.probe.agent import ProbeAgent
from netiso.probe.nftrace import RuleInfo, TraceEvent
from netiso.probe.tracer import Monitor, Tracer

RULE = ("filter", "cali-tw-x", 60)
RAW = {("raw", "PREROUTING", 1): RuleInfo(None, False)}  # the TRACE rule every traced packet meets first


class FakeThreads:
    """Monitors are made by hand here; the tracer never enters a namespace."""


def hop_comments(tracer: Tracer, mon: Monitor, tid: str) -> list[str | None]:
    pkt = PacketInfo(proto="TCP", src="100.64.1.2", dst="100.64.1.3", sport=40000, dport=80, ip_id=1, tos=0,
                     ttl=64, iface_in=None, iface_out=None, seq=1)
    tracer._event(mon, TraceEvent(tid, "raw", "PREROUTING", "rule", 1, "CONTINUE", pkt))
    tracer._event(mon, TraceEvent(tid, *RULE[:2], "rule", RULE[2], "DROP", None))
    trace = tracer.correlator._traces["worker"][tid]
    return [h.comment for h in trace.hops]


def test_cached_hops_follow_the_namespace_rules_after_a_new_dump() -> None:
    tracer = Tracer(FakeThreads())  # type: ignore[arg-type]
    mon = Monitor("nx-n-worker", "worker", None, {**RAW, RULE: RuleInfo("before the reload", False)})  # type: ignore[arg-type]
    mon.ready.set()
    assert hop_comments(tracer, mon, "0000000a") == [None, "before the reload"]
    assert hop_comments(tracer, mon, "0000000b") == [None, "before the reload"]  # from the cache
    mon.rules = {**RAW, RULE: RuleInfo("after the reload", True)}  # what _refresh stores after a rule dump
    assert hop_comments(tracer, mon, "0000000c") == [None, "after the reload"]
    hop = tracer.correlator._traces["worker"]["0000000c"].hops[-1]
    assert hop.verdict == "REJECT"  # the new dump's REJECT target, not the cached DROP


def test_the_agent_client_reads_a_line_of_many_megabytes_and_the_lines_around_it() -> None:
    """A stand-in agent (a Python one-liner) writes a 24 MB answer between two small ones, in pieces."""
    big = 24 << 20
    script = (
        "import sys, time\n"
        "out = sys.stdout.buffer\n"
        "out.write(b'{\"first\":1}\\n{\"big\":\"'); out.flush()\n"
        f"for _ in range({big} // 65536): out.write(b'x' * 65536)\n"
        "out.write(b'\"}\\n{\"last'); out.flush(); time.sleep(0.05)\n"
        "out.write(b'\":3}\\n'); out.flush()\n"
    )
    agent = ProbeAgent()
    agent.proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        import time

        deadline = time.monotonic() + 60
        assert agent._readline(deadline) == b'{"first":1}'
        line = agent._readline(deadline)
        assert len(line) == big + len(b'{"big":""}') and line.startswith(b'{"big":"x') and line.endswith(b'x"}')
        assert agent._readline(deadline) == b'{"last":3}'
        assert agent._buf == b""
    finally:
        agent.proc.wait(timeout=10)
        assert agent.proc.stdout is not None
        agent.proc.stdout.close()
