"""Run naming of the kube backend: run ids, prefixed namespaces, the reverse map, name limits."""

from __future__ import annotations

import re

import pytest

from netiso.backends.kube.naming import LEASE_NAME, RUN_LABEL, RunNames
from netiso.model.types import PodInfo, Port

NAMES = RunNames(run="nx0a1b2c")


def test_new_run_id_is_nx_plus_six_lowercase_hex() -> None:
    assert re.fullmatch(r"nx[0-9a-f]{6}", RunNames.new().run)


@pytest.mark.parametrize("bad", ["nx0A1B2C", "nx0a1b2", "xx0a1b2c", "nx0a1b2c3", ""])
def test_run_id_of_another_shape_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="'nx' followed by 6 lowercase hex"):
        RunNames(run=bad)


def test_project_namespace_is_run_prefixed_and_maps_back_to_the_project() -> None:
    assert NAMES.namespace("shop") == "nx0a1b2c-shop"
    assert NAMES.project_of(NAMES.namespace("shop")) == "shop"
    assert NAMES.project_of("nx0a1b2c-kubesphere-controls-system") == "kubesphere-controls-system"


@pytest.mark.parametrize("namespace", ["nx0a1b2c-netiso", "nx999999-shop", "shop", "kube-system", "nx0a1b2c-"])
def test_project_of_is_none_for_the_system_namespace_and_foreign_ones(namespace: str) -> None:
    assert NAMES.project_of(namespace) is None


def test_system_namespace_and_lease_name() -> None:
    assert NAMES.system_namespace == "nx0a1b2c-netiso"
    assert LEASE_NAME == "netiso-run"


def test_too_long_project_name_is_an_error_naming_the_project() -> None:
    project = "p" * 55  # 8 + 1 + 55 = 64 > 63
    with pytest.raises(ValueError, match=f"namespace for project '{project}'.*64 characters"):
        NAMES.namespace(project)
    assert len(NAMES.namespace("p" * 54)) == 63


def test_project_name_that_is_no_dns_label_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match=r"project 'Shop_1'.*not a DNS label"):
        NAMES.namespace("Shop_1")


def test_labels_carry_the_run_and_the_manager_and_are_a_fresh_dict() -> None:
    labels = NAMES.labels
    assert labels == {RUN_LABEL: "nx0a1b2c", "app.kubernetes.io/managed-by": "netiso"}
    labels["x"] = "y"
    assert "x" not in NAMES.labels
    assert NAMES.selector == "netiso.io/run=nx0a1b2c"


def test_ingress_class_and_controller_value_carry_the_run() -> None:
    assert NAMES.ingress_class == "netiso-nx0a1b2c"
    assert NAMES.controller_class == "netiso.io/nx0a1b2c"
    assert "nx0a1b2c" in NAMES.ingress_rbac


def test_workspace_label_value_is_run_prefixed() -> None:
    assert NAMES.workspace("ws-a") == "nx0a1b2c-ws-a"
    with pytest.raises(ValueError, match=r"workspace 'w{60}'"):
        NAMES.workspace("w" * 60)


def test_pod_names_are_scenario_names_and_node_pods_map_back() -> None:
    pod = PodInfo("shop", "web", "worker2", "100.64.2.1", {}, (Port(8080),))
    assert NAMES.pod_name(pod) == "web-worker2"
    assert NAMES.node_pod("control-plane") == "node-control-plane"
    assert NAMES.node_of_pod(NAMES.node_pod("control-plane")) == "control-plane"
    assert NAMES.node_of_pod("web-worker2") is None


def test_pod_name_longer_than_a_hostname_is_an_error_naming_the_pod() -> None:
    pod = PodInfo("shop", "w" * 60, "worker2", "100.64.2.1", {}, (Port(8080),))
    with pytest.raises(ValueError, match=r"pod name of pod:shop/w+@worker2"):
        NAMES.pod_name(pod)
