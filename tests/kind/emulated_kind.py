"""A kind run with nothing stood in above the processes: stand-in ``kind``/``docker`` + the emulated API server.

Why: the kind backend's own tests replace the kube backend and the add-on installer; the kube
backend's tests start from a seeded cluster. Neither shows the hand-over working: kind's
kubeconfig reaching the kube backend, the vendored manifests applied over HTTP with the official
client's server-side apply, the readiness waits passing on what a cluster's controllers do, the
client containers answering through ``docker exec``. Here ``KindBackend`` runs with the real
``KubeBackend`` and the real ``DynamicApi`` installer; what is emulated is named:

* ``kind``/``docker``: the stand-in executables (tests/kind/standins), first on PATH both for the
  kind backend and for the kube backend's ``docker exec -i netiso-<run>-<client>`` client commands;
  ``kind`` hands out the emulated server's kubeconfig renamed ``kind-<cluster>``;
* the cluster: tests/support/kubeapi seeded as ``kind create cluster`` leaves it
  (``seed_fresh_kind``: no CNI, no CRDs) with the workload controllers on (workloads.py);
* the network: :class:`EmulatedNetwork` answers every probe, in pods (the exec websocket) and in
  client containers (the stand-in ``docker exec``), with the result lines real curl/nc printed
  (tests/kube/samples, re-addressed by tests/kube/replay.py). Which line it replays is the
  oracle's prediction for that source and destination (verdict, source seen, answering pod,
  X-Forwarded-For), except for the flows a test tells it to answer otherwise: a replayed-prediction
  datapath, so that what is under test is the plumbing and the judging, not Calico. Its
  counterpart that differs from the oracle on purpose, from a table of its own, is
  tests/kind/perturbed_network.py.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from netiso.backends.base import BackendOptions
from netiso.backends.kind.addons import addon_checksums
from netiso.backends.kind.backend import KindBackend, default_installer
from netiso.backends.kind.configs import cluster_name, group_topologies, pod_subnet, render_config
from netiso.backends.kind.tools import Tools
from netiso.backends.kube.backend import KubeBackend, KubeRealization, Timeouts
from netiso.backends.kube.naming import RunNames
from netiso.model.types import Topology
from netiso.oracle.predict import Prediction, predict_all
from tests.kind.conftest import StandIns
from tests.kube.replay import ScriptProbe, batch_answer
from tests.support.kubeapi import ExecCall, ExecReply, FakeCluster
from tests.support.kubeapi.seed import seed_fresh_kind

RUN = "nx0a1b2c"
# the emulated controllers answer at once: short bounded waits make a missing answer fail fast
FAST = Timeouts(pods_ready=5.0, lb_ip=5.0, ingress_sync=0.3, delete=5.0, poll=0.05, probe_rounds=4, policy_settle=0.5,
                probe_deadline=30.0, probe_wait=0.01)
# (sample situation, source the server saw, hostname it reported[, X-Forwarded-For it was sent])
Answer = tuple[str, str | None, str | None] | tuple[str, str | None, str | None, str | None]


def _timeout(protocol: str) -> Answer:
    return ("udp-timeout" if protocol == "UDP" else "tcp-timeout", None, None)


@dataclass
class EmulatedNetwork:
    """Outcome of a probe by (where it runs, destination ip, port, protocol), from the predictions."""

    file: Path  # read by the stand-in docker for probes in client containers
    run_id: str
    answer_otherwise: dict[str, Answer] = field(default_factory=dict)  # flow "src -> dst" -> forced answer
    table: dict[str, Answer] = field(default_factory=dict)
    exec_calls: list[ExecCall] = field(default_factory=list)

    def learn(self, real: KubeRealization) -> list[Prediction]:
        """Predict ``real``'s topology (as check_many will) and write down every flow's answer."""
        preds = predict_all(real.topo)
        for pred in preds:
            key = self.probe_key(real, pred)
            if key is not None:
                flow = f"{pred.flow.src} -> {pred.flow.dst}"
                self.table[key] = self.answer_otherwise.get(flow) or self._as_predicted(real, pred)
        self.write()
        return preds

    def probe_key(self, real: KubeRealization, pred: Prediction) -> str | None:
        """``where|dst ip|port|protocol`` of the probe the backend fires for ``pred``'s flow (None: no probe):
        where it runs (a pod, a node pod, a client container) and the address it is sent to."""
        t = pred.target
        if t.dst_ip is None or t.protocol not in ("TCP", "UDP"):
            return None
        origin = t.origin_name if t.origin_kind == "pod" else f"{t.origin_kind}:{t.origin_name}"
        if origin.startswith("client:"):  # the container this realization was handed (a twin for clientsRouteToPods: false)
            where = real.clients[origin.split(":", 1)[1]].split()[-1]
        else:
            where = "/".join(real.exec_target(origin))
        return f"{where}|{t.dst_ip}|{t.dst_port}|{t.protocol}"

    def write(self) -> None:
        """The table where the stand-in docker reads it (probes in client containers)."""
        self.file.write_text(json.dumps({k: list(v) for k, v in self.table.items()}, indent=1))

    @staticmethod
    def _as_predicted(real: KubeRealization, pred: Prediction) -> Answer:
        first = pred.outcomes[0] if pred.outcomes else None
        if first is None or first.verdict == "dropped":
            return _timeout(pred.target.protocol)
        if first.verdict == "refused":
            return ("udp-icmp-refused" if pred.target.protocol == "UDP" else "tcp-refused", None, None)
        receiver = first.receiver or ""
        if receiver.startswith("client:"):
            hostname = receiver.split(":", 1)[1]
        else:
            pod = next(p for p in real.topo.pods if p.symbol == receiver)
            hostname = real.names.pod_name(pod)
        seen = sorted(first.seen)[0] if first.seen else None
        xff = sorted(first.extra.get("forwarded_for", ()))  # type: ignore[union-attr]
        return ("udp-answer" if pred.target.protocol == "UDP" else "tcp-200", seen, hostname, xff[0] if xff else None)

    def answer(self, where: str, probe: ScriptProbe) -> Answer:
        return self.table.get(f"{where}|{probe.dst_ip}|{probe.dst_port}|{probe.protocol}") or _timeout(probe.protocol)

    def exec_handler(self, call: ExecCall) -> ExecReply:
        """Pods' exec: the batch answered from the table; other scripts (none expected) answered empty."""
        self.exec_calls.append(call)
        script = call.command[2] if call.command[:2] == ["sh", "-c"] else ""
        if "NETISO1" not in script:
            return ExecReply(stdout="")
        return ExecReply(stdout=batch_answer(script, lambda p: self.answer(f"{call.namespace}/{call.pod}", p)))


class RecordingKube(KubeBackend):
    """The real kube backend (fixed run id, short waits) that also tells the network what it realized."""

    def __init__(self, options: BackendOptions, network: EmulatedNetwork, handed: list[BackendOptions]) -> None:
        super().__init__(options, names_for=lambda _t: RunNames(RUN), timeouts=FAST)
        self.network = network
        handed.append(options)
        self.realized: list[KubeRealization] = []

    def realize(self, topo: Topology) -> KubeRealization:
        real = super().realize(topo)
        self.realized.append(real)
        self.network.learn(real)
        return real


@dataclass
class KindRun:
    """Everything a test of the emulated kind run looks at."""

    backend: KindBackend
    cluster: FakeCluster
    standins: StandIns
    network: EmulatedNetwork
    name: str  # the kind cluster's name (config-hash named)
    nodes: list[str]
    handed: list[BackendOptions]
    progress: list[str]
    kubes: list[RecordingKube]


def kind_cluster_name(topo: Topology) -> tuple[str, str, int]:
    """(cluster name, pod subnet, workers) the kind backend will use for ``topo``'s group."""
    (group,) = group_topologies([topo])
    rendered = render_config(group.encapsulation, group.workers)
    return (cluster_name(group.encapsulation, group.load_balancer, rendered, addon_checksums(group.load_balancer)),
            pod_subnet(rendered), group.workers)


def kind_run(topo: Topology, fake_cluster: FakeCluster, standins: StandIns, tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch, answer_otherwise: dict[str, Answer] | None = None, *,
             keep_cluster: bool = False, seed: bool = True, workdir: str = "work",
             network_model: Callable[[Path, str], EmulatedNetwork] | None = None) -> KindRun:
    """A KindBackend wired to the stand-ins and the emulated server; ``seed=False``: the cluster was
    seeded by an earlier run (a kept cluster); ``network_model(file, run id)`` makes another network model
    than the replayed-prediction one."""
    name, subnet, workers = kind_cluster_name(topo)
    if seed:
        nodes = seed_fresh_kind(fake_cluster, name, workers=workers, pod_subnet=subnet)
    else:
        nodes = [n["metadata"]["name"] for n in fake_cluster.list("v1", "Node")]
    if network_model is None:
        network = EmulatedNetwork(tmp_path / "network.json", RUN, dict(answer_otherwise or {}))
    else:
        network = network_model(tmp_path / "network.json", RUN)
    fake_cluster.exec_handler = network.exec_handler
    extra = {"NETISO_STANDIN_KUBECONFIG": str(fake_cluster.kubeconfig), "NETISO_STANDIN_NETWORK": str(network.file)}
    standins.env.update(extra)
    # the kube backend runs its client commands (`docker exec -i ...`) from the process environment
    monkeypatch.setenv("PATH", f"{standins.bin}{os.pathsep}{os.environ.get('PATH', '')}")
    for key in ("NETISO_STANDIN_LOG", "NETISO_STANDIN_STATE", *extra):
        monkeypatch.setenv(key, standins.env[key])
    handed: list[BackendOptions] = []
    kubes: list[RecordingKube] = []
    progress: list[str] = []

    def factory(options: BackendOptions) -> RecordingKube:
        kube = RecordingKube(options, network, handed)
        kubes.append(kube)
        return kube

    backend = KindBackend(BackendOptions(progress=progress.append, keep_cluster=keep_cluster), kube_factory=factory,
                          tools=Tools(env=standins.env), workdir=tmp_path / workdir,
                          logs_dir=tmp_path / "reports" / "kind-logs", run_id=RUN)
    # the real installer, polling every 20 ms: the emulated add-ons roll out over several reads (lifecycle.py)
    backend.installer = functools.partial(default_installer, interval=0.02)
    return KindRun(backend, fake_cluster, standins, network, name, nodes, handed, progress, kubes)


def run_objects(cluster: FakeCluster, run: str = RUN) -> list[str]:
    """Every object the emulated API still holds that belongs to run ``run`` (namespaces and their content)."""
    left = []
    for (group, plural, namespace, name), obj in sorted(cluster.store.objects.items()):
        labels = (obj.get("metadata") or {}).get("labels") or {}
        if labels.get("netiso.io/run") == run or namespace.startswith(f"{run}-"):
            left.append(f"{plural}.{group or 'core'} {namespace}/{name}")
    return left


def applied(cluster: FakeCluster) -> list[tuple[str, str, str]]:
    """(kind plural, namespace or "", name) of every successful write, in the order the server got them."""
    out = []
    for rec in cluster.writes():
        if rec.status >= 300 or rec.method == "DELETE":
            continue
        parts = [p for p in rec.path.split("/") if p]
        rest = parts[2:] if parts[0] == "api" else parts[3:]
        namespace = ""
        if rest[0] == "namespaces" and len(rest) > 2:
            namespace, rest = rest[1], rest[2:]
        name = rest[1] if len(rest) > 1 else ((rec.body or {}).get("metadata") or {}).get("name", "")
        if len(rest) > 2:
            continue  # subresources (status) are the emulated controllers' or the client's own
        out.append((rest[0], namespace, name))
    return out


def index_of(items: Iterable[Any], wanted: Any) -> int:
    return list(items).index(wanted)
