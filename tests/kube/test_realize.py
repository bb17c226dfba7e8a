"""Realization against the emulated API server: apply order, waits, failure clean-up, Ctrl-C.

The server (tests/support/kubeapi) emulates the scheduler/kubelet/Service/LB controllers, so
"Ready" and "got a VIP" here are the emulator's word; what a live cluster adds (image pulls,
admission, real readiness) is exercised only there.
"""

from __future__ import annotations

import time

import pytest

from netiso.backends.base import BackendOptions, BackendUnavailable
from netiso.backends.kube.backend import KubeBackend
from netiso.backends.kube.cleanup import LeaseKeeper
from netiso.backends.kube.client import Kube
from netiso.backends.kube.naming import RunNames
from tests.kube.conftest import FAST, INGRESS, NODEPORT, RUN, topo_of
from tests.support.kubeapi import seed_cluster


def run_namespaces(cluster) -> list[str]:
    return sorted(n["metadata"]["name"] for n in cluster.list("v1", "Namespace", labels={"netiso.io/run": RUN}))


def created_kinds(cluster) -> list[str]:
    """The plural resource of every create (POST) in order, SelfSubjectAccessReviews left out."""
    return [r.path.rstrip("/").split("/")[-1] for r in cluster.writes()
            if r.method == "POST" and "selfsubjectaccessreviews" not in r.path]


def test_emulated_api_realize_applies_phases_in_order_and_policies_after_discovery(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster)
    real = kube_backend().realize(topo_of(INGRESS))
    kinds = created_kinds(fake_cluster)
    order = ["namespaces", "leases", "serviceaccounts", "roles", "rolebindings", "clusterroles", "clusterrolebindings",
             "ingressclasses", "pods", "services", "networkpolicies", "ingresses"]
    assert [k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k] == \
        ["namespaces", "leases", "namespaces", *order[2:]]
    # discovery (reading the Services' assigned addresses) happens between services and policies
    paths = [f"{r.method} {r.path}" for r in fake_cluster.requests]
    last_service_post = max(i for i, p in enumerate(paths) if p.startswith("POST") and p.endswith("/services"))
    first_policy_post = min(i for i, p in enumerate(paths) if p.endswith("/networkpolicies"))
    assert any(p.startswith("GET") and p.endswith("/services") for p in paths[last_service_post:first_policy_post])
    assert real.topo.services["gateways/ingress-controller"].lb_ip is not None
    real.down()


def test_emulated_api_every_created_object_carries_the_run_label(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster)
    kube_backend().realize(topo_of(INGRESS)).down()
    bodies = [r.body for r in fake_cluster.writes() if r.method == "POST" and "selfsubjectaccessreviews" not in r.path]
    assert bodies and all(b["metadata"]["labels"]["netiso.io/run"] == RUN for b in bodies)


def test_emulated_api_realized_pods_are_pinned_to_the_mapped_cluster_nodes(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster)
    real = kube_backend(node_map={"worker": "kind-worker2", "worker2": "kind-worker"}).realize(topo_of(NODEPORT))
    web = fake_cluster.get("v1", "Pod", "web-worker", f"{RUN}-shop")
    node_pod = fake_cluster.get("v1", "Pod", "node-worker2", f"{RUN}-netiso")
    assert web["spec"]["nodeName"] == "kind-worker2"
    assert node_pod["spec"]["nodeName"] == "kind-worker" and node_pod["spec"]["hostNetwork"] is True
    assert real.topo.nodes["worker"].ip == fake_cluster.get("v1", "Node", "kind-worker2")["status"]["addresses"][0]["address"]
    real.down()


def test_emulated_api_readiness_timeout_names_the_pod_and_its_last_event_then_cleans_up(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster)
    fake_cluster.pod_never_ready("web-worker", f"{RUN}-shop", event='Back-off pulling image "mirror.local/agnhost"',
                                 reason="BackOff")
    with pytest.raises(BackendUnavailable) as info:
        kube_backend().realize(topo_of(NODEPORT))
    message = str(info.value)
    assert message.startswith(f"pod {RUN}-shop/web-worker is not Ready after 2 s (phase Pending")
    assert 'last event: BackOff: Back-off pulling image "mirror.local/agnhost"' in message
    assert run_namespaces(fake_cluster) == []
    assert not any(r.method == "POST" and r.path.endswith("/networkpolicies") for r in fake_cluster.requests)


def test_emulated_api_ctrl_c_during_realize_removes_what_was_created(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster)

    def interrupt_at_the_wait(line: str) -> None:
        if "waiting for pods" in line:
            raise KeyboardInterrupt

    backend = kube_backend(progress=interrupt_at_the_wait)
    with pytest.raises(KeyboardInterrupt):
        backend.realize(topo_of(NODEPORT))
    assert run_namespaces(fake_cluster) == []
    deleted = [r.path for r in fake_cluster.writes() if r.method == "DELETE"]
    assert f"/api/v1/namespaces/{RUN}-shop" in deleted and f"/api/v1/namespaces/{RUN}-netiso" in deleted


def test_emulated_api_a_foreign_namespace_appearing_before_create_is_refused_and_kept(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster)
    backend = kube_backend()
    topo = topo_of(NODEPORT)
    backend.preflight([topo])  # the namespace appears after preflight, before realize
    fake_cluster.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"{RUN}-tools",
                                                                              "labels": {"team": "tools"}}})
    with pytest.raises(BackendUnavailable, match=f"namespace {RUN}-tools already exists"):
        backend.realize(topo)
    assert fake_cluster.get("v1", "Namespace", f"{RUN}-tools") is not None
    assert not any(r.method == "DELETE" and r.path.endswith(f"{RUN}-tools") for r in fake_cluster.requests)


def test_emulated_api_a_create_the_server_rejects_is_a_refusal_after_cleanup(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster)
    squatter = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": f"netiso-{RUN}-ingress-nginx"}, "rules": []}
    fake_cluster.add(squatter)  # not ours (no run label): the create answers 409 AlreadyExists
    with pytest.raises(BackendUnavailable) as info:
        kube_backend().realize(topo_of(INGRESS))
    assert f"run {RUN}: cannot create ClusterRole netiso-{RUN}-ingress-nginx" in str(info.value)
    assert "(HTTP 409)" in str(info.value)
    assert run_namespaces(fake_cluster) == []
    assert fake_cluster.get("rbac.authorization.k8s.io/v1", "ClusterRole", f"netiso-{RUN}-ingress-nginx") is not None


def test_emulated_api_down_deletes_the_run_and_is_idempotent(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster)
    real = kube_backend().realize(topo_of(INGRESS))
    assert run_namespaces(fake_cluster) == [f"{RUN}-gateways", f"{RUN}-netiso", f"{RUN}-shop"]
    assert fake_cluster.list("rbac.authorization.k8s.io/v1", "ClusterRole", labels={"netiso.io/run": RUN})
    real.down()
    real.down()
    assert run_namespaces(fake_cluster) == []
    assert fake_cluster.list("rbac.authorization.k8s.io/v1", "ClusterRole", labels={"netiso.io/run": RUN}) == []
    assert fake_cluster.list("networking.k8s.io/v1", "IngressClass", labels={"netiso.io/run": RUN}) == []


def test_emulated_api_lease_keeper_renews_the_run_lease(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster)
    real = kube_backend().realize(topo_of(NODEPORT))
    before = fake_cluster.get("coordination.k8s.io/v1", "Lease", "netiso-run", f"{RUN}-netiso")["spec"]["renewTime"]
    keeper = LeaseKeeper(Kube.connect(str(fake_cluster.kubeconfig)), RunNames(RUN))
    keeper.renew()
    after = fake_cluster.get("coordination.k8s.io/v1", "Lease", "netiso-run", f"{RUN}-netiso")["spec"]["renewTime"]
    assert after > before
    patches = [r for r in fake_cluster.requests if r.method == "PATCH" and r.path.endswith("/leases/netiso-run")]
    assert patches and patches[-1].content_type == "application/merge-patch+json"
    assert set(patches[-1].body) == {"spec"} and set(patches[-1].body["spec"]) == {"renewTime"}
    real.down()


def test_emulated_api_variants_of_one_scenario_get_run_ids_of_their_own(fake_cluster) -> None:
    seed_cluster(fake_cluster)
    backend = KubeBackend(BackendOptions(kubeconfig=str(fake_cluster.kubeconfig)), timeouts=FAST)  # random run ids
    first, second = topo_of(NODEPORT), topo_of(NODEPORT)  # e.g. two minimal-config proofs of one scenario
    backend.preflight([first, second])
    a, b = backend.realize(first), backend.realize(second)
    assert a.names.run != b.names.run
    assert fake_cluster.get("v1", "Namespace", f"{a.names.run}-shop") is not None
    assert fake_cluster.get("v1", "Namespace", f"{b.names.run}-shop") is not None
    backend.close()
    assert fake_cluster.list("v1", "Namespace", labels={"app.kubernetes.io/managed-by": "netiso"}) == []


def test_emulated_api_lease_keeper_thread_renews_until_stopped(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster)
    real = kube_backend().realize(topo_of(NODEPORT))
    keeper = LeaseKeeper(Kube.connect(str(fake_cluster.kubeconfig)), RunNames(RUN), every_s=0.02).start()
    for _ in range(500):  # bounded: the thread renews every 20 ms, give it up to ~10 s on a loaded machine
        if keeper.renewals >= 2:
            break
        time.sleep(0.02)
    keeper.stop()
    assert keeper.renewals >= 2
    assert not keeper.running  # stop() ended the thread: no renewal after it
    real.down()


def test_emulated_api_pods_refused_until_the_namespace_has_its_service_account_are_retried(fake_cluster, kube_backend) -> None:
    """A real API server refuses pods in a brand-new namespace until the ServiceAccount controller
    has created ``default`` (403 "error looking up service account"); the realization retries them
    instead of failing the run, and a pod refused longer than the bound is a clear error."""
    seed_cluster(fake_cluster)
    backend = kube_backend()
    topo = topo_of(NODEPORT)
    backend.preflight([topo])
    fake_cluster.service_account_lag("nx0a1b2c-shop", 2)
    realization = backend.realize(topo)
    try:
        refused = [r for r in fake_cluster.requests if r.method == "POST" and r.path.endswith("/namespaces/nx0a1b2c-shop/pods")
                   and r.status == 403]
        assert len(refused) == 2  # refused twice, then created
        assert fake_cluster.list("v1", "Pod", "nx0a1b2c-shop")
    finally:
        realization.down()
