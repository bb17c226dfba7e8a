"""The lab enforces exactly the NetworkPolicy manifests ``netiso render`` prints (never the
tenancy model directly): the documents a Kubernetes backend would apply and the rules the lab
compiles come from one list."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from netiso.cli import main
from netiso.model.addressing import load_topologies

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted((ROOT / "scenarios").glob("*.yaml"))


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_rendered_network_policies_are_the_lab_policies(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", str(path)]) == 0
    rendered = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d and d.get("kind") == "NetworkPolicy"]
    lab = [p for topo in load_topologies([str(path)]) for p in topo.policies]
    assert lab, "bundled scenarios all carry policies"
    assert rendered == lab
