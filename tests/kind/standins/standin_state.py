"""Shared state of the stand-in ``kind`` and ``docker`` executables (tests only).

Each invocation appends ``{"tool": ..., "argv": [...]}`` to ``$NETISO_STANDIN_LOG`` (JSON lines)
and keeps what a real daemon would remember (clusters, images, containers, the ``kind``
network) in ``$NETISO_STANDIN_STATE`` (one JSON file). Failure modes are chosen with
``$NETISO_STANDIN_FAIL`` (comma-separated words, see the two scripts).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any


def record(tool: str) -> None:
    log = os.environ.get("NETISO_STANDIN_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"tool": tool, "argv": sys.argv[1:]}) + "\n")


def fails(word: str) -> bool:
    return word in os.environ.get("NETISO_STANDIN_FAIL", "").split(",")


def load() -> dict[str, Any]:
    path = os.environ.get("NETISO_STANDIN_STATE")
    data: dict[str, Any] = {}
    if path and Path(path).exists():
        data = json.loads(Path(path).read_text())
    data.setdefault("clusters", {})
    data.setdefault("images", [])
    data.setdefault("containers", {})
    data.setdefault("loaded", {})
    return data


def save(data: dict[str, Any]) -> None:
    path = os.environ.get("NETISO_STANDIN_STATE")
    if path:
        Path(path).write_text(json.dumps(data, indent=1))


def flag(argv: list[str], name: str) -> str | None:
    """The value of ``--name VALUE`` or ``--name=VALUE`` in argv."""
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def die(message: str, code: int = 1) -> None:
    sys.stderr.write(message + "\n")
    sys.exit(code)
