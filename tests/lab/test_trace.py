"""Traced probing on the real kernel: drops settled by the rule, nothing else changed, the oracle's reasons.

Needs root. The probes carry the trace DSCP, the agent reads each node's nf_tables trace
events (netiso.probe.tracer), and the lab's rule comments name each decision in the oracle's
words (netiso.oracle.decided).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from netiso.backends.lab.backend import origin_symbol
from netiso.backends.lab.lab import Lab
from netiso.model.addressing import load_topologies
from netiso.model.types import Topology
from netiso.oracle.predict import predict_all
from netiso.probe.agent import ProbeAgent
from netiso.probe.results import ProbeRequest, ProbeResult
from tests.support.traced_check import check_scenario_traced, serve, start_tracing, stop_tracing

pytestmark = pytest.mark.lab

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
LONG_TIMEOUT_S = 20.0  # a probe that had to wait for it would say "timeout after 20.0s"


def topology(file: str, name: str) -> Topology:
    return next(t for t in load_topologies([str(SCENARIOS / file)]) if t.name == name)


@pytest.fixture(scope="module")
def agent() -> Iterator[ProbeAgent]:
    with ProbeAgent() as a:
        yield a


def _probe_one(agent: ProbeAgent, topo: Topology, src: str, dst: str) -> ProbeResult:
    preds = predict_all(topo)
    pred = next(p for p in preds if p.flow.src == src and p.flow.dst == dst)
    lab = Lab(topo).up()
    try:
        assert lab.net is not None
        served = serve(lab, agent, preds)
        start_tracing(lab, agent)
        t = pred.target
        origin = origin_symbol(pred)
        req = ProbeRequest("p", lab.net.ns_of(origin), t.dst_ip or "", t.dst_port, t.protocol,
                           timeout=LONG_TIMEOUT_S, trace=True)
        result = agent.probe([req])[0]
        stop_tracing(lab, agent)
        for ns in {*served, lab.net.ns_of(origin)}:
            agent.release(ns)
        return result
    finally:
        lab.down()


def test_a_dropped_tcp_probe_is_settled_by_the_policy_rule_that_dropped_it(agent: ProbeAgent) -> None:
    topo = topology("nodeport.yaml", "nodeport-cluster-vxlan")
    r = _probe_one(agent, topo, "client:bob", "nodeport:shop/web@worker")
    assert r.verdict == "dropped"
    assert r.decided_by == "isolation shop ingress drop"
    assert r.detail.startswith("dropped by isolation shop ingress drop (node worker filter cali-tw-")
    assert r.path[0]["node"] == "worker"


def test_a_dropped_udp_probe_is_settled_by_kube_proxys_drop_without_local_endpoints(agent: ProbeAgent) -> None:
    topo = topology("udp.yaml", "udp-nodeport-vxlan")
    r = _probe_one(agent, topo, "client:alice", "nodeport:dns/resolver-local@worker2")
    assert r.verdict == "dropped"
    assert r.decided_by == "kube-proxy dns/resolver-local no-local-endpoints drop"
    assert "(node worker2 filter KUBE-EXTERNAL-SERVICES rule " in r.detail


@pytest.mark.parametrize(("file", "name"), [("nodeport.yaml", "nodeport-cluster-vxlan"),
                                            ("udp.yaml", "udp-nodeport-vxlan"),
                                            ("host-network.yaml", "host-network-ipip")])
def test_tracing_changes_no_verdict_and_no_source(file: str, name: str) -> None:
    topo = topology(file, name)
    traced = check_scenario_traced(topo, trace=True)
    plain = check_scenario_traced(topo, trace=False)
    assert [r.obs.verdict for r in traced.results] == [r.obs.verdict for r in plain.results]
    for t, p in zip(traced.results, plain.results, strict=True):
        assert t.obs.answered_by == p.obs.answered_by
        assert not t.problems and not p.problems, (t.pred.flow.label, t.problems, p.problems)
    assert all(r.obs.path == [] and r.obs.decided_by is None for r in plain.results)
    assert any(r.obs.decided_by for r in traced.results)


@pytest.mark.parametrize("file", ["nodeport.yaml", "ingress.yaml", "internal-whitelist.yaml", "egress-whitelist.yaml"])
def test_the_kernel_decides_every_flow_by_the_rule_the_oracle_predicts(file: str) -> None:
    decided = 0
    for topo in load_topologies([str(SCENARIOS / file)]):
        res = check_scenario_traced(topo, trace=True)
        for r in res.results:
            assert not r.problems, f"{topo.name}: {r.pred.flow.label}: {r.problems}"
            predicted = {d for o, d in zip(r.pred.outcomes, r.pred.outcome_decided_by, strict=True)
                         if o.verdict == r.obs.verdict and (o.receiver == r.obs.answered_by or r.obs.verdict != "allowed")}
            if predicted - {None}:
                assert r.obs.decided_by in predicted, f"{topo.name}: {r.pred.flow.label}"
                decided += 1
            if r.obs.verdict == "dropped" and r.obs.decided_by:
                assert r.obs.detail.startswith(f"dropped by {r.obs.decided_by} (node ")
    assert decided >= 10
