"""Evidence for many mismatches costs per node, not per flow, and stops at a cap (issue 16).

The lab's ``evidence_many`` is driven here with a stand-in lab and prober (no namespaces: what is
checked is how often the expensive reads happen, which a recording stand-in shows exactly), over
real predictions of the generated 6-node scale scenario: client flows to every NodePort on every
node. The real reads (iptables-save, routes, a capture) are covered by test_evidence.py on the
kernel lab.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from netiso.backends.base import EVIDENCE_LEFT_OUT_KEY, LocalProbe, LocalResult
from netiso.backends.lab import backend as lab_backend
from netiso.backends.lab.backend import LabRealization, involved_nodes
from netiso.model.addressing import load_topologies
from netiso.oracle.judge import Observation
from netiso.oracle.predict import predict_all
from netiso.oracle.profile import DEFAULT_PROFILE
from tests.support.scale_scenarios import scale_scenario_yaml


class RecordingLab:
    def __init__(self, topo: Any) -> None:
        self.topo, self.timings = topo, {}
        self.reads: Counter[str] = Counter()

    def evidence(self, nodes: list[str]) -> dict[str, str]:
        for n in nodes:
            self.reads[n] += 1
        return {f"node:{n}": f"## iptables-save of {n}" for n in nodes}


class RecordingProber:
    def __init__(self) -> None:
        self.batches: list[list[LocalProbe]] = []

    def probe(self, probes: list[LocalProbe]) -> list[LocalResult]:
        self.batches.append(list(probes))
        return [LocalResult(p.id, "dropped", detail="timeout after 1.0s: no answer to SYN") for p in probes]


@pytest.fixture
def realization(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[LabRealization, list[Any]]:
    path = tmp_path / "scale.yaml"
    path.write_text(scale_scenario_yaml(6))
    topo = load_topologies([str(path)])[0]
    preds = [p for p in predict_all(topo, DEFAULT_PROFILE) if p.flow.src.startswith("client:")]
    real = LabRealization(RecordingLab(topo), RecordingProber(), RecordingProber(), trace=False)
    real._requests = {id(p): LocalProbe(str(i), "ns", p.target.dst_ip or "198.18.0.10", 8080)
                      for i, p in enumerate(preds)}
    captured: list[str] = []
    monkeypatch.setattr(real, "capture_retry",
                        lambda pred, request: captured.append(request.id) or {"capture br0": "(packets)"})
    return real, [preds, captured]


def test_each_node_is_read_once_captures_are_capped_and_the_rest_is_counted(
        realization: tuple[LabRealization, list[Any]]) -> None:
    real, (preds, captured) = realization
    items = [(p, Observation("dropped")) for p in preds]
    limit = 30
    out = real.evidence_many(items, limit=limit)
    assert len(out) == len(items) > limit
    lab: RecordingLab = real.lab
    involved = {n for p in preds[:limit] for n in (involved_nodes(p) or list(real.topo.nodes))}
    assert set(lab.reads) == involved and set(lab.reads.values()) == {1}  # per node once, not per flow
    assert len(captured) == lab_backend.CAPTURE_LIMIT
    prober: RecordingProber = real.prober
    assert [len(b) for b in prober.batches] == [limit - lab_backend.CAPTURE_LIMIT]  # one batch of plain retries
    assert all(out[i]["retry"].startswith("dropped") for i in range(lab_backend.CAPTURE_LIMIT, limit))
    more = len(items) - limit
    assert all(e == {EVIDENCE_LEFT_OUT_KEY: f"{more} more mismatches past the first {limit} of this scenario: "
                                            "evidence is gathered for those only"} for e in out[limit:])
    # each node's dump is written once in full; later flows crossing it name the flow that holds it
    full = Counter(k for e in out[:limit] for k, v in e.items() if v.startswith("## iptables-save"))
    assert set(full.values()) == {1} and set(full) == {f"node:{n}" for n in involved}
    later = [v for e in out[:limit] for k, v in e.items() if k.startswith("node:") and not v.startswith("##")]
    assert later and all(v.startswith("(the same dump as in the evidence of client:") for v in later)


def test_a_small_run_gets_evidence_for_every_mismatch(realization: tuple[LabRealization, list[Any]]) -> None:
    real, (preds, captured) = realization
    out = real.evidence_many([(p, Observation("dropped")) for p in preds[:3]])
    assert len(out) == 3 and all("capture br0" in e and any(k.startswith("node:") for k in e) for e in out)
    assert len(captured) == 3 and not any(EVIDENCE_LEFT_OUT_KEY in e for e in out)
