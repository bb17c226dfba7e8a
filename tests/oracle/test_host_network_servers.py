"""Flows that end at a node's host-network server (``to: node:NAME``, issue 15 item 3): the loader
accepts them and the oracle walks them to the node's INPUT and its server (the lab run:
tests/lab/test_host_servers_lab.py; the kube node pods: tests/kube/test_host_servers_manifests.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from netiso.model.addressing import load_topologies, resolve
from netiso.model.errors import ScenarioError
from netiso.model.flows import host_servers, resolve_flow
from netiso.model.loader import loads
from netiso.model.types import Port, Topology
from netiso.oracle.predict import Prediction, predict_all

BUNDLED = Path(__file__).resolve().parents[2] / "scenarios" / "host-network-servers.yaml"


def _topo(name: str) -> Topology:
    return next(t for t in load_topologies([str(BUNDLED)]) if t.name == name)


def _pred(topo: Topology, label: str) -> Prediction:
    return next(p for p in predict_all(topo) if p.flow.label == label)


def test_a_flow_may_end_at_a_node_on_its_port_default_8080_tcp() -> None:
    (s,) = loads("{name: x, flows: [{from: 'client:client', to: 'node:worker'},"
                 " {from: 'node:worker2', to: 'node:worker', port: 53/UDP}]}")
    topo = resolve(s)
    first, second = (resolve_flow(topo, f) for f in s.flows)
    assert (first.dst_kind, first.dst_ip, first.dst_port, first.protocol) == ("node", topo.nodes["worker"].ip, 8080, "TCP")
    assert second.dst_port == 53 and second.protocol == "UDP"
    assert host_servers(topo) == {"worker": frozenset({Port(8080, "TCP"), Port(53, "UDP")})}


def test_an_unknown_node_as_destination_is_refused_naming_the_field() -> None:
    with pytest.raises(ScenarioError, match=r"flows\[0\]\.to"):
        loads("{name: x, flows: [{from: 'client:client', to: 'node:nowhere'}]}")


def test_pod_to_its_own_nodes_server_passes_cali_wl_to_host_and_keeps_the_pod_ip() -> None:
    topo = _topo("host-servers-endpoint-to-host-accept")
    pred = _pred(topo, "pod:shop/web -> node:worker")
    assert pred.verdict == "allowed" and pred.source == ["pod:shop/web@worker"] and pred.answered_by == ["node:worker"]
    assert any("defaultEndpointToHostAction ACCEPT" in h for h in pred.path)
    locked = _pred(topo, "pod:locked/app -> node:worker")
    assert locked.verdict == "dropped" and locked.decided_by == "isolation locked egress drop"


def test_pod_to_another_nodes_server_is_masqueraded_by_nat_outgoing_unless_it_is_off() -> None:
    on = _pred(_topo("host-servers-endpoint-to-host-accept"), "pod:shop/web -> node:worker2")
    assert on.verdict == "allowed" and on.source == ["node:worker"]
    assert any("cali-nat-outgoing" in h for h in on.path)
    off = _pred(_topo("host-servers-nat-outgoing-off"), "pod:shop/web -> node:worker2")
    assert off.verdict == "allowed" and off.source == ["pod:shop/web@worker"]


def test_endpoint_to_host_drop_cuts_only_the_pods_own_node() -> None:
    topo = _topo("host-servers-endpoint-to-host-drop")
    own = _pred(topo, "pod:shop/web -> node:worker")
    assert own.verdict == "dropped" and own.decided_by == "calico endpoint-to-host drop"
    assert _pred(topo, "pod:shop/web -> node:worker2").verdict == "allowed"
    assert _pred(topo, "client:alice -> node:worker").verdict == "allowed"


def test_clients_and_nodes_reach_a_host_server_with_their_own_address() -> None:
    topo = _topo("host-servers-endpoint-to-host-accept")
    assert _pred(topo, "client:alice -> node:worker").source == ["client:alice"]
    assert _pred(topo, "node:worker2 -> node:worker").source == ["node:worker2"]
    self_pred = _pred(topo, "node:worker -> node:worker")
    assert self_pred.verdict == "allowed" and self_pred.source == ["node:worker"]


def test_every_node_a_flow_ends_at_serves_that_flows_port_and_answers_it() -> None:
    (s,) = loads("{name: x, workloads: [{name: web, project: p, nodes: [worker]}], "
                 "projects: [{name: p}], "
                 "services: [{name: e, project: p, selector: {app: none}, type: NodePort}], "
                 "flows: [{from: 'pod:p/web', to: 'node:worker2', port: 8080/TCP},"
                 " {from: 'client:client', to: 'node:worker', port: 8080/TCP}]}")
    preds = {p.flow.label: p for p in predict_all(resolve(s))}
    assert preds["client:client -> node:worker"].verdict == "allowed"
    assert preds["pod:p/web -> node:worker2"].verdict == "allowed"
    # worker2 serves 8080 only because a flow ends there; worker2's other ports stay closed
    assert host_servers(resolve(s)) == {"worker": frozenset({Port(8080, "TCP")}),
                                        "worker2": frozenset({Port(8080, "TCP")})}

