"""The trace readers on REAL samples (no root): xtables-monitor text and raw netlink events.

The samples in ``samples/trace/`` were recorded from one lab run by ``samples/record_samples.py``
(kernel 6.18, iptables-nft 1.8.9): the same probe packets seen by ``xtables-monitor --trace``
and by a netlink trace socket, the nf_tables rule dumps, and per probe its 4-tuple and the
oracle's verdict and decidedBy for the flow. The probes ran one at a time, so every packet of
each probe is in the samples.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from netiso.backends.trace_parse import (
    Correlator,
    TraceHop,
    decisions_of,
    parse_packet,
    parse_trace,
    read_traces,
)
from netiso.oracle.decided import summarize
from netiso.probe import nftrace

SAMPLES = Path(__file__).parent / "samples" / "trace"
NODES = ("control-plane", "worker", "worker2")
VERDICTS = {"connected": "allowed", "TimeoutError": "dropped", "ConnectionRefusedError": "refused"}


def monitor_lines(node: str) -> list[str]:
    return (SAMPLES / f"{node}.xtables-monitor.txt").read_text().splitlines()


def netlink_events(node: str) -> list[nftrace.TraceEvent]:
    events = []
    for line in (SAMPLES / f"{node}.netlink.hex").read_text().split():
        for kind, _flags, payload in nftrace.messages(bytes.fromhex(line)):
            if kind == (nftrace.NFNL_SUBSYS_NFTABLES << 8) | nftrace.NFT_MSG_TRACE:
                event = nftrace.decode_trace(payload)
                assert event is not None
                events.append(event)
    return events


def rule_dump(node: str) -> dict[tuple[str, str, int], nftrace.RuleInfo]:
    rules = {}
    for line in (SAMPLES / f"{node}.rules.hex").read_text().split():
        for kind, _flags, payload in nftrace.messages(bytes.fromhex(line)):
            if kind == (nftrace.NFNL_SUBSYS_NFTABLES << 8) | nftrace.NFT_MSG_NEWRULE:
                decoded = nftrace.decode_rule(payload)
                assert decoded is not None
                table, chain, handle, info = decoded
                rules[(table, chain, handle)] = info
    return rules


def probes() -> list[dict[str, Any]]:
    return json.loads((SAMPLES / "probes.json").read_text())


def correlate_monitor_lines(order: str = "node") -> tuple[Correlator, list[tuple[str, TraceHop]]]:
    stops: list[tuple[str, TraceHop]] = []
    corr = Correlator(on_stop=lambda key, hop: stops.append((key, hop)))
    for i, p in enumerate(probes()):
        corr.expect(str(i), tuple(p["tuple5"]))  # type: ignore[arg-type]
    lines = [(node, line) for node in NODES for line in monitor_lines(node)]
    if order == "reversed-nodes":  # a later node's lines first: monitors are read concurrently
        lines = [(node, line) for node in reversed(NODES) for line in monitor_lines(node)]
    for node, line in lines:
        corr.feed(node, line)
    return corr, stops


def test_every_monitor_line_is_a_packet_or_a_rule_line() -> None:
    lines = [line for node in NODES for line in monitor_lines(node)]
    assert len(lines) > 150
    unparsed = [line for line in lines if parse_packet(line) is None and parse_trace(line) is None]
    assert unparsed == []


def test_monitor_lines_name_tables_chains_handles_and_numeric_verdicts() -> None:
    hops = [h for t in read_traces(monitor_lines("worker"), "worker") for h in t.hops]
    verdicts = {h.verdict.split(":")[0] for h in hops}
    assert {"ACCEPT", "DROP", "JUMP", "CONTINUE", "RETURN"} <= verdicts  # 0xfffffffb is named RETURN
    assert {h.table for h in hops} >= {"raw", "nat", "filter"}
    assert all(h.handle is not None for h in hops if not h.verdict.startswith(("ACCEPT", "DROP")) and h.rule)
    drop = next(h for h in hops if h.verdict == "DROP" and h.decision)
    assert drop.chain.startswith("cali-tw-") and drop.decision == "isolation shop ingress drop"
    assert drop.comment is not None and "Drop if no policies passed packet" in drop.comment


def test_each_recorded_probe_yields_the_oracles_decision_from_the_monitor_output() -> None:
    corr, _ = correlate_monitor_lines()
    for i, p in enumerate(probes()):
        verdict = VERDICTS[p["socket"]]
        assert verdict == p["verdict"], p["flow"]
        path = corr.path(str(i))
        assert path, f"no trace for {p['flow']}"
        assert summarize(decisions_of(path), verdict) == p["decidedBy"], p["flow"]


def test_a_packet_is_followed_across_dnat_vxlan_and_masquerade_onto_the_endpoint_node() -> None:
    corr, _ = correlate_monitor_lines()
    index = next(i for i, p in enumerate(probes()) if p["flow"] == "client:alice -> nodeport:shop/web@worker2")
    path = corr.path(str(index))
    assert path[0].node == "worker2" and path[-1].node == "worker"
    assert any(h.table == "nat" and h.chain.startswith("KUBE-SEP-") for h in path if h.node == "worker2")
    assert any(h.decision == "masquerade kube-proxy" for h in path if h.node == "worker2")
    assert path[-1].verdict == "DROP" and path[-1].decision == "isolation shop ingress drop"


def test_the_correlation_does_not_depend_on_which_monitor_is_read_first() -> None:
    forward, _ = correlate_monitor_lines()
    backward, _ = correlate_monitor_lines("reversed-nodes")
    for i in range(len(probes())):
        assert forward.path(str(i)) == backward.path(str(i))


def test_a_drop_is_reported_once_per_probe_with_the_rule_and_a_reject_as_reject() -> None:
    _, stops = correlate_monitor_lines()
    by_probe = {key: hop for key, hop in stops}
    assert len(by_probe) == len(stops)  # once per probe, retransmissions ignored
    expected = {str(i): p["decidedBy"] for i, p in enumerate(probes()) if p["verdict"] in ("dropped", "refused")}
    assert {k: h.decision for k, h in by_probe.items()} == expected
    reject = next(h for h in by_probe.values() if h.decision and h.decision.endswith("reject"))
    assert reject.verdict == "REJECT" and reject.chain == "KUBE-SERVICES"


def test_netlink_events_are_the_same_rules_and_verdicts_the_monitor_printed() -> None:
    for node in ("worker", "worker2"):
        text = {t.trace_id: t for t in read_traces(monitor_lines(node), node)}
        events = [e for e in netlink_events(node) if e.kind != "end"]
        ids = {e.trace_id for e in events}
        assert ids == set(text), node  # the same packets ...
        rules = rule_dump(node)
        for tid in ids:
            ours = [nftrace.hop_of(node, e, rules) for e in events if e.trace_id == tid]
            theirs = text[tid].hops
            # ... the same rules in the same order, with the same verdicts and comments
            assert [(h.table, h.chain, h.handle, h.verdict, h.comment) for h in ours] == \
                   [(h.table, h.chain, h.handle, h.verdict, h.comment) for h in theirs]


def test_netlink_packet_headers_match_the_monitors_packet_lines() -> None:
    text = {t.trace_id: t for t in read_traces(monitor_lines("worker"), "worker")}
    for event in netlink_events("worker"):
        if event.packet is None:
            continue
        printed = [p for p in text[event.trace_id].packets]
        assert any((p.proto, p.src, p.sport, p.dst, p.dport, p.ip_id, p.tos, p.ttl) ==
                   (event.packet.proto, event.packet.src, event.packet.sport, event.packet.dst,
                    event.packet.dport, event.packet.ip_id, event.packet.tos, event.packet.ttl) for p in printed)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_netlink_events_in_any_node_interleaving_give_each_probe_the_oracles_decision(seed: int) -> None:
    rules = {node: rule_dump(node) for node in NODES}
    stream = [(node, e) for node in NODES for e in netlink_events(node)]
    # keep each node's own order (one socket), interleave the nodes at random
    rng = random.Random(seed)
    queues = {node: [e for n, e in stream if n == node] for node in NODES}
    corr = Correlator()
    for i, p in enumerate(probes()):
        corr.expect(str(i), tuple(p["tuple5"]))  # type: ignore[arg-type]
    while any(queues.values()):
        node = rng.choice([n for n, q in queues.items() if q])
        event = queues[node].pop(0)
        corr.feed_event(node, event.trace_id, event.packet, nftrace.hop_of(node, event, rules[node]))
    for i, p in enumerate(probes()):
        assert summarize(decisions_of(corr.path(str(i))), p["verdict"]) == p["decidedBy"], p["flow"]


def test_rule_dump_reads_the_comment_of_every_deciding_rule() -> None:
    comments = [info.comment for info in rule_dump("worker").values() if info.comment]
    tokens = {c.split(";")[0] for c in comments if c.startswith("netiso:")}
    assert "netiso:isolation=shop ingress drop" in tokens
    assert "netiso:masquerade=kube-proxy" in tokens
    assert any(t.startswith("netiso:kube-proxy=tools/ghost") for t in tokens)
    assert any(info.rejects for info in rule_dump("worker").values())


def test_two_probes_whose_packets_leave_alike_are_not_followed_onto_the_next_node() -> None:
    from netiso.backends.trace_parse import PacketInfo

    def pkt(src: str, sport: int, dst: str, dport: int, ttl: int) -> PacketInfo:
        return PacketInfo("TCP", src, dst, sport, dport, ip_id=7, tos=0xB4, ttl=ttl, iface_in=None, iface_out=None, seq=99)

    drop = TraceHop("n2", "filter", "cali-tw-x", 5, "DROP", decision="isolation shop ingress drop")
    stops: list[str] = []
    corr = Correlator(on_stop=lambda key, hop: stops.append(key))
    corr.expect("a", ("TCP", "198.18.0.100", 1000, "198.18.0.11", 30000))
    corr.expect("b", ("TCP", "198.18.0.101", 2000, "198.18.0.12", 30000))
    # both DNATed to the same endpoint, same IP ID and sequence number (as unlikely as it gets)
    corr.feed_event("n1", "t1", pkt("198.18.0.100", 1000, "198.18.0.11", 30000, 64), None)
    corr.feed_event("n1", "t1", pkt("198.18.0.100", 1000, "100.64.1.1", 8080, 63), None)
    corr.feed_event("n3", "t3", pkt("198.18.0.101", 2000, "198.18.0.12", 30000, 64), None)
    corr.feed_event("n3", "t3", pkt("198.18.0.101", 2000, "100.64.1.1", 8080, 63), None)
    corr.feed_event("n2", "t2", pkt("100.64.0.1", 5555, "100.64.1.1", 8080, 62), drop)
    assert stops == []  # nobody is settled by a drop that could be either probe's
    assert all(h.node != "n2" for key in ("a", "b") for h in corr.path(key))


def test_a_packet_that_comes_back_to_its_first_node_through_another_is_followed_there() -> None:
    from netiso.backends.trace_parse import PacketInfo

    def pkt(src: str, dst: str, dport: int, ttl: int) -> PacketInfo:
        return PacketInfo("TCP", src, dst, 4000, dport, ip_id=11, tos=0xB4, ttl=ttl, iface_in=None, iface_out=None, seq=5)

    allow = TraceHop("worker", "filter", "cali-pri-kns.shop", 90, "CONTINUE", decision="profile shop ingress allow")
    corr = Correlator()
    corr.expect("p", ("TCP", "100.64.1.2", 4000, "198.18.0.12", 30001))
    corr.feed_event("worker", "a", pkt("100.64.1.2", "198.18.0.12", 30001, 64), None)  # pod -> worker2's NodePort
    corr.feed_event("worker2", "b", pkt("198.18.0.11", "198.18.0.12", 30001, 63), None)
    corr.feed_event("worker2", "b", pkt("198.18.0.11", "100.64.1.1", 8080, 63), None)  # DNAT to a pod on worker
    corr.feed_event("worker", "c", pkt("100.64.2.0", "100.64.1.1", 8080, 62), allow)  # back on worker
    assert [h.decision for h in corr.path("p")] == ["profile shop ingress allow"]


def test_a_host_sent_packet_orders_its_sender_before_the_receiver_though_their_ttls_tie() -> None:
    """``node:worker2 -> nodeport@worker``: worker2's own packet reaches worker with the TTL it left
    with (a host does not decrement what it sends), so TTL alone cannot order the two nodes; the
    trace that starts in OUTPUT is the sender. Whatever order the events arrive in, the path is the same."""
    from netiso.backends.trace_parse import PacketInfo, PacketTrace, TraceHop, _hop_order

    pkt = PacketInfo("TCP", "198.18.0.12", "198.18.0.11", 40000, 30000, 7, 0xb4, 64, None, "eth0")

    def trace(node: str, chain: str) -> PacketTrace:
        return PacketTrace(node, "1", [pkt], [TraceHop(node, "raw", chain, 2, "CONTINUE")])

    sender, receiver = trace("worker2", "OUTPUT"), trace("worker", "PREROUTING")
    for arrival in ([sender, receiver], [receiver, sender]):
        assert [t.node for t in sorted(arrival, key=_hop_order)] == ["worker2", "worker"]
