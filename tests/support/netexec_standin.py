"""Stand-in for ``agnhost netexec`` (HTTP/1.1 keep-alive + UDP) for the kube probing tests.

Why a second echo server when ``netiso/probe/echo.py`` exists: that one answers every request
with ``Connection: close``, while the kube backend's probes run curl with several URLs on one
command line and rely on the keep-alive connection that the real netexec (Go ``net/http``)
keeps open. This stand-in is a stdlib ``http.server`` with ``protocol_version = "HTTP/1.1"``,
so curl reuses its connection exactly as it would against a netexec pod.

Mirrors test/images/agnhost/netexec/netexec.go (kubernetes/kubernetes): ``/clientip`` ->
``r.RemoteAddr`` (``ip:port``, no newline), ``/hostname`` -> the hostname, ``/header?key=K``
-> that header's value, ``/echo?msg=M&code=C``; UDP datagrams are trimmed and lower-cased,
``hostname`` / ``clientip`` / ``echo <msg>`` answer, anything else is ignored. Differs
knowingly, to stand in for what sits in front of a pod on a cluster: ``force_status`` answers
every HTTP request with that status (an ingress gateway answering 502/503/504);
``later_status`` answers every request after the first of a connection with that status (nginx spreading one
client's requests over a healthy and a broken backend); ``forwarded_for`` answers
``/header?key=X-Forwarded-For`` as if a proxy had added that value; ``close_each`` closes the
connection after every answer (a server or proxy that does not keep connections alive);
unknown paths get 404 instead of netexec's timestamp page.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Standin:
    """Addresses of a running stand-in (both servers on 127.0.0.1)."""

    http_port: int
    udp_port: int
    hostname: str
    connections: list[tuple[str, int]]
    hosts: list[str]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HttpServer

    def log_message(self, format: str, *args: object) -> None:
        return

    def setup(self) -> None:
        super().setup()
        self.served = 0
        self.server.connections.append(self.client_address)

    def _send(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        server = self.server
        server.hosts.append(self.headers.get("Host", ""))
        self.served += 1
        if server.close_each:
            self.close_connection = True
        status = server.force_status
        if server.later_status is not None and self.served > 1:
            status = server.later_status
        if status is not None:
            self._send(status, f"stand-in gateway answer {status}\n")
            return
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path == "/clientip":
            self._send(200, f"{self.client_address[0]}:{self.client_address[1]}")
        elif url.path in ("/hostname", "/hostName"):
            self._send(200, self.server.hostname)
        elif url.path == "/header":
            key = query.get("key", [""])[0]
            if key.lower() == "x-forwarded-for" and server.forwarded_for is not None:
                self._send(200, server.forwarded_for)
            else:
                self._send(200, self.headers.get(key, "") or "")
        elif url.path == "/echo":
            code = int(query.get("code", ["200"])[0])
            self._send(code, query.get("msg", [""])[0])
        else:
            self._send(404, "not found\n")


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    hostname: str
    force_status: int | None
    later_status: int | None
    forwarded_for: str | None
    close_each: bool
    connections: list[tuple[str, int]]
    hosts: list[str]


class _UdpHandler(socketserver.BaseRequestHandler):
    server: _UdpServer

    def handle(self) -> None:
        data, sock = self.request
        text = data.decode("utf-8", "replace").strip().lower()
        if text == "hostname":
            answer = self.server.hostname
        elif text == "clientip":
            answer = f"{self.client_address[0]}:{self.client_address[1]}"
        elif text.startswith("echo "):
            answer = text.split(" ", 1)[1]
        else:
            return
        sock.sendto(answer.encode(), self.client_address)


class _UdpServer(socketserver.ThreadingUDPServer):
    daemon_threads = True
    hostname: str


@contextmanager
def running_standin(
    hostname: str = "pod-a",
    *,
    force_status: int | None = None,
    later_status: int | None = None,
    forwarded_for: str | None = None,
    close_each: bool = False,
) -> Iterator[Standin]:
    """Start the HTTP and UDP stand-ins on ephemeral 127.0.0.1 ports; stop them on exit."""
    http = _HttpServer(("127.0.0.1", 0), _Handler)
    http.hostname = hostname
    http.force_status = force_status
    http.later_status = later_status
    http.forwarded_for = forwarded_for
    http.close_each = close_each
    http.connections = []
    http.hosts = []
    udp = _UdpServer(("127.0.0.1", 0), _UdpHandler)
    udp.hostname = hostname
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (http, udp)]
    for thread in threads:
        thread.start()
    try:
        yield Standin(http.server_address[1], udp.server_address[1], hostname, http.connections, http.hosts)
    finally:
        for server in (http, udp):
            server.shutdown()
            server.server_close()


def closed_port(kind: int = socket.SOCK_STREAM) -> int:
    """A 127.0.0.1 port with nothing listening (bound, read, released): connecting is refused."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
