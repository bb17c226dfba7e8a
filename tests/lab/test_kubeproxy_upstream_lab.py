"""kube-proxy's own packet-flow tests, observed on the kernel lab.

The flows of tests/support/kubeproxy_upstream.py (upstream test and case named there, with the
upstream file and commit) are built and probed on the real kernel: every flow must match the
oracle (verdict, source, answerer, the deciding rule read from the kernel's TRACE), and what the
kernel did must be the upstream answer: the answering endpoint one of those upstream lists (by
role: the entry node's own endpoints or others), DROP/REJECT by kube-proxy's rule, and kube-proxy's
masquerade in the trace exactly when upstream expects ``masq``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from netiso.checking import check_many
from netiso.model.addressing import load_topologies
from tests.oracle.test_kubeproxy_upstream import entry_node
from tests.support.kubeproxy_upstream import CASES, Case, scenario_yaml

pytestmark = pytest.mark.lab


def _lab_problems(topo, case: Case, verdict: str, answered: str | None, decided: str | None) -> list[str]:
    if case.output in ("DROP", "REJECT"):
        want, rule = ("dropped", " drop") if case.output == "DROP" else ("refused", " reject")
        problems = [] if verdict == want else [f"verdict {verdict}, upstream {case.output}"]
        by_kube_proxy = (decided or "").startswith("kube-proxy ") and (decided or "").endswith(rule)
        if not case.calico_first and not by_kube_proxy:  # calico_first: Calico decides first (the case says why)
            problems.append(f"decided by {decided}, upstream: kube-proxy's {case.output}")
        return problems
    if case.output == "ACCEPT":  # accepted for the node itself: kube-proxy's health server answers (no endpoint)
        return [] if verdict == "allowed" else [f"verdict {verdict}, upstream ACCEPT"]
    if verdict != "allowed" or answered is None:
        return [f"verdict {verdict}, upstream reaches {case.output}"]
    local = answered.rsplit("@", 1)[1] == entry_node(topo, case)
    assert isinstance(case.output, tuple)
    role_ok = any(r.startswith("local") == local for r in case.output)
    problems = [] if role_ok else [f"answered by {answered} ({'local' if local else 'remote'}), upstream {case.output}"]
    if ("masquerade kube-proxy" in (decided or "")) != case.masq:
        problems.append(f"decided by {decided}, upstream masq={case.masq}")
    return problems


def test_kube_proxys_own_packet_flow_expectations_hold_on_the_kernel_lab(tmp_path: Path) -> None:
    path = tmp_path / "kubeproxy-upstream.yaml"
    path.write_text(scenario_yaml())
    topos = load_topologies([str(path)])
    results = {res.topo.name: res for res in check_many(topos, jobs=3)}
    mismatched = [f"{name}: {r.pred.flow.label} ({r.pred.target.port}): {'; '.join(r.problems)}"
                  for name, res in results.items() for r in res.results if not r.match]
    assert not mismatched, "oracle and lab disagree:\n" + "\n".join(mismatched)
    by_flow = {(name, r.pred.flow.src, r.pred.flow.dst, str(r.pred.flow.port) if r.pred.flow.port else None): r
               for name, res in results.items() for r in res.results}
    assert len(by_flow) >= 100  # every scenario was built and probed
    wrong = []
    for case in CASES:
        r = by_flow[(case.scenario, case.src, case.dst, case.port)]
        problems = _lab_problems(results[case.scenario].topo, case, r.obs.verdict, r.obs.answered_by, r.obs.decided_by)
        wrong += [f"{case.id}: {p}" for p in problems]
    assert not wrong, "the kernel differs from kube-proxy's own tests:\n" + "\n".join(wrong)
