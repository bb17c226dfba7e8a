"""A scenario's ``controllerDiff`` in the reports: KubeSphere's controller against netiso's compiler.

``netiso check --backend kube --kubesphere controller`` lets KubeSphere's own nsnetworkpolicy
controller write the ``nsnp-*`` NetworkPolicies and records, per scenario, every policy whose spec
differs from what netiso's compiler predicts, is missing or is unexpected (docs/scenarios.md,
``controllerDiff``). A reader needs both specs side by side to see the one rule that differs, so
both reports show them in full: Markdown as two YAML blocks per policy, HTML as a two-column
table. An empty list means "compared, no difference" and says so; a scenario without the key
(any other run) shows nothing.
"""

from __future__ import annotations

from html import escape
from typing import Any

import yaml

STATUS_TEXT = {
    "differs": "differs from netiso's compiler",
    "missing": "expected, not written by the controller",
    "unexpected": "written by the controller, not predicted",
}
CSS = (".ctl table{border-collapse:collapse;width:100%;table-layout:fixed}"
       ".ctl td,.ctl th{border:1px solid var(--line,#ccc);vertical-align:top;padding:.3em;text-align:left}"
       ".ctl pre{margin:0;white-space:pre-wrap;font-size:.85em}")


def _spec(spec: dict[str, Any] | None) -> str:
    return "(none)" if spec is None else yaml.safe_dump(spec, sort_keys=False, default_flow_style=False).rstrip()


def markdown_lines(scenario: dict[str, Any]) -> list[str]:
    """The scenario's ``controllerDiff`` as Markdown (nothing when the key is absent)."""
    if "controllerDiff" not in scenario:
        return []
    diff = scenario["controllerDiff"] or []
    if not diff:
        return ["KubeSphere controller: every nsnp-* NetworkPolicy it wrote equals netiso's compiler.", ""]
    out = [f"### KubeSphere controller vs netiso's compiler ({len(diff)} "
           f"difference{'s' if len(diff) > 1 else ''})", ""]
    for d in diff:
        out += [f"**{d.get('project')}/{d.get('policy')}**: {STATUS_TEXT.get(d.get('status', ''), d.get('status'))}",
                "", "netiso's compiler (expected):", "", "```yaml", _spec(d.get("expected")), "```", "",
                "KubeSphere's controller (actual):", "", "```yaml", _spec(d.get("actual")), "```", ""]
    return out


def html_section(scenario: dict[str, Any]) -> str:
    """The scenario's ``controllerDiff`` as an HTML section, both specs side by side ('' without the key)."""
    if "controllerDiff" not in scenario:
        return ""
    diff = scenario["controllerDiff"] or []
    if not diff:
        return ('<p class="ok ctl">KubeSphere controller: every nsnp-* NetworkPolicy it wrote equals '
                "netiso's compiler.</p>")
    out = [f'<div class="ctl"><h3>KubeSphere controller vs netiso\'s compiler ({len(diff)} '
           f'difference{"s" if len(diff) > 1 else ""})</h3><table><thead><tr><th scope="col">policy</th>'
           '<th scope="col">netiso\'s compiler (expected)</th><th scope="col">KubeSphere\'s controller (actual)</th>'
           "</tr></thead><tbody>"]
    for d in diff:
        status = STATUS_TEXT.get(d.get("status", ""), str(d.get("status")))
        out.append(f'<tr class="ctl-{escape(str(d.get("status")))}"><th scope="row">'
                   f'{escape(str(d.get("project")))}/{escape(str(d.get("policy")))}<br><span class="warn">'
                   f"{escape(status)}</span></th><td><pre>{escape(_spec(d.get('expected')))}</pre></td>"
                   f"<td><pre>{escape(_spec(d.get('actual')))}</pre></td></tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def count(doc: dict[str, Any]) -> int:
    """Controller differences over the document's scenarios."""
    return sum(len(s.get("controllerDiff") or []) for s in doc.get("scenarios", []))
