"""A mismatch comes with its evidence: the involved nodes' rules, routes and neighbours, and a
scapy capture of the flow retried on the node network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netiso.cli import main

pytestmark = pytest.mark.lab

# bob is not whitelisted, so the flow is dropped; the scenario (wrongly) expects it allowed
SCENARIO = """\
name: evidence
cluster: {encapsulation: vxlan, clients: [alice, bob]}
workspaces:
  - name: ws
    projects:
      - name: shop
        isolation: true
        whitelist: [{direction: ingress, peer: {cidr: client:alice}}]
workloads: [{name: web, project: shop, nodes: [worker]}]
services: [{name: web, project: shop, type: NodePort}]
flows:
  - {from: client:alice, to: "nodeport:shop/web@worker"}
  - from: client:bob
    to: "nodeport:shop/web@worker"
    expect: {verdict: allowed}
"""


def test_mismatch_carries_rules_routes_and_a_capture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = tmp_path / "evidence.yaml"
    scenario.write_text(SCENARIO)
    out = tmp_path / "out.json"
    assert main(["check", str(scenario), "--json", str(out)]) == 1
    flows = json.loads(out.read_text())["scenarios"][0]["flows"]
    good, bad = flows
    assert good["match"] is True and "evidence" not in good["observed"]
    assert bad["match"] is False
    assert "scenario expects allowed, observed dropped" in bad["problems"]
    evidence = bad["observed"]["evidence"]
    node = evidence["node:worker"]
    assert "KUBE-NODEPORTS" in node and "cali-tw-" in node  # kube-proxy and Calico rules of the entry node
    assert "## ip route" in node and "## ip neigh" in node and "## bridge fdb" in node
    capture = evidence["capture br0"]
    assert "198.18.0.101" in capture and "198.18.0.11" in capture  # bob's SYN to the node, seen on the wire
    assert evidence["retry"].startswith("dropped")
