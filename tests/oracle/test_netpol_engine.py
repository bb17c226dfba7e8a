"""Focused tests of the NetworkPolicy engine: defaults, peers, ports, and the explanations."""

from __future__ import annotations

from typing import Any

import pytest

from netiso.model.types import PodInfo, Port
from netiso.oracle.netpol import Decision, PolicyEngine, describe_port, effective_policy_types, ip_in_block

WEB = PodInfo("shop", "web", "worker", "100.64.1.5", {"app": "web"}, (Port(8080, "TCP", "http"),))
DB = PodInfo("shop", "db", "worker2", "100.64.2.7", {"app": "db"}, (Port(5432, "TCP", "pg"), Port(53, "UDP", "dns")))
ADMIN = PodInfo("ops", "admin", "worker", "100.64.1.9", {"app": "admin"}, (Port(8080),))
NAMESPACES = {
    "shop": {"kubesphere.io/namespace": "shop", "kubesphere.io/workspace": "ws"},
    "ops": {"kubesphere.io/namespace": "ops"},
}
SYMBOLS = {"100.64.2.0": "tunnel:worker2", "203.0.113.10": "client:alice", "100.64.1.9": "pod:ops/admin@worker"}
CLIENT = "203.0.113.10"
TUNNEL = "100.64.2.0"


def policy(name: str, spec: dict[str, Any], ns: str = "shop") -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


def isolate(ns: str = "shop", extra_peers: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    """The policy KubeSphere generates for project isolation."""
    peers = [{"namespaceSelector": {"matchLabels": {"kubesphere.io/namespace": ns}}}, *extra_peers]
    spec = {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": peers}]}
    return policy("nsnp-network-isolate", spec, ns)


def engine(*policies: dict[str, Any], describe: bool = True) -> PolicyEngine:
    return PolicyEngine(list(policies), NAMESPACES, (lambda ip: SYMBOLS.get(ip, ip)) if describe else None)


# --------------------------------------------------------------------------- reasons


def test_unselected_pod_is_not_isolated_and_says_so() -> None:
    d = engine(isolate("ops")).ingress(WEB, CLIENT, None, 8080, "TCP")
    assert d == Decision(True, False, (), None, "no policy selects pod:shop/web@worker for ingress: allowed")


def test_denial_names_policy_namespace_and_symbol() -> None:
    d = engine(isolate()).ingress(WEB, TUNNEL, None, 8080, "TCP")
    assert not d.allowed and d.isolated
    assert d.policies == ("shop/nsnp-network-isolate",)
    assert d.admitted_by is None
    assert d.reason == "nsnp-network-isolate in shop does not admit tunnel:worker2 (100.64.2.0) on 8080/TCP"


def test_denial_by_several_policies_names_them_all() -> None:
    other = policy("allow-db", {"podSelector": {}, "ingress": [{"ports": [{"port": 5432}]}]})
    d = engine(isolate(), other).ingress(WEB, CLIENT, None, 8080, "TCP")
    assert d.policies == ("shop/nsnp-network-isolate", "shop/allow-db")
    assert d.reason.startswith("nsnp-network-isolate, allow-db in shop do not admit client:alice (203.0.113.10)")


def test_admitted_by_names_rule_and_peer() -> None:
    client_block = {"ipBlock": {"cidr": "203.0.113.0/24"}}
    e = engine(isolate(extra_peers=(client_block,)))
    by_pod = e.ingress(WEB, DB.ip, DB, 8080, "TCP")
    assert by_pod.allowed and by_pod.admitted_by == "shop/nsnp-network-isolate ingress[0] from[0]"
    by_ip = e.ingress(WEB, CLIENT, None, 8080, "TCP")
    assert by_ip.admitted_by == "shop/nsnp-network-isolate ingress[0] from[1]"
    assert by_ip.reason == "shop/nsnp-network-isolate ingress[0] from[1] admits client:alice (203.0.113.10) on 8080/TCP"


def test_rule_without_peers_is_admitted_by_the_rule() -> None:
    p = policy("web-port", {"podSelector": {}, "ingress": [{"ports": [{"port": 9090}]}, {"ports": [{"port": 8080}]}]})
    d = engine(p).ingress(WEB, CLIENT, None, 8080, "TCP")
    assert d.admitted_by == "shop/web-port ingress[1]"


def test_default_description_is_pod_symbol_or_ip() -> None:
    e = engine(isolate(), describe=False)
    assert "pod:ops/admin@worker (100.64.1.9)" in e.ingress(WEB, ADMIN.ip, ADMIN, 8080, "TCP").reason
    assert "does not admit 203.0.113.10 on 8080/TCP" in e.ingress(WEB, CLIENT, None, 8080, "TCP").reason


def test_egress_reason_names_source_and_destination() -> None:
    p = policy("no-egress", {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"]})
    d = engine(p).egress(WEB, CLIENT, None, 443, "TCP")
    assert d.reason == "no-egress in shop does not let pod:shop/web@worker reach client:alice (203.0.113.10) on 443/TCP"
    assert d.notes == ("shop/no-egress has no egress rules: it admits nothing",)


def test_notes_say_why_each_rule_missed() -> None:
    rules = [
        {"from": [{"podSelector": {"matchLabels": {"app": "db"}}}], "ports": [{"port": 9090}]},
        {"from": [{"ipBlock": {"cidr": "198.18.0.0/24"}}]},
        {"ports": [{"port": 22}]},
    ]
    d = engine(policy("p", {"podSelector": {}, "ingress": rules})).ingress(WEB, DB.ip, DB, 8080, "TCP")
    assert not d.allowed
    assert d.notes == (
        "shop/p ingress[0]: peer matches but the port is not in [9090/TCP]",
        "shop/p ingress[1]: port matches but pod:shop/db@worker2 (100.64.2.7) on 8080/TCP is not among "
        "[ipBlock 198.18.0.0/24]",
        "shop/p ingress[2]: peer matches but the port is not in [22/TCP]",
    )


# --------------------------------------------------------------------------- policy types and rules


def test_policy_types_defaults() -> None:
    assert effective_policy_types({}) == ("Ingress",)
    assert effective_policy_types({"egress": [{}]}) == ("Ingress", "Egress")
    assert effective_policy_types({"egress": []}) == ("Ingress",)
    assert effective_policy_types({"policyTypes": ["Egress"]}) == ("Egress",)


def test_egress_rules_without_policy_types_also_isolate_ingress() -> None:
    """Defaulting adds Ingress to every policy without policyTypes: with no ingress rules it denies."""
    p = policy("egress-only-by-mistake", {"podSelector": {}, "egress": [{}]})
    e = engine(p)
    assert e.egress(WEB, CLIENT, None, 443, "TCP").allowed
    assert e.egress(WEB, CLIENT, None, 443, "TCP").isolated
    assert not e.ingress(WEB, CLIENT, None, 8080, "TCP").allowed


def test_empty_egress_without_policy_types_does_not_isolate_egress() -> None:
    d = engine(policy("p", {"podSelector": {}, "egress": []})).egress(WEB, CLIENT, None, 443, "TCP")
    assert d.allowed and not d.isolated


def test_explicit_egress_type_ignores_ingress_rules() -> None:
    p = policy("p", {"podSelector": {}, "policyTypes": ["Egress"], "ingress": [], "egress": [{}]})
    d = engine(p).ingress(WEB, CLIENT, None, 8080, "TCP")
    assert d.allowed and not d.isolated


@pytest.mark.parametrize("spec", [{"policyTypes": ["Ingress"]}, {"ingress": []}, {}])
def test_missing_or_empty_ingress_denies_all(spec: dict[str, Any]) -> None:
    d = engine(policy("deny", {"podSelector": {}, **spec})).ingress(WEB, DB.ip, DB, 8080, "TCP")
    assert not d.allowed and d.isolated


def test_ingress_with_one_empty_rule_allows_all() -> None:
    d = engine(policy("allow", {"podSelector": {}, "ingress": [{}]})).ingress(WEB, CLIENT, None, 1, "SCTP")
    assert d.allowed and d.admitted_by == "shop/allow ingress[0]"


def test_missing_pod_selector_selects_every_pod_of_its_namespace_only() -> None:
    e = engine(policy("deny", {"ingress": []}))
    assert e.selecting(WEB, "ingress") == ("shop/deny",)
    assert e.selecting(ADMIN, "ingress") == ()
    assert e.selecting(WEB, "egress") == ()


def test_pod_selector_limits_selection() -> None:
    e = engine(policy("db-only", {"podSelector": {"matchLabels": {"app": "db"}}, "ingress": []}))
    assert e.ingress(WEB, CLIENT, None, 8080, "TCP").allowed
    assert not e.ingress(DB, CLIENT, None, 5432, "TCP").allowed


def test_policy_without_namespace_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"metadata\.namespace"):
        PolicyEngine([{"metadata": {"name": "p"}, "spec": {}}], {})


# --------------------------------------------------------------------------- peers


def test_non_pod_source_is_never_matched_by_selectors() -> None:
    every_pod = [
        {"from": [{"namespaceSelector": {}}, {"podSelector": {}}, {"namespaceSelector": {}, "podSelector": {}}]}
    ]
    e = engine(policy("all-pods", {"podSelector": {}, "ingress": every_pod}))
    assert e.ingress(WEB, ADMIN.ip, ADMIN, 8080, "TCP").allowed
    assert not e.ingress(WEB, CLIENT, None, 8080, "TCP").allowed
    # the same address presented as a pod would match: the caller decides what the policy sees
    assert not e.ingress(WEB, ADMIN.ip, None, 8080, "TCP").allowed


def test_pod_source_is_matched_by_ip_block_calico_style() -> None:
    p = policy("by-ip", {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "100.64.1.9/32"}}]}]})
    assert engine(p).ingress(WEB, ADMIN.ip, ADMIN, 8080, "TCP").allowed


def test_ip_block_except() -> None:
    block = {"cidr": "203.0.113.0/24", "except": ["203.0.113.128/25"]}
    e = engine(policy("clients", {"podSelector": {}, "ingress": [{"from": [{"ipBlock": block}]}]}))
    assert e.ingress(WEB, "203.0.113.10", None, 8080, "TCP").allowed
    assert not e.ingress(WEB, "203.0.113.200", None, 8080, "TCP").allowed
    assert not e.ingress(WEB, "198.18.0.1", None, 8080, "TCP").allowed
    assert not ip_in_block("2001:db8::1", block)  # another family never matches


def test_pod_selector_alone_means_policy_namespace() -> None:
    same_labels = PodInfo("ops", "web", "worker", "100.64.1.20", {"app": "web"}, ())
    peer = [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}]
    e = engine(policy("web-peers", {"podSelector": {"matchLabels": {"app": "db"}}, "ingress": peer}))
    assert e.ingress(DB, WEB.ip, WEB, 5432, "TCP").allowed
    assert not e.ingress(DB, same_labels.ip, same_labels, 5432, "TCP").allowed


def test_namespace_and_pod_selector_in_one_peer_is_and() -> None:
    peer = {
        "namespaceSelector": {"matchLabels": {"kubesphere.io/namespace": "ops"}},
        "podSelector": {"matchLabels": {"app": "web"}},
    }
    e = engine(policy("p", {"podSelector": {}, "ingress": [{"from": [peer]}]}))
    assert not e.ingress(DB, WEB.ip, WEB, 5432, "TCP").allowed  # pod matches, namespace does not
    assert not e.ingress(DB, ADMIN.ip, ADMIN, 5432, "TCP").allowed  # namespace matches, pod does not


def test_namespace_metadata_name_label_is_implied() -> None:
    peer = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ops"}}}
    e = engine(policy("p", {"podSelector": {}, "ingress": [{"from": [peer]}]}))
    assert e.ingress(WEB, ADMIN.ip, ADMIN, 8080, "TCP").allowed
    assert e.namespace_labels("ghost") == {"kubernetes.io/metadata.name": "ghost"}


def test_empty_peer_selects_nothing() -> None:
    d = engine(policy("p", {"podSelector": {}, "ingress": [{"from": [{}]}]})).ingress(WEB, DB.ip, DB, 8080, "TCP")
    assert not d.allowed
    assert "empty peer (selects nothing)" in d.notes[0]


# --------------------------------------------------------------------------- ports


def test_named_port_ingress_resolves_against_destination_pod() -> None:
    e = engine(policy("http", {"podSelector": {}, "ingress": [{"ports": [{"port": "http"}]}]}))
    assert e.ingress(WEB, CLIENT, None, 8080, "TCP").allowed
    assert not e.ingress(WEB, CLIENT, None, 9090, "TCP").allowed
    assert not e.ingress(DB, CLIENT, None, 8080, "TCP").allowed  # db has no port named http


def test_named_port_must_match_protocol() -> None:
    e = engine(policy("dns", {"podSelector": {}, "ingress": [{"ports": [{"port": "dns", "protocol": "UDP"}]}]}))
    assert e.ingress(DB, CLIENT, None, 53, "UDP").allowed
    assert not e.ingress(DB, CLIENT, None, 53, "TCP").allowed
    tcp_rule = engine(policy("dns", {"podSelector": {}, "ingress": [{"ports": [{"port": "dns"}]}]}))
    assert not tcp_rule.ingress(DB, CLIENT, None, 53, "UDP").allowed  # rule protocol defaults to TCP


def test_named_port_egress_needs_a_destination_pod() -> None:
    e = engine(policy("to-pg", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"ports": [{"port": "pg"}]}]}))
    assert e.egress(WEB, DB.ip, DB, 5432, "TCP").allowed
    assert not e.egress(WEB, DB.ip, None, 5432, "TCP").allowed
    assert not e.egress(WEB, ADMIN.ip, ADMIN, 5432, "TCP").allowed


@pytest.mark.parametrize(("port", "ok"), [(8079, False), (8080, True), (8085, True), (8090, True), (8091, False)])
def test_end_port_range_is_inclusive(port: int, ok: bool) -> None:
    e = engine(policy("range", {"podSelector": {}, "ingress": [{"ports": [{"port": 8080, "endPort": 8090}]}]}))
    assert e.ingress(WEB, CLIENT, None, port, "TCP").allowed is ok


@pytest.mark.parametrize(("protocol", "ok"), [("TCP", False), ("UDP", True), ("udp", True), ("SCTP", False)])
def test_protocol_only_port_entry(protocol: str, ok: bool) -> None:
    e = engine(policy("udp", {"podSelector": {}, "ingress": [{"ports": [{"protocol": "UDP"}]}]}))
    assert e.ingress(WEB, CLIENT, None, 4242, protocol).allowed is ok


def test_describe_port_forms() -> None:
    assert [
        describe_port(e) for e in ({"port": 80}, {"port": "http", "protocol": "SCTP"}, {"port": 80, "endPort": 80})
    ] == [
        "80/TCP",
        "http/SCTP",
        "80/TCP",
    ]


# --------------------------------------------------------------------------- connections


def test_connection_combines_egress_and_ingress() -> None:
    deny_egress = policy(
        "no-egress", {"podSelector": {"matchLabels": {"app": "admin"}}, "policyTypes": ["Egress"]}, "ops"
    )
    e = engine(isolate(), deny_egress)
    from_client = e.connection(CLIENT, None, WEB.ip, WEB, 8080, "TCP")
    assert from_client.egress is None and from_client.ingress is not None
    assert not from_client.allowed
    assert from_client.reason == from_client.ingress.reason
    to_outside = e.connection(WEB.ip, WEB, CLIENT, None, 443, "TCP")
    assert to_outside.ingress is None and to_outside.allowed
    admin = e.connection(ADMIN.ip, ADMIN, WEB.ip, WEB, 8080, "TCP")
    assert not admin.allowed
    assert admin.reason.startswith("no-egress in ops does not let pod:ops/admin@worker reach")
    assert "; nsnp-network-isolate in shop does not admit" in admin.reason
    inside = e.connection(DB.ip, DB, WEB.ip, WEB, 8080, "TCP")
    assert inside.allowed
    assert inside.reason.endswith(
        "shop/nsnp-network-isolate ingress[0] from[0] admits pod:shop/db@worker2 (100.64.2.7) on 8080/TCP"
    )
