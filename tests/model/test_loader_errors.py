"""Bad scenario input: exit code 2 and ONE message naming file, document, field and what is allowed.

The contract (docs/scenarios.md, "Exit codes") promises that bad input gets a message that
names the file, the document and the field and gives the reason, never a traceback. Every
case here runs the real command line (``netiso.cli.main(["explain", FILE])``) on a small
YAML file and checks the whole prefix ``FILE: document N (NAME): FIELD: `` plus the words
that tell the user what is allowed. A case that raised instead of returning 2 would fail
with the exception itself, so "no traceback" is checked by construction as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from netiso.cli import main

# Small building blocks, so each case below shows only what makes it bad.
DEMO = "projects: [{name: demo}]\n"
WEB = "workloads: [{name: web, project: demo, nodes: [worker]}]\n"
WEB_NP = "services: [{name: web, project: demo, type: NodePort}]\n"
ISOLATED = """\
workspaces:
  - name: ws
    projects:
      - name: demo
        isolation: true
"""


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    field: str  # exact field path the message must name
    says: tuple[str, ...]  # fragments: what is wrong and what is allowed
    document: int = 0
    name: str | None = "t"


CASES = [
    Case("unknown-encapsulation", "name: t\ncluster: {encapsulation: geneve}\n",
         "cluster.encapsulation", ("'geneve'", "direct, ipip, vxlan")),
    Case("unknown-load-balancer", "name: t\ncluster: {loadBalancer: kube-vip}\n",
         "cluster.loadBalancer", ("'kube-vip'", "metallb, openelb, none")),
    Case("workload-on-unknown-node", "name: t\n" + DEMO + "workloads: [{name: web, project: demo, nodes: [worker, worker9]}]\n",
         "workloads[0].nodes[1]", ("unknown node 'worker9'", "control-plane, worker, worker2")),
    Case("tunnel-symbol-in-direct-mode-whitelist", """\
name: t
cluster: {encapsulation: direct}
workspaces:
  - name: ws
    projects:
      - name: demo
        isolation: true
        whitelist:
          - {direction: ingress, peer: {project: demo}}
          - {direction: ingress, peer: {cidr: "tunnel:worker2"}}
""", "workspaces[0].projects[0].whitelist[1].peer.cidr", ("tunnel:worker2", "direct", "node:NAME", "ipip/vxlan")),
    Case("tunnel-star-in-direct-mode-whitelist", """\
name: t
cluster: {encapsulation: direct}
workspaces:
  - name: ws
    projects:
      - name: demo
        isolation: true
        whitelist: [{direction: ingress, peer: {cidr: "tunnel:*"}}]
""", "workspaces[0].projects[0].whitelist[0].peer.cidr", ("tunnel:*", "direct")),
    Case("tunnel-symbol-in-direct-mode-expect-source", "name: t\ncluster: {encapsulation: direct}\n" + DEMO + WEB + WEB_NP + """\
flows:
  - from: client:client
    to: nodeport:demo/web@worker2
    expect: {source: [node:worker2, tunnel:worker2]}
""", "flows[0].expect.source[1]", ("tunnel:worker2", "direct", "node:NAME")),
    Case("unknown-project-of-workload", "name: t\n" + DEMO + "workloads: [{name: web, project: shop, nodes: [worker]}]\n",
         "workloads[0].project", ("unknown project 'shop'", "projects: demo", "workspaces[].projects or projects")),
    Case("unknown-project-of-ingress-controller", "name: t\n" + DEMO + WEB + WEB_NP + """\
ingresses:
  - {name: web, project: demo, host: web.example, service: web, controller: {project: gateway, node: worker}}
""", "ingresses[0].controller.project", ("unknown project 'gateway'", "projects: demo")),
    Case("unknown-project-in-whitelist", "name: t\n" + ISOLATED
         + "        whitelist: [{direction: ingress, peer: {project: gateway}}]\n",
         "workspaces[0].projects[0].whitelist[0].peer.project", ("unknown project 'gateway'", "projects: demo")),
    Case("unknown-service-in-flow", "name: t\n" + DEMO + WEB + WEB_NP
         + "flows: [{from: client:client, to: nodeport:demo/db@worker}]\n",
         "flows[0].to", ("unknown service 'demo/db'", "services: demo/web")),
    Case("unknown-service-in-whitelist", "name: t\n" + ISOLATED
         + "        whitelist: [{direction: egress, peer: {service: demo/db}}]\n",
         "workspaces[0].projects[0].whitelist[0].peer.service", ("unknown service 'demo/db'", "services: none")),
    Case("unknown-workload-in-flow", "name: t\n" + DEMO + WEB + "flows: [{from: pod:demo/api, to: client:client}]\n",
         "flows[0].from", ("unknown workload 'demo/api'", "workloads: demo/web")),
    Case("unknown-ingress-in-flow", "name: t\n" + DEMO + WEB + "flows: [{from: client:client, to: ingress:demo/shop}]\n",
         "flows[0].to", ("unknown ingress 'demo/shop'", "ingresses: none")),
    Case("unknown-client-in-flow", "name: t\ncluster: {clients: [alice, bob]}\n" + DEMO + WEB
         + "flows: [{from: client:carol, to: pod:demo/web}]\n",
         "flows[0].from", ("unknown client 'carol'", "clients: alice, bob")),
    Case("duplicate-workload", "name: t\n" + DEMO + "workloads:\n  - {name: web, project: demo, nodes: [worker]}\n"
         "  - {name: web, project: demo, nodes: [worker2]}\n",
         "workloads[1].name", ("duplicate workload 'demo/web'",)),
    Case("duplicate-node-names", "name: t\ncluster: {nodes: [control-plane, worker, worker]}\n",
         "cluster.nodes[2]", ("duplicate node name 'worker'",)),
    Case("port-with-icmp", "name: t\n" + DEMO + WEB + "services: [{name: web, project: demo, ports: [80/ICMP]}]\n",
         "services[0].ports[0]", ("'ICMP'", "TCP, UDP, SCTP")),
    Case("port-named-by-service-name", "name: t\n" + DEMO
         + "workloads: [{name: web, project: demo, nodes: [worker], ports: [http]}]\n",
         "workloads[0].ports[0]", ("'http' is not PORT/PROTO", "8080/TCP", "TCP, UDP, SCTP")),
    Case("port-out-of-range", "name: t\n" + DEMO + WEB + "flows: [{from: client:client, to: pod:demo/web, port: 70000}]\n",
         "flows[0].port", ("70000", "1-65535")),
    Case("ingress-backend-service-missing", "name: t\n" + DEMO + WEB + WEB_NP + """\
ingresses:
  - {name: web, project: demo, host: web.example, service: api, controller: {project: demo, node: worker}}
""", "ingresses[0].service", ("backend service 'api'", "project 'demo'", "services there: web")),
    Case("raw-networkpolicy-without-namespace", "name: t\n" + DEMO + """\
networkPolicies:
  - apiVersion: networking.k8s.io/v1
    kind: NetworkPolicy
    metadata: {name: deny-all}
    spec: {podSelector: {}}
""", "networkPolicies[0].metadata.namespace", ("must name its namespace",)),
    Case("raw-networkpolicy-not-a-mapping", "name: t\n" + DEMO + "networkPolicies: [deny-all]\n",
         "networkPolicies[0]", ("must be a mapping",)),
    Case("flow-from-clusterip", "name: t\n" + DEMO + WEB + WEB_NP + "flows: [{from: 'clusterip:demo/web', to: pod:demo/web}]\n",
         "flows[0].from", ("'clusterip:' cannot start a flow", "client:, pod: or node:")),
    Case("flow-to-unknown-node", "name: t\n" + DEMO + WEB + "flows: [{from: pod:demo/web, to: node:nowhere}]\n",
         "flows[0].to", ("unknown node 'nowhere'", "control-plane, worker, worker2")),
    Case("nodeport-without-node", "name: t\n" + DEMO + WEB + WEB_NP + "flows: [{from: client:client, to: nodeport:demo/web}]\n",
         "flows[0].to", ("needs @NODE", "nodeport:PROJECT/SERVICE@worker")),
    Case("nodeport-on-unknown-node", "name: t\n" + DEMO + WEB + WEB_NP
         + "flows: [{from: client:client, to: nodeport:demo/web@worker9}]\n",
         "flows[0].to", ("unknown node 'worker9'", "control-plane, worker, worker2")),
    Case("nodeport-to-clusterip-service", "name: t\n" + DEMO + WEB + "services: [{name: web, project: demo}]\n"
         "flows: [{from: client:client, to: nodeport:demo/web@worker}]\n",
         "flows[0].to", ("is ClusterIP and has no NodePort", "NodePort or LoadBalancer")),
    Case("loadbalancer-to-nodeport-service", "name: t\n" + DEMO + WEB + WEB_NP
         + "flows: [{from: client:client, to: loadbalancer:demo/web}]\n",
         "flows[0].to", ("is NodePort, not LoadBalancer",)),
    Case("client-to-clusterip", "name: t\n" + DEMO + WEB + WEB_NP + "flows: [{from: client:client, to: 'clusterip:demo/web'}]\n",
         "flows[0].to", ("clusterip: is reachable only from pod: and node: sources", "nodeport:", "loadbalancer:")),
    Case("at-node-without-replica", "name: t\n" + DEMO + WEB + "flows: [{from: client:client, to: pod:demo/web@worker2}]\n",
         "flows[0].to", ("has no replica on 'worker2'", "runs on worker")),
    Case("at-node-without-replica-in-whitelist-cidr", "name: t\n" + ISOLATED
         + "        whitelist: [{direction: ingress, peer: {cidr: 'pod:demo/web@worker2'}}]\n" + WEB,
         "workspaces[0].projects[0].whitelist[0].peer.cidr", ("has no replica on 'worker2'", "runs on worker")),
    Case("unknown-top-level-key", "name: t\n" + DEMO + "workload: []\n",
         "workload", ("unknown field", "did you mean 'workloads'?")),
    Case("unknown-key-in-workload-port", "name: t\n" + DEMO + "workloads: [{name: web, project: demo, nodes: [worker], "
         "ports: [{port: 8080, proto: TCP}]}]\n",
         "workloads[0].ports[0].proto", ("unknown field", "did you mean 'protocol'?")),
    Case("whitelist-peer-with-two-kinds", "name: t\n" + ISOLATED
         + "        whitelist: [{direction: ingress, peer: {project: demo, cidr: 'client:client'}}]\n",
         "workspaces[0].projects[0].whitelist[0].peer", ("exactly one of cidr, project, service", "got 2")),
    Case("whitelist-unknown-direction", "name: t\n" + ISOLATED
         + "        whitelist: [{direction: both, peer: {project: demo}}]\n",
         "workspaces[0].projects[0].whitelist[0].direction", ("'both'", "ingress, egress")),
    Case("forwarded-for-on-non-ingress-flow", "name: t\n" + DEMO + WEB + WEB_NP + """\
flows:
  - {from: client:client, to: nodeport:demo/web@worker, expect: {forwardedFor: client:client}}
""", "flows[0].expect.forwardedFor", ("only applies to ingress flows", "to: ingress:")),
    Case("answered-by-not-a-pod", "name: t\n" + DEMO + WEB + WEB_NP + """\
flows:
  - {from: client:client, to: nodeport:demo/web@worker, expect: {answeredBy: client:client}}
""", "flows[0].expect.answeredBy", ("names a pod", "pod:PROJECT/WORKLOAD[@NODE]", "node:NAME", "client:client")),
    Case("dropped-verdict-with-source", "name: t\n" + DEMO + WEB + WEB_NP + """\
flows:
  - {from: client:client, to: nodeport:demo/web@worker, expect: {verdict: dropped, source: client:client}}
""", "flows[0].expect", ("verdict dropped", "only apply to allowed flows")),
    Case("unknown-verdict", "name: t\n" + DEMO + WEB
         + "flows: [{from: client:client, to: pod:demo/web, expect: {verdict: blocked}}]\n",
         "flows[0].expect.verdict", ("'blocked'", "allowed, dropped, refused")),
    Case("unknown-symbol-kind-in-expect", "name: t\n" + DEMO + WEB + "flows: [{from: client:client, to: pod:demo/web, "
         "expect: {source: 'host:worker'}}]\n",
         "flows[0].expect.source", ("unknown symbol kind 'host:'", "client:, node:, tunnel:, pod:, ingress-controller:")),
    Case("loadbalancer-with-load-balancer-none", "name: t\ncluster: {loadBalancer: none}\n" + DEMO + WEB
         + "services: [{name: web, project: demo, type: LoadBalancer}]\n",
         "services[0].type", ("LoadBalancer needs cluster.loadBalancer", "metallb or openelb")),
    Case("etp-on-clusterip-service", "name: t\n" + DEMO + WEB
         + "services: [{name: web, project: demo, externalTrafficPolicy: Local}]\n",
         "services[0].externalTrafficPolicy", ("only NodePort and LoadBalancer",)),
    Case("isolation-outside-workspace", "name: t\nprojects: [{name: demo, isolation: true}]\n",
         "projects[0].isolation", ("workspace", "move this project under workspaces:")),
    Case("label-value-not-a-string", "name: t\n" + DEMO + "workloads: [{name: web, project: demo, nodes: [worker], "
         "labels: {app: web, tier: 3}}]\n",
         "workloads[0].labels.tier", ("must be a string", "quote numbers and booleans", "got 3")),
    Case("label-value-boolean", "name: t\nworkspaces: [{name: ws, projects: [{name: demo, labels: {critical: yes}}]}]\n",
         "workspaces[0].projects[0].labels.critical", ("must be a string", "got true")),
    Case("reserved-namespace-label", "name: t\nprojects: [{name: demo, labels: {kubesphere.io/workspace: ws}}]\n",
         "projects[0].labels.kubesphere.io/workspace", ("set by netiso", "remove it")),
    Case("whitelist-name-reserved-for-isolation-policy",
         "name: t\nworkspaces: [{name: ws, projects: [{name: demo, isolation: true, whitelist: "
         "[{name: network-isolate, direction: ingress, peer: {cidr: 203.0.113.0/24}}]}]}]\n",
         "workspaces[0].projects[0].whitelist[0].name",
         ("'network-isolate' is reserved", "nsnp-network-isolate", "give the rule another name")),
    Case("isolation-not-a-boolean", "name: t\nworkspaces: [{name: ws, isolation: 'on'}]\n",
         "workspaces[0].isolation", ("expected true or false", "'on'")),
    Case("intent-unknown", "name: t\n" + DEMO + WEB + "flows: [{from: client:client, to: pod:demo/web, intent: maybe}]\n",
         "flows[0].intent", ("'maybe'", "wanted, unwanted")),
    Case("block-size-out-of-range", "name: t\ncluster: {network: {blockSize: 32}}\n",
         "cluster.network.blockSize", ("32", "between 20 and 30")),
    Case("load-balancer-pool-reversed", "name: t\ncluster: {network: {loadBalancerPool: 198.18.0.250-198.18.0.200}}\n",
         "cluster.network.loadBalancerPool", ("FIRST-LAST or a CIDR", "last address before first")),
    Case("pod-block-full", "name: t\ncluster: {network: {blockSize: 30}}\n" + DEMO
         + "workloads: [{name: a, project: demo, nodes: [worker]}, {name: b, project: demo, nodes: [worker]},"
         " {name: c, project: demo, nodes: [worker]}]\n",
         "cluster.network", ("pod block 100.64.1.0/30 is full",)),
    Case("service-name-reserved-for-ingress-controller", "name: t\nprojects: [{name: demo}, {name: gw}]\n" + WEB + """\
services:
  - {name: web, project: demo, type: NodePort}
  - {name: ingress-controller, project: gw}
ingresses:
  - {name: web, project: demo, host: web.example, service: web, controller: {project: gw, node: worker2}}
""", "services[1].name", ("'ingress-controller' is reserved in project 'gw'", "rename it")),
    Case("workload-name-reserved-for-ingress-controller", "name: t\nprojects: [{name: demo}, {name: gw}]\n" + WEB_NP + """\
workloads:
  - {name: web, project: demo, nodes: [worker]}
  - {name: ingress-controller, project: gw, nodes: [worker]}
ingresses:
  - {name: web, project: demo, host: web.example, service: web, controller: {project: gw, node: worker2}}
""", "workloads[1].name", ("'ingress-controller' is reserved in project 'gw'", "rename it")),
    Case("ingress-at-node-with-loadbalancer-controller", "name: t\n" + DEMO + WEB + WEB_NP + """\
ingresses:
  - {name: web, project: demo, host: web.example, service: web,
     controller: {project: demo, node: worker, exposure: LoadBalancer}}
flows: [{from: client:client, to: ingress:demo/web@worker2}]
""", "flows[0].to", ("@NODE only applies to a NodePort-exposed controller", "VIP")),
    Case("missing-scenario-name", "cluster: {encapsulation: ipip}\n", "name", ("required field is missing",), name=None),
    Case("second-document-is-the-bad-one", "name: first\n---\nname: second\n" + DEMO
         + "workloads: [{name: web, project: demo, nodes: [worker], ports: [8080/ICMP]}]\n",
         "workloads[0].ports[0]", ("'ICMP'", "TCP, UDP, SCTP"), document=1, name="second"),
]


def run_explain(capsys: pytest.CaptureFixture[str], *paths: Path | str) -> tuple[int, str]:
    """Run the real CLI in-process; an uncaught exception fails the test (= a traceback)."""
    rc = main(["explain", *(str(p) for p in paths)])
    captured = capsys.readouterr()
    return rc, captured.err


def assert_one_clean_message(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one error line, got:\n{err}"
    assert lines[0].startswith("netiso: error: "), err
    assert "Traceback" not in err
    return lines[0]


def assert_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, field: str,
                   says: tuple[str, ...]) -> None:
    """``netiso explain`` of a one-document scenario ``t`` exits 2 with one line naming ``field`` and ``says``."""
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    rc, err = run_explain(capsys, path)
    assert rc == 2, err
    line = assert_one_clean_message(err)
    assert f"{path}: document 0 (t): {field}: " in line, line
    for fragment in says:
        assert fragment in line, line


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_names_file_document_field_and_what_is_allowed(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                  case: Case) -> None:
    path = tmp_path / f"{case.id}.yaml"
    path.write_text(case.text, encoding="utf-8")
    rc, err = run_explain(capsys, path)
    assert rc == 2, err
    line = assert_one_clean_message(err)
    doc = f"document {case.document}" + (f" ({case.name})" if case.name else "")
    assert f"{path}: {doc}: {case.field}: " in line, line
    for fragment in case.says:
        assert fragment in line, f"{fragment!r} missing from: {line}"


def test_case_ids_are_distinct_and_enough() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 25


def test_invalid_yaml_names_line_and_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: t\nflows:\n  - from: client:client\n    to: [pod:demo/web\n", encoding="utf-8")
    rc, err = run_explain(capsys, path)
    assert rc == 2
    line = assert_one_clean_message(err)
    assert f"{path}: not valid YAML at line 5, column 1" in line, line


def test_tab_indentation_names_its_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tabs.yaml"
    path.write_text("name: t\n\tflows: []\n", encoding="utf-8")
    rc, err = run_explain(capsys, path)
    assert rc == 2
    assert "not valid YAML at line 2, column 1" in assert_one_clean_message(err)


def test_duplicate_yaml_key_is_rejected_not_silently_overwritten(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("name: t\nflows: []\nname: u\n", encoding="utf-8")
    rc, err = run_explain(capsys, path)
    assert rc == 2
    line = assert_one_clean_message(err)
    assert f"{path}: not valid YAML at line 3, column 1" in line
    assert "duplicate key 'name'" in line


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n---\n"], ids=["empty", "comment", "separators"])
def test_file_without_documents(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text(text, encoding="utf-8")
    rc, err = run_explain(capsys, path)
    assert rc == 2
    assert f"{path}: holds no scenario documents" in assert_one_clean_message(err)


def test_directory_without_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("name: t\n", encoding="utf-8")
    rc, err = run_explain(capsys, tmp_path)
    assert rc == 2
    line = assert_one_clean_message(err)
    assert str(tmp_path) in line and "no *.yaml scenario files" in line


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.yaml"
    rc, err = run_explain(capsys, missing)
    assert rc == 2
    assert f"{missing}: no such file or directory" in assert_one_clean_message(err)


def test_undecodable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\u00e9\n".encode("latin-1"))
    rc, err = run_explain(capsys, path)
    assert rc == 2
    assert f"{path}: cannot read" in assert_one_clean_message(err)


def test_duplicate_scenario_names_across_files_name_both(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text("name: other\n---\nname: same\n", encoding="utf-8")
    second.write_text("name: same\n", encoding="utf-8")
    rc, err = run_explain(capsys, first, second)
    assert rc == 2
    line = assert_one_clean_message(err)
    assert f"{second}: document 0 (same): name: " in line
    assert f"already used by {first}: document 1 (same)" in line
    assert "unique within a run" in line


def test_duplicate_scenario_names_within_one_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "twice.yaml"
    path.write_text("name: same\n---\nname: same\n", encoding="utf-8")
    rc, err = run_explain(capsys, path)
    assert rc == 2
    assert f"{path}: document 1 (same): name: scenario name 'same' is already used by {path}: document 0" in err


def test_bad_file_in_a_directory_is_named_by_its_own_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.yaml").write_text("name: good\n", encoding="utf-8")
    bad = tmp_path / "sub" / "b.yml"
    bad.parent.mkdir()
    bad.write_text("name: bad\ncluster: {encapsulation: gre}\n", encoding="utf-8")
    rc, err = run_explain(capsys, tmp_path)
    assert rc == 2
    assert f"{bad}: document 0 (bad): cluster.encapsulation: " in assert_one_clean_message(err)


def test_bad_input_leaves_no_json_behind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: t\ncluster: {encapsulation: gre}\n", encoding="utf-8")
    out = tmp_path / "out.json"
    rc = main(["explain", str(path), "--json", str(out)])
    capsys.readouterr()
    assert rc == 2
    assert not out.exists()
