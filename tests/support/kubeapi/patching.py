"""The emulated API server's patches: JSON merge patch, JSON patch, and the media type that picks one.

Mirrors k8s.io/apiserver pkg/endpoints/handlers/patch.go: ``application/json-patch+json`` (RFC 6902:
add/remove/replace/test; a failed ``test`` or a missing path is 422 Invalid), ``application/merge-patch+json``
(RFC 7386), and a strategic merge patch refused with 415 on custom resources (they have no patch
strategy), as the real server refuses it. Knowingly different: strategic merge patch and apply patch
are read as merge patches (the real strategic merge merges lists such as containers by key; this one
replaces lists; server-side apply's field ownership lives in apply.py); RFC 6902 ``move``/``copy``
are absent.
"""

from __future__ import annotations

import copy
from typing import Any

from . import status
from .resources import Resource

MERGE_TYPES = ("application/merge-patch+json", "application/strategic-merge-patch+json", "application/apply-patch+yaml")
CR_PATCH_TYPES = ["application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml"]


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` removes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def _pointer(path: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]


def json_patch(doc: Any, ops: list[dict]) -> Any:
    """RFC 6902 add / remove / replace / test."""
    doc = copy.deepcopy(doc)
    for op in ops:
        parts = _pointer(op["path"])
        parent = doc
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent[p]
        last = parts[-1] if parts else ""
        kind = op["op"]
        try:
            if kind == "test":
                cur = parent[int(last)] if isinstance(parent, list) else parent[last]
                if cur != op["value"]:
                    raise status.ApiError(422, "Invalid", f"the server rejected our request due to an error in our request: "
                                          f"testing value {op['path']} failed")
            elif kind in ("add", "replace"):
                if isinstance(parent, list):
                    if last == "-":
                        parent.append(op["value"])
                    elif kind == "add":
                        parent.insert(int(last), op["value"])
                    else:
                        parent[int(last)] = op["value"]
                else:
                    if kind == "replace" and last not in parent:
                        raise KeyError(last)
                    parent[last] = op["value"]
            elif kind == "remove":
                del parent[int(last) if isinstance(parent, list) else last]
            else:
                raise status.bad_request(f"Unexpected kind: {kind}")
        except (KeyError, IndexError) as exc:
            raise status.ApiError(422, "Invalid", f"the server rejected our request due to an error in our request: "
                                  f"{kind} operation does not apply: doc is missing path: {op['path']!r}") from exc
    return doc


def patched(res: Resource, live: dict[str, Any], body: Any, ctype: str) -> dict[str, Any]:
    """``body`` applied to ``live`` by its media type ``ctype`` (without parameters); 400/415/422 as the apiserver."""
    if res.custom and ctype == "application/strategic-merge-patch+json":
        raise status.unsupported_media(CR_PATCH_TYPES)
    if ctype == "application/json-patch+json":
        if not isinstance(body, list):
            raise status.bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
        return json_patch(live, body)
    if ctype in MERGE_TYPES:
        return merge_patch(live, body)
    raise status.unsupported_media(["application/json-patch+json", *MERGE_TYPES])
