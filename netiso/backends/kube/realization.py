"""One scenario realized on a cluster: build, waits, discovery, serve, probe, evidence, down.

What it mirrors: the upstream NetworkPolicy e2e (kubernetes/kubernetes test/e2e/network/netpol:
kubemanager.go creates namespaces and agnhost pods, waits for them Ready, then probes every
pair from its source pod through the exec API, batched per source, and re-probes until the
truth table is stable). :meth:`KubeRealization.build` goes:

1. namespaces netiso wants are checked again (a foreign one is a refusal, never adopted);
2. phases ``run`` (namespace + Lease, then a daemon thread renews the Lease), ``namespaces``,
   ``workloads``, ``services`` (manifests.py), created in order;
3. wait until every pod is Ready (tenacity; a timeout names the pod and its last Event) and
   every LoadBalancer Service has an ingress IP;
4. discovery -> ClusterFacts -> ``resolve(scenario, facts)`` = :attr:`KubeRealization.topo`, the
   topology the oracle predicts for;
5. phase ``policies`` rendered from the realized topology (ipBlocks of real addresses) - or, with
   ``--kubesphere controller``, phase ``kubesphere`` (Workspaces, NamespaceNetworkPolicies), a
   bounded wait for KubeSphere's controller's policies and their diff (controller_phase.py) - then
   ``ingresses``, then a bounded, non-fatal wait until ingress-nginx has published each
   Ingress' status (it has loaded it).

Any failure or Ctrl-C (KeyboardInterrupt) in between deletes what was created before the
exception propagates. Knowingly different from the netpol e2e: pods are bare Pods pinned with
``nodeName`` (no Deployments: one replica per listed node is the scenario's placement); node
sources are hostNetwork pods and external clients are reached through ``--client`` commands;
answers are mapped back to the scenario's symbols (netexec ``/hostname`` -> pod symbol, the
source IP stays raw for the judge). The VIP announcer (``observed.elected``) comes from
MetalLB's ServiceL2Status, and for OpenELB, which records none in the API (its speakers elect
by hashing ``node#ip`` in memory, openelb pkg/speaker/layer2/memberlist.go), from the election
line every speaker logs.

:class:`KubeRealization` is assembled from mixins, each a module named for what it does:
waiting.py (the bounded waits), controller_phase.py (the policies, or KubeSphere's controller writing
them), clients.py (the ``--client`` hosts: addresses, echo servers),
observing.py (answers -> scenario symbols, the VIP announcer) and evidence.py (what explains a
mismatch); this module keeps the build, the probe rounds and ``down``.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_fixed

from netiso.backends.base import BackendUnavailable, Realization
from netiso.backends.kube import manifests
from netiso.backends.kube.cleanup import LeaseKeeper, delete_run
from netiso.backends.kube.client import KubeApiError
from netiso.backends.kube.clients import ClientHosts
from netiso.backends.kube.controller_phase import PolicyPhase
from netiso.backends.kube.discovery import discover
from netiso.backends.kube.evidence import MismatchEvidence
from netiso.backends.kube.manifests import KubeTarget
from netiso.backends.kube.naming import RunNames
from netiso.backends.kube.observing import ObservationMapping
from netiso.backends.kube.pod_states import Terminations
from netiso.backends.kube.preflight import check_namespaces
from netiso.backends.kube.probe_running import (
    ClientCommandError,
    client_batch_failure,
    exec_batch_failure,
    exec_command,
    retry_until_consistent,
    run_client,
)
from netiso.backends.kube.probing import ClusterProbe, ClusterProbeResult, batch_script, failed_batch, parse_batch_output
from netiso.backends.kube.settling import NO_CANARY, canary_round, choose_canaries, flow_label, wait_until_dropped
from netiso.backends.kube.source_ranges import needs_real_addresses, with_real_source_ranges
from netiso.backends.kube.vips import VipChoice, choose_on_cluster, lb_skip_reasons
from netiso.backends.kube.waiting import ReadinessWaits
from netiso.model.addressing import resolve
from netiso.model.symbols import parse_endpoint
from netiso.model.types import Topology
from netiso.oracle.judge import Observation
from netiso.oracle.predict import Prediction

if TYPE_CHECKING:
    from netiso.backends.base import BackendOptions
    from netiso.backends.kube.client import Kube
    from netiso.backends.kube.preflight import Findings
    from netiso.backends.kube.vips import VipReservations


class RealizingBackend(Protocol):
    """What a realization uses of its backend (backend.py's ``KubeBackend``), written here so that
    backend.py imports this module and never the other way round."""

    options: BackendOptions
    timeouts: Timeouts
    findings: Findings | None
    vip_reservations: VipReservations

    @property
    def kube(self) -> Kube: ...

    @property
    def cluster_kinds(self) -> tuple[tuple[str, str], ...]: ...  # what down() deletes besides namespaces

    def progress(self, line: str) -> None: ...

    def _forget(self, real: KubeRealization) -> None: ...

log = logging.getLogger("netiso.kube")

PROBE_TIMEOUT_S = 2.0
UDP_TIMEOUT_S = 1.0  # netcat-openbsd waits whole seconds; netexec answers a datagram within milliseconds
INGRESS_TIMEOUT_S = 4.5  # nginx: 1 s connect timeout x up to 3 upstream tries, plus margin
CONNECT_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class Timeouts:
    """Bounded waits (seconds); tests shorten them."""

    pods_ready: float = 300.0
    service_account: float = 30.0  # a new namespace's default ServiceAccount (pods are refused until it exists)
    lb_ip: float = 120.0
    ingress_sync: float = 90.0  # not fatal: ingress-nginx publishes an Ingress' status once it has synced it
    delete: float = 120.0
    poll: float = 1.0
    probe_rounds: int = 6
    probe_deadline: float = 120.0
    probe_wait: float = 1.0
    policy_settle: float = 60.0  # the barrier before the first probe (settling.py); a timeout is a report warning
    controller_policies: float = 60.0  # --kubesphere controller: its nsnp-* policies written (controller_phase.py)
    exec_budget: float | None = None  # a probe batch's exec deadline; None: worked out from its probes (run_batch)


def _holder() -> str:
    return f"netiso@{socket.gethostname()}/{os.getpid()}"


class KubeRealization(ClientHosts, ObservationMapping, MismatchEvidence, ReadinessWaits, Terminations, PolicyPhase,
                      Realization):
    """One scenario on the cluster, from :meth:`build` until :meth:`down`."""

    def __init__(self, backend: RealizingBackend, planned: Topology, names: RunNames) -> None:
        assert backend.findings is not None
        findings = backend.findings
        self.backend = backend
        self.kube = backend.kube
        self.names = names
        self.planned = planned
        self.topo = planned
        self.timeouts = backend.timeouts
        self.node_map = dict(findings.node_maps[planned.name])
        self.back_map = {v: k for k, v in self.node_map.items()}
        self.pool = findings.pools.get(planned.name)
        self.target = KubeTarget(names, self.node_map, backend.options.image_registry,
                                 findings.metallb_pool, findings.openelb_eip)
        chosen = backend.options.clients_of(planned)  # kind: unrouted twins for clientsRouteToPods: false
        self.clients = dict(chosen.commands)
        self.unusable_clients: dict[str, str] = {
            c: f"client:{c} has no --client mapping (pass --client {c}='COMMAND PREFIX', e.g. 'docker exec -i {c}')"
            for c in findings.unmapped_clients.get(planned.name, [])}
        self.timings: dict[str, float] = {}
        self.closed = False
        self.lease: LeaseKeeper | None = None
        self.applied: list[dict[str, Any]] = []
        self.client_servers: dict[str, list[str]] = {}  # client -> PIDs of echo servers netiso started there
        self._containers: dict[tuple[str, str], str] = {}  # (namespace, pod) -> container to exec in
        self._l2: dict[tuple[str, str], str] | None = None
        self._openelb: dict[str, str | None] = {}
        self.vip_choices: dict[str, VipChoice] = {}  # LB Service -> the VIP requested (vips.py)
        self.lb_skips: dict[str, str] = {}  # LB Service -> why its client-to-VIP flows are skipped
        no_routes = set(chosen.without_pod_routes)
        self.client_pod_routes = {c: c not in no_routes for c in self.clients}  # --client-no-pod-routes, kind's twins
        self._policies_settled = False  # the settle barrier runs once, before the first probe

    # ------------------------------------------------------------------ build

    def build(self) -> None:
        started = time.perf_counter()
        try:
            check_namespaces(self.kube, self.names, self.planned)
            self._step("run", manifests.run_objects(self.target, holder=_holder(), renew_time=datetime.now(UTC),
                                                    scenario=self.planned.name))
            self.lease = LeaseKeeper(self.kube, self.names).start()
            self._step("namespaces", manifests.namespace_objects(self.planned, self.target))
            self._step("workloads", manifests.workload_objects(self.planned, self.target))
            self.vip_choices = choose_on_cluster(self.kube, self.planned, self.backend.findings, self.node_map,
                                                 self.backend.vip_reservations)  # reserved until down
            for choice in self.vip_choices.values():
                log.info("%s: %s", self.planned.name, choice.describe())
            self.target = replace(self.target, vips={k: c.vip for k, c in self.vip_choices.items() if c.vip})
            services_of = self.planned
            if needs_real_addresses(self.planned):  # loadBalancerSourceRanges name clients/nodes
                findings = self.backend.findings
                node_ips = {n: findings.nodes[c].internal_ip for n, c in self.node_map.items()
                            if findings and c in findings.nodes and findings.nodes[c].internal_ip}
                services_of = with_real_source_ranges(self.planned, self.client_addresses(), node_ips)
            self._step("services", manifests.service_objects(services_of, self.target))
            t0 = time.perf_counter()
            self.backend.progress(f"{self.planned.name}: waiting for pods to be Ready (run {self.names.run})")
            self.wait_pods_ready()
            self.terminate_pods()  # the scenario's terminating replicas (pod_states.py)
            self.wait_lb_ips()
            self.timings["ready_s"] = time.perf_counter() - t0
            client_ips = self.client_addresses()
            facts = discover(self.kube, self.planned, self.names, self.node_map,
                             self.backend.findings.nodes if self.backend.findings else {}, self.pool, client_ips)
            self.topo = resolve(self.planned.scenario, facts)
            self.lb_skips = lb_skip_reasons(self.planned, self.topo, self.vip_choices)
            self.backend.progress(f"{self.planned.name}: discovered the cluster's addresses")
            self.apply_policies()  # netiso's, or KubeSphere's objects and its controller's (controller_phase.py)
            self._step("ingresses", manifests.ingress_objects(self.topo, self.target))
            self.wait_ingresses_synced()
        except KubeApiError as exc:  # an unexpected API answer (5xx, 422...): the environment, after clean-up
            self.down()
            raise BackendUnavailable(f"run {self.names.run} of {self.planned.name}: {exc}") from None
        except BaseException:
            self.down()
            raise
        self.timings["up_s"] = time.perf_counter() - started

    def _step(self, phase: str, objects: Sequence[dict[str, Any]]) -> None:
        self.backend.progress(f"{self.planned.name}: applying {phase} ({len(objects)} objects)")
        for obj in objects:
            self._create(obj)

    def _create(self, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        try:
            # a new namespace's ``default`` ServiceAccount appears a moment after the namespace; until
            # then the ServiceAccount admission plugin refuses pods (plugin/pkg/admission/serviceaccount)
            for attempt in Retrying(stop=stop_after_delay(self.timeouts.service_account),
                                    wait=wait_fixed(min(self.timeouts.poll, 0.5)),
                                    retry=retry_if_exception(_service_account_not_ready), reraise=True):
                with attempt:
                    self.kube.create(obj)
        except KubeApiError as exc:
            if exc.status == 409 and obj["kind"] == "Namespace":
                check_namespaces(self.kube, self.names, self.planned)  # raises for a foreign one
            raise BackendUnavailable(f"run {self.names.run}: cannot {exc.what}: {exc.message or exc.reason} "
                                     f"(HTTP {exc.status})") from None
        self.applied.append(obj)
        if obj["kind"] == "Pod":
            containers = (obj.get("spec") or {}).get("containers") or [{}]
            self._containers[(meta["namespace"], meta["name"])] = containers[0].get("name", "")

    # ------------------------------------------------------------------ probe

    def probe(self, preds: Sequence[Prediction]) -> list[Observation]:
        if not self._policies_settled:
            self._policies_settled = True
            self.settle_policies(preds)
        observations: list[Observation | None] = [None] * len(preds)
        batches: dict[str, list[tuple[int, ClusterProbe]]] = {}
        for i, pred in enumerate(preds):
            t = pred.target
            skip = self._skip_reason(pred)
            if skip:
                observations[i] = Observation(verdict="skipped", detail=skip)
                continue
            if t.dst_ip is None:
                observations[i] = Observation(verdict="dropped", detail="no address to send to")
                continue
            probe = cluster_probe(str(i), t.dst_ip, t.dst_port, t.protocol, t.host, ingress=t.ingress is not None)
            batches.setdefault(_source(pred), []).append((i, probe))

        def run_source(source: str) -> list[tuple[int, ClusterProbeResult]]:
            items = batches[source]
            results = retry_until_consistent(lambda probes: self.run_batch(source, probes), [p for _, p in items],
                                             max_rounds=self.timeouts.probe_rounds,
                                             deadline_s=self.timeouts.probe_deadline, wait_s=self.timeouts.probe_wait)
            return [(i, r) for (i, _), r in zip(items, results, strict=True)]

        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=max(1, min(4, len(batches)))) as pool:
            for done in pool.map(run_source, list(batches)):
                for i, result in done:
                    observations[i] = self.observation(preds[i], result)
        self._repeat(preds, observations, batches)
        self.timings["probe_s"] = time.perf_counter() - t0
        return [o if o is not None else Observation(verdict="error", detail="not probed") for o in observations]

    def _repeat(self, preds: Sequence[Prediction], observations: list[Observation | None],
                batches: dict[str, list[tuple[int, ClusterProbe]]]) -> None:
        """Probes 2..N of ``repeat: N`` flows (session affinity): one batch per source and round,
        rounds in order, so each probe follows the one before it as on the lab."""
        for source, items in batches.items():
            todo = [(i, p) for i, p in items if preds[i].flow.repeat > 1 and observations[i] is not None]
            for k in range(2, max((preds[i].flow.repeat for i, _ in todo), default=1) + 1):
                batch = [(i, p) for i, p in todo if k <= preds[i].flow.repeat]
                for (i, _), r in zip(batch, self.run_batch(source, [p for _, p in batch]), strict=True):
                    seen = self.observation(preds[i], r)
                    observations[i].repeats.append((seen.verdict, seen.answered_by))  # type: ignore[union-attr]

    def settle_policies(self, preds: Sequence[Prediction]) -> None:
        """Wait (bounded) until the canary flows a policy should drop are dropped (settling.py).

        Its time is ``timings["policy_settle_s"]``; a timeout, or no canary in a scenario with
        policies, is a warning of the realized topology (the report's scenario ``warnings``).
        """
        usable = choose_canaries(preds, lambda p: self._skip_reason(p) is None and p.target.dst_ip is not None)
        if not usable:
            if self.topo.policies:
                self.topo.warnings.append(NO_CANARY)
            return
        probes = {i: cluster_probe(f"settle{i}", preds[i].target.dst_ip or "", preds[i].target.dst_port,
                                   preds[i].target.protocol, preds[i].target.host,
                                   ingress=preds[i].target.ingress is not None) for i in usable}
        probe_round = canary_round({i: _source(preds[i]) for i in usable}, probes, self.run_batch)
        labels = {i: flow_label(preds[i]) for i in usable}
        self.backend.progress(f"{self.planned.name}: waiting until the policies are in force "
                              f"(canaries: {'; '.join(labels.values())})")
        outcome = wait_until_dropped(probe_round, labels, timeout_s=self.timeouts.policy_settle,
                                     poll_s=self.timeouts.poll)
        self.timings["policy_settle_s"] = outcome.seconds
        warning = outcome.warning(self.timeouts.policy_settle)
        if warning:
            log.warning("%s: %s", self.planned.name, warning)
            self.topo.warnings.append(warning)

    def _skip_reason(self, pred: Prediction) -> str | None:
        t = pred.target
        if t.protocol not in ("TCP", "UDP"):
            return f"netiso probes TCP and UDP only ({t.protocol} flows are not probed on a cluster)"
        for end in (pred.flow.src, pred.flow.dst):
            sym = parse_endpoint(end)
            if sym.kind == "client":
                reason = self.unusable_clients.get(str(sym.name))
                if reason is None and str(sym.name) not in self.clients:
                    reason = f"client:{sym.name} has no --client mapping"
                if reason:
                    return reason
        return self._premise_unmet(pred)

    def _premise_unmet(self, pred: Prediction) -> str | None:
        """Why a flow's scenario premise does not hold here: the VIP's announcer is not the plan's
        (vips.py), or the client's routing to pod IPs is not what ``cluster.clientsRouteToPods`` says."""
        t = pred.target
        if t.origin_kind != "client":
            return None
        svc = t.service
        if svc is not None and svc.lb_ip and t.dst_ip == svc.lb_ip and svc.key in self.lb_skips:
            return self.lb_skips[svc.key]
        if t.dst_kind == "externalip":  # the lab's router routes it; a cluster's outside network is not netiso's
            return (f"client:{t.origin_name} reaches external IP {t.dst_ip} only if its network routes the address "
                    f"to node {t.entry_node}, which netiso cannot arrange on a cluster (pod: and node: sources to "
                    "external IPs are probed)")
        if t.dst_kind == "pod":
            wanted = self.topo.scenario.cluster.clientsRouteToPods
            if self.client_pod_routes.get(t.origin_name, True) != wanted:
                has = "routes" if not wanted else "has no route"
                return (f"the scenario says cluster.clientsRouteToPods: {str(wanted).lower()}, but "
                        f"client:{t.origin_name} {has} to pod IPs here"
                        + (" (--client-no-pod-routes)" if not self.client_pod_routes.get(t.origin_name, True) else
                           " (--client hosts do unless --client-no-pod-routes names them)"))
        return None

    def run_batch(self, source: str, probes: list[ClusterProbe]) -> list[ClusterProbeResult]:
        """One exec (or one client command) firing ``probes`` from ``source``; one result per probe."""
        script = batch_script(probes)
        longest = max(max(p.timeout, p.connect_timeout) for p in probes)
        budget = self.timeouts.exec_budget or 20.0 + math.ceil(len(probes) / 32) * (longest + 2.0)
        try:
            if source.startswith("client:"):
                client = source.split(":", 1)[1]
                out, err, rc = run_client(self.clients[client], script, budget, name=client)
                failure = client_batch_failure(source, out, err, rc)
            else:
                ns, pod = self.exec_target(source)
                out, err, exec_rc = self.kube.exec(ns, pod, exec_command(script),
                                                   container=self._containers.get((ns, pod)) or None, timeout=budget)
                failure = exec_batch_failure(source, err, exec_rc, budget)
        except (ClientCommandError, KubeApiError, BackendUnavailable) as exc:
            return failed_batch(probes, f"probe batch from {source} could not run: {exc}")
        if failure:
            return failed_batch(probes, failure)
        return parse_batch_output(out, err, probes)

    def exec_target(self, source: str) -> tuple[str, str]:
        """(namespace, pod) that probes of ``source`` (a pod symbol or ``node:NAME``) run in."""
        if source.startswith("node:"):
            return self.names.system_namespace, self.names.node_pod(source.split(":", 1)[1])
        pod = next(p for p in self.planned.pods if p.symbol == source)
        return self.names.namespace(pod.project), self.names.pod_name(pod)

    # ------------------------------------------------------------------ describe

    def describe(self) -> dict[str, Any]:
        return {
            "run": self.names.run,
            "context": self.kube.target.context,
            "nodes": {n: {"cluster": self.node_map.get(n), "ip": info.ip, "tunnel": info.tunnel_ip}
                      for n, info in self.topo.nodes.items()},
            "pods": {p.symbol: {"namespace": self.names.namespace(p.project), "pod": self.names.pod_name(p),
                                "ip": p.ip} for p in self.topo.pods},
            "exec": {f"node:{n}": f"kubectl -n {self.names.system_namespace} exec -it {self.names.node_pod(n)} -- sh"
                     for n in manifests.source_nodes(self.planned)},
            "clients": {c: self.clients.get(c) for c in self.planned.clients},
        }

    # ------------------------------------------------------------------ down

    def down(self) -> None:
        if self.closed:
            return
        self.closed = True
        t0 = time.perf_counter()
        try:
            if self.lease is not None:
                self.lease.stop()
            self.stop_client_servers()
            for line in delete_run(self.kube, self.names, wait_s=self.timeouts.delete, poll_s=self.timeouts.poll,
                                   kinds=self.backend.cluster_kinds):
                log.info("run %s: %s", self.names.run, line)
        finally:
            self.backend.vip_reservations.release(c.vip for c in self.vip_choices.values())
            self.timings["down_s"] = time.perf_counter() - t0
            self.backend._forget(self)


# --------------------------------------------------------------------------- helpers


def cluster_probe(probe_id: str, dst_ip: str, dst_port: int, protocol: str, host: str | None, *,
                  ingress: bool) -> ClusterProbe:
    """The probe of one flow, with its kind's timeouts (a run and ``--dry-run``'s plan build it alike)."""
    timeout = INGRESS_TIMEOUT_S if ingress else UDP_TIMEOUT_S if protocol == "UDP" else PROBE_TIMEOUT_S
    return ClusterProbe(id=probe_id, dst_ip=dst_ip, dst_port=dst_port, protocol=protocol,  # type: ignore[arg-type]
                        host=host, timeout=timeout, connect_timeout=CONNECT_TIMEOUT_S, want_forwarded_for=ingress)


def _source(pred: Prediction) -> str:
    t = pred.target
    return t.origin_name if t.origin_kind == "pod" else f"{t.origin_kind}:{t.origin_name}"


def _service_account_not_ready(exc: BaseException) -> bool:
    """The 403 a pod gets while its namespace's ServiceAccount does not exist yet (not an RBAC refusal)."""
    message = getattr(exc, "message", "") or ""
    return isinstance(exc, KubeApiError) and exc.status == 403 and "serviceaccount" in message and "not found" in message

