"""``netiso check --backend kube --kubesphere controller`` end to end through the CLI, against the
EMULATED API server with KubeSphere's nsnetworkpolicy controller emulated from KubeSphere's own
unit-test fixtures (tests/support/kubeapi/kubesphere.py). No live KubeSphere is involved.

The datapath is emulated too (:class:`ControllerNetwork`): every probe is answered with what
NetworkPolicy semantics give for the policies *stored in the emulated cluster* - the ones the
emulated controller wrote, mapped back to the scenario's names and evaluated by netiso's oracle
engine - so a controller that writes something else changes what the probes observe, while the
predictions (netiso's compiler) do not: the flows it affects must mismatch. What that network
proves is the plumbing (the probes see the controller's policies, not netiso's), not Calico.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from netiso.backends.base import BackendUnavailable
from netiso.backends.kube import backend as kube_backend_module
from netiso.backends.kube.access import KUBESPHERE_ACCESS, Access
from netiso.backends.kube.backend import KubeBackend, KubeRealization, Timeouts
from netiso.backends.kube.naming import RunNames
from netiso.cli import main
from netiso.oracle.predict import Prediction, predict_all
from tests.kind.emulated_kind import EmulatedNetwork
from tests.kube.conftest import RUN, topo_of
from tests.support.kubeapi import seed_cluster
from tests.support.kubeapi.kubesphere import EmulatedNsnpController, install

# Short bounded waits: the emulated controllers answer at once (the CLI builds its backend with Timeouts()).
FAST = Timeouts(pods_ready=5.0, lb_ip=2.0, ingress_sync=0.3, delete=5.0, poll=0.05, probe_rounds=4, policy_settle=1.0,
                probe_deadline=30.0, probe_wait=0.01, controller_policies=1.0)
WHITELIST = "nsnp-ingress-project-frontend"

SHOP = """
name: ks-shop
description: shop is isolated and whitelists project frontend on 8080/TCP; billing is not whitelisted.
cluster: {encapsulation: vxlan}
workspaces:
  - name: ws-a
    projects:
      - name: shop
        isolation: true
        whitelist:
          - {direction: ingress, peer: {project: frontend}, ports: [8080/TCP]}
      - name: frontend
      - name: billing
workloads:
  - {name: api, project: shop, nodes: [worker], ports: [8080/TCP, 9090/TCP]}
  - {name: web, project: frontend, nodes: [worker2]}
  - {name: job, project: billing, nodes: [control-plane]}
services:
  - {name: api, project: shop, ports: [8080/TCP, 9090/TCP]}
flows:
  - {from: pod:frontend/web, to: clusterip:shop/api}
  - {from: pod:frontend/web, to: pod:shop/api}
  - {from: pod:frontend/web, to: clusterip:shop/api, port: 9090/TCP}
  - {from: pod:billing/job, to: pod:shop/api}
"""


class ControllerNetwork(EmulatedNetwork):
    """Answers probes from the NetworkPolicies stored in the cluster (the controller's), not from netiso's."""

    cluster: Any = None

    def learn(self, real: KubeRealization) -> list[Prediction]:
        stored = [p for ns in (real.names.namespace(p.name) for p in real.topo.scenario.projects)
                  for p in self.cluster.list("networking.k8s.io/v1", "NetworkPolicy", ns)]
        prefix = f"{real.names.run}-"
        as_scenario = [json.loads(json.dumps({"apiVersion": p["apiVersion"], "kind": p["kind"],
                                              "metadata": {"name": p["metadata"]["name"],
                                                           "namespace": p["metadata"]["namespace"]},
                                              "spec": p["spec"]}).replace(prefix, "")) for p in stored]
        datapath = copy.copy(real.topo)
        datapath.policies = as_scenario
        for pred in predict_all(datapath):
            key = self.probe_key(real, pred)
            if key is not None:
                self.table[key] = self._as_predicted(real, pred)
        self.write()
        return []


def _wire(fake_cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ControllerNetwork:
    """Fixed run id, short waits, the network learning each realization once the controller has written."""
    network = ControllerNetwork(tmp_path / "network.json", RUN)
    network.cluster = fake_cluster
    fake_cluster.exec_handler = network.exec_handler
    monkeypatch.setattr(RunNames, "new", classmethod(lambda cls: cls(run=RUN)))
    monkeypatch.setattr(kube_backend_module, "Timeouts", lambda: FAST)
    original = KubeBackend.realize

    def realize(self: KubeBackend, topo: Any) -> KubeRealization:
        real = original(self, topo)
        network.learn(real)
        return real

    monkeypatch.setattr(KubeBackend, "realize", realize)
    return network


def _check(fake_cluster: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, Path]:
    scenario = tmp_path / "shop.yaml"
    scenario.write_text(SHOP)
    out = tmp_path / "reports"
    code = main(["check", str(scenario), "--backend", "kube", "--kubeconfig", str(fake_cluster.kubeconfig),
                 "--kubesphere", "controller", "--report", str(out), *extra])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, out


def test_cli_controller_mode_where_the_controller_agrees_exits_0_with_an_empty_diff_emulated_api(
        fake_cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    seed_cluster(fake_cluster)
    install(fake_cluster)
    _wire(fake_cluster, tmp_path, monkeypatch)
    code, out, reports = _check(fake_cluster, tmp_path, capsys)
    assert code == 0, out
    doc = json.loads((reports / "results.json").read_text())
    (scenario,) = doc["scenarios"]
    assert scenario["controllerDiff"] == []
    assert all(f["match"] for f in scenario["flows"])
    assert "controller_policies_s" in scenario["timings"]
    # netiso created what a KubeSphere user creates, never the nsnp-* policies themselves
    posted = [r.path for r in fake_cluster.writes() if r.method == "POST"]
    assert "/apis/tenant.kubesphere.io/v1alpha1/workspaces" in posted
    assert f"/apis/network.kubesphere.io/v1alpha1/namespaces/{RUN}-shop/namespacenetworkpolicies" in posted
    assert not any(p.endswith("/networkpolicies") for p in posted)
    assert "every nsnp-* NetworkPolicy it wrote equals netiso's compiler" in (reports / "matrix.md").read_text()
    # cleanup took the cluster-scoped Workspace and, with the namespaces, the NamespaceNetworkPolicies
    assert fake_cluster.list("tenant.kubesphere.io/v1alpha1", "Workspace") == []
    assert [n for n in fake_cluster.list("network.kubesphere.io/v1alpha1", "NamespaceNetworkPolicy")] == []


def test_cli_a_controller_that_omits_a_rule_is_a_diff_in_every_report_and_mismatches_its_flows_emulated_api(
        fake_cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    seed_cluster(fake_cluster)
    controller = install(fake_cluster)
    assert isinstance(controller, EmulatedNsnpController)

    def omit_whitelist_rule(_ns: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        if name == WHITELIST:
            spec["ingress"] = []  # the NSNP's one ingress rule left out: frontend is no longer admitted
        return spec

    controller.divergence = omit_whitelist_rule
    _wire(fake_cluster, tmp_path, monkeypatch)
    code, out, reports = _check(fake_cluster, tmp_path, capsys, "--json", str(tmp_path / "out.json"))
    assert code == 1
    assert f"KubeSphere controller: shop/{WHITELIST} differs from netiso's compiler" in out
    doc = json.loads((reports / "results.json").read_text())
    (scenario,) = doc["scenarios"]
    (diff,) = scenario["controllerDiff"]
    assert (diff["project"], diff["policy"], diff["status"]) == ("shop", WHITELIST, "differs")
    assert diff["expected"]["ingress"][0]["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubesphere.io/namespace": f"{RUN}-frontend"}}}]
    assert diff["actual"]["ingress"] == []
    assert json.loads((tmp_path / "out.json").read_text())["scenarios"][0]["controllerDiff"] == [diff]
    # the oracle kept predicting from netiso's compiler: frontend's 8080 flows mismatch, the others match
    flows = {(f["from"], f["to"], f["port"]): f for f in scenario["flows"]}
    bad = {key for key, f in flows.items() if not f["match"]}
    assert bad == {("pod:frontend/web", "clusterip:shop/api", "8080/TCP"), ("pod:frontend/web", "pod:shop/api", "8080/TCP")}
    for key in bad:
        assert flows[key]["predicted"]["verdict"] == "allowed" and flows[key]["observed"]["verdict"] == "dropped"
    html = (reports / "index.html").read_text()
    assert "KubeSphere controller vs netiso's compiler (1 difference)" in html
    assert f"shop/{WHITELIST}" in html and "controller differences" in html
    assert f"kubesphere.io/namespace: {RUN}-frontend" in html  # the expected spec, beside the actual one
    md = (reports / "matrix.md").read_text()
    assert f"**shop/{WHITELIST}**: differs from netiso's compiler" in md
    assert "KubeSphere's controller (actual):" in md and "ingress: []" in md


def test_cli_a_cluster_without_kubesphere_is_refused_in_controller_mode_emulated_api(
        fake_cluster: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seed_cluster(fake_cluster)
    scenario = tmp_path / "shop.yaml"
    scenario.write_text(SHOP)
    code = main(["check", str(scenario), "--backend", "kube", "--kubeconfig", str(fake_cluster.kubeconfig),
                 "--kubesphere", "controller"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "--kubesphere controller needs KubeSphere 3.3/3.4" in err
    assert [r for r in fake_cluster.writes() if "selfsubjectaccessreviews" not in r.path] == []


@pytest.mark.parametrize(("setup", "words"), [
    ({"isolation": False}, "KubeSphere network isolation is not enabled"),
    ({"version": "v4.1.2"}, "KubeSphere version v4.1.2"),
])
def test_cli_controller_mode_refuses_a_wrong_kubesphere_with_the_reason_emulated_api(
        fake_cluster: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], setup: dict, words: str) -> None:
    seed_cluster(fake_cluster)
    install(fake_cluster, **setup)
    scenario = tmp_path / "shop.yaml"
    scenario.write_text(SHOP)
    code = main(["check", str(scenario), "--backend", "kube", "--kubeconfig", str(fake_cluster.kubeconfig),
                 "--kubesphere", "controller"])
    err = capsys.readouterr().err
    assert code == 2 and words in err
    assert [r for r in fake_cluster.writes() if "selfsubjectaccessreviews" not in r.path] == []


def test_cli_without_the_mode_a_kubesphere_cluster_is_still_refused_emulated_api(
        fake_cluster: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seed_cluster(fake_cluster)
    install(fake_cluster)
    scenario = tmp_path / "shop.yaml"
    scenario.write_text(SHOP)
    code = main(["check", str(scenario), "--backend", "kube", "--kubeconfig", str(fake_cluster.kubeconfig)])
    err = capsys.readouterr().err
    assert code == 2 and "this cluster runs KubeSphere" in err and "--kubesphere controller" in err


def test_cli_kubesphere_flag_on_the_lab_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = tmp_path / "shop.yaml"
    scenario.write_text(SHOP)
    assert main(["check", str(scenario), "--kubesphere", "controller"]) == 2
    err = capsys.readouterr().err
    assert "--kubesphere controller" in err and "--backend kube" in err


@pytest.mark.parametrize("access", KUBESPHERE_ACCESS, ids=str)
def test_emulated_api_controller_mode_preflight_checks_each_kubesphere_permission(
        fake_cluster: Any, kube_backend: Any, access: Access) -> None:
    seed_cluster(fake_cluster)
    install(fake_cluster, with_controller=False)
    fake_cluster.deny(access.verb, access.resource, access.group)
    with pytest.raises(BackendUnavailable) as info:
        kube_backend(kubesphere="controller").preflight([topo_of(SHOP)])
    assert f"not allowed to: {access}" in str(info.value)


def test_the_dry_run_plan_lists_the_kubesphere_objects_and_the_wait_and_diff(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = tmp_path / "shop.yaml"
    scenario.write_text(SHOP)
    out = tmp_path / "plan"
    assert main(["check", str(scenario), "--backend", "kube", "--kubesphere", "controller", "--dry-run",
                 "--out", str(out)]) == 0
    files = sorted(p.name for p in (out / "ks-shop").iterdir())
    workspace = next(f for f in files if "-workspace-" in f)
    nsnp = next(f for f in files if "-namespacenetworkpolicy-" in f)
    assert not any("-networkpolicy-" in f for f in files)  # the nsnp-* policies are the controller's to write
    ws = yaml.safe_load((out / "ks-shop" / workspace).read_text())
    assert ws["kind"] == "Workspace" and ws["spec"] == {"networkIsolation": False}
    assert yaml.safe_load((out / "ks-shop" / nsnp).read_text())["metadata"]["name"] == "ingress-project-frontend"
    plan = (out / "ks-shop" / "plan.txt").read_text()
    assert "KubeSphere 3.3/3.4, network isolation on (--kubesphere controller)" in plan
    assert "POST /apis/tenant.kubesphere.io/v1alpha1/workspaces" in plan
    assert "wait: KubeSphere's controller writes its NetworkPolicies, then diff" in plan
    assert "nsnp-network-isolate, nsnp-ingress-project-frontend exist and two reads agree" in plan
    assert "create workspaces (group tenant.kubesphere.io)" in plan
    assert "DELETE /apis/tenant.kubesphere.io/v1alpha1/workspaces/" in plan
    assert "not KubeSphere" not in plan


def test_cli_a_controller_difference_no_probe_sees_still_fails_the_run_emulated_api(
        fake_cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A policy that admits one more (unprobed) address changes no flow: every flow matches, the run exits 1."""
    seed_cluster(fake_cluster)
    controller = install(fake_cluster)
    assert controller is not None

    def admit_more(_ns: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        if name == WHITELIST:
            spec["ingress"][0]["from"].append({"ipBlock": {"cidr": "192.0.2.7/32"}})
        return spec

    controller.divergence = admit_more
    _wire(fake_cluster, tmp_path, monkeypatch)
    code, out, reports = _check(fake_cluster, tmp_path, capsys)
    doc = json.loads((reports / "results.json").read_text())
    (scenario,) = doc["scenarios"]
    assert all(f["match"] for f in scenario["flows"])
    assert [d["status"] for d in scenario["controllerDiff"]] == ["differs"]
    assert code == 1 and "1 scenario finding" in out


def test_controller_mode_still_creates_the_scenarios_raw_policies_and_only_those() -> None:
    """raw networkPolicies are the user's own: netiso creates them in controller mode too, never an nsnp-* one."""
    from netiso.backends.kube import kubesphere_controller as ksc
    from netiso.backends.kube import manifests
    from netiso.model.addressing import load_topologies

    root = Path(__file__).resolve().parents[2]
    topo = next(t for t in load_topologies([str(root / "scenarios" / "raw-networkpolicy.yaml")])
                if t.name == "raw-netpol-union-with-isolation")
    names = RunNames(RUN)
    objects = manifests.policy_objects(topo, manifests.KubeTarget(names, {n: n for n in topo.nodes}))
    raw = ksc.raw_policies(topo, objects)
    assert [p["metadata"]["name"] for p in raw] == [p["metadata"]["name"] for p in topo.scenario.networkPolicies]
    assert raw and all(not p["metadata"]["name"].startswith("nsnp-") for p in raw)
    assert any(p["metadata"]["name"].startswith("nsnp-") for p in objects)  # the compiler's, left to the controller


class _Config:
    """What fixtures.backend.backend_options reads of a pytest config: ``getoption``."""

    def __init__(self, **given: Any) -> None:
        self.given = given

    def getoption(self, name: str) -> Any:
        return self.given.get(name)


def test_the_pytest_plugin_passes_netiso_kubesphere_to_the_backend_and_refuses_it_on_the_lab() -> None:
    from fixtures.backend import backend_options
    from netiso.model.errors import InputError

    options = backend_options(_Config(**{"--netiso-backend": "kube", "--netiso-kubesphere": "controller"}))
    assert options.kubesphere == "controller"
    assert backend_options(_Config(**{"--netiso-backend": "kube"})).kubesphere is None
    with pytest.raises(InputError, match=r"--netiso-kubesphere controller: .*needs --netiso-backend kube"):
        backend_options(_Config(**{"--netiso-backend": "lab", "--netiso-kubesphere": "controller"}))


def test_cli_clean_in_controller_mode_collects_a_crashed_runs_workspace_emulated_api(
        fake_cluster: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from datetime import UTC, datetime, timedelta

    from tests.kube.test_cleanup import leave_run

    seed_cluster(fake_cluster)
    install(fake_cluster, with_controller=False)
    leave_run(fake_cluster, "nx777777", renewed=datetime.now(UTC) - timedelta(hours=1))
    fake_cluster.add({"apiVersion": "tenant.kubesphere.io/v1alpha1", "kind": "Workspace",
                      "metadata": {"name": "nx777777-ws", "labels": {"netiso.io/run": "nx777777"}},
                      "spec": {"networkIsolation": True}})
    assert main(["clean", "--backend", "kube", "--kubeconfig", str(fake_cluster.kubeconfig),
                 "--kubesphere", "controller"]) == 0
    assert "deleted Workspace nx777777-ws" in capsys.readouterr().out
    assert fake_cluster.list("tenant.kubesphere.io/v1alpha1", "Workspace") == []
