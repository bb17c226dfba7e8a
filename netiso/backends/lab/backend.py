"""The lab as a :class:`~netiso.backends.base.Backend`: the embedded kernel datapath behind the one interface.

What used to live in ``netiso.checking`` (serving echo endpoints, turning predictions into probes,
reading which node answered ARP for a VIP, evidence for a mismatch) lives here, so that the top
layer speaks only to :mod:`netiso.backends.base`. Behaviour is unchanged: the same probes with
the same timeouts, one echo-serving prober for every lab of a session and one probing prober per
worker thread (a separate server process lets the two cores share the work: measured 880 -> 1650
allowed probes/s), sockets in a scenario's namespaces released before they are deleted.

Probers come from the top layer (``ProberFactory``, implemented by ``netiso.probe``), because the
lab must not import the layer above it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from netiso.backends.base import (
    EVIDENCE_LIMIT,
    Backend,
    BackendOptions,
    BackendUnavailable,
    LocalProbe,
    Prober,
    ProberFactory,
    Realization,
    left_out,
)
from netiso.model.flows import host_servers
from netiso.model.symbols import parse_endpoint
from netiso.model.types import Topology
from netiso.model.verdicts import health_check_verdict
from netiso.oracle.judge import Observation
from netiso.oracle.predict import Prediction

log = logging.getLogger("netiso.lab")

DEFAULT_JOBS = 3  # labs built and probed side by side
PROBE_TIMEOUT_S = 1.0  # a dropped TCP/UDP probe costs this
INGRESS_TIMEOUT_S = 4.5  # nginx: 1 s connect timeout x up to 3 upstream tries, plus margin
# A timeout no traced rule decided is tried once more before it counts as a drop: a SYN lost under
# load is retransmitted after 1 s, exactly when the probe gives up (issue 16: 82 false drops at 48 nodes).
PROBE_RETRIES = 1
CAPTURE_LIMIT = 5  # mismatches per scenario whose retry is captured (one capture process each)


def origin_symbol(pred: Prediction) -> str:
    """The lab endpoint a flow is fired from (``node:N``, ``client:C`` or a pod symbol)."""
    t = pred.target
    return t.origin_name if t.origin_kind == "pod" else f"{t.origin_kind}:{t.origin_name}"


def involved_nodes(pred: Prediction) -> list[str]:
    """Nodes the predicted path crosses (hops start with the node name)."""
    nodes = []
    for hop in pred.path:
        head = hop.split(":", 1)[0].split(" ")[0]
        if head in pred.topo.nodes and head not in nodes:
            nodes.append(head)
    return nodes


def refuse_unprobeable(topos: Sequence[Topology]) -> None:
    """SCTP needs the sctp kernel module, which this kernel lacks (no module loading): say so up front."""
    from netiso.model.errors import InputError
    from netiso.model.flows import resolve_flow

    for topo in topos:
        for flow in topo.scenario.flows:
            if resolve_flow(topo, flow).protocol == "SCTP":
                src = topo.scenario.source
                raise InputError("the lab probes TCP and UDP only (the kernel has no sctp module); "
                                 "explain still predicts SCTP flows", file=src.file, document=src.index,
                                 name=src.name, field=f"flows[{flow.index}].port")


class LabRealization(Realization):
    """One scenario's lab, with the probers that serve and probe in it."""

    def __init__(self, lab: Any, server: Prober, prober: Prober, *, trace: bool = True) -> None:
        self.lab = lab
        self.trace = trace
        self._tracing = False
        self.topo = lab.topo
        self.timings = lab.timings
        self.server = server
        self.prober = prober
        self._served: list[str] = []
        self._probed: list[str] = []
        self._requests: dict[int, LocalProbe] = {}  # id(prediction) -> its probe, for a retry under capture

    # ------------------------------------------------------------------ serving
    def serve_pods(self) -> list[str]:
        """Echo servers on every port of every workload pod; returns the namespaces served."""
        used: list[str] = []
        for pod in self.topo.pods:
            if pod.role != "workload":
                continue
            ns = self.lab.net.ns_of(pod.symbol)
            for port in pod.ports:
                if port.protocol == "SCTP":
                    continue  # the echo server speaks TCP and UDP (check refuses SCTP flows up front)
                self.server.serve(ns, port.port, port.protocol, hostname=pod.symbol)
            used.append(ns)
        self._served.extend(used)
        return used

    def serve_clients(self, ports: dict[str, set[tuple[int, str]]]) -> None:
        for name, wanted in ports.items():
            ns = self.lab.net.ns_of(f"client:{name}")
            for number, proto in sorted(wanted):
                self.server.serve(ns, number, proto, hostname=f"client:{name}")
            self._served.append(ns)

    def serve_nodes(self) -> None:
        """Echo servers in node namespaces: the host-network servers ``to: node:N`` flows reach
        (``flows.host_servers``, the same listeners the oracle assumes)."""
        for name, ports in host_servers(self.topo).items():
            ns = self.lab.net.ns_of(f"node:{name}")
            for port in sorted(ports, key=lambda p: (p.port, p.protocol)):
                self.server.serve(ns, port.port, port.protocol, hostname=f"node:{name}")
            self._served.append(ns)

    def serve_health_checks(self) -> None:
        """kube-proxy's health server on every node for every ETP Local LoadBalancer Service, answering
        with that node's local endpoint count (netiso.probe.health mirrors service_health.go): the
        *ready* ones only (proxier.go hands the server EndpointsMap.LocalReadyEndpoints), so a node
        whose only endpoint is terminating answers 503 while its rules still send traffic there."""
        for svc in self.topo.services.values():
            if svc.type != "LoadBalancer" or svc.etp != "Local" or not svc.health_check_node_port:
                continue
            for name in self.topo.nodes:
                ns = self.lab.net.ns_of(f"node:{name}")
                count = len({p.ip for p in svc.endpoints if p.node == name and svc.conditions(p).ready})
                self.server.serve(ns, svc.health_check_node_port, "TCP", hostname=f"node:{name}",
                                  health={"namespace": svc.project, "name": svc.name, "localEndpoints": count})
                self._served.append(ns)

    def serve(self, preds: Sequence[Prediction]) -> None:
        """Echo servers in every workload pod (its ports), node (host-network servers flows end
        at) and client (ports flows send to)."""
        self.serve_pods()
        self.serve_nodes()
        if any(p.target.dst_kind == "healthcheck" for p in preds):
            self.serve_health_checks()
        client_ports: dict[str, set[tuple[int, str]]] = {}
        for p in preds:
            if p.target.dst_kind == "client":
                name = parse_endpoint(p.flow.dst).name
                client_ports.setdefault(str(name), set()).add((p.target.dst_port, p.target.protocol))
        self.serve_clients(client_ports)

    @property
    def served(self) -> list[str]:
        """The namespaces echo servers were started in (released by :meth:`down`)."""
        return list(self._served)

    # ------------------------------------------------------------------ probing
    def _request(self, i: int, pred: Prediction) -> LocalProbe | None:
        t = pred.target
        if t.dst_ip is None:
            return None  # nothing to send to: judged as dropped
        ns = self.lab.net.ns_of(origin_symbol(pred))
        timeout = INGRESS_TIMEOUT_S if t.ingress is not None else PROBE_TIMEOUT_S
        return LocalProbe(str(i), ns, t.dst_ip, t.dst_port, t.protocol, host=t.host, timeout=timeout,
                          connect_timeout=PROBE_TIMEOUT_S, trace=self.trace, upstreams=self._upstreams(pred),
                          retries=PROBE_RETRIES)

    def _upstreams(self, pred: Prediction) -> tuple[str, ...]:
        """The connections the ingress controller opens for this flow's request (traced ingress flows only).

        Only when the request surely lands at that controller: the Service in front of it has
        that one pod as its only endpoint, and the lab runs nginx in the pod's own namespace
        (where tracing marks its upstream SYNs).
        """
        t = pred.target
        if not self.trace or t.ingress is None or t.protocol != "TCP" or t.dst_ip is None:
            return ()
        from netiso.backends.lab import ingress

        ctl = t.ingress.controller
        if [p.ip for p in ctl.service.endpoints] != [ctl.pod.ip]:
            return ()
        if not any(c.pod.symbol == ctl.pod.symbol for c in self.lab.controllers):
            return ()
        host = t.host or (t.dst_ip if t.dst_port == 80 else f"{t.dst_ip}:{t.dst_port}")  # what the probe sends
        return tuple(ingress.upstream_connections(self.topo, ctl, host))

    def probe(self, preds: Sequence[Prediction]) -> list[Observation]:
        """Fire every flow's probe; with tracing, each carries the kernel's rule trace of its first packet
        and a drop is settled the moment a rule decides it (netiso.backends.lab.tracing)."""
        from netiso.backends.lab import announce

        if self.trace and not self._tracing:
            from netiso.backends.lab.tracing import start_tracing

            start_tracing(self.lab, self.prober)
            self._tracing = True
        self._requests = {id(p): r for i, p in enumerate(preds) if (r := self._request(i, p)) is not None}
        self._probed.extend(dict.fromkeys(self.lab.net.ns_of(origin_symbol(p)) for p in preds))
        results = {r.id: r for r in self.prober.probe(list(self._requests.values()))}
        elected: dict[tuple[str, str], str | None] = {}  # (client, VIP) -> node: one neighbour read per pair
        observations = []
        for i, p in enumerate(preds):
            r = results.get(str(i))
            if r is None:
                observations.append(Observation(verdict="dropped", detail="no address to send to"))
                continue
            xff = (r.forwarded_for or "").split(",")[0].strip() or None
            verdict = health_check_verdict(r.verdict, r.status) if p.target.dst_kind == "healthcheck" else r.verdict
            obs = Observation(verdict=verdict, source_ip=r.client_ip, answered_by=r.hostname or None,
                              forwarded_for=xff, ms=r.ms, detail=r.detail or "", path=list(r.path or []),
                              decided_by=r.decided_by, tries=r.tries, status=r.status,
                              local_endpoints=r.local_endpoints)
            svc = p.target.service
            if svc is not None and svc.lb_ip and p.target.dst_ip == svc.lb_ip and p.target.origin_kind == "client":
                pair = (p.target.origin_name, svc.lb_ip)
                if pair not in elected:  # read after the whole batch: the same entry for every flow of the pair
                    elected[pair] = announce.who_has(self.lab.net, *pair)
                obs.elected = elected[pair]
            observations.append(obs)
        self._repeat(preds, observations)
        return observations

    def _repeat(self, preds: Sequence[Prediction], observations: list[Observation]) -> None:
        """Probes 2..N of ``repeat: N`` flows, in rounds: one probe per flow per round, each round
        after the last has answered, so that a kernel's affinity entry (``recent --set``) from
        probe k is in place for probe k+1. Untraced: the first probe carries the trace."""
        todo = {i: (r, p.flow.repeat) for i, p in enumerate(preds)
                if p.flow.repeat > 1 and (r := self._requests.get(id(p))) is not None}
        for k in range(2, max((n for _, n in todo.values()), default=1) + 1):
            batch = [replace(r, id=f"{i}#{k}", trace=False) for i, (r, n) in todo.items() if k <= n]
            for res in self.prober.probe(batch):
                i = int(res.id.split("#")[0])
                observations[i].repeats.append((res.verdict, res.hostname or None))

    # ------------------------------------------------------------------ evidence
    def evidence(self, pred: Prediction, obs: Observation) -> dict[str, str]:
        """Rules, routes, neighbours and FDB of the nodes on the path, and a capture of a retry."""
        out = self.lab.evidence(involved_nodes(pred) or list(self.topo.nodes))
        request = self._requests.get(id(pred))
        if request is not None:
            out.update(self.capture_retry(pred, request))
        return out

    def evidence_many(self, items: Sequence[tuple[Prediction, Observation]],
                      limit: int = EVIDENCE_LIMIT) -> list[dict[str, str]]:
        """Evidence for many mismatches, bounded: each node's rules and routes read once (in parallel)
        and written in full into the first flow that crosses it (later flows name that flow), a
        captured retry for the first ``CAPTURE_LIMIT`` flows, a plain retry (one batch) for the rest
        of the first ``limit``; past ``limit``, a line saying how many were left out."""
        from concurrent.futures import ThreadPoolExecutor

        head = list(items[:limit])
        nodes_of = [involved_nodes(p) or list(self.topo.nodes) for p, _ in head]
        distinct = list(dict.fromkeys(n for nodes in nodes_of for n in nodes))
        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="lab-evidence") as pool:
            per_node = dict(zip(distinct, pool.map(lambda n: self.lab.evidence([n]), distinct), strict=True))
        out: list[dict[str, str]] = []
        first: dict[str, str] = {}  # node -> the flow whose evidence holds its dump
        for (pred, _), nodes in zip(head, nodes_of, strict=True):
            found: dict[str, str] = {}
            for node in nodes:
                for key, text in per_node[node].items():
                    found[key] = text if node not in first else f"(the same dump as in the evidence of {first[node]})"
                first.setdefault(node, f"{pred.flow.src} -> {pred.flow.dst} ({pred.target.port})")
            out.append(found)
        requests = [self._requests.get(id(p)) for p, _ in head]
        plain: list[tuple[int, LocalProbe]] = []
        for i, ((pred, _), request) in enumerate(zip(head, requests, strict=True)):
            if request is None:
                continue
            if i < CAPTURE_LIMIT:
                out[i].update(self.capture_retry(pred, request))
            else:
                plain.append((i, request))
        if plain:
            got = {r.id: r for r in self.prober.probe([r for _, r in plain])}
            for i, request in plain:
                r = got.get(request.id)
                if r is not None:
                    out[i]["retry"] = _retry_line(r) + " (not captured: captures are kept for the first " \
                                                       f"{CAPTURE_LIMIT} mismatches)"
        return out + left_out(len(items), limit)

    def capture_retry(self, pred: Prediction, request: LocalProbe) -> dict[str, str]:
        """Probe the flow once more while capturing the node network (br0) with scapy.

        The retry's verdict is evidence too: a different verdict on retry means a flaky datapath,
        which the report shows rather than hides (the first observation stays the result).
        """
        from netiso.backends.lab.capture import capture_during

        t = pred.target
        hosts = {t.dst_ip} | {n.ip for n in self.topo.nodes.values()}
        bpf = " or ".join(f"host {h}" for h in sorted(h for h in hosts if h))
        retry: list[Any] = []
        lines = capture_during(self.lab.net.switch_ns, "br0", bpf, lambda: retry.extend(self.prober.probe([request])))
        out = {"capture br0": "\n".join(lines) or "(no packet crossed the node network)"}
        if retry:
            out["retry"] = _retry_line(retry[0])
        return out

    def describe(self) -> dict[str, Any]:
        net = self.lab.net
        entries = {}
        for name, n in net.nodes.items():
            entries[f"node:{name}"] = {"netns": n.netns, "ip": n.ip}
        for name, c in net.clients.items():
            entries[f"client:{name}"] = {"netns": c.netns, "ip": c.ip}
        for pod in self.topo.pods:
            entries[pod.symbol] = {"netns": net.ns_of(pod.symbol), "ip": pod.ip}
        vips = {s.key: {"vip": s.lb_ip, "announcedBy": s.lb_node} for s in self.topo.services.values() if s.lb_ip}
        return {"prefix": self.lab.run.prefix, "scenario": self.topo.name, "encapsulation": self.topo.encapsulation,
                "namespaces": entries, "vips": vips}

    def adopt(self, pid: int, what: str) -> None:
        """Register a process of the caller with the run, so the janitor ends it if the caller dies."""
        self.lab.run.register_pid(pid, what)

    def down(self) -> None:
        if self._tracing:
            from netiso.backends.lab.tracing import stop_tracing

            try:
                stop_tracing(self.lab, self.prober)  # a trace socket pins its namespace like a probe socket
            except Exception as exc:
                log.warning("stopping the trace readers: %s", exc)
            self._tracing = False
        for who, spaces in ((self.server, self._served), (self.prober, list(dict.fromkeys(self._probed)))):
            for ns in dict.fromkeys(spaces):
                try:
                    who.release(ns)  # sockets and helper threads would keep the namespace alive
                except Exception as exc:  # a release failure must not stop the teardown
                    log.warning("releasing %s: %s", ns, exc)
        self._served, self._probed = [], []
        self.lab.down()


def _retry_line(r: Any) -> str:
    return f"{r.verdict} (server saw {r.client_ip}, answered by {r.hostname}, {r.ms:.1f} ms) {r.detail or ''}"


class LabBackend(Backend):
    """Scenarios on the embedded kernel lab (root, no cluster)."""

    name = "lab"
    default_jobs = DEFAULT_JOBS

    def __init__(self, options: BackendOptions | None = None, probers: ProberFactory | None = None) -> None:
        if probers is None:
            raise ValueError("the lab backend needs a prober factory (netiso.probe)")
        self.options = options or BackendOptions()
        self._factory = probers
        self._server: Prober | None = None
        self._local = threading.local()
        self._probers: list[Prober] = []
        self._lock = threading.Lock()

    def preflight(self, topos: Sequence[Topology]) -> None:
        from netiso.backends.lab.lab import check_prerequisites
        from netiso.backends.lab.netns import LabUnavailable

        refuse_unprobeable(topos)
        try:
            check_prerequisites()
            for topo in topos:
                check_prerequisites(topo)
        except LabUnavailable as exc:
            raise BackendUnavailable(str(exc)) from None

    def clean(self) -> list[str]:
        from netiso.backends.lab.runs import clean

        return clean().lines()

    def _server_prober(self) -> Prober:
        with self._lock:
            if self._server is None:
                self._server = self._factory()
                self._probers.append(self._server)
            return self._server

    def _thread_prober(self) -> Prober:
        prober = getattr(self._local, "prober", None)
        if prober is None:
            prober = self._local.prober = self._factory()
            with self._lock:
                self._probers.append(prober)
        return prober

    def realize(self, topo: Topology) -> LabRealization:
        from netiso.backends.lab.ingress import ControllerStartError
        from netiso.backends.lab.ipip import ForwarderError
        from netiso.backends.lab.lab import Lab
        from netiso.backends.lab.netns import LabCommandError, LabUnavailable

        server, prober = self._server_prober(), self._thread_prober()
        lab = Lab(topo, trace_rules=self.options.trace)  # TRACE rules in the same restore as the node rules
        try:
            lab.up()  # tears itself down before an error propagates
        except (LabUnavailable, LabCommandError, ControllerStartError, ForwarderError) as exc:
            raise BackendUnavailable(f"the lab backend could not start: {exc}") from None
        return LabRealization(lab, server, prober, trace=self.options.trace)

    def close(self) -> None:
        with self._lock:
            probers, self._probers, self._server = self._probers, [], None
        for prober in probers:
            try:
                prober.stop()
            except Exception as exc:
                log.warning("stopping a prober: %s", exc)
