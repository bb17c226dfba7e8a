"""Discovery against the emulated API server: the realized topology holds the cluster's addresses.

The emulator serves nodes, pods and Services shaped as a kind cluster with Calico returns them
(tests/support/kubeapi/seed.py); every expected value below is read back from the emulator's
objects, never written into the test, so the tests prove the mapping, not a constant.
"""

from __future__ import annotations

import ipaddress
import os
import stat
from pathlib import Path

from netiso.backends.kube.discovery import node_network
from netiso.backends.kube.preflight import ClusterNode
from netiso.model import election
from netiso.oracle.predict import predict_all
from tests.kube.conftest import INGRESS, NODEPORT, RUN, topo_of
from tests.support.kubeapi import seed_cluster

LB = """
name: lb-vxlan
cluster: {encapsulation: vxlan, loadBalancer: metallb, clients: [alice]}
projects:
  - name: shop
workloads:
  - {name: web, project: shop, nodes: [worker, worker2]}
services:
  - {name: web, project: shop, type: LoadBalancer, externalTrafficPolicy: Cluster}
  - {name: front, project: shop, type: LoadBalancer, externalTrafficPolicy: Local, selector: {app: web}}
flows:
  - {from: client:alice, to: loadbalancer:shop/web}
"""


def node(cluster, name: str) -> dict:
    return cluster.get("v1", "Node", name)


def internal_ip(obj: dict) -> str:
    return next(a["address"] for a in obj["status"]["addresses"] if a["type"] == "InternalIP")


def test_emulated_api_discovery_maps_real_node_tunnel_pod_and_service_addresses(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster, encapsulation="vxlan")
    real = kube_backend().realize(topo_of(NODEPORT))
    topo = real.topo
    for scenario_node, cluster_node in real.node_map.items():
        obj = node(fake_cluster, cluster_node)
        assert topo.nodes[scenario_node].ip == internal_ip(obj)
        assert topo.nodes[scenario_node].tunnel_ip == obj["metadata"]["annotations"]["projectcalico.org/IPv4VXLANTunnelAddr"]
        assert topo.nodes[scenario_node].lb_excluded == (
            "node.kubernetes.io/exclude-from-external-load-balancers" in obj["metadata"]["labels"])
    for pod in topo.pods:
        served = fake_cluster.get("v1", "Pod", pod.name, f"{RUN}-{pod.project}")
        assert pod.ip == served["status"]["podIP"]
    svc = fake_cluster.get("v1", "Service", "web", f"{RUN}-shop")
    assert topo.services["shop/web"].cluster_ip == svc["spec"]["clusterIP"]
    assert topo.services["shop/web"].ports[0].node_port == svc["spec"]["ports"][0]["nodePort"]
    assert topo.dns_service is not None
    assert topo.dns_service.cluster_ip == fake_cluster.get("v1", "Service", "kube-dns", "kube-system")["spec"]["clusterIP"]
    assert topo.pod_network == fake_cluster.get("crd.projectcalico.org/v1", "IPPool", "default-ipv4-ippool")["spec"]["cidr"]
    first = node(fake_cluster, real.node_map["control-plane"])["metadata"]["annotations"]["projectcalico.org/IPv4Address"]
    assert topo.node_network == str(ipaddress.ip_interface(first).network)
    real.down()


def test_emulated_api_predicted_cross_node_nodeport_source_is_the_annotated_tunnel_ip(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster, encapsulation="vxlan")
    real = kube_backend().realize(topo_of(NODEPORT))
    preds = {p.flow.label: p for p in predict_all(real.topo)}
    # bob enters on worker2, the pod is on worker: MASQUERADE out of vxlan.calico -> worker2's tunnel address
    tunnel = node(fake_cluster, real.node_map["worker2"])["metadata"]["annotations"]["projectcalico.org/IPv4VXLANTunnelAddr"]
    pred = preds["client:bob -> nodeport:shop/web@worker2"]
    assert pred.source == ["tunnel:worker2"]
    assert {ip for o in pred.outcomes for ip in o.seen} == {tunnel}
    assert pred.target.dst_ip == internal_ip(node(fake_cluster, real.node_map["worker2"]))
    assert pred.target.dst_port == fake_cluster.get("v1", "Service", "web", f"{RUN}-shop")["spec"]["ports"][0]["nodePort"]
    real.down()


def test_emulated_api_ipip_discovery_reads_the_ipip_tunnel_annotation(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster, encapsulation="ipip")
    real = kube_backend().realize(topo_of(NODEPORT, **{"encapsulation: vxlan": "encapsulation: ipip"}))
    for scenario_node, cluster_node in real.node_map.items():
        annotations = node(fake_cluster, cluster_node)["metadata"]["annotations"]
        assert real.topo.nodes[scenario_node].tunnel_ip == annotations["projectcalico.org/IPv4IPIPTunnelAddr"]
    real.down()


def test_emulated_api_direct_mode_has_no_tunnel_addresses(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster, encapsulation="direct")
    real = kube_backend().realize(topo_of(NODEPORT, **{"encapsulation: vxlan": "encapsulation: direct",
                                                       "cidr: tunnel:worker2": "cidr: node:worker2"}))
    assert [n.tunnel_ip for n in real.topo.nodes.values()] == [None, None, None]
    real.down()


def test_emulated_api_node_block_is_the_block_affinity_holding_the_nodes_pods(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster)
    for name, cidr in (("kind-worker-a", "192.168.0.192/26"), ("kind-worker-b", "192.168.1.0/26")):
        fake_cluster.add({"apiVersion": "crd.projectcalico.org/v1", "kind": "BlockAffinity", "metadata": {"name": name},
                          "spec": {"cidr": cidr, "deleted": "false", "node": "kind-worker", "state": "confirmed"}})
    real = kube_backend().realize(topo_of(NODEPORT))
    pod_ip = fake_cluster.get("v1", "Pod", "web-worker", f"{RUN}-shop")["status"]["podIP"]
    assert real.topo.nodes["worker"].block == "192.168.1.0/26"
    assert ipaddress.ip_address(pod_ip) in ipaddress.ip_network("192.168.1.0/26")
    # a node without affinities falls back to its podCIDR
    assert real.topo.nodes["worker2"].block == node(fake_cluster, real.node_map["worker2"])["spec"]["podCIDR"]
    real.down()


def test_emulated_api_election_is_predicted_over_real_node_names_and_matches_servicel2status(fake_cluster,
                                                                                            kube_backend) -> None:
    seed_cluster(fake_cluster, load_balancer="metallb")
    real = kube_backend().realize(topo_of(LB))
    for key in ("shop/web", "shop/front"):
        svc = real.topo.services[key]
        served = fake_cluster.get("v1", "Service", svc.name, f"{RUN}-shop")
        assert svc.lb_ip == served["status"]["loadBalancer"]["ingress"][0]["ip"]
        cluster_candidates = [real.node_map[n] for n in svc.lb_candidates]
        assert real.node_map[svc.lb_node] == election.elect(cluster_candidates, svc.lb_ip)
        # the emulated MetalLB speaker (an independent implementation) announces from that node
        assert real.elected("shop", svc.name) == svc.lb_node
    assert "control-plane" not in real.topo.services["shop/web"].lb_candidates  # kind's exclusion label
    assert set(real.topo.services["shop/front"].lb_candidates) == {"worker", "worker2"}  # Local: endpoint nodes
    real.down()


def test_emulated_api_client_address_comes_from_the_client_command_stand_in(fake_cluster, kube_backend,
                                                                            tmp_path: Path) -> None:
    """The client command is a stand-in: an ``ip`` executable printing what ``ip -4 route get`` prints."""
    seed_cluster(fake_cluster)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    ip = bin_dir / "ip"
    ip.write_text('#!/bin/sh\necho "$4 dev eth0 src 203.0.113.77 uid 0"\necho "    cache"\n')
    ip.chmod(ip.stat().st_mode | stat.S_IXUSR)
    prefix = f"env PATH={bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}"
    real = kube_backend(clients={"alice": prefix, "bob": prefix}).realize(topo_of(NODEPORT))
    assert real.topo.clients["alice"].ip == "203.0.113.77"
    preds = {p.flow.label: p for p in predict_all(real.topo)}
    assert preds["client:alice -> nodeport:shop/web@worker"].source  # alice's whitelist /32 is her real address
    assert any("203.0.113.77/32" in str(p) for p in real.topo.policies)
    real.down()


def test_node_network_falls_back_to_the_smallest_net_holding_every_node_ip() -> None:
    def n(ip: str) -> ClusterNode:
        return ClusterNode("n" + ip, ip, False, True, True, {}, {}, None)
    assert node_network([n("10.1.0.5"), n("10.1.0.9")]) == "10.1.0.0/24"
    assert node_network([n("10.1.0.5"), n("10.1.3.9")]) == "10.1.0.0/22"


def test_emulated_api_ingress_controller_pod_and_its_vip_come_from_the_cluster(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster)
    real = kube_backend().realize(topo_of(INGRESS))
    ing = real.topo.ingresses["shop/web"]
    pod = fake_cluster.get("v1", "Pod", ing.controller.pod.name, f"{RUN}-gateways")
    svc = fake_cluster.get("v1", "Service", ing.controller.service.name, f"{RUN}-gateways")
    assert ing.controller.pod.ip == pod["status"]["podIP"]
    assert ing.controller.service.lb_ip == svc["status"]["loadBalancer"]["ingress"][0]["ip"]
    assert ing.controller.service.health_check_node_port == svc["spec"]["healthCheckNodePort"]
    pred = next(p for p in predict_all(real.topo) if p.flow.dst == "ingress:shop/web")
    assert {ip for o in pred.outcomes for ip in o.seen} == {pod["status"]["podIP"]}  # the backend sees nginx's pod IP
    real.down()
