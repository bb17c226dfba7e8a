"""KubeSphere tenancy beyond one project: a whitelist outside any workspace (issue #14 item 4)
and the cluster-wide settings ``cluster.kubesphere`` (item 5), compiled as KubeSphere's
nsnetworkpolicy controller does (release-3.4 nsnetworkpolicy_controller.go: syncNSNP converts
NSNPs in any namespace; generateNSNP / generateNodeRule read allowedIngressNamespaces and the
nodes' kubesphere.io/snat-node-ips)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from netiso.model.addressing import load_topologies, resolve
from netiso.model.errors import ScenarioError
from netiso.model.loader import loads

ROOT = Path(__file__).resolve().parents[2]


def _policies(topo: Any, namespace: str) -> dict[str, dict[str, Any]]:
    return {p["metadata"]["name"]: p for p in topo.policies if p["metadata"]["namespace"] == namespace}


def test_whitelist_outside_workspace_isolates_the_namespace_for_its_peers() -> None:
    (topo,) = load_topologies([str(ROOT / "scenarios/whitelist-outside-workspace.yaml")])
    pols = _policies(topo, "legacy")
    assert list(pols) == ["nsnp-ingress-project-frontend"]  # syncNs skips it: no nsnp-network-isolate
    spec = pols["nsnp-ingress-project-frontend"]["spec"]
    assert spec["podSelector"] == {} and spec["policyTypes"] == ["Ingress"]
    assert spec["ingress"] == [{"from": [{"namespaceSelector": {"matchLabels": {"kubesphere.io/namespace": "frontend"}}}],
                                "ports": [{"protocol": "TCP", "port": 8080}]}]
    assert "kubesphere.io/workspace" not in topo.namespaces["legacy"]
    assert topo.warnings == []


def test_egress_whitelist_outside_workspace_warns_that_dns_is_blocked() -> None:
    (s,) = loads("name: t\nprojects: [{name: legacy, whitelist: [{direction: egress, peer: {cidr: 203.0.113.0/24}}]}]\n")
    topo = resolve(s)
    assert list(_policies(topo, "legacy")) == ["nsnp-egress-cidr-203-0-113-0-24"]
    assert any("nothing adds the DNS egress rules" in w for w in topo.warnings)


def test_isolation_outside_workspace_is_still_refused() -> None:
    with pytest.raises(ScenarioError, match=r"projects\[0\]\.isolation.*move this project under workspaces"):
        loads("name: t\nprojects: [{name: demo, isolation: true}]\n")


SETTINGS = """\
name: t
cluster:
  encapsulation: ipip
  kubesphere:
    allowedIngressNamespaces: [kubesphere-controls-system, monitoring]
    snatNodeIPs: [tunnel:worker2, node:*, 198.18.0.99]
workspaces:
  - {name: ws, isolation: true, projects: [{name: a}, {name: b, isolation: true}]}
projects: [{name: monitoring}]
"""


def test_cluster_settings_reach_every_isolation_policy() -> None:
    (s,) = loads(SETTINGS)
    topo = resolve(s)
    nodes = [n.ip for n in topo.nodes.values()]
    snat = sorted([topo.nodes["worker2"].tunnel_ip, *nodes, "198.18.0.99"])  # sorted as strings, as upstream
    for project, selector in (("a", {"kubesphere.io/workspace": "ws"}), ("b", {"kubesphere.io/namespace": "b"})):
        ingress = _policies(topo, project)["nsnp-network-isolate"]["spec"]["ingress"]
        assert ingress[0]["from"] == [
            {"namespaceSelector": {"matchLabels": selector}},
            {"namespaceSelector": {"matchLabels": {"kubesphere.io/namespace": "kubesphere-controls-system"}}},
            {"namespaceSelector": {"matchLabels": {"kubesphere.io/namespace": "monitoring"}}}]
        assert ingress[1] == {"from": [{"ipBlock": {"cidr": f"{ip}/32"}} for ip in snat]}
    assert _policies(topo, "monitoring") == {}


def test_no_settings_no_extra_peers() -> None:
    (s,) = loads(SETTINGS.replace("  kubesphere:\n    allowedIngressNamespaces: [kubesphere-controls-system, "
                                  "monitoring]\n    snatNodeIPs: [tunnel:worker2, node:*, 198.18.0.99]\n", ""))
    ingress = _policies(resolve(s), "b")["nsnp-network-isolate"]["spec"]["ingress"]
    assert len(ingress) == 1 and len(ingress[0]["from"]) == 1


@pytest.mark.parametrize(("snippet", "field", "words"), [
    ("snatNodeIPs: [198.18.0.0/24]", "cluster.kubesphere.snatNodeIPs[0]", "is not an IP address"),
    ("snatNodeIPs: [node:nope]", "cluster.kubesphere.snatNodeIPs[0]", "unknown node 'nope'"),
    ("snatNodeIPs: [client:alice]", "cluster.kubesphere.snatNodeIPs[0]", "takes node:NAME, tunnel:NAME"),
    ("snatNodeIPs: [node:worker, node:worker]", "cluster.kubesphere.snatNodeIPs[1]", "duplicate address"),
    ("allowedIngressNamespaces: [Not_A_Name]", "cluster.kubesphere.allowedIngressNamespaces[0]", "namespace name"),
    ("snatIPs: []", "cluster.kubesphere", "snatIPs"),
])
def test_bad_cluster_settings_name_the_field(snippet: str, field: str, words: str) -> None:
    text = f"name: t\ncluster: {{clients: [alice], kubesphere: {{{snippet}}}}}\nprojects: [{{name: a}}]\n"
    with pytest.raises(ScenarioError) as exc:
        loads(text, "s.yaml")
    assert field in str(exc.value) and words in str(exc.value)


def test_tunnel_snat_address_refused_in_direct_mode() -> None:
    with pytest.raises(ScenarioError, match="encapsulation is direct"):
        loads("name: t\ncluster: {encapsulation: direct, kubesphere: {snatNodeIPs: [tunnel:worker]}}\n"
              "projects: [{name: a}]\n")
