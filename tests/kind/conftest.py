"""Fixtures of the kind backend's tests: stand-in ``kind``/``docker`` executables first (and alone) on PATH.

The stand-ins (``tests/kind/standins/``) are real executables run as real subprocesses: the
code under test finds them on ``PATH`` exactly as it would find the real tools. ``PATH`` holds
only a private bin directory (the stand-ins that the test asks for, and ``python3`` for their
``#!/usr/bin/env python3``), so a real kind or docker on the machine is never reached.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

STANDINS = Path(__file__).resolve().parent / "standins"


@dataclass
class StandIns:
    bin: Path
    log: Path
    state: Path
    env: dict[str, str]

    def calls(self, tool: str | None = None) -> list[list[str]]:
        """Every recorded argv (without the program name), in order; only ``tool``'s when given."""
        if not self.log.exists():
            return []
        rows = [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]
        return [r["argv"] for r in rows if tool is None or r["tool"] == tool]

    def commands(self) -> list[str]:
        rows = [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []
        return [" ".join([r["tool"], *r["argv"]]) for r in rows]

    def world(self) -> dict[str, Any]:
        return json.loads(self.state.read_text()) if self.state.exists() else {"clusters": {}, "containers": {}}

    def fail(self, *words: str) -> None:
        self.env["NETISO_STANDIN_FAIL"] = ",".join(words)


def make_standins(tmp_path: Path, tools: tuple[str, ...] = ("kind", "docker")) -> StandIns:
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    (bindir / "python3").symlink_to(sys.executable)
    for tool in tools:
        (bindir / tool).symlink_to(STANDINS / tool)
    log, state = tmp_path / "calls.jsonl", tmp_path / "state.json"
    env = {
        "PATH": str(bindir),
        "HOME": str(tmp_path),
        "NETISO_STANDIN_LOG": str(log),
        "NETISO_STANDIN_STATE": str(state),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
    }
    return StandIns(bindir, log, state, env)


@pytest.fixture
def standins(tmp_path: Path) -> StandIns:
    return make_standins(tmp_path)


@pytest.fixture
def standins_without(tmp_path: Path) -> Any:
    """``standins_without("kind")``: the stand-ins minus the named tools (not on PATH at all)."""

    def make(*missing: str) -> StandIns:
        return make_standins(tmp_path, tuple(t for t in ("kind", "docker") if t not in missing))

    return make


# the emulated Kubernetes API server (tests/support/kubeapi) for the end-to-end kind tests;
# pytest_plugins is honoured only in the rootdir conftest, so the fixture is imported instead
from tests.support.kubeapi.fixture import fake_cluster  # noqa: E402,F401
