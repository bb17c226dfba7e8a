"""Baseline diffs: what CI gating reads to see which flows behave differently now."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netiso.cli import main
from netiso.report.baseline import diff

SCENARIO = """\
name: b
cluster: {encapsulation: vxlan, clients: [alice]}
projects: [{name: a}]
workloads: [{name: w, project: a, nodes: [worker]}]
services: [{name: w, project: a, type: NodePort}]
flows:
  - {from: client:alice, to: "nodeport:a/w@worker"}
  - {from: client:alice, to: "nodeport:a/w@worker2"}
"""


def doc(*flows: tuple[str, str, str, str | None], name: str = "s") -> dict:
    return {"scenarios": [{"name": name, "flows": [
        {"from": f, "to": t, "port": "80/TCP", "predicted": {"verdict": "allowed", "source": []},
         **({"observed": {"verdict": v, "source": src}} if v else {})} for f, t, v, src in flows]}]}


def test_observed_verdict_and_source_changes_are_reported() -> None:
    old = doc(("a", "b", "allowed", "node:x"), ("a", "c", "allowed", "client:a"))
    new = doc(("a", "b", "dropped", None), ("a", "c", "allowed", "tunnel:x"))
    assert [(c.what, c.before, c.after) for c in diff(old, new)] == [
        ("verdict", "allowed", "dropped"), ("source", "client:a", "tunnel:x")]


def test_added_and_removed_flows_only_within_scenarios_that_ran() -> None:
    old = doc(("a", "b", "allowed", "x"), ("a", "gone", "allowed", "x"))
    old["scenarios"].append({"name": "not-run", "flows": [{"from": "p", "to": "q", "port": "1/TCP",
                                                            "predicted": {"verdict": "dropped"}}]})
    new = doc(("a", "b", "allowed", "x"), ("a", "new", "dropped", None))
    assert [(c.key[2], c.what) for c in diff(old, new)] == [("new", "added"), ("gone", "removed")]


def test_explain_baseline_prints_the_changed_flows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SCENARIO)
    base = tmp_path / "base.json"
    assert main(["explain", str(scenario), "--json", str(base)]) == 0
    data = json.loads(base.read_text())
    data["scenarios"][0]["flows"][1]["predicted"]["verdict"] = "dropped"  # as if an older build predicted so
    base.write_text(json.dumps(data))
    capsys.readouterr()
    assert main(["explain", str(scenario), "--baseline", str(base)]) == 0
    out = capsys.readouterr().out
    assert "1 flows differ from the baseline" in out
    assert "b: client:alice -> nodeport:a/w@worker2 (8080/TCP): verdict dropped -> allowed" in out


@pytest.mark.parametrize("content, message", [("{not json", "not a JSON result document"),
                                              ('{"flows": []}', "no 'scenarios' list")])
def test_bad_baseline_exits_2_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              content: str, message: str) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SCENARIO)
    base = tmp_path / "base.json"
    base.write_text(content)
    assert main(["check", str(scenario), "--baseline", str(base)]) == 2
    err = capsys.readouterr().err
    assert str(base) in err and message in err
