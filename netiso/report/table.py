"""Readable truth tables for people: one row per flow, the one wrong cell easy to spot.

Like the Kubernetes netpol e2e ``Reachability`` summary, but each row also says which source
the server sees (or will see) and who answered, and ``--paths`` prints every hop's reason.
"""

from __future__ import annotations

from collections.abc import Sequence

from netiso.model.types import Topology
from netiso.oracle.judge import Observation
from netiso.oracle.predict import Prediction


def _fmt_row(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = [_fmt_row(headers, widths), _fmt_row(["-" * w for w in widths], widths)]
    lines.extend(_fmt_row(r, widths) for r in rows)
    return "\n".join(lines)


def scenario_header(topo: Topology) -> str:
    s = topo.scenario
    head = (f"== {s.name}  [{topo.encapsulation}, {topo.load_balancer}, "
            f"{len(topo.nodes)} nodes]  ({s.source.file})")
    if s.description:
        head += "\n   " + " ".join(s.description.split())
    for w in topo.warnings:
        head += f"\n   warning: {w}"
    return head


def _pred_cells(pred: Prediction) -> list[str]:
    source = " | ".join(pred.source) if pred.source else "-"
    answered = " | ".join(pred.answered_by) if pred.answered_by else "-"
    return [pred.flow.src, pred.flow.dst, str(pred.target.port), pred.verdict, source, answered]


def explain_table(topo: Topology, preds: Sequence[Prediction], *, paths: bool = False) -> str:
    headers = ["FROM", "TO", "PORT", "PREDICTED", "SERVER SEES", "ANSWERED BY", "EXPECT"]
    rows = []
    for p in preds:
        mark = "" if p.flow.expect is None else "ok" if not p.disagreements else "DISAGREES"
        rows.append(_pred_cells(p) + [mark])
    out = [scenario_header(topo), render_table(headers, rows)]
    for p in preds:
        if p.disagreements:
            out.append(f"   ✗ {p.flow.label}: " + "; ".join(p.disagreements))
        if paths:
            out.append(f"   path of {p.flow.label} ({p.target.port}):")
            out.extend(f"     {h}" for h in p.path)
    return "\n".join(out)


def check_table(topo: Topology, results: Sequence[tuple[Prediction, Observation, list[str]]], *,
                paths: bool = False) -> str:
    headers = ["FROM", "TO", "PORT", "PREDICTED", "OBSERVED", "SERVER SAW", "ANSWERED BY", "MS", "MATCH"]
    rows = []
    for pred, obs, problems in results:
        saw = pred.symbol(obs.source_ip) if obs.source_ip else "-"
        ok = not problems and not pred.disagreements
        ms = f"{obs.ms:.1f}" if obs.ms is not None else "-"
        rows.append([pred.flow.src, pred.flow.dst, str(pred.target.port), pred.verdict, obs.verdict, saw,
                     obs.answered_by or "-", ms, "ok" if ok else "MISMATCH"])
    out = [scenario_header(topo), render_table(headers, rows)]
    for pred, _obs, problems in results:
        bad = problems + pred.disagreements
        if bad:
            out.append(f"   ✗ {pred.flow.label}: " + "; ".join(bad))
        if bad or paths:
            out.append(f"   predicted path of {pred.flow.label}:")
            out.extend(f"     {h}" for h in pred.path)
    return "\n".join(out)
