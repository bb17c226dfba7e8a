"""labelSelector and fieldSelector query strings, evaluated as the apiserver evaluates them.

Why: netiso finds its own objects by label (``netiso.io/run=<id>``) and a pod's events by
``involvedObject.name=<pod>``; a fake server that ignored selectors would let a backend pass
tests while listing every object in the cluster.

Mirrors: k8s.io/apimachinery/pkg/labels (selector.go: ``=``, ``==``, ``!=``, ``in``, ``notin``,
``key``, ``!key``) and pkg/fields (``=``, ``==``, ``!=`` on dotted field paths). Knowingly differs:
fields are looked up on any dotted path of the object, where the real server only indexes the
few fields each kind registers (e.g. Event: involvedObject.*, reason, type; Pod: spec.nodeName,
status.phase); a field the real server rejects with 400 is simply evaluated here. ``gt``/``lt``
label operators are not parsed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Predicate = Callable[[dict[str, Any]], bool]


class SelectorError(ValueError):
    """A selector the real server would answer 400 BadRequest to."""


def _split_terms(text: str) -> list[str]:
    terms, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        terms.append(cur.strip())
    return terms


_SET = re.compile(r"^([^\s!=()]+)\s+(in|notin)\s+\(([^)]*)\)$")
_EQ = re.compile(r"^([^\s!=]+)\s*(==|=|!=)\s*([^\s]*)$")
_KEY = re.compile(r"^(!?)\s*([^\s!=()]+)$")


def label_selector(text: str | None) -> Predicate:
    """A predicate over an object's ``metadata.labels``."""
    checks: list[Callable[[dict[str, str]], bool]] = []
    for term in _split_terms(text or ""):
        if m := _SET.match(term):
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",") if v.strip()}
            if op == "in":
                checks.append(lambda lb, k=key, vs=values: lb.get(k) in vs)
            else:
                checks.append(lambda lb, k=key, vs=values: lb.get(k) not in vs)
        elif m := _EQ.match(term):
            key, op, value = m.groups()
            if op == "!=":
                checks.append(lambda lb, k=key, v=value: lb.get(k) != v)
            else:
                checks.append(lambda lb, k=key, v=value: k in lb and lb[k] == v)
        elif m := _KEY.match(term):
            neg, key = m.groups()
            if neg:
                checks.append(lambda lb, k=key: k not in lb)
            else:
                checks.append(lambda lb, k=key: k in lb)
        else:
            raise SelectorError(f"unable to parse requirement: {term!r}")
    return lambda obj: all(c((obj.get("metadata") or {}).get("labels") or {}) for c in checks)


def field_value(obj: dict[str, Any], path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def field_selector(text: str | None) -> Predicate:
    checks: list[Predicate] = []
    for term in _split_terms(text or ""):
        m = re.match(r"^([^\s!=]+)\s*(==|=|!=)\s*(.*)$", term)
        if not m:
            raise SelectorError(f"invalid selector: '{term}'; can't understand '{term}'")
        path, op, value = m.groups()
        if op == "!=":
            checks.append(lambda o, p=path, v=value: field_value(o, p) != v)
        else:
            checks.append(lambda o, p=path, v=value: field_value(o, p) == v)
    return lambda obj: all(c(obj) for c in checks)


def labels_dict_selector(labels: dict[str, str] | None) -> Predicate:
    """``{"k": "v"}`` as the equality selector ``k=v,...`` (for FakeCluster.list)."""
    return label_selector(",".join(f"{k}={v}" for k, v in (labels or {}).items()))
