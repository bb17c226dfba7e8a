"""The probe agent's side of tracing: the kernel's trace events, probes matched to their packets.

Why in the agent: it is the only process that knows each probe socket's 4-tuple the moment the
first packet leaves, and the only one that can end a probe early. So the agent opens, in every
traced node namespace, a netlink socket subscribed to nf_tables trace events
(:mod:`netiso.probe.nftrace`; the events ``xtables-monitor --trace`` prints, without its
per-event rule lookup that loses events under a burst of probes), feeds them to a
:class:`~netiso.backends.trace_parse.Correlator`, and resolves a probe's *settle* future when a
rule drops its first packet. The engine races that future against the socket: a dropped probe
is known in milliseconds instead of after its timeout, with the rule that dropped it. REJECT
is not settled here: the ICMP error reaches the socket just as fast and is the real observation.

The sockets live in this process (no extra process to register with the run); like the probe
sockets they pin their namespace until released (``trace_stop`` / ``release``).

Ingress probes: the client's connection ends at the controller, and what decides an ingress
flow's fate may be nginx's own connection to the backend, which carries no probe mark; a drop
there used to cost nginx's connect timeout before its 504. When started with ``upstream_dscp``
the tracer also follows the SYNs that a controller pod marks with that DSCP (the lab's mangle
rule, ``netiso.backends.lab.trace.upstream_mark_rules``), kept apart from the probes' own traces
(never in a path, never a ``decidedBy``). A probe that passed its request to the controller
registers the connections nginx will open for it (``ProbeRequest.upstreams``: controller pod ->
each endpoint of the upstream serving its Host; :meth:`Tracer.watch_upstreams`); each new
connection that an isolation rule drops ("no policy admitted it") is assigned to the oldest
waiting probe that needs that (source, destination, port), and a probe is settled as dropped once
every one of its upstreams has one. Why that is sound although a SYN cannot be tied to one
request: the rules are static while the probes run, and whether policy admits a SYN depends on
its addresses, destination port and protocol only, never on the source port or on conntrack
state, so the isolation rule that drops one SYN of the controller to an endpoint drops every one
(other drops, e.g. conntrack INVALID, settle nothing); and if every endpoint of the upstream is dropped, nginx can only
answer 504 after its connect timeouts, which the engine classifies as ``dropped`` too. What no
rule decides (a peer that does not answer, a retry limit below the endpoint count) still waits
for nginx's answer.

Start-up check: :meth:`Tracer.start` sends one marked UDP datagram to 127.0.0.1:9 inside each
node namespace and waits until that namespace reports it (the raw OUTPUT rule traces it;
nothing listens there): it proves the TRACE rules are loaded and the kernel traces there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Iterable, Mapping
from typing import IO, Any

from netiso.backends.trace_parse import TRACE_DSCP, Correlator, PacketInfo, TraceHop, Tuple5, decided_by, tos_for
from netiso.oracle.decided import from_comment
from netiso.probe.netns import NetnsThreads
from netiso.probe.nftrace import RuleInfo, TraceEvent, dump_rules, hop_of, open_trace_socket, read_events

log = logging.getLogger("netiso.trace")

READY_PORT = 9  # discard: nothing listens in a node namespace
READY_TIMEOUT_S = 3.0
DUMP_ENV = "NETISO_TRACE_DUMP"  # a directory: every event is also appended to <dir>/<node>.events
MAX_UPSTREAM_TRACES = 4096  # per namespace: marked SYNs whose trace is still followed
MAX_DROPPED_CONNECTIONS = 4096  # dropped upstream connections remembered (a retransmitted SYN is no new one)


class Monitor:
    """The trace socket of one node namespace and the comments of that namespace's rules."""

    def __init__(self, netns: str, node: str, sock: socket.socket, rules: dict[tuple[str, str, int], RuleInfo]) -> None:
        self.netns = netns
        self.node = node
        self.sock = sock
        self.rules = rules
        self.ready = asyncio.Event()
        self.events = 0
        self.refreshing = False
        self.dump: IO[str] | None = None
        self.upstream: dict[str, PacketInfo] = {}  # trace id -> a marked upstream SYN's packet (this netns)
        # (table, chain, kind, handle, verdict) -> hop, valid for one ``rules`` dict: a probe's ~60
        # events each become a hop, and the same few hundred hops repeat across every probe
        self.hops: dict[tuple[str, str, str, int | None, str], TraceHop] = {}
        self.hops_rules: dict[tuple[str, str, int], RuleInfo] | None = None


class UpstreamWatch:
    """A probe waiting for a proxy's upstream connections: ``needs`` (source, destination, port) still
    without a dropped connection, the hops that dropped the others, and the future to settle."""

    def __init__(self, needs: set[tuple[str, str, int]], fut: asyncio.Future[TraceHop]) -> None:
        self.needs = needs
        self.hops: list[tuple[TraceHop, tuple[str, str, int]]] = []
        self.fut = fut


class Tracer:
    """Trace sockets of the traced node namespaces and the probes waiting for their packets."""

    def __init__(self, threads: NetnsThreads) -> None:
        self.threads = threads
        self.dscp = TRACE_DSCP
        self.upstream_dscp: int | None = None  # the mark of ingress controllers' upstream SYNs (None: not followed)
        self.monitors: dict[str, Monitor] = {}
        self._watches: dict[str, UpstreamWatch] = {}  # registration order: the oldest waiting probe first
        self._dropped: dict[tuple[str, int | None, str, int | None, int | None], None] = {}
        self.correlator = Correlator(on_stop=self._stopped)
        self._settle: dict[str, asyncio.Future[TraceHop]] = {}
        self._next = 0
        self.last_event = time.monotonic()

    @property
    def active(self) -> bool:
        return bool(self.monitors)

    @property
    def tos(self) -> int:
        return tos_for(self.dscp)

    # ------------------------------------------------------------------ monitors
    async def start(self, namespaces: Mapping[str, str], dscp: int = TRACE_DSCP, *,
                    upstream_dscp: int | None = None) -> list[str]:
        """Trace the namespaces (netns -> node name) not yet traced; returns the traced namespaces."""
        self.dscp = dscp
        self.upstream_dscp = upstream_dscp
        started: list[Monitor] = []
        loop = asyncio.get_running_loop()
        todo = {netns: node for netns, node in namespaces.items() if netns not in self.monitors}
        # one hand-off per namespace, all namespaces at once: socket, rule comments, first ready datagram
        opened = await asyncio.gather(*(self.threads.arun_in(netns, _open_monitor, self.tos) for netns in todo),
                                      return_exceptions=True)
        failure: BaseException | None = None
        for (netns, node), got in zip(todo.items(), opened, strict=True):
            if isinstance(got, BaseException):
                failure = failure or got
                continue
            sock, rules = got
            mon = Monitor(netns, node, sock, rules)
            dump_dir = os.environ.get(DUMP_ENV)
            if dump_dir:
                mon.dump = open(os.path.join(dump_dir, f"{node}.events"), "a")  # noqa: SIM115
            self.monitors[netns] = mon
            started.append(mon)
            loop.add_reader(sock.fileno(), self._readable, mon)
        try:
            if failure is not None:
                raise failure
            await self._wait_ready(started)
        except BaseException:
            await self.stop([m.netns for m in started])
            raise
        return [n for n in namespaces if n in self.monitors]

    async def _wait_ready(self, monitors: list[Monitor]) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        pending = list(monitors)
        first = True  # the first datagrams went out when the sockets were opened
        while pending:
            if not first:
                await asyncio.gather(*(self.threads.arun_in(m.netns, _send_ready_datagram, self.tos) for m in pending))
            first = False
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.1):
                    await asyncio.gather(*(m.ready.wait() for m in pending))
            pending = [m for m in pending if not m.ready.is_set()]
            if pending and time.monotonic() > deadline:
                names = ", ".join(m.netns for m in pending)
                raise RuntimeError(f"no trace event in {READY_TIMEOUT_S}s from {names} "
                                   "(are the TRACE rules loaded? can this kernel trace in a namespace?)")

    def _readable(self, mon: Monitor) -> None:
        try:
            for event in read_events(mon.sock):
                self._event(mon, event)
        except OSError as exc:  # ENOBUFS: events were lost; the probes concerned fall back to timeouts
            log.warning("trace events of %s: %s", mon.netns, exc)

    def _event(self, mon: Monitor, event: TraceEvent) -> None:
        mon.events += 1
        self.last_event = time.monotonic()
        pkt = event.packet
        if not mon.ready.is_set() and pkt is not None and pkt.dst == "127.0.0.1" and pkt.dport == READY_PORT:
            mon.ready.set()
            return
        if self.upstream_dscp is not None and self._upstream_event(mon, event):
            return
        hop = self._hop(mon, event, pkt)
        self.correlator.feed_event(mon.node, event.trace_id, pkt, hop)

    def _hop(self, mon: Monitor, event: TraceEvent, pkt: PacketInfo | None, tag: str = "") -> TraceHop:
        """The event as a hop with its rule's comment (refetched once when the rule is unknown), dumped if asked."""
        if mon.hops_rules is not mon.rules:
            mon.hops = {}
            mon.hops_rules = mon.rules
        key = (event.table, event.chain, event.kind, event.handle, event.verdict)
        hop = mon.hops.get(key)
        if hop is None:
            hop = hop_of(mon.node, event, mon.rules)
            if event.handle is not None and (event.table, event.chain, event.handle) not in mon.rules:
                self._refresh(mon)  # an unknown rule: not cached, so that its next event asks again
            else:
                mon.hops[key] = hop
        if mon.dump is not None:
            mon.dump.write(f"{event.trace_id} {event.table}:{event.chain}:{event.kind}:{event.handle}:{hop.verdict}"
                           f" {tag}{pkt!r} {hop.comment or ''}\n")
        return hop

    def _upstream_event(self, mon: Monitor, event: TraceEvent) -> bool:
        """Follow a marked upstream SYN (True: the event was one of its, and is kept from the correlator)."""
        pkt = event.packet
        if pkt is not None:
            if pkt.proto != "TCP" or pkt.tos is None or pkt.tos >> 2 != self.upstream_dscp:
                mon.upstream.pop(event.trace_id, None)  # a trace id of a new, unmarked packet
                return False
            mon.upstream[event.trace_id] = pkt
            if len(mon.upstream) > MAX_UPSTREAM_TRACES:
                for tid in list(mon.upstream)[: MAX_UPSTREAM_TRACES // 2]:
                    del mon.upstream[tid]
        else:
            pkt = mon.upstream.get(event.trace_id)
            if pkt is None:
                return False
        hop = self._hop(mon, event, pkt, "upstream ")
        if hop.verdict == "DROP" and _isolation_drop(hop):
            self._upstream_dropped(pkt, hop)
        return True

    def _upstream_dropped(self, pkt: PacketInfo, hop: TraceHop) -> None:
        """A rule dropped an upstream SYN: one dropped connection for the oldest probe that needs it."""
        conn = (pkt.src or "", pkt.sport, pkt.dst or "", pkt.dport, pkt.seq)
        if conn in self._dropped:
            return  # the same SYN again (retransmitted): not another connection
        self._dropped[conn] = None
        if len(self._dropped) > MAX_DROPPED_CONNECTIONS:
            for old in list(self._dropped)[: MAX_DROPPED_CONNECTIONS // 2]:
                del self._dropped[old]
        if pkt.src is None or pkt.dst is None or pkt.dport is None:
            return
        need = (pkt.src, pkt.dst, pkt.dport)
        for watch in self._watches.values():
            if need in watch.needs:
                watch.needs.discard(need)
                watch.hops.append((hop, need))
                if not watch.needs and not watch.fut.done():
                    watch.fut.set_result(hop)
                return

    def watch_upstreams(self, upstreams: Iterable[str]) -> tuple[str, UpstreamWatch] | None:
        """Register a probe whose request a proxy now holds; ``upstreams`` are ``SRC>DST:PORT``.

        Returns None when upstream SYNs are not followed or ``upstreams`` is empty. The watch's
        future resolves (with the last dropping hop) once a rule dropped a new connection to each.
        Call :meth:`unwatch` when the probe is over.
        """
        if self.upstream_dscp is None:
            return None
        needs = {parse_upstream(u) for u in upstreams}
        if not needs:
            return None
        self._next += 1
        key = f"u{self._next}"
        watch = UpstreamWatch(needs, asyncio.get_running_loop().create_future())
        self._watches[key] = watch
        return key, watch

    def unwatch(self, key: str) -> None:
        watch = self._watches.pop(key, None)
        if watch is not None and not watch.fut.done():
            watch.fut.cancel()

    def _refresh(self, mon: Monitor) -> None:
        """The rules changed (an unknown handle): fetch their comments again, once at a time."""
        if mon.refreshing:
            return
        mon.refreshing = True

        async def refresh() -> None:
            try:
                mon.rules = await self.threads.arun_in(mon.netns, dump_rules)
            except OSError as exc:
                log.warning("rule dump of %s: %s", mon.netns, exc)
            finally:
                mon.refreshing = False

        asyncio.get_running_loop().create_task(refresh())

    async def stop(self, namespaces: list[str] | None = None) -> list[str]:
        """Stop tracing ``namespaces`` (all if None); returns the namespaces no longer traced."""
        names = list(self.monitors) if namespaces is None else [n for n in namespaces if n in self.monitors]
        loop = asyncio.get_running_loop()
        for netns in names:
            mon = self.monitors.pop(netns)
            with contextlib.suppress(ValueError, OSError):
                loop.remove_reader(mon.sock.fileno())
            mon.sock.close()
            if mon.dump is not None:
                mon.dump.close()
        return names

    # ------------------------------------------------------------------ probes
    def expect(self, tuple5: Tuple5) -> tuple[str, asyncio.Future[TraceHop]]:
        """Register a probe's first packet; the future resolves when a rule DROPs it."""
        self._next += 1
        key = f"t{self._next}"
        fut: asyncio.Future[TraceHop] = asyncio.get_running_loop().create_future()
        self._settle[key] = fut
        self.correlator.expect(key, tuple5)
        return key, fut

    def _stopped(self, key: str, hop: TraceHop) -> None:
        fut = self._settle.get(key)
        if fut is not None and not fut.done() and hop.verdict == "DROP":
            fut.set_result(hop)

    async def drain(self) -> None:
        """Take in every event already queued on the trace sockets, before a batch's paths are read.

        No waiting is needed: the kernel queues a trace event on the netlink socket synchronously,
        while the packet is in the hook that reports it, so every event of a probe's first packet
        is queued before that packet can cause the answer (or the ICMP error, or the settling DROP)
        that ended the probe. (This replaced a wait for 20 ms without events, which every traced
        batch paid.)
        """
        for mon in list(self.monitors.values()):
            self._readable(mon)
        await asyncio.sleep(0)

    def result(self, key: str, verdict: str) -> tuple[list[dict[str, Any]], str | None]:
        """(path, decidedBy) of a finished probe; forgets it."""
        hops = self.correlator.path(key)
        self.correlator.forget(key)
        self._settle.pop(key, None)
        if not hops:
            return [], None
        return [h.to_dict() for h in hops], decided_by(hops, verdict)


def _isolation_drop(hop: TraceHop) -> bool:
    """True for the drop of an isolated pod that no policy admitted: a function of the packet's
    addresses, ports and protocol alone (unlike, say, a conntrack INVALID drop, which depends on
    the state of that one connection), so it drops every SYN of the controller to that endpoint."""
    decision = from_comment(hop.comment)
    return decision is not None and decision.kind == "isolation" and decision.verdict == "drop"


def _open_monitor(tos: int) -> tuple[socket.socket, dict[tuple[str, str, int], RuleInfo]]:
    """In a node namespace: the trace socket, the rules' comments, then the first ready datagram."""
    sock = open_trace_socket()
    try:
        rules = dump_rules()
        _send_ready_datagram(tos)
    except BaseException:
        sock.close()
        raise
    return sock, rules


def _send_ready_datagram(tos: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos)
        with contextlib.suppress(OSError):
            s.sendto(b"netiso-trace-ready", ("127.0.0.1", READY_PORT))


def parse_upstream(text: str) -> tuple[str, str, int]:
    """``SRC>DST:PORT`` as (source, destination, port).

    >>> parse_upstream("100.64.2.1>100.64.1.3:8080")
    ('100.64.2.1', '100.64.1.3', 8080)
    """
    src, sep, rest = text.partition(">")
    dst, colon, port = rest.rpartition(":")
    if not (sep and colon and src and dst and port.isdigit()):
        raise ValueError(f"upstream {text!r} is not SRC>DST:PORT")
    return src, dst, int(port)


def describe_upstream_stop(watch: UpstreamWatch) -> str:
    """The detail of a probe settled because a rule dropped every upstream connection of its proxy.

    >>> w = UpstreamWatch(set(), None)  # type: ignore[arg-type]
    >>> w.hops.append((TraceHop("worker", "filter", "cali-tw-x", 63, "DROP", decision="shop2 drop"),
    ...                ("100.64.2.1", "100.64.1.3", 80)))
    >>> describe_upstream_stop(w)
    'dropped by shop2 drop (node worker filter cali-tw-x rule 63) on the proxy upstream 100.64.2.1 -> 100.64.1.3:80'
    """
    parts = []
    for hop, (src, dst, port) in watch.hops:
        parts.append(f"{describe_stop(hop)} on the proxy upstream {src} -> {dst}:{port}")
    return "; ".join(parts)


def upstream_decision(watch: UpstreamWatch) -> str | None:
    """``decidedBy`` of a probe settled by its upstream watch: the rule that dropped the proxy's leg.

    >>> w = UpstreamWatch(set(), None)  # type: ignore[arg-type]
    >>> w.hops.append((TraceHop("worker", "filter", "cali-tw-x", 63, "DROP", decision="isolation shop ingress drop"),
    ...                ("100.64.2.1", "100.64.1.3", 80)))
    >>> upstream_decision(w)
    'isolation shop ingress drop'
    """
    return next((hop.decision for hop, _ in watch.hops if hop.decision), None)


def describe_stop(hop: TraceHop) -> str:
    """The detail of a probe settled by a rule: what decided, where.

    >>> describe_stop(TraceHop("worker", "filter", "cali-tw-x", 63, "DROP", decision="isolation shop ingress drop"))
    'dropped by isolation shop ingress drop (node worker filter cali-tw-x rule 63)'
    """
    what = hop.decision or hop.comment or hop.rule or "a rule"
    where = f"node {hop.node} {hop.table} {hop.chain}" + (f" rule {hop.handle}" if hop.handle is not None else " policy")
    return f"dropped by {what} ({where})"
