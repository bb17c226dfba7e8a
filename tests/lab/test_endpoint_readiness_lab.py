"""The bundled scenarios/endpoint-readiness.yaml on the kernel lab: endpoint states decide the kernel's rules.

Every pod runs and listens; only the rules differ: the lab's kube-proxy categorizes the
EndpointSlice conditions itself (kubeproxy.py categorize_endpoints, after pkg/proxy/topology.go),
nginx gets ready upstreams only, the health server counts ready local endpoints. Each flow must
match the oracle (verdict, source, answerer, deciding rule from the kernel's trace) and the
scenario's ``expect``; the rules themselves must show the fallback (a KUBE-SEP chain for a
terminating pod only where no ready endpoint exists). bin/conformance runs the same scenario.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from netiso.backends.lab.iptables import render_restore
from netiso.backends.lab.kubeproxy import node_plans, render_kube_proxy
from netiso.checking import check_many
from netiso.model.addressing import load_topologies

BUNDLED = Path(__file__).resolve().parents[2] / "scenarios" / "endpoint-readiness.yaml"


@pytest.mark.lab
def test_endpoint_states_decide_every_flow_on_the_lab() -> None:
    (res,) = check_many(load_topologies([str(BUNDLED)]), jobs=1)
    bad = [f"{r.pred.flow.label}: {'; '.join(r.problems) or r.pred.disagreements}" for r in res.results if not r.match]
    assert not bad, "\n".join(bad)
    health = {r.pred.flow.dst: (r.obs.status, r.obs.local_endpoints) for r in res.results if r.pred.health}
    assert health == {"healthcheck:shop/mixed-lb@worker": (200, 1), "healthcheck:shop/mixed-lb@worker2": (503, 0),
                      "healthcheck:shop/mixed-lb-published@worker2": (200, 1)}
    by_flow = {(r.pred.flow.src, r.pred.flow.dst): r.obs for r in res.results}
    assert by_flow[("client:alice", "nodeport:shop/mixed-local@worker2")].answered_by == "pod:shop/mixed@worker2"
    assert by_flow[("pod:shop/probe@control-plane", "clusterip:shop/unready")].verdict == "refused"
    assert by_flow[("client:alice", "ingress:shop/leaving")].verdict == "refused"


def test_the_rules_send_to_terminating_pods_only_as_a_fallback() -> None:
    """No root needed to read the rules; they are the ones the test above loads into the kernel."""
    (topo,) = load_topologies([str(BUNDLED)])
    plans = {p.name: p for p in node_plans(topo, "worker2")}
    mixed = plans["shop/mixed"]
    assert [e.symbol for e in mixed.endpoints] == ["pod:shop/mixed@worker"]  # ready ones only
    local = plans["shop/mixed-local"]
    assert [e.symbol for e in local.local_endpoints] == ["pod:shop/mixed@worker2"]  # worker2: its terminating one
    assert {e.symbol for e in local.reachable} == {"pod:shop/mixed@worker", "pod:shop/mixed@worker2"}
    leaving = plans["shop/leaving"]
    assert {e.symbol for e in leaving.endpoints} == {"pod:shop/leaving@worker", "pod:shop/leaving@worker2"}
    assert not plans["shop/unready"].has_endpoints and plans["shop/unready-published"].has_endpoints
    text = render_restore(render_kube_proxy(topo, "worker2"))
    terminating_ip = next(p.ip for p in topo.pods if p.symbol == "pod:shop/mixed@worker2")
    assert f"{local.chains.svl} " in text and f"--to-destination {terminating_ip}:8080" in text
