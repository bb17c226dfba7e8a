"""``netiso minimal-config --backend lab``: the minimal whitelist proved on the kernel datapath.

The proof must be able to fail, so besides the honest runs (bundled nodeport.yaml, and a small
file written here) two sabotaged results are proved: one with an entry taken away (a wanted
flow and the SNAT caveat no longer hold on the lab) and one with a redundant entry added (the
lab shows it is not needed, and it lets an unwanted client in). The proof logic itself is also
tested without root against a fake runner that answers with the oracle's own verdicts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import netiso.minimizing as minimizing
from netiso.backends.lab.netns import STATE_DIR
from netiso.cli import main
from netiso.model.loader import loads
from netiso.oracle.minimal import Entry, MinimalConfig, minimal_config
from netiso.oracle.predict import predict_all

ROOT = Path(__file__).resolve().parents[2]
SMALL = """\
name: minimal-lab-vxlan
cluster: {encapsulation: vxlan, clients: [alice, bob]}
workspaces:
  - name: ws
    projects:
      - name: shop
        isolation: true
        whitelist: [{direction: ingress, peer: {cidr: "client:bob"}}]
workloads: [{name: web, project: shop, nodes: [worker]}]
services: [{name: web, project: shop, type: NodePort}]
flows:
  - {from: client:alice, to: "nodeport:shop/web@worker", intent: wanted}
  - {from: client:alice, to: "nodeport:shop/web@worker2", intent: wanted}
  - {from: client:bob, to: "nodeport:shop/web@worker", intent: unwanted}
  - {from: client:bob, to: "nodeport:shop/web@worker2", intent: unwanted}
"""


def small_result() -> MinimalConfig:
    (s,) = loads(SMALL, "small.yaml")
    return minimal_config(s)


# --------------------------------------------------------------------------- proof logic, no root


@dataclass
class _Obs:
    verdict: str


@dataclass
class _Res:
    obs: _Obs


@dataclass
class _ScenarioRes:
    results: list[_Res]
    timings: dict[str, float]


def oracle_runner(topos: list[Any]) -> list[_ScenarioRes]:
    """A stand-in backend that observes exactly what the oracle predicts for each lab."""
    return [_ScenarioRes([_Res(_Obs(p.verdict)) for p in predict_all(t)], {}) for t in topos]


def test_proof_labs_cover_the_whitelist_and_each_removal() -> None:
    r = small_result()
    labs = minimizing.proof_labs(r)
    assert [lab.title for lab in labs] == ["minimal whitelist", "without minimal-1 (cidr: client:alice)",
                                           "without minimal-2 (cidr: tunnel:worker2)"]
    roles = {c.flow.label: (c.role, c.allowed) for c in labs[0].claims}
    assert roles == {"client:alice -> nodeport:shop/web@worker": ("wanted", True),
                     "client:alice -> nodeport:shop/web@worker2": ("wanted", True),
                     "client:bob -> nodeport:shop/web@worker": ("unwanted", False),
                     "client:bob -> nodeport:shop/web@worker2": ("forcedOpen", True)}
    assert [c.flow.label for c in labs[2].claims] == ["client:alice -> nodeport:shop/web@worker2"]
    assert all(f.expect is None for lab in labs for f in lab.topo.scenario.flows)


def test_proof_with_the_oracles_verdicts_verifies() -> None:
    r = small_result()
    minimizing.prove([r], runner=oracle_runner)
    assert [(p.project, p.verified, p.proof) for p in r.projects] == [("shop", True, [])]


def test_proof_fails_when_every_flow_passes() -> None:
    r = small_result()

    def everything_allowed(topos: list[Any]) -> list[_ScenarioRes]:
        return [_ScenarioRes([_Res(_Obs("allowed")) for _ in t.scenario.flows], {}) for t in topos]

    minimizing.prove([r], runner=everything_allowed)
    (p,) = r.projects
    assert p.verified is False
    assert any("unwanted flow client:bob -> nodeport:shop/web@worker was allowed" in m for m in p.proof)
    assert sum("the entry is not needed" in m for m in p.proof) == 2


# --------------------------------------------------------------------------- on the lab


@pytest.fixture
def no_leftovers() -> Iterator[None]:
    """After the test, no lab run owned by this process is left (state files name their owner)."""
    yield
    mine = []
    for path in STATE_DIR.glob("*.json") if STATE_DIR.is_dir() else []:
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if (state.get("owner") or {}).get("pid") == os.getpid():
            mine.append(path.stem)
    assert not mine, f"lab runs left behind: {mine}"


def _json_projects(path: Path) -> list[dict[str, Any]]:
    return [p for s in json.loads(path.read_text())["scenarios"] for p in s["projects"]]


@pytest.mark.lab
def test_bundled_nodeport_whitelists_are_verified(tmp_path: Path, no_leftovers: None,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "minimal.json"
    assert main(["minimal-config", str(ROOT / "scenarios" / "nodeport.yaml"), "--backend", "lab",
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    projects = _json_projects(out)
    assert len(projects) == 6 and all(p["verified"] is True for p in projects), text
    cluster_vxlan = projects[0]
    assert [e["peer"] for e in cluster_vxlan["whitelist"]] == [
        {"cidr": "client:alice"}, {"cidr": "tunnel:worker2"}, {"cidr": "tunnel:control-plane"}]
    assert {f["from"] for f in cluster_vxlan["forcedOpen"]} == {"client:bob"}


@pytest.mark.lab
def test_small_file_is_verified_and_its_own_whitelist_ignored(tmp_path: Path, no_leftovers: None,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    path, out = tmp_path / "small.yaml", tmp_path / "out.json"
    path.write_text(SMALL)
    assert main(["minimal-config", str(path), "--backend", "lab", "--json", str(out)]) == 0
    (p,) = _json_projects(out)
    assert p["verified"] is True and "proof" not in p
    assert [e["peer"] for e in p["whitelist"]] == [{"cidr": "client:alice"}, {"cidr": "tunnel:worker2"}]
    assert "verified on the lab: yes" in capsys.readouterr().out


@pytest.mark.lab
def test_a_missing_entry_is_caught_by_the_lab(tmp_path: Path, no_leftovers: None,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Sabotage: tunnel:worker2 is taken out of the computed whitelist before the proof."""
    def without_tunnel(scenario: Any, *args: Any) -> MinimalConfig:
        result = minimal_config(scenario, *args)
        for p in result.projects:
            p.whitelist = [e for e in p.whitelist if e.peer_value != "tunnel:worker2"]
        return result

    monkeypatch.setattr(minimizing, "minimal_config", without_tunnel)
    path, out = tmp_path / "small.yaml", tmp_path / "out.json"
    path.write_text(SMALL)
    assert main(["minimal-config", str(path), "--backend", "lab", "--json", str(out)]) == 1
    (p,) = _json_projects(out)
    assert p["verified"] is False
    proof = "\n".join(p["proof"])
    assert "wanted flow client:alice -> nodeport:shop/web@worker2 was dropped on the lab, expected allowed" in proof
    assert "forcedOpen flow client:bob -> nodeport:shop/web@worker2 was dropped" in proof
    assert "verified on the lab: NO" in capsys.readouterr().out


@pytest.mark.lab
def test_a_redundant_entry_is_caught_by_the_lab(no_leftovers: None) -> None:
    """Sabotage: client:bob is added and claimed to be needed by alice's flow on worker."""
    r = small_result()
    (p,) = r.projects
    p.whitelist.append(Entry("shop", "cidr", "client:bob", p.whitelist[0].ports, "sabotage",
                             ("client:alice -> nodeport:shop/web@worker",)))
    minimizing.prove([r])
    assert p.verified is False
    assert any("without minimal-3 (cidr: client:bob)" in m and "the entry is not needed" in m for m in p.proof)
    assert any("unwanted flow client:bob -> nodeport:shop/web@worker was allowed" in m for m in p.proof)
