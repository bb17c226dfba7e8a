"""``pytest suites -n 2`` (pytest-xdist) gives the same results and reports as a serial run.

Each worker realizes only the scenarios of its xdist group (fixtures/backend.py), writes its part
of the results, and the controller merges the parts in collection order into the very files a
serial run writes. Compared: the outcome of every test, and every flow of results.json with the
run-to-run noise (timings, milliseconds, kernel trace handles) left out.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = [ROOT / "scenarios" / "nodeport.yaml", ROOT / "scenarios" / "udp.yaml"]


def run_suite(report: Path, *extra: str) -> tuple[dict[str, str], dict[str, Any]]:
    junit = report / "junit.xml"
    argv = [sys.executable, "-m", "pytest", "suites/test_scenarios.py", "-q", "-p", "no:cacheprovider", "-rA",
            "--netiso-report", str(report), f"--junitxml={junit}",
            *[f"--netiso-scenarios={p}" for p in SCENARIOS], *extra]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    outcomes = {}
    for line in proc.stdout.splitlines():
        word, _, rest = line.partition(" ")
        if word in ("PASSED", "FAILED", "ERROR", "SKIPPED"):
            nodeid = re.sub(r"@netiso-[\w-]+$", "", rest.split(" - ")[0])  # xdist's loadgroup suffix
            outcomes[nodeid] = word
    return outcomes, json.loads((report / "results.json").read_text())


def essentials(doc: dict[str, Any]) -> list[Any]:
    out = []
    for s in doc["scenarios"]:
        flows = []
        for f in s["flows"]:
            o = f["observed"]
            flows.append((f["from"], f["to"], f["port"], f["match"], o["verdict"], o["source"], o.get("answeredBy"),
                          o.get("decidedBy"), f["predicted"]["verdict"]))
        out.append((s["name"], flows))
    return out


def test_two_workers_write_the_same_results_and_reports_as_a_serial_run(tmp_path: Path) -> None:
    serial_out, serial = run_suite(tmp_path / "serial")
    parallel_out, parallel = run_suite(tmp_path / "xdist", "-n", "2")
    assert serial_out and serial_out == parallel_out
    assert essentials(serial) == essentials(parallel)
    written = sorted(p.name for p in (tmp_path / "serial").iterdir())
    assert written == sorted(p.name for p in (tmp_path / "xdist").iterdir())
    assert "index.html" in written and "matrix.md" in written
    assert not (tmp_path / "xdist" / ".netiso-parts").exists()  # the parts were merged and removed
