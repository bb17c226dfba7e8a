"""Service ``targetPort`` on the kernel lab: kube-proxy's rules DNAT to the pod port, the pods
serve it, nginx proxies to it, and the lab observes what the oracle predicts.

The bundled ``scenarios/service-target-port.yaml`` carries port != targetPort through a ClusterIP,
a NodePort, a LoadBalancer VIP and an Ingress, a named targetPort that skips a selected pod
without that name, and the KubeSphere egress service-peer whitelist that allows the Service's
port while the policy sees the pod port (dropped, with a warning). Rule-text tests run without
root; the lab run needs it (``lab`` mark).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from netiso.backends.lab.ingress import controllers_of, render_nginx_conf, upstream_connections
from netiso.backends.lab.kubeproxy import render_kube_proxy
from netiso.model.addressing import load_topologies
from netiso.model.types import Topology

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "scenarios" / "service-target-port.yaml"


@pytest.fixture(scope="module")
def topos() -> dict[str, Topology]:
    return {t.name: t for t in load_topologies([str(BUNDLED)])}


def nat_rules(topo: Topology, node: str) -> list[str]:
    return render_kube_proxy(topo, node).table("nat").rules


def test_kube_proxy_dnats_every_endpoint_to_the_target_port(topos: dict[str, Topology]) -> None:
    topo = topos["service-target-port"]
    dnat = [r for r in nat_rules(topo, "worker") if "DNAT" in r]
    web = topo.pods_of("shop", "web")
    for pod in web:
        assert any(r.startswith("-A KUBE-SEP-") and r.endswith(f"--to-destination {pod.ip}:9376")
                   and "shop/web" in r for r in dnat), pod.symbol
    assert not [r for r in dnat if "shop/" in r and r.endswith(":80")]  # never to the Service port


def test_a_named_target_port_makes_no_endpoint_of_a_pod_without_it(topos: dict[str, Topology]) -> None:
    topo = topos["service-target-port"]
    (legacy,) = topo.pods_of("shop", "legacy")
    rules = nat_rules(topo, "control-plane")
    front = [r for r in rules if "shop/front" in r and "DNAT" in r]
    assert sorted(r.rsplit(" ", 1)[1] for r in front) == sorted(f"{p.ip}:9376" for p in topo.pods_of("shop", "web"))
    assert not [r for r in rules if legacy.ip in r and "shop/front" in r]
    # ETP Local on the control-plane (only legacy runs there): nothing local, so the filter drops it
    flt = render_kube_proxy(topo, "control-plane").table("filter").rules
    assert any("shop/front" in r and "no local endpoints" in r and r.endswith("-j DROP") for r in flt)


def test_nginx_proxies_to_pod_ip_and_target_port(topos: dict[str, Topology], tmp_path: Path) -> None:
    topo = topos["service-target-port"]
    (ctl,) = controllers_of(topo)
    conf = render_nginx_conf(topo, ctl, tmp_path)
    for pod in topo.pods_of("shop", "web"):
        assert f"server {pod.ip}:9376" in conf
    assert "upstream shop-web-80 {" in conf  # ingress-nginx names the upstream by the Service port
    assert sorted(upstream_connections(topo, ctl, "web.example")) == sorted(
        f"{ctl.pod.ip}>{p.ip}:9376" for p in topo.pods_of("shop", "web"))


@pytest.mark.lab
def test_target_port_scenarios_are_observed_as_predicted_on_the_lab(topos: dict[str, Topology]) -> None:
    from netiso.checking import check_many

    results = {res.topo.name: res for res in check_many(list(topos.values()), jobs=2)}
    bad = [f"{name}: {r.pred.flow.label}: {'; '.join(r.problems)}"
           for name, res in results.items() for r in res.results if not r.match]
    assert not bad, "oracle and lab disagree:\n" + "\n".join(bad)
    observed = {(name, r.pred.flow.src, r.pred.flow.dst, str(r.pred.target.port)): r.obs.verdict
                for name, res in results.items() for r in res.results}
    tp, eg = "service-target-port", "egress-whitelist-target-port"
    assert observed[(tp, "pod:shop/legacy", "clusterip:shop/web", "80/TCP")] == "allowed"
    assert observed[(tp, "client:alice", "nodeport:shop/web@worker", "80/TCP")] == "allowed"
    assert observed[(tp, "client:alice", "loadbalancer:shop/web", "80/TCP")] == "allowed"
    assert observed[(tp, "client:bob", "nodeport:shop/web@worker", "80/TCP")] == "dropped"
    assert observed[(tp, "client:alice", "ingress:shop/web", "80/TCP")] == "allowed"
    assert observed[(tp, "client:alice", "nodeport:shop/front@worker2", "80/TCP")] == "allowed"
    assert observed[(tp, "client:alice", "nodeport:shop/front@control-plane", "80/TCP")] == "dropped"
    assert observed[(eg, "pod:shop/app", "clusterip:billing/db", "80/TCP")] == "dropped"
    assert observed[(eg, "pod:shop/app", "pod:billing/db", "80/TCP")] == "refused"
    assert observed[(eg, "pod:shop/app", "clusterip:billing/cache", "6379/TCP")] == "allowed"
    named = [r for r in results[tp].results if r.pred.flow.dst == "clusterip:shop/front"]
    assert named[0].obs.answered_by in {p.symbol for p in topos[tp].pods_of("shop", "web")}
