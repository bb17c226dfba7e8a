"""Read ``xtables-monitor --trace`` output: per packet, the rules it met and the one that decided.

Backend-generic on purpose: the lab reads the monitors it runs in its node namespaces, and the
cluster backends can read the same tool's output from a node (kind: ``docker exec``) as
evidence. Only the text format of iptables-nft's ``xtables-monitor`` (iptables 1.8.x,
``iptables/xtables-monitor.c``: ``trace_print_packet`` / ``trace_print_rule``) is assumed::

    PACKET: 2 ea95d5c2 IN=eth0 ... SRC=198.18.0.100 DST=198.18.0.12 LEN=60 TOS=0xb4 TTL=64 ID=45517 DF SPORT=57376 DPORT=30000 SYN
     TRACE: 2 ea95d5c2 nat:KUBE-SEP-X:rule:0x22:ACCEPT  -4 -t nat -A KUBE-SEP-X -p tcp -j DNAT --to-destination 100.64.1.1:8080
     TRACE: 2 ea95d5c2 filter:cali-tw-cali47ec9bce1d1:rule:0x3f:DROP  -4 -t filter -A cali-tw-... -j DROP
     TRACE: 2 328eab1b filter:cali-pi-x:rule:0x54:0xfffffffb  -4 -t filter -A cali-pi-x ... -j RETURN
     TRACE: 2 328eab1b nat:PREROUTING:policy:ACCEPT

The second field is the address family, the third the trace id: one id per packet *per
namespace* (a packet crossing two nodes has two ids). A ``PACKET:`` line precedes each hook's
rules and shows the packet as that hook sees it (after DNAT in the hooks that follow it).
Verdicts the tool prints as numbers are named (``0xfffffffb`` is NFT_RETURN); a rule whose
target is REJECT is reported as ``REJECT`` (the kernel's verdict is DROP plus an ICMP error).

Following one packet across nodes (:class:`Correlator`): its first trace is found by the
original 5-tuple the prober knows (protocol, source, source port, destination, port); DNAT,
tunnels and MASQUERADE then change addresses and ports but not the IP ID (nor a TCP SYN's
sequence number, where the reader sees it: netlink events do, xtables-monitor's text does
not), so the next node's trace is the one whose first packet has the same ID, sequence number,
protocol and the destination the previous node sent it to. Two probes whose packets leave
alike are followed no further than their first node (no guess). Traces that match nothing yet are kept a while (monitors of
different nodes are read concurrently, so a later node's lines can arrive first). The same
correlation takes decoded netlink events (``netiso.probe.nftrace``) through ``feed_event``.

``TRACE_DSCP`` lives here because both sides need it: the lab's TRACE rules match it, the
probe sockets set it.
"""

from __future__ import annotations

import dataclasses
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from netiso.oracle.decided import Decision, from_comment, host_stack, summarize

TRACE_DSCP = 0x2D  # 45: the DSCP of traced probes; no standard per-hop behaviour, matched by no lab rule


def tos_for(dscp: int = TRACE_DSCP) -> int:
    """The ``IP_TOS`` byte of a socket whose packets carry ``dscp`` (DSCP is the upper six bits).

    >>> hex(tos_for())
    '0xb4'
    """
    if not 0 <= dscp < 64:
        raise ValueError(f"DSCP must be 0..63, not {dscp}")
    return dscp << 2


NFT_VERDICTS = {
    "0xffffffff": "CONTINUE", "0xfffffffe": "BREAK", "0xfffffffd": "JUMP", "0xfffffffc": "GOTO",
    "0xfffffffb": "RETURN",
}
STOP_VERDICTS = ("DROP", "REJECT")
MAX_PENDING = 4096

_TRACE_RE = re.compile(r"^\s*TRACE:\s+(\d+)\s+([0-9a-f]+)\s+([^:\s]+):([^:\s]+):(rule|policy|return)(?::(0x[0-9a-f]+))?"
                       r"(?::(\S+))?\s*(.*)$")
_COMMENT_RE = re.compile(r'--comment\s+(?:"((?:[^"\\]|\\.)*)"|(\S+))')
_PACKET_RE = re.compile(r"^\s*PACKET:\s+(\d+)\s+([0-9a-f]+)\s+(.*)$")


@dataclass(frozen=True)
class PacketInfo:
    """What a ``PACKET:`` line says about the packet at that hook."""

    proto: str | None  # TCP | UDP | ICMP | None (unknown)
    src: str | None
    dst: str | None
    sport: int | None
    dport: int | None
    ip_id: int | None
    tos: int | None
    ttl: int | None
    iface_in: str | None
    iface_out: str | None
    seq: int | None = None  # TCP sequence number: kept by DNAT, MASQUERADE and tunnels, like the IP ID

    @property
    def chain_key(self) -> tuple[str, int, int | None, str, int] | None:
        """What identifies this packet on the next node: protocol, IP ID, TCP seq, destination."""
        if self.proto is None or self.ip_id is None or self.dst is None or self.dport is None:
            return None
        return (self.proto, self.ip_id, self.seq, self.dst, self.dport)

    @property
    def tuple5(self) -> tuple[str | None, str | None, int | None, str | None, int | None]:
        return (self.proto, self.src, self.sport, self.dst, self.dport)


@dataclass(frozen=True)
class TraceHop:
    """One rule (or built-in chain policy) a traced packet met, in the order it met them."""

    node: str
    table: str
    chain: str
    handle: int | None  # rule handle; None for a chain policy
    verdict: str  # ACCEPT DROP REJECT RETURN CONTINUE JUMP:<chain> GOTO:<chain> ...
    rule: str = ""  # the rule as iptables-save would print it ("" for a policy)
    comment: str | None = None
    decision: str | None = None  # str(Decision) when the comment carries a netiso token

    def to_dict(self) -> dict[str, Any]:
        """The hop as a JSON-ready dict, without ``asdict``'s recursive deep copy (every field is a str, int or None)."""
        return {name: getattr(self, name) for name in _HOP_FIELDS}

    @property
    def stops(self) -> bool:
        return self.verdict in STOP_VERDICTS


_HOP_FIELDS = tuple(f.name for f in dataclasses.fields(TraceHop))


def parse_packet(line: str) -> tuple[str, PacketInfo] | None:
    """``(trace id, packet)`` of a ``PACKET:`` line, None for any other line.

    >>> tid, p = parse_packet("PACKET: 2 ab IN=eth0 SRC=1.2.3.4 DST=5.6.7.8 LEN=60 TOS=0xb4 ID=7 DF SPORT=9 DPORT=80 SYN")
    >>> tid, p.proto, p.src, p.sport, p.dst, p.dport, p.ip_id, p.tos
    ('ab', 'TCP', '1.2.3.4', 9, '5.6.7.8', 80, 7, 180)
    """
    m = _PACKET_RE.match(line)
    if not m:
        return None
    fields: dict[str, str] = {}
    flags: set[str] = set()
    for word in m.group(3).split():
        key, sep, value = word.partition("=")
        if sep:
            fields[key] = value
        else:
            flags.add(word)
    proto = fields.get("PROTO")
    if proto is None:
        if flags & {"SYN", "ACK", "FIN", "RST", "PSH", "URG"} or "SEQ" in fields:
            proto = "TCP"
        elif "SPORT" in fields:
            proto = "UDP"
        elif "TYPE" in fields:
            proto = "ICMP"

    def num(key: str, base: int = 10) -> int | None:
        value = fields.get(key)
        try:
            return int(value, base) if value is not None else None
        except ValueError:
            return None

    info = PacketInfo(proto=proto.upper() if proto else None, src=fields.get("SRC"), dst=fields.get("DST"),
                      sport=num("SPORT"), dport=num("DPORT"), ip_id=num("ID"), tos=num("TOS", 16), ttl=num("TTL"), seq=num("SEQ"),
                      iface_in=fields.get("IN"), iface_out=fields.get("OUT"))
    return m.group(2), info


def parse_trace(line: str, node: str = "") -> tuple[str, TraceHop] | None:
    """``(trace id, hop)`` of a ``TRACE:`` line, None for any other line.

    >>> tid, hop = parse_trace(' TRACE: 2 ab filter:cali-tw-x:rule:0x3f:DROP  -4 -t filter -A cali-tw-x '
    ...     '-m comment --comment "netiso:isolation=shop ingress drop; Drop if no policies passed packet" -j DROP', "w")
    >>> hop.chain, hop.handle, hop.verdict, hop.decision
    ('cali-tw-x', 63, 'DROP', 'isolation shop ingress drop')
    >>> parse_trace(" TRACE: 2 ab nat:PREROUTING:policy:ACCEPT ")[1].verdict
    'ACCEPT'
    """
    m = _TRACE_RE.match(line)
    if not m:
        return None
    _family, tid, table, chain, kind, handle, verdict, rest = m.groups()
    if kind == "policy":  # "policy:ACCEPT": the handle slot holds the verdict
        verdict, handle = verdict or handle or "", None
    verdict = verdict or ""
    if ":" in verdict:  # JUMP:chain / GOTO:chain
        head, _, target = verdict.partition(":")
        verdict = f"{NFT_VERDICTS.get(head, head)}:{target}"
    else:
        verdict = NFT_VERDICTS.get(verdict, verdict)
    rule = rest.strip()
    if rule.startswith("-4 ") or rule.startswith("-6 "):
        rule = rule[3:]
    if verdict == "DROP" and re.search(r"\s-j REJECT(\s|$)", rule):
        verdict = "REJECT"
    comment = None
    cm = _COMMENT_RE.search(rule)
    if cm:
        comment = cm.group(1) if cm.group(1) is not None else cm.group(2)
    decision = from_comment(comment)
    return tid, TraceHop(node=node, table=table, chain=chain, handle=int(handle, 16) if handle else None,
                         verdict=verdict, rule=rule, comment=comment, decision=str(decision) if decision else None)


@dataclass
class PacketTrace:
    """Everything one namespace reported about one packet (one trace id)."""

    node: str
    trace_id: str
    packets: list[PacketInfo] = field(default_factory=list)
    hops: list[TraceHop] = field(default_factory=list)

    @property
    def first(self) -> PacketInfo | None:
        return self.packets[0] if self.packets else None

    @property
    def last(self) -> PacketInfo | None:
        return self.packets[-1] if self.packets else None

    @property
    def stop(self) -> TraceHop | None:
        return next((h for h in self.hops if h.stops), None)

    def interesting_hops(self) -> list[TraceHop]:
        """Rules without the raw table (the tracing rule itself) and the mangle built-in policies."""
        return [h for h in self.hops if h.table != "raw" and not (h.table == "mangle" and h.handle is None)
                and h.verdict != "END"]


def read_traces(lines: Iterable[str], node: str = "") -> list[PacketTrace]:
    """Group a monitor's lines (one namespace) into packet traces, in order of first appearance.

    >>> ts = read_traces(["PACKET: 2 a1 SRC=1.1.1.1 DST=2.2.2.2 ID=5 SPORT=1 DPORT=80 SYN",
    ...                   " TRACE: 2 a1 nat:PREROUTING:policy:ACCEPT "], "n1")
    >>> [(t.node, t.trace_id, len(t.packets), len(t.hops)) for t in ts]
    [('n1', 'a1', 1, 1)]
    """
    traces: dict[str, PacketTrace] = {}
    for line in lines:
        feed_line(traces, line, node)
    return list(traces.values())


def feed_line(traces: dict[str, PacketTrace], line: str, node: str) -> PacketTrace | None:
    """Add one line to ``traces`` (by trace id); returns the trace it extended, if any."""
    pkt = parse_packet(line)
    if pkt is not None:
        tid, info = pkt
        trace = traces.setdefault(tid, PacketTrace(node, tid))
        if not trace.packets or trace.packets[-1] != info:
            trace.packets.append(info)
        return trace
    hop = parse_trace(line, node)
    if hop is not None:
        tid, h = hop
        trace = traces.setdefault(tid, PacketTrace(node, tid))
        trace.hops.append(h)
        return trace
    return None


def _trace_id_of(line: str) -> str | None:
    parts = line.split(None, 3)
    return parts[2] if len(parts) >= 3 and parts[0] in ("PACKET:", "TRACE:") else None


def decisions_of(hops: Iterable[TraceHop]) -> list[Decision]:
    """The netiso decisions the hops' rule comments carry, in path order."""
    out = []
    for h in hops:
        d = from_comment(h.comment)
        if d is not None:
            out.append(d)
    return out


HOOKS = ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")


def decided_by(hops: list[TraceHop], verdict: str) -> str | None:
    """The ``decidedBy`` a trace shows for a probe that ended ``verdict``.

    The rule comments' decisions first (:func:`netiso.oracle.decided.summarize`). A refused
    probe that no rule refused was refused by whoever received it; when that is a node's own
    stack (the first packet's last netfilter hook on its last node is INPUT: delivered
    locally, nothing listens) it is ``host-stack node:<node> no-listener reject``, the words the
    oracle uses. A pod's stack refusing stays None (its last hook is POSTROUTING on its node).

    >>> hops = [TraceHop("worker", "filter", "cali-wl-to-host", 9, "ACCEPT"),
    ...         TraceHop("worker", "nat", "INPUT", None, "ACCEPT")]
    >>> decided_by(hops, "refused")
    'host-stack node:worker no-listener reject'
    >>> decided_by(hops, "dropped") is None
    True
    """
    decided = summarize(decisions_of(hops), verdict)
    if decided is None and verdict == "refused" and hops:
        last = hops[-1].node
        hook = next((h.chain for h in reversed(hops) if h.node == last and h.chain in HOOKS), None)
        if hook == "INPUT" and not any(h.stops for h in hops):
            return str(host_stack(last))
    return decided


# --------------------------------------------------------------------------- correlation

Tuple5 = tuple[str, str, int, str, int]  # proto, src, sport, dst, dport


@dataclass
class _Probe:
    key: str
    tuple5: Tuple5
    traces: list[PacketTrace] = field(default_factory=list)  # first attempt, one per node, path order
    nodes: set[str] = field(default_factory=set)
    next_keys: set[tuple[str, int, int | None, str, int]] = field(default_factory=set)  # PacketInfo.chain_key
    stopped: bool = False


class Correlator:
    """Assigns monitor lines of several namespaces to the probes that caused them.

    ``expect(key, tuple5)`` before the probe's first packet leaves; ``feed(node, line)`` for
    every monitor line; ``on_stop(key, hop)`` is called once per probe when a rule drops or
    rejects its first packet; ``path(key)`` gives the hops of its first packet, node by node.
    """

    def __init__(self, on_stop: Callable[[str, TraceHop], None] | None = None) -> None:
        self.on_stop = on_stop
        self._probes: dict[str, _Probe] = {}
        self._by_tuple: dict[Tuple5, _Probe] = {}
        self._traces: dict[str, dict[str, PacketTrace]] = {}  # node -> trace id -> trace
        self._owner: dict[tuple[str, str], _Probe | None] = {}  # (node, trace id) -> probe (None: ignored)
        self._pending: OrderedDict[tuple[str, str], PacketTrace] = OrderedDict()
        self._by_chain: dict[tuple[str, int, int | None, str, int], _Probe | None] = {}  # None: ambiguous

    def expect(self, key: str, tuple5: Tuple5) -> None:
        probe = _Probe(key, tuple5)
        self._probes[key] = probe
        self._by_tuple[tuple5] = probe

    def forget(self, key: str) -> None:
        probe = self._probes.pop(key, None)
        if probe is None:
            return
        if self._by_tuple.get(probe.tuple5) is probe:
            del self._by_tuple[probe.tuple5]
        for chained in probe.next_keys:
            if self._by_chain.get(chained) is probe:
                del self._by_chain[chained]

    def feed(self, node: str, line: str) -> None:
        """One line of ``node``'s ``xtables-monitor --trace``."""
        traces = self._traces.setdefault(node, {})
        trace = traces.get(_trace_id_of(line) or "")
        n_packets, n_hops = (len(trace.packets), len(trace.hops)) if trace is not None else (0, 0)
        trace = feed_line(traces, line, node)
        if trace is not None:
            self._consider(traces, trace, len(trace.packets) > n_packets,
                           trace.hops[-1] if len(trace.hops) > n_hops else None)

    def feed_event(self, node: str, trace_id: str, packet: PacketInfo | None, hop: TraceHop | None) -> None:
        """One decoded trace event of ``node`` (``netiso.probe.nftrace``)."""
        traces = self._traces.setdefault(node, {})
        trace = traces.get(trace_id)
        if trace is None:
            trace = traces[trace_id] = PacketTrace(node, trace_id)
        new_packet = packet is not None and (not trace.packets or trace.packets[-1] != packet)
        if new_packet:
            trace.packets.append(packet)  # type: ignore[arg-type]
        if hop is not None:
            trace.hops.append(hop)
        self._consider(traces, trace, new_packet, hop)

    def _consider(self, traces: dict[str, PacketTrace], trace: PacketTrace, new_packet: bool,
                  new_hop: TraceHop | None) -> None:
        node = trace.node
        if len(traces) > MAX_PENDING:  # old traces of finished probes
            for tid in list(traces)[: len(traces) // 2]:
                traces.pop(tid)
                self._owner.pop((node, tid), None)
                self._pending.pop((node, tid), None)
        ident = (node, trace.trace_id)
        if ident in self._owner:
            probe = self._owner[ident]
            if probe is not None:
                if new_packet:
                    self._learn(probe, trace)
                if new_hop is not None and new_hop.stops:
                    self._stop(probe, new_hop)
            return
        if trace.first is None or not self._assign(trace):
            self._pending[ident] = trace
            while len(self._pending) > MAX_PENDING:
                self._pending.popitem(last=False)
        else:
            self._pending.pop(ident, None)

    def _assign(self, trace: PacketTrace) -> bool:
        first = trace.first
        assert first is not None
        ident = (trace.node, trace.trace_id)
        probe = None
        if None not in first.tuple5:
            probe = self._by_tuple.get(first.tuple5)  # type: ignore[arg-type]
            if probe is not None and trace.node in probe.nodes:
                self._owner[ident] = None  # a retransmission: only the first packet counts
                return True
        if probe is None and first.chain_key is not None:
            # may be a node already crossed: worker -> worker2 (NodePort, SNAT) -> back to worker
            probe = self._by_chain.get(first.chain_key)
        if probe is None:
            return False
        self._owner[ident] = probe
        probe.traces.append(trace)
        # path order = hop order: each forwarding node decrements the TTL its successor sees; a packet a
        # node sends itself reaches the next node with the same TTL, so on a tie the sender (its trace
        # starts in OUTPUT) comes first - otherwise the order would follow event arrival
        probe.traces.sort(key=_hop_order)
        probe.nodes.add(trace.node)
        self._learn(probe, trace)
        stop = trace.stop
        if stop is not None:
            self._stop(probe, stop)
        return True

    def _learn(self, probe: _Probe, trace: PacketTrace) -> None:
        """The packet as it leaves this node identifies its trace on the next node."""
        last = trace.last
        key = last.chain_key if last is not None else None
        if key is None or key in probe.next_keys:
            return
        probe.next_keys.add(key)
        if key in self._by_chain and self._by_chain[key] is not probe:
            self._by_chain[key] = None  # two probes' packets look alike: follow neither
            return
        self._by_chain[key] = probe
        for ident, waiting in list(self._pending.items()):
            first = waiting.first
            if first is not None and first.chain_key == key and ident in self._pending and self._assign(waiting):
                self._pending.pop(ident, None)

    def _stop(self, probe: _Probe, hop: TraceHop) -> None:
        if not probe.stopped:
            probe.stopped = True
            if self.on_stop is not None:
                self.on_stop(probe.key, hop)

    def path(self, key: str) -> list[TraceHop]:
        probe = self._probes.get(key)
        if probe is None:
            return []
        return [h for t in probe.traces for h in t.interesting_hops()]


def _hop_order(trace: PacketTrace) -> tuple[int, int]:
    """Sort key of a probe's per-node traces: higher TTL first, a locally sent packet before its receiver."""
    ttl = trace.first.ttl if trace.first is not None and trace.first.ttl is not None else 0
    sent_here = bool(trace.hops) and trace.hops[0].chain == "OUTPUT"
    return (-ttl, 0 if sent_here else 1)
