"""Diff two result documents (``--json`` of explain or check): what changed between runs.

CI gating of a CNI or policy change wants "what behaves differently now", not the whole
matrix: a flow whose verdict or observed source changed, flows that appeared or vanished.
Flows are keyed by (scenario, from, to, port); the observed value is compared when both
documents have one, else the prediction.

>>> old = {"scenarios": [{"name": "s", "flows": [{"from": "a", "to": "b", "port": "80/TCP",
...        "predicted": {"verdict": "allowed", "source": ["client:a"]}}]}]}
>>> new = {"scenarios": [{"name": "s", "flows": [{"from": "a", "to": "b", "port": "80/TCP",
...        "predicted": {"verdict": "dropped", "source": []}}]}]}
>>> [c.describe() for c in diff(old, new)]
['s: a -> b (80/TCP): verdict allowed -> dropped']
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netiso.model.errors import InputError

Key = tuple[str, str, str, str]


@dataclass(frozen=True)
class Change:
    key: Key
    what: str  # verdict | source | added | removed
    before: str | None
    after: str | None

    def describe(self) -> str:
        scenario, src, dst, port = self.key
        head = f"{scenario}: {src} -> {dst} ({port})"
        if self.what == "added":
            return f"{head}: new flow ({self.after})"
        if self.what == "removed":
            return f"{head}: no longer in the run (was {self.before})"
        return f"{head}: {self.what} {self.before} -> {self.after}"


def _outcome(flow: dict[str, Any]) -> tuple[str, str]:
    obs = flow.get("observed")
    if obs is not None:
        return str(obs.get("verdict")), str(obs.get("source") or "-")
    pred = flow.get("predicted") or {}
    return str(pred.get("verdict")), " | ".join(pred.get("source") or []) or "-"


def _index(doc: dict[str, Any]) -> dict[Key, tuple[str, str]]:
    out: dict[Key, tuple[str, str]] = {}
    for s in doc.get("scenarios", []):
        for f in s.get("flows", []):
            out[(s["name"], f["from"], f["to"], f.get("port", ""))] = _outcome(f)
    return out


def diff(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """Changes from ``old`` to ``new`` in scenario/flow order of ``new``, then removed flows
    (only of scenarios that ``new`` ran)."""
    before, after = _index(old), _index(new)
    changes: list[Change] = []
    for key, (verdict, source) in after.items():
        if key not in before:
            changes.append(Change(key, "added", None, verdict))
            continue
        old_verdict, old_source = before[key]
        if old_verdict != verdict:
            changes.append(Change(key, "verdict", old_verdict, verdict))
        elif old_source != source:
            changes.append(Change(key, "source", old_source, source))
    ran = {key[0] for key in after}  # scenarios left out of this run are not "removed" flows
    changes += [Change(key, "removed", before[key][0], None) for key in before if key not in after and key[0] in ran]
    return changes


def format_changes(baseline: dict[str, Any], doc: dict[str, Any], name: str) -> str:
    """The changes as printed by ``explain``/``check --baseline``."""
    changes = diff(baseline, doc)
    lines = [f"{len(changes)} flows differ from the baseline {name}" + (":" if changes else "")]
    lines += [f"  {change.describe()}" for change in changes]
    return "\n".join(lines)


def load_baseline(path: str) -> dict[str, Any]:
    """Read a result document; bad input is an InputError naming the file."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read the baseline: {exc.strerror}", file=path) from None
    except ValueError as exc:
        raise InputError(f"not a JSON result document ({exc})", file=path) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("scenarios"), list):
        raise InputError("not a netiso result document (no 'scenarios' list)", file=path, field="scenarios")
    return doc
