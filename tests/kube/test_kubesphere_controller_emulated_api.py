"""``--kubesphere controller`` pieces against the emulated API server with KubeSphere's CRDs and its
nsnetworkpolicy controller emulated from KubeSphere's own unit-test fixtures
(tests/support/kubeapi/kubesphere.py): netiso creates what a KubeSphere user creates (Workspaces,
labelled and annotated Namespaces, NamespaceNetworkPolicies), waits for the controller's
NetworkPolicies and diffs them against its compiler. Emulated API only: no live KubeSphere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from netiso.backends.kube import kubesphere_controller as ksc
from netiso.backends.kube import manifests
from netiso.backends.kube.client import Kube
from netiso.backends.kube.manifests import KubeTarget
from netiso.backends.kube.naming import RunNames
from netiso.model.addressing import load_topologies, snat_node_ips
from netiso.model.tenancy import SNAT_NODE_ANNOTATION as SNAT
from tests.support.kubeapi.kubesphere import install
from tests.support.kubeapi.seed import seed_cluster

ROOT = Path(__file__).resolve().parents[2]
NAMES = RunNames("nx0a1b2c")


def _topo(file: str, name: str | None = None) -> Any:
    topos = load_topologies([str(ROOT / "scenarios" / file)])
    return next(t for t in topos if name is None or t.name == name)


def _realize(cluster: Any, topo: Any) -> tuple[Kube, list[dict[str, Any]]]:
    """Create the run's namespaces, services and KubeSphere objects; return the client and the expected policies."""
    kube = Kube.connect(str(cluster.kubeconfig))
    target = KubeTarget(NAMES, {n: n for n in topo.nodes})
    for obj in [*manifests.namespace_objects(topo, target), *manifests.service_objects(topo, target),
                *ksc.controller_objects(topo, NAMES)]:
        kube.create(obj)
    return kube, ksc.expected_policies(topo, NAMES)


def _observed(kube: Kube, topo: Any, expected: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
    ticks = iter(range(1000))
    observed, _s, settled = ksc.wait_for_policies(
        kube, expected, [NAMES.namespace(p.name) for p in topo.scenario.projects], timeout_s=5, poll_s=0,
        clock=lambda: float(next(ticks)), sleep=lambda _s: None)
    return observed, settled


@pytest.mark.parametrize(("file", "name"), [
    ("internal-whitelist.yaml", "internal-whitelist-service"),
    ("internal-whitelist.yaml", "internal-whitelist-project"),
    ("egress-whitelist.yaml", "egress-whitelist-cidr"),
    ("workspace-isolation.yaml", "workspace-isolation-drops-whitelists"),
    ("whitelist-outside-workspace.yaml", None),
    ("kubesphere-cluster-settings.yaml", None),
])
def test_controller_writes_what_the_compiler_predicts_emulated_api(fake_cluster: Any, file: str,
                                                                   name: str | None) -> None:
    seed_cluster(fake_cluster)
    topo = _topo(file, name)
    install(fake_cluster, allowed_ingress_namespaces=tuple(NAMES.namespace(n) for n in
                                                          topo.scenario.cluster.kubesphere.allowed_ingress_namespaces))
    snat = snat_node_ips(topo)
    if snat:  # the cluster's admin annotated a node (netiso does not write node annotations yet)
        admin = Kube.connect(str(fake_cluster.kubeconfig))
        admin.patch("v1", "Node", "kind-worker2", {"metadata": {"annotations": {SNAT: ";".join(snat)}}})
    kube, expected = _realize(fake_cluster, topo)
    if snat:
        iso = next(p for p in expected if p["metadata"]["name"] == "nsnp-network-isolate")
        assert iso["spec"]["ingress"][1] == {"from": [{"ipBlock": {"cidr": f"{ip}/32"}} for ip in sorted(snat)]}
    observed, settled = _observed(kube, topo, expected)
    assert settled and expected
    assert ksc.diff_policies(expected, observed, NAMES) == []


def test_controller_objects_are_what_a_kubesphere_user_creates() -> None:
    topo = _topo("workspace-isolation.yaml", "workspace-isolation-drops-whitelists")
    objs = ksc.controller_objects(topo, NAMES)
    kinds = [(o["apiVersion"], o["kind"]) for o in objs]
    assert kinds[0] == ("tenant.kubesphere.io/v1alpha1", "Workspace")
    assert ("network.kubesphere.io/v1alpha1", "NamespaceNetworkPolicy") in kinds
    ws = objs[0]
    assert ws["metadata"]["name"].startswith("nx0a1b2c-") and ws["metadata"]["labels"]["netiso.io/run"] == "nx0a1b2c"
    nsnp = next(o for o in objs if o["kind"] == "NamespaceNetworkPolicy")
    assert nsnp["metadata"]["namespace"].startswith("nx0a1b2c-")


@pytest.mark.parametrize(("name", "peer"), [
    ("internal-whitelist-project", {"namespace": {"name": "nx0a1b2c-frontend"}}),
    ("internal-whitelist-service", {"service": {"name": "reporter", "namespace": "nx0a1b2c-billing"}}),
])
def test_nsnp_peers_name_the_runs_namespaces(name: str, peer: dict[str, Any]) -> None:
    """The controller builds selectors from these names: unprefixed, they would select a real project."""
    (nsnp,) = [o for o in ksc.controller_objects(_topo("internal-whitelist.yaml", name), NAMES)
               if o["kind"] == "NamespaceNetworkPolicy"]
    assert nsnp["metadata"]["namespace"] == "nx0a1b2c-shop"
    assert nsnp["spec"]["ingress"][0]["from"] == [peer]


def test_a_controller_that_writes_something_else_is_a_finding_with_both_specs_emulated_api(fake_cluster: Any) -> None:
    seed_cluster(fake_cluster)
    controller = install(fake_cluster, allowed_ingress_namespaces=("kubesphere-monitoring-system",))
    assert controller is not None

    def drop_namespace_ports(_ns: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        if name == "nsnp-ingress-project-frontend":
            for rule in spec.get("ingress") or []:
                rule.pop("ports", None)
        return spec

    controller.divergence = drop_namespace_ports
    topo = _topo("internal-whitelist.yaml", "internal-whitelist-project")
    kube, expected = _realize(fake_cluster, topo)
    observed, _ = _observed(kube, topo, expected)
    findings = {(f.project, f.name): f for f in ksc.diff_policies(expected, observed, NAMES)}
    # the cluster admits kubesphere-monitoring-system in nsnp-network-isolate; the scenario did not say so
    iso = findings.pop(("shop", "nsnp-network-isolate"))
    assert iso.problem == "differs"
    assert {"namespaceSelector": {"matchLabels": {"kubesphere.io/namespace": "kubesphere-monitoring-system"}}} \
        in iso.observed["ingress"][0]["from"]
    white = findings.pop(("shop", "nsnp-ingress-project-frontend"))
    assert white.problem == "differs" and "ports" in white.expected["ingress"][0]
    assert "ports" not in white.observed["ingress"][0]
    assert findings == {}
    # with the cluster's real setting (detect) the isolation policy agrees
    info = ksc.detect(kube)
    assert info is not None and info.allowed_ingress_namespaces == ("kubesphere-monitoring-system",)
    fixed = ksc.expected_policies(topo, NAMES, allowed_ingress_namespaces=info.allowed_ingress_namespaces)
    assert [f.name for f in ksc.diff_policies(fixed, observed, NAMES)] == ["nsnp-ingress-project-frontend"]


def test_no_controller_means_every_policy_missing_and_the_wait_is_bounded_emulated_api(fake_cluster: Any) -> None:
    seed_cluster(fake_cluster)
    install(fake_cluster, with_controller=False)
    topo = _topo("internal-whitelist.yaml", "internal-whitelist-project")
    kube, expected = _realize(fake_cluster, topo)
    observed, settled = _observed(kube, topo, expected)
    assert not settled and observed == []
    assert {f.problem for f in ksc.diff_policies(expected, observed, NAMES)} == {"missing"}


def test_order_of_rules_peers_and_ports_is_not_a_difference() -> None:
    a = {"metadata": {"namespace": "nx0a1b2c-a", "name": "nsnp-x"},
         "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
                  "ingress": [{"from": [{"ipBlock": {"cidr": "1.1.1.1/32"}}, {"ipBlock": {"cidr": "2.2.2.2/32"}}],
                               "ports": [{"protocol": "TCP", "port": 1}, {"port": 2}]}]}}
    b = {"metadata": {"namespace": "nx0a1b2c-a", "name": "nsnp-x"},
         "spec": {"podSelector": {"matchLabels": {}}, "policyTypes": ["Egress", "Ingress"],
                  "ingress": [{"from": [{"ipBlock": {"cidr": "2.2.2.2/32"}}, {"ipBlock": {"cidr": "1.1.1.1/32"}}],
                               "ports": [{"protocol": "TCP", "port": 2}, {"protocol": "TCP", "port": 1}]}]}}
    assert ksc.diff_policies([a], [b], NAMES) == []
    b["spec"]["ingress"][0]["ports"][0]["port"] = 3
    assert [f.problem for f in ksc.diff_policies([a], [b], NAMES)] == ["differs"]


@pytest.mark.parametrize(("setup", "words"), [
    ({}, None),
    ({"isolation": False}, "network isolation is not enabled"),
    ({"version": "v4.1.2"}, "KubeSphere version v4.1.2"),
    (None, "needs KubeSphere 3.3/3.4"),
])
def test_preflight_detects_version_and_isolation_emulated_api(fake_cluster: Any, setup: dict | None,
                                                              words: str | None) -> None:
    seed_cluster(fake_cluster)
    if setup is not None:
        install(fake_cluster, with_controller=False, **setup)
    kube = Kube.connect(str(fake_cluster.kubeconfig))
    reason = ksc.refusal(ksc.detect(kube))
    if words is None:
        assert reason is None
    else:
        assert reason is not None and words in reason


def test_snat_node_ips_the_nodes_lack_are_named_with_the_command_that_sets_them_emulated_api(fake_cluster: Any) -> None:
    """netiso never annotates nodes it did not create: without the admin's annotation the controller
    writes no node rule (the diff shows it) and the warning names the ``kubectl annotate`` that would
    make the cluster match; after doing exactly that, no warning and no difference."""
    import re
    import shlex

    seed_cluster(fake_cluster)
    topo = _topo("kubesphere-cluster-settings.yaml")
    install(fake_cluster, allowed_ingress_namespaces=tuple(NAMES.namespace(n) for n in
                                                          topo.scenario.cluster.kubesphere.allowed_ingress_namespaces))
    node_map = {"control-plane": "kind-control-plane", "worker": "kind-worker", "worker2": "kind-worker2"}
    kube, expected = _realize(fake_cluster, topo)
    note = ksc.snat_ips_note(ksc.cluster_snat_ips(kube.list("v1", "Node")), topo, node_map)
    assert note is not None and "on no node" in note
    observed, _settled = _observed(kube, topo, expected)
    findings = ksc.diff_policies(expected, observed, NAMES)  # each isolated project's isolation policy
    assert findings and {(f.name, f.problem) for f in findings} == {("nsnp-network-isolate", "differs")}
    commands = re.findall(r"kubectl annotate node (\S+) (\S+)=('[^']*') --overwrite", note)
    assert [(node, key) for node, key, _ in commands] == [("kind-worker2", SNAT)]  # tunnel:worker2 is worker2's
    admin = Kube.connect(str(fake_cluster.kubeconfig))
    for node, key, value in commands:  # what the admin does, as the note says
        admin.patch("v1", "Node", node, {"metadata": {"annotations": {key: shlex.split(value)[0]}}})
    assert ksc.snat_ips_note(ksc.cluster_snat_ips(kube.list("v1", "Node")), topo, node_map) is None
    observed, settled = _observed(kube, topo, expected)
    assert settled and ksc.diff_policies(expected, observed, NAMES) == []
