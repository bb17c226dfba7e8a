"""``--dry-run`` for the kube backend: per scenario, every object in apply order and plan.txt.

The plan is written without any cluster: these tests read only the files it writes.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from netiso.backends.kube.manifests import KubeTarget, all_objects
from netiso.backends.kube.naming import RunNames
from netiso.backends.kube.plan import PlannedProbe, object_file_names, write_plan
from netiso.model.addressing import load_topologies
from netiso.model.types import Topology

ROOT = Path(__file__).parents[2]
TOPOLOGIES = load_topologies(sorted(str(p) for p in (ROOT / "scenarios").glob("*.yaml")))
BY_NAME = {t.name: t for t in TOPOLOGIES}
WHEN = datetime(2026, 1, 1, tzinfo=UTC)
FILE_RE = re.compile(r"^(\d{2,})-([a-z]+)-(.+)\.yaml$")


def run_names(topo: Topology) -> RunNames:
    return RunNames(run="nx0a1b2c")


def kind_nodes(topo: Topology) -> dict[str, str]:
    return {n: f"kind-{n}" for n in topo.nodes}


def plan(tmp_path: Path, topos: Sequence[Topology], **kw) -> list[Path]:  # type: ignore[no-untyped-def]
    return write_plan(topos, tmp_path, run_names, kw.pop("node_map", kind_nodes), renew_time=WHEN, **kw)


def object_files(scenario_dir: Path) -> list[Path]:
    return sorted((p for p in scenario_dir.iterdir() if FILE_RE.match(p.name)),
                  key=lambda p: int(FILE_RE.match(p.name).group(1)))  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def full_plan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("plan")
    write_plan(TOPOLOGIES, out, run_names, kind_nodes, clients={"alice": "docker exec alice"}, renew_time=WHEN)
    return out


@pytest.mark.parametrize("topo", TOPOLOGIES, ids=lambda t: t.name)
def test_every_bundled_scenario_gets_a_complete_plan(full_plan: Path, topo: Topology) -> None:
    scenario_dir = full_plan / topo.name
    files = object_files(scenario_dir)
    expected = all_objects(topo, KubeTarget(RunNames("nx0a1b2c"), kind_nodes(topo)), holder="netiso --dry-run",
                           renew_time=WHEN)
    assert [int(FILE_RE.match(f.name).group(1)) for f in files] == list(range(1, len(expected) + 1))  # type: ignore[union-attr]
    for path, obj in zip(files, expected, strict=True):
        (doc,) = list(yaml.safe_load_all(path.read_text()))
        assert doc == obj
        _, kind, name = FILE_RE.match(path.name).groups()  # type: ignore[union-attr]
        assert (kind, name) == (obj["kind"].lower(), obj["metadata"]["name"])
        kubernetes_validate.validate(doc, "1.35.0", strict=True)
    text = (scenario_dir / "plan.txt").read_text()
    for heading in ("preflight", "janitor", "create: run", "create: namespaces", "create: workloads",
                    "wait: pods Ready", "create: services", "discover", "policies (after discovery)",
                    "create: ingresses", "probe batches", "cleanup"):
        assert re.search(rf"^\d+\. {re.escape(heading)}", text, re.M), heading
    assert len(re.findall(r"^     flow \d+: ", text, re.M)) == len(topo.scenario.flows)
    for path in files:
        assert f"({path.name})" in text


def test_steps_are_numbered_in_run_order(full_plan: Path) -> None:
    text = (full_plan / "ingress-loadbalancer-ipip" / "plan.txt").read_text()
    headings = re.findall(r"^(\d+)\. (.+)$", text, re.M)
    assert [int(n) for n, _ in headings] == list(range(1, len(headings) + 1))
    titles = [t.split(" (")[0] for _, t in headings]
    order = ["preflight", "janitor", "create: run", "create: namespaces", "wait: default ServiceAccounts",
             "create: workloads", "create: services", "wait: pods Ready", "wait: LoadBalancer addresses",
             "discover: map what the cluster assigned back to the scenario's symbols",
             "policies", "create: ingresses", "wait: ingresses admitted", "probe batches", "cleanup"]
    assert [t for t in titles if t in order] == order


def test_file_names_carry_apply_order_kind_and_name() -> None:
    objs = [{"kind": "Namespace", "metadata": {"name": "a"}}] * 120
    names = object_file_names(objs)
    assert names[0] == "001-namespace-a.yaml" and names[-1] == "120-namespace-a.yaml"


def test_preflight_names_what_each_check_reads(full_plan: Path) -> None:
    text = (full_plan / "lb-openelb-cluster-vxlan" / "plan.txt").read_text()
    assert "GET /version" in text
    assert "GET /api/v1/namespaces/kube-system/configmaps/kube-proxy" in text
    assert "/apis/crd.projectcalico.org/v1/ippools (expected ipipMode=Never, vxlanMode=Always)" in text
    assert "GET /apis/projectcalico.org/v3/ippools when discovery serves it" in text
    assert "not KubeSphere: GET /apis" in text
    assert "GET /apis/network.kubesphere.io/v1alpha2/eips" in text
    # the plan lists exactly what preflight asks (netiso/backends/kube/access.py), the same for every scenario
    assert "create pods/exec" in text and "create clusterroles (group rbac.authorization.k8s.io)" in text
    direct = (full_plan / "lb-metallb-cluster-direct" / "plan.txt").read_text()
    assert "expected ipipMode=Never, vxlanMode=Never" in direct and "metallb.io/v1beta1/ipaddresspools" in direct


def test_policies_step_says_ip_blocks_come_from_discovery(full_plan: Path) -> None:
    text = (full_plan / "egress-whitelist-cidr" / "plan.txt").read_text()
    section = text.split("policies (after discovery)")[1].split("\n\n")[0]
    assert "ipBlocks are filled from discovered addresses" in section
    assert "POST /apis/networking.k8s.io/v1/namespaces/nx0a1b2c-shop/networkpolicies" in section


def test_pod_sources_exec_in_their_pod_and_node_sources_in_the_node_probe_pod(full_plan: Path) -> None:
    text = (full_plan / "raw-netpol-ipblock-ports" / "plan.txt").read_text()
    assert "pod:tools/probe@worker2: exec pod nx0a1b2c-tools/probe-worker2 container netexec" in text
    assert "node:control-plane: exec pod nx0a1b2c-netiso/node-control-plane container probe" in text


def test_unmapped_client_is_skipped_and_mapped_client_uses_its_command(full_plan: Path) -> None:
    text = (full_plan / "raw-netpol-ipblock-ports" / "plan.txt").read_text()
    assert "client:alice: exec --client 'alice=docker exec alice'" in text
    assert re.search(r"client:bob: SKIPPED - client:bob is not mapped .* reported skipped, never passed", text)


def test_probe_lines_name_source_destination_address_and_port(full_plan: Path) -> None:
    text = (full_plan / "nodeport-cluster-vxlan" / "plan.txt").read_text()
    topo = BY_NAME["nodeport-cluster-vxlan"]
    svc = topo.services["shop/web"]
    node_port = svc.ports[0].node_port
    assert re.search(rf"flow \d+: client:alice -> nodeport:shop/web@worker2  \[nodeport "
                     rf"{re.escape(topo.nodes['worker2'].ip)}:{node_port}/TCP\]", text)


def test_batch_command_hook_appears_in_the_plan(tmp_path: Path) -> None:
    seen: list[tuple[str, int]] = []

    def command(source: str, probes: Sequence[PlannedProbe]) -> str:
        seen.append((source, len(probes)))
        return f"agnhost-batch --from {source} --count {len(probes)}"

    (scenario_dir,) = plan(tmp_path, [BY_NAME["udp-nodeport-vxlan"]], batch_command=command,
                           clients={"alice": "ssh alice@h", "bob": "ssh bob@h"})
    text = (scenario_dir / "plan.txt").read_text()
    assert seen and all(f"command: agnhost-batch --from {s} --count {n}" in text for s, n in seen)
    assert sum(n for _, n in seen) == len(BY_NAME["udp-nodeport-vxlan"].scenario.flows)


def test_a_multi_line_batch_script_is_written_indented_under_its_batch(tmp_path: Path) -> None:
    def script(source: str, probes: Sequence[PlannedProbe]) -> str:
        return "#!/bin/sh\n" + "".join(f"probe {p.address} {p.port}\n" for p in probes)

    (scenario_dir,) = plan(tmp_path, [BY_NAME["nodeport-cluster-vxlan"]], batch_command=script)
    text = (scenario_dir / "plan.txt").read_text()
    assert "     command (a script, run through the exec above):\n       | #!/bin/sh\n       | probe " in text
    assert not re.search(r"^\s*probe ", text, re.M)  # script lines never stand alone


def test_node_map_and_registry_reach_the_written_objects(tmp_path: Path) -> None:
    topo = BY_NAME["nodeport-cluster-vxlan"]
    (scenario_dir,) = plan(tmp_path, [topo], node_map={"control-plane": "m0", "worker": "m1", "worker2": "m2"},
                           registry="mirror.local/k8s")
    pods = [d for f in object_files(scenario_dir) if (d := yaml.safe_load(f.read_text()))["kind"] == "Pod"]
    assert {p["spec"]["nodeName"] for p in pods} == {"m1", "m2"}
    assert all(c["image"].startswith("mirror.local/k8s/") for p in pods for c in p["spec"]["containers"])
    assert "nodes control-plane->m0, worker->m1, worker2->m2" in (scenario_dir / "plan.txt").read_text()


def test_rewriting_a_plan_replaces_earlier_object_files(tmp_path: Path) -> None:
    topo = BY_NAME["nodeport-cluster-vxlan"]
    (scenario_dir,) = plan(tmp_path, [topo])
    stale = scenario_dir / "99-pod-gone.yaml"
    stale.write_text("---\n")
    keep = scenario_dir / "notes.md"
    keep.write_text("mine\n")
    plan(tmp_path, [topo])
    assert not stale.exists() and keep.exists()


def test_plan_is_byte_identical_for_the_same_inputs(tmp_path: Path) -> None:
    topo = BY_NAME["ingress-loadbalancer-ipip"]
    (a,) = plan(tmp_path / "a", [topo])
    (b,) = plan(tmp_path / "b", [topo])
    assert {p.name: p.read_bytes() for p in a.iterdir()} == {p.name: p.read_bytes() for p in b.iterdir()}


def test_plan_module_does_not_import_the_kubernetes_client() -> None:
    code = ("import sys, netiso.backends.kube.plan; "
            "print(sorted(m for m in sys.modules if m == 'kubernetes' or m.startswith('kubernetes.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"
