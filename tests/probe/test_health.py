"""The lab's kube-proxy health server and the probe engine reading its answer.

The answer is service_health.go's: JSON with the Service and ``localEndpoints``, 200 with local
endpoints and 503 without, on any path. The engine takes either status as an answer (verdict
``allowed``) and reports the status and count; an ordinary 503 (an ingress's) stays ``refused``.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from netiso.probe.classify import split_http_response
from netiso.probe.echo import make_listener
from netiso.probe.engine import ProbeEngine
from netiso.probe.health import health_answer, start_health
from netiso.probe.netns import NetnsThreads
from netiso.probe.results import ProbeRequest


@pytest.mark.parametrize(("count", "status"), [(2, 200), (0, 503)])
def test_the_answer_is_kube_proxys(count: int, status: int) -> None:
    got, headers, body = split_http_response(health_answer("shop", "web", count))
    assert got == status
    assert json.loads(body) == {"service": {"namespace": "shop", "name": "web"}, "localEndpoints": count,
                                "serviceProxyHealthy": True}
    assert headers["content-type"] == "application/json" and headers["x-content-type-options"] == "nosniff"
    assert headers["x-load-balancing-endpoint-weight"] == str(count)


@pytest.mark.lab
def test_the_engine_reads_a_health_answer_as_answered_with_its_status_and_count(lone_ns: str) -> None:
    async def main() -> list[tuple[str, int | None, int | None]]:
        threads = NetnsThreads()
        servers = []
        try:
            for port, count in ((32000, 0), (32001, 3)):
                sock = await threads.arun_in(lone_ns, make_listener, "TCP", "0.0.0.0", port)
                servers.append(await start_health(sock, netns=lone_ns, namespace="shop", name="web",
                                                  local_endpoints=count))
            engine = ProbeEngine(threads)
            results = await engine.run_probes([ProbeRequest(str(p), lone_ns, "127.0.0.1", p) for p in (32000, 32001)])
            return [(r.verdict, r.status, r.local_endpoints) for r in results]
        finally:
            for server in servers:
                server.close()
            threads.close()

    assert asyncio.run(main()) == [("allowed", 503, 0), ("allowed", 200, 3)]
