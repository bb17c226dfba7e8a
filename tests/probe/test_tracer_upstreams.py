"""The tracer's ingress-upstream watches, fed synthetic kernel trace events (no namespace, no root).

What is proved: a marked upstream SYN that a rule drops settles a waiting probe only once every
upstream it needs has a dropped connection; a retransmitted SYN is not a second connection; each
dropped connection serves one probe (the oldest waiting); unmarked packets still go to the
correlator (probe paths) and marked ones never do. The engine's use of it on the real kernel is
tested in tests/lab/test_ingress_upstreams.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from netiso.backends.trace_parse import TRACE_DSCP, PacketInfo, tos_for
from netiso.probe.nftrace import RuleInfo, TraceEvent
from netiso.probe.tracer import Monitor, Tracer, describe_upstream_stop, parse_upstream

UP_DSCP = TRACE_DSCP + 1
CTL, B1, B2 = "100.64.2.1", "100.64.1.2", "100.64.1.3"
DROP_RULE = ("filter", "cali-tw-x", 60)


def packet(src: str, sport: int, dst: str, dport: int, *, dscp: int = UP_DSCP, seq: int = 1000) -> PacketInfo:
    return PacketInfo(proto="TCP", src=src, dst=dst, sport=sport, dport=dport, ip_id=sport, tos=tos_for(dscp),
                      ttl=64, iface_in=None, iface_out=None, seq=seq)


def events(tid: str, pkt: PacketInfo, verdict: str = "DROP") -> list[TraceEvent]:
    """What a node reports for one packet: the raw TRACE rule (with the packet), then the rule that decides."""
    return [TraceEvent(tid, "raw", "PREROUTING", "rule", 1, "CONTINUE", pkt),
            TraceEvent(tid, *DROP_RULE[:2], "rule", DROP_RULE[2], verdict, None)]


class FakeThreads:
    """The tracer needs its namespace threads only to start monitors, which these tests do by hand."""


def tracer_with_monitor() -> tuple[Tracer, Monitor]:
    tracer = Tracer(FakeThreads())  # type: ignore[arg-type]
    tracer.upstream_dscp = UP_DSCP
    rules = {DROP_RULE: RuleInfo("netiso:isolation=shop2 ingress drop; Drop if no policies passed packet", False)}
    mon = Monitor("nx-n-worker", "worker", None, rules)  # type: ignore[arg-type]
    mon.ready.set()
    tracer.monitors[mon.netns] = mon
    return tracer, mon


def feed(tracer: Tracer, mon: Monitor, evs: list[TraceEvent]) -> None:
    for ev in evs:
        tracer._event(mon, ev)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_a_probe_settles_only_when_every_upstream_was_dropped_once_and_retransmissions_do_not_count() -> None:
    async def go() -> None:
        tracer, mon = tracer_with_monitor()
        got = tracer.watch_upstreams([f"{CTL}>{B1}:8080", f"{CTL}>{B2}:8080"])
        assert got is not None
        _, watch = got
        feed(tracer, mon, events("a1", packet(CTL, 40000, B1, 8080)))
        assert not watch.fut.done()
        feed(tracer, mon, events("a2", packet(CTL, 40000, B1, 8080)))  # the same SYN, retransmitted
        assert not watch.fut.done() and watch.needs == {(CTL, B2, 8080)}
        feed(tracer, mon, events("a3", packet(CTL, 40001, B2, 8080), verdict="ACCEPT"))  # admitted: no settling
        assert not watch.fut.done()
        feed(tracer, mon, events("a4", packet(CTL, 40002, B2, 8080)))
        assert watch.fut.done()
        assert watch.fut.result().decision == "isolation shop2 ingress drop"
        assert describe_upstream_stop(watch).startswith(
            "dropped by isolation shop2 ingress drop (node worker filter cali-tw-x rule 60) on the proxy upstream "
            f"{CTL} -> {B1}:8080; dropped by ")

    run(go())


def test_each_dropped_connection_serves_one_waiting_probe_the_oldest_first() -> None:
    async def go() -> None:
        tracer, mon = tracer_with_monitor()
        first = tracer.watch_upstreams([f"{CTL}>{B1}:8080"])
        second = tracer.watch_upstreams([f"{CTL}>{B1}:8080"])
        assert first is not None and second is not None
        feed(tracer, mon, events("b1", packet(CTL, 41000, B1, 8080)))
        assert first[1].fut.done() and not second[1].fut.done()
        feed(tracer, mon, events("b2", packet(CTL, 41001, B1, 8080, seq=77)))
        assert second[1].fut.done()

    run(go())


def test_a_drop_of_another_source_or_port_settles_nothing_and_an_unwatched_probe_is_not_settled_later() -> None:
    async def go() -> None:
        tracer, mon = tracer_with_monitor()
        got = tracer.watch_upstreams([f"{CTL}>{B1}:8080"])
        assert got is not None
        key, watch = got
        feed(tracer, mon, events("c1", packet("100.64.2.9", 42000, B1, 8080)))  # another controller
        feed(tracer, mon, events("c2", packet(CTL, 42001, B1, 9090)))  # another port
        assert not watch.fut.done()
        tracer.unwatch(key)
        assert watch.fut.cancelled()
        feed(tracer, mon, events("c3", packet(CTL, 42002, B1, 8080)))  # nobody waits: forgotten
        assert tracer.watch_upstreams([]) is None

    run(go())


def test_marked_upstream_packets_stay_out_of_probe_paths_and_probe_packets_still_reach_the_correlator() -> None:
    async def go() -> None:
        tracer, mon = tracer_with_monitor()
        key, stop = tracer.expect(("TCP", "198.18.0.100", 50000, "198.18.0.12", 30080))
        probe_pkt = packet("198.18.0.100", 50000, "198.18.0.12", 30080, dscp=TRACE_DSCP)
        # the same trace id first carries an upstream SYN, then (the kernel reuses ids) the probe's SYN
        feed(tracer, mon, events("d1", packet(CTL, 43000, B1, 8080)))
        feed(tracer, mon, events("d1", probe_pkt))
        assert stop.done()  # the probe's own DROP settles it, as before
        path, _ = tracer.result(key, "dropped")
        assert [(h["table"], h["chain"], h["verdict"]) for h in path] == [("filter", "cali-tw-x", "DROP")]

    run(go())


def test_upstreams_are_not_followed_unless_the_tracer_was_started_with_their_mark() -> None:
    async def go() -> None:
        tracer, _ = tracer_with_monitor()
        tracer.upstream_dscp = None
        assert tracer.watch_upstreams([f"{CTL}>{B1}:8080"]) is None

    run(go())


@pytest.mark.parametrize("text", ["100.64.2.1", "100.64.2.1>100.64.1.2", ">1.2.3.4:80", "a>b:http"])
def test_malformed_upstreams_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="SRC>DST:PORT"):
        parse_upstream(text)


def test_a_drop_that_depends_on_connection_state_not_addresses_settles_no_upstream_watch() -> None:
    async def go() -> None:
        tracer, mon = tracer_with_monitor()
        invalid = ("filter", "cali-FORWARD", 39)
        mon.rules[invalid] = RuleInfo("netiso:calico=conntrack-invalid drop; conntrack INVALID", False)
        got = tracer.watch_upstreams([f"{CTL}>{B1}:8080"])
        assert got is not None
        pkt = packet(CTL, 44000, B1, 8080)
        feed(tracer, mon, [TraceEvent("e1", "raw", "PREROUTING", "rule", 1, "CONTINUE", pkt),
                           TraceEvent("e1", *invalid[:2], "rule", invalid[2], "DROP", None)])
        assert not got[1].fut.done()  # nginx's retransmitted SYN may well pass: nginx must answer
        feed(tracer, mon, events("e2", packet(CTL, 44001, B1, 8080)))  # the isolation rule: settles
        assert got[1].fut.done()

    run(go())
