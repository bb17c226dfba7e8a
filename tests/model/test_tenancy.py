"""The KubeSphere tenancy compiler against KubeSphere v3.4's own behaviour.

Expected manifests are written out literally, several of them transcribed from the upstream unit
tests (kubesphere/kubesphere release-3.4 pkg/controller/network/nsnetworkpolicy/
nsnetworkpolicy_test.go: generateNSNP in workspace/namespace mode, convertToK8sNP with ipBlock,
namespace, service ingress and service egress), so a drift from KubeSphere fails here.
Scenarios are built by hand to test the compiler without the loader.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from netiso.model.netpol_validate import validate_network_policy
from netiso.model.tenancy import (
    KUBE_DNS,
    ConversionError,
    DnsService,
    compile_tenancy,
    convert_to_network_policy,
    isolation_policy,
    namespace_annotations,
    namespace_labels,
    namespace_network_policies,
    project_mode,
)
from netiso.model.types import (
    ClusterSpec,
    Port,
    ProjectSpec,
    Scenario,
    ServiceInfo,
    ServicePortInfo,
    ServiceSpec,
    WhitelistRule,
    WorkspaceSpec,
)

MYSERVICE = ServiceSpec("myservice", "testns", {"app": "mylbapp"}, "ClusterIP", "Cluster", (Port(80),))
DB = ServiceSpec("db", "billing", {"tier": "data", "app": "db"}, "ClusterIP", "Cluster",
                 (Port(5432), Port(5433, "UDP")))
SERVICES = {(s.project, s.name): s for s in (MYSERVICE, DB)}
CIDRS = {"client:alice": "198.18.0.100/32", "node:*": ["198.18.0.10/32", "198.18.0.11/32"], "pod:x/none": []}


def scenario(*projects: ProjectSpec, workspaces: Sequence[WorkspaceSpec] = ()) -> Scenario:
    if not workspaces:
        names = sorted({p.workspace for p in projects if p.workspace})
        workspaces = [WorkspaceSpec(ws, False, tuple(p.name for p in projects if p.workspace == ws)) for ws in names]
    return Scenario("t", "", ClusterSpec(), tuple(workspaces), tuple(projects), (), (), (), (), ())


def resolve_cidr(text: str) -> str | list[str]:
    return CIDRS.get(text, text)


def service_of(project: str, name: str) -> ServiceSpec | None:
    return SERVICES.get((project, name))


def compile_(s: Scenario, **kw: Any) -> tuple[dict[str, dict[str, Any]], list[str]]:
    policies, warnings = compile_tenancy(s, resolve_cidr, service_of, **kw)
    for p in policies:
        assert validate_network_policy(p) == [], p
    return {f"{p['metadata']['namespace']}/{p['metadata']['name']}": p for p in policies}, warnings


def rule(name: str, direction: str, kind: str, value: str, *ports: Port) -> WhitelistRule:
    return WhitelistRule(name, direction, kind, value, tuple(ports))


def ns_peer(name: str) -> dict[str, Any]:
    return {"namespaceSelector": {"matchLabels": {"kubesphere.io/namespace": name}}}


DNS_EGRESS = [
    {"to": [{"ipBlock": {"cidr": "169.254.25.10/32"}}],
     "ports": [{"protocol": "TCP", "port": 53}, {"protocol": "UDP", "port": 53}]},
    {"to": [{"podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
             "namespaceSelector": {"matchLabels": {"kubesphere.io/namespace": "kube-system"}}}],
     "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}, {"protocol": "TCP", "port": 9153}]},
]


# --------------------------------------------------------------------------- namespaces


def test_namespace_labels_carry_name_namespace_and_workspace() -> None:
    s = scenario(ProjectSpec("shop", "ws", labels={"team": "blue"}), ProjectSpec("kube-public"))
    assert namespace_labels(s) == {
        "shop": {"kubernetes.io/metadata.name": "shop", "kubesphere.io/namespace": "shop",
                 "kubesphere.io/workspace": "ws", "team": "blue"},
        "kube-public": {"kubernetes.io/metadata.name": "kube-public", "kubesphere.io/namespace": "kube-public"},
    }


def test_reserved_labels_cannot_be_overridden_by_project_labels() -> None:
    s = scenario(ProjectSpec("shop", "ws", labels={"kubesphere.io/namespace": "other", "kubesphere.io/workspace": "x"}))
    labels = namespace_labels(s)["shop"]
    assert labels["kubesphere.io/namespace"] == "shop" and labels["kubesphere.io/workspace"] == "ws"


def test_isolation_annotation_only_on_isolated_projects() -> None:
    s = scenario(ProjectSpec("a", "ws", isolation=True), ProjectSpec("b", "ws"))
    assert namespace_annotations(s) == {"a": {"kubesphere.io/network-isolate": "enabled"}, "b": {}}


# --------------------------------------------------------------------------- nsnp-network-isolate


def test_project_isolation_admits_only_the_project() -> None:
    policies, warnings = compile_(scenario(ProjectSpec("testns", "testworkspace", isolation=True)))
    assert warnings == []
    assert policies == {"testns/nsnp-network-isolate": {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "nsnp-network-isolate", "namespace": "testns"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": [ns_peer("testns")]}]},
    }}


def test_workspace_isolation_admits_the_workspace() -> None:
    s = scenario(ProjectSpec("a", "ws"), ProjectSpec("b", "ws"), ProjectSpec("c", "other"),
                 workspaces=[WorkspaceSpec("ws", True, ("a", "b")), WorkspaceSpec("other", False, ("c",))])
    policies, warnings = compile_(s)
    assert sorted(policies) == ["a/nsnp-network-isolate", "b/nsnp-network-isolate"]
    assert policies["b/nsnp-network-isolate"]["spec"]["ingress"] == [
        {"from": [{"namespaceSelector": {"matchLabels": {"kubesphere.io/workspace": "ws"}}}]}]
    assert warnings == []


def test_project_annotation_beats_workspace_isolation() -> None:
    s = scenario(ProjectSpec("a", "ws", isolation=True), ProjectSpec("b", "ws"),
                 workspaces=[WorkspaceSpec("ws", True, ("a", "b"))])
    assert project_mode(s, "a") == "project" and project_mode(s, "b") == "workspace"
    policies, _ = compile_(s)
    assert policies["a/nsnp-network-isolate"]["spec"]["ingress"] == [{"from": [ns_peer("a")]}]


def test_allowed_ingress_namespaces_are_extra_peers_of_the_first_rule() -> None:
    # upstream test: AllowedIngressNamespaces = [kubesphere-monitoring-system], both modes
    for ws_isolation, project_isolation, first in ((True, False, {"kubesphere.io/workspace": "testworkspace"}),
                                                   (False, True, {"kubesphere.io/namespace": "testns"})):
        s = scenario(ProjectSpec("testns", "testworkspace", isolation=project_isolation),
                     workspaces=[WorkspaceSpec("testworkspace", ws_isolation, ("testns",))])
        policies, _ = compile_(s, allowed_ingress_namespaces=["kubesphere-monitoring-system"])
        assert policies["testns/nsnp-network-isolate"]["spec"]["ingress"] == [
            {"from": [{"namespaceSelector": {"matchLabels": first}}, ns_peer("kubesphere-monitoring-system")]}]


def test_snat_node_ips_become_a_second_rule_sorted_as_strings() -> None:
    policies, _ = compile_(scenario(ProjectSpec("a", "ws", isolation=True)),
                           snat_node_ips=["198.18.0.9", "198.18.0.10"])
    assert policies["a/nsnp-network-isolate"]["spec"]["ingress"][1] == {
        "from": [{"ipBlock": {"cidr": "198.18.0.10/32"}}, {"ipBlock": {"cidr": "198.18.0.9/32"}}]}


def test_no_policy_without_any_isolation() -> None:
    policies, warnings = compile_(scenario(ProjectSpec("a", "ws"), ProjectSpec("b")))
    assert policies == {} and warnings == []


# --------------------------------------------------------------------------- whitelists (convertToK8sNP)


def test_cidr_whitelist_copies_the_ip_block_and_ports() -> None:
    # upstream "test func convertToK8sNP" (ipBlock + TCP 80)
    r = rule("namespace-ipblock-np", "ingress", "cidr", "172.0.0.1/16", Port(80))
    policies, _ = compile_(scenario(ProjectSpec("testns", "ws", isolation=True, whitelist=(r,))))
    assert policies["testns/nsnp-namespace-ipblock-np"]["spec"] == {
        "podSelector": {}, "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"ipBlock": {"cidr": "172.0.0.1/16"}}], "ports": [{"protocol": "TCP", "port": 80}]}],
    }


def test_cidr_symbols_resolve_to_one_or_several_ip_blocks() -> None:
    rules = (rule("alice", "ingress", "cidr", "client:alice"), rule("nodes", "ingress", "cidr", "node:*"))
    policies, _ = compile_(scenario(ProjectSpec("a", "ws", isolation=True, whitelist=rules)))
    assert policies["a/nsnp-alice"]["spec"]["ingress"][0]["from"] == [{"ipBlock": {"cidr": "198.18.0.100/32"}}]
    assert policies["a/nsnp-nodes"]["spec"]["ingress"][0]["from"] == [
        {"ipBlock": {"cidr": "198.18.0.10/32"}}, {"ipBlock": {"cidr": "198.18.0.11/32"}}]


def test_cidr_symbol_without_addresses_is_skipped_not_opened_to_all() -> None:
    r = rule("nobody", "ingress", "cidr", "pod:x/none")
    s = scenario(ProjectSpec("a", "ws", isolation=True, whitelist=(r,)))
    policies, warnings = compile_(s)
    assert "a/nsnp-nobody" not in policies
    assert any("nobody" in w and "denotes no address" in w for w in warnings)
    assert namespace_network_policies(s, resolve_cidr) == []


def test_project_whitelist_selects_the_namespace_label() -> None:
    # upstream "convertToK8sNP with namespace"
    r = rule("testnamespace", "ingress", "project", "testns")
    policies, _ = compile_(scenario(ProjectSpec("testns2", "ws", isolation=True, whitelist=(r,))))
    assert policies["testns2/nsnp-testnamespace"]["spec"] == {
        "podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": [ns_peer("testns")]}]}


def test_ingress_service_whitelist_is_one_peer_without_service_ports() -> None:
    # upstream "convertToK8sNP with service ingress"
    r = rule("testnamespace", "ingress", "service", "testns/myservice")
    policies, _ = compile_(scenario(ProjectSpec("testns2", "ws", isolation=True, whitelist=(r,))))
    assert policies["testns2/nsnp-testnamespace"]["spec"] == {
        "podSelector": {}, "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "mylbapp"}}, **ns_peer("testns")}]}],
    }


def test_egress_service_whitelist_carries_the_service_ports() -> None:
    # upstream "convertToK8sNP with service egress": ports = the Service's port 80/TCP
    r = rule("testnamespace", "egress", "service", "testns/myservice")
    policies, warnings = compile_(scenario(ProjectSpec("testns2", "ws", isolation=True, whitelist=(r,))))
    assert policies["testns2/nsnp-testnamespace"]["spec"] == {
        "podSelector": {}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "mylbapp"}}, **ns_peer("testns")}],
                    "ports": [{"protocol": "TCP", "port": 80}]}],
    }
    assert warnings == []


def test_egress_service_whitelist_drops_the_rule_ports_with_a_warning() -> None:
    r = rule("to-db", "egress", "service", "billing/db", Port(9999))
    policies, warnings = compile_(scenario(ProjectSpec("shop", "ws", isolation=True, whitelist=(r,))))
    egress = policies["shop/nsnp-to-db"]["spec"]["egress"]
    assert egress == [{"to": [{"podSelector": {"matchLabels": {"app": "db", "tier": "data"}}, **ns_peer("billing")}],
                       "ports": [{"protocol": "TCP", "port": 5432}, {"protocol": "UDP", "port": 5433}]}]
    assert any("to-db" in w and "9999/TCP dropped" in w for w in warnings)


def test_missing_or_selectorless_service_creates_no_policy() -> None:
    SERVICES[("billing", "headless")] = ServiceSpec("headless", "billing", {}, "ClusterIP", "Cluster", (Port(80),))
    try:
        rules = (rule("ghost", "ingress", "service", "billing/ghost"),
                 rule("headless", "egress", "service", "billing/headless"))
        policies, warnings = compile_(scenario(ProjectSpec("shop", "ws", isolation=True, whitelist=rules)))
    finally:
        del SERVICES[("billing", "headless")]
    assert sorted(policies) == ["shop/nsnp-network-isolate"]
    assert any("ghost" in w and "not found" in w for w in warnings)
    assert any("headless" in w and "no selector" in w for w in warnings)
    # The NSNP still exists and has egress rules, so syncNs still adds DNS.
    assert policies["shop/nsnp-network-isolate"]["spec"]["egress"] == DNS_EGRESS


def test_policy_types_follow_go_order_egress_then_ingress() -> None:
    nsnp = {"metadata": {"name": "both", "namespace": "a"},
            "spec": {"policyTypes": ["Ingress"],  # ignored by KubeSphere
                     "ingress": [{"from": [{"namespace": {"name": "b"}}]}],
                     "egress": [{"to": [{"ipBlock": {"cidr": "203.0.113.0/24"}}]}]}}
    np = convert_to_network_policy(nsnp, service_of)
    assert np["metadata"]["name"] == "nsnp-both"
    assert np["spec"]["policyTypes"] == ["Egress", "Ingress"]


def test_egress_rule_mixing_service_and_plain_peers_splits_in_go_order() -> None:
    nsnp = {"metadata": {"name": "mix", "namespace": "a"},
            "spec": {"egress": [{"to": [{"ipBlock": {"cidr": "203.0.113.0/24"}},
                                        {"service": {"name": "myservice", "namespace": "testns"}}],
                                 "ports": [{"protocol": "TCP", "port": 443}]}]}}
    egress = convert_to_network_policy(nsnp, service_of)["spec"]["egress"]
    assert egress == [
        {"to": [{"podSelector": {"matchLabels": {"app": "mylbapp"}}, **ns_peer("testns")}],
         "ports": [{"protocol": "TCP", "port": 80}]},
        {"to": [{"ipBlock": {"cidr": "203.0.113.0/24"}}], "ports": [{"protocol": "TCP", "port": 443}]},
    ]


def test_conversion_error_on_unknown_peer() -> None:
    with pytest.raises(ConversionError):
        convert_to_network_policy({"metadata": {"name": "x", "namespace": "a"},
                                   "spec": {"ingress": [{"from": [{"podSelector": {}}]}]}}, service_of)


# --------------------------------------------------------------------------- DNS egress


def test_egress_whitelist_adds_dns_to_the_isolation_policy() -> None:
    r = rule("out", "egress", "cidr", "203.0.113.0/24", Port(443))
    policies, _ = compile_(scenario(ProjectSpec("a", "ws", isolation=True, whitelist=(r,))))
    spec = policies["a/nsnp-network-isolate"]["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["egress"] == DNS_EGRESS


def test_ingress_only_whitelist_leaves_egress_unrestricted() -> None:
    r = rule("in", "ingress", "project", "b")
    policies, _ = compile_(scenario(ProjectSpec("a", "ws", isolation=True, whitelist=(r,))))
    spec = policies["a/nsnp-network-isolate"]["spec"]
    assert spec["policyTypes"] == ["Ingress"] and "egress" not in spec


def test_dns_service_may_be_given_as_topology_service_info() -> None:
    info = ServiceInfo("kube-system", "coredns", "ClusterIP", "Cluster", {"k8s-app": "kube-dns"},
                       (ServicePortInfo(Port(53, "UDP"), None),), "198.19.0.10", ())
    policy, warnings = isolation_policy("a", "ws", "project", dns=info, add_dns=True)
    assert warnings == []
    assert policy["spec"]["egress"][1]["ports"] == [{"protocol": "UDP", "port": 53}]


def test_missing_dns_service_keeps_only_the_node_local_rule() -> None:
    r = rule("out", "egress", "cidr", "203.0.113.0/24")
    policies, warnings = compile_(scenario(ProjectSpec("a", "ws", isolation=True, whitelist=(r,))), dns=None)
    assert policies["a/nsnp-network-isolate"]["spec"]["egress"] == DNS_EGRESS[:1]
    assert any("DNS Service" in w for w in warnings)
    _, warnings = isolation_policy("a", "ws", "project", dns=DnsService(selector={}), add_dns=True)
    assert warnings


def test_default_dns_service_is_kubeadm_coredns() -> None:
    assert (KUBE_DNS.name, KUBE_DNS.namespace, dict(KUBE_DNS.selector)) == ("kube-dns", "kube-system",
                                                                           {"k8s-app": "kube-dns"})


# --------------------------------------------------------------------------- syncNs deletions and skips


def test_workspace_mode_deletes_whitelists_with_a_warning() -> None:
    r = rule("from-gw", "ingress", "project", "kubesphere-controls-system")
    s = scenario(ProjectSpec("shop", "ws", whitelist=(r,)), workspaces=[WorkspaceSpec("ws", True, ("shop",))])
    policies, warnings = compile_(s)
    assert sorted(policies) == ["shop/nsnp-network-isolate"]
    assert len(warnings) == 1 and "from-gw" in warnings[0] and "workspace isolation of ws" in warnings[0]
    assert namespace_network_policies(s, resolve_cidr) == []
    assert [o["metadata"]["name"] for o in namespace_network_policies(s, resolve_cidr, include_deleted=True)] == [
        "from-gw"]


def test_workspace_mode_adds_no_dns_for_deleted_egress_rules() -> None:
    r = rule("out", "egress", "cidr", "203.0.113.0/24")
    s = scenario(ProjectSpec("shop", "ws", whitelist=(r,)), workspaces=[WorkspaceSpec("ws", True, ("shop",))])
    policies, _ = compile_(s)
    assert "egress" not in policies["shop/nsnp-network-isolate"]["spec"]


def test_unisolated_project_in_a_workspace_loses_its_whitelists() -> None:
    r = rule("out", "egress", "cidr", "203.0.113.0/24")
    s = scenario(ProjectSpec("lab", "ws", whitelist=(r,)))
    assert project_mode(s, "lab") == "open"
    policies, warnings = compile_(s)
    assert policies == {}
    assert len(warnings) == 1 and "not isolated" in warnings[0]


def test_project_outside_workspaces_is_ignored_by_sync_ns() -> None:
    r = rule("out", "egress", "cidr", "203.0.113.0/24")
    s = scenario(ProjectSpec("loose", None, isolation=True, whitelist=(r,)))
    assert project_mode(s, "loose") == "unmanaged"
    policies, warnings = compile_(s)
    assert sorted(policies) == ["loose/nsnp-out"]  # syncNSNP converts it; no nsnp-network-isolate
    assert any("isolation has no effect" in w for w in warnings)
    assert any("DNS from this project is blocked" in w for w in warnings)


def test_project_whose_workspace_does_not_exist_is_ignored() -> None:
    s = Scenario("t", "", ClusterSpec(), (), (ProjectSpec("a", "ghost-ws", isolation=True),), (), (), (), (), ())
    assert project_mode(s, "a") == "unmanaged"
    assert compile_(s)[0] == {}


def test_nsnp_objects_as_the_console_creates_them() -> None:
    rules = (rule("cidr", "ingress", "cidr", "client:alice", Port(8080)),
             rule("svc", "egress", "service", "billing/db"))
    objs = namespace_network_policies(scenario(ProjectSpec("shop", "ws", isolation=True, whitelist=rules)),
                                      resolve_cidr)
    assert objs == [
        {"apiVersion": "network.kubesphere.io/v1alpha1", "kind": "NamespaceNetworkPolicy",
         "metadata": {"name": "cidr", "namespace": "shop"},
         "spec": {"ingress": [{"from": [{"ipBlock": {"cidr": "198.18.0.100/32"}}],
                               "ports": [{"protocol": "TCP", "port": 8080}]}]}},
        {"apiVersion": "network.kubesphere.io/v1alpha1", "kind": "NamespaceNetworkPolicy",
         "metadata": {"name": "svc", "namespace": "shop"},
         "spec": {"egress": [{"to": [{"service": {"name": "db", "namespace": "billing"}}]}]}},
    ]


def test_bad_rules_are_programming_errors() -> None:
    for bad in (rule("x", "sideways", "project", "b"), rule("x", "ingress", "pod", "b"),
                rule("x", "ingress", "service", "no-slash")):
        with pytest.raises(ValueError):
            compile_tenancy(scenario(ProjectSpec("a", "ws", isolation=True, whitelist=(bad,))), resolve_cidr,
                            service_of)


DECLARED_DNS = """
name: dns-declared
workspaces:
  - name: ws
    projects:
      - name: demo
        isolation: true
        whitelist:
          - {direction: egress, peer: {cidr: 203.0.113.0/24}}
projects:
  - name: kube-system
workloads:
  - {name: web, project: demo, nodes: [worker]}
  - {name: dns, project: kube-system, nodes: [worker], labels: {k8s-app: %s}, ports: [53/UDP, 53/TCP]}
services:
  - {name: %s, project: kube-system, selector: {k8s-app: %s}, ports: [53/UDP, 53/TCP]}
"""


@pytest.mark.parametrize("service", ["kube-dns", "coredns"])
def test_isolation_dns_rule_is_built_from_the_declared_dns_service(service: str) -> None:
    """KubeSphere's generateDNSServiceRule reads the Service that exists (kube-dns, else coredns)."""
    from netiso.model.addressing import resolve
    from netiso.model.loader import loads

    topo = resolve(loads(DECLARED_DNS % ("my-dns", service, "my-dns"))[0])
    policy = next(p for p in topo.policies if p["metadata"]["name"] == "nsnp-network-isolate"
                  and p["metadata"]["namespace"] == "demo")
    dns_rule = policy["spec"]["egress"][-1]
    assert dns_rule["to"] == [{"podSelector": {"matchLabels": {"k8s-app": "my-dns"}},
                               "namespaceSelector": {"matchLabels": {"kubesphere.io/namespace": "kube-system"}}}]
    assert dns_rule["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]  # no 9153
    assert topo.dns_service is not None and topo.dns_service.key == f"kube-system/{service}"
