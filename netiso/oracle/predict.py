"""Predictions per flow: verdict, acceptable sources, who answers, X-Forwarded-For, hop path.

Built on :mod:`netiso.oracle.paths`. Ingress flows are two connections: client -> controller
(through the controller's own exposure) and controller -> backend pod IP (ingress-nginx talks
to endpoints directly); nginx answers 504 when the backend leg times out (reported as
``dropped``) and 502 when it is refused (``refused``), and retries the next endpoint on error
or timeout (``proxy_next_upstream error timeout``), so one reachable endpoint is enough.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from netiso.model.addressing import addresses_of, symbols_of
from netiso.model.flows import FlowTarget, resolve_flow
from netiso.model.types import FlowSpec, Topology
from netiso.oracle.paths import Hop, Origin, Outcome, Packet, PathEngine, Step
from netiso.oracle.profile import DEFAULT_PROFILE, Profile
from netiso.oracle.proxy_knobs import AFFINITY_RULE


@dataclass
class Prediction:
    flow: FlowSpec
    target: FlowTarget
    verdict: str  # allowed | dropped | refused | mixed (endpoints disagree)
    source: list[str]
    answered_by: list[str]
    forwarded_for: list[str] | None
    path: list[str]
    outcomes: list[Outcome]
    topo: Topology = field(repr=False)
    disagreements: list[str] = field(default_factory=list)  # oracle vs the scenario's explicit expect

    def symbol(self, ip: str) -> str:
        """The symbol for ``ip`` in this flow's context (see :func:`source_symbol`)."""
        return source_symbol(self.topo, ip, self.target)

    @cached_property
    def outcome_decided_by(self) -> list[str | None]:
        """The rule that decides each outcome (``netiso.oracle.decided`` words; see ``deciding``)."""
        namer, t = _namer(self.topo), self.target
        return [namer.decided_by(o, t.origin_pod, t.dst_port, t.protocol, t.dst_ip) for o in self.outcomes]

    @property
    def health(self) -> list[tuple[int, int]]:
        """healthcheck: flows: the (status, localEndpoints) kube-proxy's health server answers, per answer."""
        return [(int(o.extra["status"]), int(o.extra["local_endpoints"]))  # type: ignore[call-overload]
                for o in self.outcomes if "status" in o.extra and "local_endpoints" in o.extra]

    @property
    def sticky(self) -> bool:
        """ClientIP session affinity holds: every allowed way goes through a sticky DNAT, so a
        repeated probe (``repeat:``) must be answered by the endpoint that answered the first."""
        allowed = [o for o in self.outcomes if o.verdict == "allowed"]
        return bool(allowed) and all(
            any(getattr(h, "step", None) is not None and h.step.kind == "dnat"
                and (h.step.rule or "").startswith(AFFINITY_RULE) for h in o.hops) for o in allowed)

    @property
    def decided_by(self) -> str | list[str | None] | None:
        """``predicted.decidedBy``: one value, or one per outcome where the outcomes differ."""
        values = self.outcome_decided_by
        if not values:
            return None
        return values[0] if len(set(values)) == 1 else list(values)


def _namer(topo: Topology) -> Any:
    """One DecisionNamer per topology, shared by its predictions: a namer parses every NetworkPolicy
    of the topology, and one per flow made naming O(flows x policies) - 19 s of a 48-node, 9,776-flow
    scenario's prediction (issue 16). Kept on the topology itself: a module-level map from the
    topology's id held the namer, the namer its topology, and so every scenario of every run in a
    process stayed alive (the finalizer that was to drop it never ran)."""
    from netiso.oracle.deciding import DecisionNamer

    namer = topo.__dict__.get("_decision_namer")
    if namer is None:
        namer = topo.__dict__["_decision_namer"] = DecisionNamer(topo)
    return namer


def predict_all(topo: Topology, profile: Profile = DEFAULT_PROFILE) -> list[Prediction]:
    """One prediction per flow of the topology's scenario, in scenario order."""
    engine = PathEngine(topo, profile)
    return [predict(engine, flow) for flow in topo.scenario.flows]


def predict(engine: PathEngine, flow: FlowSpec) -> Prediction:
    topo = engine.topo
    target = resolve_flow(topo, flow)
    origin = Origin(target.origin_kind, target.origin_name, target.origin_pod)
    if target.dst_ip is None:
        outcomes = [Outcome("dropped", [Hop(f"{flow.dst} has no address (the VIP was never allocated) → dropped",
                                            step=Step(flow.src, "drop", verdict="dropped"))])]
    else:
        pkt = Packet(src="", dst=target.dst_ip, dport=target.dst_port, proto=target.protocol)
        outcomes = engine.walk(origin, pkt, via=target.entry_node if target.dst_kind == "externalip" else None)
    if target.ingress is not None:
        outcomes = _ingress_legs(engine, target, outcomes)
    pred = _aggregate(topo, flow, target, outcomes)
    pred.disagreements = _check_expectation(topo, pred)
    return pred


def _ingress_legs(engine: PathEngine, target: FlowTarget, first: list[Outcome]) -> list[Outcome]:
    ing = target.ingress
    assert ing is not None
    ctrl = ing.controller.pod
    out: list[Outcome] = []
    for leg1 in first:
        if leg1.verdict != "allowed":
            out.append(leg1)
            continue
        seen_by_nginx = leg1.seen
        backend: list[Outcome] = []
        # ingress-nginx reads the port's EndpointSlices and keeps the endpoints whose ready condition is
        # true (endpointslices.go getEndpointsFromSlices): no terminating fallback, unlike kube-proxy
        endpoints = ing.service.ready_endpoints_for(ing.port)
        if not endpoints:
            unready = " (none ready)" if ing.service.endpoints_for(ing.port) else ""
            hops = leg1.hops + [Hop(f"{ctrl.symbol}: nginx has no endpoint for {ing.service.key}{unready} → 503",
                                    step=Step(ctrl.symbol, "proxy", verdict="refused"))]
            out.append(Outcome("refused", hops, extra={"status": 503}))
            continue
        for ep in endpoints:
            target = ing.port.target_for(ep)
            assert target is not None, "endpoints_for keeps the pods that resolve the targetPort"
            hops = list(leg1.hops) + [Hop(
                f"{ctrl.symbol}: nginx routes Host {ing.host} to endpoint {ep.symbol} ({ep.ip}:{target}) "
                f"directly, X-Real-IP/X-Forwarded-For = {' or '.join(engine.sym(s) for s in seen_by_nginx)}",
                step=Step(ctrl.symbol, "proxy", ctrl.ip, ep.ip, to=ep.symbol))]
            pkt = Packet(src="", dst=ep.ip, dport=target, proto="TCP")
            for leg2 in engine.walk(Origin("pod", ctrl.symbol, ctrl), pkt):
                leg2.hops = hops + leg2.hops[1:]
                leg2.extra["forwarded_for"] = seen_by_nginx
                backend.append(leg2)
        allowed = [o for o in backend if o.verdict == "allowed"]
        if allowed and len(allowed) != len(backend):
            for o in allowed:
                o.hops.append(Hop("(nginx retries the next endpoint on error/timeout: proxy_next_upstream)",
                                  step=Step(ctrl.symbol, "note")))
            out.extend(allowed)
            continue
        for o in backend:
            if o.verdict == "dropped":
                o.hops.append(Hop(f"{ctrl.symbol}: upstream timeout → nginx answers 504 → dropped",
                                  step=Step(ctrl.symbol, "proxy", verdict="dropped")))
            elif o.verdict == "refused":
                o.hops.append(Hop(f"{ctrl.symbol}: upstream refused → nginx answers 502 → refused",
                                  step=Step(ctrl.symbol, "proxy", verdict="refused")))
        out.extend(backend)
    return out


def source_symbol(topo: Topology, ip: str, target: FlowTarget) -> str:
    """The symbol a person expects for ``ip`` in this flow's context."""
    names = symbols_of(topo, ip)
    if target.ingress is not None and ip == target.ingress.controller.pod.ip:
        return f"ingress-controller:{target.ingress.key}"
    return names[0] if names else ip


def _aggregate(topo: Topology, flow: FlowSpec, target: FlowTarget, outcomes: list[Outcome]) -> Prediction:
    verdicts = sorted({o.verdict for o in outcomes})
    verdict = verdicts[0] if len(verdicts) == 1 else "mixed"
    allowed = [o for o in outcomes if o.verdict == "allowed"]
    source = _uniq(source_symbol(topo, ip, target) for o in allowed for ip in o.seen)
    answered = _uniq(o.receiver for o in allowed if o.receiver)
    forwarded: list[str] | None = None
    if target.ingress is not None:
        forwarded = _uniq(source_symbol(topo, ip, target) for o in allowed
                          for ip in o.extra.get("forwarded_for", ()))  # type: ignore[union-attr]
    if len(outcomes) == 1:
        path = list(outcomes[0].hops)
    else:
        path = []
        for i, o in enumerate(outcomes, 1):
            via = o.receiver or "no answer"
            path.append(f"── outcome {i} of {len(outcomes)} ({o.verdict}, {via}) ──")
            path.extend(o.hops)
    return Prediction(flow, target, verdict, source, answered, forwarded, path, outcomes, topo)


def _uniq(items) -> list[str]:  # type: ignore[no-untyped-def]
    return list(dict.fromkeys(i for i in items if i))


def ips_of(topo: Topology, symbols: tuple[str, ...] | list[str]) -> set[str]:
    out: set[str] = set()
    for s in symbols:
        out.update(addresses_of(topo, s))
    return out


def _check_expectation(topo: Topology, pred: Prediction) -> list[str]:
    exp = pred.flow.expect
    if exp is None:
        return []
    problems = []
    verdicts = {o.verdict for o in pred.outcomes}
    if exp.verdict and (exp.verdict not in verdicts or len(verdicts) > 1):
        problems.append(f"scenario expects {exp.verdict}, the oracle predicts {pred.verdict}")
    allowed = [o for o in pred.outcomes if o.verdict == "allowed"]
    if exp.source and allowed:
        ok = ips_of(topo, exp.source)
        extra = sorted({ip for o in allowed for ip in o.seen} - ok)
        if extra:
            problems.append(f"scenario expects source {', '.join(exp.source)}, the oracle also allows "
                            f"{', '.join(source_symbol(topo, ip, pred.target) for ip in extra)}")
    if exp.answeredBy and allowed:
        ok = ips_of(topo, exp.answeredBy)
        extra = sorted({o.endpoint.ip for o in allowed if o.endpoint} - ok)
        if extra:
            problems.append(f"scenario expects answeredBy {', '.join(exp.answeredBy)}, the oracle predicts "
                            f"{', '.join(pred.answered_by)}")
    if exp.status is not None and allowed and {st for st, _ in pred.health} != {exp.status}:
        problems.append(f"scenario expects status {exp.status}, the oracle predicts "
                        f"{' or '.join(str(st) for st, _ in pred.health) or 'no health answer'}")
    if exp.forwardedFor and allowed:
        ok = ips_of(topo, exp.forwardedFor)
        got = {ip for o in allowed for ip in o.extra.get("forwarded_for", ())}  # type: ignore[union-attr]
        if got - ok:
            problems.append(f"scenario expects forwardedFor {', '.join(exp.forwardedFor)}, the oracle predicts "
                            f"{', '.join(pred.forwarded_for or [])}")
    return problems
