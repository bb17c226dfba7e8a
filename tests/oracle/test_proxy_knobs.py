"""The oracle's kube-proxy knobs: each changes the flows it should, and only those.

The bundled scenarios/kube-proxy-knobs.yaml is predicted as its ``expect`` says (the lab
observes it in tests/lab/test_kube_proxy_knobs_lab.py and in bin/conformance); the same
scenario without the knob is predicted as before, so each test shows what the knob changes.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from netiso.model.addressing import load_topologies, resolve
from netiso.model.types import KubeProxySpec, Topology
from netiso.oracle.predict import Prediction, predict_all

BUNDLED = Path(__file__).resolve().parents[2] / "scenarios" / "kube-proxy-knobs.yaml"
TOPOS = {t.name: t for t in load_topologies([str(BUNDLED)])}


def preds(topo: Topology) -> dict[str, Prediction]:
    return {f"{p.flow.src} -> {p.flow.dst}": p for p in predict_all(topo)}


def without_proxy_settings(topo: Topology) -> Topology:
    cluster = replace(topo.scenario.cluster, kubeProxy=KubeProxySpec())
    return resolve(replace(topo.scenario, cluster=cluster))


def test_bundled_knob_scenarios_are_predicted_as_their_expect_says() -> None:
    assert set(TOPOS) == {"service-traffic-knobs", "kube-proxy-masquerade-all", "kube-proxy-no-local-detector"}
    for topo in TOPOS.values():
        for p in predict_all(topo):
            assert not p.disagreements, f"{topo.name}: {p.flow.label}: {p.disagreements}"


def test_internal_traffic_policy_local_drops_the_cluster_ip_where_no_endpoint_runs() -> None:
    p = preds(TOPOS["service-traffic-knobs"])
    assert p["pod:shop/probe@worker2 -> clusterip:shop/web-itp"].decided_by == \
        "kube-proxy shop/web-itp no-local-endpoints drop"
    assert p["node:worker2 -> clusterip:shop/web-itp"].verdict == "dropped"
    assert p["pod:shop/probe@worker -> clusterip:shop/web-itp"].answered_by == ["pod:shop/web@worker"]
    scenario = TOPOS["service-traffic-knobs"].scenario
    plain = resolve(replace(scenario, services=tuple(replace(s, internalTrafficPolicy="Cluster")
                                                     for s in scenario.services)))
    assert preds(plain)["pod:shop/probe@worker2 -> clusterip:shop/web-itp"].verdict == "allowed"


def test_source_ranges_drop_other_sources_at_the_vip_but_not_at_the_node_port() -> None:
    p = preds(TOPOS["service-traffic-knobs"])
    assert p["client:bob -> loadbalancer:shop/web-fw"].decided_by == "kube-proxy shop/web-fw source-ranges drop"
    assert p["pod:shop/probe@worker2 -> loadbalancer:shop/web-fw"].verdict == "dropped"
    assert p["client:alice -> loadbalancer:shop/web-fw"].verdict == "allowed"
    assert p["client:bob -> nodeport:shop/web-fw@worker2"].verdict == "allowed"
    assert any("KUBE-FW" in hop and "outside loadBalancerSourceRanges" in hop
               for hop in p["client:bob -> loadbalancer:shop/web-fw"].path)


def test_masquerade_all_masquerades_pods_to_cluster_ips_and_node_port_addresses_refuse_other_addresses() -> None:
    topo = TOPOS["kube-proxy-masquerade-all"]
    p, before = preds(topo), preds(without_proxy_settings(topo))
    flow = "pod:shop/probe@worker2 -> clusterip:shop/web"
    assert p[flow].decided_by.endswith("masquerade kube-proxy") and p[flow].source == ["tunnel:worker2"]
    assert before[flow].source == ["pod:shop/probe@worker2"]
    refused = p["client:alice -> nodeport:shop/web@worker2"]
    assert refused.verdict == "refused" and any("not in nodePortAddresses" in hop for hop in refused.path)
    assert before["client:alice -> nodeport:shop/web@worker2"].verdict == "allowed"
    assert p["client:alice -> nodeport:shop/web@worker"].verdict == "allowed"


def test_without_a_local_traffic_detector_pods_lose_the_etp_local_short_circuit() -> None:
    topo = TOPOS["kube-proxy-no-local-detector"]
    flow = "pod:shop/probe@worker2 -> nodeport:shop/web@worker2"
    assert preds(topo)[flow].verdict == "refused"
    assert preds(without_proxy_settings(topo))[flow].answered_by == ["pod:shop/web@worker"]
