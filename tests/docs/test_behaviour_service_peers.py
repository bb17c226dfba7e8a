"""docs/behaviour.md's section on KubeSphere service-peer whitelists and ``targetPort``.

The committed section must have been measured and agree flow by flow; a stand-in measurement
that disagrees (named as such: it is not a lab) must show up on the flow's line.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from netiso.oracle.predict import predict_all
from netiso.report import behaviour_service_peers as peers

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "behaviour.md"


def section_of(text: str) -> str:
    start = text.index(peers.TITLE)
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def test_committed_section_was_measured_and_shows_the_dropped_service_port() -> None:
    text = section_of(COMMITTED.read_text(encoding="utf-8"))
    flows = [line for line in text.splitlines() if line.startswith("* `pod:")]
    assert len(flows) == 4 and all(line.endswith("on the lab (agrees).") for line in flows), flows
    assert ("* `pod:shop/app` → `clusterip:billing/db` (80/TCP, DNAT to the pod port 9376): predicted **dropped**"
            in text)
    assert "egress to the Service's pods on `80/TCP`" in text and "the policy sees the pod port 9376" in text


def stand_in(flip_to: str | None) -> Any:
    """Observes the oracle's first outcome, except the flow to ``flip_to`` observed allowed."""

    def measure(topos: list[Any]) -> list[Any]:
        out = []
        for topo in topos:
            flows = []
            for pred in predict_all(topo):
                verdict = "allowed" if pred.flow.dst == flip_to else pred.outcomes[0].verdict
                problems = [] if verdict == pred.verdict else [f"observed {verdict}"]
                flows.append(SimpleNamespace(obs=SimpleNamespace(verdict=verdict), match=not problems,
                                             problems=problems))
            out.append(SimpleNamespace(results=flows))
        return out

    return measure


def test_a_stand_in_disagreement_is_shown_on_its_line() -> None:
    lines = peers.section(stand_in("clusterip:billing/db"))
    (bad,) = [line for line in lines if "lab: **" in line]
    assert bad.startswith("* `pod:shop/app` → `clusterip:billing/db`") and "lab: **allowed**" in bad
    assert "not measured" in "\n".join(peers.section(None))
