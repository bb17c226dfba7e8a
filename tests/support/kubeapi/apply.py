"""Server-side apply and field ownership (``metadata.managedFields``), as kube-apiserver keeps them.

Why: the kind backend installs its add-ons with server-side apply, and a cluster remembers who
owns which field: a second applier that sets a field another manager owns to a different value
gets 409 Conflict unless it forces, a field dropped from a manager's applied configuration is
removed, and lists are merged by their keys rather than replaced. An emulator that treats an
apply patch as a merge patch cannot show any of that.

Mirrors sigs.k8s.io/structured-merge-diff v4 (``fieldpath`` sets and their ``FieldsV1`` encoding:
``f:<field>``, ``k:{"name":"c"}`` for items of associative lists, ``v:<value>`` for set items, ``.``
for an item itself; ``merge.Updater.Apply``: conflicts with other managers whose value differs,
``force`` taking their fields, fields no longer applied and owned by nobody else removed) and
k8s.io/apiserver pkg/endpoints/handlers/fieldmanager (``Apply failed with 1 conflict: conflict with
"<manager>": .spec.x``, the Update manager named ``"<manager>" using <apiVersion> at <time>``,
the manager of a create/update without ``fieldManager`` taken from the User-Agent's first word,
``PatchOptions`` refused without ``fieldManager`` for apply and with ``force`` for other patches).
List semantics come from the OpenAPI extensions of the schema (built-ins: the kubernetes-validate
definitions; custom resources: the CRD's openAPIV3Schema): ``x-kubernetes-list-type: map`` with
``x-kubernetes-list-map-keys``, a ``x-kubernetes-patch-strategy: merge`` list with its
``x-kubernetes-patch-merge-key``, ``set``, and everything else atomic (as schemaconv converts it).

Knowingly differs: no per-subresource managers (status writes are not tracked), no defaulting of
list keys (a container port without ``protocol`` is keyed as written, where the real server
defaults ``TCP`` before keying), field sets of removed list items are dropped with the item,
and ``metadata`` beyond labels, annotations, finalizers and ownerReferences is not tracked.
"""

from __future__ import annotations

import copy
import datetime
import json
from typing import Any

from . import status
from .resources import Resource
from .validation import _resolve, schema_for

Path = tuple[str, ...]
FieldSet = set[Path]
TRACKED_METADATA = ("labels", "annotations", "finalizers", "ownerReferences")


# --------------------------------------------------------------------------- schemas


def _schema(res: Resource) -> dict[str, Any]:
    return (res.schema if res.custom else schema_for(res)) or {}


def _child(schema: dict[str, Any], key: str) -> dict[str, Any]:
    schema, _ = _resolve(schema)
    props = schema.get("properties") or {}
    if key in props:
        return _resolve(props[key])[0]
    extra = schema.get("additionalProperties")
    return _resolve(extra)[0] if isinstance(extra, dict) else {}


def _list_kind(schema: dict[str, Any], items: list[Any]) -> tuple[str, list[str]]:
    """("map", keys) | ("set", []) | ("atomic", [])."""
    kind = schema.get("x-kubernetes-list-type")
    keys = list(schema.get("x-kubernetes-list-map-keys") or [])
    if kind == "map" and keys:
        return "map", keys
    if kind == "set":
        return "set", []
    if kind is None and schema.get("x-kubernetes-patch-strategy", "").startswith("merge"):
        key = schema.get("x-kubernetes-patch-merge-key")
        if key:
            return "map", [key]
        if all(not isinstance(i, dict | list) for i in items):
            return "set", []
    return "atomic", []


def _item_key(item: dict[str, Any], keys: list[str]) -> str:
    return "k:" + json.dumps({k: item.get(k) for k in keys if k in item}, separators=(",", ":"), sort_keys=True)


def _value_key(value: Any) -> str:
    return "v:" + json.dumps(value, separators=(",", ":"))


# --------------------------------------------------------------------------- field sets


def field_set(res: Resource, obj: dict[str, Any]) -> FieldSet:
    """The leaves (and list items) ``obj`` sets, as structured-merge-diff paths."""
    out: FieldSet = set()
    schema = _schema(res)
    for key, value in obj.items():
        if key in ("apiVersion", "kind", "status"):
            continue
        if key == "metadata":
            for mkey in TRACKED_METADATA:
                if mkey in (value or {}):
                    _walk(_child(_child(schema, "metadata"), mkey), value[mkey], ("f:metadata", f"f:{mkey}"), out)
            continue
        _walk(_child(schema, key), value, (f"f:{key}",), out)
    return out


def _walk(schema: dict[str, Any], value: Any, path: Path, out: FieldSet) -> None:
    if isinstance(value, dict) and value and schema.get("x-kubernetes-map-type") != "atomic":
        for k, v in value.items():
            _walk(_child(schema, k), v, (*path, f"f:{k}"), out)
        return
    if isinstance(value, list):
        kind, keys = _list_kind(schema, value)
        item_schema = _resolve(schema.get("items") or {})[0]
        if kind == "map":
            for item in value:
                item_path = (*path, _item_key(item, keys))
                out.add(item_path)
                for k, v in item.items():
                    _walk(_child(item_schema, k), v, (*item_path, f"f:{k}"), out)
            return
        if kind == "set":
            out.update((*path, _value_key(v)) for v in value)
            return
    out.add(path)


def to_fields_v1(fields: FieldSet) -> dict[str, Any]:
    """The ``fieldsV1`` document of a set (``.`` marks a list item that is itself in the set)."""
    root: dict[str, Any] = {}
    for path in sorted(fields):
        node = root
        for seg in path:
            node = node.setdefault(seg, {})
    for path in fields:
        if path[-1].startswith(("k:", "v:")):
            node = root
            for seg in path:
                node = node[seg]
            if node:
                node["."] = {}
    return root


def from_fields_v1(doc: dict[str, Any], prefix: Path = ()) -> FieldSet:
    out: FieldSet = set()
    for key, sub in (doc or {}).items():
        if key == ".":
            out.add(prefix)
            continue
        path = (*prefix, key)
        if sub:
            out |= from_fields_v1(sub, path)
        else:
            out.add(path)
    return out


def path_string(path: Path) -> str:
    """fieldpath.Path.String: ``.spec.containers[name="c"].image``."""
    out = ""
    for seg in path:
        kind, _, rest = seg.partition(":")
        if kind == "f":
            out += f".{rest}"
        elif kind == "k":
            out += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in json.loads(rest).items()) + "]"
        else:
            out += f"[={rest}]"
    return out


# --------------------------------------------------------------------------- values at paths


_MISSING = object()


def _get(obj: Any, path: Path) -> Any:
    cur = obj
    for seg in path:
        kind, _, rest = seg.partition(":")
        if kind == "f":
            if not isinstance(cur, dict) or rest not in cur:
                return _MISSING
            cur = cur[rest]
        elif kind == "k":
            want = json.loads(rest)
            found = [i for i in cur or [] if isinstance(i, dict) and all(i.get(k) == v for k, v in want.items())] \
                if isinstance(cur, list) else []
            if not found:
                return _MISSING
            cur = found[0]
        else:
            value = json.loads(rest)
            if not isinstance(cur, list) or value not in cur:
                return _MISSING
            cur = value
    return cur


def _remove(obj: Any, path: Path) -> None:
    parent = _get(obj, path[:-1]) if len(path) > 1 else obj
    if parent is _MISSING:
        return
    kind, _, rest = path[-1].partition(":")
    if kind == "f" and isinstance(parent, dict):
        parent.pop(rest, None)
    elif kind == "k" and isinstance(parent, list):
        want = json.loads(rest)
        parent[:] = [i for i in parent if not (isinstance(i, dict) and all(i.get(k) == v for k, v in want.items()))]
    elif kind == "v" and isinstance(parent, list):
        value = json.loads(rest)
        parent[:] = [i for i in parent if i != value]


def merge(schema: dict[str, Any], live: Any, cfg: Any) -> Any:
    """``cfg`` merged into ``live``: objects by field, associative lists by key, sets by value,
    everything else replaced."""
    schema = _resolve(schema)[0]
    if isinstance(cfg, dict) and isinstance(live, dict) and schema.get("x-kubernetes-map-type") != "atomic":
        out = copy.deepcopy(live)
        for k, v in cfg.items():
            out[k] = merge(_child(schema, k), live.get(k), v) if k in live else copy.deepcopy(v)
        return out
    if isinstance(cfg, list) and isinstance(live, list):
        kind, keys = _list_kind(schema, cfg)
        if kind == "map":
            item_schema = _resolve(schema.get("items") or {})[0]
            out = copy.deepcopy(live)
            for item in cfg:
                at = [i for i, x in enumerate(out) if isinstance(x, dict) and _item_key(x, keys) == _item_key(item, keys)]
                if at:
                    out[at[0]] = merge(item_schema, out[at[0]], item)
                else:
                    out.append(copy.deepcopy(item))
            return out
        if kind == "set":
            return copy.deepcopy(live) + [copy.deepcopy(v) for v in cfg if v not in live]
    return copy.deepcopy(cfg)


# --------------------------------------------------------------------------- managers


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _entries(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return list((obj.get("metadata") or {}).get("managedFields") or [])


def _entry(manager: str, operation: str, res: Resource, fields: FieldSet) -> dict[str, Any]:
    return {"manager": manager, "operation": operation, "apiVersion": res.api_version, "time": _now(),
            "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(fields)}


def _describe_manager(entry: dict[str, Any]) -> str:
    name = json.dumps(entry["manager"])
    if entry.get("operation") == "Update":
        return f"{name} using {entry.get('apiVersion')} at {entry.get('time')}"
    return name


def manager_from(user_agent: str) -> str:
    """The default manager of a create/update/patch without ``fieldManager``: the User-Agent's first word."""
    return (user_agent.split("/")[0] or "unknown")[:128]


def check_patch_options(apply: bool, field_manager: str | None, force: str | None) -> None:
    """validation.ValidatePatchOptions: 422 on PatchOptions."""
    errors = []
    if apply and not field_manager:
        errors.append(("FieldValueRequired", "fieldManager", "Required value: is required for apply patch"))
    if not apply and force is not None:
        errors.append(("FieldValueForbidden", "force", "Forbidden: may not be specified for non-apply patch"))
    if errors:
        parts = [f"{f}: {m}" for _, f, m in errors]
        listed = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
        raise status.ApiError(422, "Invalid", f'PatchOptions.meta.k8s.io "" is invalid: {listed}',
                              {"group": "meta.k8s.io", "kind": "PatchOptions",
                               "causes": [{"reason": r, "message": m, "field": f} for r, f, m in errors]})


def apply(res: Resource, live: dict[str, Any] | None, cfg: dict[str, Any], manager: str, force: bool) -> dict[str, Any]:
    """The object after ``manager`` applies ``cfg`` to ``live`` (None: created), managedFields updated;
    409 Conflict naming each conflicting manager and field unless ``force``."""
    schema = _schema(res)
    applied = field_set(res, cfg)
    if live is None:
        out = copy.deepcopy(cfg)
        out.setdefault("metadata", {})["managedFields"] = [_entry(manager, "Apply", res, applied)]
        return out
    entries = _entries(live)
    mine = [e for e in entries if e["manager"] == manager and e.get("operation") == "Apply"]
    before = from_fields_v1(mine[0]["fieldsV1"]) if mine else set()
    others = [(e, from_fields_v1(e.get("fieldsV1") or {})) for e in entries if e not in mine]
    conflicts: list[tuple[dict[str, Any], Path]] = []
    for entry, owned in others:
        for path in sorted(applied & owned):
            if path[-1].startswith(("k:", "v:")):
                continue  # owning a list item is not a value to disagree on
            if _get(cfg, path) != _get(live, path):
                conflicts.append((entry, path))
    if conflicts and not force:
        raise conflict_error(conflicts)
    if force:
        taken = {p for _, p in conflicts}
        others = [(e, owned - taken) for e, owned in others]
    body = {k: v for k, v in live.items() if k != "status"}
    merged = merge(schema, body, {k: v for k, v in cfg.items() if k not in ("apiVersion", "kind")})
    still_owned = set().union(*(owned for _, owned in others)) if others else set()
    for path in sorted(before - applied, key=len, reverse=True):
        if not any(p[:len(path)] == path for p in still_owned):
            _remove(merged, path)
    if "status" in live:
        merged["status"] = copy.deepcopy(live["status"])
    new_entries = [_with_fields(e, owned) for e, owned in others if owned]
    new_entries.append(_entry(manager, "Apply", res, applied))
    merged.setdefault("metadata", {})["managedFields"] = sorted(new_entries, key=_order)
    return merged


def _order(entry: dict[str, Any]) -> tuple[int, str]:
    return (0 if entry.get("operation") == "Apply" else 1, entry["manager"])


def _with_fields(entry: dict[str, Any], fields: FieldSet) -> dict[str, Any]:
    return {**entry, "fieldsV1": to_fields_v1(fields)}


def conflict_error(conflicts: list[tuple[dict[str, Any], Path]]) -> status.ApiError:
    causes = [{"reason": "FieldManagerConflict", "message": f"conflict with {_describe_manager(e)}",
               "field": path_string(p)} for e, p in conflicts]
    if len(conflicts) == 1:
        entry, path = conflicts[0]
        message = f"Apply failed with 1 conflict: conflict with {_describe_manager(entry)}: {path_string(path)}"
    else:
        by: dict[str, list[str]] = {}
        for entry, path in conflicts:
            by.setdefault(_describe_manager(entry), []).append(path_string(path))
        lines = []
        for who in sorted(by):
            lines.append(f"conflicts with {who}:")
            lines += [f"- {p}" for p in by[who]]
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return status.ApiError(409, "Conflict", message, {"causes": causes})


def record_update(res: Resource, old: dict[str, Any] | None, new: dict[str, Any], manager: str) -> None:
    """An Update (create, update, non-apply patch) by ``manager``: it owns every field it changed,
    which no other manager owns any more; fields gone from the object leave every set."""
    now_fields = field_set(res, new)
    if old is None:
        changed = now_fields
        entries: list[dict[str, Any]] = []
    else:
        changed = {p for p in now_fields if _get(new, p) != _get(old, p)}
        entries = _entries(old)
    kept = []
    mine: FieldSet = set()
    for e in entries:
        owned = from_fields_v1(e.get("fieldsV1") or {}) & now_fields
        if e["manager"] == manager and e.get("operation") == "Update":
            mine = owned
            continue
        owned -= changed
        if owned:
            kept.append(_with_fields(e, owned))
    mine |= changed
    if mine:
        kept.append(_entry(manager, "Update", res, mine))
    meta = new.setdefault("metadata", {})
    if kept:
        meta["managedFields"] = sorted(kept, key=_order)
    else:
        meta.pop("managedFields", None)
