"""Preflight against the emulated API server: every refusal is one clear sentence, nothing is created.

The server is tests/support/kubeapi (real HTTP on 127.0.0.1, official client unpatched); a
live cluster's apiserver words its 403s the same way (the emulator copies the message format).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from netiso.backends.base import BackendUnavailable
from netiso.backends.kube.client import Kube
from netiso.backends.kube.preflight import ClusterNode, default_order
from tests.kube.conftest import NODEPORT, closed_port_kubeconfig, topo_of
from tests.support.kubeapi import seed_cluster


def writes(cluster) -> list[str]:
    """Mutating requests other than SelfSubjectAccessReviews (which create nothing)."""
    return [f"{r.method} {r.path}" for r in cluster.writes() if "selfsubjectaccessreviews" not in r.path]


def refusal(backend, *topos) -> str:
    with pytest.raises(BackendUnavailable) as info:
        backend.preflight(list(topos))
    return str(info.value)


def test_no_kubeconfig_anywhere_is_refused_naming_the_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(BackendUnavailable, match=r"no kubeconfig: ~/.kube/config does not exist; pass --kubeconfig"):
        Kube.connect()


def test_missing_kubeconfig_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailable, match=r"--kubeconfig .*nope\.yaml: no such file"):
        Kube.connect(str(tmp_path / "nope.yaml"))


def test_emulated_api_unknown_context_lists_the_known_ones(fake_cluster) -> None:
    with pytest.raises(BackendUnavailable, match=r"no context 'prod' \(--context prod; it has: netiso-test\)"):
        Kube.connect(str(fake_cluster.kubeconfig), "prod")


def test_unreachable_server_on_a_closed_local_port_is_refused_as_connection_refused(tmp_path: Path, kube_backend) -> None:
    path, port = closed_port_kubeconfig(tmp_path)
    backend = kube_backend(kubeconfig=str(path))
    message = refusal(backend, topo_of(NODEPORT))
    assert f"cannot reach the Kubernetes API server http://127.0.0.1:{port} (context 'gone')" in message
    assert "connection refused" in message


def test_emulated_api_preflight_403_names_each_missing_verb_and_resource(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster)
    fake_cluster.deny("create", "namespaces")
    fake_cluster.deny("create", "pods/exec")
    message = refusal(kube_backend(), topo_of(NODEPORT))
    assert "not allowed to: create namespaces, create pods/exec (SelfSubjectAccessReview)" in message
    assert "cluster-configs/kube/rbac.yaml" in message
    assert writes(fake_cluster) == []


def test_emulated_api_a_forbidden_request_quotes_the_apiservers_reason(fake_cluster) -> None:
    seed_cluster(fake_cluster)
    fake_cluster.deny("list", "nodes")
    kube = Kube.connect(str(fake_cluster.kubeconfig))
    with pytest.raises(BackendUnavailable) as info:
        kube.list("v1", "Node")
    message = str(info.value)
    assert message.startswith("not allowed to list Node: nodes is forbidden: User ")
    assert 'cannot list resource "nodes" in API group "" at the cluster scope (403)' in message


def test_emulated_api_preflight_refuses_ipvs_kube_proxy_naming_the_mode(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster, proxy_mode="ipvs")
    message = refusal(kube_backend(), topo_of(NODEPORT))
    assert "kube-proxy runs in 'ipvs' mode" in message
    assert "--profile kube-proxy-iptables/calico-iptables" in message
    assert writes(fake_cluster) == []


def test_emulated_api_preflight_accepts_ipvs_when_a_known_profile_is_asserted(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster, proxy_mode="ipvs")
    backend = kube_backend(profile="kube-proxy-iptables/calico-iptables")
    backend.preflight([topo_of(NODEPORT)])
    assert backend.findings is not None and backend.findings.proxy_mode == "ipvs"


def test_emulated_api_preflight_refuses_an_unknown_profile(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster)
    assert "--profile 'cilium' is not a profile netiso predicts" in refusal(kube_backend(profile="cilium"), topo_of(NODEPORT))


def test_emulated_api_preflight_without_kube_proxy_configmap_explains_the_profile_flag(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster)
    Kube.connect(str(fake_cluster.kubeconfig)).delete("v1", "ConfigMap", "kube-proxy", "kube-system")
    message = refusal(kube_backend(), topo_of(NODEPORT))
    assert "ConfigMap kube-system/kube-proxy does not exist" in message
    assert "assert it with --profile kube-proxy-iptables/calico-iptables" in message


def test_emulated_api_preflight_refuses_vxlan_scenario_on_ipip_pool_naming_both(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster, encapsulation="ipip")
    message = refusal(kube_backend(), topo_of(NODEPORT))
    assert "scenario 'np-vxlan' wants encapsulation vxlan (ipipMode Never, vxlanMode Always)" in message
    assert "IPPool default-ipv4-ippool has ipipMode Always, vxlanMode Never" in message
    assert writes(fake_cluster) == []


def test_emulated_api_preflight_explains_crosssubnet_pools(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster, encapsulation="ipip")
    Kube.connect(str(fake_cluster.kubeconfig)).patch("crd.projectcalico.org/v1", "IPPool", "default-ipv4-ippool",
                                                      {"spec": {"ipipMode": "CrossSubnet"}})
    message = refusal(kube_backend(), topo_of(NODEPORT, **{"encapsulation: vxlan": "encapsulation: ipip"}))
    assert "IPPool default-ipv4-ippool has ipipMode CrossSubnet, vxlanMode Never" in message
    assert "CrossSubnet encapsulates only between subnets" in message


def test_emulated_api_preflight_refuses_a_cluster_without_calico(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster, calico=False)
    assert "Calico is not installed" in refusal(kube_backend(), topo_of(NODEPORT))


LB = NODEPORT.replace("type: NodePort", "type: LoadBalancer").replace("name: np-vxlan", "name: lb-vxlan")


def test_emulated_api_preflight_refuses_metallb_scenario_when_metallb_is_missing(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster, load_balancer="openelb")
    message = refusal(kube_backend(), topo_of(LB))
    assert "the scenario's loadBalancer is metallb, but MetalLB is not installed" in message


def test_emulated_api_preflight_refuses_openelb_without_an_enabled_eip(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster, load_balancer="openelb")
    Kube.connect(str(fake_cluster.kubeconfig)).patch("network.kubesphere.io/v1alpha2", "Eip", "eip-pool",
                                                      {"spec": {"disable": True}})
    message = refusal(kube_backend(), topo_of(LB, **{"vxlan, clients": "vxlan, loadBalancer: openelb, clients"}))
    assert "OpenELB is installed but has no enabled Eip" in message


def test_emulated_api_preflight_picks_the_default_openelb_eip(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster, load_balancer="openelb")
    fake_cluster.add({"apiVersion": "network.kubesphere.io/v1alpha2", "kind": "Eip", "metadata": {"name": "a-first"},
                      "spec": {"address": "172.18.254.1-172.18.254.9", "protocol": "layer2", "interface": "eth0"}})
    backend = kube_backend()
    backend.preflight([topo_of(LB, **{"vxlan, clients": "vxlan, loadBalancer: openelb, clients"})])
    assert backend.findings is not None and backend.findings.openelb_eip == "eip-pool"


def test_emulated_api_preflight_ignores_the_load_balancer_when_no_service_needs_one(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster, load_balancer="none")
    kube_backend().preflight([topo_of(NODEPORT)])  # NodePort only: no MetalLB needed


def test_emulated_api_preflight_refuses_too_few_nodes(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster, nodes=("kind-control-plane", "kind-worker"))
    message = refusal(kube_backend(), topo_of(NODEPORT))
    assert ("scenario 'np-vxlan' needs 3 nodes (control-plane, worker, worker2), the cluster has 2 Ready schedulable "
            "node(s) (kind-control-plane, kind-worker)") in message


def test_emulated_api_preflight_refuses_an_unknown_node_in_the_node_map(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster)
    message = refusal(kube_backend(node_map={"worker": "kind-worker9"}), topo_of(NODEPORT))
    assert "--node-map worker=kind-worker9: the cluster has no node 'kind-worker9'" in message
    assert "kind-control-plane, kind-worker, kind-worker2" in message


def test_emulated_api_preflight_refuses_two_scenario_nodes_on_one_cluster_node(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster)
    message = refusal(kube_backend(node_map={"worker": "kind-worker", "worker2": "kind-worker"}), topo_of(NODEPORT))
    assert "maps several scenario nodes of 'np-vxlan' to kind-worker" in message


def test_emulated_api_default_node_map_is_control_plane_first_then_workers_by_name(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster, nodes=("zz-master", "b-node", "a-node"))
    fake_cluster.add({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "0-cordoned"},
                      "spec": {"unschedulable": True},
                      "status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    backend = kube_backend()
    backend.preflight([topo_of(NODEPORT)])
    assert backend.findings is not None
    assert backend.findings.node_maps["np-vxlan"] == {"control-plane": "zz-master", "worker": "a-node", "worker2": "b-node"}


def test_emulated_api_node_map_entries_win_and_the_rest_fill_in_default_order(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster)
    backend = kube_backend(node_map={"control-plane": "kind-worker2"})
    backend.preflight([topo_of(NODEPORT)])
    assert backend.findings is not None
    assert backend.findings.node_maps["np-vxlan"] == {
        "control-plane": "kind-worker2", "worker": "kind-control-plane", "worker2": "kind-worker"}


def test_default_order_skips_not_ready_nodes() -> None:
    def node(name: str, ready: bool, cp: bool = False) -> ClusterNode:
        return ClusterNode(name, "172.18.0.9", cp, ready, True, {}, {}, None)
    nodes = {n.name: n for n in (node("w2", True), node("w1", False), node("cp", True, cp=True))}
    assert default_order(nodes) == ["cp", "w2"]


def test_emulated_api_unmapped_clients_are_reported_not_refused(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster)
    lines: list[str] = []
    backend = kube_backend(clients={"alice": "true"}, progress=lines.append)
    backend.preflight([topo_of(NODEPORT)])
    assert backend.findings is not None and backend.findings.unmapped_clients == {"np-vxlan": ["bob"]}
    assert any("no --client mapping for client:bob; their flows are reported skipped" in line for line in lines)


def test_emulated_api_preflight_refuses_a_foreign_namespace_in_the_way(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster)
    fake_cluster.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "nx0a1b2c-shop"}})
    message = refusal(kube_backend(), topo_of(NODEPORT))
    assert "namespace nx0a1b2c-shop already exists and it does not carry the label netiso.io/run=nx0a1b2c" in message
    assert "never adopts or deletes" in message
    assert writes(fake_cluster) == []
    assert fake_cluster.get("v1", "Namespace", "nx0a1b2c-shop") is not None


def _kubeconfig(tmp_path: Path, server: str, token: str = "t") -> str:
    config = {"apiVersion": "v1", "kind": "Config", "current-context": "c",
              "clusters": [{"name": "c", "cluster": {"server": server, "insecure-skip-tls-verify": False}}],
              "users": [{"name": "c", "user": {"token": token}}],
              "contexts": [{"name": "c", "context": {"cluster": "c", "user": "c"}}]}
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_emulated_api_wrong_token_is_refused_as_401_naming_the_kubeconfig(fake_cluster, kube_backend, tmp_path: Path) -> None:
    seed_cluster(fake_cluster)
    path = _kubeconfig(tmp_path, fake_cluster.url, token="expired-token")
    message = refusal(kube_backend(kubeconfig=path), topo_of(NODEPORT))
    assert "rejected the credentials (401 Unauthorized)" in message and path in message


def test_emulated_api_tls_to_a_plain_http_server_is_refused_as_a_tls_failure(fake_cluster, kube_backend,
                                                                            tmp_path: Path) -> None:
    seed_cluster(fake_cluster)
    path = _kubeconfig(tmp_path, fake_cluster.url.replace("http://", "https://"))
    message = refusal(kube_backend(kubeconfig=path), topo_of(NODEPORT))
    assert message.startswith("cannot reach the Kubernetes API server https://127.0.0.1:")
    assert "TLS failed" in message


def test_emulated_api_kubeconfig_path_list_is_merged_like_kubectl(fake_cluster, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "elsewhere",
        "clusters": [{"name": "elsewhere", "cluster": {"server": "http://127.0.0.1:1"}}],
        "users": [{"name": "elsewhere", "user": {"token": "x"}}],
        "contexts": [{"name": "elsewhere", "context": {"cluster": "elsewhere", "user": "elsewhere"}}]}))
    monkeypatch.setenv("KUBECONFIG", f"{other}:{tmp_path / 'missing.yaml'}:{fake_cluster.kubeconfig}")
    kube = Kube.connect(None, "netiso-test")
    assert kube.target.server == fake_cluster.url
    assert "gitVersion" in kube.version()


def test_emulated_api_preflight_refuses_a_project_name_too_long_for_a_namespace(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster)
    long = "p" * 60
    message = refusal(kube_backend(), topo_of(NODEPORT, **{"name: tools": f"name: {long}",
                                                           "project: tools": f"project: {long}",
                                                           "pod:tools/": f"pod:{long}/"}))
    assert f"scenario 'np-vxlan' cannot be named in a cluster: namespace for project '{long}'" in message
    assert "more than the 63 Kubernetes allows" in message
    assert writes(fake_cluster) == []


def test_a_pod_security_403_is_explained_as_admission_not_rbac(fake_cluster) -> None:
    """The Status body is the shape kube-apiserver answers when Pod Security Admission rejects a pod."""
    kube = Kube.connect(str(fake_cluster.kubeconfig))
    body = ('{"kind":"Status","apiVersion":"v1","status":"Failure","message":"pods \\"node-worker\\" is forbidden: '
            'violates PodSecurity \\"baseline:latest\\": host namespaces (hostNetwork=true)","reason":"Forbidden",'
            '"details":{"name":"node-worker","kind":"pods"},"code":403}')
    exc = ApiException(status=403, reason="Forbidden", body=body)
    message = str(kube.translate(exc, "create Pod nx0a1b2c-netiso/node-worker"))
    assert message.startswith("Pod Security Admission refused to create Pod nx0a1b2c-netiso/node-worker: namespace "
                              "nx0a1b2c-netiso enforces 'baseline' (host namespaces (hostNetwork=true))")
    assert "allow Pod Security 'privileged'" in message and "rbac.yaml" not in message
