"""minimal-config's cluster-wide answer: KubeSphere settings where they are smaller than the
per-project whitelist entries (netiso/oracle/minimal_cluster.py), verified by the oracle and by
a proof lab that can fail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import netiso.minimizing as minimizing
from netiso.model.loader import load_scenarios
from netiso.oracle.minimal import minimal_config, minimal_json
from netiso.oracle.minimal_cluster import cluster_alternative
from netiso.oracle.predict import predict_all

ROOT = Path(__file__).resolve().parents[2]


def _result(name: str, file: str) -> Any:
    (s,) = [x for x in load_scenarios([str(ROOT / "scenarios" / file)]) if x.name == name]
    return minimal_config(s)


def test_one_snat_annotation_replaces_two_projects_entries() -> None:
    r = _result("kubesphere-snat-node-ips-minimal", "snat-node-ips-minimal.yaml")
    assert len(r.entries) == 2
    alt = cluster_alternative(r)
    assert alt is not None
    assert (alt.snat_node_ips, alt.allowed_ingress_namespaces, alt.replaces) == (("tunnel:worker2",), (), 2)
    # the price: bob on 9090, left out by the entries' ports, is let in by the annotation
    assert [(n.flow.src, n.flow.dst, str(n.flow.port)) for n in alt.opens] == [
        ("client:bob", "nodeport:shop/web@worker2", "9090/TCP")]


def test_gateway_namespace_becomes_allowed_ingress_namespace() -> None:
    r = _result("ingress-nodeport-cluster-vxlan", "ingress.yaml")
    alt = cluster_alternative(r)
    assert alt is not None and alt.allowed_ingress_namespaces == ("kubesphere-controls-system",)
    assert alt.snat_node_ips == () and alt.replaces == 2


def test_single_project_gets_no_cluster_wide_proposal() -> None:
    r = _result("nodeport-cluster-vxlan", "nodeport.yaml")
    assert r.entries and cluster_alternative(r) is None


def test_output_says_so() -> None:
    r = _result("kubesphere-snat-node-ips-minimal", "snat-node-ips-minimal.yaml")
    minimizing.attach_alternatives([r])
    text = minimizing.minimal_table(r)
    assert "smaller cluster-wide answer: 1 KubeSphere setting(s) instead of 2 whitelist entries" in text
    assert "cluster.kubesphere.snatNodeIPs: [tunnel:worker2]" in text
    doc = minimal_json([r])["scenarios"][0]["clusterSettings"]
    assert doc["kubesphere"] == {"allowedIngressNamespaces": [], "snatNodeIPs": ["tunnel:worker2"]}
    assert doc["replaces"] == 2 and doc["opens"][0]["from"] == "client:bob"


class _Obs:
    def __init__(self, verdict: str) -> None:
        self.verdict = verdict


class _Res:
    def __init__(self, verdict: str) -> None:
        self.obs = _Obs(verdict)


class _Scen:
    def __init__(self, verdicts: list[str]) -> None:
        self.results = [_Res(v) for v in verdicts]
        self.timings: dict[str, float] = {}


def test_alternative_proof_lab_carries_the_settings_and_can_fail() -> None:
    r = _result("kubesphere-snat-node-ips-minimal", "snat-node-ips-minimal.yaml")
    minimizing.attach_alternatives([r])
    labs = minimizing.proof_labs(r)
    (alt_lab,) = [lab for lab in labs if lab.alternative]
    scenario = alt_lab.topo.scenario
    assert scenario.cluster.kubesphere.snat_node_ips == ("tunnel:worker2",)
    assert all(not p.whitelist for p in scenario.projects if p.name in ("shop", "billing"))
    ok = minimizing.prove([r], runner=lambda topos: [_Scen([p.verdict for p in predict_all(t)]) for t in topos])
    assert ok and r.alternative.verified is True
    r2 = _result("kubesphere-snat-node-ips-minimal", "snat-node-ips-minimal.yaml")
    minimizing.attach_alternatives([r2])
    minimizing.prove([r2], runner=lambda topos: [_Scen(["dropped"] * len(t.scenario.flows)) for t in topos])
    assert r2.alternative.verified is False
    assert any("wanted flow client:alice -> nodeport:shop/web@worker2 was dropped" in m for m in r2.alternative.proof)
