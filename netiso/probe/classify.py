"""Pure pieces of the probe engine: what to send, how to read the answer, which verdict.

Kept apart from the socket scheduling in ``engine.py`` so that the classification rules (the
part a reviewer must agree with) read on one page and are unit-tested without a network.
"""

from __future__ import annotations

import errno
import json
from typing import Any, cast

from netiso.model.verdicts import verdict_for_status as status_verdict
from netiso.probe.results import ProbeRequest, ProbeVerdict

_REFUSED_ERRNOS = {errno.ECONNREFUSED, errno.ECONNRESET, errno.EHOSTUNREACH, errno.ENETUNREACH}
_DROPPED_ERRNOS = {errno.ETIMEDOUT}


def classify_oserror(exc: OSError) -> ProbeVerdict:
    """Verdict for a socket error raised by connect/send/recv.

    >>> classify_oserror(ConnectionRefusedError(errno.ECONNREFUSED, "x"))
    'refused'
    >>> classify_oserror(OSError(errno.EINVAL, "x"))
    'error'
    """
    if exc.errno in _REFUSED_ERRNOS:
        return "refused"
    if exc.errno in _DROPPED_ERRNOS:
        return "dropped"
    return "error"


def errno_detail(exc: OSError) -> str:
    """``ECONNREFUSED`` style name (falls back to the message)."""
    name = errno.errorcode.get(exc.errno or 0)
    return name if name else str(exc)


def verdict_for_status(status: int) -> ProbeVerdict:
    """Verdict for an HTTP status (the one convention of netiso.model.verdicts, typed for the agent).

    >>> [verdict_for_status(s) for s in (200, 502, 504, 404)]
    ['allowed', 'refused', 'dropped', 'error']
    """
    return cast(ProbeVerdict, status_verdict(status))


def build_http_request(req: ProbeRequest) -> bytes:
    """The single GET a TCP probe sends.

    >>> build_http_request(ProbeRequest("1", None, "198.18.0.2", 80, host="web.example"))
    b'GET /netiso HTTP/1.1\\r\\nHost: web.example\\r\\nUser-Agent: netiso-probe\\r\\nConnection: close\\r\\n\\r\\n'
    """
    host = req.host or (f"[{req.dst_ip}]" if ":" in req.dst_ip else req.dst_ip)
    if req.host is None and req.dst_port != 80:
        host = f"{host}:{req.dst_port}"
    return (f"GET {req.path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: netiso-probe\r\nConnection: close\r\n\r\n").encode("latin-1")


def split_http_response(data: bytes) -> tuple[int, dict[str, str], bytes]:
    """``(status, lower-cased headers, body)`` of a complete response.

    >>> split_http_response(b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nhi")
    (200, {'content-length': '2'}, b'hi')
    """
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError("incomplete HTTP response head")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ValueError(f"bad status line {lines[0][:60]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers, body


def split_peer(text: str) -> tuple[str | None, int | None]:
    """``"ip:port"`` (IPv6 bracketed) -> ``(ip, port)``.

    >>> split_peer("198.18.0.1:4000"), split_peer("[fd00::1]:80"), split_peer("junk")
    (('198.18.0.1', 4000), ('fd00::1', 80), (None, None))
    """
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or not host:
        return None, None
    return host.strip("[]"), int(port)


def evidence_from_body(path: str, body: bytes) -> dict[str, Any]:
    """What the server said about the probe, from the answer to ``path`` (HTTP) or command (UDP).

    >>> evidence_from_body("/netiso", b'{"clientip":"198.18.0.1:9","hostname":"p","headers":{}}')
    {'client_ip': '198.18.0.1', 'client_port': 9, 'hostname': 'p', 'forwarded_for': None, 'real_ip': None}
    """
    # The last path segment names the endpoint: "/app/netiso" behind an ingress is "netiso".
    command = path.strip().split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1].lower()
    text = body.decode("utf-8", "replace")
    out: dict[str, Any] = {}
    if command == "netiso":
        doc = json.loads(text)
        ip, port = split_peer(str(doc.get("clientip", "")))
        headers = {str(k).lower(): str(v) for k, v in (doc.get("headers") or {}).items()}
        out = {
            "client_ip": ip,
            "client_port": port,
            "hostname": doc.get("hostname"),
            "forwarded_for": headers.get("x-forwarded-for"),
            "real_ip": headers.get("x-real-ip"),
        }
    elif command == "clientip":
        ip, port = split_peer(text)
        out = {"client_ip": ip, "client_port": port}
    elif command == "hostname":
        out = {"hostname": text.strip()}
    return out


def udp_payload(path: str) -> bytes:
    """The datagram for a UDP probe: ``/netiso`` -> ``netiso``, ``echo hi`` stays as is."""
    return path.lstrip("/").encode()
