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
    topos = load_topologies([str(BUNDLED)])
    (res,) = check_many(topos, jobs=1)
    assert not _mismatches(res.results), "\n".join(_mismatches(res.results))
    assert [r.obs.verdict for r in res.results] == ["allowed", "dropped", "dropped", "allowed"]
    assert [r.obs.decided_by for r in res.results][1:3] == ["isolation shop ingress drop"] * 2
    hairpin = res.results[3]  # web to its own hostPort: portmap's mark + MASQUERADE, web's own project admits it
    assert hairpin.obs.decided_by == "policy shop/nsnp-network-isolate ingress allow; masquerade portmap"
    worker = topos[0].nodes["worker"]
    assert hairpin.obs.source_ip in (worker.ip, worker.tunnel_ip) and hairpin.obs.answered_by == "pod:shop/web@worker"


HAIRPIN = """name: host-port-hairpin
cluster: {clients: [alice]}
projects: [{name: demo}]
networkPolicies:
  - apiVersion: networking.k8s.io/v1
    kind: NetworkPolicy
    metadata: {name: node-network-only, namespace: demo}
    spec:
      podSelector: {matchLabels: {app: web}}
      ingress: [{from: [{ipBlock: {cidr: 198.18.0.0/24}}]}]
workloads:
  - {name: web, project: demo, nodes: [worker], ports: [{port: 8080, hostPort: 9090}, {port: 53, hostPort: 5353, protocol: UDP}]}
  - {name: other, project: demo, nodes: [worker], ports: [{port: 8080, hostPort: 9191}]}
flows:
  - {from: client:alice, to: hostport:demo/web@worker, expect: {verdict: allowed, source: client:alice}}
  - {from: pod:demo/web, to: hostport:demo/web@worker, expect: {verdict: dropped}}
  - {from: pod:demo/web, to: hostport:demo/web@worker, port: 53/UDP, expect: {verdict: dropped}}
  - {from: pod:demo/other, to: hostport:demo/other@worker, expect: {verdict: allowed, answeredBy: pod:demo/other@worker}}
  - {from: pod:demo/other, to: hostport:demo/web@worker, expect: {verdict: dropped}}
"""


def test_hairpin_is_masqueraded_after_the_policy_which_sees_the_pod_itself(tmp_path: Path) -> None:
    """A policy admitting only the node network admits the client, yet drops web's own hairpin (TCP and UDP):
    it decides on web's pod IP, in FORWARD before CNI-HOSTPORT-MASQ rewrites it to a node address. ``other``
    (no policy selects it) reaches its own hostPort and sees its node; a same-node pod that is not web is
    not marked (the mark is for the pod's own /32) and is dropped on its pod IP too."""
    path = tmp_path / "hairpin.yaml"
    path.write_text(HAIRPIN, encoding="utf-8")
    topos = load_topologies([str(path)])
    (res,) = check_many(topos, jobs=1)
    assert not _mismatches(res.results), "\n".join(_mismatches(res.results))
    assert [r.obs.verdict for r in res.results] == ["allowed", "dropped", "dropped", "allowed", "dropped"]
    assert [r.obs.decided_by for r in res.results][1:3] == ["isolation demo ingress drop"] * 2
    assert res.results[3].obs.decided_by == "profile demo ingress allow; masquerade portmap"
    worker = topos[0].nodes["worker"]
    assert res.results[3].obs.source_ip in (worker.ip, worker.tunnel_ip)


def test_host_ports_on_each_replicas_node_over_tcp_udp_and_from_the_node_itself(tmp_path: Path) -> None:
    path = tmp_path / "spread.yaml"
    path.write_text(SPREAD, encoding="utf-8")
    (res,) = check_many(load_topologies([str(path)]), jobs=1)
    assert not _mismatches(res.results), "\n".join(_mismatches(res.results))
    assert [r.obs.verdict for r in res.results] == ["allowed"] * 4
