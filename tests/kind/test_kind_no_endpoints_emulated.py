"""OpenELB announces an endpoint-less Cluster Service's VIP, MetalLB does not: a kind run on the emulated API.

The emulated add-on agents (tests/support/kubeapi/workloads.py, controllers.py) follow the
upstream rule independently of netiso.model.election: OpenELB's speakers log an election for
every Cluster VIP, endpoints or not (openelb pkg/speaker/manager.go getServiceNodes), MetalLB
writes no ServiceL2Status without a ready endpoint. The network answers as predicted
(tests/kind/emulated_kind.py), so what this proves is the announcer the backend reads back.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from netiso.checking import check_many
from netiso.model.addressing import load_topologies
from tests.kind.emulated_kind import kind_run

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("lb", ["metallb", "openelb"])
def test_emulated_api_kind_lb_without_endpoints_is_announced_only_by_openelb_under_cluster(
        lb: str, fake_cluster, standins, tmp_path: Path, monkeypatch) -> None:
    (topo,) = [t for t in load_topologies([str(ROOT / "scenarios" / "loadbalancer-no-endpoints.yaml")])
               if t.load_balancer == lb]
    run = kind_run(topo, fake_cluster, standins, tmp_path, monkeypatch)
    run.backend.preflight([topo])
    try:
        (result,) = check_many([topo], backend=run.backend, evidence=False)
    finally:
        run.backend.close()
    assert result.mismatches == 0, [r.problems for r in result.results if r.problems]
    vip_flow = next(r for r in result.results if r.pred.flow.label == "client:alice -> loadbalancer:shop/empty")
    announcer = result.topo.services["shop/empty"].lb_node
    if lb == "openelb":
        assert vip_flow.pred.verdict == "refused" and announcer is not None
        assert vip_flow.obs.elected == announcer  # read from the emulated speakers' election log
    else:
        assert vip_flow.pred.verdict == "dropped" and announcer is None and vip_flow.obs.elected is None
