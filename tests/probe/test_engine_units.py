"""Engine logic that needs no namespace: classification, parsing, scheduling, socket batching."""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import Any

import pytest

from netiso.probe.classify import (
    build_http_request,
    classify_oserror,
    evidence_from_body,
    split_http_response,
    verdict_for_status,
)
from netiso.probe.engine import ProbeEngine
from netiso.probe.netns import NetnsThreads
from netiso.probe.results import ProbeRequest, ProbeResult
from netiso.probe.sockets import SocketSupply


@pytest.mark.parametrize(
    ("code", "verdict"),
    [
        (errno.ECONNREFUSED, "refused"),
        (errno.ECONNRESET, "refused"),
        (errno.EHOSTUNREACH, "refused"),
        (errno.ENETUNREACH, "refused"),
        (errno.ETIMEDOUT, "dropped"),
        (errno.EPERM, "error"),
        (errno.EADDRNOTAVAIL, "error"),
    ],
)
def test_socket_errors_map_to_verdicts(code: int, verdict: str) -> None:
    assert classify_oserror(OSError(code, "x")) == verdict


@pytest.mark.parametrize(
    ("status", "verdict"), [(200, "allowed"), (204, "allowed"), (502, "refused"), (503, "refused"),
                            (504, "dropped"), (404, "error"), (301, "error")]
)  # fmt: skip
def test_http_status_maps_to_verdicts(status: int, verdict: str) -> None:
    assert verdict_for_status(status) == verdict


def test_request_host_defaults_to_destination_with_port() -> None:
    raw = build_http_request(ProbeRequest("1", None, "198.18.0.1", 8080, path="/clientip"))
    assert raw.startswith(b"GET /clientip HTTP/1.1\r\nHost: 198.18.0.1:8080\r\n")
    assert raw.endswith(b"\r\n\r\n") and b"Connection: close" in raw


def test_split_http_response_rejects_incomplete_or_foreign_answers() -> None:
    with pytest.raises(ValueError):
        split_http_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n")
    with pytest.raises(ValueError):
        split_http_response(b"SSH-2.0-OpenSSH\r\n\r\n")


def test_evidence_from_netiso_json_including_proxy_headers() -> None:
    body = b'{"clientip":"100.64.0.5:3333","hostname":"web-1","headers":{"X-Forwarded-For":"203.0.113.9",' \
           b'"X-Real-Ip":"203.0.113.9"}}'  # fmt: skip
    assert evidence_from_body("/app/netiso", body) == {
        "client_ip": "100.64.0.5",
        "client_port": 3333,
        "hostname": "web-1",
        "forwarded_for": "203.0.113.9",
        "real_ip": "203.0.113.9",
    }


def test_evidence_from_agnhost_answers() -> None:
    assert evidence_from_body("/clientip", b"[fd00::5]:80") == {"client_ip": "fd00::5", "client_port": 80}
    assert evidence_from_body("hostname", b"pod-x") == {"hostname": "pod-x"}
    assert evidence_from_body("/", b"NOW: 2026") == {}
    with pytest.raises(ValueError):
        evidence_from_body("/netiso", b"<html>not json</html>")


def test_probe_request_validation_and_round_trip() -> None:
    with pytest.raises(ValueError, match="protocol"):
        ProbeRequest("1", None, "198.18.0.1", 80, "SCTPX")
    with pytest.raises(ValueError, match="port"):
        ProbeRequest("1", None, "198.18.0.1", 0)
    with pytest.raises(ValueError, match="timeout"):
        ProbeRequest("1", None, "198.18.0.1", 80, timeout=0)
    with pytest.raises(ValueError, match="unknown field"):
        ProbeRequest.from_dict({"id": "1", "netns": None, "dst_ip": "198.18.0.1", "dst_port": 80, "prot": "UDP"})
    req = ProbeRequest("1", "ns", "198.18.0.1", 80, "UDP", "h", "/x", 2.0)
    assert ProbeRequest.from_dict(req.to_dict()) == req
    res = ProbeResult("1", "allowed", "198.18.0.2", "web", None, None, 1.5, "", 4000, 200)
    assert ProbeResult.from_dict({**res.to_dict(), "future_field": 1}) == res


class RecordingEngine(ProbeEngine):
    """Replaces the network with a sleep and records concurrency."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.events: list[tuple[str, str]] = []
        self.in_flight: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.total = 0
        self.total_peak = 0

    async def probe(self, req: ProbeRequest) -> ProbeResult:
        self.events.append(("start", req.id))
        self.in_flight[req.dst_ip] = self.in_flight.get(req.dst_ip, 0) + 1
        self.peak[req.dst_ip] = max(self.peak.get(req.dst_ip, 0), self.in_flight[req.dst_ip])
        self.total += 1
        self.total_peak = max(self.total_peak, self.total)
        await asyncio.sleep(0.01)
        self.in_flight[req.dst_ip] -= 1
        self.total -= 1
        self.events.append(("end", req.id))
        return ProbeResult(req.id, "allowed")


def test_first_probe_of_each_pair_runs_alone_and_caps_hold() -> None:
    reqs = [ProbeRequest(f"a{i}", "ns-a", "198.18.0.1", 80) for i in range(20)]
    reqs += [ProbeRequest(f"b{i}", "ns-b", "198.18.0.1", 80) for i in range(20)]
    reqs += [ProbeRequest(f"c{i}", "ns-a", "198.18.0.2", 80) for i in range(20)]

    async def main() -> RecordingEngine:
        engine = RecordingEngine(per_destination=5, global_limit=8)
        results = await engine.run_probes(reqs)
        assert [r.id for r in results] == [r.id for r in reqs]
        engine.close()
        return engine

    engine = asyncio.run(main())
    order = engine.events
    for first, group in (("a0", "a"), ("b0", "b"), ("c0", "c")):
        first_end = order.index(("end", first))
        starts = [k for k, (what, rid) in enumerate(order) if what == "start" and rid[0] == group and rid != first]
        assert min(starts) > first_end, f"{group}: a burst started before the warm-up probe ended"
    assert engine.peak == {"198.18.0.1": 5, "198.18.0.2": 5}
    assert engine.total_peak == 8


def test_socket_supply_creates_sockets_in_batches_and_closes_spares() -> None:
    threads = NetnsThreads()
    hops: list[int] = []
    original = threads.arun_in

    async def counting(netns: str | None, fn: Any, *args: Any) -> Any:
        hops.append(args[-1])
        return await original(netns, fn, *args)

    threads.arun_in = counting  # type: ignore[method-assign]
    key = (None, socket.AF_INET, socket.SOCK_DGRAM)  # sockets only: nothing is sent

    async def main() -> list[socket.socket]:
        supply = SocketSupply(threads, batch=4)
        supply.expect(key, 6)
        taken = [await supply.take(key) for _ in range(5)]
        spare = list(supply._spare[key])
        supply.done(key)
        assert all(s.fileno() == -1 for s in spare)  # the unused one was closed
        return taken

    try:
        taken = asyncio.run(main())
    finally:
        threads.close()
    assert hops == [4, 2]  # 6 expected: one hop for 4, one for the remaining 2
    assert all(not s.getblocking() for s in taken)
    for s in taken:
        s.close()


def test_a_missing_namespace_is_an_error_result_not_an_exception() -> None:
    from netiso.probe.engine import run_probes

    reqs = [ProbeRequest(str(i), "nxh2-does-not-exist", "198.18.0.1", 80) for i in range(3)]
    reqs.append(ProbeRequest("bad", "bad/name", "198.18.0.1", 80, "UDP"))
    results = asyncio.run(run_probes(reqs))
    assert [r.verdict for r in results] == ["error"] * 4
    assert "No such file" in results[0].detail and "invalid network namespace" in results[3].detail
