"""Every flow of every bundled scenario, observed on the backend, must match the oracle's
prediction and the scenario's own ``expect``.

One lab per scenario; each test reads that scenario's cached observation of one flow.
"""

from __future__ import annotations

from typing import Any

from fixtures.backend import flow_failure_message


def test_flow(scenario_flow: tuple[Any, int], scenario_runner: Any) -> None:
    topo, index = scenario_flow
    result = scenario_runner(topo).results[index]
    assert result.match, flow_failure_message(result)
