"""Bad ``hostPort`` workload ports and ``hostport:P/W@NODE`` flows: one message naming the field, exit 2.

The port is open on the nodes of the workload's replicas only (the CNI portmap plugin writes
its DNAT there), so a flow to another node's hostPort is refused as input, not predicted.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from netiso.model.loader import loads
from tests.model.test_loader_errors import assert_refused

BASE = ("name: t\ncluster: {clients: [alice]}\nprojects: [{name: demo}]\n"
        "workloads: [{name: web, project: demo, nodes: [worker], ports: [8081, {port: 8080, hostPort: 9090}]},\n"
        "            {name: probe, project: demo, nodes: [worker2]}]\n")

BAD = [
    ("flows: [{from: client:alice, to: hostport:demo/web@worker2}]\n", "flows[0].to",
     ("no replica on 'worker2'", "open only on its pods' nodes (worker)")),
    ("flows: [{from: client:alice, to: hostport:demo/web}]\n", "flows[0].to", ("needs @NODE",)),
    ("flows: [{from: client:alice, to: hostport:demo/probe@worker2}]\n", "flows[0].to", ("has no hostPort",)),
    ("flows: [{from: client:alice, to: hostport:demo/web@worker, port: 8081}]\n", "flows[0].port",
     ("no hostPort on 8081/TCP", "8080/TCP")),
    ("flows: [{from: client:alice, to: hostport:demo/nothing@worker}]\n", "flows[0].to", ("unknown workload",)),
]
BAD_WORKLOADS = [
    ("[{port: 8080, hostPort: 0}]", "workloads[0].ports[0].hostPort", ("not a port number 1-65535",)),
    ("[{port: 8080, hostPort: '9090'}]", "workloads[0].ports[0].hostPort", ("not a port number",)),
    ("[{port: 8080, hostPort: 9090}, {port: 8081, hostPort: 9090}]", "workloads[0].ports[1].hostPort",
     ("listed twice",)),
    ("[{port: 8080, hostport: 9090}]", "workloads[0].ports[0].hostport", ("did you mean 'hostPort'",)),
]


@pytest.mark.parametrize(("extra", "field", "says"), BAD, ids=[b[1] + str(i) for i, b in enumerate(BAD)])
def test_bad_host_port_flow_is_one_message_naming_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                            extra: str, field: str, says: tuple[str, ...]) -> None:
    assert_refused(tmp_path, capsys, BASE + extra, field, says)


@pytest.mark.parametrize(("ports", "field", "says"), BAD_WORKLOADS, ids=[b[0] for b in BAD_WORKLOADS])
def test_bad_host_port_is_one_message_naming_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       ports: str, field: str, says: tuple[str, ...]) -> None:
    text = f"name: t\nprojects: [{{name: demo}}]\nworkloads: [{{name: web, project: demo, nodes: [worker], ports: {ports}}}]\n"
    assert_refused(tmp_path, capsys, text, field, says)


def test_two_pods_with_one_host_port_on_a_node_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = ("name: t\nprojects: [{name: demo}]\nworkloads: [{name: a, project: demo, nodes: [worker], "
            "ports: [{port: 8080, hostPort: 9090}]}, {name: b, project: demo, nodes: [worker2, worker], "
            "ports: [{port: 80, hostPort: 9090}]}]\n")
    assert_refused(tmp_path, capsys, text, "workloads[1].ports", ("hostPort 9090/TCP is already taken", "demo/a"))


def test_every_existing_port_form_stays_valid_and_host_ports_are_kept_apart() -> None:
    (s,) = loads("name: t\nprojects: [{name: demo}]\nworkloads: [{name: web, project: demo, nodes: [worker], "
                 "ports: [8081, 8082/UDP, {port: 8083, name: metrics}, {port: 8080, hostPort: 9090, protocol: UDP}]}]\n")
    (w,) = s.workloads
    assert [str(p) for p in w.ports] == ["8081/TCP", "8082/UDP", "8083/TCP", "8080/UDP"]
    assert [(h, str(p)) for h, p in w.host_ports] == [(9090, "8080/UDP")]


def test_the_workload_pod_manifest_carries_the_host_port_on_its_container_port() -> None:
    from netiso.model.addressing import resolve
    from netiso.model.render import workload_pod

    topo = resolve(loads(BASE)[0])
    (pod,) = topo.pods_of("demo", "web")
    ports = [p for c in workload_pod(pod)["spec"]["containers"] for p in c["ports"]]
    assert sorted(ports, key=lambda p: p["containerPort"]) == [
        {"containerPort": 8080, "protocol": "TCP", "hostPort": 9090}, {"containerPort": 8081, "protocol": "TCP"}]


def test_a_pod_to_its_own_host_port_is_accepted_input() -> None:
    """The hairpin flow (portmap masquerades it, oracle/paths.py) is a flow like any other."""
    (s,) = loads(BASE + "flows: [{from: pod:demo/web, to: hostport:demo/web@worker}]\n")
    assert [(f.src, f.dst) for f in s.flows] == [("pod:demo/web", "hostport:demo/web@worker")]
