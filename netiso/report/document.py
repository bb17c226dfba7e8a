"""The JSON result document of the public contract (docs/scenarios.md, ``--json OUT``).

``explain`` writes it without ``observed``/``match``; ``check`` adds both. Extensions (never
replacing a contract key): ``predicted.answeredBy``/``forwardedFor``/``outcomes``,
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
    return out


def predicted_json(pred: Prediction) -> dict[str, Any]:
    out: dict[str, Any] = {"verdict": pred.verdict, "source": pred.source, "path": pred.path}
    if pred.answered_by:
        out["answeredBy"] = pred.answered_by
    if pred.target.ingress is not None:
        out["forwardedFor"] = pred.forwarded_for
    if len(pred.outcomes) > 1:
        out["outcomes"] = [
            {"verdict": o.verdict, "answeredBy": o.receiver,
             "source": [pred.symbol(ip) for ip in o.seen]} for o in pred.outcomes]
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
    if obs.elected:
        out["elected"] = f"node:{obs.elected}"
    if obs.detail:
        out["detail"] = obs.detail
    if obs.evidence:
        out["evidence"] = obs.evidence
    return out


def flow_json(pred: Prediction, obs: Observation | None = None, problems: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"from": pred.flow.src, "to": pred.flow.dst, "port": str(pred.target.port)}
    exp = expected_json(pred.flow.expect)
    if exp is not None:
        out["expected"] = exp
    out["predicted"] = predicted_json(pred)
    if pred.flow.intent:
        out["intent"] = pred.flow.intent
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
