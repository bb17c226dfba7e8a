"""Replaying real probe output (tests/kube/samples) for a batch script netiso generated.

Stdlib only: the stand-in client executable of test_kube_backend.py imports it in a fresh
Python process for every client call, so it must not pull in the kubernetes client.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SAMPLES = Path(__file__).resolve().parent / "samples"
_E_LINE = re.compile(r"^E (\d+) (\S+) (tcp|udp)$", re.MULTILINE)
_TCP_DST = re.compile(r"^\( P (\d+);.*?http://([0-9.]+):(\d+)/clientip", re.MULTILINE)
_UDP_DST = re.compile(r"^U (\d+) \d+ '?([0-9.]+)'? (\d+) &$", re.MULTILINE)


@dataclass(frozen=True)
class ScriptProbe:
    """One probe as a batch script encodes it (what a stand-in needs to answer it)."""

    index: int
    encoded_id: str
    protocol: str
    dst_ip: str
    dst_port: int


def script_probes(script: str) -> list[ScriptProbe]:
    """The probes of a batch script (probing.batch_script's output), read back from its text."""
    dst = {int(m.group(1)): (m.group(2), int(m.group(3))) for rx in (_TCP_DST, _UDP_DST) for m in rx.finditer(script)}
    return [ScriptProbe(int(m.group(1)), m.group(2), m.group(3).upper(), *dst[int(m.group(1))])
            for m in _E_LINE.finditer(script)]


def sample_line(situation: str, shell: str = "dash") -> str:
    """The result line a real batch script printed in ``situation`` (tests/kube/samples/*.json)."""
    data = json.loads((SAMPLES / f"{situation}.{shell}.json").read_text())
    return next(line for line in data["stdout"].splitlines() if line.startswith("NETISO1 "))


def replay(situation: str, probe: ScriptProbe, *, client: str | None = None, hostname: str | None = None,
           forwarded_for: str | None = None) -> str:
    """A real sample's result line re-addressed to ``probe``: its index and id, and (for answers) the
    source address the server saw, the hostname it reported and the X-Forwarded-For header it was
    sent (TCP, the third URL of an ingress probe), which the sample captured as 127.0.0.1, a
    stand-in's name and 203.0.113.7."""
    words = sample_line(situation).split(" ")
    words[1] = str(probe.index)
    out = []
    for word in words:
        key = word.split("=", 1)[0]
        if key == "id":
            word = f"id={probe.encoded_id}"
        elif key == "o1" and client is not None and word not in ("o1=", "o1=b", "o1=h"):
            if probe.protocol == "UDP":  # netexec's UDP answers: "ip:port|hostname" in one file
                word = "o1=b" + base64.b64encode(f"{client}:40000|{hostname}".encode()).decode()
            else:
                word = "o1=b" + base64.b64encode(f"{client}:40000".encode()).decode()
        elif key == "o2" and hostname is not None and word not in ("o2=", "o2=b", "o2=h"):
            word = "o2=b" + base64.b64encode(hostname.encode()).decode()
        elif key == "o3" and forwarded_for is not None and word not in ("o3=", "o3=b", "o3=h"):
            word = "o3=b" + base64.b64encode(forwarded_for.encode()).decode()
        out.append(word)
    return " ".join(out)


def batch_answer(script: str, answer: Callable[[ScriptProbe], tuple[str | None, ...]]) -> str:
    """The stdout of a whole batch: ``answer(probe) -> (situation, client ip, hostname[, X-Forwarded-For])``
    per probe."""
    probes = script_probes(script)
    lines = []
    for p in probes:
        sit, client, hostname, *xff = answer(p)
        assert sit is not None, p
        lines.append(replay(sit, p, client=client, hostname=hostname, forwarded_for=xff[0] if xff else None))
    return "\n".join([*lines, f"NETISO-END {len(probes)}"]) + "\n"
