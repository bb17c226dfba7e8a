"""kube-proxy's service health server, for the lab: one per ETP Local LoadBalancer Service and node.

Mirrors kubernetes/kubernetes ``pkg/proxy/healthcheck/service_health.go`` (``hcHandler.ServeHTTP``):
every request, whatever its path, is answered with the JSON
``{"service": {"namespace": NS, "name": NAME}, "localEndpoints": N, "serviceProxyHealthy": true}``,
status 200 when the node has local endpoints of the Service and 503 when it has none, headers
``Content-Type: application/json``, ``X-Content-Type-Options: nosniff`` and
``X-Load-Balancing-Endpoint-Weight: N``. A cloud load balancer polls it to take nodes without an
endpoint out of rotation.

Where it knowingly differs: the lab's endpoint count is fixed when the lab is built (endpoints do
not change during a run); ``serviceProxyHealthy`` is always true (the lab's kube-proxy rules are
loaded once and never go stale); it answers one request per connection (``Connection: close``),
as the echo server does.
"""

from __future__ import annotations

import asyncio
import json
import socket

from netiso.probe.echo import MAX_HEAD_BYTES, EchoServer, TimedConnection, find_head_end


def health_answer(namespace: str, name: str, local_endpoints: int) -> bytes:
    """The complete HTTP answer kube-proxy's health server gives for one Service on one node.

    >>> health_answer("shop", "web", 0).split(b"\\r\\n")[0]
    b'HTTP/1.1 503 Service Unavailable'
    """
    body = json.dumps({"service": {"namespace": namespace, "name": name}, "localEndpoints": local_endpoints,
                       "serviceProxyHealthy": True}).encode()
    status = "200 OK" if local_endpoints > 0 else "503 Service Unavailable"
    head = (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nX-Content-Type-Options: nosniff\r\n"
            f"X-Load-Balancing-Endpoint-Weight: {local_endpoints}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n")
    return head.encode("latin-1") + body


class HealthProtocol(TimedConnection):
    """One connection: read a request head, answer the Service's health, close."""

    def __init__(self, answer: bytes) -> None:
        super().__init__()
        self.answer = answer

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buf += data
        if find_head_end(self.buf) >= 0 or len(self.buf) > MAX_HEAD_BYTES:
            self.transport.write(self.answer)
            self.transport.close()


async def start_health(sock: socket.socket, *, netns: str | None, namespace: str, name: str,
                       local_endpoints: int) -> EchoServer:
    """Serve kube-proxy's health answer for ``namespace/name`` on an already bound TCP socket."""
    loop = asyncio.get_running_loop()
    answer = health_answer(namespace, name, local_endpoints)
    bind, port = sock.getsockname()[:2]
    server = await loop.create_server(lambda: HealthProtocol(answer), sock=sock, backlog=1024)
    return EchoServer(netns, port, "TCP", f"kube-proxy health {namespace}/{name}", bind, server.close)


def local_endpoints_of(body: bytes) -> int | None:
    """``localEndpoints`` of a health answer's body (None: not a kube-proxy health answer).

    >>> local_endpoints_of(b'{"service":{"namespace":"a","name":"b"},"localEndpoints":2,"serviceProxyHealthy":true}')
    2
    >>> local_endpoints_of(b'{"hostname":"x"}') is None
    True
    """
    if b'"localEndpoints"' not in body:
        return None
    try:
        value = json.loads(body.decode("utf-8", "replace")).get("localEndpoints")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None
