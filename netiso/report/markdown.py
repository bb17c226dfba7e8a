"""Documentation-grade reports: the JSON document plus a Markdown matrix with hop paths.

One section per scenario (its description first: the report is meant to be read as docs), one
row per flow, and under it the predicted path of every flow in a collapsible block, so a reader
sees both the verdict and the reason for it. Each row names its path diagram (``P3``): one
Mermaid block per distinct path (netiso/report/diagram.py), drawn under the scenario that first
uses it, which GitHub renders as a picture; flows with the same path link to the same block.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _cell(value: Any) -> str:
    if value is None or value == []:
        return "–"
    if isinstance(value, list):
        return " \\| ".join(str(v) for v in value)
    return str(value).replace("|", "\\|")


def render_markdown(doc: dict[str, Any]) -> str:
    from netiso.report import controller_diff
    from netiso.report.compact import predicted_path
    from netiso.report.diagram import DiagramIndex, mermaid

    index = DiagramIndex.of(doc)
    drawn: set[str] = set()
    observed = any("observed" in f for s in doc["scenarios"] for f in s["flows"])
    lines = [f"# netiso report — backend `{doc['backend']}`, profile `{doc['profile']}`", ""]
    total = sum(len(s["flows"]) for s in doc["scenarios"])
    if observed:
        bad = sum(1 for s in doc["scenarios"] for f in s["flows"] if not f.get("match", True))
        lines += [f"{len(doc['scenarios'])} scenarios, {total} flows: {total - bad} matched, {bad} mismatched.", ""]
        if controller_diff.count(doc):
            lines += [f"{controller_diff.count(doc)} KubeSphere controller differences (see the scenarios).", ""]
    else:
        lines += [f"{len(doc['scenarios'])} scenarios, {total} flows predicted.", ""]
    for si, s in enumerate(doc["scenarios"]):
        lines.append(f"## {s['name']} ({s.get('encapsulation', '?')}, {s.get('loadBalancer', '?')})")
        lines.append("")
        if s.get("description"):
            lines += [" ".join(s["description"].split()), ""]
        for w in s.get("warnings") or []:
            lines += [f"> warning: {w}", ""]
        lines += controller_diff.markdown_lines(s)  # --kubesphere controller: both specs per differing policy
        head = ["from", "to", "port", "predicted", "server sees", "answered by", "path"]
        if observed:
            head += ["observed", "server saw", "match"]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for fi, f in enumerate(s["flows"]):
            p = f["predicted"]
            did = index.by_flow.get((si, fi))
            row = [f["from"], f["to"], f["port"], p["verdict"], _cell(p.get("source")), _cell(p.get("answeredBy")),
                   f"[{did}](#path-{did.lower()})" if did else None]
            if observed:
                o = f.get("observed", {})
                row += [o.get("verdict"), _cell(o.get("source")), "✓" if f.get("match") else "✗ " + "; ".join(
                    f.get("problems", []) + f.get("disagreements", []))]
            lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
        lines.append("")
        new = [d for d in dict.fromkeys(index.by_flow.get((si, fi)) for fi in range(len(s["flows"])))
               if d and d not in drawn]
        for did in new:
            drawn.add(did)
            users = [f"{doc['scenarios'][a]['flows'][b]['from']} → {doc['scenarios'][a]['flows'][b]['to']}"
                     + ("" if a == si else f" ({doc['scenarios'][a]['name']})") for a, b in index.flows_of(did)]
            lines += [f"### Path {did}", "", "Flows: " + _cell(", ".join(dict.fromkeys(users))), "",
                      "```mermaid", mermaid(index.diagrams[did], index.sources.get(did)), "```", ""]
        for f in s["flows"]:
            lines.append(f"<details><summary>{f['from']} → {f['to']} ({f['port']})</summary>")
            lines.append("")
            lines.extend(f"- {h}" for h in predicted_path(doc, f["predicted"]))
            lines += ["", "</details>", ""]
    return "\n".join(lines) + "\n"


def write_reports(directory: Path, doc: dict[str, Any]) -> list[Path]:
    """Write ``results.json``, ``matrix.md``, ``modes.md`` and ``loadbalancers.md`` (the same
    flows across encapsulation modes / load balancers) and ``index.html`` (all of it in one page
    for a browser) into ``directory``; returns the paths."""
    from netiso.report.compact import dumps
    from netiso.report.compare import render_mode_comparison
    from netiso.report.html import write_html

    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / "results.json"
    md_path = directory / "matrix.md"
    modes_path = directory / "modes.md"
    lbs_path = directory / "loadbalancers.md"
    json_path.write_text(dumps(doc), encoding="utf-8")
    md_path.write_text(render_markdown(doc), encoding="utf-8")
    modes_path.write_text(render_mode_comparison(doc), encoding="utf-8")
    lbs_path.write_text(render_mode_comparison(doc, "loadBalancer"), encoding="utf-8")
    return [json_path, md_path, modes_path, lbs_path, write_html(directory, doc)]
