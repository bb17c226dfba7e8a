"""The probe engine: fire TCP/HTTP and UDP probes from any namespace and classify the outcome.

All I/O runs in the caller's asyncio loop; only socket *creation* happens in the source
namespace's helper thread (see ``netns.py``), in batches so that a thousand probes cost a
handful of thread hand-offs instead of a thousand.

Classification (what the suite calls a verdict):

* TCP: handshake and an HTTP answer -> ``allowed`` (2xx); ECONNREFUSED / RST / ICMP
  unreachable (EHOSTUNREACH, ENETUNREACH) -> ``refused``; nothing within the timeout ->
  ``dropped``; anything else -> ``error``. An HTTP proxy (ingress) reports its upstream's fate
  in the status: 502/503 -> ``refused``, 504 -> ``dropped``, other non-2xx -> ``error``;
  ``status`` keeps the code so callers can decide otherwise.
* UDP (connected socket, so ICMP errors are reported): a reply -> ``allowed``; ECONNREFUSED
  (ICMP port unreachable) or another ICMP unreachable -> ``refused``; timeout -> ``dropped``.

Tracing (when the agent runs a :class:`~netiso.probe.tracer.Tracer` and the request asks
for it): the socket sets the tracer's DSCP, the first packet's 4-tuple is registered before it
leaves (so the connect is done by hand: ``connect_ex``, ``getsockname``, then wait for
writability), and the socket's answer is raced against the tracer's verdict: a rule that DROPs
the first packet settles the probe as ``dropped`` at once, ``detail`` naming the rule. The
timeout stays for what no rule decides (no route, no ARP answer). After a batch, each traced
result gets ``path`` and ``decided_by``. A probe through an HTTP proxy (``upstreams``: an
ingress controller's connections to the backend) also races its answer against the tracer's
upstream watch, registered once the request is about to leave: a rule that drops every upstream
connection settles it as ``dropped`` (what nginx's 504 would say after its connect timeouts);
``path`` stays the client's own first packet's, ``decided_by`` is the rule that dropped the
upstream leg (what decided the flow; the client's own packet was admitted).

Load discipline: at most ``per_destination`` probes in flight per destination IP and
``global_limit`` overall (64: what a 2-core lab carries - the probes, the echo servers and the
datapath share the cores, so more in flight only queues; at 512, a 24-node run saw allowed probes
wait up to 1.2 s for their answer, and the 1 s timeout called some of them dropped; at 64 the
same run's slowest took 0.9 s on a loaded host, its median 90 ms, at a throughput within that
host's noise: 9.3 s against 7.7 s for 2,576 probes); a timeout no rule decided is retried
(``ProbeRequest.retries``); and the first probe of each (source namespace, destination IP) pair
runs alone before the rest of that pair, so that the neighbour (ARP) entry is resolved before a
burst of SYNs (the kernel's unresolved-neighbour queue drops packets under a burst).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

from netiso.model.verdicts import health_check_verdict
from netiso.probe.classify import (
    build_http_request,
    classify_oserror,
    errno_detail,
    evidence_from_body,
    split_http_response,
    udp_payload,
    verdict_for_status,
)
from netiso.probe.health import local_endpoints_of
from netiso.probe.netns import NetnsThreads
from netiso.probe.results import ProbeRequest, ProbeResult, ProbeVerdict
from netiso.probe.sockets import SOCKET_BATCH, SocketKey, SocketSupply
from netiso.probe.tracer import Tracer, UpstreamWatch, describe_stop, describe_upstream_stop, upstream_decision

if TYPE_CHECKING:
    from netiso.backends.trace_parse import TraceHop

DEFAULT_PER_DESTINATION = 64
DEFAULT_GLOBAL_LIMIT = 64  # see "Load discipline" above
MAX_RESPONSE_BYTES = 1 << 20



class ProbeEngine:
    """Runs probes in the current event loop; reusable across batches."""

    def __init__(
        self,
        threads: NetnsThreads | None = None,
        *,
        per_destination: int = DEFAULT_PER_DESTINATION,
        global_limit: int = DEFAULT_GLOBAL_LIMIT,
        udp_retries: int = 1,
        socket_batch: int = SOCKET_BATCH,
    ) -> None:
        self.threads = threads if threads is not None else NetnsThreads()
        self._own_threads = threads is None
        self.per_destination = per_destination
        self.global_limit = global_limit
        self.udp_retries = udp_retries
        self.supply = SocketSupply(self.threads, socket_batch)
        self._global: asyncio.Semaphore | None = None
        self._per_dst: dict[str, asyncio.Semaphore] = {}
        self.counts: Counter[str] = Counter()
        self.tracer: Tracer | None = None  # set by the agent's trace_start
        self._trace_keys: dict[str, str] = {}  # id of the traced result object -> tracer key

    def _sem_global(self) -> asyncio.Semaphore:
        if self._global is None:
            self._global = asyncio.Semaphore(self.global_limit)
        return self._global

    def _sem_dst(self, dst_ip: str) -> asyncio.Semaphore:
        sem = self._per_dst.get(dst_ip)
        if sem is None:
            sem = self._per_dst[dst_ip] = asyncio.Semaphore(self.per_destination)
        return sem

    @staticmethod
    def socket_key(req: ProbeRequest) -> SocketKey:
        family = socket.AF_INET6 if ":" in req.dst_ip else socket.AF_INET
        kind = socket.SOCK_STREAM if req.protocol == "TCP" else socket.SOCK_DGRAM
        return (req.netns, family, kind)

    async def run_probes(self, requests: Iterable[ProbeRequest]) -> list[ProbeResult]:
        """Run all probes concurrently (within the caps); results in request order."""
        reqs = list(requests)
        results: list[ProbeResult | None] = [None] * len(reqs)
        by_dst: dict[str, list[int]] = {}
        for i, req in enumerate(reqs):
            by_dst.setdefault(req.dst_ip, []).append(i)
        demand = Counter(self.socket_key(r) for r in reqs)
        for key, count in demand.items():
            self.supply.expect(key, count)
        try:
            await asyncio.gather(*(self._run_destination(reqs, idx, results) for idx in by_dst.values()))
        finally:
            for key in demand:
                self.supply.done(key)
        return await self._with_paths([r for r in results if r is not None])

    async def _with_paths(self, results: list[ProbeResult]) -> list[ProbeResult]:
        """Fill ``path``/``decided_by`` of traced results once the monitors' last lines are in."""
        keys = {id(r): self._trace_keys.pop(f"{id(r)}", None) for r in results}
        if self.tracer is None or not any(keys.values()):
            return results
        await self.tracer.drain()
        out = []
        for r in results:
            key = keys[id(r)]
            if key is None:
                out.append(r)
                continue
            path, decided = self.tracer.result(key, r.verdict)
            out.append(replace(r, path=path, decided_by=r.decided_by or decided))
        return out

    async def _run_destination(
        self,
        reqs: Sequence[ProbeRequest],
        indexes: list[int],
        results: list[ProbeResult | None],
    ) -> None:
        """Probes to one destination IP: pair-first probes, then the rest, through few workers."""
        firsts: dict[str | None, asyncio.Event] = {}
        order: list[tuple[int, asyncio.Event | None, asyncio.Event | None]] = []
        rest: list[tuple[int, asyncio.Event | None, asyncio.Event | None]] = []
        for i in indexes:
            netns = reqs[i].netns
            if netns not in firsts:
                firsts[netns] = asyncio.Event()
                order.append((i, None, firsts[netns]))
            else:
                rest.append((i, firsts[netns], None))
        queue = deque(order + rest)
        sem_dst = self._sem_dst(reqs[indexes[0]].dst_ip)
        sem_all = self._sem_global()

        async def worker() -> None:
            while queue:
                i, wait_for, to_set = queue.popleft()
                if wait_for is not None:
                    await wait_for.wait()
                try:
                    async with sem_dst, sem_all:
                        results[i] = await self.probe(reqs[i])
                finally:
                    if to_set is not None:
                        to_set.set()

        await asyncio.gather(*(worker() for _ in range(min(self.per_destination, len(indexes)))))

    async def probe(self, req: ProbeRequest) -> ProbeResult:
        """One probe, no caps applied (``run_probes`` applies them and fills traced paths).

        A timeout no rule decided is tried again, up to ``req.retries`` times, with a fresh socket
        (a fresh 4-tuple): under load a SYN (or its answer) can be lost and is retransmitted after
        1 s, the very moment a 1 s probe gives up; one such loss is not a drop. ``ms`` counts every
        try; ``path``/``decided_by`` are the last try's (the abandoned tries' traces are forgotten).
        """
        start = asyncio.get_running_loop().time()
        tries = 0
        while True:
            tries += 1
            result, key = await self._attempt(req)
            if tries > req.retries or not undecided_timeout(result):
                break
            self.counts["retried"] += 1
            if key is not None and self.tracer is not None:
                self.tracer.result(key, result.verdict)  # forget the abandoned try's trace
        ms = round((asyncio.get_running_loop().time() - start) * 1000.0, 3)
        result = replace(result, tries=tries, ms=ms)
        self.counts[result.verdict] += 1
        if key is not None:
            self._trace_keys[f"{id(result)}"] = key
        return result

    async def _attempt(self, req: ProbeRequest) -> tuple[ProbeResult, str | None]:
        """One try: its result and the tracer key of its first packet (None when untraced)."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            sock = await self.supply.take(self.socket_key(req))
        except Exception as exc:  # e.g. the namespace does not exist (any more)
            return self._done(req, "error", start, f"socket in {req.netns}: {exc}"), None
        tracer = self.tracer if req.trace and self.tracer is not None and self.tracer.active else None
        traced = _Traced(tracer) if tracer is not None else None
        try:
            if tracer is not None:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tracer.tos)
            if req.protocol == "TCP":
                verdict, detail, evidence = await self._tcp(sock, req, traced)
            else:
                verdict, detail, evidence = await self._udp(sock, req, traced)
        except Exception as exc:  # a bug must cost one result, not the whole batch
            verdict, detail, evidence = "error", f"{type(exc).__name__}: {exc}", {}
        finally:
            sock.close()
        result = self._done(req, verdict, start, detail, **evidence)
        return result, (traced.key if traced is not None else None)

    def _done(self, req: ProbeRequest, verdict: ProbeVerdict, start: float, detail: str, **ev: Any) -> ProbeResult:
        ms = (asyncio.get_running_loop().time() - start) * 1000.0
        return ProbeResult(req.id, verdict, ms=round(ms, 3), detail=detail, **ev)

    async def _tcp(self, sock: socket.socket, req: ProbeRequest,
                   traced: _Traced | None = None) -> tuple[ProbeVerdict, str, dict[str, Any]]:
        loop = asyncio.get_running_loop()
        stage = "connect"
        data = bytearray()
        try:
            async with asyncio.timeout(req.timeout):
                # a proxy (ingress) may take long to answer, but a dropped SYN is known early
                async with asyncio.timeout(req.connect_timeout or req.timeout):
                    if traced is None:
                        await loop.sock_connect(sock, (req.dst_ip, req.dst_port))
                    else:
                        hop = await traced.connect(sock, req)
                        if hop is not None:
                            return "dropped", describe_stop(hop), {}
                stage = "answer"
                # a proxy's upstream connections are followed from before the request leaves
                watch = traced.watch_upstreams(req) if traced is not None else None
                try:
                    await loop.sock_sendall(sock, build_http_request(req))
                    while len(data) < MAX_RESPONSE_BYTES:
                        if watch is None or data:
                            chunk = await loop.sock_recv(sock, 65536)
                        else:
                            got = await _recv_or(sock, watch.fut)
                            if not isinstance(got, bytes):  # decided by the rule that dropped the proxy's leg
                                return "dropped", describe_upstream_stop(watch), {"decided_by": upstream_decision(watch)}
                            chunk = got
                        if not chunk:
                            break
                        data += chunk
                finally:
                    if traced is not None:
                        traced.unwatch()
        except TimeoutError:
            if stage == "connect":
                return "dropped", f"timeout after {req.connect_timeout or req.timeout}s: no answer to SYN", {}
            return "dropped", f"timeout after {req.timeout}s: connected but no HTTP answer", {}
        except OSError as exc:
            verdict = classify_oserror(exc)
            where = "" if stage == "connect" else " after connect"
            return verdict, f"{errno_detail(exc)}{where}", {}
        if not data:
            return "error", "connection closed without an HTTP answer", {}
        try:
            status, _, body = split_http_response(bytes(data))
        except ValueError as exc:
            return "error", f"bad HTTP answer: {exc}", {}
        verdict = verdict_for_status(status)
        evidence: dict[str, Any] = {"status": status}
        health = local_endpoints_of(body)  # kube-proxy's health server: 200 or 503, both an answer
        if health is not None:
            evidence["local_endpoints"] = health
            return cast(ProbeVerdict, health_check_verdict(verdict, status)), "", evidence
        if verdict == "allowed":
            try:
                evidence.update(evidence_from_body(req.path, body))
            except ValueError as exc:
                return "error", f"bad answer body: {exc}", evidence
            return "allowed", "", evidence
        return verdict, f"HTTP {status}", evidence

    async def _udp(self, sock: socket.socket, req: ProbeRequest,
                   traced: _Traced | None = None) -> tuple[ProbeVerdict, str, dict[str, Any]]:
        loop = asyncio.get_running_loop()
        payload = udp_payload(req.path)
        try:
            # connect() on UDP only sets the peer, so ICMP errors come back to this socket.
            sock.connect((req.dst_ip, req.dst_port))
            if traced is not None:
                traced.expect(sock, "UDP", req)
            tries = 1 + max(0, self.udp_retries)
            answer = b""
            for attempt in range(tries):
                sock.send(payload)
                try:
                    async with asyncio.timeout(req.timeout / tries):
                        if traced is None:
                            answer = await loop.sock_recv(sock, 65536)
                        else:
                            got = await traced.recv_or_stop(sock)
                            if not isinstance(got, bytes):
                                return "dropped", describe_stop(got), {}
                            answer = got
                    break
                except TimeoutError:
                    if attempt == tries - 1:
                        return "dropped", f"timeout after {req.timeout}s: no UDP answer", {}
        except OSError as exc:
            return classify_oserror(exc), errno_detail(exc), {}
        try:
            return "allowed", "", evidence_from_body(req.path, answer)
        except ValueError as exc:
            return "error", f"bad UDP answer: {exc}", {}

    def close(self) -> None:
        self.supply.close()
        if self._own_threads:
            self.threads.close()


class _Traced:
    """One traced probe: registers its first packet with the tracer and races the socket."""

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer
        self.key: str | None = None
        self.stop: asyncio.Future[TraceHop] | None = None
        self.watch_key: str | None = None

    def expect(self, sock: socket.socket, proto: str, req: ProbeRequest) -> None:
        src, sport = sock.getsockname()[:2]
        self.key, self.stop = self.tracer.expect((proto, src, sport, req.dst_ip, req.dst_port))

    async def connect(self, sock: socket.socket, req: ProbeRequest) -> TraceHop | None:
        """Non-blocking connect; the rule that dropped the SYN, or None once connected."""
        err = sock.connect_ex((req.dst_ip, req.dst_port))
        if err not in (0, errno.EINPROGRESS):
            raise OSError(err, os.strerror(err))
        self.expect(sock, "TCP", req)  # before the loop runs again: the trace cannot be earlier
        if err == 0:
            return None
        loop = asyncio.get_running_loop()
        writable: asyncio.Future[None] = loop.create_future()
        fd = sock.fileno()
        loop.add_writer(fd, lambda: writable.done() or writable.set_result(None))
        try:
            assert self.stop is not None
            await asyncio.wait({writable, self.stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            loop.remove_writer(fd)
            if not writable.done():
                writable.cancel()
        if not writable.done() or writable.cancelled():
            assert self.stop is not None
            return self.stop.result()
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise OSError(err, os.strerror(err))
        return None

    async def recv_or_stop(self, sock: socket.socket) -> bytes | TraceHop:
        assert self.stop is not None
        return await _recv_or(sock, self.stop)

    def watch_upstreams(self, req: ProbeRequest) -> UpstreamWatch | None:
        """Follow the proxy connections ``req`` makes (``req.upstreams``); None when there is nothing to follow."""
        if not req.upstreams:
            return None
        got = self.tracer.watch_upstreams(req.upstreams)
        if got is None:
            return None
        self.watch_key, watch = got
        return watch

    def unwatch(self) -> None:
        if self.watch_key is not None:
            self.tracer.unwatch(self.watch_key)
            self.watch_key = None


async def _recv_or(sock: socket.socket, stop: asyncio.Future[TraceHop]) -> bytes | TraceHop:
    """The next chunk from ``sock``, or ``stop``'s hop if it resolves first (the read is cancelled)."""
    if stop.done():
        return stop.result()
    recv = asyncio.ensure_future(asyncio.get_running_loop().sock_recv(sock, 65536))
    try:
        await asyncio.wait({recv, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not recv.done():
            recv.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await recv
    if recv.done() and not recv.cancelled():
        return recv.result()
    return stop.result()


def undecided_timeout(result: ProbeResult) -> bool:
    """A probe that timed out with no rule deciding it: no answer to its SYN (or datagram), or a
    connection made but not answered in time (an echo server starved of CPU under load: no rule drops
    an established connection's request). A drop a traced rule decided names the rule in ``detail``,
    and a proxy's own answer (504) is an answer: neither is retried.

    >>> undecided_timeout(ProbeResult("1", "dropped", detail="timeout after 1.0s: no answer to SYN"))
    True
    >>> undecided_timeout(ProbeResult("1", "dropped", detail="dropped by filter/cali-pi-x"))
    False
    """
    return result.verdict == "dropped" and result.detail.startswith("timeout after")


async def run_probes(requests: Iterable[ProbeRequest], engine: ProbeEngine | None = None) -> list[ProbeResult]:
    """Run probes with ``engine`` (or a throw-away one) in the current loop."""
    if engine is not None:
        return await engine.run_probes(requests)
    own = ProbeEngine()
    try:
        return await own.run_probes(requests)
    finally:
        own.close()
