"""Kubernetes label selectors (metav1.LabelSelector) evaluated against label maps.

Lives in the model layer because the oracle (NetworkPolicy semantics) and the lab (which turns
selectors into ipsets) must agree on one definition of "a selector matches these labels".

>>> matches({"matchLabels": {"app": "web"}}, {"app": "web", "tier": "x"})
True
>>> matches({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}, {})
True
>>> matches(None, {"a": "b"})   # a missing selector selects nothing
False
>>> matches({}, {"a": "b"})     # an empty selector selects everything
True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """True when ``selector`` (a LabelSelector dict) selects an object with ``labels``.

    ``None`` selects nothing; ``{}`` selects everything (Kubernetes semantics).
    """
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key = expr["key"]
        op = expr["operator"]
        values = expr.get("values") or []
        if op == "In":
            if key not in labels or labels[key] not in values:
                return False
        elif op == "NotIn":
            if key in labels and labels[key] in values:
                return False
        elif op == "Exists":
            if key not in labels:
                return False
        elif op == "DoesNotExist":
            if key in labels:
                return False
        else:
            raise ValueError(f"unknown label selector operator {op!r} (allowed: {', '.join(OPERATORS)})")
    return True


def describe(selector: Mapping[str, Any] | None) -> str:
    """A short human form of a selector, for explanations: ``app=web,tier in (a,b)``."""
    if selector is None:
        return "<none>"
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op = expr["operator"]
        key = expr["key"]
        if op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
        else:
            parts.append(f"{key} {op.lower()} ({','.join(expr.get('values') or [])})")
    return ",".join(parts) if parts else "<all>"
