"""Ctrl-C during ``netiso check``: exit 130 with one line, and every lab that was up is gone."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netiso.backends.lab.netns import STATE_DIR, list_namespaces

pytestmark = pytest.mark.lab
ROOT = Path(__file__).resolve().parents[2]


def _runs_of(pid: int) -> list[str]:
    prefixes = []
    for path in STATE_DIR.glob("*.json") if STATE_DIR.is_dir() else []:
        try:
            if json.loads(path.read_text())["owner"]["pid"] == pid:
                prefixes.append(path.stem)
        except (OSError, ValueError, KeyError):
            continue
    return prefixes


def test_sigint_mid_run_exits_130_and_leaves_nothing() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "netiso.cli", "check", str(ROOT / "scenarios")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen: set[str] = set()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not seen:  # wait until a lab is really up
        seen.update(_runs_of(proc.pid))
        time.sleep(0.05)
    assert seen, "no lab came up within 30 s"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted" in err and "Traceback" not in err
    assert not _runs_of(proc.pid)
    left = [n for n in list_namespaces() if any(n.startswith(p + "-") for p in seen)]
    assert not left, f"namespaces left behind: {left}"
