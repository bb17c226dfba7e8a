"""``--backend kube``: run scenarios on an existing cluster reached through a kubeconfig.

What it mirrors: ``kubectl``'s kubeconfig/context resolution (client.py) and the upstream
NetworkPolicy e2e's way of running a connectivity matrix on a live cluster
(kubernetes/kubernetes test/e2e/network/netpol; see realization.py). A session goes:
``preflight`` (preflight.py: everything that would stop the run, before anything is created),
then per scenario ``realize`` - the janitor first (cleanup.py: finished runs are removed,
once per session), then :class:`~netiso.backends.kube.realization.KubeRealization` builds,
probes and tears the scenario down - and ``close``/exit/Ctrl-C remove whatever is still up.
``plan`` is ``--dry-run`` (plan.py), which contacts no cluster.

Knowingly different from a kubectl workflow: nothing is applied with server-side apply or
adopted; every object is created fresh under a run id and owned through its run label.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from netiso.backends.base import Backend, BackendOptions, BackendUnavailable
from netiso.backends.kube.cleanup import CLUSTER_KINDS, KUBESPHERE_KINDS, janitor
from netiso.backends.kube.client import Kube, KubeApiError
from netiso.backends.kube.naming import RunNames
from netiso.backends.kube.preflight import Findings, run_preflight
from netiso.backends.kube.probing import batch_script
from netiso.backends.kube.realization import KubeRealization, Timeouts, cluster_probe
from netiso.backends.kube.vips import VipReservations
from netiso.model.types import Topology

log = logging.getLogger("netiso.kube")


class KubeBackend(Backend):
    """An existing cluster: preflight, realize scenarios in run-labelled namespaces, clean up."""

    name = "kube"
    default_jobs = 1

    def __init__(self, options: BackendOptions, *, names_for: Callable[[Topology], RunNames] | None = None,
                 timeouts: Timeouts | None = None) -> None:
        self.options = options
        self.timeouts = timeouts or Timeouts()
        self._names_for = names_for or (lambda _topo: RunNames.new())
        self._names: dict[int, tuple[Topology, RunNames]] = {}
        self._kube: Kube | None = None
        self.findings: Findings | None = None
        self._janitor_done = False
        self._live: list[KubeRealization] = []
        self._lock = threading.Lock()
        self.vip_reservations = VipReservations()  # VIPs chosen by realizations still up (--jobs > 1: vips.py)
        atexit.register(self._at_exit)

    # ------------------------------------------------------------------ session

    @property
    def kube(self) -> Kube:
        if self._kube is None:
            self._kube = Kube.connect(self.options.kubeconfig, self.options.context)
        return self._kube

    @property
    def cluster_kinds(self) -> tuple[tuple[str, str], ...]:
        """Cluster-scoped kinds a run creates (cleanup.py): KubeSphere's Workspaces only in controller mode."""
        return CLUSTER_KINDS + (KUBESPHERE_KINDS if self.options.kubesphere == "controller" else ())

    def progress(self, line: str) -> None:
        log.info("%s", line)
        if self.options.progress is not None:
            self.options.progress(line)

    def names(self, topo: Topology) -> RunNames:
        """The run names of ``topo``'s realization: one run id per topology object, fixed at first use.

        Keyed by the object, not the scenario name: minimal-config realizes variants of one
        scenario (same name), each must get namespaces of its own. The topology is kept with
        its names so that its ``id`` is never reused while the backend lives.
        """
        with self._lock:
            if id(topo) not in self._names:
                self._names[id(topo)] = (topo, self._names_for(topo))
            return self._names[id(topo)][1]

    def preflight(self, topos: Sequence[Topology]) -> None:
        try:
            findings = run_preflight(self.kube, topos, self.options, self.names)
        except KubeApiError as exc:
            raise BackendUnavailable(f"preflight: {exc}") from None
        if self.findings is None:
            self.findings = findings
        else:  # a later call adds scenarios
            self.findings.pools.update(findings.pools)
            self.findings.node_maps.update(findings.node_maps)
            self.findings.unmapped_clients.update(findings.unmapped_clients)
            self.findings.nodes = findings.nodes
            self.findings.metallb_pool = self.findings.metallb_pool or findings.metallb_pool
            self.findings.openelb_eip = self.findings.openelb_eip or findings.openelb_eip
        for note in findings.notes:
            self.progress(note)

    def realize(self, topo: Topology) -> KubeRealization:
        if self.findings is None or topo.name not in self.findings.node_maps:
            self.preflight([topo])
        assert self.findings is not None
        with self._lock:
            first = not self._janitor_done
            self._janitor_done = True
        if first:
            try:
                lines = janitor(self.kube, keep=frozenset(n.run for _, n in self._names.values()),
                                wait_s=self.timeouts.delete, poll_s=self.timeouts.poll, kinds=self.cluster_kinds)
            except KubeApiError as exc:
                raise BackendUnavailable(f"janitor: {exc}") from None
            for line in lines:
                self.progress(f"janitor: {line}")
        real = KubeRealization(self, topo, self.names(topo))
        with self._lock:
            self._live.append(real)
        real.build()
        return real

    def plan(self, topos: Sequence[Topology], out_dir: Path) -> list[Path]:
        """``--dry-run``: the ordered objects and plan.txt of each scenario (plan.py); contacts no cluster.

        Without a cluster there is no node list: ``--node-map`` entries are applied and other
        scenario nodes keep their names; addresses are the lab address plan's (the plan says so).
        """
        from netiso.backends.kube import plan as planning

        def batch_command(source: str, probes: Sequence[planning.PlannedProbe]) -> str | None:
            sendable = [cluster_probe(str(p.index), p.address, p.port, p.protocol, p.host, ingress=p.dst_kind == "ingress")
                        for p in probes if p.address and p.protocol in ("TCP", "UDP")]
            return batch_script(sendable) if sendable else None

        return planning.write_plan(
            topos, out_dir, self.names, lambda topo: {n: self.options.node_map.get(n, n) for n in topo.nodes},
            registry=self.options.image_registry, clients=self.options.clients, batch_command=batch_command,
            kubesphere=self.options.kubesphere)

    def clean(self) -> list[str]:
        live = frozenset(r.names.run for r in self._live if not r.closed)
        try:
            return janitor(self.kube, keep=live, wait_s=self.timeouts.delete, poll_s=self.timeouts.poll,
                           kinds=self.cluster_kinds)
        except KubeApiError as exc:
            raise BackendUnavailable(f"clean: {exc}") from None

    def close(self) -> None:
        for real in list(self._live):
            real.down()

    def _at_exit(self) -> None:
        for real in list(self._live):
            try:
                real.down()
            except Exception as exc:  # at exit: report, never raise
                log.warning("cleaning up run %s at exit: %s", real.names.run, exc)

    def _forget(self, real: KubeRealization) -> None:
        with self._lock:
            if real in self._live:
                self._live.remove(real)


__all__ = ["KubeBackend", "KubeRealization", "Timeouts"]
