"""An agnhost-netexec-compatible echo server (HTTP/1.x over TCP, and UDP) on asyncio.

In a real cluster the servers are ``agnhost netexec`` pods; in the lab one process serves the
same answers in every pod namespace, so the same probe code and the same result parsing work
on every backend. Compatible endpoints (agnhost netexec semantics):

* ``/clientip`` -> ``ip:port`` of the peer as the server sees it (after NAT);
* ``/hostname`` (``/hostName``) -> the configured identity (the pod name in the lab);
* ``/header?key=K`` -> that header's value (empty if absent); ``/header`` -> all headers as
  JSON (``{"Canonical-Name": ["v", ...]}`` like Go's ``http.Header``);
* ``/echo?msg=M&code=C`` -> ``M`` with status ``C``; ``/healthz``, ``/readyz`` -> 200;
* any other path -> ``NOW: <timestamp>`` (agnhost's ``/`` handler catches everything).

netiso adds ``/netiso`` -> JSON ``{"clientip", "hostname", "headers"}`` so that one request
answers every question a probe has; any path ending in ``/netiso`` answers the same, so an
ingress rule for ``/app`` works without a rewrite (``/app/netiso``). UDP datagrams (trimmed, case-insensitive, like agnhost):
``hostname``, ``clientip``, ``echo <msg>``, and ``netiso`` (the same JSON minus headers);
unknown commands get no answer.

Every response is ``Connection: close``: one request per connection keeps the server trivial,
matches what a probe needs, and works behind nginx (HTTP/1.0 upstream requests with ``Host``).
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

MAX_HEAD_BYTES = 16384
MAX_BODY_BYTES = 65536
READ_TIMEOUT = 10.0

_REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    301: "Moved Permanently",
    302: "Found",
    400: "Bad Request",
    404: "Not Found",
    412: "Precondition Failed",
    417: "Expectation Failed",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class BadRequest(ValueError):
    """The bytes received are not an HTTP/1.x request head."""


@dataclass(frozen=True)
class HttpRequest:
    """A parsed request head. ``headers`` keeps order and duplicates, names as received."""

    method: str
    target: str
    version: str
    headers: tuple[tuple[str, str], ...] = ()

    def header(self, name: str) -> str | None:
        """First value of a header, case-insensitively; values of repeats are comma-joined.

        >>> HttpRequest("GET", "/", "HTTP/1.1", (("x-a", "1"), ("X-A", "2"))).header("X-A")
        '1, 2'
        """
        wanted = name.lower()
        values = [v for k, v in self.headers if k.lower() == wanted]
        return ", ".join(values) if values else None

    def content_length(self) -> int:
        value = self.header("Content-Length")
        if value is None:
            return 0
        try:
            length = int(value)
        except ValueError as exc:
            raise BadRequest(f"bad Content-Length {value!r}") from exc
        if length < 0:
            raise BadRequest(f"bad Content-Length {value!r}")
        return length


def canonical_header(name: str) -> str:
    """Go's ``CanonicalMIMEHeaderKey`` for ordinary names.

    >>> canonical_header("x-forwarded-FOR")
    'X-Forwarded-For'
    """
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def find_head_end(buf: bytes | bytearray) -> int:
    """Index just past the blank line ending the head, or -1. Bare ``\\n\\n`` is tolerated.

    >>> find_head_end(b"GET / HTTP/1.0\\r\\n\\r\\nrest")
    18
    """
    crlf = buf.find(b"\r\n\r\n")
    lf = buf.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf < lf):
        return crlf + 4
    if lf >= 0:
        return lf + 2
    return -1


def parse_request(head: bytes) -> HttpRequest:
    """Parse a request head (request line + header lines, with or without the blank line).

    >>> r = parse_request(b"GET /clientip HTTP/1.1\\r\\nHost: a\\r\\n\\r\\n")
    >>> (r.method, r.target, r.version, r.header("host"))
    ('GET', '/clientip', 'HTTP/1.1', 'a')
    """
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError as exc:  # pragma: no cover - latin-1 decodes every byte
        raise BadRequest(str(exc)) from exc
    lines = text.replace("\r\n", "\n").split("\n")
    parts = lines[0].split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(f"bad request line {lines[0][:80]!r}")
    method, target, version = parts
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest(f"bad header line {line[:80]!r}")
        headers.append((name, value.strip()))
    return HttpRequest(method, target, version, tuple(headers))


def format_peer(peer: tuple[Any, ...]) -> str:
    """``ip:port`` like Go's ``RemoteAddr`` (IPv6 in brackets).

    >>> format_peer(("198.18.0.1", 40000)), format_peer(("fd00::1", 80, 0, 0))
    ('198.18.0.1:40000', '[fd00::1]:80')
    """
    host, port = peer[0], peer[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _now_text() -> str:
    return "NOW: " + time.strftime("%Y-%m-%d %H:%M:%S %z %Z")


def handle_http(request: HttpRequest, peer: str, hostname: str) -> tuple[int, str, bytes]:
    """Answer one request: ``(status, content_type, body)``. Pure, so it is unit-tested alone.

    >>> handle_http(parse_request(b"GET /clientip HTTP/1.0"), "198.18.0.1:5", "p")[2]
    b'198.18.0.1:5'
    """
    split = urlsplit(request.target)
    path = split.path or "/"
    query = parse_qs(split.query, keep_blank_values=True)
    text = "text/plain; charset=utf-8"

    def arg(name: str) -> str:
        values = query.get(name)
        return values[0] if values else ""

    if path == "/netiso" or path.endswith("/netiso"):
        body = {
            "clientip": peer,
            "hostname": hostname,
            "headers": {canonical_header(k): v for k, v in _joined_headers(request).items()},
        }
        return 200, "application/json", json.dumps(body, separators=(",", ":")).encode()
    if path == "/clientip":
        return 200, text, peer.encode()
    if path in ("/hostname", "/hostName"):
        return 200, text, hostname.encode()
    if path == "/header":
        key = arg("key")
        if key:
            return 200, text, (request.header(key) or "").encode()
        grouped: dict[str, list[str]] = {}
        for name, value in request.headers:
            grouped.setdefault(canonical_header(name), []).append(value)
        return 200, "application/json", json.dumps(grouped, separators=(",", ":")).encode()
    if path in ("/healthz", "/readyz"):
        return 200, text, b"ok"
    if path == "/echo":
        code = arg("code")
        status = 200
        if code:
            try:
                status = int(code)
            except ValueError:
                return 200, text, f"argument 'code' must be an integer or empty, got {code!r}\n".encode()
            if not 100 <= status <= 999:
                return 400, text, b"bad code\n"
        return status, text, arg("msg").encode()
    return 200, text, _now_text().encode()


def _joined_headers(request: HttpRequest) -> dict[str, str]:
    joined: dict[str, list[str]] = {}
    for name, value in request.headers:
        joined.setdefault(name.lower(), []).append(value)
    return {k: ", ".join(v) for k, v in joined.items()}


def render_response(status: int, content_type: str, body: bytes, version: str = "HTTP/1.1") -> bytes:
    """A complete ``Connection: close`` response.

    >>> render_response(200, "text/plain", b"hi", "HTTP/1.0").split(b"\\r\\n")[0]
    b'HTTP/1.0 200 OK'
    """
    reason = _REASONS.get(status, "Status")
    proto = "HTTP/1.0" if version == "HTTP/1.0" else "HTTP/1.1"
    head = (
        f"{proto} {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


def handle_udp(data: bytes, peer: str, hostname: str) -> bytes | None:
    """Answer one datagram like agnhost's UDP server (None: no answer).

    >>> handle_udp(b" ECHO Hi\\n", "198.18.0.1:5", "p"), handle_udp(b"clientip", "198.18.0.1:5", "p")
    (b'hi', b'198.18.0.1:5')
    """
    text = data.decode("utf-8", "replace").strip().lower()
    if text == "hostname":
        return hostname.encode()
    if text == "clientip":
        return peer.encode()
    if text.startswith("echo "):
        return text.split(" ", 1)[1].encode()
    if text == "netiso":
        return json.dumps({"clientip": peer, "hostname": hostname}, separators=(",", ":")).encode()
    return None


@dataclass
class EchoStats:
    """Counters shared by all servers of one process (reported by the agent's ``stats``)."""

    http_requests: int = 0
    http_bad: int = 0
    udp_datagrams: int = 0


class TimedConnection(asyncio.Protocol):
    """An accepted connection that is aborted when its request has not come within READ_TIMEOUT
    (a probe that never sends must not pin a server's socket); shared by the echo and health servers."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.timer = asyncio.get_running_loop().call_later(READ_TIMEOUT, transport.abort)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()


class HttpEchoProtocol(TimedConnection):
    """One accepted connection: read one request head (and body), answer, close."""

    def __init__(self, hostname: str, stats: EchoStats) -> None:
        super().__init__()
        self.hostname = hostname
        self.stats = stats
        self.peer = ""
        self.need = -1  # total bytes to read (head + body) once the head is parsed
        self.request: HttpRequest | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        self.peer = format_peer(peer) if peer else ""

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buf += data
        if self.request is None:
            end = find_head_end(self.buf)
            if end < 0:
                if len(self.buf) > MAX_HEAD_BYTES:
                    self._reply_bad(431, "request head too large")
                return
            try:
                self.request = parse_request(bytes(self.buf[:end]))
                length = self.request.content_length()
            except BadRequest as exc:
                self._reply_bad(400, str(exc))
                return
            if length > MAX_BODY_BYTES:
                self._reply_bad(400, "body too large")
                return
            self.need = end + length
        if len(self.buf) >= self.need:
            self.stats.http_requests += 1
            status, ctype, body = handle_http(self.request, self.peer, self.hostname)
            self._send(render_response(status, ctype, body, self.request.version))

    def _reply_bad(self, status: int, why: str) -> None:
        self.stats.http_bad += 1
        self._send(render_response(status, "text/plain; charset=utf-8", why.encode() + b"\n"))

    def _send(self, payload: bytes) -> None:
        assert self.transport is not None
        self.transport.write(payload)
        self.transport.close()
        self.request = None
        self.buf.clear()
        self.need = -1


class UdpEchoProtocol(asyncio.DatagramProtocol):
    """Answers each datagram to its sender."""

    def __init__(self, hostname: str, stats: EchoStats) -> None:
        self.hostname = hostname
        self.stats = stats
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's selector datagram transport does not subclass DatagramTransport (3.11).
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.stats.udp_datagrams += 1
        answer = handle_udp(data, format_peer(addr), self.hostname)
        if answer is not None and self.transport is not None:
            self.transport.sendto(answer, addr)

    def error_received(self, exc: Exception) -> None:
        """ICMP errors about our replies (client gone) are expected and ignored."""


def make_listener(protocol: str, bind: str, port: int) -> socket.socket:
    """Create and bind the listening socket; call it in the target namespace's thread."""
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    kind = socket.SOCK_STREAM if protocol == "TCP" else socket.SOCK_DGRAM
    sock = socket.socket(family, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((bind, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(4096)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


@dataclass
class EchoServer:
    """A running echo server (one port, one protocol, one namespace)."""

    netns: str | None
    port: int
    protocol: str
    hostname: str
    bind: str
    closer: Callable[[], None] = field(repr=False)

    def close(self) -> None:
        self.closer()


async def start_echo(
    sock: socket.socket,
    *,
    netns: str | None,
    protocol: str,
    hostname: str,
    stats: EchoStats | None = None,
) -> EchoServer:
    """Serve echo answers on an already bound socket (created in ``netns``) in this loop."""
    loop = asyncio.get_running_loop()
    stats = stats if stats is not None else EchoStats()
    bind, port = sock.getsockname()[:2]
    if protocol == "TCP":
        server = await loop.create_server(lambda: HttpEchoProtocol(hostname, stats), sock=sock, backlog=4096)
        return EchoServer(netns, port, protocol, hostname, bind, server.close)
    if protocol == "UDP":
        transport, _ = await loop.create_datagram_endpoint(lambda: UdpEchoProtocol(hostname, stats), sock=sock)
        return EchoServer(netns, port, protocol, hostname, bind, transport.close)
    sock.close()
    raise ValueError(f"unsupported protocol {protocol!r}")
