"""The bundled scenarios/host-network-servers.yaml on the kernel lab: echo servers in the node
namespaces answer ``to: node:NAME`` flows, every flow as predicted (verdict, source, deciding rule)."""

from __future__ import annotations

from pathlib import Path

import pytest

from netiso.checking import check_many
from netiso.model.addressing import load_topologies

pytestmark = pytest.mark.lab

BUNDLED = Path(__file__).resolve().parents[2] / "scenarios" / "host-network-servers.yaml"


def test_bundled_host_server_scenarios_match_the_oracle_on_the_lab() -> None:
    results = check_many(load_topologies([str(BUNDLED)]), jobs=3)
    flows = [(res.topo.name, r) for res in results for r in res.results]
    assert len(flows) == 13
    bad = [f"{name}: {r.pred.flow.label}: {'; '.join(r.problems) or r.pred.disagreements}"
           for name, r in flows if not r.match]
    assert not bad, "\n".join(bad)
    answered = {r.obs.answered_by for _n, r in flows if r.obs.verdict == "allowed"}
    assert answered == {"node:worker", "node:worker2"}
    # without natOutgoing the other node's server sees the pod IP itself
    (off,) = [res for res in results if res.topo.name == "host-servers-nat-outgoing-off"]
    (pod,) = off.topo.pods_of("shop", "web")
    seen = {r.pred.flow.label: r.obs.source_ip for r in off.results}
    assert seen["pod:shop/web -> node:worker2"] == pod.ip
