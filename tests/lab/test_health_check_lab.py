"""The bundled scenarios/health-check-node-port.yaml on the kernel lab: kube-proxy's health answers.

The lab runs kube-proxy's health server (netiso/probe/health.py, as service_health.go answers) in
every node's namespace behind the real KUBE-NODEPORTS ACCEPT rule; each flow must get the
predicted status and localEndpoints: 200/1 on the nodes with an endpoint, 503/0 on control-plane,
from a client, a pod on that node and another node. bin/conformance runs the same scenario.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from netiso.checking import check_many
from netiso.model.addressing import load_topologies

pytestmark = pytest.mark.lab

BUNDLED = Path(__file__).resolve().parents[2] / "scenarios" / "health-check-node-port.yaml"


def test_health_checks_answer_each_nodes_local_endpoints_on_the_lab() -> None:
    (res,) = check_many(load_topologies([str(BUNDLED)]), jobs=1)
    bad = [f"{r.pred.flow.label}: {'; '.join(r.problems) or r.pred.disagreements}" for r in res.results if not r.match]
    assert not bad, "\n".join(bad)
    answers = [(r.pred.flow.dst, r.obs.status, r.obs.local_endpoints) for r in res.results if r.pred.health]
    assert answers == [("healthcheck:shop/web@worker", 200, 1), ("healthcheck:shop/web@worker2", 200, 1)] + [
        ("healthcheck:shop/web@control-plane", 503, 0)] * 3
