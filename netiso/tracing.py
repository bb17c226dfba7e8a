"""Traced probing on the lab: the wiring between the lab, the probe agent and the judge.

Top layer, because it ties the lab backend (TRACE rules, run registration) to the probe layer
(the agent runs the monitors and settles probes). ``check_scenario_traced`` is
``checking.check_scenario`` with tracing switched on or off, kept separate so that the backend
interface (``netiso.backends.base``) can take these pieces over without both evolving at once:

1. :func:`start_tracing`: TRACE rules into every node namespace (raw table only), the agent
   reading each node namespace's trace events (a netlink socket per namespace, in the agent);
2. probes with ``trace=True``: the agent settles a probe whose first packet a rule drops and
   answers each with ``path`` and ``decided_by``;
3. :func:`stop_tracing` before the lab goes down (a socket would keep its namespace alive).
"""

from __future__ import annotations

import time
from typing import Any

from netiso.backends.lab.trace import TRACE_DSCP, install_trace_rules
from netiso.checking import FlowResult, ScenarioResult
from netiso.model.symbols import parse_endpoint
from netiso.model.types import Topology
from netiso.oracle.judge import Observation, judge
from netiso.oracle.predict import Prediction, predict_all
from netiso.oracle.profile import DEFAULT_PROFILE
from netiso.probe.results import ProbeRequest

PROBE_TIMEOUT_S = 1.0  # the lab backend's timeouts (netiso.backends.lab.backend)
INGRESS_TIMEOUT_S = 4.5


def node_namespaces(lab: Any) -> dict[str, str]:
    """netns -> node name of every node of a lab that is up."""
    return {node.netns: name for name, node in lab.net.nodes.items()}


def start_tracing(lab: Any, agent: Any, dscp: int = TRACE_DSCP) -> list[str]:
    """TRACE rules in every node of ``lab`` and the agent reading their trace events."""
    for netns in node_namespaces(lab):
        install_trace_rules(lab.run, netns, lab.topo, dscp)
    return agent.trace_start(node_namespaces(lab), dscp)


def stop_tracing(lab: Any, agent: Any) -> list[str]:
    """Stop the agent's tracing of ``lab``'s nodes (before the namespaces are deleted)."""
    if lab.net is None:
        return []
    return agent.trace_stop(list(node_namespaces(lab)))


def _serve(lab: Any, server: Any, preds: list[Prediction]) -> list[str]:
    """Echo servers in every workload pod (its ports) and in clients that flows send to."""
    used: list[str] = []
    for pod in lab.topo.pods:
        if pod.role != "workload":
            continue
        ns = lab.net.ns_of(pod.symbol)
        for port in pod.ports:
            if port.protocol != "SCTP":
                server.serve(ns, port.port, port.protocol, hostname=pod.symbol)
        used.append(ns)
    clients: dict[str, set[tuple[int, str]]] = {}
    for p in preds:
        if p.target.dst_kind == "client":
            clients.setdefault(str(parse_endpoint(p.flow.dst).name), set()).add((p.target.dst_port, p.target.protocol))
    for name, ports in clients.items():
        ns = lab.net.ns_of(f"client:{name}")
        for number, proto in sorted(ports):
            server.serve(ns, number, proto, hostname=f"client:{name}")
        used.append(ns)
    return used


def origin_symbol(pred: Prediction) -> str:
    t = pred.target
    return t.origin_name if t.origin_kind == "pod" else f"{t.origin_kind}:{t.origin_name}"


def probe_requests(lab: Any, preds: list[Prediction], *, trace: bool) -> dict[int, ProbeRequest]:
    """One request per flow with an address (the lab backend's timeouts), traced or not."""
    requests = {}
    for i, p in enumerate(preds):
        t = p.target
        if t.dst_ip is None:
            continue
        timeout = INGRESS_TIMEOUT_S if t.ingress is not None else PROBE_TIMEOUT_S
        requests[i] = ProbeRequest(str(i), lab.net.ns_of(origin_symbol(p)), t.dst_ip, t.dst_port, t.protocol,
                                   host=t.host, timeout=timeout, connect_timeout=PROBE_TIMEOUT_S, trace=trace)
    return requests


def observe(lab: Any, agent: Any, preds: list[Prediction], requests: dict[int, Any]) -> list[Observation]:
    """Fire the probes and turn their results into observations (with path and decidedBy)."""
    from netiso.backends.lab import announce

    results = {r.id: r for r in agent.probe(list(requests.values()))}
    observations = []
    for i, p in enumerate(preds):
        r = results.get(str(i))
        if r is None:
            observations.append(Observation(verdict="dropped", detail="no address to send to"))
            continue
        xff = (r.forwarded_for or "").split(",")[0].strip() or None
        obs = Observation(verdict=r.verdict, source_ip=r.client_ip, answered_by=r.hostname or None,
                          forwarded_for=xff, ms=r.ms, detail=r.detail or "", path=list(r.path),
                          decided_by=r.decided_by)
        svc = p.target.service
        if svc is not None and svc.lb_ip and p.target.dst_ip == svc.lb_ip and p.target.origin_kind == "client":
            obs.elected = announce.who_has(lab.net, p.target.origin_name, svc.lb_ip)
        observations.append(obs)
    return observations


def check_scenario_traced(topo: Topology, agent: Any, *, trace: bool = True, server: Any = None) -> ScenarioResult:
    """Build ``topo`` on the lab, probe every flow (traced or not), judge, tear down."""
    from netiso.backends.lab.lab import Lab

    server = server or agent
    preds = predict_all(topo, DEFAULT_PROFILE)
    started = time.perf_counter()
    lab = Lab(topo)
    lab.up()
    namespaces: list[str] = []
    probe_s = 0.0
    try:
        namespaces = _serve(lab, server, preds)
        if trace:
            start_tracing(lab, agent)
        requests = probe_requests(lab, preds, trace=trace)
        t0 = time.perf_counter()
        observations = observe(lab, agent, preds, requests)
        probe_s = time.perf_counter() - t0
        results = [FlowResult(pred, obs, judge(topo, pred, obs)) for pred, obs in zip(preds, observations, strict=True)]
    finally:
        if trace:
            stop_tracing(lab, agent)
        probed = [lab.net.ns_of(origin_symbol(p)) for p in preds] if lab.net is not None else []
        for who, spaces in ((server, namespaces), (agent, list(dict.fromkeys(probed)))):
            for ns in spaces:
                who.release(ns)
        lab.down()
    timings = dict(lab.timings)
    timings["probe_s"] = probe_s
    timings["total_s"] = time.perf_counter() - started
    return ScenarioResult(topo, results, timings)
