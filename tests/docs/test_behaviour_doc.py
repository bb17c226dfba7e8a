"""docs/behaviour.md is generated, committed, and must not go stale.

The staleness test regenerates the page exactly as ``bin/behaviour-doc`` does (oracle plus a
lab run of every behaviour scenario, through ``netiso.checking.check_many``) and compares it
byte for byte with the committed file. The other tests run without root: the question covers
every exposure x traffic policy x encapsulation x entry kind, the output is deterministic, and
a lab observation that disagrees with the prediction shows up on the page (fed through a
stand-in measurement built from the predictions, named as such).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from netiso.model.types import Topology
from netiso.oracle.judge import Observation, judge
from netiso.oracle.predict import predict_all
from netiso.report import behaviour

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "behaviour.md"


@pytest.fixture(scope="module")
def rows() -> list[behaviour.Row]:
    return behaviour.build_rows(behaviour.build_cases())


@pytest.mark.lab
def test_committed_behaviour_doc_regenerates_identically_on_the_lab() -> None:
    from netiso.checking import check_many

    fresh = behaviour.generate(lambda topos: check_many(topos, jobs=3))
    committed = COMMITTED.read_text(encoding="utf-8")
    assert fresh == committed, "docs/behaviour.md is stale: run bin/behaviour-doc and commit the result"


def test_committed_page_was_measured_and_every_row_agreed(rows: list[behaviour.Row]) -> None:
    text = COMMITTED.read_text(encoding="utf-8")
    assert "measured on the embedded lab" in text
    assert "not measured" not in text and "Predictions only" not in text
    lines = [line for line in text.splitlines() if line.startswith("| ") and line.rstrip().endswith("|")
             and not line.startswith("| exposure")]
    assert len(lines) == len(rows)
    assert all(line.rstrip().endswith("| ✓ |") for line in lines), [x for x in lines if "✗" in x]


def test_question_covers_every_exposure_policy_mode_and_entry_kind(rows: list[behaviour.Row]) -> None:
    seen = {(r.mode, r.label, r.spec.etp, r.has_endpoint) for r in rows}
    for mode in behaviour.MODES:
        for label in ("NodePort", "Ingress (NodePort)"):
            for etp in ("Cluster", "Local"):
                assert {(mode, label, etp, True), (mode, label, etp, False)} <= seen
        for lb in ("MetalLB", "OpenELB"):
            for kind in ("LoadBalancer", "Ingress (LoadBalancer)"):
                label = f"{kind} · {lb}"
                assert {(mode, label, "Cluster", True), (mode, label, "Cluster", False)} <= seen
                # Local: both load balancers only announce from nodes with an endpoint
                assert (mode, label, "Local", True) in seen and (mode, label, "Local", False) not in seen
        for label in ("pod", "ClusterIP"):
            assert {(mode, label, "–", True), (mode, label, "–", False)} <= seen


def test_every_row_has_a_minimal_whitelist_or_the_reason_none_exists(rows: list[behaviour.Row]) -> None:
    for r in rows:
        if r.whitelisted_verdict == "allowed":
            assert r.whitelist.startswith("`") or r.whitelist == "none needed", r.whitelist
        else:
            assert r.whitelist.startswith("none opens it: "), (r.spec, r.whitelist)
            assert r.spec.etp == "Local" and not r.has_endpoint


def test_generation_without_measurement_is_deterministic() -> None:
    first = behaviour.generate()
    assert first == behaviour.generate()
    assert "Predictions only" in first and "```mermaid" in first


@dataclass
class StandInFlow:
    obs: Observation
    problems: list[str]

    @property
    def match(self) -> bool:
        return not self.problems


@dataclass
class StandInResult:
    results: list[StandInFlow] = field(default_factory=list)


def stand_in_measure(flip: tuple[str, str] | None, announcer: tuple[str, str, str] | None = None) -> Any:
    """A stand-in for the lab: observes what the oracle predicts (the first outcome), except
    that the flow ``flip`` (scenario name, to:) is observed dropped and, with ``announcer``
    (scenario name, to:, node), that flow's VIP is observed answered by that node."""

    def measure(topos: list[Topology]) -> list[StandInResult]:
        out = []
        for topo in topos:
            res = StandInResult()
            for pred in predict_all(topo):
                o = pred.outcomes[0]
                obs = Observation(o.verdict, source_ip=o.seen[0] if o.seen else None, answered_by=o.receiver,
                                  forwarded_for=(list(o.extra.get("forwarded_for", ())) or [None])[0],
                                  repeats=[(o.verdict, o.receiver)] * (pred.flow.repeat - 1),  # repeat: N
                                  status=o.extra.get("status"),  # type: ignore[arg-type]  # healthcheck: flows
                                  local_endpoints=o.extra.get("local_endpoints"))  # type: ignore[arg-type]
                if flip == (topo.name, pred.flow.dst):
                    obs = Observation("dropped")
                if announcer is not None and announcer[:2] == (topo.name, pred.flow.dst):
                    obs.elected = announcer[2]
                res.results.append(StandInFlow(obs, judge(topo, pred, obs)))
            out.append(res)
        return out

    return measure


def test_stand_in_measurement_equal_to_predictions_agrees_everywhere(rows: list[behaviour.Row]) -> None:
    text = behaviour.generate(stand_in_measure(None))
    assert "✗" not in text and "lab: **" not in text
    assert text.count("| ✓ |") == len(rows)


def test_stand_in_lab_disagreement_is_shown_on_its_row() -> None:
    flipped = ("behaviour-ipip-metallb-whitelisted", "nodeport:shop/np-cluster@worker2")
    text = behaviour.generate(stand_in_measure(flipped))
    bad = [line for line in text.splitlines() if "✗" in line]
    assert len(bad) == 1
    assert "`nodeport:shop/np-cluster@worker2`" in bad[0] and "allowed (lab: **dropped**)" in bad[0]
    assert bad[0] in text[text.index("## Calico ipip"):text.index("## Calico vxlan")]


def test_stand_in_vip_announced_elsewhere_is_shown_and_breaks_the_local_claim() -> None:
    moved = ("behaviour-vxlan-openelb", "loadbalancer:shop/lb-local", "worker2")
    text = behaviour.generate(stand_in_measure(None, moved))
    (row,) = [line for line in text.splitlines() if "(lab: VIP answered by **worker2**)" in line]
    assert "LoadBalancer · OpenELB | Local" in row and "✗" in row
    claims = text[text.index("## Where the measurements differ"):]
    assert "announced only by a node with an endpoint (MetalLB L2, OpenELB layer2). — **differs in part**" in claims


def test_attach_refuses_a_result_count_that_does_not_fit() -> None:
    cases = behaviour.build_cases()[:1]
    with pytest.raises(ValueError, match="expected 2 scenario results"):
        behaviour.attach(cases, [StandInResult()])
