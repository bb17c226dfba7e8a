"""Fixtures of the kube backend's tests: the emulated API server and a backend pointed at it.

Every test here talks to a real HTTP server on 127.0.0.1 that speaks the Kubernetes API
(tests/support/kubeapi) through the official ``kubernetes`` client, unpatched; test names say
``emulated_api`` so nobody mistakes them for a live-cluster run.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from netiso.backends.base import BackendOptions
from netiso.backends.kube.backend import KubeBackend, Timeouts
from netiso.backends.kube.naming import RunNames
from netiso.model.addressing import resolve
from netiso.model.loader import loads
from netiso.model.types import Topology
from tests.support.kubeapi.fixture import fake_cluster  # noqa: F401 - the emulated API server fixture

# (pytest_plugins is only honoured in the rootdir conftest, so the fixture is imported instead)

RUN = "nx0a1b2c"
# short bounded waits: the emulated controllers answer at once, a missing answer should fail fast
FAST = Timeouts(pods_ready=2.0, lb_ip=2.0, ingress_sync=0.3, delete=2.0, poll=0.05, probe_rounds=4, policy_settle=0.5,
                probe_deadline=30.0, probe_wait=0.01)

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

INGRESS = """
name: ing-vxlan
cluster: {encapsulation: vxlan, clients: [alice]}
workspaces:
  - name: ws-a
    projects:
      - name: shop
        isolation: true
        whitelist:
          - {direction: ingress, peer: {project: gateways}}
projects:
  - name: gateways
workloads:
  - {name: web, project: shop, nodes: [worker]}
services:
  - {name: web, project: shop}
ingresses:
  - name: web
    project: shop
    host: web.example
    service: web
    controller: {project: gateways, node: worker2, exposure: LoadBalancer, externalTrafficPolicy: Local}
flows:
  - {from: client:alice, to: ingress:shop/web}
"""


def topo_of(text: str, **replace: str) -> Topology:
    """The first scenario of ``text`` resolved on the address plan (``replace`` edits the text)."""
    for old, new in replace.items():
        text = text.replace(old, new)
    return resolve(loads(text)[0])


@pytest.fixture
def kube_backend(fake_cluster: Any) -> Iterator[Callable[..., KubeBackend]]:  # noqa: F811 - the fixture above
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


def closed_port_kubeconfig(directory: Path) -> tuple[Path, int]:
    """A kubeconfig whose server is a local port nothing listens on (context ``gone``)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there any more
    config = {"apiVersion": "v1", "kind": "Config", "current-context": "gone",
              "clusters": [{"name": "gone", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
              "users": [{"name": "gone", "user": {"token": "t"}}],
              "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "gone"}}]}
    path = directory / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path, port
