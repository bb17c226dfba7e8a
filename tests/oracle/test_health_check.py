"""``healthcheck:P/S@NODE``: loaded, predicted and judged on kube-proxy's answer.

Bad flows are one message naming the field (exit 2); the bundled
scenarios/health-check-node-port.yaml is predicted as its ``expect`` says (200 with the node's
local endpoint count, 503 with 0); the judge compares the answer's status and localEndpoints,
not source or answerer (kube-proxy's answer names neither). The lab observes the scenario in
tests/lab/test_health_check_lab.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from netiso.model.addressing import load_topologies
from netiso.oracle.judge import Observation, judge
from netiso.oracle.predict import Prediction, predict_all
from tests.model.test_loader_errors import assert_refused

BUNDLED = Path(__file__).resolve().parents[2] / "scenarios" / "health-check-node-port.yaml"
BASE = ("name: t\ncluster: {clients: [alice], loadBalancer: metallb}\nprojects: [{name: demo}]\n"
        "workloads: [{name: web, project: demo, nodes: [worker]}]\n")
LOCAL = "services: [{name: web, project: demo, type: LoadBalancer, externalTrafficPolicy: Local}]\n"

BAD = [
    ("services: [{name: web, project: demo, type: LoadBalancer}]\n"
     "flows: [{from: client:alice, to: healthcheck:demo/web@worker}]\n", "flows[0].to",
     ("no healthCheckNodePort", "externalTrafficPolicy: Local")),
    (LOCAL + "flows: [{from: client:alice, to: healthcheck:demo/web}]\n", "flows[0].to", ("needs @NODE",)),
    (LOCAL + "flows: [{from: client:alice, to: healthcheck:demo/web@worker, port: 8080/TCP}]\n", "flows[0].port",
     ("healthCheckNodePort",)),
    (LOCAL + "flows: [{from: client:alice, to: healthcheck:demo/web@worker, expect: {status: 404}}]\n",
     "flows[0].expect.status", ("200 or 503",)),
    (LOCAL + "flows: [{from: client:alice, to: loadbalancer:demo/web, expect: {status: 200}}]\n",
     "flows[0].expect.status", ("only applies to health-check flows",)),
    (LOCAL + "flows: [{from: client:alice, to: healthcheck:demo/web@worker, expect: {source: client:alice}}]\n",
     "flows[0].expect", ("judged on its verdict and status",)),
]


@pytest.mark.parametrize(("extra", "field", "says"), BAD, ids=[b[1] + str(i) for i, b in enumerate(BAD)])
def test_bad_health_check_flow_is_one_message_naming_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                              extra: str, field: str, says: tuple[str, ...]) -> None:
    assert_refused(tmp_path, capsys, BASE + extra, field, says)


def _preds() -> dict[str, Prediction]:
    (topo,) = load_topologies([str(BUNDLED)])
    return {f"{p.flow.src} -> {p.flow.dst}": p for p in predict_all(topo)}


def test_the_health_server_answers_each_nodes_local_endpoint_count() -> None:
    p = _preds()
    for pred in p.values():
        assert not pred.disagreements, f"{pred.flow.label}: {pred.disagreements}"
    assert p["client:alice -> healthcheck:shop/web@worker"].health == [(200, 1)]
    assert p["client:alice -> healthcheck:shop/web@control-plane"].health == [(503, 0)]
    pred = p["pod:shop/probe -> healthcheck:shop/web@control-plane"]
    assert pred.verdict == "allowed" and pred.target.dst_port == pred.target.service.health_check_node_port
    assert any("kube-proxy's health server answers 503 (localEndpoints 0 on control-plane)" in h for h in pred.path)


def test_the_judge_compares_status_and_local_endpoints_only() -> None:
    pred = _preds()["client:alice -> healthcheck:shop/web@control-plane"]
    assert judge(pred.topo, pred, Observation("allowed", status=503, local_endpoints=0)) == []
    assert judge(pred.topo, pred, Observation("allowed", status=200, local_endpoints=1)) == [
        "health check answered 200 (localEndpoints 1), predicted 503 (localEndpoints 0)",
        "scenario expects status 503, observed 200"]
    assert judge(pred.topo, pred, Observation("refused", detail="ECONNREFUSED"))[0].startswith("observed refused")
