"""`netiso check --backend kind` as a real subprocess: exit 2 without Docker or its daemon; dry-run with neither tool."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def netiso(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netiso.cli", *args], capture_output=True, text=True, env=env, cwd=cwd,
                          check=False)


def test_check_backend_kind_without_docker_exits_2_with_the_hint_and_no_traceback(standins_without, tmp_path) -> None:
    s = standins_without("docker")
    proc = netiso(["check", "--backend", "kind", str(ROOT / "scenarios" / "nodeport.yaml")], {**s.env, "PYTHONPATH": str(ROOT)},
                  tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Docker is not installed" in proc.stderr and "Traceback" not in proc.stderr
    assert s.calls() == []


def test_check_backend_kind_with_the_daemon_down_exits_2_naming_the_daemon(standins, tmp_path) -> None:
    standins.fail("daemon-down")
    proc = netiso(["check", "--backend", "kind", str(ROOT / "scenarios" / "nodeport.yaml")],
                  {**standins.env, "PYTHONPATH": str(ROOT)}, tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Docker daemon is not running" in proc.stderr and "Traceback" not in proc.stderr
    assert [c[0] for c in standins.calls("kind")] == [], "nothing of kind ran"


def test_check_backend_kind_dry_run_plans_six_clusters_without_docker_or_kind(standins_without, tmp_path) -> None:
    s = standins_without("kind", "docker")
    out = tmp_path / "plan"
    proc = netiso(["check", "--backend", "kind", "--dry-run", "--out", str(out), str(ROOT / "scenarios" / "nodeport.yaml")],
                  {**s.env, "PYTHONPATH": str(ROOT)}, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(list(out.glob("kind-*/plan.txt"))) == 6
    assert len(list(out.glob("kind-*/scenarios/*/plan.txt"))) == 6  # nodeport.yaml: six scenarios
    assert s.calls() == []
