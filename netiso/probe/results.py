"""The probe request/result schema shared by the engine, the agent's JSON protocol and reports.

Kept free of heavy imports so that the agent starts fast and reports can import it cheaply.
A result carries its evidence (what the server saw, which server identity answered) next to the
verdict, because a verdict alone cannot explain a surprise: a probe that was "allowed" but
answered by the wrong pod, or with an SNAT source, is exactly what the suite looks for.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

ProbeVerdict = Literal["allowed", "dropped", "refused", "error"]
PROBE_VERDICTS: tuple[str, ...] = ("allowed", "dropped", "refused", "error")
PROBE_PROTOCOLS: tuple[str, ...] = ("TCP", "UDP")


@dataclass(frozen=True)
class ProbeRequest:
    """One connection attempt from ``netns`` to ``dst_ip:dst_port``.

    ``host`` sets the HTTP Host header (ingress virtual hosts); ``path`` is the HTTP path, or
    for UDP the datagram sent (``/netiso`` is sent as ``netiso``). ``netns=None`` probes from
    the agent's own namespace (only useful in unit tests: lab traffic stays in lab namespaces).

    >>> ProbeRequest("a", "nxh2-c", "198.18.0.2", 8080).protocol
    'TCP'
    """

    id: str
    netns: str | None
    dst_ip: str
    dst_port: int
    protocol: str = "TCP"
    host: str | None = None
    path: str = "/netiso"
    timeout: float = 1.0
    connect_timeout: float | None = None  # TCP: limit for the handshake alone (default: timeout)
    trace: bool = False  # mark the first packet for the agent's tracer (see netiso.probe.tracer)
    # An HTTP proxy's connections this request makes it open, "SRC>DST:PORT" each (an ingress
    # controller pod to every endpoint of the upstream serving ``host``): with ``trace``, the probe
    # is settled as dropped once the tracer saw a rule drop a connection to each of them.
    upstreams: tuple[str, ...] = ()
    # A probe no rule decided that timed out is tried again (a fresh socket), up to ``retries`` more
    # times: a SYN lost under load is retransmitted after 1 s, exactly when a 1 s probe gives up, so
    # one timeout is not yet a drop. The result says how many tries its verdict took (``tries``).
    retries: int = 0

    def __post_init__(self) -> None:
        if self.protocol not in PROBE_PROTOCOLS:
            raise ValueError(f"probe {self.id}: unsupported protocol {self.protocol!r}")
        if not 0 < int(self.dst_port) < 65536:
            raise ValueError(f"probe {self.id}: invalid port {self.dst_port!r}")
        if not self.timeout > 0:
            raise ValueError(f"probe {self.id}: timeout must be > 0")
        if not 0 <= int(self.retries) <= 5:
            raise ValueError(f"probe {self.id}: retries must be 0..5")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProbeRequest:
        """Build from a JSON object; unknown keys are an error (typos must not pass silently).

        >>> ProbeRequest.from_dict({"id": "1", "netns": "x", "dst_ip": "198.18.0.1", "dst_port": 80})
        ... # doctest: +ELLIPSIS
        ProbeRequest(id='1', netns='x', dst_ip='198.18.0.1', dst_port=80, ...)
        """
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"probe {data.get('id')!r}: unknown field(s) {sorted(unknown)}")
        if "upstreams" in data:
            data = {**data, "upstreams": tuple(data["upstreams"] or ())}
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ProbeResult:
    """The outcome of one ``ProbeRequest``.

    ``client_ip``/``client_port`` are the peer address as the *server* saw it (after any
    NAT); ``hostname`` is the identity of the server that answered; ``forwarded_for`` and
    ``real_ip`` are the ``X-Forwarded-For`` / ``X-Real-IP`` headers it received (set by an
    ingress proxy). ``status`` is the HTTP status (TCP only). ``ms`` is the wall time of the
    probe; ``detail`` says why a probe was not allowed (errno name, HTTP status...).
    ``path`` (traced probes) holds the rules the kernel reported for the first packet, node by
    node (``TraceHop`` dicts), and ``decided_by`` the deciding rule in ``netiso.oracle.decided``
    words; a probe a rule dropped is settled at once, its ``detail`` naming that rule. ``tries``
    counts the attempts the verdict took (``ProbeRequest.retries``); path and evidence are the last try's.
    """

    id: str
    verdict: ProbeVerdict
    client_ip: str | None = None
    hostname: str | None = None
    forwarded_for: str | None = None
    real_ip: str | None = None
    ms: float = 0.0
    detail: str = ""
    client_port: int | None = None
    status: int | None = None
    path: list[dict[str, Any]] = field(default_factory=list)
    decided_by: str | None = None
    tries: int = 1  # probes fired for this verdict (more than one: undecided timeouts were retried)
    local_endpoints: int | None = None  # ``localEndpoints`` of a kube-proxy health answer (netiso.probe.health)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProbeResult:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        """A shallow dict (``path`` holds plain dicts already): ``asdict``'s deep copy of every traced
        hop cost the agent ~6 ms per traced result, more than the probe itself.

        >>> ProbeResult("1", "allowed", path=[{"node": "w"}]).to_dict()["path"]
        [{'node': 'w'}]
        """
        return {f.name: getattr(self, f.name) for f in _RESULT_FIELDS}


_RESULT_FIELDS = fields(ProbeResult)
