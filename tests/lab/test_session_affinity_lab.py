"""The bundled scenarios/session-affinity.yaml on the kernel lab: ClientIP affinity holds.

kube-proxy's ``-m recent`` rules are loaded into real node namespaces; each ``repeat: 8`` flow is
probed eight times, one after the other. With affinity every later probe must land on the first
probe's endpoint (of three: 1 chance in 3^7 that random balancing would pass); the Service
without affinity is judged probe by probe. bin/conformance runs the same scenario.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from netiso.checking import check_many
from netiso.model.addressing import load_topologies

pytestmark = pytest.mark.lab

BUNDLED = Path(__file__).resolve().parents[2] / "scenarios" / "session-affinity.yaml"


def test_repeated_probes_stick_to_the_first_endpoint_on_the_lab() -> None:
    (res,) = check_many(load_topologies([str(BUNDLED)]), jobs=1)
    bad = [f"{r.pred.flow.label}: {'; '.join(r.problems) or r.pred.disagreements}" for r in res.results if not r.match]
    assert not bad, "\n".join(bad)
    sticky = [r for r in res.results if r.pred.sticky]
    assert len(sticky) == 3
    for r in sticky:
        assert len(r.obs.repeats) == r.pred.flow.repeat - 1 == 7
        assert {by for _v, by in r.obs.repeats} == {r.obs.answered_by}
