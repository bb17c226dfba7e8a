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


def test_an_unknown_rule_asks_for_a_new_dump_at_each_event_until_one_knows_it() -> None:
    """A dump that failed (or raced the reload) leaves the rules as they were: the next event of
    the unknown rule must ask again rather than keep a comment-less hop for the rest of the run."""
    tracer = Tracer(FakeThreads())  # type: ignore[arg-type]
    mon = Monitor("nx-n-worker", "worker", None, dict(RAW))  # type: ignore[arg-type]
    asked: list[str] = []
    tracer._refresh = lambda m: asked.append(m.netns)  # type: ignore[method-assign]
    assert hop_comments(tracer, mon, "0000000a") == [None, None]
    assert hop_comments(tracer, mon, "0000000b") == [None, None]
    assert asked == ["nx-n-worker", "nx-n-worker"]
    mon.rules = {**RAW, RULE: RuleInfo("known at last", False)}
    assert hop_comments(tracer, mon, "0000000c") == [None, "known at last"]
    assert len(asked) == 2


def _attr(kind: int, value: bytes) -> bytes:
    import struct

    return struct.pack("HH", 4 + len(value), kind) + value + bytes(-len(value) % 4)


def test_decoded_events_differ_in_everything_their_raw_rule_part_differs_in() -> None:
    """The decoder reuses the rule part of events seen before: two events of one rule must still
    keep their own verdict, type and chain, and their own trace id and packet."""
    import struct

    from netiso.probe import nftrace as nt

    def event(tid: str, chain: bytes, kind: int, code: int | None, handle: int | None = 7) -> nt.TraceEvent:
        body = bytes(4) + _attr(nt.TRACE_ID, bytes.fromhex(tid)) + _attr(nt.TRACE_TABLE, b"filter\0")
        body += _attr(nt.TRACE_CHAIN, chain) + _attr(nt.TRACE_TYPE, struct.pack("!I", kind))
        if handle is not None:
            body += _attr(nt.TRACE_RULE_HANDLE, struct.pack("!Q", handle))
        if code is not None:
            body += _attr(nt.TRACE_VERDICT, _attr(1, struct.pack("!i", code)))
        got = nt.decode_trace(body)
        assert got is not None
        return got

    drop, accept = event("00000001", b"FORWARD\0", 3, 0), event("00000002", b"FORWARD\0", 3, 1)
    assert (drop.verdict, accept.verdict, drop.trace_id, accept.trace_id) == ("DROP", "ACCEPT", "00000001", "00000002")
    other_chain = event("00000003", b"INPUT\0", 3, 0)
    assert (other_chain.chain, other_chain.verdict) == ("INPUT", "DROP")
    end = event("00000004", b"FORWARD\0", 3, -1, handle=None)
    assert (end.kind, end.handle, end.verdict) == ("end", None, "CONTINUE")
    policy = event("00000005", b"FORWARD\0", 1, None, handle=None)
    assert policy.kind == "policy"
    assert event("00000006", b"FORWARD\0", 3, 0) == nt.TraceEvent("00000006", "filter", "FORWARD", "rule", 7, "DROP", None)
