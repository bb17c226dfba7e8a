"""A workload's ``state`` and a Service's ``publishNotReadyAddresses``: what they mean, and bad input.

The conditions table is upstream's podToEndpoint (staging/src/k8s.io/endpointslice/utils.go),
written here as facts; each bad input is one message naming file, document and field, exit 2.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from netiso.model.addressing import resolve
from netiso.model.endpoint_states import EndpointConditions, announcing_counts, conditions
from netiso.model.loader import loads
from tests.model.test_loader_errors import assert_refused

# (state, publishNotReadyAddresses) -> (ready, serving, terminating), from podToEndpoint
FACTS = {
    ("ready", False): (True, True, False),
    ("not-ready", False): (False, False, False),
    ("terminating", False): (False, True, True),
    ("terminating-not-ready", False): (False, False, True),
    ("ready", True): (True, True, False),
    ("not-ready", True): (True, False, False),
    ("terminating", True): (True, True, True),
    ("terminating-not-ready", True): (True, False, True),
}


@pytest.mark.parametrize(("key", "want"), FACTS.items(), ids=[f"{s}-pna{p}" for s, p in FACTS])
def test_conditions_are_the_endpointslice_controllers(key: tuple[str, bool], want: tuple[bool, bool, bool]) -> None:
    assert conditions(*key) == EndpointConditions(*want)


def test_speakers_count_endpoints_each_their_own_way() -> None:
    # MetalLB EndpointCanServe: ready or serving; OpenELB: the Endpoints' addresses (Ready, not deleted)
    assert announcing_counts("metallb", "terminating", False) and not announcing_counts("openelb", "terminating", False)
    assert not announcing_counts("metallb", "not-ready", False) and announcing_counts("metallb", "not-ready", True)
    assert announcing_counts("openelb", "terminating-not-ready", True)


def test_states_reach_the_topology() -> None:
    (s,) = loads("name: t\nprojects: [{name: demo}]\nworkloads: [{name: web, project: demo, nodes: [worker, worker2],"
                 " state: {worker2: terminating}}]\nservices: [{name: web, project: demo, publishNotReadyAddresses: true}]\n")
    topo = resolve(s)
    assert [(p.node, p.state) for p in topo.pods] == [("worker", "ready"), ("worker2", "terminating")]
    assert topo.services["demo/web"].publish_not_ready


BASE = "name: t\nprojects: [{name: demo}]\n"
BAD = [
    ("workloads: [{name: web, project: demo, nodes: [worker], state: {worker2: not-ready}}]\n",
     "workloads[0].state.worker2", ("no replica on 'worker2'", "runs on worker")),
    ("workloads: [{name: web, project: demo, nodes: [worker], state: {worker: gone}}]\n",
     "workloads[0].state.worker", ("'gone' is not an endpoint state", "terminating-not-ready")),
    ("workloads: [{name: web, project: demo, nodes: [worker], state: [worker]}]\n",
     "workloads[0].state", ("expected a mapping of node to state",)),
    ("workloads: [{name: web, project: demo, nodes: [worker]}]\n"
     "services: [{name: web, project: demo, publishNotReadyAddresses: 'yes'}]\n",
     "services[0].publishNotReadyAddresses", ("expected true or false",)),
]


@pytest.mark.parametrize(("extra", "field", "says"), BAD, ids=[b[1] for b in BAD])
def test_bad_endpoint_state_input_is_one_message_naming_the_field(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: str, field: str, says: tuple[str, ...]) -> None:
    assert_refused(tmp_path, capsys, BASE + extra, field, says)
