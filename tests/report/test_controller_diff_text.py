"""The plain-text form of a ``controllerDiff`` entry (a failing suite test's message): what differs,
where, compared order-free as the diff itself compares (netiso/report/controller_diff.py)."""

from __future__ import annotations

import doctest

import netiso.report.controller_diff as controller_diff
from netiso.report.controller_diff import differences, text_lines

RULE = {"from": [{"namespaceSelector": {"matchLabels": {"kubesphere.io/namespace": "nx-frontend"}}}],
        "ports": [{"protocol": "TCP", "port": 8080}]}


def test_the_docstring_example_holds() -> None:
    result = doctest.testmod(controller_diff)
    assert result.attempted > 0 and result.failed == 0


def test_a_reordered_list_is_no_difference_a_changed_port_is_named_at_its_place() -> None:
    two = {"policyTypes": ["Ingress", "Egress"], "ingress": [RULE]}
    assert differences(two, {"policyTypes": ["Egress", "Ingress"], "ingress": [RULE]}) == []
    other = {**two, "ingress": [{**RULE, "ports": [{"protocol": "TCP", "port": 9090}]}]}
    assert differences(two, other) == ["spec.ingress[0].ports[0].port: netiso's compiler has 8080, "
                                       "KubeSphere's controller 9090"]


def test_a_key_only_one_side_has_and_a_missing_policy() -> None:
    assert differences({"ingress": [RULE]}, {"ingress": [RULE], "egress": [{}]}) == [
        "spec.egress: only KubeSphere's controller has [{}]"]
    assert differences({"ingress": [RULE]}, None) == ["spec: only netiso's compiler has the policy"]
    assert differences(None, {"ingress": [RULE]}) == ["spec: only KubeSphere's controller has the policy"]


def test_text_lines_name_the_policy_the_status_what_differs_and_both_specs() -> None:
    lines = text_lines({"project": "shop", "policy": "nsnp-x", "status": "missing", "expected": {"ingress": [RULE]},
                        "actual": None})
    assert lines[0] == "shop/nsnp-x: expected, not written by the controller"
    assert lines[1] == "  ✗ spec: only netiso's compiler has the policy"
    assert "  KubeSphere's controller (actual):" in lines and "    (none)" in lines
    assert any(line.strip() == "port: 8080" and line.startswith("    ") for line in lines)  # the spec, indented
