"""Large result documents stay complete but compact: paths shared by reference (``paths`` table, version 1).

Why: every traced flow carries the kernel's rule trace of its first packet (~40 rules, ~6 KB) and
the oracle's hops twice (text and structure). At 48 nodes and ~9,800 flows that made results.json
240 MB, although most flows traverse the same rules: a rule hit on a node is the same object in
thousands of traces. So a *shared* document (docs/scenarios.md, "Shared paths") keeps every flow's
verdicts, sources and deciding rules inline and moves the repeated parts into one top-level table:

* ``paths.rules``: each distinct kernel rule a trace hit (a trace hop without its ``node``);
* ``paths.trace``: each distinct ``[node, rule index]`` step; ``observed.pathRef`` lists a flow's
  steps in order, so ``observed.path`` is ``[{"node": n, **rules[r]} for n, r in trace[i] ...]``;
* ``paths.text``: each distinct predicted hop text; ``predicted.pathRef`` replaces ``predicted.path``.

Mismatched flows (and disagreements) and the first ``paths.sample`` flows of each scenario also
keep ``observed.path``, ``predicted.path`` and ``predicted.hops`` inline, so a reader of a mismatch
needs no table. ``predicted.hops`` (the structured path, 60 % of a large document) is *only* kept
for those: ``netiso explain --json`` gives every flow's hops without a lab. :func:`expand` turns a
shared document back into the inline form (minus the omitted ``hops``) for readers written for it.

``--json-paths inline|shared|auto`` chooses; ``auto`` (the default) shares from
:data:`SHARE_FROM_FLOWS` flows, so every small document - the bundled conformance run among them -
keeps the inline form it always had.
"""

from __future__ import annotations

import json
from typing import Any

PATHS_VERSION = 1
SHARE_FROM_FLOWS = 500  # auto: documents with at least this many flows share their paths
SAMPLE = 20  # flows per scenario that keep everything inline in a shared document
MODES = ("inline", "shared", "auto")


def flow_count(doc: dict[str, Any]) -> int:
    return sum(len(s.get("flows") or []) for s in doc.get("scenarios") or [])


def wants_sharing(doc: dict[str, Any], mode: str) -> bool:
    """Whether ``mode`` (``inline``/``shared``/``auto``) shares this document's paths.

    >>> wants_sharing({"scenarios": [{"flows": [{}] * 3}]}, "auto"), wants_sharing({"scenarios": []}, "shared")
    (False, True)
    """
    if mode not in MODES:
        raise ValueError(f"json paths mode {mode!r}: expected one of {', '.join(MODES)}")
    return mode == "shared" or (mode == "auto" and flow_count(doc) >= SHARE_FROM_FLOWS)


class _Table:
    """Distinct JSON values, each stored once, referred to by index."""

    def __init__(self) -> None:
        self.index: dict[Any, int] = {}
        self.items: list[Any] = []

    def ref(self, value: Any, key: Any = None) -> int:
        """The index of ``value``; ``key``: a hashable stand-in for it (else its canonical JSON text)."""
        if key is None:
            key = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
        got = self.index.get(key)
        if got is None:
            got = self.index[key] = len(self.items)
            self.items.append(value)
        return got


def share_paths(doc: dict[str, Any], *, sample: int = SAMPLE) -> dict[str, Any]:
    """``doc`` with its paths shared by reference (flow dicts are changed in place; the document is returned).

    >>> hop = {"node": "w", "table": "filter", "chain": "FORWARD", "handle": 3, "verdict": "ACCEPT"}
    >>> flow = {"from": "a", "to": "b", "port": "80/TCP", "match": True,
    ...         "predicted": {"verdict": "allowed", "path": ["w: forward"], "hops": [{}]},
    ...         "observed": {"verdict": "allowed", "path": [hop, hop]}}
    >>> d = share_paths({"scenarios": [{"flows": [flow]}]}, sample=0)
    >>> d["scenarios"][0]["flows"][0]["observed"]["pathRef"], d["paths"]["trace"], d["paths"]["text"]
    ([0, 0], [['w', 0]], ['w: forward'])
    >>> expand(d)["scenarios"][0]["flows"][0]["observed"]["path"] == [hop, hop]
    True
    """
    rules, trace, text = _Table(), _Table(), _Table()
    for scenario in doc.get("scenarios") or []:
        for i, flow in enumerate(scenario.get("flows") or []):
            keep = i < sample or flow.get("match") is False or bool(flow.get("disagreements"))
            pred = flow.get("predicted") or {}
            if "path" in pred:
                pred["pathRef"] = [text.ref(h) for h in pred["path"]]
                if not keep:
                    del pred["path"]
            if not keep:
                pred.pop("hops", None)
            obs = flow.get("observed") or {}
            if obs.get("path"):
                refs = []
                for hop in obs["path"]:
                    rule = {k: v for k, v in hop.items() if k != "node"}
                    # hop values are str/int/None: the sorted items are the rule's identity (a JSON
                    # text per hop cost seconds for the ~900,000 hops of a 48-node run)
                    rule_ref = rules.ref(rule, tuple(sorted(rule.items())))
                    node = hop.get("node")
                    refs.append(trace.ref([node, rule_ref], (node, rule_ref)))
                obs["pathRef"] = refs
                if not keep:
                    del obs["path"]
    doc["paths"] = {"version": PATHS_VERSION, "sample": sample, "rules": rules.items, "trace": trace.items,
                    "text": text.items}
    return doc


def is_shared(doc: dict[str, Any]) -> bool:
    return isinstance(doc.get("paths"), dict)


def observed_path(doc: dict[str, Any], obs: dict[str, Any]) -> list[dict[str, Any]]:
    """A flow's kernel trace, inline or resolved from the shared table."""
    if obs.get("path") or "pathRef" not in obs or not is_shared(doc):
        return list(obs.get("path") or [])
    tables = doc["paths"]
    out = []
    for i in obs["pathRef"]:
        node, r = tables["trace"][i]
        out.append({"node": node, **tables["rules"][r]})
    return out


def predicted_path(doc: dict[str, Any], pred: dict[str, Any]) -> list[str]:
    """A flow's predicted hop texts, inline or resolved from the shared table."""
    if "path" in pred or "pathRef" not in pred or not is_shared(doc):
        return list(pred.get("path") or [])
    text = doc["paths"]["text"]
    return [text[i] for i in pred["pathRef"]]


def expand(doc: dict[str, Any]) -> dict[str, Any]:
    """The inline form of a shared document (a new document; ``predicted.hops`` stay where they were kept)."""
    if not is_shared(doc):
        return doc
    out = {k: v for k, v in doc.items() if k != "paths"}
    scenarios = []
    for scenario in doc.get("scenarios") or []:
        flows = []
        for flow in scenario.get("flows") or []:
            flow = dict(flow)
            pred = {k: v for k, v in (flow.get("predicted") or {}).items() if k != "pathRef"}
            pred["path"] = predicted_path(doc, flow.get("predicted") or {})
            flow["predicted"] = pred
            if "observed" in flow:
                obs = {k: v for k, v in flow["observed"].items() if k != "pathRef"}
                path = observed_path(doc, flow["observed"])
                if path:
                    obs["path"] = path
                flow["observed"] = obs
            flows.append(flow)
        scenarios.append({**scenario, "flows": flows})
    out["scenarios"] = scenarios
    return out


def dumps(doc: dict[str, Any]) -> str:
    """The document as written to disk: indented when inline (as always), one compact line when
    shared (a shared document is for programs; indentation alone would add a third to its size)."""
    if is_shared(doc):
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False) + "\n"
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
