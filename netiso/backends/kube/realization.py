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
5. phase ``policies`` rendered from the realized topology (ipBlocks of real addresses), then
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
"""

from __future__ import annotations

import logging
import math
import os
import shlex
import socket
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import yaml
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_fixed

from netiso.backends.base import NODE_TRACE_KEY, BackendUnavailable, Realization
from netiso.backends.kube import manifests
from netiso.backends.kube.cleanup import LeaseKeeper, delete_run
from netiso.backends.kube.client import KubeApiError
from netiso.backends.kube.discovery import discover, openelb_announcer
from netiso.backends.kube.manifests import KubeTarget
from netiso.backends.kube.naming import RunNames
from netiso.backends.kube.preflight import check_namespaces, clients_of
from netiso.backends.kube.probe_running import (
    ClientCommandError,
    client_address_script,
    exec_command,
    parse_client_address,
    retry_until_consistent,
    run_client,
)
from netiso.backends.kube.probing import ClusterProbe, ClusterProbeResult, batch_script, failed_batch, parse_batch_output
from netiso.backends.kube.settling import NO_CANARY, canary_round, choose_canaries, flow_label, wait_until_dropped
from netiso.backends.kube.vips import VipChoice, choose_on_cluster, lb_skip_reasons
from netiso.backends.kube.waiting import ReadinessWaits, event_time, pod_state
from netiso.model.addressing import resolve
from netiso.model.symbols import parse_endpoint
from netiso.model.types import PodInfo, Topology
from netiso.oracle.judge import Observation
from netiso.oracle.predict import Prediction

if TYPE_CHECKING:
    from netiso.backends.kube.backend import KubeBackend

log = logging.getLogger("netiso.kube")

PROBE_TIMEOUT_S = 2.0
UDP_TIMEOUT_S = 1.0  # netcat-openbsd waits whole seconds; netexec answers a datagram within milliseconds
INGRESS_TIMEOUT_S = 4.5  # nginx: 1 s connect timeout x up to 3 upstream tries, plus margin
CONNECT_TIMEOUT_S = 1.0
CLIENT_TIMEOUT_S = 30.0
NODE_TRACE_SKIP = ("skipped: the kernel's rule trace (iptables TRACE with xtables-monitor --trace) is read on the "
                   "nodes themselves, and the kube backend has no access to them (only to the API server); "
                   "--backend kind has it, through docker exec into its node containers")


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
    exec_budget: float | None = None  # a probe batch's exec deadline; None: worked out from its probes (run_batch)


def _holder() -> str:
    return f"netiso@{socket.gethostname()}/{os.getpid()}"


class KubeRealization(ReadinessWaits, Realization):
    """One scenario on the cluster, from :meth:`build` until :meth:`down`."""

    def __init__(self, backend: KubeBackend, planned: Topology, names: RunNames) -> None:
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
        self.clients = dict(backend.options.clients)
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
        no_routes = set(backend.options.clients_without_pod_routes)
        self.client_pod_routes = {c: c not in no_routes for c in self.clients}  # --client-no-pod-routes
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
            self.vip_choices = choose_on_cluster(self.kube, self.planned, self.backend.findings, self.node_map)
            for choice in self.vip_choices.values():
                log.info("%s: %s", self.planned.name, choice.describe())
            self.target = replace(self.target, vips={k: c.vip for k, c in self.vip_choices.items() if c.vip})
            self._step("services", manifests.service_objects(self.planned, self.target))
            t0 = time.perf_counter()
            self.backend.progress(f"{self.planned.name}: waiting for pods to be Ready (run {self.names.run})")
            self.wait_pods_ready()
            self.wait_lb_ips()
            self.timings["ready_s"] = time.perf_counter() - t0
            client_ips = self.client_addresses()
            facts = discover(self.kube, self.planned, self.names, self.node_map,
                             self.backend.findings.nodes if self.backend.findings else {}, self.pool, client_ips)
            self.topo = resolve(self.planned.scenario, facts)
            self.lb_skips = lb_skip_reasons(self.planned, self.topo, self.vip_choices)
            self.backend.progress(f"{self.planned.name}: discovered the cluster's addresses")
            self._step("policies", manifests.policy_objects(self.topo, self.target))
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

    # ------------------------------------------------------------------ clients

    def client_addresses(self) -> dict[str, str]:
        """Each mapped client's own address, asked through its command (``ip -4 route get <node IP>``)."""
        wanted = clients_of(self.planned)
        if not wanted:
            return {}
        findings = self.backend.findings
        first = self.node_map[next(iter(self.planned.nodes))]
        node_ip = findings.nodes[first].internal_ip if findings and first in findings.nodes else None
        out: dict[str, str] = {}
        for client in wanted:
            if client in self.unusable_clients or client not in self.clients:
                continue
            try:
                stdout, _err, _rc = run_client(self.clients[client], client_address_script(node_ip or "127.0.0.1"),
                                               CLIENT_TIMEOUT_S, name=client)
                out[client] = parse_client_address(stdout)
            except (ClientCommandError, ValueError) as exc:
                self.unusable_clients[client] = f"client:{client}: cannot tell its address ({exc})"
        return out

    # ------------------------------------------------------------------ serve

    def serve(self, preds: Sequence[Prediction]) -> None:
        """Workload pods already serve (netexec); clients that egress flows reach get ``agnhost netexec``."""
        ports: dict[str, set[tuple[int, str]]] = {}
        for p in preds:
            if p.target.dst_kind == "client":
                name = str(parse_endpoint(p.flow.dst).name)
                ports.setdefault(name, set()).add((p.target.dst_port, p.target.protocol))
        for client, wanted in ports.items():
            if client in self.unusable_clients:
                continue
            if client not in self.clients:
                self.unusable_clients[client] = f"client:{client} has no --client mapping"
                continue
            self._serve_client(client, sorted(wanted))

    def _serve_client(self, client: str, ports: list[tuple[int, str]]) -> None:
        """One ``agnhost netexec`` per port number on the client (HTTP on TCP, ``clientip``/``hostname`` on UDP).

        netexec always listens on its HTTP port, so a UDP-only port also opens TCP on the same
        number there (separate port spaces; only the client host is affected).
        """
        lines = ["A=$(command -v /agnhost || command -v agnhost) || { echo NO-AGNHOST; exit 0; }"]
        by_number: dict[int, set[str]] = {}
        for port, proto in ports:
            by_number.setdefault(port, set()).add(proto)
        for port, protos in sorted(by_number.items()):
            udp = port if "UDP" in protos else -1
            lines.append(f'nohup "$A" netexec --http-port={port} --udp-port={udp} >/dev/null 2>&1 &')
            lines.append("echo PID $!")
        try:
            out, _err, _rc = run_client(self.clients[client], "\n".join(lines) + "\n", CLIENT_TIMEOUT_S, name=client)
        except ClientCommandError as exc:
            self.unusable_clients[client] = f"client:{client} cannot serve: {exc}"
            return
        if "NO-AGNHOST" in out:
            self.unusable_clients[client] = (f"client:{client} has no agnhost (/agnhost or agnhost on PATH) to answer "
                                             "egress flows; run the client from registry.k8s.io/e2e-test-images/agnhost")
            return
        self.client_servers[client] = [w.split()[1] for w in out.splitlines() if w.startswith("PID ") and len(w.split()) == 2]
        time.sleep(0.5)  # netexec binds within milliseconds; the probes retry anyway

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
        self.timings["probe_s"] = time.perf_counter() - t0
        return [o if o is not None else Observation(verdict="error", detail="not probed") for o in observations]

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
        if t.dst_kind == "pod":
            wanted = self.topo.scenario.cluster.clientsRouteToPods
            if self.client_pod_routes.get(t.origin_name, True) != wanted:
                has = "routes" if not wanted else "has no route"
                return (f"the scenario says cluster.clientsRouteToPods: {str(wanted).lower()}, but "
                        f"client:{t.origin_name} {has} to pod IPs here"
                        + (" (--client-no-pod-routes)" if not self.client_pod_routes.get(t.origin_name, True) else
                           " (kind's clients, and --client hosts unless --client-no-pod-routes names them, do)"))
        return None

    def run_batch(self, source: str, probes: list[ClusterProbe]) -> list[ClusterProbeResult]:
        """One exec (or one client command) firing ``probes`` from ``source``; one result per probe."""
        script = batch_script(probes)
        longest = max(max(p.timeout, p.connect_timeout) for p in probes)
        budget = self.timeouts.exec_budget or 20.0 + math.ceil(len(probes) / 32) * (longest + 2.0)
        try:
            if source.startswith("client:"):
                client = source.split(":", 1)[1]
                out, err, _rc = run_client(self.clients[client], script, budget, name=client)
            else:
                ns, pod = self.exec_target(source)
                out, err, rc = self.kube.exec(ns, pod, exec_command(script),
                                              container=self._containers.get((ns, pod)) or None, timeout=budget)
                # -- begin: exec end (H1) --
                # the exit Status on channel 3 decides: no Status within the budget = the batch did not
                # finish (its partial output is not trusted); a non-zero code = the shell failed (the
                # script itself always ends ``echo NETISO-END``, exit 0)
                if rc is None:
                    return failed_batch(probes, f"probe batch from {source} did not finish within {budget:g} s "
                                                "(exec timed out; its partial output was not used)")
                if rc != 0:
                    tail = err.strip().splitlines()[-1][:200] if err.strip() else "no stderr"
                    return failed_batch(probes, f"probe batch from {source} failed: exit code {rc} ({tail})")
                # -- end: exec end (H1) --
        except (ClientCommandError, KubeApiError, BackendUnavailable) as exc:
            return failed_batch(probes, f"probe batch from {source} could not run: {exc}")
        return parse_batch_output(out, err, probes)

    def exec_target(self, source: str) -> tuple[str, str]:
        """(namespace, pod) that probes of ``source`` (a pod symbol or ``node:NAME``) run in."""
        if source.startswith("node:"):
            return self.names.system_namespace, self.names.node_pod(source.split(":", 1)[1])
        pod = next(p for p in self.planned.pods if p.symbol == source)
        return self.names.namespace(pod.project), self.names.pod_name(pod)

    def observation(self, pred: Prediction, r: ClusterProbeResult) -> Observation:
        """A probe result in the judge's vocabulary: hostname -> pod symbol, source IP raw, elected node."""
        verdict = r.verdict
        detail = r.detail
        if r.inconsistent:
            seen = set((r.distribution or {}).keys())
            predicted = {o.verdict for o in pred.outcomes}
            if pred.verdict != "mixed" or not seen <= predicted:
                verdict = "error"  # an unsettled flow is a mismatch that shows its distribution
        xff = (r.forwarded_for or "").split(",")[0].strip() or None
        answered = self.answered_by(pred, r.hostname)
        if r.hostname and answered is None:  # not a pod of this run: say who, keep the judge's symbols clean
            detail = "; ".join(x for x in (f"answered by {r.hostname!r}, not a pod of run {self.names.run}", detail) if x)
        obs = Observation(verdict=verdict, source_ip=r.client_ip, answered_by=answered,
                          forwarded_for=xff, ms=r.ms, detail=detail)
        svc = pred.target.service
        if (svc is not None and svc.lb_ip and pred.target.dst_ip == svc.lb_ip
                and pred.target.origin_kind == "client"):
            obs.elected = self.elected(svc.project, svc.name, svc.lb_ip)
        return obs

    def answered_by(self, pred: Prediction, hostname: str | None) -> str | None:
        """The symbol of the pod (or client) whose netexec answered ``/hostname``; None for an unknown name.

        Pod names repeat across projects (``web-worker`` in two projects): the pods the oracle
        predicts as answerers are preferred, then scenario order.
        """
        if not hostname:
            return None
        if pred.target.dst_kind == "client":
            return f"client:{parse_endpoint(pred.flow.dst).name}"
        candidates: list[PodInfo] = [p for p in self.topo.pods if self.names.pod_name(p) == hostname]
        if not candidates:
            return None
        preferred = [p for p in candidates if p.symbol in pred.answered_by]
        return (preferred or candidates)[0].symbol

    def elected(self, project: str, service: str, vip: str | None = None) -> str | None:
        """The scenario node announcing a Service's VIP, None if unknown.

        MetalLB: its ServiceL2Status; OpenELB: its speakers' election log lines (discovery.openelb_announcer).
        """
        if self.topo.load_balancer == "openelb" and vip:
            if vip not in self._openelb:
                try:
                    self._openelb[vip] = openelb_announcer(self.kube, vip)
                except (KubeApiError, BackendUnavailable) as exc:
                    log.warning("reading OpenELB speaker logs: %s", exc)
                    self._openelb[vip] = None
            node = self._openelb[vip]
            return self.back_map.get(node, node) if node else None
        if self.topo.load_balancer != "metallb":
            return None
        if self._l2 is None:
            self._l2 = {}
            try:
                for st in self.kube.list("metallb.io/v1beta1", "ServiceL2Status"):
                    status = st.get("status") or {}
                    if status.get("node"):
                        self._l2[(str(status.get("serviceNamespace")), str(status.get("serviceName")))] = status["node"]
            except (KubeApiError, BackendUnavailable) as exc:
                log.warning("reading MetalLB ServiceL2Status: %s", exc)
        node = self._l2.get((self.names.namespace(project), service))
        return self.back_map.get(node, node) if node else None

    # ------------------------------------------------------------------ evidence / describe

    def evidence(self, pred: Prediction, obs: Observation) -> dict[str, str]:
        out: dict[str, str] = {NODE_TRACE_KEY: NODE_TRACE_SKIP}  # a skip reason, not an error (kind replaces it)
        t = pred.target
        pods: list[PodInfo] = []
        if t.origin_pod is not None:
            pods.append(t.origin_pod)
        if t.dst_pod is not None:
            pods.append(t.dst_pod)
        if t.service is not None:
            pods += list(t.service.endpoints)
        try:
            for pod in {p.symbol: p for p in pods}.values():
                ns, name = self.names.namespace(pod.project), self.names.pod_name(pod)
                obj = self.kube.get("v1", "Pod", name, ns)
                events = self.kube.list("v1", "Event", ns, field_selector=f"involvedObject.name={name}")
                lines = [f"{pod_state(obj)}; node {((obj or {}).get('spec') or {}).get('nodeName')}; "
                         f"podIP {((obj or {}).get('status') or {}).get('podIP')}"]
                lines += [f"{e.get('type', '')} {e.get('reason', '')}: {e.get('message', '')}"
                          for e in sorted(events, key=event_time)[-5:]]
                out[f"pod {pod.symbol} ({ns}/{name})"] = "\n".join(lines)
            project = t.service.project if t.service is not None else t.dst_pod.project if t.dst_pod else None
            if project is not None:
                ns = self.names.namespace(project)
                policies = self.kube.list("networking.k8s.io/v1", "NetworkPolicy", ns)
                out[f"networkpolicies {ns}"] = yaml.safe_dump_all([_clean(p) for p in policies], sort_keys=False) or "(none)"
            if t.service is not None:
                ns = self.names.namespace(t.service.project)
                svc = self.kube.get("v1", "Service", t.service.name, ns)
                slices = self.kube.list("discovery.k8s.io/v1", "EndpointSlice", ns,
                                        label_selector=f"kubernetes.io/service-name={t.service.name}")
                out[f"service {ns}/{t.service.name}"] = yaml.safe_dump_all(
                    [_clean(o) for o in [svc, *slices] if o], sort_keys=False)
        except (KubeApiError, BackendUnavailable) as exc:
            out["evidence error"] = str(exc)
        return out

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
            for client, pids in self.client_servers.items():
                if pids:
                    try:
                        run_client(self.clients[client], f"kill {' '.join(shlex.quote(p) for p in pids)} 2>/dev/null; true\n",
                                   CLIENT_TIMEOUT_S, name=client)
                    except ClientCommandError as exc:
                        log.warning("stopping echo servers on client:%s: %s", client, exc)
            for line in delete_run(self.kube, self.names, wait_s=self.timeouts.delete, poll_s=self.timeouts.poll):
                log.info("run %s: %s", self.names.run, line)
        finally:
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


def _clean(obj: Mapping[str, Any]) -> dict[str, Any]:
    """An object without managedFields (evidence stays readable)."""
    out = dict(obj)
    meta = dict(out.get("metadata") or {})
    meta.pop("managedFields", None)
    out["metadata"] = meta
    return out
