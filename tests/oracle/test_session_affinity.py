"""sessionAffinity: ClientIP and ``repeat: N``: loaded, rendered, predicted and judged.

The scenario keys (``sessionAffinity``, ``sessionAffinityConfig.clientIP.timeoutSeconds``, the
flow's ``repeat``) are refused by field when bad (exit 2); the Service manifest carries them as
the API takes them; the oracle predicts stickiness (``Prediction.sticky``) for flows that reach
the endpoints through a ClientIP Service, and the judge accepts any predicted endpoint for the
first probe but only that one for the later probes. The lab observes the bundled
scenarios/session-affinity.yaml in tests/lab/test_session_affinity_lab.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from netiso.model.addressing import load_topologies, resolve
from netiso.model.loader import loads
from netiso.model.render import service
from netiso.oracle.judge import Observation, judge
from netiso.oracle.predict import Prediction, predict_all
from tests.model.test_loader_errors import assert_refused

BUNDLED = Path(__file__).resolve().parents[2] / "scenarios" / "session-affinity.yaml"
BASE = ("name: t\ncluster: {clients: [alice]}\nprojects: [{name: demo}]\n"
        "workloads: [{name: web, project: demo, nodes: [worker, worker2]}, {name: probe, project: demo, nodes: [worker]}]\n")

BAD = [
    ("services: [{name: web, project: demo, sessionAffinity: Cookie}]\n", "services[0].sessionAffinity",
     ("'Cookie'", "None, ClientIP")),
    ("services: [{name: web, project: demo, sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}}]\n",
     "services[0].sessionAffinityConfig", ("sessionAffinity: ClientIP",)),
    ("services: [{name: web, project: demo, sessionAffinity: ClientIP, sessionAffinityConfig: {clientIP: "
     "{timeoutSeconds: 0}}}]\n", "services[0].sessionAffinityConfig.clientIP.timeoutSeconds", ("1 to 86400",)),
    ("services: [{name: web, project: demo, sessionAffinity: ClientIP, sessionAffinityConfig: {clientIp: {}}}]\n",
     "services[0].sessionAffinityConfig.clientIp", ("unknown field",)),
    ("services: [{name: web, project: demo}]\nflows: [{from: pod:demo/probe, to: clusterip:demo/web, repeat: 0}]\n",
     "flows[0].repeat", ("1 to 20",)),
    ("services: [{name: web, project: demo}]\nflows: [{from: pod:demo/probe, to: clusterip:demo/web, repeat: '3'}]\n",
     "flows[0].repeat", ("whole number",)),
]


@pytest.mark.parametrize(("extra", "field", "says"), BAD, ids=[b[1] + str(i) for i, b in enumerate(BAD)])
def test_bad_affinity_or_repeat_is_one_message_naming_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                               extra: str, field: str, says: tuple[str, ...]) -> None:
    assert_refused(tmp_path, capsys, BASE + extra, field, says)


def test_affinity_reaches_the_topology_and_the_manifest_with_the_apis_default_timeout() -> None:
    topo = resolve(loads(BASE + "services: [{name: web, project: demo, sessionAffinity: ClientIP}, "
                         "{name: plain, project: demo, selector: {app: web}}]\n")[0])
    assert topo.services["demo/web"].affinity_timeout == 10800
    spec = service(topo.services["demo/web"], "metallb")["spec"]
    assert spec["sessionAffinity"] == "ClientIP"
    assert spec["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}
    assert topo.services["demo/plain"].affinity_timeout is None
    assert "sessionAffinity" not in service(topo.services["demo/plain"], "metallb")["spec"]


def _preds() -> dict[str, Prediction]:
    (topo,) = load_topologies([str(BUNDLED)])
    return {f"{p.flow.src} -> {p.flow.dst}": p for p in predict_all(topo)}


def test_the_oracle_predicts_stickiness_only_through_a_client_ip_service() -> None:
    p = _preds()
    sticky = {k for k, v in p.items() if v.sticky}
    assert sticky == {"pod:shop/probe@worker -> clusterip:shop/web-sticky",
                      "client:alice -> nodeport:shop/web-sticky@worker2",
                      "node:control-plane -> clusterip:shop/web-sticky"}
    for v in p.values():
        assert not v.disagreements and len(v.answered_by) == 3  # the first probe: any of three endpoints
    assert any("sessionAffinity ClientIP (600s)" in hop for hop in p["client:alice -> nodeport:shop/web-sticky@worker2"].path)
    # a timeout shorter than the repeats take makes no claim (it may expire between two probes)
    short = resolve(loads(BASE + "services: [{name: web, project: demo, sessionAffinity: ClientIP, "
                          "sessionAffinityConfig: {clientIP: {timeoutSeconds: 5}}}]\n"
                          "flows: [{from: pod:demo/probe, to: clusterip:demo/web, repeat: 3}]\n")[0])
    assert not predict_all(short)[0].sticky


def _obs(first: str, *later: str) -> Observation:
    return Observation("allowed", source_ip=None, answered_by=first, repeats=[("allowed", x) for x in later])


def test_the_judge_accepts_any_first_endpoint_but_only_that_one_afterwards() -> None:
    p = _preds()
    pred = p["pod:shop/probe@worker -> clusterip:shop/web-sticky"]
    src = pred.outcomes[0].seen[0]
    eps = pred.answered_by
    for first in eps:
        obs = _obs(first, *[first] * 7)
        obs.source_ip = src
        assert judge(pred.topo, pred, obs) == []
    moved = _obs(eps[0], *[eps[0]] * 6, eps[1])
    moved.source_ip = src
    (problem,) = judge(pred.topo, pred, moved)
    assert "sessionAffinity ClientIP predicts probe 1's endpoint" in problem and f"8 by {eps[1]}" in problem
    short = _obs(eps[0], eps[0])
    short.source_ip = src
    assert judge(pred.topo, pred, short) == ["repeat 8: the backend fired 2 probe(s)"]
    plain = p["pod:shop/probe@worker -> clusterip:shop/web"]
    spread = _obs(plain.answered_by[0], *(plain.answered_by * 3)[:7])
    spread.source_ip = plain.outcomes[0].seen[0]
    assert judge(plain.topo, plain, spread) == []  # no affinity: each probe judged on its own
    stranger = _obs(plain.answered_by[0], *[plain.answered_by[0]] * 6, "pod:shop/probe@worker")
    stranger.source_ip = plain.outcomes[0].seen[0]
    assert judge(plain.topo, plain, stranger) == [
        f"probe 8 of 8 answered by pod:shop/probe@worker, predicted {', '.join(plain.answered_by)}"]
