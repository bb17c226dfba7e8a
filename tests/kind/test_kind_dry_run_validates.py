"""``--dry-run`` for kind writes all six cluster plans, and every object in them validates.

Core kinds are checked against the Kubernetes OpenAPI schemas with kubernetes-validate (pinned
1.37.0; schemas of Kubernetes 1.36, the kind node image's version), strict (no unknown fields).
Calico / MetalLB / OpenELB custom resources are checked with jsonschema against the
``openAPIV3Schema`` of the vendored CRDs themselves (the served version the object names).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from netiso.backends.base import BackendOptions
from netiso.backends.kind.addons import ADDONS, vendored_documents
from netiso.backends.kind.configs import GROUPS
from netiso.backends.kind.plan import write_kind_plans
from netiso.model.addressing import load_topologies

K8S_VERSION = "1.36.0"


@pytest.fixture(scope="module")
def plan_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("kind-plan")
    write_kind_plans(load_topologies(["scenarios"]), out, BackendOptions(), run_id="nx0a1b2c")
    return out


def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """``(apiVersion, kind) -> openAPIV3Schema`` from every vendored CRD."""
    schemas = {}
    for addon in ADDONS:
        for doc in vendored_documents(addon):
            if doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec["versions"]:
                if version.get("served"):
                    schemas[(f"{spec['group']}/{version['name']}", spec["names"]["kind"])] = version["schema"]["openAPIV3Schema"]
    return schemas


CRDS = crd_schemas()


def objects_of(plan_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    files = [p for p in sorted(plan_dir.rglob("*.yaml")) if p.name != "kind-config.yaml"]
    return [(p, d) for p in files for d in yaml.safe_load_all(p.read_text()) if d]


def test_dry_run_writes_all_six_clusters_with_config_objects_and_plan(plan_dir: Path) -> None:
    six = sorted(f"kind-{e}-{lb}" for e, lb in GROUPS)
    written = sorted(p.name for p in plan_dir.iterdir())
    assert [n for n in written if "-kp-" not in n] == six
    # the bundled kube-proxy-settings scenarios: one more vxlan/metallb cluster per setting, whose
    # plan rewrites kube-proxy's ConfigMap before anything else is installed
    # (and the Felix / IP-pool settings scenarios: one more cluster per setting and encapsulation,
    # whose Calico apply names the settings)
    extra = [n for n in written if "-kp-" in n]
    steps_of = {n: [line for line in (plan_dir / n / "plan.txt").read_text().splitlines() if "API:" in line]
                for n in extra}
    proxy = [n for n in extra if "kube-proxy settings" in steps_of[n][0]]
    assert len(proxy) == 2 and all(n.startswith("kind-vxlan-metallb-kp-") for n in proxy)
    for name in proxy:
        assert "daemonset kube-system/kube-proxy" in steps_of[name][1]
    calico = [n for n in extra if n not in proxy]
    assert calico and all(any("calico" in line and ("defaultEndpointToHostAction=" in line or "natOutgoing=false" in line)
                              for line in steps_of[n]) for n in calico)
    for e, lb in GROUPS:
        d = plan_dir / f"kind-{e}-{lb}"
        config = yaml.safe_load((d / "kind-config.yaml").read_text())
        assert config["networking"]["disableDefaultCNI"] is True
        plan = (d / "plan.txt").read_text()
        assert "kind create cluster --name netiso-" in plan and "kind delete cluster --name netiso-" in plan
        numbered = sorted(p.name for p in d.glob("[0-9][0-9]*-*.yaml"))
        assert numbered[0].startswith("01-") and int(numbered[-1].split("-")[0]) == len(numbered)
        assert any(lb in p for p in numbered for lb in ("ipaddresspool-netiso-pool", "eip-netiso-eip"))


def test_dry_run_includes_each_groups_scenarios_through_the_kube_planner(plan_dir: Path) -> None:
    scenario_plans = sorted(plan_dir.glob("kind-*/scenarios/*/plan.txt"))
    assert len(scenario_plans) == len(load_topologies(["scenarios"]))
    text = scenario_plans[0].read_text()
    assert "netiso-" in text and "-control-plane" in text  # kind node names, not the scenario's


def test_every_core_object_of_every_plan_validates_against_the_kubernetes_schemas(plan_dir: Path) -> None:
    checked = 0
    for path, doc in objects_of(plan_dir):
        if (doc["apiVersion"], doc["kind"]) in CRDS:
            continue
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{path.relative_to(plan_dir)}: {exc.message} at {list(exc.path)}")
        checked += 1
    assert checked > 6 * 60


def test_every_custom_resource_of_every_plan_validates_against_its_vendored_crd(plan_dir: Path) -> None:
    seen = set()
    for path, doc in objects_of(plan_dir):
        key = (doc["apiVersion"], doc["kind"])
        if key not in CRDS:
            continue
        errors = sorted(jsonschema.Draft7Validator(CRDS[key]).iter_errors(doc), key=lambda e: list(e.path))
        assert not errors, f"{path.relative_to(plan_dir)}: {errors[0].message} at {list(errors[0].path)}"
        seen.add(doc["kind"])
    assert {"IPAddressPool", "L2Advertisement", "Eip", "IPPool"} <= seen


def test_crd_validation_catches_a_wrong_field() -> None:
    eip = {"apiVersion": "network.kubesphere.io/v1alpha2", "kind": "Eip", "metadata": {"name": "x"},
           "spec": {"address": "172.18.255.200-172.18.255.250", "protocol": "arp"}}
    errors = list(jsonschema.Draft7Validator(CRDS[("network.kubesphere.io/v1alpha2", "Eip")]).iter_errors(eip))
    assert errors and "arp" in errors[0].message
