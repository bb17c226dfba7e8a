"""Cross-configuration comparison: the same flows under direct, IPIP and VXLAN (or MetalLB and
OpenELB) side by side.

Scenarios whose names differ only by the encapsulation token (``nodeport-cluster-vxlan``,
``nodeport-cluster-ipip``, ``nodeport-cluster-direct``) form a family; for each family one
table shows every flow with its outcome per mode and marks the rows where the modes differ —
"what changes if we switch Calico from IPIP to VXLAN?" answered from measurements. The same
works for the load balancer token (``lb-metallb-cluster-vxlan`` vs ``lb-openelb-cluster-vxlan``).

>>> doc = {"scenarios": [
...   {"name": "np-vxlan", "encapsulation": "vxlan", "flows": [
...     {"from": "a", "to": "b", "port": "80/TCP", "predicted": {"verdict": "allowed", "source": ["tunnel:w"]}}]},
...   {"name": "np-direct", "encapsulation": "direct", "flows": [
...     {"from": "a", "to": "b", "port": "80/TCP", "predicted": {"verdict": "allowed", "source": ["node:w"]}}]}]}
>>> print(render_mode_comparison(doc).splitlines()[6])
| a | b | 80/TCP | allowed, node:w | – | allowed, tunnel:w | ≠ |
"""

from __future__ import annotations

import re
from typing import Any

MODES = ("direct", "ipip", "vxlan")
DIMENSIONS = {"encapsulation": MODES, "loadBalancer": ("metallb", "openelb")}
TITLES = {"encapsulation": "encapsulation modes", "loadBalancer": "load balancers"}


def family_of(name: str, values: tuple[str, ...] = MODES) -> str | None:
    """The scenario name without its ``values`` token (e.g. the mode), or None when it has none."""
    token = re.compile(r"(^|-)(" + "|".join(values) + r")(-|$)")
    if not token.search(name):
        return None
    return token.sub(lambda m: "-" if m.group(1) and m.group(3) else "", name, count=1)


def _cell(flow: dict[str, Any]) -> str:
    obs = flow.get("observed")
    if obs is not None:
        verdict, source = obs.get("verdict"), obs.get("source")
    else:
        pred = flow.get("predicted") or {}
        verdict, source = pred.get("verdict"), " or ".join(pred.get("source") or []) or None
    return f"{verdict}, {source}" if verdict == "allowed" and source else str(verdict)


def families(doc: dict[str, Any], dimension: str = "encapsulation") -> dict[str, dict[str, dict[str, Any]]]:
    """Scenario families with at least two values of ``dimension``: family -> value -> scenario."""
    values = DIMENSIONS[dimension]
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for s in doc.get("scenarios", []):
        fam, mode = family_of(s["name"], values), s.get(dimension)
        if fam is not None and mode in values:
            found.setdefault(fam, {})[mode] = s
    return {fam: by_mode for fam, by_mode in found.items() if len(by_mode) >= 2}


def family_rows(by_mode: dict[str, dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, dict[str, Any]]]:
    """(from, to, port) -> value -> flow, over the scenarios of one family."""
    rows: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {}
    for mode, s in by_mode.items():
        for f in s["flows"]:
            rows.setdefault((f["from"], f["to"], f.get("port", "")), {})[mode] = f
    return rows


def render_mode_comparison(doc: dict[str, Any], dimension: str = "encapsulation") -> str:
    """Markdown: one table per family present with at least two values of ``dimension``."""
    values = DIMENSIONS[dimension]
    lines = [f"# Behaviour across {TITLES[dimension]} ({doc.get('backend', '?')})", ""]
    shown = 0
    for fam, by_mode in families(doc, dimension).items():
        shown += 1
        lines += [f"## {fam}", "", "| from | to | port | " + " | ".join(values) + " | |",
                  "|" + "---|" * (len(values) + 4)]
        for (src, dst, port), flows in family_rows(by_mode).items():
            cells = {m: _cell(f) for m, f in flows.items()}
            row = [cells.get(m, "–") for m in values]
            mark = "≠" if len(set(cells.values())) > 1 else ""
            lines.append(f"| {src} | {dst} | {port} | " + " | ".join(row) + f" | {mark} |")
        lines.append("")
    if not shown:
        lines.append(f"No scenario family runs with more than one of {', '.join(values)}.")
    return "\n".join(lines) + "\n"
