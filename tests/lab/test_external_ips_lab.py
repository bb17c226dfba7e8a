"""The bundled scenarios/external-ips.yaml on the kernel lab: every flow as predicted.

kube-proxy's external-IP rules are loaded into real node namespaces and the clients route each
address to the node their flow names; verdict, source, answerer and the deciding rule read from
the kernel's TRACE must all match. bin/conformance runs the same scenario.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from netiso.checking import check_many
from netiso.model.addressing import load_topologies

pytestmark = pytest.mark.lab

BUNDLED = Path(__file__).resolve().parents[2] / "scenarios" / "external-ips.yaml"


def test_external_ip_flows_match_the_oracle_on_the_lab() -> None:
    (res,) = check_many(load_topologies([str(BUNDLED)]), jobs=1)
    assert len(res.results) == 7
    bad = [f"{r.pred.flow.label}: {'; '.join(r.problems) or r.pred.disagreements}" for r in res.results if not r.match]
    assert not bad, "\n".join(bad)
    decided = {r.obs.decided_by for r in res.results}
    assert {"kube-proxy shop/web-local no-local-endpoints drop", "kube-proxy shop/empty no-endpoints reject"} <= decided
    assert [r.obs.verdict for r in res.results].count("allowed") == 5
