"""Differential test: on random scenarios the kernel lab observes exactly what the oracle predicts.

Hand-written scenarios cover the cases people think of; random ones (fixed seeds, so a failure
reproduces) cover the combinations nobody wrote down: a whitelisted node address meeting an
ETP Local service, an ingress controller behind a LoadBalancer VIP that OpenELB announces from
the control-plane, a pod reaching another node's NodePort. ``bench/fuzz.py`` runs many more seeds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from netiso.checking import check_many
from netiso.model.addressing import load_topologies
from tests.support.random_scenarios import random_scenarios_yaml

pytestmark = pytest.mark.lab

SEEDS = range(1000, 1012)


def test_random_scenarios_match_the_oracle_on_the_lab(tmp_path: Path) -> None:
    path = tmp_path / "random.yaml"
    path.write_text(random_scenarios_yaml(SEEDS))
    topos = load_topologies([str(path)])
    results = check_many(topos, jobs=3)
    flows = [r for res in results for r in res.results]
    assert len(flows) > 100  # the dice must give the lab real work
    bad = [f"{res.topo.name}: {r.pred.flow.label} ({r.pred.target.port}): {'; '.join(r.problems)}"
           for res in results for r in res.results if not r.match]
    assert not bad, "oracle and lab disagree:\n" + "\n".join(bad)
    verdicts = {r.obs.verdict for r in flows}
    assert {"allowed", "dropped"} <= verdicts  # both sides of isolation were exercised
