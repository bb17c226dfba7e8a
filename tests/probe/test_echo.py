"""The echo server: agnhost-netexec-compatible answers, pure parsing and over real sockets.

The socket tests run on loopback inside a throw-away ``nxh2-*`` namespace, never in the host's.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from netiso.probe.classify import split_http_response
from netiso.probe.echo import (
    BadRequest,
    EchoStats,
    canonical_header,
    find_head_end,
    handle_http,
    handle_udp,
    make_listener,
    parse_request,
    render_response,
    start_echo,
)
from netiso.probe.netns import NetnsThreads, make_socket

PEER = "198.18.0.7:40001"


def answer(raw: bytes, hostname: str = "web-0") -> tuple[int, str, bytes]:
    return handle_http(parse_request(raw), PEER, hostname)


# --- pure request parsing and answers ------------------------------------------------------


def test_parse_request_keeps_header_order_and_duplicates() -> None:
    req = parse_request(b"GET /x?a=1 HTTP/1.0\r\nHost: h\r\nX-A: 1\r\nx-a: 2\r\n\r\n")
    assert (req.method, req.target, req.version) == ("GET", "/x?a=1", "HTTP/1.0")
    assert req.headers == (("Host", "h"), ("X-A", "1"), ("x-a", "2"))
    assert req.header("X-a") == "1, 2"
    assert req.header("missing") is None


@pytest.mark.parametrize(
    "raw",
    [b"GET /\r\n\r\n", b"HELLO\r\n\r\n", b"GET / SPDY/3\r\n\r\n", b"GET / HTTP/1.1\r\nno-colon\r\n\r\n"],
)
def test_parse_request_rejects_garbage(raw: bytes) -> None:
    with pytest.raises(BadRequest):
        parse_request(raw)


def test_find_head_end_accepts_crlf_and_bare_lf() -> None:
    assert find_head_end(b"GET / HTTP/1.1\r\nA: b\r\n\r\nBODY") == len(b"GET / HTTP/1.1\r\nA: b\r\n\r\n")
    assert find_head_end(b"GET / HTTP/1.1\nA: b\n\nBODY") == len(b"GET / HTTP/1.1\nA: b\n\n")
    assert find_head_end(b"GET / HTTP/1.1\r\nA: b\r\n") == -1


def test_clientip_is_the_peer_as_seen_by_the_server() -> None:
    assert answer(b"GET /clientip HTTP/1.1\r\nHost: x\r\n\r\n") == (200, "text/plain; charset=utf-8", PEER.encode())


@pytest.mark.parametrize("path", ["/hostname", "/hostName"])
def test_hostname_is_the_configured_identity(path: str) -> None:
    assert answer(f"GET {path} HTTP/1.1\r\n\r\n".encode(), hostname="pod-a")[2] == b"pod-a"


def test_header_with_key_returns_value_or_empty() -> None:
    raw = b"GET /header?key=X-Forwarded-For HTTP/1.1\r\nx-forwarded-for: 203.0.113.9\r\n\r\n"
    assert answer(raw)[2] == b"203.0.113.9"
    assert answer(b"GET /header?key=X-Real-IP HTTP/1.1\r\n\r\n")[2] == b""


def test_header_without_key_returns_all_headers_go_style() -> None:
    status, ctype, body = answer(b"GET /header HTTP/1.1\r\nhost: a\r\nx-a: 1\r\nX-A: 2\r\n\r\n")
    assert (status, ctype) == (200, "application/json")
    assert json.loads(body) == {"Host": ["a"], "X-A": ["1", "2"]}


def test_netiso_endpoint_answers_everything_at_once() -> None:
    raw = b"GET /netiso HTTP/1.0\r\nHost: web\r\nX-Real-IP: 203.0.113.5\r\nX-Forwarded-For: 203.0.113.5\r\n\r\n"
    status, ctype, body = answer(raw, hostname="pod-b")
    doc = json.loads(body)
    assert (status, ctype) == (200, "application/json")
    assert doc["clientip"] == PEER and doc["hostname"] == "pod-b"
    assert doc["headers"] == {"Host": "web", "X-Real-Ip": "203.0.113.5", "X-Forwarded-For": "203.0.113.5"}


def test_root_and_unknown_paths_return_a_timestamp_like_agnhost() -> None:
    for path in ("/", "/no/such/thing"):
        status, _, body = answer(f"GET {path} HTTP/1.1\r\n\r\n".encode())
        assert status == 200 and body.startswith(b"NOW: 20")


def test_healthz_and_echo_with_code() -> None:
    assert answer(b"GET /healthz HTTP/1.1\r\n\r\n")[:1] == (200,)
    assert answer(b"GET /echo?msg=hi%20there&code=503 HTTP/1.1\r\n\r\n")[::2] == (503, b"hi there")
    assert answer(b"GET /echo?msg=x HTTP/1.1\r\n\r\n")[::2] == (200, b"x")


def test_response_is_connection_close_with_exact_length() -> None:
    raw = render_response(200, "text/plain", b"hello", "HTTP/1.0")
    status, headers, body = split_http_response(raw)
    assert raw.startswith(b"HTTP/1.0 200 OK\r\n")
    assert (status, headers["content-length"], headers["connection"], body) == (200, "5", "close", b"hello")
    assert render_response(404, "text/plain", b"", "HTTP/1.1").startswith(b"HTTP/1.1 404 Not Found\r\n")


def test_canonical_header_matches_go() -> None:
    assert canonical_header("x-real-ip") == "X-Real-Ip"
    assert canonical_header("CONTENT-type") == "Content-Type"


@pytest.mark.parametrize(
    ("datagram", "reply"),
    [
        (b"hostname", b"pod-u"),
        (b"  HOSTNAME\n", b"pod-u"),
        (b"clientip", PEER.encode()),
        (b"echo Hello World", b"hello world"),  # agnhost lower-cases the whole command
        (b"unknown", None),
        (b"", None),
    ],
)
def test_udp_commands(datagram: bytes, reply: bytes | None) -> None:
    assert handle_udp(datagram, PEER, "pod-u") == reply


def test_udp_netiso_returns_json() -> None:
    raw = handle_udp(b"netiso", PEER, "pod-u")
    assert raw is not None and json.loads(raw) == {"clientip": PEER, "hostname": "pod-u"}


# --- real sockets, on loopback inside a throw-away namespace -------------------------------


def run_with_servers(netns: str, body: Callable[[NetnsThreads, EchoStats], Awaitable[Any]]) -> Any:
    """Start TCP 8080 and UDP 8081 echo servers in ``netns`` and run ``body`` in the same loop."""

    async def main() -> Any:
        threads = NetnsThreads()
        stats = EchoStats()
        servers = []
        try:
            for proto, port in (("TCP", 8080), ("UDP", 8081)):
                sock = await threads.arun_in(netns, make_listener, proto, "0.0.0.0", port)
                servers.append(await start_echo(sock, netns=netns, protocol=proto, hostname="echo-1", stats=stats))
            return await body(threads, stats)
        finally:
            for server in servers:
                server.close()
            threads.close()

    return asyncio.run(main())


async def http_exchange(threads: NetnsThreads, netns: str, raw: bytes, chunks: int = 1) -> bytes:
    """Send ``raw`` (optionally split in pieces) over TCP to 127.0.0.1:8080 in ``netns``."""
    loop = asyncio.get_running_loop()
    sock = await threads.arun_in(netns, make_socket, socket.AF_INET, socket.SOCK_STREAM)
    try:
        async with asyncio.timeout(3):
            await loop.sock_connect(sock, ("127.0.0.1", 8080))
            step = max(1, len(raw) // chunks)
            for i in range(0, len(raw), step):
                await loop.sock_sendall(sock, raw[i : i + step])
                await asyncio.sleep(0.01)
            data = b""
            while chunk := await loop.sock_recv(sock, 65536):
                data += chunk
            return data
    finally:
        sock.close()


@pytest.mark.lab
def test_http_over_loopback_sees_peer_and_handles_split_requests(lone_ns: str) -> None:
    async def body(threads: NetnsThreads, stats: EchoStats) -> None:
        raw = await http_exchange(threads, lone_ns, b"GET /clientip HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, text = split_http_response(raw)
        assert status == 200 and text.startswith(b"127.0.0.1:")
        assert int(text.split(b":")[1]) > 0
        raw = await http_exchange(threads, lone_ns, b"GET /hostname HTTP/1.0\r\nHost: web\r\n\r\n", chunks=5)
        assert raw.startswith(b"HTTP/1.0 200 OK") and raw.endswith(b"\r\n\r\necho-1")
        # a body announced by Content-Length is read before answering (nginx may send one)
        raw = await http_exchange(threads, lone_ns, b"POST /netiso HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd", 3)
        assert json.loads(split_http_response(raw)[2])["hostname"] == "echo-1"
        raw = await http_exchange(threads, lone_ns, b"BROKEN\r\n\r\n")
        assert raw.startswith(b"HTTP/1.1 400 ")
        assert (stats.http_requests, stats.http_bad) == (3, 1)

    run_with_servers(lone_ns, body)


@pytest.mark.lab
def test_udp_over_loopback_answers_the_sender(lone_ns: str) -> None:
    async def body(threads: NetnsThreads, stats: EchoStats) -> None:
        loop = asyncio.get_running_loop()
        sock = await threads.arun_in(lone_ns, make_socket, socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.connect(("127.0.0.1", 8081))
            answers = []
            for cmd in (b"hostname", b"clientip", b"echo abc", b"netiso"):
                sock.send(cmd)
                async with asyncio.timeout(2):
                    answers.append(await loop.sock_recv(sock, 2048))
            local = f"127.0.0.1:{sock.getsockname()[1]}"
        finally:
            sock.close()
        assert answers[:3] == [b"echo-1", local.encode(), b"abc"]
        assert json.loads(answers[3]) == {"clientip": local, "hostname": "echo-1"}
        assert stats.udp_datagrams == 4

    run_with_servers(lone_ns, body)


@pytest.mark.lab
def test_listener_is_created_in_the_namespace_not_in_the_host(lone_ns: str) -> None:
    """The namespace has only ``lo``: an interface index lookup proves where the thread is."""
    threads = NetnsThreads()
    try:
        names = threads.run_in(lone_ns, lambda: [name for _, name in socket.if_nameindex()])
    finally:
        threads.close()
    assert names == ["lo"]
