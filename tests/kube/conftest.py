"""Fixtures of the kube backend's tests: the emulated API server and a backend pointed at it.

Every test here talks to a real HTTP server on 127.0.0.1 that speaks the Kubernetes API
(tests/support/kubeapi) through the official ``kubernetes`` client, unpatched; test names say
``emulated_api`` so nobody mistakes them for a live-cluster run.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from netiso.backends.base import BackendOptions
from netiso.backends.kube.backend import KubeBackend, Timeouts
from netiso.backends.kube.naming import RunNames
from netiso.model.addressing import resolve
from netiso.model.loader import loads
from netiso.model.types import Topology

pytest_plugins = ["tests.support.kubeapi.fixture"]

RUN = "nx0a1b2c"
# short bounded waits: the emulated controllers answer at once, a missing answer should fail fast
FAST = Timeouts(pods_ready=2.0, lb_ip=2.0, delete=2.0, poll=0.05, probe_rounds=4, probe_deadline=30.0, probe_wait=0.01)

NODEPORT = """
name: np-vxlan
cluster: {encapsulation: vxlan, clients: [alice, bob]}
workspaces:
  - name: ws-a
    projects:
      - name: shop
        isolation: true
        whitelist:
          - {direction: ingress, peer: {cidr: client:alice}}
          - {direction: ingress, peer: {cidr: tunnel:worker2}}
      - name: tools
workloads:
  - {name: web, project: shop, nodes: [worker]}
  - {name: probe, project: tools, nodes: [worker2]}
services:
  - {name: web, project: shop, type: NodePort, externalTrafficPolicy: Cluster}
flows:
  - {from: pod:tools/probe, to: nodeport:shop/web@worker2}
  - {from: pod:tools/probe, to: clusterip:shop/web}
  - {from: node:worker2, to: pod:shop/web}
  - {from: client:alice, to: nodeport:shop/web@worker}
  - {from: client:bob, to: nodeport:shop/web@worker2}
"""


def topo_of(text: str, **replace: str) -> Topology:
    """The first scenario of ``text`` resolved on the address plan (``replace`` edits the text)."""
    for old, new in replace.items():
        text = text.replace(old, new)
    return resolve(loads(text)[0])


@pytest.fixture
def kube_backend(fake_cluster: Any) -> Iterator[Callable[..., KubeBackend]]:
    """Make KubeBackends against the emulated API server (fixed run id ``nx0a1b2c``, short waits)."""
    made: list[KubeBackend] = []

    def make(*, run: str = RUN, timeouts: Timeouts = FAST, **options: Any) -> KubeBackend:
        options.setdefault("kubeconfig", str(fake_cluster.kubeconfig))
        backend = KubeBackend(BackendOptions(**options), names_for=lambda _t: RunNames(run), timeouts=timeouts)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


# --------------------------------------------------------------------------- replaying real probe output

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


def replay(situation: str, probe: ScriptProbe, *, client: str | None = None, hostname: str | None = None) -> str:
    """A real sample's result line re-addressed to ``probe``: its index and id, and (for answers) the
    source address the server saw and the hostname it reported, which the sample captured as
    127.0.0.1 and a stand-in's name."""
    words = sample_line(situation).split(" ")
    words[1] = str(probe.index)
    out = []
    for word in words:
        key = word.split("=", 1)[0]
        if key == "id":
            word = f"id={probe.encoded_id}"
        elif key == "o1" and client is not None and word != "o1=":
            if probe.protocol == "UDP":  # netexec's UDP answers: "ip:port|hostname" in one file
                word = "o1=b" + base64.b64encode(f"{client}:40000|{hostname}".encode()).decode()
            else:
                word = "o1=b" + base64.b64encode(f"{client}:40000".encode()).decode()
        elif key == "o2" and hostname is not None and word != "o2=":
            word = "o2=b" + base64.b64encode(hostname.encode()).decode()
        out.append(word)
    return " ".join(out)


def batch_answer(script: str, answer: Callable[[ScriptProbe], tuple[str, str | None, str | None]]) -> str:
    """The stdout of a whole batch: ``answer(probe) -> (situation, client ip, hostname)`` per probe."""
    probes = script_probes(script)
    lines = [replay(sit, p, client=c, hostname=h) for p in probes for sit, c, h in [answer(p)]]
    return "\n".join([*lines, f"NETISO-END {len(probes)}"]) + "\n"
