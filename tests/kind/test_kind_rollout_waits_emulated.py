"""Add-on waits against workloads that roll out over time, on the emulated API server.

The server's DaemonSet/Deployment controllers (tests/support/kubeapi/workloads.py, lifecycle.py) act
on reads: the first read after a spec change still shows the previous spec's status (all "ready"),
then ``observedGeneration`` moves, then pods are replaced one per read. A wait that trusts a stale
status, or the ``Available`` condition alone, returns while the old pods still run; these tests
re-apply an add-on (as on a kept cluster whose add-on version changed) and check that the wait
returned only once the new generation was rolled out. Not a live run: the controllers are emulated.
"""

from __future__ import annotations

from typing import Any

from netiso.backends.kind import install
from netiso.backends.kind.addons import Apply, InstallPlan, Wait, calico_manifest, expected_ippool
from netiso.backends.kind.install import DynamicApi
from tests.support.kubeapi import FakeCluster
from tests.support.kubeapi.seed import seed_fresh_kind


def workload(kind: str, image: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"selector": {"matchLabels": {"app": "agent"}}, "template": {
        "metadata": {"labels": {"app": "agent"}},
        "spec": {"tolerations": [{"operator": "Exists"}], "containers": [{"name": "agent", "image": image}]}}}
    if kind == "Deployment":
        spec["replicas"] = 2
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "agent", "namespace": "kube-system"},
            "spec": spec}


def owned_images(cluster: FakeCluster, kind: str) -> list[tuple[str, str, bool]]:
    """(image, phase, ready) of every pod the workload owns."""
    out = []
    for pod in cluster.list("v1", "Pod", "kube-system"):
        if any(o.get("kind") == kind and o.get("name") == "agent" for o in pod["metadata"].get("ownerReferences") or []):
            ready = any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions") or [])
            out.append((pod["spec"]["containers"][0]["image"], pod["status"]["phase"], ready))
    return sorted(out)


def rolled_out_twice(fake_cluster: FakeCluster, kind: str) -> dict[str, Any]:
    seed_fresh_kind(fake_cluster, "c", workers=2)
    api = DynamicApi(str(fake_cluster.kubeconfig))
    wait = Wait(kind.lower(), "agent", "kube-system", 30)
    api.apply(workload(kind, "agent:1"))
    install.wait_for(api, wait, interval=0.01)
    api.apply(workload(kind, "agent:2"))  # a changed add-on on a kept cluster
    install.wait_for(api, wait, interval=0.01)
    obj = fake_cluster.get("apps/v1", kind, "agent", "kube-system")
    assert obj is not None
    return obj


def test_emulated_api_daemonset_wait_returns_only_when_the_new_generation_is_updated_and_ready(fake_cluster) -> None:
    ds = rolled_out_twice(fake_cluster, "DaemonSet")
    st = ds["status"]
    assert st["observedGeneration"] == ds["metadata"]["generation"] == 2
    assert st["updatedNumberScheduled"] == st["numberReady"] == st["desiredNumberScheduled"] == 3
    assert owned_images(fake_cluster, "DaemonSet") == [("agent:2", "Running", True)] * 3


def test_emulated_api_deployment_wait_returns_only_when_every_replica_is_updated_and_available(fake_cluster) -> None:
    dep = rolled_out_twice(fake_cluster, "Deployment")
    st = dep["status"]
    assert st["observedGeneration"] == dep["metadata"]["generation"] == 2
    assert st["updatedReplicas"] == st["availableReplicas"] == st["replicas"] == 2
    assert owned_images(fake_cluster, "Deployment") == [("agent:2", "Running", True)] * 2


def test_emulated_api_run_plan_waits_for_a_steps_crds_to_be_established_before_the_next_step(fake_cluster) -> None:
    """A CRD answers 404 for its kind until Established (apiextensions' establishing controller): the
    next step's custom resources are applied only after the CRD step's CRDs are Established."""
    seed_fresh_kind(fake_cluster, "c", workers=1)
    crd = next(d for d in calico_manifest("vxlan", "100.64.0.0/16") if d["kind"] == "CustomResourceDefinition"
               and d["metadata"]["name"] == "ippools.crd.projectcalico.org")
    pool = expected_ippool("vxlan", "100.64.0.0/16")
    plan = InstallPlan("vxlan", "none", (Apply("calico CRDs", "test", (crd,)), Apply("pool", "test", (pool,))), (), ())
    lines: list[str] = []
    install.run_plan(DynamicApi(str(fake_cluster.kubeconfig)), plan, lines.append, interval=0.01)
    assert fake_cluster.get("crd.projectcalico.org/v1", "IPPool", "default-ipv4-ippool") is not None
    crd_reads = [r for r in fake_cluster.requests if r.method == "GET"
                 and r.path.endswith("/customresourcedefinitions/ippools.crd.projectcalico.org")]
    assert len(crd_reads) >= 2  # polled until Established, not read once


def test_emulated_api_an_apply_answered_429_with_retry_after_is_sent_again(fake_cluster) -> None:
    """API Priority and Fairness refuses a burst with 429 + Retry-After: the add-on apply waits and resends."""
    seed_fresh_kind(fake_cluster, "c", workers=1)
    api = DynamicApi(str(fake_cluster.kubeconfig))
    api.get("v1", "ConfigMap", "absent", "kube-system")  # discovery done before the burst
    fake_cluster.throttle(2, retry_after=0, method="PATCH")
    api.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "marker", "namespace": "kube-system"},
               "data": {"hash": "x"}})
    assert fake_cluster.get("v1", "ConfigMap", "marker", "kube-system")["data"] == {"hash": "x"}
    assert [r.status for r in fake_cluster.requests if r.method == "PATCH"] == [429, 429, 201]
