"""Felix's side of a node: INPUT order, defaultEndpointToHostAction, natOutgoing, the host stack's refusal,
and the judge's reason check when the trace names no rule (issue 15 items 1 and 4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from netiso.backends.lab import calico
from netiso.backends.trace_parse import TraceHop, decided_by
from netiso.model.addressing import load_topologies, resolve
from netiso.model.errors import ScenarioError
from netiso.model.loader import loads
from netiso.model.types import Topology
from netiso.oracle.judge import Observation, judge
from netiso.oracle.predict import Prediction, predict_all

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def _topo(name: str) -> Topology:
    return next(t for t in load_topologies([str(SCENARIOS)]) if t.name == name)


def _pred(topo: Topology, label: str) -> Prediction:
    return next(p for p in predict_all(topo) if p.flow.label == label)


OWN_NODEPORT = "pod:shop/probe -> nodeport:shop/empty@worker"
OTHER_NODEPORT = "pod:shop/probe -> nodeport:shop/empty@worker2"


def test_pod_to_its_own_nodeport_without_endpoints_is_refused_by_the_host_stack_not_kube_proxy() -> None:
    pred = _pred(_topo("felix-endpoint-to-host-accept"), OWN_NODEPORT)
    assert pred.verdict == "refused" and pred.decided_by == "host-stack node:worker no-listener reject"
    assert any("cali-wl-to-host: defaultEndpointToHostAction ACCEPT" in h for h in pred.path)
    # the other node's NodePort comes in on eth0, not from a workload: kube-proxy's REJECT decides
    assert _pred(_topo("felix-endpoint-to-host-accept"), OTHER_NODEPORT).decided_by == \
        "kube-proxy shop/empty no-endpoints reject"


def test_endpoint_to_host_return_hands_the_pod_packet_to_kube_proxys_input_rules() -> None:
    pred = _pred(_topo("felix-endpoint-to-host-return"), OWN_NODEPORT)
    assert (pred.verdict, pred.decided_by) == ("refused", "kube-proxy shop/empty no-endpoints reject")


def test_endpoint_to_host_drop_drops_the_pod_packet_to_its_own_node() -> None:
    pred = _pred(_topo("felix-endpoint-to-host-drop"), OWN_NODEPORT)
    assert (pred.verdict, pred.decided_by) == ("dropped", "calico endpoint-to-host drop")


@pytest.mark.parametrize(("name", "target", "token"), [
    ("felix-endpoint-to-host-accept", "-j ACCEPT", None),
    ("felix-endpoint-to-host-return", "-j RETURN", None),
    ("felix-endpoint-to-host-drop", "-j DROP", "netiso:calico=endpoint-to-host drop"),
])
def test_the_lab_renders_the_endpoint_to_host_action(name: str, target: str, token: str | None) -> None:
    rs, _ = calico.render_calico(_topo(name), "worker")
    rules = [r for r in rs.table("filter").rules if r.startswith("-A cali-wl-to-host ")]
    assert rules[0] == "-A cali-wl-to-host -j cali-from-wl-dispatch"
    assert rules[-1].endswith(target) and "Configured DefaultEndpointToHostAction" in rules[-1]
    assert (token in rules[-1]) if token else "netiso:" not in rules[-1]


def test_nat_outgoing_off_keeps_the_pod_ip_and_needs_a_route_back() -> None:
    pred = _pred(_topo("nat-outgoing-off"), "pod:shop/probe -> client:alice")
    assert pred.verdict == "allowed" and pred.source == ["pod:shop/probe@worker"]
    assert pred.decided_by == "profile shop egress allow"  # no masquerade
    lost = _pred(_topo("nat-outgoing-off-no-pod-routes"), "pod:shop/probe -> client:alice")
    assert lost.verdict == "dropped" and "no route back to pod blocks" in lost.path[-1]
    # the default: natOutgoing masquerades to the node
    on = resolve(loads(Path(SCENARIOS / "felix-settings.yaml").read_text().split("---")[3]
                       .replace("natOutgoing: false", "natOutgoing: true"))[0])
    pred_on = next(p for p in predict_all(on))
    assert pred_on.source == ["node:worker"] and pred_on.decided_by.endswith("masquerade nat-outgoing")


def test_the_lab_fills_the_masquerade_pool_set_only_with_nat_outgoing() -> None:
    _, off = calico.render_calico(_topo("nat-outgoing-off"), "worker")
    _, on = calico.render_calico(_topo("felix-endpoint-to-host-accept"), "worker")
    assert "add cali4tmasq-ipam-pools 100.64.0.0/16" in on
    assert "add cali4tmasq-ipam-pools" not in off and "create cali40masq-ipam-pools" in off


@pytest.mark.parametrize(("cluster", "field"), [
    ("felix: {defaultEndpointToHostAction: Accept}", "cluster.felix.defaultEndpointToHostAction"),
    ("felix: {endpointToHost: ACCEPT}", "cluster.felix"),
    ("natOutgoing: maybe", "cluster.natOutgoing"),
])
def test_bad_felix_settings_are_refused_naming_the_field(cluster: str, field: str) -> None:
    with pytest.raises(ScenarioError) as exc:
        loads(f"name: x\ncluster:\n  {cluster}\nworkloads: [{{name: w, project: p, nodes: [worker]}}]\n"
              "projects: [{name: p}]\n")
    assert field in str(exc.value)


def test_defaults_are_todays_behaviour() -> None:
    s = loads("name: x\nprojects: [{name: p}]\n")[0]
    assert s.cluster.felix.defaultEndpointToHostAction == "ACCEPT" and s.cluster.natOutgoing is True


def test_judge_reports_a_predicted_rule_the_trace_never_met() -> None:
    topo = _topo("lb-no-endpoints-metallb")
    pred = _pred(topo, "pod:shop/probe -> loadbalancer:shop/empty")
    assert pred.decided_by == "kube-proxy shop/empty no-endpoints reject"
    hop = {"node": "worker", "table": "filter", "chain": "cali-wl-to-host", "handle": 9, "verdict": "ACCEPT",
           "rule": "", "comment": None, "decision": None}
    silent = Observation(verdict="refused", path=[hop])  # traced, but no rule of the trace decided
    assert judge(topo, pred, silent) == ["decided by no rule in the trace, "
                                         "predicted kube-proxy shop/empty no-endpoints reject"]
    assert judge(topo, pred, Observation(verdict="refused")) == []  # untraced: nothing to say about reasons


def test_the_trace_reports_the_host_stack_for_a_refusal_that_ended_in_input() -> None:
    into_host = [TraceHop("worker", "nat", "PREROUTING", None, "ACCEPT"),
                 TraceHop("worker", "filter", "cali-wl-to-host", 7, "ACCEPT"),
                 TraceHop("worker", "nat", "INPUT", None, "ACCEPT")]
    assert decided_by(into_host, "refused") == "host-stack node:worker no-listener reject"
    into_pod = [TraceHop("worker", "filter", "FORWARD", None, "ACCEPT"),
                TraceHop("worker", "nat", "POSTROUTING", None, "ACCEPT")]
    assert decided_by(into_pod, "refused") is None  # a pod's own stack: no rule, no host
    rejected = [TraceHop("worker", "filter", "KUBE-EXTERNAL-SERVICES", 3, "REJECT",
                         comment="netiso:kube-proxy=shop/empty no-endpoints reject; x"),
                TraceHop("worker", "filter", "INPUT", None, "ACCEPT")]
    assert decided_by(rejected, "refused") == "kube-proxy shop/empty no-endpoints reject"


def test_ingress_flows_dropped_on_the_backend_leg_are_decided_by_that_legs_rule() -> None:
    topo = _topo("ingress-nodeport-cluster-vxlan")
    pred = _pred(topo, "client:alice -> ingress:shop2/web")
    assert pred.verdict == "dropped" and pred.decided_by == "isolation shop2 ingress drop"
