"""The lab's prober adapter carries the trace request and the traced answer across unchanged."""

from __future__ import annotations

from netiso.backends.base import LocalProbe
from netiso.probe.prober import to_local, to_request
from netiso.probe.results import ProbeResult


def test_a_traced_local_probe_becomes_a_traced_agent_request() -> None:
    assert to_request(LocalProbe("1", "nx123456-c-alice", "198.18.0.11", 30000, trace=True)).trace is True
    assert to_request(LocalProbe("1", "nx123456-c-alice", "198.18.0.11", 30000)).trace is False


def test_the_path_and_deciding_rule_reach_the_backend_result() -> None:
    hop = {"node": "worker", "table": "filter", "chain": "cali-tw-x", "handle": 63, "verdict": "DROP",
           "rule": "", "comment": "netiso:isolation=shop ingress drop; Drop if no policies passed packet",
           "decision": "isolation shop ingress drop"}
    local = to_local(ProbeResult("1", "dropped", path=[hop], decided_by="isolation shop ingress drop",
                                 detail="dropped by isolation shop ingress drop (node worker filter cali-tw-x rule 63)"))
    assert local.path == [hop] and local.decided_by == "isolation shop ingress drop"
    assert to_local(ProbeResult("2", "allowed")).path == [] and to_local(ProbeResult("2", "allowed")).decided_by is None
