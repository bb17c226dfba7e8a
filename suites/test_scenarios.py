"""Every flow of every bundled scenario, observed on the backend, must match the oracle's
prediction and the scenario's own ``expect``; with ``--netiso-kubesphere controller`` also every
NetworkPolicy KubeSphere's controller wrote must equal netiso's compiler's, per scenario.

One lab (or cluster realization) per scenario; each test reads that scenario's cached run.
"""

from __future__ import annotations

from typing import Any

import pytest

from fixtures.backend import controller_failure_message, flow_failure_message


def test_flow(scenario_flow: tuple[Any, int], scenario_runner: Any) -> None:
    topo, index = scenario_flow
    result = scenario_runner(topo).results[index]
    assert result.match, flow_failure_message(result)


@pytest.mark.netiso_kubesphere_controller
def test_kubesphere_controller_agrees(scenario_topology: Any, scenario_runner: Any) -> None:
    """A controller difference no flow probes (a peer admitted that no flow comes from) fails here,
    per scenario, as it fails ``netiso check`` (exit 1); collected only with ``--netiso-kubesphere
    controller`` (fixtures.scenarios.select_controller_items)."""
    result = scenario_runner(scenario_topology)
    problems = result.finding_problems
    assert not problems, controller_failure_message(result)
