"""The minimal whitelist computed by the oracle (netiso.oracle.minimal) and its CLI contract.

Expected entries come from docs/reference-facts.md and design.md ("Behaviour model"), written
here per case, not from the oracle: ETP Cluster entering the endpoint node keeps the client for
the policy (filter FORWARD runs before KUBE-POSTROUTING's MASQUERADE); entering another node the
policy sees the entry node's tunnel address (IPIP/VXLAN) or InternalIP (direct), which every
client shares; ETP Local keeps the client and drops on nodes without an endpoint; an ingress
backend sees the controller pod, so its namespace is the entry. Each whitelist found is also
re-checked with the plain predictor (predict_all on the scenario carrying it), so the recorder
that reads policy decisions cannot agree with itself by accident.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from netiso.cli import main
from netiso.model.addressing import resolve
from netiso.model.errors import InputError
from netiso.model.loader import loads
from netiso.model.types import Scenario
from netiso.oracle.minimal import Entry, MinimalConfig, minimal_config, minimal_json
from netiso.oracle.predict import predict_all

GATEWAY = "kubesphere-controls-system"
ALICE_W = "client:alice -> nodeport:shop/web@worker"
ALICE_W2 = "client:alice -> nodeport:shop/web@worker2"


def scenario(doc: dict[str, Any]) -> Scenario:
    (s,) = loads(yaml.safe_dump(doc, sort_keys=False), "minimal.yaml")
    return s


def shop(*, enc: str = "vxlan", etp: str = "Cluster", stype: str = "NodePort", flows: list[dict[str, Any]],
         whitelist: list[dict[str, Any]] | None = None, extra_services: list[dict[str, Any]] | None = None,
         workloads: list[dict[str, Any]] | None = None, lb: str = "metallb") -> Scenario:
    """Project shop (isolated) with web on worker; project tools (not isolated) with a probe on worker2."""
    return scenario({
        "name": f"min-{enc}-{etp.lower()}",
        "cluster": {"encapsulation": enc, "clients": ["alice", "bob"], "loadBalancer": lb},
        "workspaces": [{"name": "ws", "projects": [
            {"name": "shop", "isolation": True, "whitelist": whitelist or []}, {"name": "tools"}]}],
        "workloads": workloads or [{"name": "web", "project": "shop", "nodes": ["worker"]},
                                   {"name": "probe", "project": "tools", "nodes": ["worker2"]}],
        "services": [{"name": "web", "project": "shop", "type": stype,
                      **({} if stype == "ClusterIP" else {"externalTrafficPolicy": etp})},
                     *(extra_services or [])],
        "flows": flows,
    })


def wanted(src: str, dst: str, **kw: Any) -> dict[str, Any]:
    return {"from": src, "to": dst, "intent": "wanted", **kw}


def unwanted(src: str, dst: str, **kw: Any) -> dict[str, Any]:
    return {"from": src, "to": dst, "intent": "unwanted", **kw}


def peers(result: MinimalConfig, project: str = "shop") -> list[str]:
    p = result.project(project)
    assert p is not None, f"{project} not reported: {[x.project for x in result.projects]}"
    return [e.peer for e in p.whitelist]


def assert_whitelist_works(result: MinimalConfig) -> None:
    """Independent check: with the whitelist applied, the plain predictor passes every satisfiable
    wanted flow, and without any single entry at least one of its neededBy flows fails."""
    unsat = {n.flow.index for p in result.projects for n in p.unsatisfiable}

    def verdicts(entries: list[Entry]) -> dict[int, set[str]]:
        topo = resolve(result.scenario_with(entries))
        return {p.flow.index: {o.verdict for o in p.outcomes} for p in predict_all(topo)}

    full = verdicts(result.entries)
    for flow in result.scenario.flows:
        if flow.intent == "wanted" and flow.index not in unsat:
            assert full[flow.index] == {"allowed"}, f"{flow.label}: {full[flow.index]} with the minimal whitelist"
    for entry in result.entries:
        assert entry.needed_by, f"{entry.peer}: no neededBy"
        without = verdicts([e for e in result.entries if e != entry])
        needed = [f for f in result.scenario.flows if f.label in entry.needed_by]
        assert any(without[f.index] != {"allowed"} for f in needed), f"{entry.peer} is not needed"


# --------------------------------------------------------------------------- NodePort


def test_cluster_entering_the_endpoint_node_needs_only_the_client_cidr() -> None:
    r = minimal_config(shop(flows=[wanted("client:alice", "nodeport:shop/web@worker"),
                                   unwanted("client:bob", "nodeport:shop/web@worker")]))
    assert peers(r) == ["cidr: client:alice"]
    (entry,) = r.entries
    assert [str(p) for p in entry.ports] == ["8080/TCP"]  # the pod's port after DNAT, not the NodePort
    assert entry.needed_by == (ALICE_W,)
    assert "MASQUERADE" in entry.reason and "KUBE-MARK-MASQ" in entry.reason  # derived from the path
    assert r.project("shop").forced_open == []  # bob keeps his own address: the policy drops him
    assert_whitelist_works(r)


@pytest.mark.parametrize(("enc", "want"), [("vxlan", "cidr: tunnel:worker2"), ("ipip", "cidr: tunnel:worker2"),
                                           ("direct", "cidr: node:worker2")])
def test_cluster_entering_another_node_needs_its_snat_address_and_opens_bob(enc: str, want: str) -> None:
    r = minimal_config(shop(enc=enc, flows=[wanted("client:alice", "nodeport:shop/web@worker2"),
                                            unwanted("client:bob", "nodeport:shop/web@worker2")]))
    assert peers(r) == [want]
    reason = r.entries[0].reason
    assert "worker2" in reason and "MASQUERADE" in reason and "another node" in reason
    (forced,) = r.project("shop").forced_open
    assert (forced.flow.src, forced.flow.dst) == ("client:bob", "nodeport:shop/web@worker2")
    assert "minimal-1" in forced.because and want.split(": ")[1] in forced.because
    assert "masqueraded" in forced.because
    assert_whitelist_works(r)


def test_local_needs_the_client_cidr_and_nodes_without_endpoint_are_unsatisfiable() -> None:
    r = minimal_config(shop(etp="Local", flows=[wanted("client:alice", "nodeport:shop/web@worker"),
                                                wanted("client:alice", "nodeport:shop/web@worker2"),
                                                unwanted("client:bob", "nodeport:shop/web@worker")]))
    assert peers(r) == ["cidr: client:alice"]
    p = r.project("shop")
    assert p.forced_open == []
    (unsat,) = p.unsatisfiable
    assert unsat.flow.dst == "nodeport:shop/web@worker2"
    assert "has no local endpoints" in unsat.because and "KUBE-EXTERNAL-SERVICES" in unsat.because
    assert_whitelist_works(r)


def test_an_unannounced_vip_is_unsatisfiable() -> None:
    r = minimal_config(shop(etp="Local", stype="LoadBalancer",
                            workloads=[{"name": "web", "project": "shop", "nodes": ["control-plane"]}],
                            flows=[wanted("client:alice", "loadbalancer:shop/web")]))
    (unsat,) = r.project("shop").unsatisfiable
    assert "announces it from no node" in unsat.because
    assert r.entries == []


def test_two_wanted_flows_share_one_entry_and_ports_accumulate() -> None:
    r = minimal_config(shop(
        extra_services=[{"name": "api", "project": "shop", "selector": {"app": "web"}, "type": "NodePort",
                         "ports": ["9090/TCP"]}],
        workloads=[{"name": "web", "project": "shop", "nodes": ["worker"], "ports": ["8080/TCP", "9090/TCP"]}],
        flows=[wanted("client:alice", "nodeport:shop/web@worker2"),
               wanted("client:alice", "nodeport:shop/api@worker2")]))
    (entry,) = r.entries
    assert entry.peer == "cidr: tunnel:worker2"
    assert [str(p) for p in entry.ports] == ["8080/TCP", "9090/TCP"]
    assert entry.needed_by == (ALICE_W2, "client:alice -> nodeport:shop/api@worker2")
    assert_whitelist_works(r)


def test_entries_that_only_serve_an_unsatisfiable_flow_are_removed() -> None:
    """One endpoint of web is reachable once tunnel:worker2 is whitelisted, the other listens on
    another port (refused): the flow cannot pass for every endpoint, so the entry added on the
    way is needed by no flow that can pass, and greedy removal drops it."""
    r = minimal_config(shop(
        workloads=[{"name": "web", "project": "shop", "nodes": ["worker"]},
                   {"name": "web9", "project": "shop", "nodes": ["worker"], "labels": {"app": "web"},
                    "ports": ["9090/TCP"]}],
        flows=[wanted("client:alice", "nodeport:shop/web@worker2")]))
    assert r.entries == []
    (unsat,) = r.project("shop").unsatisfiable
    assert unsat.because.startswith("for 1 of 2 endpoints") and "refused" in unsat.because


def test_every_entry_is_needed_across_entry_nodes() -> None:
    r = minimal_config(shop(flows=[wanted("client:alice", f"nodeport:shop/web@{n}")
                                   for n in ("worker", "worker2", "control-plane")]))
    assert peers(r) == ["cidr: client:alice", "cidr: tunnel:worker2", "cidr: tunnel:control-plane"]
    assert all(len(e.needed_by) == 1 for e in r.entries)
    assert_whitelist_works(r)


def test_a_pod_of_another_project_is_whitelisted_by_its_project() -> None:
    r = minimal_config(shop(stype="ClusterIP", flows=[wanted("pod:tools/probe", "clusterip:shop/web")]))
    assert peers(r) == ["project: tools"]
    assert "pod:tools/probe@worker2" in r.entries[0].reason
    assert_whitelist_works(r)


def test_the_scenarios_own_ingress_whitelist_is_ignored_and_egress_rules_kept() -> None:
    own = [{"direction": "ingress", "peer": {"cidr": "client:bob"}},
           {"direction": "ingress", "peer": {"cidr": "tunnel:worker"}},
           {"direction": "egress", "peer": {"cidr": "client:bob"}}]
    r = minimal_config(shop(whitelist=own, flows=[wanted("client:alice", "nodeport:shop/web@worker2"),
                                                  unwanted("client:bob", "nodeport:shop/web@worker")]))
    assert peers(r) == ["cidr: tunnel:worker2"]
    assert r.project("shop").ignored == ("ingress-cidr-client-bob", "ingress-cidr-tunnel-worker")
    rules = r.scenario_with().project("shop").whitelist
    assert [(x.name, x.direction, x.peer_value) for x in rules] == [
        ("egress-cidr-client-bob", "egress", "client:bob"), ("minimal-1", "ingress", "tunnel:worker2")]
    assert r.project("shop").forced_open == []  # bob on worker: his own address, no longer whitelisted
    assert_whitelist_works(r)


def test_workspace_isolation_cannot_be_whitelisted() -> None:
    s = scenario({
        "name": "ws-mode", "cluster": {"clients": ["alice"]},
        "workspaces": [{"name": "ws", "isolation": True, "projects": [{"name": "shop"}]}],
        "workloads": [{"name": "web", "project": "shop", "nodes": ["worker"]}],
        "services": [{"name": "web", "project": "shop", "type": "NodePort"}],
        "flows": [wanted("client:alice", "nodeport:shop/web@worker")]})
    r = minimal_config(s)
    p = r.project("shop")
    assert p.mode == "workspace" and p.whitelist == []
    (unsat,) = p.unsatisfiable
    assert "workspace mode" in unsat.because and "project isolation" in unsat.because


def test_an_unwanted_flow_to_a_project_that_is_not_isolated_is_uncovered() -> None:
    r = minimal_config(shop(
        workloads=[{"name": "web", "project": "shop", "nodes": ["worker"]},
                   {"name": "probe", "project": "tools", "nodes": ["worker2"]}],
        flows=[wanted("client:alice", "nodeport:shop/web@worker"), unwanted("client:bob", "pod:tools/probe")]))
    (note,) = r.uncovered
    assert note.flow.dst == "pod:tools/probe"
    assert r.json()["uncovered"][0]["to"] == "pod:tools/probe"


# --------------------------------------------------------------------------- Ingress


def ingress_scenario(controller_etp: str) -> Scenario:
    return scenario({
        "name": f"ing-{controller_etp.lower()}", "cluster": {"encapsulation": "vxlan", "clients": ["alice", "bob"]},
        "workspaces": [{"name": "ws", "projects": [{"name": "shop", "isolation": True}]}],
        "projects": [{"name": GATEWAY}],
        "workloads": [{"name": "web", "project": "shop", "nodes": ["worker"]}],
        "services": [{"name": "web", "project": "shop"}],
        "ingresses": [{"name": "web", "project": "shop", "host": "web.example", "service": "web",
                       "controller": {"project": GATEWAY, "node": "worker2", "exposure": "NodePort",
                                      "externalTrafficPolicy": controller_etp}}],
        "flows": [wanted("client:alice", "ingress:shop/web"), unwanted("client:bob", "ingress:shop/web"),
                  wanted("client:alice", "ingress:shop/web@worker")]})


def test_ingress_needs_the_controller_namespace_and_every_client_comes_along() -> None:
    r = minimal_config(ingress_scenario("Cluster"))
    assert peers(r) == [f"project: {GATEWAY}"]
    entry = r.entries[0]
    assert "nginx" in entry.reason and "ingress-controller" in entry.reason
    assert set(entry.needed_by) == {"client:alice -> ingress:shop/web", "client:alice -> ingress:shop/web@worker"}
    (forced,) = r.project("shop").forced_open
    assert forced.flow.src == "client:bob" and "controller" in forced.because
    assert r.project(GATEWAY) is None  # the gateway namespace is not isolated: nothing to report
    assert_whitelist_works(r)


def test_ingress_local_controller_entered_elsewhere_is_unsatisfiable() -> None:
    r = minimal_config(ingress_scenario("Local"))
    assert peers(r) == [f"project: {GATEWAY}"]
    (unsat,) = r.project("shop").unsatisfiable
    assert unsat.flow.dst == "ingress:shop/web@worker" and "has no local endpoints" in unsat.because


# --------------------------------------------------------------------------- contract


def test_json_follows_the_contract() -> None:
    r = minimal_config(shop(flows=[wanted("client:alice", "nodeport:shop/web@worker2"),
                                   unwanted("client:bob", "nodeport:shop/web@worker2")]))
    doc = json.loads(json.dumps(minimal_json([r])))
    (sdoc,) = doc["scenarios"]
    assert set(sdoc) == {"name", "projects"}
    (pdoc,) = sdoc["projects"]
    assert set(pdoc) == {"project", "whitelist", "forcedOpen", "unsatisfiable"}  # no "verified" without a backend
    assert pdoc["whitelist"] == [{"peer": {"cidr": "tunnel:worker2"}, "ports": ["8080/TCP"],
                                  "reason": r.entries[0].reason, "neededBy": [ALICE_W2]}]
    assert pdoc["forcedOpen"][0].keys() == {"from", "to", "because"}
    assert pdoc["forcedOpen"][0]["from"] == "client:bob"
    r.projects[0].verified = True
    assert minimal_json([r])["scenarios"][0]["projects"][0]["verified"] is True


def test_no_wanted_flow_is_bad_input_naming_the_document() -> None:
    s = shop(flows=[unwanted("client:bob", "nodeport:shop/web@worker")])
    with pytest.raises(InputError) as err:
        minimal_config(s)
    assert "minimal.yaml" in str(err.value) and "document 0" in str(err.value) and "intent: wanted" in str(err.value)


NO_WANTED = """\
name: nothing-wanted
cluster: {clients: [alice]}
workspaces: [{name: ws, projects: [{name: shop, isolation: true}]}]
workloads: [{name: web, project: shop, nodes: [worker]}]
services: [{name: web, project: shop, type: NodePort}]
flows: [{from: client:alice, to: "nodeport:shop/web@worker"}]
"""


def test_cli_exits_2_without_wanted_flows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nothing.yaml"
    path.write_text(NO_WANTED)
    assert main(["minimal-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "document 0 (nothing-wanted)" in err and "intent: wanted" in err


def test_cli_exits_2_when_the_kind_backend_cannot_run_here(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # this machine has neither kind nor docker; an empty PATH makes that certain anywhere
    monkeypatch.setenv("PATH", str(tmp_path))
    path = tmp_path / "np.yaml"
    path.write_text(NO_WANTED.replace('"nodeport:shop/web@worker"}', '"nodeport:shop/web@worker", intent: wanted}'))
    assert main(["minimal-config", str(path), "--backend", "kind"]) == 2
    err = capsys.readouterr().err
    assert "netiso: error:" in err and ("kind" in err or "docker" in err) and "Traceback" not in err


def test_cli_writes_the_json_and_skips_directory_documents_without_wanted_flows(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.yaml").write_text(NO_WANTED.replace('"nodeport:shop/web@worker"}',
                                                       '"nodeport:shop/web@worker2", intent: wanted}'))
    (tmp_path / "b.yaml").write_text(NO_WANTED.replace("nothing-wanted", "other"))
    out = tmp_path / "out.json"
    assert main(["minimal-config", str(tmp_path), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "tunnel:worker2" in text and "skipped 1 scenarios" in text
    doc = json.loads(out.read_text())
    assert [s["name"] for s in doc["scenarios"]] == ["nothing-wanted"]
    assert doc["scenarios"][0]["projects"][0]["whitelist"][0]["peer"] == {"cidr": "tunnel:worker2"}
