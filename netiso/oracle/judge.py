"""Compare what a backend observed with the prediction and the scenario's own expectation.

An observation matches when some predicted outcome has the same verdict and, for an allowed
flow, the same answering endpoint, a source IP among that outcome's acceptable sources and
the same X-Forwarded-For. Explicit expectations are checked on top; both must hold.

A health-check flow (``healthcheck:P/S@NODE``) is allowed when kube-proxy's health server
answers, whatever the status, and is judged on that answer's status and ``localEndpoints``
(``Observation.status`` / ``local_endpoints``), not on source or answerer.

A flow with ``repeat: N`` carries the verdict and answerer of its N-1 later probes
(``Observation.repeats``); each must be a predicted verdict and endpoint, and where the oracle
predicts ClientIP session affinity (``Prediction.sticky``) the first probe may land on any
predicted endpoint but every later one must land on that same endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from netiso.model.addressing import symbols_of
from netiso.model.types import Topology
from netiso.oracle.predict import Prediction, ips_of, source_symbol


@dataclass
class Observation:
    """What one probe saw (the backend-independent result schema)."""

    verdict: str  # allowed | dropped | refused | error | skipped (the backend could not probe it: detail says why)
    source_ip: str | None = None  # the client address the server saw
    answered_by: str | None = None  # symbol of the answering pod/client (from its hostname)
    forwarded_for: str | None = None  # first X-Forwarded-For entry, ingress flows
    ms: float | None = None
    detail: str = ""
    elected: str | None = None  # LoadBalancer flows: the node that answered ARP for the VIP
    evidence: dict[str, str] = field(default_factory=dict)
    path: list[dict[str, Any]] = field(default_factory=list)  # traced rules of the first packet (TraceHop dicts)
    decided_by: str | None = None  # the deciding rule the trace shows (netiso.oracle.decided words)
    tries: int | None = None  # probes fired for this verdict (lab: undecided timeouts are retried)
    repeats: list[tuple[str, str | None]] = field(default_factory=list)  # (verdict, answered_by) of probes 2..N
    status: int | None = None  # healthcheck: flows: the HTTP status kube-proxy's health server answered
    local_endpoints: int | None = None  # ... and its localEndpoints


def judge(topo: Topology, pred: Prediction, obs: Observation) -> list[str]:
    """Problems with ``obs`` (empty list: it matches)."""
    if obs.verdict == "skipped":
        return [f"not probed: {obs.detail or 'the backend could not probe this flow'}"]
    problems: list[str] = []
    candidates = [o for o in pred.outcomes if o.verdict == obs.verdict]
    if not candidates:
        problems.append(f"observed {obs.verdict}{' (' + obs.detail + ')' if obs.detail else ''}, "
                        f"predicted {pred.verdict}")
    elif obs.verdict == "allowed" and pred.health:
        problems += _health_problems(pred, obs)
    elif obs.verdict == "allowed":
        by_endpoint = [o for o in candidates if o.receiver == obs.answered_by]
        if not by_endpoint:
            problems.append(f"answered by {obs.answered_by}, predicted {', '.join(pred.answered_by)}")
        else:
            seen_ok = {ip for o in by_endpoint for ip in o.seen}
            if obs.source_ip not in seen_ok:
                problems.append(f"server saw {describe(topo, obs.source_ip, pred)}, predicted "
                                f"{' or '.join(describe(topo, ip, pred) for ip in sorted(seen_ok))}")
            if pred.target.ingress is not None:
                xff_ok = {ip for o in by_endpoint for ip in o.extra.get("forwarded_for", ())}  # type: ignore[union-attr]
                if obs.forwarded_for not in xff_ok:
                    problems.append(f"X-Forwarded-For {obs.forwarded_for}, predicted "
                                    f"{' or '.join(sorted(xff_ok))}")
    problems += _reason_problems(pred, obs, candidates)
    problems += _repeat_problems(pred, obs)
    svc = pred.target.service
    if svc is not None and svc.lb_ip and obs.elected is not None and obs.elected != svc.lb_node:
        problems.append(f"VIP answered by node:{obs.elected}, predicted node:{pred.target.service.lb_node}")
    exp = pred.flow.expect
    if exp is not None:
        if exp.verdict and obs.verdict != exp.verdict:
            problems.append(f"scenario expects {exp.verdict}, observed {obs.verdict}")
        if exp.status is not None and obs.verdict == "allowed" and obs.status != exp.status:
            problems.append(f"scenario expects status {exp.status}, observed {obs.status}")
        if obs.verdict == "allowed":
            if exp.source and obs.source_ip not in ips_of(topo, exp.source):
                problems.append(f"scenario expects source {', '.join(exp.source)}, observed "
                                f"{describe(topo, obs.source_ip, pred)}")
            if exp.answeredBy and obs.answered_by and not ips_of(topo, [obs.answered_by]) & ips_of(topo, exp.answeredBy):
                problems.append(f"scenario expects answeredBy {', '.join(exp.answeredBy)}, observed {obs.answered_by}")
            if exp.forwardedFor and obs.forwarded_for not in ips_of(topo, exp.forwardedFor):
                problems.append(f"scenario expects forwardedFor {', '.join(exp.forwardedFor)}, observed "
                                f"{obs.forwarded_for}")
    return problems


def _health_problems(pred: Prediction, obs: Observation) -> list[str]:
    """A health check is judged on kube-proxy's answer: its status and localEndpoints (the answer names
    no client and no server, so source and answerer are not compared)."""
    if (obs.status, obs.local_endpoints) in pred.health:
        return []
    want = " or ".join(f"{st} (localEndpoints {n})" for st, n in pred.health)
    return [f"health check answered {obs.status} (localEndpoints {obs.local_endpoints}), predicted {want}"]


def _repeat_problems(pred: Prediction, obs: Observation) -> list[str]:
    """``repeat: N``: the later probes' verdicts and answerers (see the module docstring)."""
    total = pred.flow.repeat
    if total <= 1:
        return []
    if len(obs.repeats) != total - 1:
        return [f"repeat {total}: the backend fired {len(obs.repeats) + 1} probe(s)"]
    predicted = {o.verdict for o in pred.outcomes}
    problems, strays = [], []
    for k, (verdict, by) in enumerate(obs.repeats, 2):
        if verdict not in predicted:
            problems.append(f"probe {k} of {total}: observed {verdict}, predicted {pred.verdict}")
        elif verdict == "allowed" and pred.sticky and obs.verdict == "allowed" and by != obs.answered_by:
            strays.append(f"{k} by {by}")
        elif verdict == "allowed" and by not in pred.answered_by:
            problems.append(f"probe {k} of {total} answered by {by}, predicted {', '.join(pred.answered_by)}")
    if strays:
        problems.append(f"sessionAffinity ClientIP predicts probe 1's endpoint ({obs.answered_by}) for all {total} "
                        f"probes; answered: {', '.join(strays)}")
    return problems


def _reason_problems(pred: Prediction, obs: Observation, candidates: list[Any]) -> list[str]:
    """A verdict right for the wrong reason: the trace's deciding rule is not the predicted one.

    Checked whenever the observation carries a kernel trace (``obs.path``), also when the trace
    names no deciding rule: a predicted rule the packet never met is a wrong reason, not a match
    (the founding case: kube-proxy's REJECT predicted, Calico's workload-to-host ACCEPT met
    first and the node's TCP stack refused). Skipped only for an untraced observation (an
    untraced run, cluster backends without node traces), which can say nothing about reasons.
    """
    if not candidates or (not obs.path and not obs.decided_by):
        return []
    if obs.verdict == "allowed":
        by_endpoint = [o for o in candidates if o.receiver == obs.answered_by]
        candidates = by_endpoint or candidates
    predicted = {d for o, d in zip(pred.outcomes, pred.outcome_decided_by, strict=True)
                 if any(o is c for c in candidates)}
    if obs.decided_by in predicted:
        return []
    named = sorted(d or "no rule" for d in predicted)
    return [f"decided by {obs.decided_by or 'no rule in the trace'}, predicted {' or '.join(named)}"]


def describe(topo: Topology, ip: str | None, pred: Prediction) -> str:
    if ip is None:
        return "nothing"
    return f"{source_symbol(topo, ip, pred.target)} ({ip})" if symbols_of(topo, ip) else ip
