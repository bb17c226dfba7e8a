"""kube-proxy's own packet-flow tests, predicted by the oracle.

Every case of ``tests/support/kubeproxy_upstream.py`` (upstream test and case named, upstream
file and commit cited there) is one flow of a scenario; the oracle's prediction must give the
upstream answer: the endpoints reached (as roles: the entry node's own endpoints or others),
DROP / REJECT by kube-proxy, and whether kube-proxy's masquerade mark led to a SNAT. The lab
observes the same flows in tests/lab/test_kubeproxy_upstream_lab.py.
"""

from __future__ import annotations

import pytest

from netiso.model.addressing import resolve
from netiso.model.loader import loads
from netiso.model.symbols import parse_endpoint
from netiso.model.types import Topology
from netiso.oracle.predict import Prediction, predict_all
from tests.support.kubeproxy_upstream import CASES, NOT_EXPRESSIBLE, Case, scenario_yaml

TOPOS: dict[str, Topology] = {s.name: resolve(s) for s in loads(scenario_yaml(), "kubeproxy-upstream.yaml")}
PREDICTIONS: dict[tuple[str, str, str, str | None], Prediction] = {
    (t.name, p.flow.src, p.flow.dst, str(p.flow.port) if p.flow.port else None): p
    for t in TOPOS.values() for p in predict_all(t)}


def entry_node(topo: Topology, case: Case) -> str:
    """The node whose kube-proxy rules the upstream tracer walks for this case (see the module)."""
    src, dst = parse_endpoint(case.src), parse_endpoint(case.dst)
    if src.kind == "pod":
        return next(p.node for p in topo.pods_of(str(src.project), str(src.name)))
    if src.kind == "node":
        return str(src.name)
    if dst.kind in ("nodeport", "externalip", "healthcheck") and dst.node:
        return str(dst.node)
    lb_node = topo.services[f"{dst.project}/{dst.name}"].lb_node
    assert lb_node is not None, f"{case.dst} is announced by no node"
    return lb_node


def roles_of(topo: Topology, answered: list[str], node: str) -> tuple[int, int]:
    """(endpoints on ``node``, endpoints elsewhere) among the pod symbols ``answered``."""
    nodes = [s.rsplit("@", 1)[1] for s in answered]
    return sum(n == node for n in nodes), sum(n != node for n in nodes)


def expected_roles(case: Case) -> tuple[int, int]:
    assert isinstance(case.output, tuple)
    return (sum(r.startswith("local") for r in case.output), sum(r.startswith("remote") for r in case.output))


def upstream_problems(topo: Topology, case: Case, verdict: str, answered: list[str],
                      decided: list[str | None]) -> list[str]:
    """What differs from the upstream answer (shared with the lab test: same facts, observed there)."""
    problems = []
    if case.output == "DROP" or case.output == "REJECT":
        want, rule = ("dropped", " drop") if case.output == "DROP" else ("refused", " reject")
        if verdict != want:
            problems.append(f"verdict {verdict}, upstream {case.output}")
        if case.calico_first:  # the verdict is kube-proxy's, the deciding rule Calico's (the case says why)
            return problems
        if not all(d and d.startswith("kube-proxy ") and d.endswith(rule) for d in decided):
            problems.append(f"decided by {decided}, upstream: kube-proxy's {case.output}")
        return problems
    if verdict != "allowed":
        return [f"verdict {verdict}, upstream reaches {case.output}"]
    if case.output == "ACCEPT":  # the filter accepts it for the node itself (kube-proxy's health server answers)
        return []
    got = roles_of(topo, answered, entry_node(topo, case))
    if got != expected_roles(case):
        problems.append(f"endpoints (local, remote) {got} ({answered}), upstream {case.output}")
    masq = ["masquerade kube-proxy" in (d or "") for d in decided]
    if any(m != case.masq for m in masq):
        problems.append(f"kube-proxy masquerade {masq} (decided by {decided}), upstream masq={case.masq}")
    return problems


def prediction_of(case: Case) -> Prediction:
    return PREDICTIONS[(case.scenario, case.src, case.dst, case.port)]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_oracle_predicts_kube_proxys_own_packet_flow_expectations(case: Case) -> None:
    topo, pred = TOPOS[case.scenario], prediction_of(case)
    decided = list(pred.outcome_decided_by)
    problems = upstream_problems(topo, case, pred.verdict, list(pred.answered_by), decided)
    assert not problems, f"{case.id} ({case.src} -> {case.dst}): " + "; ".join(problems) + "\n" + "\n".join(pred.path)


def test_the_upstream_set_is_whole_and_its_gaps_are_named() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), "one case per upstream test/case name"
    assert len(CASES) >= 170
    tests = {c.test for c in CASES}
    assert tests == {"TestInternalExternalMasquerade", "TestExternalTrafficPolicyLocal",
                     "TestExternalTrafficPolicyCluster", "TestLoadBalancer", "TestInternalTrafficPolicy",
                     "TestNoEndpointsReject", "TestClusterIPGeneral", "TestNodePorts", "TestHealthCheckNodePort",
                     "TestTerminatingEndpointsTrafficPolicyLocal", "TestTerminatingEndpointsTrafficPolicyCluster"}
    assert all(reason for reason in NOT_EXPRESSIBLE.values())
