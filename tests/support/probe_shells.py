"""Run kube probe batch scripts under real shells, and in a throwaway netns where packets vanish.

Why: the kube backend's batch script runs in the agnhost image (alpine: busybox ``ash``), in
Debian-based images (``dash``) and on client hosts (often ``bash``); the tests run it under
each shell that is installed here. A "dropped" verdict needs a place where packets vanish
without an answer, which loopback never does: :func:`run_in_dropping_netns` runs the script in
a fresh network namespace (``unshare -n``, so it dies with the process: nothing to clean up)
with ``lo`` up and iptables DROP rules on chosen loopback ports *inside that namespace only*.
Needs root; tests using it are marked ``lab``.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence

import pytest

SHELLS: list[tuple[str, ...]] = [("dash",), ("busybox", "sh"), ("bash",)]


def shell_params() -> list[pytest.param]:  # type: ignore[valid-type]
    """``pytest.param`` per shell; a shell not installed here is a visible skip, not a silent pass."""
    params = []
    for shell in SHELLS:
        marks = [] if shutil.which(shell[0]) else [pytest.mark.skip(reason=f"{shell[0]} is not installed")]
        params.append(pytest.param(shell, id="-".join(shell), marks=marks))
    return params


def run_script(
    shell: Sequence[str], script: str, timeout: float = 60.0, env: dict[str, str] | None = None
) -> tuple[str, str, int]:
    """``(stdout, stderr, returncode)`` of ``shell -c script``."""
    proc = subprocess.run([*shell, "-c", script], capture_output=True, text=True, timeout=timeout, env=env, check=False)
    return proc.stdout, proc.stderr, proc.returncode


def run_in_dropping_netns(
    shell: Sequence[str], script: str, *, tcp_drop: Sequence[int] = (), udp_drop: Sequence[int] = (), timeout: float = 60.0
) -> tuple[str, str, int]:
    """Run ``script`` in a new network namespace whose loopback DROPs the given ports."""
    setup = ["ip link set lo up"]
    setup += [f"iptables -w -A OUTPUT -o lo -p tcp --dport {int(p)} -j DROP" for p in tcp_drop]
    setup += [f"iptables -w -A OUTPUT -o lo -p udp --dport {int(p)} -j DROP" for p in udp_drop]
    inner = " && ".join(setup) + ' && exec "$@"'
    argv = ["unshare", "-n", "--", "sh", "-c", inner, "netns-setup", *shell, "-c", script]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    return proc.stdout, proc.stderr, proc.returncode
