"""The topology as a real cluster realized it: ClusterFacts override the address plan.

A cluster backend predicts for what it built: the node, tunnel, pod, client and service
addresses the cluster assigned, its node ports and VIPs, and the LoadBalancer election hashed
over the cluster's own node names (MetalLB/OpenELB hash ``node#ip``, so ``kind-worker`` and
``worker`` can elect different nodes for the same VIP). Symbols stay the scenario's.
"""

from __future__ import annotations

import hashlib

from netiso.model.addressing import resolve, resolve_cidr, symbols_of
from netiso.model.loader import loads
from netiso.model.types import ClusterFacts
from netiso.oracle.predict import predict_all

SCENARIO = """\
name: facts
cluster: {encapsulation: vxlan, clients: [alice]}
workspaces: [{name: ws, projects: [{name: shop, isolation: true, whitelist: [
  {direction: ingress, peer: {cidr: tunnel:worker2}}]}]}]
workloads: [{name: web, project: shop, nodes: [worker]}]
services:
  - {name: web, project: shop, type: NodePort}
  - {name: lb, project: shop, selector: {app: web}, type: LoadBalancer}
flows:
  - {from: client:alice, to: nodeport:shop/web@worker2}
"""

NAMES = {"control-plane": "kind-control-plane", "worker": "kind-worker", "worker2": "kind-worker2"}
FACTS = ClusterFacts(
    node_names=NAMES,
    node_ips={"control-plane": "172.18.0.2", "worker": "172.18.0.3", "worker2": "172.18.0.4"},
    tunnel_ips={"control-plane": "192.168.0.64", "worker": "192.168.1.0", "worker2": "192.168.2.128"},
    blocks={"control-plane": "192.168.0.64/26", "worker": "192.168.1.0/26", "worker2": "192.168.2.128/26"},
    lb_excluded={"control-plane": True, "worker": False, "worker2": False},
    client_ips={"alice": "172.18.0.9"},
    pod_ips={"pod:shop/web@worker": "192.168.1.7"},
    cluster_ips={"shop/web": "10.96.3.4", "shop/lb": "10.96.3.5"},
    node_ports={"shop/web 8080/TCP": 31234, "shop/lb 8080/TCP": 31999},
    lb_ips={"shop/lb": "172.18.255.201"},
    node_network="172.18.0.0/16", pod_network="192.168.0.0/16", service_network="10.96.0.0/16",
)


def realized():  # type: ignore[no-untyped-def]
    (scenario,) = loads(SCENARIO, "facts.yaml")
    return resolve(scenario, FACTS)


def test_facts_replace_every_planned_address() -> None:
    topo = realized()
    assert topo.nodes["worker2"].ip == "172.18.0.4" and topo.nodes["worker2"].tunnel_ip == "192.168.2.128"
    assert topo.clients["alice"].ip == "172.18.0.9"
    assert topo.pods[0].ip == "192.168.1.7"
    web = topo.services["shop/web"]
    assert web.cluster_ip == "10.96.3.4" and web.ports[0].node_port == 31234
    assert topo.services["shop/lb"].lb_ip == "172.18.255.201"
    assert topo.pod_network == "192.168.0.0/16" and topo.node_network == "172.18.0.0/16"


def test_symbols_map_real_addresses_back_to_the_scenario_names() -> None:
    topo = realized()
    assert symbols_of(topo, "192.168.2.128") == ["tunnel:worker2"]
    assert symbols_of(topo, "172.18.0.9") == ["client:alice"]
    assert symbols_of(topo, "192.168.1.7") == ["pod:shop/web@worker"]


def test_whitelist_cidr_symbols_become_the_real_addresses() -> None:
    topo = realized()
    assert resolve_cidr(topo, "tunnel:worker2") == ["192.168.2.128/32"]
    blocks = [p for p in topo.policies if p["metadata"]["name"] != "nsnp-network-isolate"]
    assert any("192.168.2.128/32" in str(p["spec"]) for p in blocks)


def test_election_hashes_the_cluster_node_names_not_the_scenario_names() -> None:
    topo = realized()
    vip = "172.18.255.201"
    # MetalLB: the control-plane is excluded; Cluster policy: both workers are candidates.
    winner = min(["kind-worker", "kind-worker2"], key=lambda n: hashlib.sha256(f"{n}#{vip}".encode()).digest())
    svc = topo.services["shop/lb"]
    assert svc.lb_candidates == ("worker", "worker2")
    assert svc.lb_node == {v: k for k, v in NAMES.items()}[winner]


def test_prediction_for_a_realized_cluster_names_the_real_tunnel_source() -> None:
    topo = realized()
    (pred,) = predict_all(topo)
    assert pred.target.dst_ip == "172.18.0.4" and pred.target.dst_port == 31234
    assert pred.verdict == "allowed"  # the whitelist admits tunnel:worker2, the SNAT source
    assert pred.source == ["tunnel:worker2"]


def test_without_facts_the_plan_is_unchanged() -> None:
    (scenario,) = loads(SCENARIO, "facts.yaml")
    plain, empty = resolve(scenario), resolve(scenario, ClusterFacts())
    assert [(n.ip, n.tunnel_ip, n.block) for n in plain.nodes.values()] == \
        [(n.ip, n.tunnel_ip, n.block) for n in empty.nodes.values()]
    assert plain.services["shop/lb"].lb_node == empty.services["shop/lb"].lb_node
