"""Clusters that are not the classic kind + Calico manifest: Calico's native v3 API, and KubeSphere.

Against the emulated API server (tests/support/kubeapi), whose discovery serves exactly the CRDs
seeded: ``seed_cluster(calico_api="projectcalico.org/v3")`` is Calico v3.32 with native
``projectcalico.org/v3`` CRDs and no ``crd.projectcalico.org`` group; the KubeSphere signs are the
CRDs / namespace KubeSphere installs (kubesphere/kubesphere config/ks-core/charts/ks-crds,
NamespaceNetworkPolicy network.kubesphere.io/v1alpha1). A live cluster of either flavour has not
been tried.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from netiso.backends.base import BackendUnavailable
from netiso.cli import main
from tests.kube.conftest import NODEPORT, topo_of
from tests.support.kubeapi import seed_cluster
from tests.support.kubeapi.seed import crd

V3 = "projectcalico.org/v3"


def writes(cluster) -> list[str]:  # type: ignore[no-untyped-def]
    return [f"{r.method} {r.path}" for r in cluster.writes() if "selfsubjectaccessreviews" not in r.path]


def calico_reads(cluster) -> set[str]:  # type: ignore[no-untyped-def]
    return {r.path for r in cluster.requests if r.method == "GET" and "projectcalico.org" in r.path}


def test_emulated_api_native_v3_calico_is_found_and_its_pools_and_blocks_are_read_there(fake_cluster,  # type: ignore[no-untyped-def]
                                                                                        kube_backend) -> None:
    seed_cluster(fake_cluster, calico_api=V3)
    backend = kube_backend()
    real = backend.realize(topo_of(NODEPORT))
    assert backend.findings.pools["np-vxlan"]["apiVersion"] == V3
    reads = calico_reads(fake_cluster)
    assert {"/apis/projectcalico.org/v3/ippools", "/apis/projectcalico.org/v3/blockaffinities"} <= reads
    assert not [p for p in reads if "crd.projectcalico.org" in p and p != "/apis/crd.projectcalico.org/v1"]
    cluster_node = real.node_map["worker"]
    index = ["kind-control-plane", "kind-worker", "kind-worker2"].index(cluster_node)
    assert real.topo.nodes["worker"].block == f"192.168.{index}.0/26"  # the v3 BlockAffinity, not the /24 podCIDR
    real.down()


def test_emulated_api_native_v3_calico_access_is_checked_in_its_own_group(fake_cluster, kube_backend) -> None:  # type: ignore[no-untyped-def]
    seed_cluster(fake_cluster, calico_api=V3)
    fake_cluster.deny("list", "blockaffinities", "projectcalico.org")
    with pytest.raises(BackendUnavailable) as info:
        kube_backend().preflight([topo_of(NODEPORT)])
    assert "list blockaffinities (group projectcalico.org)" in str(info.value)
    assert "crd.projectcalico.org" not in str(info.value)


def test_emulated_api_classic_calico_is_still_read_from_crd_projectcalico_org(fake_cluster, kube_backend) -> None:  # type: ignore[no-untyped-def]
    seed_cluster(fake_cluster)
    backend = kube_backend()
    backend.preflight([topo_of(NODEPORT)])
    assert backend.findings.pools["np-vxlan"]["apiVersion"] == "crd.projectcalico.org/v1"


def test_emulated_api_no_calico_group_at_all_names_both_flavours(fake_cluster, kube_backend) -> None:  # type: ignore[no-untyped-def]
    seed_cluster(fake_cluster, calico=False)
    with pytest.raises(BackendUnavailable) as info:
        kube_backend().preflight([topo_of(NODEPORT)])
    assert "Calico is not installed" in str(info.value) and "projectcalico.org/v3 nor crd.projectcalico.org/v1" in str(
        info.value)


KUBESPHERE_SIGNS = {
    "ks-namespace": ({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kubesphere-system"}},
                     "namespace kubesphere-system (ks-controller-manager)"),
    "workspaces": (crd("tenant.kubesphere.io", "WorkspaceTemplate", "workspacetemplates", ["v1beta1"]),
                   "API group tenant.kubesphere.io (workspaces)"),
    "namespace-network-policies": (crd("network.kubesphere.io", "NamespaceNetworkPolicy", "namespacenetworkpolicies",
                                       ["v1alpha1"], namespaced=True),
                                   "network.kubesphere.io/v1alpha1 NamespaceNetworkPolicies"),
}


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    path = tmp_path / "np.yaml"
    path.write_text(NODEPORT)
    return path


@pytest.mark.parametrize("sign", list(KUBESPHERE_SIGNS))
def test_emulated_api_cli_a_kubesphere_cluster_is_refused_with_exit_2_and_nothing_created(
        sign: str, fake_cluster, scenario: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    seed_cluster(fake_cluster, load_balancer="openelb")  # OpenELB shares network.kubesphere.io: no sign by itself
    obj, named = KUBESPHERE_SIGNS[sign]
    fake_cluster.add(obj)
    code = main(["check", str(scenario), "--backend", "kube", "--kubeconfig", str(fake_cluster.kubeconfig)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert f"this cluster runs KubeSphere ({named})" in err
    assert "KubeSphere's own controller (ks-controller-manager) owns those names" in err
    assert "pass --kubesphere controller to let KubeSphere's controller write them" in err
    assert writes(fake_cluster) == []


def test_emulated_api_openelb_alone_is_not_taken_for_kubesphere(fake_cluster, kube_backend) -> None:  # type: ignore[no-untyped-def]
    seed_cluster(fake_cluster, load_balancer="openelb")
    kube_backend().preflight([topo_of(NODEPORT)])  # no refusal: Eips are OpenELB's, not KubeSphere's isolation
