"""The probe agent as the lab's :class:`~netiso.backends.base.Prober`.

The lab backend asks for echo servers and probes in its namespaces through the backend-neutral
``Prober`` protocol (it may not import this layer); this adapter translates that vocabulary to the
agent's (``LocalProbe`` -> ``ProbeRequest``, ``ProbeResult`` -> ``LocalResult``). The top layer
passes :func:`start_agent_prober` as the lab's prober factory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, fields
from typing import Any

from netiso.backends.base import LocalProbe, LocalResult
from netiso.probe.agent import ProbeAgent
from netiso.probe.results import ProbeRequest, ProbeResult

_RESULT_FIELDS = frozenset(f.name for f in fields(LocalResult))
_REQUEST_FIELDS = frozenset(f.name for f in fields(ProbeRequest))


def to_request(probe: LocalProbe) -> ProbeRequest:
    return ProbeRequest(**{k: v for k, v in asdict(probe).items() if k in _REQUEST_FIELDS})


def to_local(result: ProbeResult) -> LocalResult:
    # shallow: asdict() would deep-copy every traced hop of every result
    return LocalResult(**{k: getattr(result, k) for k in _RESULT_FIELDS})


class AgentProber:
    """One probe agent process behind the ``Prober`` protocol."""

    def __init__(self, agent: ProbeAgent) -> None:
        self.agent = agent

    @property
    def pid(self) -> int | None:
        return self.agent.pid

    def serve(self, netns: str, port: int, protocol: str, hostname: str, health: dict[str, Any] | None = None) -> None:
        self.agent.serve(netns, port, protocol, hostname=hostname, health=health)

    def probe(self, probes: Sequence[LocalProbe]) -> list[LocalResult]:
        return [to_local(r) for r in self.agent.probe([to_request(p) for p in probes])]

    def release(self, netns: str) -> None:
        self.agent.release(netns)

    def trace_start(self, namespaces: dict[str, str], dscp: int | None = None, *,
                    upstream_dscp: int | None = None) -> list[str]:
        """Read the trace events of these node namespaces (netns -> node); see netiso.backends.lab.tracing."""
        return self.agent.trace_start(namespaces, dscp, upstream_dscp=upstream_dscp)

    def trace_stop(self, namespaces: list[str] | None = None) -> list[str]:
        return self.agent.trace_stop(namespaces)

    def stop(self) -> None:
        self.agent.stop()


def start_agent_prober() -> AgentProber:
    """A new agent process (the lab's ``ProberFactory``)."""
    return AgentProber(ProbeAgent().start())
