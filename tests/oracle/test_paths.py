"""The path oracle against the sourced datapath facts (docs/reference-facts.md B, C, D).

Each test is named after the behaviour it pins and states its expectation from the facts,
not from what the oracle prints: kube-proxy iptables (KUBE-EXT marks for masquerade under
Cluster, KUBE-SVL without SNAT under Local, "has no local endpoints" DROP, "has no endpoints"
REJECT, pod sources get Cluster semantics, KUBE-SEP hairpin masquerade), Calico (policy in
filter FORWARD after DNAT and before MASQUERADE, host -> local pod not policed, natOutgoing,
MASQUERADE picks the out device's address: tunnel IP via tunl0/vxlan.calico, node IP via
eth0), and the layer2 LB announcers (no endpoint -> no announcement).
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from netiso.model.addressing import resolve
from netiso.model.loader import loads
from netiso.model.types import Topology
from netiso.oracle.predict import Prediction, predict_all

Flow = tuple[str, str] | dict[str, Any]


def scenario(*, enc: str = "vxlan", lb: str = "metallb", web_nodes: tuple[str, ...] = ("worker",),
             svc_type: str = "NodePort", etp: str = "Cluster", selector: dict[str, str] | None = None,
             isolation: bool = False, whitelist: tuple[dict[str, Any], ...] = (), flows: tuple[Flow, ...] = ()
             ) -> dict[str, Any]:
    """One isolatable project ``demo`` (workload/service ``web``) and an open project ``peer``
    whose ``probe`` pods run on worker and worker2 to act as in-cluster clients."""
    service: dict[str, Any] = {"name": "web", "project": "demo", "type": svc_type}
    if svc_type != "ClusterIP":
        service["externalTrafficPolicy"] = etp
    if selector is not None:
        service["selector"] = selector
    return {
        "name": "paths",
        "cluster": {"encapsulation": enc, "loadBalancer": lb, "clients": ["alice", "bob"]},
        "workspaces": [{"name": "ws", "projects": [
            {"name": "demo", "isolation": isolation, "whitelist": list(whitelist)}, {"name": "peer"}]}],
        "workloads": [{"name": "web", "project": "demo", "nodes": list(web_nodes)},
                      {"name": "probe", "project": "peer", "nodes": ["worker", "worker2"]}],
        "services": [service],
        "flows": [f if isinstance(f, dict) else {"from": f[0], "to": f[1]} for f in flows],
    }


def topology(doc: dict[str, Any]) -> Topology:
    import yaml

    (s,) = loads(yaml.safe_dump(doc, sort_keys=False), "paths.yaml")
    return resolve(s)


def predict(src: str, dst: str, **kw: Any) -> Prediction:
    port = kw.pop("port", None)
    flow: dict[str, Any] = {"from": src, "to": dst}
    if port:
        flow["port"] = port
    (pred,) = predict_all(topology(scenario(flows=(flow,), **kw)))
    return pred


def allow(peer: str, direction: str = "ingress") -> dict[str, Any]:
    return {"direction": direction, "peer": {"cidr": peer}}


def node_local(node: str) -> set[str]:
    """Addresses MASQUERADE may pick out of a cali* veth (no IPv4): node IP or tunnel IP (facts B)."""
    return {f"node:{node}", f"tunnel:{node}"}


def sha_winner(nodes: list[str], ip: str) -> str:
    return min(nodes, key=lambda n: hashlib.sha256(f"{n}#{ip}".encode()).digest())


# --------------------------------------------------------------------------- externalTrafficPolicy Cluster


@pytest.mark.parametrize(("enc", "device"), [("vxlan", "vxlan.calico"), ("ipip", "tunl0")])
def test_cluster_policy_remote_endpoint_sees_tunnel_ip(enc: str, device: str) -> None:
    pred = predict("client:alice", "nodeport:demo/web@worker2", enc=enc)
    assert pred.verdict == "allowed"
    assert pred.source == ["tunnel:worker2"]
    assert pred.answered_by == ["pod:demo/web@worker"]
    assert pred.outcomes[0].seen == ("100.64.2.0",)
    assert any(device in hop for hop in pred.path), "the path names the tunnel device the packet leaves by"


def test_ipip_remote_endpoint_policy_sees_tunnel_ip_so_client_whitelist_drops() -> None:
    pred = predict("client:alice", "nodeport:demo/web@worker2", enc="ipip", isolation=True,
                   whitelist=(allow("client:alice"),))
    assert pred.verdict == "dropped"
    pred = predict("client:alice", "nodeport:demo/web@worker2", enc="ipip", isolation=True,
                   whitelist=(allow("tunnel:worker2"),))
    assert pred.verdict == "allowed" and pred.source == ["tunnel:worker2"]


def test_direct_mode_remote_endpoint_sees_node_ip() -> None:
    pred = predict("client:alice", "nodeport:demo/web@worker2", enc="direct")
    assert pred.verdict == "allowed"
    assert pred.source == ["node:worker2"]
    assert pred.outcomes[0].seen == ("198.18.0.12",)


@pytest.mark.parametrize("enc", ["direct", "ipip", "vxlan"])
def test_cluster_policy_local_endpoint_policy_sees_client_but_pod_sees_node_address(enc: str) -> None:
    pred = predict("client:alice", "nodeport:demo/web@worker", enc=enc, isolation=True,
                   whitelist=(allow("client:alice"),))
    assert pred.verdict == "allowed", "policy runs in FORWARD before MASQUERADE: it sees the client"
    assert pred.source and set(pred.source) <= node_local("worker"), pred.source
    assert "client:alice" not in pred.source


def test_cluster_policy_local_endpoint_ignores_node_address_whitelist() -> None:
    pred = predict("client:alice", "nodeport:demo/web@worker", isolation=True,
                   whitelist=(allow("node:worker"), allow("tunnel:worker")))
    assert pred.verdict == "dropped", "the policy sees the client IP, not the later SNAT address"


def test_cluster_policy_multiple_endpoints_one_outcome_per_endpoint() -> None:
    pred = predict("client:alice", "nodeport:demo/web@worker2", web_nodes=("worker", "worker2"))
    assert len(pred.outcomes) == 2
    by_receiver = {o.receiver: o for o in pred.outcomes}
    assert set(by_receiver) == {"pod:demo/web@worker", "pod:demo/web@worker2"}
    assert by_receiver["pod:demo/web@worker"].seen == ("100.64.2.0",)  # tunnel:worker2
    assert set(by_receiver["pod:demo/web@worker2"].seen) <= {"198.18.0.12", "100.64.2.0"}
    assert set(pred.answered_by) == set(by_receiver)


def test_cluster_policy_whitelisted_client_passes_only_at_the_local_endpoint() -> None:
    pred = predict("client:alice", "nodeport:demo/web@worker2", web_nodes=("worker", "worker2"),
                   isolation=True, whitelist=(allow("client:alice"),))
    assert pred.verdict == "mixed"
    verdicts = {o.endpoint.symbol if o.endpoint else None: o.verdict for o in pred.outcomes}
    assert sorted(o.verdict for o in pred.outcomes) == ["allowed", "dropped"]
    assert verdicts.get("pod:demo/web@worker2") == "allowed"
    assert pred.answered_by == ["pod:demo/web@worker2"]


# --------------------------------------------------------------------------- externalTrafficPolicy Local


def test_local_policy_node_without_endpoint_drops() -> None:
    pred = predict("client:alice", "nodeport:demo/web@worker2", etp="Local")
    assert pred.verdict == "dropped", "KUBE-EXTERNAL-SERVICES '... has no local endpoints' -j DROP"
    assert pred.answered_by == [] and pred.source == []


@pytest.mark.parametrize("enc", ["direct", "ipip", "vxlan"])
def test_local_policy_keeps_client_ip(enc: str) -> None:
    pred = predict("client:alice", "nodeport:demo/web@worker", etp="Local", enc=enc)
    assert pred.verdict == "allowed"
    assert pred.source == ["client:alice"]
    assert pred.outcomes[0].seen == ("198.18.0.100",)


def test_local_policy_client_whitelist_admits_only_that_client() -> None:
    kw: dict[str, Any] = {"etp": "Local", "isolation": True, "whitelist": (allow("client:alice"),)}
    assert predict("client:alice", "nodeport:demo/web@worker", **kw).verdict == "allowed"
    assert predict("client:bob", "nodeport:demo/web@worker", **kw).verdict == "dropped"


def test_node_to_own_nodeport_of_local_service_is_masqueraded_to_any_endpoint() -> None:
    # KUBE-EXT for Local: "--src-type LOCAL -j KUBE-MARK-MASQ" then KUBE-SVC (all endpoints).
    pred = predict("node:worker2", "nodeport:demo/web@worker2", etp="Local")
    assert pred.verdict == "allowed"
    assert pred.answered_by == ["pod:demo/web@worker"]
    assert pred.source == ["tunnel:worker2"]


# --------------------------------------------------------------------------- no endpoints


@pytest.mark.parametrize("etp", ["Cluster", "Local"])
def test_no_endpoints_refused(etp: str) -> None:
    pred = predict("client:alice", "nodeport:demo/web@worker", etp=etp, selector={"app": "nothing"})
    assert pred.verdict == "refused", "KUBE-EXTERNAL-SERVICES '... has no endpoints' -j REJECT"


@pytest.mark.parametrize("src", ["pod:peer/probe@worker", "node:worker"])
def test_no_endpoints_cluster_ip_refused(src: str) -> None:
    pred = predict(src, "clusterip:demo/web", svc_type="ClusterIP", selector={"app": "nothing"})
    assert pred.verdict == "refused"


# --------------------------------------------------------------------------- LoadBalancer


def test_load_balancer_without_endpoints_is_not_announced_and_drops() -> None:
    pred = predict("client:alice", "loadbalancer:demo/web", svc_type="LoadBalancer", selector={"app": "nothing"})
    assert pred.verdict == "dropped", "no endpoint -> no announcement -> nobody answers ARP -> timeout"


def test_metallb_vip_not_announced_drops() -> None:
    # Local with the only endpoint on the control-plane, which MetalLB's speaker skips.
    pred = predict("client:alice", "loadbalancer:demo/web", svc_type="LoadBalancer", etp="Local",
                   web_nodes=("control-plane",))
    assert pred.verdict == "dropped"


def test_openelb_announces_from_the_control_plane() -> None:
    pred = predict("client:alice", "loadbalancer:demo/web", lb="openelb", svc_type="LoadBalancer", etp="Local",
                   web_nodes=("control-plane",))
    assert pred.verdict == "allowed"
    assert pred.source == ["client:alice"]
    assert pred.target.entry_node == "control-plane"


def test_load_balancer_cluster_policy_enters_at_the_elected_node() -> None:
    doc = scenario(svc_type="LoadBalancer", flows=(("client:alice", "loadbalancer:demo/web"),))
    topo = topology(doc)
    vip = topo.services["demo/web"].lb_ip
    assert vip is not None
    elected = sha_winner(["worker", "worker2"], vip)  # control-plane is excluded by MetalLB
    (pred,) = predict_all(topo)
    assert pred.verdict == "allowed"
    assert pred.target.entry_node == elected
    if elected == "worker":  # the endpoint's own node: same-node delivery
        assert set(pred.source) <= node_local("worker")
    else:
        assert pred.source == [f"tunnel:{elected}"]


def test_load_balancer_local_policy_keeps_client_ip() -> None:
    pred = predict("client:bob", "loadbalancer:demo/web", svc_type="LoadBalancer", etp="Local", web_nodes=("worker2",))
    assert pred.verdict == "allowed"
    assert pred.source == ["client:bob"]
    assert pred.answered_by == ["pod:demo/web@worker2"]


# --------------------------------------------------------------------------- pod sources


def test_pod_to_local_lb_gets_cluster_semantics_without_snat() -> None:
    # The endpoint is on worker only; the pod is on worker2: a client would be dropped here.
    pred = predict("pod:peer/probe@worker2", "loadbalancer:demo/web", svc_type="LoadBalancer", etp="Local")
    assert pred.verdict == "allowed"
    assert pred.source == ["pod:peer/probe@worker2"]
    assert pred.answered_by == ["pod:demo/web@worker"]


def test_pod_to_own_nodes_local_nodeport_gets_cluster_semantics_without_snat() -> None:
    pred = predict("pod:peer/probe@worker2", "nodeport:demo/web@worker2", etp="Local")
    assert pred.verdict == "allowed"
    assert pred.source == ["pod:peer/probe@worker2"]


def test_pod_source_survives_into_namespace_whitelists_via_local_lb() -> None:
    wl = ({"direction": "ingress", "peer": {"project": "peer"}},)
    pred = predict("pod:peer/probe@worker2", "loadbalancer:demo/web", svc_type="LoadBalancer", etp="Local",
                   isolation=True, whitelist=wl)
    assert pred.verdict == "allowed"


def test_pod_to_other_nodes_nodeport_is_natoutgoing_masqueraded() -> None:
    # cali-nat-outgoing: pod source, destination (worker2's node IP) outside the pools -> MASQUERADE out
    # eth0 = worker's node IP; worker2 then treats it as an external source (Local: no SNAT).
    pred = predict("pod:peer/probe@worker", "nodeport:demo/web@worker2", etp="Local", web_nodes=("worker2",))
    assert pred.verdict == "allowed"
    assert pred.source == ["node:worker"]


@pytest.mark.parametrize("dst", ["loadbalancer:demo/web", "nodeport:demo/web@worker2"])
def test_pod_to_cluster_policy_external_address_is_masqueraded(dst: str) -> None:
    # KUBE-EXT under Cluster always jumps to KUBE-MARK-MASQ, pod sources included.
    pred = predict("pod:peer/probe@worker2", dst, svc_type="LoadBalancer")
    assert pred.verdict == "allowed"
    assert pred.source == ["tunnel:worker2"]


def test_pod_to_cluster_ip_keeps_pod_ip() -> None:
    pred = predict("pod:peer/probe@worker2", "clusterip:demo/web", svc_type="ClusterIP")
    assert pred.verdict == "allowed"
    assert pred.source == ["pod:peer/probe@worker2"]


def test_hairpin_masquerades() -> None:
    # KUBE-SEP: "-s <endpoint IP> -j KUBE-MARK-MASQ": a pod reaching itself through its Service.
    pred = predict("pod:demo/web@worker", "clusterip:demo/web", svc_type="ClusterIP")
    assert pred.verdict == "allowed"
    assert pred.answered_by == ["pod:demo/web@worker"]
    assert pred.source and set(pred.source) <= node_local("worker"), pred.source


def test_pod_to_pod_across_nodes_keeps_pod_ip() -> None:
    pred = predict("pod:peer/probe@worker2", "pod:demo/web@worker")
    assert pred.verdict == "allowed"
    assert pred.source == ["pod:peer/probe@worker2"]


# --------------------------------------------------------------------------- host sources


def test_host_to_local_pod_not_policed() -> None:
    pred = predict("node:worker", "pod:demo/web@worker", isolation=True)
    assert pred.verdict == "allowed", "Calico does not police host -> local endpoint"
    assert pred.source and set(pred.source) <= node_local("worker")


@pytest.mark.parametrize("enc", ["ipip", "vxlan"])
def test_node_to_remote_pod_uses_tunnel_address(enc: str) -> None:
    pred = predict("node:worker2", "pod:demo/web@worker", enc=enc)
    assert pred.verdict == "allowed"
    assert pred.source == ["tunnel:worker2"]
    assert predict("node:worker2", "pod:demo/web@worker", enc=enc, isolation=True).verdict == "dropped"
    pred = predict("node:worker2", "pod:demo/web@worker", enc=enc, isolation=True,
                   whitelist=(allow("tunnel:worker2"),))
    assert pred.verdict == "allowed"


def test_direct_mode_node_to_remote_pod_uses_node_ip() -> None:
    pred = predict("node:worker2", "pod:demo/web@worker", enc="direct", isolation=True,
                   whitelist=(allow("node:worker2"),))
    assert pred.verdict == "allowed"
    assert pred.source == ["node:worker2"]


# --------------------------------------------------------------------------- clients straight to pods


def test_client_to_pod_keeps_client_ip_and_is_policed() -> None:
    assert predict("client:alice", "pod:demo/web").source == ["client:alice"]
    assert predict("client:alice", "pod:demo/web", isolation=True).verdict == "dropped"
    assert predict("client:alice", "pod:demo/web", isolation=True, whitelist=(allow("client:alice"),)).verdict == "allowed"


def test_closed_port_refused() -> None:
    assert predict("client:alice", "pod:demo/web", port="9090/TCP").verdict == "refused"
    # Policy is evaluated before the socket lookup: a denied connection is dropped, not refused.
    assert predict("client:alice", "pod:demo/web", port="9090/TCP", isolation=True).verdict == "dropped"


# --------------------------------------------------------------------------- egress


@pytest.mark.parametrize("enc", ["direct", "vxlan"])
def test_egress_to_client_masquerades_to_node_ip(enc: str) -> None:
    pred = predict("pod:demo/web@worker", "client:alice", enc=enc)
    assert pred.verdict == "allowed"
    assert pred.answered_by == ["client:alice"]
    assert pred.source == ["node:worker"]


def test_ingress_isolation_leaves_egress_open() -> None:
    assert predict("pod:demo/web@worker", "client:bob", isolation=True).verdict == "allowed"


def test_egress_whitelist_blocks_other_clients() -> None:
    kw: dict[str, Any] = {"isolation": True, "whitelist": (allow("client:alice", "egress"),)}
    assert predict("pod:demo/web@worker", "client:alice", **kw).verdict == "allowed"
    assert predict("pod:demo/web@worker", "client:bob", **kw).verdict == "dropped"
