"""Preflight reads Felix's ``defaultEndpointToHostAction`` as Felix resolves it, against the EMULATED API server.

The server (tests/support/kubeapi) serves calico-node's DaemonSet in apps/v1 with the vendored
calico.yaml's environment and the FelixConfiguration CRD (its vendored schema validates every
write below), so each test changes the cluster the way an operator would - ``kubectl set env``,
``kubectl patch felixconfiguration`` - and checks what preflight concludes: the environment wins
over any FelixConfiguration, ``node.<name>`` over ``default``, Felix's built-in DROP when none sets
it; a difference is a refusal (exit 2) naming node, both values, the source and the fix; a 403 names
the grant. What a real Felix does with the value is the lab's part (scenarios/host-network-servers.yaml).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from netiso.backends.base import BackendUnavailable
from netiso.backends.kube.client import Kube
from netiso.backends.kube.felix_settings import env_setting, felix_configurations
from netiso.cli import main
from tests.kube.conftest import topo_of
from tests.support.kubeapi import seed_cluster

SCENARIO = """
name: felix-check
cluster: {encapsulation: vxlan, loadBalancer: none, clients: [alice]}
projects: [{name: shop}]
workloads: [{name: web, project: shop, nodes: [worker]}]
flows: [{from: pod:shop/web, to: node:worker}]
"""
ENV = "FELIX_DEFAULTENDPOINTTOHOSTACTION"


def _topo(action: str | None = None):  # type: ignore[no-untyped-def]
    if action is None:
        return topo_of(SCENARIO)
    return topo_of(SCENARIO, **{"clients: [alice]}": f"clients: [alice], felix: {{defaultEndpointToHostAction: {action}}}}}"})


def _kube(fake_cluster: Any) -> Kube:
    return Kube.connect(str(fake_cluster.kubeconfig))


def _set_env(fake_cluster: Any, edit: Any, namespace: str = "kube-system") -> None:
    """Replace calico-node's DaemonSet by one whose calico-node container env ``edit`` changed."""
    ds = fake_cluster.get("apps/v1", "DaemonSet", "calico-node", "kube-system")
    _kube(fake_cluster).delete("apps/v1", "DaemonSet", "calico-node", "kube-system")
    container = ds["spec"]["template"]["spec"]["containers"][0]
    container["env"] = edit([dict(e) for e in container.get("env") or []])
    ds["metadata"] = {"name": "calico-node", "namespace": namespace, "labels": ds["metadata"].get("labels", {})}
    fake_cluster.add(ds)


def _without_felix_env(env: list[dict]) -> list[dict]:
    return [e for e in env if e["name"] != ENV]


def _patch_felix(fake_cluster: Any, name: str, value: str | None, **spec: Any) -> None:
    """``kubectl patch felixconfiguration NAME --type merge`` (or create it): through the API, so the CRD
    schema validates the value."""
    kube = _kube(fake_cluster)
    body = {**spec, "defaultEndpointToHostAction": value}
    if fake_cluster.get("crd.projectcalico.org/v1", "FelixConfiguration", name) is None:
        kube.create({"apiVersion": "crd.projectcalico.org/v1", "kind": "FelixConfiguration",
                     "metadata": {"name": name}, "spec": {k: v for k, v in body.items() if v is not None}})
    else:
        kube.patch("crd.projectcalico.org/v1", "FelixConfiguration", name, {"spec": body})


def _refusal(backend: Any, topo: Any) -> str:
    with pytest.raises(BackendUnavailable) as info:
        backend.preflight([topo])
    return str(info.value)


def test_emulated_api_calico_yaml_as_installed_runs_accept_the_default_scenario(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster, load_balancer="none")
    backend = kube_backend()
    backend.preflight([_topo()])  # calico.yaml's env says ACCEPT: the scenario's default
    message = _refusal(backend, _topo("DROP"))
    assert "says cluster.felix.defaultEndpointToHostAction DROP" in message
    assert "Felix on node kind-control-plane (scenario node control-plane) runs with ACCEPT" in message
    assert f"environment: DaemonSet kube-system/calico-node container calico-node, env {ENV}" in message
    assert f"kubectl -n kube-system set env daemonset/calico-node {ENV}=DROP" in message


def test_emulated_api_the_environment_wins_over_every_felix_configuration(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster, load_balancer="none")
    _patch_felix(fake_cluster, "default", "Drop")
    _patch_felix(fake_cluster, "node.kind-worker", "Return")
    kube_backend().preflight([_topo("ACCEPT")])  # env ACCEPT, although both FelixConfigurations say otherwise
    message = _refusal(kube_backend(), _topo("RETURN"))
    assert "runs with ACCEPT, from environment" in message


def test_emulated_api_felix_configuration_default_decides_when_the_environment_does_not_set_it(
        fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster, load_balancer="none")
    _set_env(fake_cluster, _without_felix_env)
    _patch_felix(fake_cluster, "default", "Return")  # case-insensitive, as Felix reads it
    kube_backend().preflight([_topo("RETURN")])
    message = _refusal(kube_backend(), _topo())
    assert "runs with RETURN, from FelixConfiguration default (global)" in message
    assert "kubectl patch felixconfiguration default --type merge" in message and '"ACCEPT"' in message


def test_emulated_api_a_node_felix_configuration_overrides_default_on_that_node_only(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster, load_balancer="none")
    _set_env(fake_cluster, _without_felix_env)
    _patch_felix(fake_cluster, "default", "Accept")
    _patch_felix(fake_cluster, "node.kind-worker", "Drop")
    message = _refusal(kube_backend(), _topo())
    assert "Felix on node kind-worker (scenario node worker) runs with DROP, from FelixConfiguration node.kind-worker" in message
    # and the other way round: the nodes without their own keep default's ACCEPT
    message = _refusal(kube_backend(), _topo("DROP"))
    assert "Felix on node kind-control-plane (scenario node control-plane) runs with ACCEPT, from FelixConfiguration " \
           "default (global)" in message


def test_emulated_api_felix_builtin_default_drop_when_nothing_sets_it(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster, load_balancer="none")
    _set_env(fake_cluster, _without_felix_env)  # FelixConfiguration default as calico-node writes it: no action
    kube_backend().preflight([_topo("DROP")])
    message = _refusal(kube_backend(), _topo())
    assert "runs with DROP, from Felix's built-in default" in message


def test_emulated_api_an_empty_variable_is_ignored_and_a_config_map_ref_is_followed(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster, load_balancer="none")
    _set_env(fake_cluster, lambda env: [*_without_felix_env(env), {"name": "FELIX_DefaultEndpointToHostAction",
                                                                    "value": ""}])
    assert env_setting(_kube(fake_cluster)) is None  # Felix ignores an empty value (UpdateFrom)
    fake_cluster.add({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "felix", "namespace": "kube-system"},
                      "data": {"action": "return"}})
    _set_env(fake_cluster, lambda env: [*_without_felix_env(env), {
        "name": ENV, "valueFrom": {"configMapKeyRef": {"name": "felix", "key": "action"}}}])
    setting = env_setting(_kube(fake_cluster))
    assert setting is not None and setting.value == "RETURN" and "ConfigMap kube-system/felix key action" in setting.source


def test_emulated_api_a_secret_that_may_set_the_variable_is_a_refusal_naming_it(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster, load_balancer="none")
    _set_env(fake_cluster, lambda env: [*_without_felix_env(env), {
        "name": ENV, "valueFrom": {"secretKeyRef": {"name": "felix", "key": "action"}}}])
    message = _refusal(kube_backend(), _topo())
    assert "cannot read Felix's defaultEndpointToHostAction" in message and "secretKeyRef" in message


def test_emulated_api_operator_install_in_calico_system_is_read_and_its_owner_named(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster, load_balancer="none")
    _set_env(fake_cluster, lambda env: env, namespace="calico-system")
    message = _refusal(kube_backend(), _topo("DROP"))
    assert "DaemonSet calico-system/calico-node" in message and "Tigera operator owns" in message


def test_emulated_api_selector_scoped_configurations_are_refused_unless_all(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster, load_balancer="none")
    _set_env(fake_cluster, _without_felix_env)
    _patch_felix(fake_cluster, "workers", "Drop", nodeSelector="all()")
    kube_backend().preflight([_topo("DROP")])
    _patch_felix(fake_cluster, "edge", "Accept", nodeSelector="role == 'edge'")
    message = _refusal(kube_backend(), _topo("DROP"))
    assert "edge (role == 'edge')" in message and "does not evaluate Calico node selectors" in message


def test_emulated_api_native_v3_felix_configurations_are_read(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster, load_balancer="none", calico_api="projectcalico.org/v3")
    _set_env(fake_cluster, _without_felix_env)
    _kube(fake_cluster).patch("projectcalico.org/v3", "FelixConfiguration", "default",
                              {"spec": {"defaultEndpointToHostAction": "Return"}})
    kube_backend().preflight([_topo("RETURN")])


def test_emulated_api_403_on_the_daemonset_or_felix_configurations_names_the_grant(fake_cluster) -> None:
    seed_cluster(fake_cluster, load_balancer="none")
    fake_cluster.deny("get", "daemonsets", "apps")
    with pytest.raises(BackendUnavailable) as info:
        env_setting(_kube(fake_cluster))
    assert "not allowed to get DaemonSet calico-system/calico-node" in str(info.value) and "(403)" in str(info.value)
    assert 'daemonsets.apps "calico-node" is forbidden' in str(info.value)
    assert "cluster-configs/kube/rbac.yaml" in str(info.value)
    fake_cluster.deny("list", "felixconfigurations", "crd.projectcalico.org")
    with pytest.raises(BackendUnavailable) as info:
        felix_configurations(_kube(fake_cluster), "crd.projectcalico.org/v1")
    assert "not allowed to list FelixConfiguration" in str(info.value)
    assert "felixconfigurations.crd.projectcalico.org is forbidden" in str(info.value)


def test_emulated_api_preflight_names_the_missing_felix_grant(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster, load_balancer="none")
    fake_cluster.deny("list", "felixconfigurations", "crd.projectcalico.org")
    message = _refusal(kube_backend(), _topo())
    assert "not allowed to: list felixconfigurations (group crd.projectcalico.org)" in message


def test_emulated_api_cli_felix_mismatch_exits_2_and_creates_nothing(fake_cluster, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    seed_cluster(fake_cluster, load_balancer="none")
    path = tmp_path / "felix.yaml"
    path.write_text(SCENARIO.replace("clients: [alice]}", "clients: [alice], felix: {defaultEndpointToHostAction: DROP}}"))
    code = main(["check", str(path), "--backend", "kube", "--kubeconfig", str(fake_cluster.kubeconfig)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert str(path) in err and "cluster.felix.defaultEndpointToHostAction DROP" in err and "runs with ACCEPT" in err
    assert [r for r in fake_cluster.writes() if "selfsubjectaccessreviews" not in r.path] == []
