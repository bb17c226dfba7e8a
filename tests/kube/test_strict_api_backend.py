"""The kube and kind backends against the EMULATED API server's strict checks (validation, Pod Security,
server-side apply, RBAC): what netiso must do for a real cluster to accept its run.

The server is tests/support/kubeapi (real HTTP, official client unpatched); each test fails when the
backend ignores the behaviour it names (the deliberate breaks are listed in the helper's report).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from netiso.backends.base import BackendUnavailable
from netiso.backends.kind.install import DynamicApi
from netiso.backends.kube import manifests
from netiso.backends.kube.access import Access, access_for
from netiso.backends.kube.naming import RunNames
from netiso.cli import main
from tests.kube.conftest import INGRESS, NODEPORT, RUN, topo_of
from tests.support.kubeapi import seed_cluster

ENFORCE = "pod-security.kubernetes.io/enforce"
NEEDED = access_for("metallb", "crd.projectcalico.org")  # the seeded cluster: Calico CRDs, MetalLB


@pytest.mark.parametrize("access", NEEDED, ids=str)
def test_emulated_api_preflight_refuses_each_permission_netiso_uses(fake_cluster, kube_backend, access: Access) -> None:
    seed_cluster(fake_cluster)
    fake_cluster.deny(access.verb, f"{access.resource}/{access.sub}" if access.sub else access.resource, access.group)
    with pytest.raises(BackendUnavailable) as info:
        kube_backend().preflight([topo_of(INGRESS)])
    assert f"not allowed to: {access}" in str(info.value)
    assert [r for r in fake_cluster.writes() if "selfsubjectaccessreviews" not in r.path] == []


def test_emulated_api_every_namespace_carries_the_pod_security_level_its_pods_need(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster)
    fake_cluster.strict.pod_security_default = "restricted"  # labels must win over a strict cluster default
    real = kube_backend().realize(topo_of(NODEPORT))
    try:
        levels = {n["metadata"]["name"]: n["metadata"]["labels"].get(ENFORCE)
                  for n in fake_cluster.list("v1", "Namespace", labels={"netiso.io/run": RUN})}
        assert levels == {f"{RUN}-netiso": "privileged", f"{RUN}-shop": "baseline", f"{RUN}-tools": "baseline"}
        assert fake_cluster.get("v1", "Pod", "node-worker2", f"{RUN}-netiso") is not None  # the hostNetwork probe pod
    finally:
        real.down()


def test_the_dry_run_plan_labels_every_project_namespace_with_its_pod_security_level() -> None:
    topo = topo_of(INGRESS)
    target = manifests.KubeTarget(RunNames(RUN), {n: f"kind-{n}" for n in topo.nodes})
    for ns in manifests.namespace_objects(topo, target):
        assert ns["metadata"]["labels"][ENFORCE] == "baseline", ns["metadata"]["name"]


def test_emulated_api_a_pod_refused_by_pod_security_exits_2_naming_namespace_level_and_fix(
        fake_cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    seed_cluster(fake_cluster)
    fake_cluster.strict.pod_security_forced = "baseline"  # a policy engine overriding netiso's namespace labels
    monkeypatch.setattr(RunNames, "new", classmethod(lambda cls: cls(run=RUN)))
    scenario = tmp_path / "np.yaml"
    scenario.write_text(NODEPORT)
    code = main(["check", str(scenario), "--backend", "kube", "--kubeconfig", str(fake_cluster.kubeconfig)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert f"namespace {RUN}-netiso enforces 'baseline' (host namespaces (hostNetwork=true))" in err
    assert "pod-security.kubernetes.io/enforce=privileged" in err and "allow Pod Security 'privileged'" in err
    assert fake_cluster.list("v1", "Namespace", labels={"netiso.io/run": RUN}) == []  # nothing left half-built


def test_emulated_api_an_object_the_server_finds_invalid_exits_2_with_its_422_message(
        fake_cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    seed_cluster(fake_cluster)
    monkeypatch.setattr(RunNames, "new", classmethod(lambda cls: cls(run=RUN)))
    original = manifests.run_objects
    monkeypatch.setattr(manifests, "run_objects", lambda *a, **kw: original(*a, **{**kw, "lease_seconds": 0}))
    scenario = tmp_path / "np.yaml"
    scenario.write_text(NODEPORT)
    code = main(["check", str(scenario), "--backend", "kube", "--kubeconfig", str(fake_cluster.kubeconfig)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert ('Lease.coordination.k8s.io "netiso-run" is invalid: spec.leaseDurationSeconds: Invalid value: 0: must be '
            "greater than 0") in err
    assert fake_cluster.list("v1", "Namespace", labels={"netiso.io/run": RUN}) == []


def test_emulated_api_kind_add_on_apply_sends_its_field_manager_and_forces_conflicts(fake_cluster) -> None:
    fake_cluster.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}})
    api = DynamicApi(str(fake_cluster.kubeconfig))
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "calico-config", "namespace": "kube-system"},
          "data": {"veth_mtu": "1450"}}
    api.apply(cm)
    fake_cluster.server.writes.patch(  # another manager (an operator editing it) takes the field
        fake_cluster._resource("v1", "ConfigMap"), "kube-system", "calico-config",
        {"metadata": {"name": "calico-config"}, "data": {"veth_mtu": "1400"}}, "application/apply-patch+yaml", None,
        fake_cluster.server.subject, {"fieldManager": "operator", "force": "true"}, "")
    api.apply(cm)  # netiso's vendored manifest wins again, as `kubectl apply --server-side --force-conflicts`
    applies = [r for r in fake_cluster.requests if r.method == "PATCH"]
    assert all(r.query.get("fieldManager") == "netiso" and r.query.get("force") == "true" for r in applies)
    stored = fake_cluster.get("v1", "ConfigMap", "calico-config", "kube-system")
    assert stored["data"] == {"veth_mtu": "1450"}
    assert [m["manager"] for m in stored["metadata"]["managedFields"]] == ["netiso"]
