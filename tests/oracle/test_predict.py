"""Predictions: ingress, KubeSphere tenancy, explanations, expectations and the judge.

Expectations come from docs/reference-facts.md: A (KubeSphere syncNs / generateNSNP /
convertToK8sNP), C (kube-proxy) and E (ingress-nginx: the backend sees the controller pod,
``X-Forwarded-For`` is ``$remote_addr`` at the controller, i.e. whatever its own entry path
left of the client). nginx's ``proxy_next_upstream error timeout`` default (ingress-nginx
ConfigMap ``proxy-next-upstream``) makes one reachable endpoint enough.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from netiso.model.addressing import resolve
from netiso.model.loader import loads
from netiso.model.types import Topology
from netiso.oracle.judge import Observation, judge
from netiso.oracle.predict import Prediction, predict_all

GATEWAY = "kubesphere-controls-system"


def topology(doc: dict[str, Any] | str) -> Topology:
    text = doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False)
    (s,) = loads(text, "predict.yaml")
    return resolve(s)


def node_local(node: str) -> set[str]:
    return {f"node:{node}", f"tunnel:{node}"}


# --------------------------------------------------------------------------- ingress


def ingress_doc(*, enc: str = "vxlan", exposure: str = "NodePort", controller_etp: str = "Cluster",
                web_nodes: tuple[str, ...] = ("worker",), isolation: bool = False,
                whitelist: tuple[dict[str, Any], ...] = (), to: str = "ingress:demo/web",
                expect: dict[str, Any] | None = None) -> dict[str, Any]:
    flow: dict[str, Any] = {"from": "client:alice", "to": to}
    if expect:
        flow["expect"] = expect
    return {
        "name": "ingress",
        "cluster": {"encapsulation": enc, "clients": ["alice"]},
        "workspaces": [{"name": "ws", "projects": [{"name": "demo", "isolation": isolation,
                                                    "whitelist": list(whitelist)}]}],
        "projects": [{"name": GATEWAY}],
        "workloads": [{"name": "web", "project": "demo", "nodes": list(web_nodes)}],
        "services": [{"name": "web", "project": "demo"}],
        "ingresses": [{"name": "web", "project": "demo", "host": "web.example", "service": "web",
                       "controller": {"project": GATEWAY, "node": "worker2", "exposure": exposure,
                                      "externalTrafficPolicy": controller_etp}}],
        "flows": [flow],
    }


def predict_ingress(**kw: Any) -> Prediction:
    (pred,) = predict_all(topology(ingress_doc(**kw)))
    return pred


def test_ingress_backend_sees_controller_pod() -> None:
    topo = topology(ingress_doc())
    (pred,) = predict_all(topo)
    controller_ip = topo.ingresses["demo/web"].controller.pod.ip
    assert pred.verdict == "allowed"
    assert pred.answered_by == ["pod:demo/web@worker"]
    assert pred.source == ["ingress-controller:demo/web"]
    assert {ip for o in pred.outcomes for ip in o.seen} == {controller_ip}


def test_ingress_xff_carries_client_with_local_controller() -> None:
    pred = predict_ingress(controller_etp="Local")
    assert pred.verdict == "allowed"
    assert pred.forwarded_for == ["client:alice"]
    assert pred.source == ["ingress-controller:demo/web"], "the TCP source is still the controller"


@pytest.mark.parametrize(("enc", "entry"), [("vxlan", "tunnel:worker"), ("ipip", "tunnel:worker"), ("direct", "node:worker")])
def test_ingress_xff_carries_entry_node_address_with_cluster_controller_entered_elsewhere(enc: str, entry: str) -> None:
    pred = predict_ingress(enc=enc, controller_etp="Cluster", to="ingress:demo/web@worker")
    assert pred.verdict == "allowed"
    assert pred.forwarded_for == [entry]


def test_ingress_xff_with_cluster_controller_on_its_own_node_is_a_node_address() -> None:
    pred = predict_ingress(controller_etp="Cluster")
    assert pred.verdict == "allowed"
    assert pred.forwarded_for and set(pred.forwarded_for) <= node_local("worker2")


def test_ingress_local_controller_entered_on_another_node_drops() -> None:
    assert predict_ingress(controller_etp="Local", to="ingress:demo/web@worker").verdict == "dropped"


def test_ingress_load_balancer_controller_local_keeps_client_in_xff() -> None:
    topo = topology(ingress_doc(exposure="LoadBalancer", controller_etp="Local"))
    (pred,) = predict_all(topo)
    assert topo.ingresses["demo/web"].controller.service.lb_node == "worker2"  # the only endpoint node
    assert pred.verdict == "allowed"
    assert pred.forwarded_for == ["client:alice"]


def test_ingress_backend_isolation_without_controller_namespace_whitelisted_drops() -> None:
    # Whitelisting the client is the tempting mistake: the backend never sees the client.
    pred = predict_ingress(controller_etp="Local", isolation=True,
                           whitelist=({"direction": "ingress", "peer": {"cidr": "client:alice"}},))
    assert pred.verdict == "dropped"
    assert any("504" in hop for hop in pred.path), "nginx answers 504 when the backend leg times out"


def test_ingress_backend_isolation_with_controller_namespace_whitelisted_passes() -> None:
    pred = predict_ingress(controller_etp="Local", isolation=True,
                           whitelist=({"direction": "ingress", "peer": {"project": GATEWAY}},))
    assert pred.verdict == "allowed"
    assert pred.forwarded_for == ["client:alice"]


def test_ingress_multiple_endpoints_one_outcome_per_endpoint() -> None:
    pred = predict_ingress(web_nodes=("worker", "worker2"), controller_etp="Local")
    assert len(pred.outcomes) == 2
    assert {o.receiver for o in pred.outcomes} == {"pod:demo/web@worker", "pod:demo/web@worker2"}
    assert all(o.verdict == "allowed" for o in pred.outcomes)
    assert pred.verdict == "allowed"


def test_ingress_one_reachable_endpoint_is_enough() -> None:
    doc = ingress_doc(controller_etp="Local")
    doc["workloads"] = [{"name": "web-a", "project": "demo", "nodes": ["worker"], "labels": {"app": "web"}},
                        {"name": "web-b", "project": "demo", "nodes": ["worker2"], "labels": {"app": "web", "role": "b"}}]
    doc["networkPolicies"] = [{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                               "metadata": {"name": "deny-b", "namespace": "demo"},
                               "spec": {"podSelector": {"matchLabels": {"role": "b"}}, "policyTypes": ["Ingress"]}}]
    (pred,) = predict_all(topology(doc))
    assert pred.verdict == "allowed"
    assert pred.answered_by == ["pod:demo/web-a@worker"]


# --------------------------------------------------------------------------- tenancy


TENANCY = """\
name: tenancy
cluster: {clients: [alice]}
workspaces:
  - name: ws-a
    isolation: WS_ISOLATION
    projects:
      - {name: a1, isolation: A1_ISOLATION, whitelist: A1_WHITELIST}
      - {name: a2}
  - name: ws-b
    projects: [{name: b1}]
projects: [{name: kubesphere-controls-system}]
workloads:
  - {name: web, project: a1, nodes: [worker]}
  - {name: probe, project: a1, nodes: [worker2]}
  - {name: probe, project: a2, nodes: [worker2]}
  - {name: probe, project: b1, nodes: [worker2]}
  - {name: probe, project: kubesphere-controls-system, nodes: [worker2]}
flows:
  - {from: pod:a1/probe, to: pod:a1/web}
  - {from: pod:a2/probe, to: pod:a1/web}
  - {from: pod:b1/probe, to: pod:a1/web}
  - {from: pod:kubesphere-controls-system/probe, to: pod:a1/web}
  - {from: client:alice, to: pod:a1/web}
"""
SOURCES = ["a1", "a2", "b1", "system", "client"]


def tenancy(ws_isolation: bool, a1_isolation: bool, a1_whitelist: str = "[]") -> tuple[Topology, dict[str, str]]:
    text = (TENANCY.replace("WS_ISOLATION", str(ws_isolation).lower())
            .replace("A1_ISOLATION", str(a1_isolation).lower()).replace("A1_WHITELIST", a1_whitelist))
    topo = topology(text)
    return topo, dict(zip(SOURCES, (p.verdict for p in predict_all(topo)), strict=True))


def test_no_isolation_admits_everyone() -> None:
    _, verdicts = tenancy(False, False)
    assert set(verdicts.values()) == {"allowed"}


def test_workspace_isolation_admits_same_workspace_projects_only() -> None:
    _, verdicts = tenancy(True, False)
    assert verdicts == {"a1": "allowed", "a2": "allowed", "b1": "dropped", "system": "dropped", "client": "dropped"}


def test_project_isolation_admits_the_project_only() -> None:
    _, verdicts = tenancy(False, True)
    assert verdicts == {"a1": "allowed", "a2": "dropped", "b1": "dropped", "system": "dropped", "client": "dropped"}


def test_project_isolation_beats_workspace_isolation() -> None:
    _, verdicts = tenancy(True, True)
    assert verdicts["a2"] == "dropped", "project mode admits only the project, not its workspace"
    assert verdicts["a1"] == "allowed"


def test_project_whitelist_admits_its_peer_in_project_mode() -> None:
    wl = "[{direction: ingress, peer: {cidr: 'client:alice'}}, {direction: ingress, peer: {project: kubesphere-controls-system}}]"
    _, verdicts = tenancy(True, True, wl)
    assert verdicts == {"a1": "allowed", "a2": "dropped", "b1": "dropped", "system": "allowed", "client": "allowed"}


def test_workspace_mode_deletes_project_whitelists() -> None:
    # syncNs in workspace mode DeleteCollection()s the namespace's NSNPs (facts A).
    topo, verdicts = tenancy(True, False, "[{direction: ingress, peer: {cidr: 'client:alice'}}]")
    assert verdicts["client"] == "dropped"
    assert topo.warnings, "the deleted whitelist must be reported"


def test_system_namespaces_are_not_admitted_automatically() -> None:
    _, verdicts = tenancy(False, True)
    assert verdicts["system"] == "dropped"


def test_service_whitelist_admits_the_services_pods_only() -> None:
    doc = """\
name: svc-peer
workspaces:
  - name: ws
    projects:
      - {name: demo, isolation: true, whitelist: [{direction: ingress, peer: {service: peer/api}}]}
      - {name: peer}
workloads:
  - {name: web, project: demo, nodes: [worker]}
  - {name: api, project: peer, nodes: [worker2]}
  - {name: batch, project: peer, nodes: [worker2]}
services: [{name: api, project: peer}]
flows:
  - {from: pod:peer/api, to: pod:demo/web}
  - {from: pod:peer/batch, to: pod:demo/web}
"""
    assert [p.verdict for p in predict_all(topology(doc))] == ["allowed", "dropped"]


# --------------------------------------------------------------------------- explanations


RICH = """\
name: rich
cluster: {encapsulation: ipip, clients: [alice, bob]}
workspaces:
  - name: ws
    projects:
      - name: demo
        isolation: true
        whitelist:
          - {direction: ingress, peer: {cidr: "client:alice"}}
          - {direction: ingress, peer: {project: kubesphere-controls-system}}
          - {direction: egress, peer: {cidr: "client:alice"}}
projects: [{name: kubesphere-controls-system}, {name: open}]
workloads:
  - {name: web, project: demo, nodes: [worker, worker2]}
  - {name: probe, project: open, nodes: [worker]}
services:
  - {name: web, project: demo, type: NodePort}
  - {name: local, project: demo, type: LoadBalancer, externalTrafficPolicy: Local, selector: {app: web}}
  - {name: empty, project: demo, type: NodePort, selector: {app: nothing}}
ingresses:
  - name: web
    project: demo
    host: web.example
    service: web
    controller: {project: kubesphere-controls-system, node: worker2, externalTrafficPolicy: Local}
flows:
  - {from: client:alice, to: nodeport:demo/web@worker}
  - {from: client:bob, to: nodeport:demo/web@worker2}
  - {from: client:alice, to: loadbalancer:demo/local}
  - {from: client:alice, to: nodeport:demo/empty@worker}
  - {from: client:alice, to: ingress:demo/web}
  - {from: client:alice, to: ingress:demo/web@worker}
  - {from: pod:demo/web@worker, to: client:alice}
  - {from: pod:demo/web@worker, to: client:bob}
  - {from: pod:open/probe, to: "clusterip:demo/web"}
  - {from: node:worker, to: pod:demo/web@worker}
  - {from: client:alice, to: pod:demo/web, port: 9999/TCP}
"""


def test_every_prediction_has_a_path_with_a_reason_on_each_hop() -> None:
    preds = predict_all(topology(RICH))
    assert {p.verdict for p in preds} >= {"allowed", "dropped", "refused"}, "the scenario covers every verdict"
    for pred in preds:
        assert pred.path, pred.flow.label
        for outcome in pred.outcomes:
            assert outcome.hops, pred.flow.label
            for hop in outcome.hops:
                assert isinstance(hop, str) and len(hop.split()) >= 3, (pred.flow.label, hop)
            if outcome.verdict != "allowed":
                assert outcome.verdict in outcome.hops[-1], (pred.flow.label, outcome.hops[-1])
        if len(pred.outcomes) > 1:
            assert len(pred.path) >= sum(len(o.hops) for o in pred.outcomes) + len(pred.outcomes), \
                "each outcome is introduced by its own line"


def test_prediction_is_deterministic() -> None:
    first = [(p.verdict, p.source, p.answered_by, p.forwarded_for, p.path) for p in predict_all(topology(RICH))]
    second = [(p.verdict, p.source, p.answered_by, p.forwarded_for, p.path) for p in predict_all(topology(RICH))]
    assert first == second


# --------------------------------------------------------------------------- explicit expectations


NODEPORT = """\
name: np
projects: [{name: demo}]
workloads: [{name: web, project: demo, nodes: [worker]}]
services: [{name: web, project: demo, type: NodePort}]
flows:
  - from: client:client
    to: nodeport:demo/web@worker2
    EXPECT
"""


def nodeport_prediction(expect: str = "") -> Prediction:
    text = NODEPORT.replace("EXPECT", expect) if expect else NODEPORT.replace("    EXPECT\n", "")
    (pred,) = predict_all(topology(text))
    return pred


def test_explicit_expect_agreeing_with_the_oracle_has_no_disagreement() -> None:
    pred = nodeport_prediction("expect: {verdict: allowed, source: [tunnel:worker2], answeredBy: pod:demo/web}")
    assert pred.disagreements == []


@pytest.mark.parametrize(("expect", "word"), [
    ("expect: {source: client:client}", "source"),
    ("expect: {verdict: dropped}", "dropped"),
    ("expect: {answeredBy: pod:demo/other@worker2}", "answeredBy"),
])
def test_explicit_expect_disagreement_is_detected(expect: str, word: str) -> None:
    text = NODEPORT.replace("EXPECT", expect)
    if "other" in expect:
        text = text.replace("nodes: [worker]}]", "nodes: [worker]}, {name: other, project: demo, nodes: [worker2]}]")
    (pred,) = predict_all(topology(text))
    assert len(pred.disagreements) == 1
    assert word in pred.disagreements[0]


# --------------------------------------------------------------------------- judge


def test_judge_accepts_an_observation_of_the_prediction() -> None:
    pred = nodeport_prediction()
    obs = Observation("allowed", source_ip="100.64.2.0", answered_by="pod:demo/web@worker", ms=1.0)
    assert judge(pred.topo, pred, obs) == []


def test_judge_reports_verdict_mismatch() -> None:
    pred = nodeport_prediction()
    problems = judge(pred.topo, pred, Observation("dropped", detail="timeout"))
    assert len(problems) == 1 and "dropped" in problems[0] and "allowed" in problems[0]


def test_judge_reports_wrong_source() -> None:
    pred = nodeport_prediction()
    problems = judge(pred.topo, pred, Observation("allowed", source_ip="198.18.0.100", answered_by="pod:demo/web@worker"))
    assert len(problems) == 1
    assert "client:client" in problems[0] and "tunnel:worker2" in problems[0]


def test_judge_reports_wrong_endpoint() -> None:
    pred = nodeport_prediction()
    problems = judge(pred.topo, pred, Observation("allowed", source_ip="100.64.2.0", answered_by="pod:demo/web@worker2"))
    assert len(problems) == 1 and "pod:demo/web@worker2" in problems[0]


def test_judge_reports_wrong_forwarded_for() -> None:
    topo = topology(ingress_doc(controller_etp="Local"))
    (pred,) = predict_all(topo)
    ctrl = topo.ingresses["demo/web"].controller.pod.ip
    ok = Observation("allowed", source_ip=ctrl, answered_by="pod:demo/web@worker", forwarded_for="198.18.0.100")
    assert judge(topo, pred, ok) == []
    bad = Observation("allowed", source_ip=ctrl, answered_by="pod:demo/web@worker", forwarded_for="100.64.2.0")
    problems = judge(topo, pred, bad)
    assert len(problems) == 1 and "X-Forwarded-For" in problems[0]


def test_judge_reports_wrong_elected_node() -> None:
    text = NODEPORT.replace("type: NodePort", "type: LoadBalancer, externalTrafficPolicy: Local").replace(
        "to: nodeport:demo/web@worker2", "to: loadbalancer:demo/web").replace("    EXPECT\n", "")
    topo = topology(text)
    (pred,) = predict_all(topo)
    assert topo.services["demo/web"].lb_node == "worker"
    seen = Observation("allowed", source_ip="198.18.0.100", answered_by="pod:demo/web@worker", elected="worker")
    assert judge(topo, pred, seen) == []
    seen.elected = "worker2"
    problems = judge(topo, pred, seen)
    assert len(problems) == 1 and "worker2" in problems[0]


def test_judge_accepts_either_outcome_of_a_mixed_prediction() -> None:
    text = """\
name: mixed
cluster: {clients: [alice]}
workspaces:
  - name: ws
    projects: [{name: demo, isolation: true, whitelist: [{direction: ingress, peer: {cidr: "client:alice"}}]}]
workloads: [{name: web, project: demo, nodes: [worker, worker2]}]
services: [{name: web, project: demo, type: NodePort}]
flows: [{from: client:alice, to: nodeport:demo/web@worker2}]
"""
    topo = topology(text)
    (pred,) = predict_all(topo)
    assert pred.verdict == "mixed"
    local = next(o for o in pred.outcomes if o.verdict == "allowed")
    assert judge(topo, pred, Observation("dropped")) == []
    assert judge(topo, pred, Observation("allowed", source_ip=local.seen[0], answered_by=local.receiver)) == []
    assert judge(topo, pred, Observation("refused")) != []


def test_judge_checks_the_explicit_expectation_on_top() -> None:
    pred = nodeport_prediction("expect: {source: client:client}")
    obs = Observation("allowed", source_ip="100.64.2.0", answered_by="pod:demo/web@worker")
    problems = judge(pred.topo, pred, obs)
    assert len(problems) == 1 and "scenario expects source client:client" in problems[0]
    obs_expected = Observation("allowed", source_ip="198.18.0.100", answered_by="pod:demo/web@worker")
    problems = judge(pred.topo, pred, obs_expected)
    assert len(problems) == 1 and "server saw" in problems[0], "the oracle still disagrees with that observation"


# --------------------------------------------------------------------------- memory


def test_a_predicted_topology_is_freed_when_its_run_drops_it() -> None:
    """Predictions share one decision namer per topology; a process that checks scenario after
    scenario (``bench/scale.py``, an IDE, xdist workers) must not keep every topology alive
    through it (a module-level cache once did: +110 MB per 48-node run)."""
    import gc
    import weakref

    topo = topology(ingress_doc(isolation=True))
    predictions = predict_all(topo)
    assert any(p.outcome_decided_by for p in predictions)  # the namer was built and used
    ref = weakref.ref(topo)
    del topo, predictions
    gc.collect()
    assert ref() is None
