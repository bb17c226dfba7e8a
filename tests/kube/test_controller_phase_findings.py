"""The controller phase's findings: a controller-mode run that never compared the policies is not a pass.

The suites' ``test_kubesphere_controller_agrees`` asserts that a scenario has no finding problem;
a realization whose controller diff never ran (a skipped phase, a future refactor) must say so
rather than report nothing. No API server is needed: the phase's state is set by hand.
"""

from __future__ import annotations

from types import SimpleNamespace

from netiso.backends.kube.controller_phase import PolicyPhase
from netiso.backends.kube.kubesphere_controller import PolicyFinding


def phase(mode: str | None, diff: list[PolicyFinding] | None) -> PolicyPhase:
    p = PolicyPhase()
    p.backend = SimpleNamespace(options=SimpleNamespace(kubesphere=mode))
    p.controller_diff = diff
    return p


def test_a_controller_run_without_a_diff_is_a_problem_and_an_empty_diff_is_none() -> None:
    assert phase("controller", None).finding_problems() == [
        "--kubesphere controller: KubeSphere's policies were never compared with netiso's compiler"]
    assert phase("controller", []).finding_problems() == []
    assert phase(None, None).finding_problems() == []  # netiso wrote the policies: nothing to compare


def test_each_differing_policy_is_one_problem() -> None:
    found = PolicyFinding("shop", "nsnp-network-isolate", "differs", {"a": 1}, {"a": 2})
    problems = phase("controller", [found]).finding_problems()
    assert problems == [found.line()] and "nsnp-network-isolate" in problems[0]
