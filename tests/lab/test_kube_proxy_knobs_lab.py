"""The bundled scenarios/kube-proxy-knobs.yaml on the kernel lab: every flow as predicted.

kube-proxy's knobs (internalTrafficPolicy, loadBalancerSourceRanges, masqueradeAll,
detectLocalMode None, nodePortAddresses) are loaded as rules into real node namespaces; each
flow must match the oracle's verdict, source, answerer and the deciding rule read from the
kernel's TRACE. bin/conformance runs the same scenarios; this keeps them in bin/selftest.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from netiso.checking import check_many
from netiso.model.addressing import load_topologies

pytestmark = pytest.mark.lab

BUNDLED = Path(__file__).resolve().parents[2] / "scenarios" / "kube-proxy-knobs.yaml"


def test_bundled_kube_proxy_knob_scenarios_match_the_oracle_on_the_lab() -> None:
    results = check_many(load_topologies([str(BUNDLED)]), jobs=3)
    flows = [(res.topo.name, r) for res in results for r in res.results]
    assert len(flows) == 14
    bad = [f"{name}: {r.pred.flow.label}: {'; '.join(r.problems) or r.pred.disagreements}"
           for name, r in flows if not r.match]
    assert not bad, "\n".join(bad)
    decided = {r.obs.decided_by for _n, r in flows}
    assert {"kube-proxy shop/web-itp no-local-endpoints drop", "kube-proxy shop/web-fw source-ranges drop"} <= decided
