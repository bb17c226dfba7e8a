"""The cross-mode comparison groups scenario families and marks rows whose outcome differs."""

from __future__ import annotations

import json
from pathlib import Path

from netiso.cli import main
from netiso.report.compare import family_of, render_mode_comparison

ROOT = Path(__file__).resolve().parents[2]


def test_family_drops_only_the_mode_token() -> None:
    assert family_of("nodeport-cluster-vxlan") == "nodeport-cluster"
    assert family_of("founding-ipip-metallb") == "founding-metallb"
    assert family_of("direct") == ""
    assert family_of("workspace-isolation") is None


def test_bundled_nodeport_family_differs_by_mode_only_where_snat_names_the_tunnel(tmp_path: Path) -> None:
    out = tmp_path / "r"
    assert main(["explain", str(ROOT / "scenarios" / "nodeport.yaml"), "--report", str(out)]) == 0
    text = (out / "modes.md").read_text()
    assert "## nodeport-cluster" in text and "## nodeport-local" in text
    doc = json.loads((out / "results.json").read_text())
    rendered = render_mode_comparison(doc)
    assert rendered == text
    # a row entering worker2 under Cluster shows node:worker2 in direct and tunnel:worker2 elsewhere
    differing = [line for line in text.splitlines() if line.endswith("≠ |")]
    assert differing, "the SNAT address changes with the mode"
    assert all("tunnel:" in line and "node:" in line for line in differing)


def test_metallb_and_openelb_families_side_by_side(tmp_path: Path) -> None:
    out = tmp_path / "r"
    files = [str(ROOT / "scenarios" / f) for f in ("loadbalancer-metallb.yaml", "loadbalancer-openelb.yaml")]
    assert main(["explain", *files, "--report", str(out)]) == 0
    text = (out / "loadbalancers.md").read_text()
    assert "## lb-cluster-vxlan" in text and "| metallb | openelb |" in text
    assert any(line.endswith("≠ |") for line in text.splitlines()), "the announcer (and SNAT address) differs"
