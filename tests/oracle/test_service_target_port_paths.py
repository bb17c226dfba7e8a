"""The oracle with Service ``targetPort``: kube-proxy DNATs to the pod port, and everything after it
(NetworkPolicy, the pod's socket, ingress-nginx's upstream, minimal-config's entry ports) is about
the pod port. Expected values are written per case from Kubernetes' documented behaviour, not
read back from the oracle.
"""

from __future__ import annotations

from typing import Any

import yaml

from netiso.model.addressing import resolve
from netiso.model.loader import loads
from netiso.model.types import Scenario
from netiso.oracle.minimal import minimal_config
from netiso.oracle.predict import predict_all


def scenario(services: list[dict[str, Any]], flows: list[dict[str, Any]], *,
             whitelist: list[dict[str, Any]] | None = None, ingresses: list[dict[str, Any]] | None = None,
             workloads: list[dict[str, Any]] | None = None) -> Scenario:
    doc = {
        "name": "tp",
        "cluster": {"encapsulation": "vxlan", "clients": ["alice", "bob"]},
        "workspaces": [{"name": "ws", "projects": [
            {"name": "shop", "isolation": True, "whitelist": whitelist or []}, {"name": "gateway"}]}],
        "workloads": workloads or [{"name": "web", "project": "shop", "nodes": ["worker"],
                                    "ports": [{"port": 9376, "name": "http"}]}],
        "services": services,
        "ingresses": ingresses or [],
        "flows": flows,
    }
    (s,) = loads(yaml.safe_dump(doc, sort_keys=False), "tp.yaml")
    return s


def only(s: Scenario) -> list[tuple[str, set[str]]]:
    return [(p.flow.dst, {o.verdict for o in p.outcomes}) for p in predict_all(resolve(s))]


WEB_80 = {"name": "web", "project": "shop", "type": "LoadBalancer", "externalTrafficPolicy": "Local",
          "ports": ["80:9376/TCP"]}
ALICE_9376 = [{"direction": "ingress", "peer": {"cidr": "client:alice"}, "ports": ["9376/TCP"]},
              {"direction": "ingress", "peer": {"cidr": "client:bob"}, "ports": ["80/TCP"]}]


def test_every_service_path_dnats_to_the_target_port_and_policy_judges_it() -> None:
    flows = [{"from": c, "to": to} for c in ("client:alice", "client:bob")
             for to in ("nodeport:shop/web@worker", "loadbalancer:shop/web")]
    flows.append({"from": "pod:shop/web", "to": "clusterip:shop/web"})
    preds = predict_all(resolve(scenario([WEB_80], flows, whitelist=ALICE_9376)))
    by = {(p.flow.src, p.flow.dst): p for p in preds}
    for to in ("nodeport:shop/web@worker", "loadbalancer:shop/web"):
        alice, bob = by[("client:alice", to)], by[("client:bob", to)]
        assert {o.verdict for o in alice.outcomes} == {"allowed"}, to
        assert {o.verdict for o in bob.outcomes} == {"dropped"}, to  # bob's rule opens 80, the pod port is 9376
        dnat = [h for h in alice.outcomes[0].hops if "KUBE-SEP DNAT" in h]
        assert dnat and dnat[0].endswith("(100.64.1.1:9376)"), dnat
        checks = [h.check for h in alice.outcomes[0].hops if getattr(h, "check", None) is not None]
        assert [(c.port, c.protocol) for c in checks] == [(9376, "TCP")]
    hairpin = by[("pod:shop/web", "clusterip:shop/web")]  # to itself through the ClusterIP
    assert {o.verdict for o in hairpin.outcomes} == {"allowed"}
    assert any(h.endswith("(100.64.1.1:9376); hairpin (source is the endpoint) → KUBE-MARK-MASQ")
               for h in hairpin.outcomes[0].hops)


def test_the_pod_must_serve_the_target_port_not_the_service_port() -> None:
    # web serves 9376 only; a Service whose targetPort is 80 reaches nothing there
    s = scenario([{"name": "web", "project": "shop", "ports": ["9376:80/TCP"]}],
                 [{"from": "pod:shop/web", "to": "clusterip:shop/web"}])
    assert only(s) == [("clusterip:shop/web", {"refused"})]


def test_named_target_port_skips_pods_without_it() -> None:
    workloads = [
        {"name": "web", "project": "shop", "nodes": ["worker"], "labels": {"tier": "front"},
         "ports": [{"port": 9376, "name": "http"}]},
        {"name": "old", "project": "shop", "nodes": ["worker2"], "labels": {"tier": "front"}},
    ]
    svc = {"name": "front", "project": "shop", "type": "NodePort", "externalTrafficPolicy": "Local",
           "selector": {"tier": "front"}, "ports": [{"port": 80, "targetPort": "http"}]}
    s = scenario([svc], [{"from": "client:alice", "to": "nodeport:shop/front@worker"},
                         {"from": "client:alice", "to": "nodeport:shop/front@worker2"},
                         {"from": "pod:shop/old", "to": "clusterip:shop/front"}],
                 whitelist=ALICE_9376[:1], workloads=workloads)
    assert only(s) == [("nodeport:shop/front@worker", {"allowed"}),
                       ("nodeport:shop/front@worker2", {"dropped"}),  # old is no endpoint: none local
                       ("clusterip:shop/front", {"allowed"})]  # only web is balanced to, never old:80
    (p,) = [x for x in predict_all(resolve(s)) if x.flow.dst == "clusterip:shop/front"]
    assert {o.receiver for o in p.outcomes} == {"pod:shop/web@worker"}


def test_ingress_proxies_to_the_pod_ip_and_target_port() -> None:
    s = scenario([{"name": "web", "project": "shop", "ports": ["80:9376/TCP"]}],
                 [{"from": "client:alice", "to": "ingress:shop/web"}],
                 whitelist=[{"direction": "ingress", "peer": {"project": "gateway"}, "ports": ["9376/TCP"]}],
                 ingresses=[{"name": "web", "project": "shop", "host": "web.example", "service": "web",
                             "controller": {"project": "gateway", "node": "worker2"}}])
    (pred,) = predict_all(resolve(s))
    assert {o.verdict for o in pred.outcomes} == {"allowed"}
    proxy = [h for h in pred.outcomes[0].hops if "nginx routes Host" in h]
    assert "(100.64.1.1:9376)" in proxy[0]


def test_egress_service_whitelist_with_a_different_target_port_does_not_open_the_flow() -> None:
    s = scenario([{"name": "web", "project": "shop", "ports": ["80"]},
                  {"name": "db", "project": "gateway", "ports": ["80:9376/TCP"]}],
                 [{"from": "pod:shop/web", "to": "clusterip:gateway/db"}],
                 whitelist=[{"direction": "egress", "peer": {"service": "gateway/db"}}],
                 workloads=[{"name": "web", "project": "shop", "nodes": ["worker"]},
                            {"name": "db", "project": "gateway", "nodes": ["worker2"], "ports": ["9376/TCP"]}])
    topo = resolve(s)
    (pred,) = predict_all(topo)
    assert {o.verdict for o in pred.outcomes} == {"dropped"}
    assert "on 9376/TCP → dropped" in pred.outcomes[0].hops[-1]
    assert any("egress-service-gateway-db" in w and "pod port 9376" in w for w in topo.warnings)


def test_minimal_config_proposes_the_pod_port_after_dnat() -> None:
    s = scenario([WEB_80], [{"from": "client:alice", "to": "nodeport:shop/web@worker", "intent": "wanted"},
                            {"from": "client:alice", "to": "loadbalancer:shop/web", "intent": "wanted"}])
    r = minimal_config(s)
    (entry,) = r.entries
    assert entry.peer_value == "client:alice"
    assert [str(p) for p in entry.ports] == ["9376/TCP"]  # the target port, neither 80 nor the NodePort
    with_it = resolve(r.scenario_with())
    assert {o.verdict for p in predict_all(with_it) for o in p.outcomes} == {"allowed"}
