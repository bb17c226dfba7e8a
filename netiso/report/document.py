"""The JSON result document of the public contract (docs/scenarios.md, ``--json OUT``).

``explain`` writes it without ``observed``/``match``; ``check`` adds both. Extensions (never
replacing a contract key): ``predicted.answeredBy``/``forwardedFor``/``outcomes``/``hops`` (the path in structure),
``predicted.decidedBy`` and ``observed.path``/``observed.decidedBy`` (the deciding rule, traced backends),
``observed.tries`` (lab: probes the verdict took), a top-level ``paths`` table when paths are shared
(:mod:`netiso.report.compact`),
``problems`` (why a flow did not match), ``disagreements`` (oracle vs the scenario's own
``expect``), per-scenario ``description``, ``warnings`` and ``lab`` timings.
"""

from __future__ import annotations

from typing import Any

from netiso.model.types import Expectation
from netiso.oracle.judge import Observation
from netiso.oracle.predict import Prediction
from netiso.oracle.profile import Profile


def expected_json(exp: Expectation | None) -> dict[str, Any] | None:
    if exp is None:
        return None
    out: dict[str, Any] = {}
    if exp.verdict:
        out["verdict"] = exp.verdict
    if exp.source:
        out["source"] = list(exp.source)
    if exp.answeredBy:
        out["answeredBy"] = list(exp.answeredBy)
    if exp.forwardedFor:
        out["forwardedFor"] = list(exp.forwardedFor)
    if exp.status is not None:
        out["status"] = exp.status
    return out


def predicted_json(pred: Prediction) -> dict[str, Any]:
    out: dict[str, Any] = {"verdict": pred.verdict, "source": pred.source, "path": pred.path}
    if pred.answered_by:
        out["answeredBy"] = pred.answered_by
    if pred.target.ingress is not None:
        out["forwardedFor"] = pred.forwarded_for
    out["hops"] = hops_json(pred)
    if len(pred.outcomes) > 1:
        out["outcomes"] = [
            {"verdict": o.verdict, "answeredBy": o.receiver,
             "source": [pred.symbol(ip) for ip in o.seen]} for o in pred.outcomes]
        for item, decided in zip(out["outcomes"], pred.outcome_decided_by, strict=True):
            item["decidedBy"] = decided
    out["decidedBy"] = pred.decided_by
    if pred.health:  # healthcheck: flows - one (status, localEndpoints) per answer
        out["status"] = [st for st, _ in pred.health] if len(pred.health) > 1 else pred.health[0][0]
        out["localEndpoints"] = [n for _, n in pred.health] if len(pred.health) > 1 else pred.health[0][1]
    if pred.flow.repeat > 1:
        out["sameEndpoint"] = pred.sticky  # repeat: N - every later probe answered by the first one's endpoint
    return out


def hops_json(pred: Prediction) -> list[dict[str, Any]]:
    """The predicted path in structure (``predicted.hops``), one object per hop, for the path
    diagrams: where (``at``), which ``step``, the packet's addresses after it, the next place,
    the policy decision with the source it saw, and ``outcome`` (1-based) when the flow branches
    over several endpoints. ``detail`` is the hop's text, as in ``path``."""
    many = len(pred.outcomes) > 1
    out: list[dict[str, Any]] = []
    known: dict[str, str] = {}  # a flow's hops name the same few addresses; each lookup scans the topology

    def symbol(ip: str) -> str:
        if ip not in known:
            known[ip] = pred.symbol(ip)
        return known[ip]

    for i, outcome in enumerate(pred.outcomes, 1):
        for hop in outcome.hops:
            step = getattr(hop, "step", None)
            item: dict[str, Any] = {"at": step.at if step else None, "step": step.kind if step else "note",
                                    "detail": str(hop)}
            if step is not None:
                for key, ip in (("src", step.src), ("dst", step.dst)):
                    if ip:
                        item[key] = {"ip": ip, "symbol": symbol(ip)}
                if step.alts:
                    item["srcAlternatives"] = [{"ip": ip, "symbol": symbol(ip)} for ip in step.alts]
                for key in ("to", "via", "verdict", "rule"):
                    if getattr(step, key):
                        item[key] = getattr(step, key)
                if step.decision is not None:
                    d = step.decision
                    item["policy"] = {"direction": step.direction, "allowed": d.allowed, "isolated": d.isolated,
                                      "policies": list(d.policies), "admittedBy": d.admitted_by,
                                      "saw": item.get("src", {}).get("symbol")}
            if many:
                item["outcome"] = i
            out.append(item)
    return out


def observed_json(pred: Prediction, obs: Observation) -> dict[str, Any]:
    out: dict[str, Any] = {
        "verdict": obs.verdict,
        "source": pred.symbol(obs.source_ip) if obs.source_ip else None,
        "sourceIP": obs.source_ip,
        "answeredBy": obs.answered_by,
        "forwardedFor": (pred.symbol(obs.forwarded_for) if obs.forwarded_for else None),
        "ms": round(obs.ms, 2) if obs.ms is not None else None,
    }
    if obs.tries is not None:
        out["tries"] = obs.tries
    if obs.status is not None and pred.target.dst_kind == "healthcheck":  # kube-proxy's health answer
        out["status"], out["localEndpoints"] = obs.status, obs.local_endpoints
    if obs.repeats:  # repeat: N - probes 2..N, in order
        out["repeats"] = [{"verdict": v, "answeredBy": by} for v, by in obs.repeats]
    if obs.elected:
        out["elected"] = f"node:{obs.elected}"
    if obs.detail:
        out["detail"] = obs.detail
    if obs.verdict == "skipped":
        out["reason"] = obs.detail or "the backend could not probe this flow"  # contract: observed.reason
    if obs.evidence:
        out["evidence"] = obs.evidence
    if obs.path or obs.decided_by:
        out["path"] = obs.path
        out["decidedBy"] = obs.decided_by
    return out


def flow_json(pred: Prediction, obs: Observation | None = None, problems: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"from": pred.flow.src, "to": pred.flow.dst, "port": str(pred.target.port)}
    exp = expected_json(pred.flow.expect)
    if exp is not None:
        out["expected"] = exp
    out["predicted"] = predicted_json(pred)
    if pred.flow.intent:
        out["intent"] = pred.flow.intent
    if pred.flow.repeat > 1:
        out["repeat"] = pred.flow.repeat
    if pred.disagreements:
        out["disagreements"] = pred.disagreements
    if obs is not None:
        out["observed"] = observed_json(pred, obs)
        out["match"] = not problems and not pred.disagreements
        if problems:
            out["problems"] = problems
    return out


def document(backend: str, profile: Profile, scenarios: list[dict[str, Any]]) -> dict[str, Any]:
    return {"backend": backend, "profile": profile.name, "scenarios": scenarios}
