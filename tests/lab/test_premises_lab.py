"""On the kernel lab: OpenELB's endpoint-less Cluster VIP is announced (refused), MetalLB's is not
(dropped); a client the scenario does not route to pod IPs loses its packet, a routed one arrives."""

from __future__ import annotations

from pathlib import Path

import pytest

from netiso.checking import check_many
from netiso.model.addressing import load_topologies

pytestmark = pytest.mark.lab
SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def _observed(path: Path) -> dict[tuple[str, str], tuple[str, str | None]]:
    results = check_many(load_topologies([str(path)]), jobs=2)
    bad = [f"{res.topo.name}: {r.pred.flow.label}: {r.problems}" for res in results for r in res.results if not r.match]
    assert not bad, bad
    return {(res.topo.name, r.pred.flow.label): (r.obs.verdict, r.obs.elected) for res in results for r in res.results}


def test_lab_lb_without_endpoints_openelb_cluster_refused_metallb_dropped() -> None:
    seen = _observed(SCENARIOS / "loadbalancer-no-endpoints.yaml")
    assert seen[("lb-no-endpoints-openelb", "client:alice -> loadbalancer:shop/empty")] == ("refused", "worker")
    assert seen[("lb-no-endpoints-metallb", "client:alice -> loadbalancer:shop/empty")] == ("dropped", None)
    assert seen[("lb-no-endpoints-openelb", "client:alice -> loadbalancer:shop/empty-local")][0] == "dropped"


def test_lab_client_routes_to_pods_only_when_the_scenario_says_so(tmp_path: Path) -> None:
    none = _observed(SCENARIOS / "client-pod-routes.yaml")
    assert none[("client-pod-routes-none", "client:alice -> pod:shop/web")][0] == "dropped"
    routed = tmp_path / "routed.yaml"
    routed.write_text((SCENARIOS / "client-pod-routes.yaml").read_text()
                      .replace("clientsRouteToPods: false", "clientsRouteToPods: true")
                      .replace("expect: {verdict: dropped}", "expect: {verdict: allowed}"))
    assert _observed(routed)[("client-pod-routes-none", "client:alice -> pod:shop/web")][0] == "allowed"
