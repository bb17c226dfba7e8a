"""Each problem ``validate_network_policy`` reports, with its path and an actionable message."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from netiso.model.netpol_validate import validate_network_policy

VALID: dict[str, Any] = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "NetworkPolicy",
    "metadata": {"name": "web-policy", "namespace": "shop", "labels": {"team": "a"}},
    "spec": {
        "podSelector": {
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["front", "edge"]},
                {"key": "example.com/canary", "operator": "DoesNotExist"},
            ],
        },
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [
            {
                "from": [
                    {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ops"}}},
                    {"namespaceSelector": {}, "podSelector": {"matchLabels": {"role": "probe"}}},
                    {"ipBlock": {"cidr": "203.0.113.0/24", "except": ["203.0.113.128/25"]}},
                ],
                "ports": [{"port": 8080}, {"port": "http", "protocol": "TCP"}, {"port": 9000, "endPort": 9010}],
            },
            {},
        ],
        "egress": [{"to": [{"ipBlock": {"cidr": "198.18.0.0/15"}}], "ports": [{"protocol": "SCTP"}]}],
    },
}


def variant(path: str, value: Any, delete: bool = False) -> dict[str, Any]:
    """VALID with one field (a dotted path, list indexes as numbers) replaced or deleted."""
    doc = copy.deepcopy(VALID)
    *parents, last = path.split(".")
    node: Any = doc
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    key: Any = int(last) if last.isdigit() else last
    if delete:
        del node[key]
    else:
        node[key] = value
    return doc


def test_valid_policy_has_no_problems() -> None:
    assert validate_network_policy(VALID) == []


def test_minimal_policy_is_valid() -> None:
    doc = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "d", "namespace": "x"}}
    assert validate_network_policy({**doc, "spec": {"podSelector": {}}}) == []
    assert validate_network_policy({**doc, "spec": {}}) == []


PROBLEMS: list[tuple[dict[str, Any], tuple[str, str]]] = [
    (
        variant("metadata.namespace", None, delete=True),
        ("metadata.namespace", "required: a raw NetworkPolicy must name its namespace"),
    ),
    (
        variant("spec.ingress.0.from.2.ipBlock.cidr", "10.0.0.0/33"),
        (
            "spec.ingress[0].from[2].ipBlock.cidr",
            "'10.0.0.0/33' is not a CIDR (address/prefix, e.g. 203.0.113.0/24)",
        ),
    ),
    (
        variant("spec.ingress.0.from.2.ipBlock.cidr", "10.0.0.1"),
        ("spec.ingress[0].from[2].ipBlock.cidr", "'10.0.0.1' is not a CIDR (address/prefix, e.g. 203.0.113.0/24)"),
    ),
    (
        variant("spec.ingress.0.ports.0.protocol", "ICMP"),
        ("spec.ingress[0].ports[0].protocol", "'ICMP' is not one of TCP, UDP, SCTP"),
    ),
    (
        variant("spec.ingress.0.ports.0.protocol", "tcp"),
        ("spec.ingress[0].ports[0].protocol", "'tcp' is not one of TCP, UDP, SCTP"),
    ),
    (
        variant("spec.podSelector.matchExpressions.0.operator", "Like"),
        (
            "spec.podSelector.matchExpressions[0].operator",
            "'Like' is not one of In, NotIn, Exists, DoesNotExist",
        ),
    ),
    (
        variant("spec.podSelector.matchExpressions.0.values", []),
        ("spec.podSelector.matchExpressions[0].values", "required: In needs at least one value"),
    ),
    (
        variant("spec.podSelector.matchExpressions.1.values", ["x"]),
        ("spec.podSelector.matchExpressions[1].values", "must be empty: DoesNotExist tests only the key"),
    ),
    (
        variant("spec.podSelector.matchExpressions.0.key", None, delete=True),
        ("spec.podSelector.matchExpressions[0].key", "required: the label key the expression tests"),
    ),
    (
        variant("spec.ingress.0.ports.2.endPort", 8999),
        ("spec.ingress[0].ports[2].endPort", "8999 is below port 9000: endPort must be >= port"),
    ),
    (
        variant("spec.ingress.0.ports.2.endPort", 70000),
        ("spec.ingress[0].ports[2].endPort", "70000 is not a port number (1-65535)"),
    ),
    (
        variant("spec.ingress.0.ports.2.port", None, delete=True),
        ("spec.ingress[0].ports[2].endPort", "requires a numeric port: endPort ends the range port..endPort"),
    ),
    (
        variant("spec.ingress.0.ports.1.endPort", 81),
        ("spec.ingress[0].ports[1].endPort", "requires a numeric port, not the named port 'http'"),
    ),
    (
        variant("spec.ingress.0.ports.0.port", 0),
        ("spec.ingress[0].ports[0].port", "0 is not a port number (1-65535)"),
    ),
    (
        variant("spec.ingress.0.ports.0.port", "8080"),
        ("spec.ingress[0].ports[0].port", "'8080' is a string: write 8080 unquoted for a port number"),
    ),
    (
        variant("spec.ingress.0.ports.0.port", "Web_Port"),
        (
            "spec.ingress[0].ports[0].port",
            "'Web_Port' is not a port name (1-15 lower-case a-z, 0-9, '-', one letter)",
        ),
    ),
    (
        variant("spec.ingress.0.ports.0.port", True),
        ("spec.ingress[0].ports[0].port", "must be a port number or a port name, got a boolean"),
    ),
    (
        variant("spec.ingress.0.from.2.ipBlock.except", ["198.18.0.0/24"]),
        (
            "spec.ingress[0].from[2].ipBlock.except[0]",
            "'198.18.0.0/24' is not a strict subset of cidr '203.0.113.0/24'",
        ),
    ),
    (
        variant("spec.ingress.0.from.2.ipBlock.except", ["203.0.113.0/24"]),
        (
            "spec.ingress[0].from[2].ipBlock.except[0]",
            "'203.0.113.0/24' is not a strict subset of cidr '203.0.113.0/24'",
        ),
    ),
    (
        variant("spec.ingress.0.from.2.ipBlock.except", ["2001:db8::/64"]),
        (
            "spec.ingress[0].from[2].ipBlock.except[0]",
            "'2001:db8::/64' is not a strict subset of cidr '203.0.113.0/24'",
        ),
    ),
    (
        variant("spec.ingress.0.from.2.ipBlock.cidr", None, delete=True),
        ("spec.ingress[0].from[2].ipBlock.cidr", "required: an ipBlock needs a cidr such as 203.0.113.0/24"),
    ),
    (
        variant("apiVersion", "extensions/v1beta1"),
        ("apiVersion", "'extensions/v1beta1' is not 'networking.k8s.io/v1'"),
    ),
    (variant("kind", "NamespaceNetworkPolicy"), ("kind", "'NamespaceNetworkPolicy' is not 'NetworkPolicy'")),
    (
        variant("spec.policyTypes", ["Ingress", "Egres"]),
        ("spec.policyTypes[1]", "'Egres' is not one of Ingress, Egress"),
    ),
    (variant("spec.policyTypes", ["Ingress", "Ingress"]), ("spec.policyTypes", "lists a type twice")),
    (
        variant("spec.policyTypes", ["Ingress", "Egress", "Ingress"]),
        ("spec.policyTypes", "may not list more than Ingress and Egress"),
    ),
    (variant("spec.policyTypes", "Ingress"), ("spec.policyTypes", "must be a list, got a string")),
    (variant("spec.ingress", {"from": []}), ("spec.ingress", "must be a list, got a mapping")),
    (
        variant("spec.ingress.0.from.0", {}),
        ("spec.ingress[0].from[0]", "a peer needs podSelector, namespaceSelector (or both) or ipBlock"),
    ),
    (
        variant("spec.ingress.0.from.2.podSelector", {}),
        ("spec.ingress[0].from[2]", "ipBlock cannot be combined with podSelector/namespaceSelector in one peer"),
    ),
    (
        variant("spec.podSelector.matchLabels", {"app": 5}),
        ("spec.podSelector.matchLabels.app", "label values are strings, got a number (quote it)"),
    ),
    (
        variant("spec.podSelector.matchLabels", {"app": "-web"}),
        ("spec.podSelector.matchLabels.app", "'-web' is not a label value (a-z0-9-_. max 63, alphanumeric ends)"),
    ),
    (
        variant("spec.podSelector.matchLabels", {"bad key": "x"}),
        (
            "spec.podSelector.matchLabels.bad key",
            "'bad key' is not a label key ([prefix/]name, name: a-z0-9-_. max 63)",
        ),
    ),
    (
        variant("metadata.name", "Web_Policy"),
        ("metadata.name", "'Web_Policy' is not a DNS subdomain (lower-case a-z, 0-9, '-', '.')"),
    ),
    (
        variant("metadata.namespace", "Shop"),
        ("metadata.namespace", "'Shop' is not a DNS label (lower-case a-z, 0-9, '-', max 63)"),
    ),
    (variant("metadata.name", None, delete=True), ("metadata.name", "required: every NetworkPolicy needs a name")),
    (
        variant("spec", None, delete=True),
        ("spec", "required: a NetworkPolicy needs a spec (at least podSelector: {})"),
    ),
    (variant("spec", []), ("spec", "must be a mapping, got a list")),
]


@pytest.mark.parametrize(("doc", "expected"), PROBLEMS, ids=[path or "<doc>" for _, (path, _) in PROBLEMS])
def test_each_problem_is_reported_alone(doc: dict[str, Any], expected: tuple[str, str]) -> None:
    assert validate_network_policy(doc) == [expected]


UNKNOWN: list[tuple[dict[str, Any], tuple[str, str]]] = [
    (variant("status", {}), ("status", "unknown field (allowed: apiVersion, kind, metadata, spec)")),
    (variant("metadata.namepsace", "x"), ("metadata.namepsace", "unknown field, did you mean 'namespace'?")),
    (variant("spec.ingres", []), ("spec.ingres", "unknown field, did you mean 'ingress'?")),
    (variant("spec.ingress.0.form", []), ("spec.ingress[0].form", "unknown field, did you mean 'from'?")),
    (variant("spec.ingress.0.to", []), ("spec.ingress[0].to", "ingress rules take 'from', not 'to'")),
    (variant("spec.egress.0.from", []), ("spec.egress[0].from", "egress rules take 'to', not 'from'")),
    (
        variant("spec.ingress.0.from.0.namespace", "ops"),
        ("spec.ingress[0].from[0].namespace", "unknown field, did you mean 'namespaceSelector'?"),
    ),
    (
        variant("spec.ingress.0.from.2.ipBlock.exceptions", []),
        ("spec.ingress[0].from[2].ipBlock.exceptions", "unknown field, did you mean 'except'?"),
    ),
    (
        variant("spec.ingress.0.ports.0.targetPort", 80),
        ("spec.ingress[0].ports[0].targetPort", "unknown field (allowed: protocol, port, endPort)"),
    ),
    (
        variant("spec.podSelector.matchLabel", {}),
        ("spec.podSelector.matchLabel", "unknown field, did you mean 'matchLabels'?"),
    ),
    (
        variant("spec.podSelector.matchExpressions.0.value", ["a"]),
        ("spec.podSelector.matchExpressions[0].value", "unknown field, did you mean 'values'?"),
    ),
]


@pytest.mark.parametrize(("doc", "expected"), UNKNOWN, ids=[path for _, (path, _) in UNKNOWN])
def test_unknown_fields_are_reported_with_a_suggestion(doc: dict[str, Any], expected: tuple[str, str]) -> None:
    assert validate_network_policy(doc) == [expected]


def test_several_problems_are_all_reported_in_document_order() -> None:
    doc = variant("spec.ingress.0.ports.0.protocol", "ICMP")
    doc["spec"]["ingress"][0]["from"][2]["ipBlock"]["cidr"] = "10.0.0.0/33"
    del doc["metadata"]["namespace"]
    assert [path for path, _ in validate_network_policy(doc)] == [
        "metadata.namespace",
        "spec.ingress[0].ports[0].protocol",
        "spec.ingress[0].from[2].ipBlock.cidr",
    ]


@pytest.mark.parametrize("doc", [None, [], "NetworkPolicy"])
def test_a_document_that_is_not_a_mapping(doc: Any) -> None:
    problems = validate_network_policy(doc)
    assert len(problems) == 1 and problems[0][0] == "" and "must be a mapping" in problems[0][1]
