"""decidedBy: one vocabulary for the oracle and the lab's rule comments, and the judge's reason check."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from netiso.backends.lab import calico, kubeproxy, portmap
from netiso.backends.lab.iptables import merge, render_restore
from netiso.model.addressing import load_topologies
from netiso.model.types import Topology
from netiso.oracle.decided import MAX_COMMENT, Decision, from_comment, parse, service_port_subject, summarize
from netiso.oracle.deciding import DecisionNamer
from netiso.oracle.judge import Observation, judge
from netiso.oracle.predict import Prediction, predict_all
from netiso.report.document import observed_json, predicted_json

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def all_topologies() -> list[Topology]:
    return load_topologies([str(SCENARIOS)])


def lab_tokens(topo: Topology) -> set[str]:
    """Every decision the lab's rules of every node carry in their comments."""
    out = set()
    for node in topo.nodes:
        rs, _ = calico.render_calico(topo, node)
        doc = render_restore(merge(rs, kubeproxy.render_kube_proxy(topo, node), portmap.render_portmap(topo, node),
                                   calico.render_forward_tail()))
        for comment in re.findall(r'--comment "([^"]*)"', doc):
            d = from_comment(comment)
            if d is not None:
                out.add(str(d))
    return out


def test_a_decision_survives_the_round_trip_through_a_rule_comment() -> None:
    for d in (Decision("policy", "shop/nsnp-ingress-cidr-client-alice ingress", "allow"),
              Decision("isolation", "shop egress", "drop"),
              Decision("kube-proxy", "shop/web:http no-local-endpoints", "drop"),
              Decision("masquerade", "nat-outgoing")):
        assert from_comment(d.comment("upstream text; with a semicolon")) == d
        assert parse(str(d)) == d
    long = Decision("isolation", "a-very-long-namespace-name ingress", "drop").comment("x" * 400)
    assert len(long) <= MAX_COMMENT and from_comment(long) == Decision("isolation", "a-very-long-namespace-name ingress", "drop")
    assert from_comment("kubernetes service portals") is None and from_comment(None) is None


def test_the_service_subject_is_kube_proxys_own_service_port_name() -> None:
    for topo in all_topologies():
        for svc in topo.services.values():
            for sp in svc.ports:
                assert service_port_subject(svc.project, svc.name, sp.port.name) == kubeproxy.port_name_string(svc, sp)


def test_summaries_name_the_stop_for_drops_and_the_admitting_policy_plus_snat_for_allowed() -> None:
    path = [Decision("profile", "tools egress", "allow"), Decision("masquerade", "kube-proxy"),
            Decision("isolation", "shop ingress", "drop")]
    assert summarize(path, "dropped") == "isolation shop ingress drop"
    assert summarize(path[:2], "allowed") == "profile tools egress allow; masquerade kube-proxy"
    assert summarize(path[:2], "dropped") is None  # no rule decided it (no route, no ARP answer)
    proxied = [Decision("profile", "ctl ingress", "allow"), Decision("proxy", "pod:ctl/nginx"),
               Decision("isolation", "shop ingress", "drop")]
    # the probe's own packet was admitted: the rule that dropped nginx's backend connection decided
    assert summarize(proxied, "dropped") == "isolation shop ingress drop"
    assert summarize(proxied, "allowed") == "profile ctl ingress allow"  # admitted: the probe's own packet


def test_every_decision_the_oracle_predicts_is_a_rule_comment_the_lab_renders() -> None:
    checked = 0
    for topo in all_topologies():
        tokens = lab_tokens(topo)
        namer = DecisionNamer(topo)
        for pred in predict_all(topo):
            t = pred.target
            for outcome in pred.outcomes:
                for d in namer.decisions(outcome, t.origin_pod, t.dst_port, t.protocol, t.dst_ip):
                    if d.kind == "proxy":
                        break
                    if d.kind == "host-stack":  # no rule decides it: the trace shows it (trace_parse.decided_by)
                        continue
                    assert str(d) in tokens, f"{topo.name}: {pred.flow.label}: {d} is named by no lab rule"
                    checked += 1
    assert checked > 300


def test_predictions_name_isolation_policies_kube_proxy_and_masquerades() -> None:
    decided = {d for topo in all_topologies() for p in predict_all(topo)
               for d in p.outcome_decided_by if d}
    kinds = {part.split(" ")[0] for d in decided for part in d.split("; ")}
    assert {"policy", "profile", "isolation", "kube-proxy", "masquerade"} <= kinds
    assert any(d.startswith("isolation") and d.endswith("egress drop") for d in decided)
    assert any("no-local-endpoints drop" in d for d in decided)


@pytest.fixture
def nodeport() -> tuple[Topology, list[Prediction]]:
    topo = next(t for t in all_topologies() if t.name == "nodeport-cluster-vxlan")
    return topo, predict_all(topo)


def test_judge_reports_a_verdict_right_for_the_wrong_reason(nodeport: tuple[Topology, list[Prediction]]) -> None:
    topo, preds = nodeport
    pred = next(p for p in preds if p.flow.label == "client:bob -> nodeport:shop/web@worker")
    assert pred.decided_by == "isolation shop ingress drop"
    right = Observation(verdict="dropped", decided_by="isolation shop ingress drop")
    wrong = Observation(verdict="dropped", decided_by="kube-proxy shop/web no-local-endpoints drop")
    untraced = Observation(verdict="dropped")
    assert judge(topo, pred, right) == [] and judge(topo, pred, untraced) == []
    assert judge(topo, pred, wrong) == ["decided by kube-proxy shop/web no-local-endpoints drop, "
                                        "predicted isolation shop ingress drop"]


def test_decided_by_is_in_the_json_document_next_to_the_path(nodeport: tuple[Topology, list[Prediction]]) -> None:
    _, preds = nodeport
    pred = preds[0]
    assert predicted_json(pred)["decidedBy"] == pred.decided_by
    hop = {"node": "worker", "table": "filter", "chain": "cali-tw-x", "handle": 63, "verdict": "DROP",
           "rule": "", "comment": "netiso:isolation=shop ingress drop; ...", "decision": "isolation shop ingress drop"}
    traced = observed_json(pred, Observation(verdict="dropped", path=[hop], decided_by="isolation shop ingress drop"))
    assert traced["path"] == [hop] and traced["decidedBy"] == "isolation shop ingress drop"
    assert "path" not in observed_json(pred, Observation(verdict="dropped"))  # untraced backends unchanged
