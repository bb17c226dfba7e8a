"""Valid scenario files: every default of docs/scenarios.md, documents, directories, ports, names.

The defaults asserted here are the ones the public contract writes next to each field
(``(default: ...)``); a change to any of them is a contract change and must show up here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from netiso.model.addressing import resolve
from netiso.model.loader import load_scenarios, loads
from netiso.model.types import NetworkPlan, Port, Scenario


def one(text: str) -> Scenario:
    scenarios = loads(text, "mem.yaml")
    assert len(scenarios) == 1
    return scenarios[0]


# --------------------------------------------------------------------------- defaults


def test_minimal_scenario_gets_contract_defaults() -> None:
    s = one("name: bare\n")
    assert s.name == "bare"
    assert s.description == ""
    assert s.cluster.encapsulation == "vxlan"
    assert s.cluster.nodes == ("control-plane", "worker", "worker2")
    assert s.cluster.loadBalancer == "metallb"
    assert s.cluster.clients == ("client",)
    assert s.cluster.network == NetworkPlan()
    assert (s.workspaces, s.projects, s.networkPolicies, s.workloads, s.services, s.ingresses, s.flows) == (
        (), (), (), (), (), (), ())


def test_source_records_file_document_and_name() -> None:
    s = one("name: bare\n")
    assert (s.source.file, s.source.index, s.source.name) == ("mem.yaml", 0, "bare")
    assert s.source.where() == "mem.yaml: document 0 (bare)"


def test_tenancy_defaults_isolation_off_and_no_whitelist() -> None:
    s = one("""\
name: t
workspaces:
  - name: ws
    projects: [{name: demo}, {name: shop, labels: {team: blue}}]
projects: [{name: kubesphere-controls-system}]
""")
    (ws,) = s.workspaces
    assert ws.isolation is False
    assert ws.projects == ("demo", "shop")
    demo, shop, system = s.projects
    assert (demo.workspace, demo.isolation, demo.whitelist, dict(demo.labels)) == ("ws", False, (), {})
    assert dict(shop.labels) == {"team": "blue"}
    assert system.workspace is None
    assert s.project("shop") is shop and s.project("nope") is None
    assert s.workspace("ws") is ws


def test_workload_defaults_labels_app_name_and_port_8080_tcp() -> None:
    s = one("name: t\nprojects: [{name: demo}]\nworkloads: [{name: web, project: demo, nodes: [worker, worker2]}]\n")
    (w,) = s.workloads
    assert w.nodes == ("worker", "worker2")
    assert dict(w.labels) == {"app": "web"}
    assert w.ports == (Port(8080, "TCP"),)


def test_explicit_workload_labels_replace_the_default() -> None:
    s = one("name: t\nprojects: [{name: demo}]\n"
            "workloads: [{name: web, project: demo, nodes: [worker], labels: {tier: front}}]\n")
    assert dict(s.workloads[0].labels) == {"tier": "front"}


def test_service_defaults_selector_cluster_policy_and_port() -> None:
    s = one("name: t\nprojects: [{name: demo}]\nservices: [{name: web, project: demo, type: NodePort}]\n")
    (svc,) = s.services
    assert dict(svc.selector) == {"app": "web"}
    assert svc.externalTrafficPolicy == "Cluster"
    assert svc.ports == (Port(8080, "TCP"),)


def test_service_type_defaults_to_clusterip() -> None:
    s = one("name: t\nprojects: [{name: demo}]\nservices: [{name: web, project: demo}]\n")
    assert s.services[0].type == "ClusterIP"


def test_ingress_controller_defaults() -> None:
    s = one("""\
name: t
projects: [{name: demo}, {name: gw}]
workloads: [{name: web, project: demo, nodes: [worker]}]
services: [{name: web, project: demo}]
ingresses:
  - {name: web, project: demo, host: web.example, service: web, controller: {project: gw, node: worker2}}
""")
    (ing,) = s.ingresses
    assert (ing.host, ing.service, ing.port) == ("web.example", "web", None)
    c = ing.controller
    assert (c.project, c.node, c.exposure, c.externalTrafficPolicy) == ("gw", "worker2", "NodePort", "Cluster")


def test_flow_defaults_and_expectation_forms() -> None:
    s = one("""\
name: t
projects: [{name: demo}]
workloads: [{name: web, project: demo, nodes: [worker]}]
flows:
  - {from: client:client, to: pod:demo/web}
  - from: client:client
    to: pod:demo/web@worker
    port: 8080
    expect: {verdict: allowed, source: client:client, answeredBy: [pod:demo/web]}
    intent: wanted
""")
    plain, full = s.flows
    assert (plain.port, plain.expect, plain.intent, plain.index) == (None, None, None, 0)
    assert plain.label == "client:client -> pod:demo/web"
    assert full.index == 1 and full.port == Port(8080, "TCP") and full.intent == "wanted"
    assert full.expect is not None
    assert full.expect.verdict == "allowed"
    assert full.expect.source == ("client:client",)  # a single symbol becomes a one-element list
    assert full.expect.answeredBy == ("pod:demo/web",)
    assert full.expect.forwardedFor == ()


@pytest.mark.parametrize(("written", "port"), [
    ("8080/TCP", Port(8080, "TCP")),
    ("53/UDP", Port(53, "UDP")),
    ("3868/SCTP", Port(3868, "SCTP")),
    ("9090", Port(9090, "TCP")),
    (443, Port(443, "TCP")),
    ({"port": 8443, "protocol": "TCP", "name": "https"}, Port(8443, "TCP", "https")),
    ({"port": 5353, "protocol": "UDP"}, Port(5353, "UDP")),
])
def test_port_forms(written: object, port: Port) -> None:
    text = "name: t\nprojects: [{name: demo}]\nworkloads: [{name: web, project: demo, nodes: [worker], ports: [PORT]}]\n"
    s = one(text.replace("PORT", yaml.safe_dump(written, default_flow_style=True).strip().removesuffix("...").strip()))
    assert s.workloads[0].ports == (port,)
    assert s.workloads[0].ports[0].name == port.name


def test_named_ports_reach_the_pods() -> None:
    s = one("""\
name: t
projects: [{name: demo}]
workloads:
  - name: web
    project: demo
    nodes: [worker]
    ports: [{port: 8080, protocol: TCP, name: http}, {port: 9090, protocol: TCP, name: metrics}]
""")
    (pod,) = resolve(s).pods
    assert pod.named_port("http") == Port(8080, "TCP", "http")
    assert pod.named_port("metrics") == Port(9090, "TCP", "metrics")
    assert pod.named_port("grpc") is None


# --------------------------------------------------------------------------- whitelist names


def test_whitelist_default_names_are_unique_and_valid() -> None:
    s = one("""\
name: t
cluster: {clients: [alice]}
workspaces:
  - name: ws
    projects:
      - name: demo
        isolation: true
        whitelist:
          - {direction: ingress, peer: {cidr: "client:alice"}}
          - {direction: ingress, peer: {cidr: "client:alice"}, ports: [8080/TCP]}
          - {direction: ingress, peer: {project: demo}}
          - {direction: egress, peer: {cidr: 203.0.113.0/24}}
          - {direction: ingress, peer: {cidr: "client:alice"}, name: from-alice}
""")
    names = [r.name for r in s.projects[0].whitelist]
    assert len(names) == len(set(names)), names
    for n in names:
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", n) and len(n) <= 63, n
    assert names[-1] == "from-alice"  # an explicit name is kept
    # The rule's peer is recorded as written (the symbol is resolved later, per backend).
    assert [(r.direction, r.peer_kind, r.peer_value) for r in s.projects[0].whitelist[:3]] == [
        ("ingress", "cidr", "client:alice"), ("ingress", "cidr", "client:alice"), ("ingress", "project", "demo")]
    assert s.projects[0].whitelist[1].ports == (Port(8080, "TCP"),)
    # ... and every rule becomes its own nsnp-<name> NetworkPolicy.
    generated = {p["metadata"]["name"] for p in resolve(s).policies}
    assert {f"nsnp-{n}" for n in names} <= generated


def test_whitelist_default_name_of_a_long_peer_stays_a_dns_label() -> None:
    long_ip = "203.0.113.128/25"
    s = one(f"""\
name: t
workspaces:
  - name: a-workspace-with-a-long-name
    projects:
      - name: a-project-with-a-rather-long-name-too
        isolation: true
        whitelist:
          - {{direction: egress, peer: {{service: a-project-with-a-rather-long-name-too/a-service-name-that-is-long}}}}
          - {{direction: egress, peer: {{cidr: {long_ip}}}}}
workloads: [{{name: web, project: a-project-with-a-rather-long-name-too, nodes: [worker]}}]
services: [{{name: a-service-name-that-is-long, project: a-project-with-a-rather-long-name-too, selector: {{app: web}}}}]
""")
    for rule in s.projects[0].whitelist:
        assert len(rule.name) <= 50 and not rule.name.endswith("-"), rule.name


# --------------------------------------------------------------------------- documents and files


def test_several_documents_per_file_keep_order_and_index() -> None:
    scenarios = loads("name: one\n---\n# a comment-only document is skipped\n---\nname: two\n"
                      "cluster: {encapsulation: ipip}\n", "multi.yaml")
    assert [s.name for s in scenarios] == ["one", "two"]
    assert [s.source.index for s in scenarios] == [0, 2]  # indices count every document of the file
    assert scenarios[1].cluster.encapsulation == "ipip"


def test_yaml_anchors_and_merge_keys_still_work() -> None:
    s = one("""\
name: t
projects: [{name: demo}]
workloads:
  - &base {name: web, project: demo, nodes: [worker], ports: [9090/TCP]}
  - {<<: *base, name: api}
""")
    web, api = s.workloads
    assert api.name == "api" and api.ports == web.ports == (Port(9090, "TCP"),)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_directories_are_read_recursively_in_sorted_order(tmp_path: Path) -> None:
    _write(tmp_path / "b.yaml", "name: b\n")
    _write(tmp_path / "a" / "z.yaml", "name: az\n")
    _write(tmp_path / "a" / "c.yml", "name: ac\n---\nname: ac2\n")
    _write(tmp_path / "a" / "deeper" / "x.yaml", "name: adx\n")
    _write(tmp_path / "README.md", "name: not-a-scenario\n")
    _write(tmp_path / "a" / "notes.txt", "name: not-either\n")
    scenarios = load_scenarios([tmp_path])
    assert [s.name for s in scenarios] == ["ac", "ac2", "adx", "az", "b"]
    assert scenarios[0].source.file == str(tmp_path / "a" / "c.yml")


def test_files_and_directories_mix_in_argument_order(tmp_path: Path) -> None:
    single = _write(tmp_path / "single.yaml", "name: single\n")
    _write(tmp_path / "dir" / "one.yaml", "name: one\n")
    scenarios = load_scenarios([tmp_path / "dir", single])
    assert [s.name for s in scenarios] == ["one", "single"]


def test_same_project_names_in_different_scenarios_are_fine(tmp_path: Path) -> None:
    _write(tmp_path / "a.yaml", "name: a\nprojects: [{name: demo}]\n")
    _write(tmp_path / "b.yaml", "name: b\nprojects: [{name: demo}]\n")
    assert [s.name for s in load_scenarios([tmp_path])] == ["a", "b"]


def test_loading_is_deterministic(tmp_path: Path) -> None:
    text = """\
name: t
cluster: {clients: [alice, bob]}
workspaces: [{name: ws, projects: [{name: demo, isolation: true,
              whitelist: [{direction: ingress, peer: {cidr: "client:alice"}}]}]}]
workloads: [{name: web, project: demo, nodes: [worker, worker2]}]
services: [{name: web, project: demo, type: NodePort, externalTrafficPolicy: Local}]
flows: [{from: client:alice, to: nodeport:demo/web@worker}]
"""
    assert loads(text) == loads(text)
