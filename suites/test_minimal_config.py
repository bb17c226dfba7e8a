"""The founding question for every bundled scenario that marks wanted flows: the minimal
whitelist the oracle derives must be proved on the backend (the lab by default, or the
``--netiso-backend`` cluster) — every wanted flow passes, the flows
it names as forced open pass, every other unwanted flow stays blocked, and removing any one
entry breaks a flow that needs it.

All proof labs run once per session, side by side; each test reads one project's verdict.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fixtures.scenarios import in_group
from netiso.minimizing import attach_alternatives, load_wanted, prove
from netiso.oracle.minimal import MinimalConfig, minimal_config

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.lab

_SCENARIOS, _ = load_wanted([str(ROOT / "scenarios")])
_RESULTS: list[MinimalConfig] = [minimal_config(s) for s in _SCENARIOS]
attach_alternatives(_RESULTS)
_CASES = [(r, p.project) for r in _RESULTS for p in r.projects]
_ALTERNATIVES = [r for r in _RESULTS if r.alternative is not None]


@pytest.fixture(scope="session")
def proved(netiso_session: Any, request: pytest.FixtureRequest) -> list[MinimalConfig]:
    group = request.config.getoption("--netiso-group")
    prove([r for r in _RESULTS if in_group(r.scenario, group)], backend=netiso_session)
    return _RESULTS


@pytest.mark.parametrize("case", _CASES, ids=[f"{r.scenario.name}::{p}" for r, p in _CASES])
def test_minimal_whitelist_is_proved_on_the_backend(case: tuple[MinimalConfig, str], proved: Any) -> None:
    result, project = case
    found = result.project(project)
    assert found is not None
    assert found.verified, f"{result.scenario.name}/{project}: " + "; ".join(found.proof)


@pytest.mark.parametrize("result", _ALTERNATIVES, ids=[r.scenario.name for r in _ALTERNATIVES])
def test_cluster_settings_alternative_is_proved_on_the_backend(result: MinimalConfig, proved: Any) -> None:
    """The smaller cluster-wide answer (kubesphere.io/snat-node-ips, allowedIngressNamespaces) keeps
    every wanted flow working and opens only what it says it opens."""
    alt = result.alternative
    assert alt.verified, f"{result.scenario.name}: " + "; ".join(alt.proof)


def test_every_entry_is_needed_by_a_wanted_flow() -> None:
    for r in _RESULTS:
        for e in r.entries:
            assert e.needed_by, f"{r.scenario.name}: {e.peer} needed by nothing"
