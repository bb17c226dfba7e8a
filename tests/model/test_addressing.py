"""The default lab address plan, its overrides, determinism, LB election and symbol lookups.

The plan is part of what a report means weeks later (``tunnel:worker2`` = 100.64.2.0), so it
is pinned number by number. Election rules come from reference-facts.md section D (MetalLB
speaker/layer2_controller.go ShouldAnnounce; OpenELB getServiceNodes/SetBalancer): the winner
is the candidate whose sha256(node + "#" + ip) sorts first, which the tests recompute here.
"""

from __future__ import annotations

import hashlib

import pytest

from netiso.model import election
from netiso.model.addressing import addresses_of, resolve, resolve_cidr, symbols_of
from netiso.model.flows import resolve_flow
from netiso.model.loader import loads
from netiso.model.types import Port, ServiceInfo, Topology


def topo_of(text: str) -> Topology:
    (scenario,) = loads(text, "plan.yaml")
    return resolve(scenario)


def sha_winner(nodes: list[str], ip: str) -> str:
    """Independent re-statement of the layer2 election: smallest sha256(node#ip)."""
    return min(nodes, key=lambda n: hashlib.sha256(f"{n}#{ip}".encode()).digest())


PLAN = """\
name: plan
cluster: {encapsulation: ENC, clients: [alice, bob]}
workspaces: [{name: ws, projects: [{name: demo}]}]
projects: [{name: gw}, {name: other}]
workloads:
  - {name: web, project: demo, nodes: [worker, worker2]}
  - {name: api, project: demo, nodes: [worker]}
  - {name: web, project: other, nodes: [control-plane]}
services:
  - {name: web, project: demo, type: NodePort, ports: [8080/TCP, 9090/TCP]}
  - {name: api, project: demo}
  - {name: lb, project: demo, type: LoadBalancer, selector: {app: web}}
  - {name: lb-local, project: demo, type: LoadBalancer, externalTrafficPolicy: Local, selector: {app: api}}
ingresses:
  - {name: web, project: demo, host: web.example, service: web, controller: {project: gw, node: worker2}}
  - {name: web2, project: demo, host: web2.example, service: web, controller: {project: gw, node: worker2}}
  - {name: web3, project: demo, host: web3.example, service: api, controller: {project: gw, node: worker}}
"""


@pytest.fixture(scope="module")
def vxlan() -> Topology:
    return topo_of(PLAN.replace("ENC", "vxlan"))


# --------------------------------------------------------------------------- nodes and clients


def test_node_ips_start_at_host_10_of_the_node_network(vxlan: Topology) -> None:
    assert {n: i.ip for n, i in vxlan.nodes.items()} == {
        "control-plane": "198.18.0.10", "worker": "198.18.0.11", "worker2": "198.18.0.12"}
    assert [n.index for n in vxlan.nodes.values()] == [0, 1, 2]
    assert vxlan.node_network == "198.18.0.0/24"


def test_client_ips_start_at_host_100(vxlan: Topology) -> None:
    assert {c: i.ip for c, i in vxlan.clients.items()} == {"alice": "198.18.0.100", "bob": "198.18.0.101"}


def test_each_node_owns_a_26_block_in_a_24_slot(vxlan: Topology) -> None:
    assert [n.block for n in vxlan.nodes.values()] == ["100.64.0.0/26", "100.64.1.0/26", "100.64.2.0/26"]


@pytest.mark.parametrize("enc", ["ipip", "vxlan"])
def test_tunnel_ip_is_the_first_address_of_the_block(enc: str) -> None:
    topo = topo_of(PLAN.replace("ENC", enc))
    assert [n.tunnel_ip for n in topo.nodes.values()] == ["100.64.0.0", "100.64.1.0", "100.64.2.0"]


def test_direct_mode_has_no_tunnel_ip() -> None:
    topo = topo_of(PLAN.replace("ENC", "direct"))
    assert [n.tunnel_ip for n in topo.nodes.values()] == [None, None, None]


def test_control_plane_is_excluded_from_load_balancers_in_multi_node_clusters(vxlan: Topology) -> None:
    assert {n: i.lb_excluded for n, i in vxlan.nodes.items()} == {
        "control-plane": True, "worker": False, "worker2": False}


def test_single_node_cluster_keeps_its_node_eligible() -> None:
    # kind removes the exclusion label only for single-node clusters (reference-facts D).
    topo = topo_of("name: t\ncluster: {nodes: [solo]}\n")
    assert topo.nodes["solo"].lb_excluded is False


# --------------------------------------------------------------------------- pods


def test_pods_take_block_addresses_from_1_in_scenario_order(vxlan: Topology) -> None:
    ips = {p.symbol: p.ip for p in vxlan.pods if p.role == "workload"}
    assert ips == {
        "pod:demo/web@worker": "100.64.1.1",
        "pod:demo/web@worker2": "100.64.2.1",
        "pod:demo/api@worker": "100.64.1.2",
        "pod:other/web@control-plane": "100.64.0.1",
    }


def test_ingress_controllers_come_after_workloads_one_per_placement(vxlan: Topology) -> None:
    controllers = [p for p in vxlan.pods if p.role == "ingress-controller"]
    # web and web2 share (gw, worker2, NodePort, Cluster); web3 is on worker.
    assert [(p.workload, p.node, p.ip) for p in controllers] == [
        ("ingress-controller", "worker2", "100.64.2.2"), ("ingress-controller-1", "worker", "100.64.1.3")]
    assert vxlan.ingresses["demo/web"].controller.pod == vxlan.ingresses["demo/web2"].controller.pod
    assert controllers[0].ports == (Port(80, "TCP", "http"),)


def test_pod_lookup_helpers(vxlan: Topology) -> None:
    assert [p.node for p in vxlan.pods_of("demo", "web")] == ["worker", "worker2"]
    pod = vxlan.pod_by_ip("100.64.1.2")
    assert pod is not None and pod.symbol == "pod:demo/api@worker"
    assert vxlan.pod_by_ip("100.64.1.60") is None


# --------------------------------------------------------------------------- services


def test_cluster_ips_start_at_host_100_and_dns_is_host_10(vxlan: Topology) -> None:
    assert [s.cluster_ip for s in vxlan.services.values()] == [
        "198.19.0.100", "198.19.0.101", "198.19.0.102", "198.19.0.103", "198.19.0.104", "198.19.0.105"]
    assert vxlan.dns_service is not None and vxlan.dns_service.cluster_ip == "198.19.0.10"


def test_node_ports_count_from_30000_over_service_ports(vxlan: Topology) -> None:
    ports = {k: [p.node_port for p in s.ports] for k, s in vxlan.services.items()}
    assert ports == {
        "demo/web": [30000, 30001],
        "demo/api": [None],  # ClusterIP: no node port, none consumed
        "demo/lb": [30002],
        "demo/lb-local": [30003],
        "gw/ingress-controller": [30004],
        "gw/ingress-controller-1": [30005],
    }


def test_health_check_node_port_only_for_local_load_balancers(vxlan: Topology) -> None:
    assert vxlan.services["demo/lb-local"].health_check_node_port == 32000
    assert vxlan.services["demo/lb"].health_check_node_port is None
    assert vxlan.services["demo/web"].health_check_node_port is None


def test_load_balancer_vips_come_from_the_pool_in_service_order(vxlan: Topology) -> None:
    assert vxlan.services["demo/lb"].lb_ip == "198.18.0.200"
    assert vxlan.services["demo/lb-local"].lb_ip == "198.18.0.201"
    assert vxlan.services["demo/web"].lb_ip is None


def test_endpoints_are_selected_pods_of_the_same_project_only(vxlan: Topology) -> None:
    web = vxlan.services["demo/web"]
    assert [p.symbol for p in web.endpoints] == ["pod:demo/web@worker", "pod:demo/web@worker2"]
    assert web.endpoint_nodes() == ("worker", "worker2")  # other/web on control-plane is not selected
    assert web.port_for(None) == web.ports[0]
    assert web.port_for(Port(9090, "TCP")) == web.ports[1]
    assert web.port_for(Port(9090, "UDP")) is None


# --------------------------------------------------------------------------- overrides


def test_cluster_network_overrides_move_every_range() -> None:
    topo = topo_of("""\
name: t
cluster:
  encapsulation: ipip
  clients: [alice]
  network:
    nodeNetwork: 203.0.113.0/24
    podNetwork: 100.72.0.0/16
    serviceNetwork: 198.19.128.0/17
    loadBalancerPool: 203.0.113.240/30
    blockSize: 28
projects: [{name: demo}]
workloads: [{name: web, project: demo, nodes: [worker]}]
services:
  - {name: a, project: demo, type: LoadBalancer, selector: {app: web}}
  - {name: b, project: demo, type: LoadBalancer, selector: {app: web}}
""")
    assert [n.ip for n in topo.nodes.values()] == ["203.0.113.10", "203.0.113.11", "203.0.113.12"]
    assert topo.clients["alice"].ip == "203.0.113.100"
    assert [n.block for n in topo.nodes.values()] == ["100.72.0.0/28", "100.72.1.0/28", "100.72.2.0/28"]
    assert topo.nodes["worker"].tunnel_ip == "100.72.1.0"
    assert topo.pods[0].ip == "100.72.1.1"
    assert [s.cluster_ip for s in topo.services.values()] == ["198.19.128.100", "198.19.128.101"]
    assert topo.dns_service is not None and topo.dns_service.cluster_ip == "198.19.128.10"
    assert [s.lb_ip for s in topo.services.values()] == ["203.0.113.240", "203.0.113.241"]
    assert (topo.node_network, topo.pod_network, topo.service_network) == (
        "203.0.113.0/24", "100.72.0.0/16", "198.19.128.0/17")


def test_custom_node_names_keep_the_first_one_as_control_plane() -> None:
    topo = topo_of("name: t\ncluster: {nodes: [cp, n1, n2, n3]}\n")
    assert [(n.name, n.ip, n.lb_excluded) for n in topo.nodes.values()] == [
        ("cp", "198.18.0.10", True), ("n1", "198.18.0.11", False), ("n2", "198.18.0.12", False),
        ("n3", "198.18.0.13", False)]
    assert topo.nodes["n3"].block == "100.64.3.0/26"


# --------------------------------------------------------------------------- determinism


def test_resolving_twice_gives_equal_topologies() -> None:
    text = PLAN.replace("ENC", "vxlan")
    (s,) = loads(text, "plan.yaml")
    assert resolve(s) == resolve(s)
    assert resolve(s) == topo_of(text)


# --------------------------------------------------------------------------- election


LB = """\
name: lb
cluster: {loadBalancer: IMPL}
projects: [{name: demo}]
workloads: [{name: web, project: demo, nodes: [NODES]}]
services: [{name: web, project: demo, type: LoadBalancer, externalTrafficPolicy: ETP}]
"""


def lb_service(impl: str, nodes: str, etp: str) -> ServiceInfo:
    topo = topo_of(LB.replace("IMPL", impl).replace("NODES", nodes).replace("ETP", etp))
    return topo.services["demo/web"]


def test_metallb_cluster_policy_excludes_the_control_plane() -> None:
    svc = lb_service("metallb", "control-plane", "Cluster")
    assert svc.lb_candidates == ("worker", "worker2")
    assert svc.lb_node == sha_winner(["worker", "worker2"], svc.lb_ip)


def test_metallb_local_policy_only_endpoint_nodes() -> None:
    svc = lb_service("metallb", "worker2", "Local")
    assert svc.lb_candidates == ("worker2",)
    assert svc.lb_node == "worker2"


def test_metallb_local_policy_with_endpoint_only_on_control_plane_is_not_announced() -> None:
    svc = lb_service("metallb", "control-plane", "Local")
    assert svc.lb_candidates == () and svc.lb_node is None
    assert svc.lb_ip == "198.18.0.200"  # the VIP is still allocated


def test_openelb_includes_the_control_plane() -> None:
    svc = lb_service("openelb", "worker", "Cluster")
    assert svc.lb_candidates == ("control-plane", "worker", "worker2")
    assert svc.lb_node == sha_winner(["control-plane", "worker", "worker2"], svc.lb_ip)
    local = lb_service("openelb", "control-plane", "Local")
    assert local.lb_candidates == ("control-plane",) and local.lb_node == "control-plane"


@pytest.mark.parametrize(("impl", "etp"), [("metallb", "Cluster"), ("metallb", "Local"), ("openelb", "Local")])
def test_service_without_endpoints_is_not_announced(impl: str, etp: str) -> None:
    topo = topo_of(LB.replace("IMPL", impl).replace("NODES", "worker").replace("ETP", etp)
                   .replace("type: LoadBalancer", "selector: {app: nothing}, type: LoadBalancer"))
    svc = topo.services["demo/web"]
    assert svc.endpoints == () and svc.lb_candidates == () and svc.lb_node is None


def test_openelb_announces_a_cluster_service_without_endpoints_from_any_node() -> None:
    """openelb v0.6.0 pkg/speaker/manager.go getServiceNodes reads Endpoints only under Local."""
    topo = topo_of(LB.replace("IMPL", "openelb").replace("NODES", "worker").replace("ETP", "Cluster")
                   .replace("type: LoadBalancer", "selector: {app: nothing}, type: LoadBalancer"))
    svc = topo.services["demo/web"]
    assert svc.endpoints == () and svc.lb_candidates == ("control-plane", "worker", "worker2")
    assert svc.lb_node == sha_winner(["control-plane", "worker", "worker2"], svc.lb_ip)


@pytest.mark.parametrize("ip", ["198.18.0.200", "198.18.0.201", "198.18.0.217", "203.0.113.5"])
def test_elect_is_the_smallest_sha256_of_node_hash_ip(ip: str) -> None:
    nodes = ["control-plane", "worker", "worker2", "worker3"]
    assert election.elect(nodes, ip) == sha_winner(nodes, ip)
    assert election.elect(list(reversed(nodes)), ip) == sha_winner(nodes, ip)  # order does not matter
    assert election.elect([], ip) is None


# --------------------------------------------------------------------------- symbols


def test_symbols_of_maps_addresses_back(vxlan: Topology) -> None:
    assert symbols_of(vxlan, "198.18.0.100") == ["client:alice"]
    assert symbols_of(vxlan, "198.18.0.11") == ["node:worker"]
    assert symbols_of(vxlan, "100.64.2.0") == ["tunnel:worker2"]
    assert symbols_of(vxlan, "100.64.1.2") == ["pod:demo/api@worker"]
    ctrl = symbols_of(vxlan, "100.64.2.2")
    assert ctrl[0] == "pod:gw/ingress-controller@worker2"
    assert set(ctrl[1:]) == {"ingress-controller:demo/web", "ingress-controller:demo/web2"}
    assert symbols_of(vxlan, "203.0.113.9") == []


def test_addresses_of_every_symbol_kind(vxlan: Topology) -> None:
    assert addresses_of(vxlan, "client:bob") == ["198.18.0.101"]
    assert addresses_of(vxlan, "node:worker2") == ["198.18.0.12"]
    assert addresses_of(vxlan, "node:*") == ["198.18.0.10", "198.18.0.11", "198.18.0.12"]
    assert addresses_of(vxlan, "tunnel:worker") == ["100.64.1.0"]
    assert addresses_of(vxlan, "tunnel:*") == ["100.64.0.0", "100.64.1.0", "100.64.2.0"]
    assert addresses_of(vxlan, "pod:demo/web") == ["100.64.1.1", "100.64.2.1"]
    assert addresses_of(vxlan, "pod:demo/web@worker2") == ["100.64.2.1"]
    assert addresses_of(vxlan, "ingress-controller:demo/web3") == ["100.64.1.3"]
    assert addresses_of(vxlan, "203.0.113.9") == ["203.0.113.9"]
    assert addresses_of(vxlan, "203.0.113.0/24") == ["203.0.113.0/24"]


def test_tunnel_symbols_resolve_to_nothing_in_direct_mode() -> None:
    topo = topo_of(PLAN.replace("ENC", "direct"))
    assert addresses_of(topo, "tunnel:*") == []
    assert symbols_of(topo, "100.64.1.0") == []


def test_resolve_cidr_turns_symbols_into_host_routes(vxlan: Topology) -> None:
    assert resolve_cidr(vxlan, "client:alice") == ["198.18.0.100/32"]
    assert resolve_cidr(vxlan, "tunnel:*") == ["100.64.0.0/32", "100.64.1.0/32", "100.64.2.0/32"]
    assert resolve_cidr(vxlan, "pod:demo/web") == ["100.64.1.1/32", "100.64.2.1/32"]
    assert resolve_cidr(vxlan, "203.0.113.0/24") == ["203.0.113.0/24"]
    assert resolve_cidr(vxlan, "203.0.113.9") == ["203.0.113.9/32"]


# --------------------------------------------------------------------------- flow targets


def test_flow_targets_use_the_plan() -> None:
    topo = topo_of(PLAN.replace("ENC", "vxlan") + """\
flows:
  - {from: client:alice, to: nodeport:demo/web@worker, port: 9090/TCP}
  - {from: client:alice, to: pod:demo/web}
  - {from: client:alice, to: loadbalancer:demo/lb}
  - {from: client:alice, to: ingress:demo/web}
  - {from: client:alice, to: ingress:demo/web@worker}
  - {from: pod:demo/api, to: client:bob}
  - {from: node:worker, to: clusterip:demo/api}
""")
    t = [resolve_flow(topo, f) for f in topo.scenario.flows]
    # a multi-port Service gets port names, as Kubernetes requires
    expected = ("198.18.0.11", 30001, Port(9090, "TCP", "tcp-9090"), "worker")
    assert (t[0].dst_ip, t[0].dst_port, t[0].port, t[0].entry_node) == expected
    assert (t[1].dst_ip, t[1].dst_port, t[1].dst_pod.node) == ("100.64.1.1", 8080, "worker")  # first replica
    assert (t[2].dst_ip, t[2].dst_port, t[2].entry_node) == ("198.18.0.200", 8080, topo.services["demo/lb"].lb_node)
    assert (t[3].dst_ip, t[3].dst_port, t[3].host, t[3].entry_node) == ("198.18.0.12", 30004, "web.example", "worker2")
    assert (t[4].dst_ip, t[4].entry_node) == ("198.18.0.11", "worker")  # @NODE overrides the controller's node
    assert (t[5].origin_pod.ip, t[5].dst_ip, t[5].dst_port) == ("100.64.1.2", "198.18.0.101", 8080)
    assert (t[6].origin_kind, t[6].dst_ip, t[6].dst_port) == ("node", "198.19.0.101", 8080)
