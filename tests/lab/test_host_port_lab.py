"""hostPorts on the kernel lab: the portmap plugin's DNAT rules decide, every flow as predicted.

The bundled scenarios/host-port.yaml (bin/conformance runs it too) and a second scenario that
reaches the port on each replica's own node, over UDP, and from the node itself (nat OUTPUT):
verdict, source, answerer and the deciding rule read from the kernel's TRACE must match.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from netiso.checking import check_many
from netiso.model.addressing import load_topologies

pytestmark = pytest.mark.lab

BUNDLED = Path(__file__).resolve().parents[2] / "scenarios" / "host-port.yaml"
SPREAD = """name: host-port-spread
cluster: {clients: [alice]}
projects: [{name: demo}]
workloads:
  - {name: web, project: demo, nodes: [worker, worker2],
     ports: [{port: 8080, hostPort: 9090}, {port: 53, hostPort: 5353, protocol: UDP}]}
flows:
  - {from: client:alice, to: hostport:demo/web@worker2, expect: {source: client:alice, answeredBy: pod:demo/web@worker2}}
  - {from: client:alice, to: hostport:demo/web@worker, port: 53/UDP, expect: {answeredBy: pod:demo/web@worker}}
  - {from: node:worker, to: hostport:demo/web@worker, expect: {source: node:worker, answeredBy: pod:demo/web@worker}}
  - {from: node:control-plane, to: hostport:demo/web@worker2, expect: {answeredBy: pod:demo/web@worker2}}
"""


def _mismatches(results: list) -> list[str]:  # type: ignore[type-arg]
    return [f"{r.pred.flow.label}: {'; '.join(r.problems) or r.pred.disagreements}" for r in results if not r.match]


def test_the_bundled_host_port_scenario_matches_the_oracle_on_the_lab() -> None:
    (res,) = check_many(load_topologies([str(BUNDLED)]), jobs=1)
    assert not _mismatches(res.results), "\n".join(_mismatches(res.results))
    assert [r.obs.verdict for r in res.results] == ["allowed", "dropped", "dropped"]
    assert [r.obs.decided_by for r in res.results][1:] == ["isolation shop ingress drop"] * 2


def test_host_ports_on_each_replicas_node_over_tcp_udp_and_from_the_node_itself(tmp_path: Path) -> None:
    path = tmp_path / "spread.yaml"
    path.write_text(SPREAD, encoding="utf-8")
    (res,) = check_many(load_topologies([str(path)]), jobs=1)
    assert not _mismatches(res.results), "\n".join(_mismatches(res.results))
    assert [r.obs.verdict for r in res.results] == ["allowed"] * 4
