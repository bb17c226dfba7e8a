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

import json
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


def _flow(value: Any) -> str:
    """A spec fragment on one line (YAML flow style), for a difference line."""
    return yaml.safe_dump(value, default_flow_style=True, sort_keys=True, width=10_000).strip().removesuffix("...").strip()


def differences(expected: Any, actual: Any, path: str = "spec") -> list[str]:
    """Where two specs differ, one line per place (``spec.ingress[0].from: ...``), lists compared
    order-free (rules, peers and ports are unions), so a reordered list is no difference.

    A list with one changed element is followed into that element; otherwise the elements only
    one side has are named (list indices are those of the sorted form). Knowingly simpler than the
    backend's diff (kubesphere_controller.canonical, which this layer does not import): defaults it
    folds (a port's TCP, an empty selector) are not folded here, so within a policy that differs
    such a spelling difference gets a line of its own.

    >>> differences({"ingress": [{"from": [{"podSelector": {}}]}]},
    ...             {"ingress": [{"from": [{"podSelector": {}}, {"ipBlock": {"cidr": "192.0.2.7/32"}}]}]})
    ["spec.ingress[0].from: only KubeSphere's controller has {ipBlock: {cidr: 192.0.2.7/32}}"]
    """
    return _differences(_order_free(expected), _order_free(actual), path)


def _order_free(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _order_free(v) for k, v in value.items()}
    if isinstance(value, list):
        return sorted((_order_free(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True, default=str))
    return value


def _differences(expected: Any, actual: Any, path: str) -> list[str]:
    if expected == actual:
        return []
    if expected is None or actual is None:
        return [f"{path}: {'only KubeSphere' if expected is None else 'only netiso'}'s "
                f"{'controller' if expected is None else 'compiler'} has the policy"]
    if isinstance(expected, dict) and isinstance(actual, dict):
        out: list[str] = []
        for key in sorted(set(expected) | set(actual), key=str):
            where = f"{path}.{key}"
            if key not in actual:
                out.append(f"{where}: only netiso's compiler has {_flow(expected[key])}")
            elif key not in expected:
                out.append(f"{where}: only KubeSphere's controller has {_flow(actual[key])}")
            else:
                out += _differences(expected[key], actual[key], where)
        return out
    if isinstance(expected, list) and isinstance(actual, list):
        mine = [x for x in expected if x not in actual]
        theirs = [x for x in actual if x not in expected]
        if len(mine) == len(theirs) == 1:
            return _differences(mine[0], theirs[0], f"{path}[{expected.index(mine[0])}]")
        out = [f"{path}: only netiso's compiler has {_flow(x)}" for x in mine]
        out += [f"{path}: only KubeSphere's controller has {_flow(x)}" for x in theirs]
        if out:
            return out
    return [f"{path}: netiso's compiler has {_flow(expected)}, KubeSphere's controller {_flow(actual)}"]


def text_lines(entry: dict[str, Any]) -> list[str]:
    """One ``controllerDiff`` entry as plain text (a failing test's message, a terminal): the
    policy, what differs, then both specs in full."""
    status = STATUS_TEXT.get(entry.get("status", ""), str(entry.get("status")))
    out = [f"{entry.get('project')}/{entry.get('policy')}: {status}"]
    out += [f"  ✗ {line}" for line in differences(entry.get("expected"), entry.get("actual"))]
    for title, key in (("netiso's compiler (expected)", "expected"), ("KubeSphere's controller (actual)", "actual")):
        out.append(f"  {title}:")
        out += [f"    {line}" for line in _spec(entry.get(key)).splitlines()]
    return out


def count(doc: dict[str, Any]) -> int:
    """Controller differences over the document's scenarios."""
    return sum(len(s.get("controllerDiff") or []) for s in doc.get("scenarios", []))
