"""Throw-away network namespaces for the probe tests (prefix ``nxh2-<pid>``).

Everything is created inside namespaces of our own (veths are created directly in them), so the
host's root namespace is never touched; each fixture deletes exactly the namespaces it created.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

PREFIX = f"nxh2-{os.getpid()}"


def lab_available() -> str | None:
    """Why the lab tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    return None


def sh(*args: str) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def nsexec(netns: str, *args: str) -> str:
    return sh("ip", "netns", "exec", netns, *args)


class Namespaces:
    """Creates namespaces and remembers them so that ``close`` deletes exactly those."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def add(self, role: str) -> str:
        name = f"{PREFIX}-{role}"
        sh("ip", "netns", "add", name)
        self.names.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        # Lift ICMP rate limits (per peer: burst 6 then 1/s) so that every closed UDP port or
        # REJECT answers; otherwise "refused" probes turn into "dropped" after a few.
        nsexec(name, "sysctl", "-qw", "net.ipv4.icmp_ratemask=0")
        return name

    def link(self, a: str, a_ip: str, b: str, b_ip: str, ifname: str = "eth0") -> None:
        """A veth between ``a`` and ``b`` with ``/24`` addresses, created inside them."""
        sh("ip", "-n", a, "link", "add", ifname, "type", "veth", "peer", "name", ifname, "netns", b)
        for ns, ip in ((a, a_ip), (b, b_ip)):
            sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", ifname)
            sh("ip", "-n", ns, "link", "set", ifname, "up")

    def close(self) -> None:
        for name in reversed(self.names):
            subprocess.run(["ip", "netns", "delete", name], capture_output=True, timeout=30)
        self.names.clear()


@dataclass(frozen=True)
class ProbeLab:
    """``srv`` joined to ``cli`` (198.18.0.0/24) and to ``cli2`` (198.18.1.0/24)."""

    srv: str
    cli: str
    cli2: str
    srv_ip: str = "198.18.0.1"
    cli_ip: str = "198.18.0.2"
    srv_ip2: str = "198.18.1.1"
    cli2_ip: str = "198.18.1.2"


@pytest.fixture(scope="module")
def probe_lab() -> Iterator[ProbeLab]:
    why = lab_available()
    if why:
        pytest.skip(why)
    spaces = Namespaces()
    try:
        lab = ProbeLab(spaces.add("srv"), spaces.add("cli"), spaces.add("cli2"))
        spaces.link(lab.srv, lab.srv_ip, lab.cli, lab.cli_ip, "eth0")
        spaces.link(lab.srv, lab.srv_ip2, lab.cli2, lab.cli2_ip, "eth1")
        yield lab
    finally:
        spaces.close()


@pytest.fixture(scope="module")
def lone_ns() -> Iterator[str]:
    """One namespace with only ``lo`` (loopback traffic never leaves it)."""
    why = lab_available()
    if why:
        pytest.skip(why)
    spaces = Namespaces()
    try:
        yield spaces.add("lo")
    finally:
        spaces.close()
