"""Validation of built-in objects on create / update / patch / apply, as kube-apiserver does it.

Why: an emulator that stores whatever it is sent lets a backend ship objects a real server
refuses. This module refuses them the way a real server does, in the same two stages:

1. **Decoding** (k8s.io/apiserver pkg/endpoints/handlers/create.go ``transformDecodeError``): a value
   of the wrong JSON type, or a time a ``metav1.Time`` / ``metav1.MicroTime`` cannot parse, fails the
   whole request with **400 BadRequest** ``<Kind> in version "<v>" cannot be handled as a <Kind>: ...``
   worded as Go's encoding/json (``json: cannot unmarshal string into Go struct field
   ContainerPort.spec.containers.ports.containerPort of type int32``) or time.Parse
   (``parsing time "..." as "2006-01-02T15:04:05.000000Z07:00": cannot parse "Z" as ".000000"``).
   MicroTime (k8s.io/apimachinery pkg/apis/meta/v1/micro_time.go ``UnmarshalJSON``) parses with the
   layout ``RFC3339Micro``; Go's time.Parse then wants exactly six fractional digits, so
   ``2026-01-01T00:00:00Z`` and ``...00.123Z`` are refused; ``metav1.Time`` parses ``time.RFC3339``,
   which accepts any fraction or none.
   Unknown fields follow ``fieldValidation`` (KEP-2885): ``Strict`` -> 400 ``strict decoding
   error: unknown field "spec.foo"``; ``Warn`` (the default for create/update/patch) -> dropped,
   with a ``Warning: 299 - "unknown field ..."`` header; ``Ignore`` -> dropped silently.
2. **Validation** (k8s.io/kubernetes pkg/apis/core/validation, networking/validation,
   coordination/validation, rbac/validation): **422 Invalid** with the field errors as causes
   (``FieldValueRequired`` / ``FieldValueInvalid`` / ``FieldValueNotSupported`` /
   ``FieldValueDuplicate``) and the message ``<Kind> "<name>" is invalid: <field>: <detail>``
   (several errors: ``[a, b]``), as k8s.io/apimachinery pkg/api/errors ``NewInvalid`` builds it.

The schemas are the Kubernetes OpenAPI definitions shipped by kubernetes-validate (the version the
emulator reports, 1.33): they give the field types, the known fields and the required ones. The
semantic rules of the Go validators are mirrored one by one in validation_rules.py for the fields
netiso and the vendored add-ons use (names, labels, ports, protocols, Service types and policies,
NetworkPolicy CIDRs, Ingress paths, Lease durations, RBAC rules).

Knowingly differs: only the Go validation rules in validation_rules.py (a real server checks
every field); custom resources are checked by store.py against their CRD schema, and their unknown
fields are kept where a real server prunes them; apply requests (server-side apply) treat unknown
fields as ``Strict`` when ``fieldValidation`` is not given (structured-merge-diff refuses a field the
schema does not declare: ``.spec.foo: field not declared in schema``).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from importlib import resources as importlib_resources
from typing import Any

from . import status
from .resources import Resource
from .validation_rules import SEMANTIC, FieldError, metadata_errors

SCHEMA_VERSION = "v1.33.0-local-strict"
# RFC 3339 with the Go layouts' own rules: Time takes any fraction (or none), MicroTime exactly six digits
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_MICRO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})$")
RFC3339_MICRO = "2006-01-02T15:04:05.000000Z07:00"
RFC3339 = "2006-01-02T15:04:05Z07:00"
def invalid(res: Resource, name: str, errors: list[FieldError]) -> status.ApiError:
    """The 422 ``NewInvalid`` answers (its message lists every error, bracketed when several)."""
    parts = [f"{e.field}: {e.message()}" for e in errors]
    listed = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    kind = f"{res.kind}.{res.group}" if res.group else res.kind
    details: dict[str, Any] = {"name": name}
    if res.group:
        details["group"] = res.group
    details.update(kind=res.kind, causes=[{"reason": e.reason, "message": e.message(), "field": e.field}
                                          for e in errors])
    return status.ApiError(422, "Invalid", f'{kind} "{name}" is invalid: {listed}', details)


# --------------------------------------------------------------------------- schemas


@functools.cache
def _definitions() -> dict[str, Any]:
    return _load("_definitions.json")["$defs"]


@functools.cache
def _load(filename: str) -> dict[str, Any]:
    root = importlib_resources.files("kubernetes_validate").joinpath("kubernetes-json-schema", SCHEMA_VERSION, filename)
    return json.loads(root.read_text())


def schema_for(res: Resource) -> dict[str, Any] | None:
    """The top-level OpenAPI schema of a built-in kind (None for custom resources / unknown kinds)."""
    if res.custom:
        return None
    group = res.group.split(".")[0]
    name = f"{res.kind.lower()}-{group + '-' if group else ''}{res.version}.json"
    try:
        return _load(name)
    except FileNotFoundError:
        return None


def _resolve(schema: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """Follow ``$ref`` to the definition; also return the Go type name it stands for."""
    ref = schema.get("$ref")
    if not ref:
        return schema, None
    key = ref.rsplit("/", 1)[-1]
    return _definitions()[key], key.rsplit(".", 1)[-1]


def subschema(schema: dict[str, Any], path: list[str | int]) -> dict[str, Any] | None:
    """The schema of the value at ``path`` (keys and list indexes) below ``schema``."""
    cur, _ = _resolve(schema)
    for seg in path:
        if isinstance(seg, int):
            cur = cur.get("items") or {}
        else:
            props = cur.get("properties") or {}
            if seg in props:
                cur = props[seg]
            elif isinstance(cur.get("additionalProperties"), dict):
                cur = cur["additionalProperties"]
            else:
                return None
        cur, _ = _resolve(cur)
    return cur


def _types(schema: dict[str, Any]) -> set[str]:
    t = schema.get("type")
    return set(t) if isinstance(t, list) else ({t} if t else set())


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _go_type(schema: dict[str, Any], name: str | None) -> str:
    t = _types(schema) - {"null"}
    if "integer" in t:
        return "int64" if schema.get("format") == "int64" else "int32"
    if "number" in t:
        return "float64"
    if "boolean" in t:
        return "bool"
    if "string" in t:
        return "string"
    if "array" in t:
        _, item = _resolve(schema.get("items") or {})
        return f"[]v1.{item}" if item else "[]string"
    if name:
        return f"v1.{name}"
    return "map[string]string"


@dataclass
class Decoded:
    """What decoding found: the first type error (a 400), unknown fields, missing required fields."""

    decode_error: str | None = None
    unknown: list[str] = field(default_factory=list)
    required: list[FieldError] = field(default_factory=list)


class _Walker:
    """Walks an object beside its schema, as Go's json decoding and the OpenAPI ``required`` lists see it."""

    def __init__(self) -> None:
        self.out = Decoded()

    def walk(self, schema: dict[str, Any], value: Any, path: list[str | int], struct: str, prune: bool) -> None:
        schema, name = _resolve(schema)
        if self.out.decode_error:
            return
        if value is None:
            return
        if name in ("MicroTime", "Time"):
            self._time(name, value, path, struct)
            return
        if name == "IntOrString" or name == "Quantity":
            if not isinstance(value, str | int) or isinstance(value, bool):
                self._type_error(value, path, struct, "string" if name == "Quantity" else "intstr.IntOrString")
            return
        types = _types(schema) - {"null"}
        if not types and "properties" not in schema and "additionalProperties" not in schema:
            return  # anything (RawExtension, JSON): not checked
        kind = _json_kind(value)
        want = {"integer": "number", "number": "number", "boolean": "bool", "string": "string", "array": "array",
                "object": "object"}
        if types and kind not in {want[t] for t in types if t in want}:
            self._type_error(value, path, struct, _go_type(schema, name))
            return
        if kind == "number" and "integer" in types and "number" not in types and float(value) != int(value):
            self._type_error(value, path, struct, _go_type(schema, name))
            return
        if isinstance(value, list):
            for i, item in enumerate(value):
                self.walk(schema.get("items") or {}, item, [*path, i], struct, prune)
            return
        if not isinstance(value, dict):
            return
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        inner_struct = name or struct
        for key in list(value):
            if props is not None and key in props:
                self.walk(props[key], value[key], [*path, key], inner_struct, prune)
            elif isinstance(extra, dict):
                self.walk(extra, value[key], [*path, key], inner_struct, prune)
            elif props is not None:
                self.out.unknown.append(dotted([*path, key]))
                if prune:
                    del value[key]
        for req in schema.get("required") or ():
            if req not in value:
                self.out.required.append(FieldError("FieldValueRequired", dotted([*path, req])))

    def _type_error(self, value: Any, path: list[str | int], struct: str, go_type: str) -> None:
        go_path = ".".join(str(p) for p in path if isinstance(p, str))
        self.out.decode_error = (f"json: cannot unmarshal {_json_kind(value)} into Go struct field "
                                 f"{struct}.{go_path} of type {go_type}")

    def _time(self, name: str, value: Any, path: list[str | int], struct: str) -> None:
        if not isinstance(value, str):
            self._type_error(value, path, struct, "string")
            return
        micro = name == "MicroTime"
        if (_MICRO if micro else _TIME).match(value):
            return
        layout = RFC3339_MICRO if micro else RFC3339
        self.out.decode_error = f'parsing time "{value}" as "{layout}": cannot parse {_time_rest(value, micro)}'


def _time_rest(value: str, micro: bool) -> str:
    """The ``cannot parse "X" as "Y"`` tail of Go's time.ParseError for a malformed RFC 3339 value."""
    head = re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}", value)
    if head is None:
        return f'"{value}" as "2006"' if not re.match(r"^\d{4}", value) else f'"{value[4:]}" as "-01"'
    rest = value[head.end():]
    if micro:
        frac = re.match(r"^\.\d*", rest)
        if frac is None or len(frac.group()) < 7:
            return f'"{rest}" as ".000000"'
        return f'"{rest[7:]}" as "Z07:00"'
    rest = re.sub(r"^\.\d+", "", rest)
    return f'"{rest}" as "Z07:00"'


def dotted(path: list[str | int]) -> str:
    """``spec.containers[0].ports[1].name``: how field errors name a path."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


# --------------------------------------------------------------------------- the two stages


def check(res: Resource, obj: dict[str, Any], *, field_validation: str | None, apply: bool = False,
          warnings: list[str] | None = None, decode_only: bool = False) -> None:
    """Decode-stage then validation-stage checks of ``obj`` (a built-in kind); prunes unknown fields
    unless ``Strict``. Raises the ApiError a real server answers; appends Warn-mode warnings. With
    ``decode_only`` only the decoding stage runs (an apply configuration is partial by design)."""
    schema = schema_for(res)
    name = str((obj.get("metadata") or {}).get("name") or "")
    mode = field_validation or ("Strict" if apply else "Warn")
    if schema is not None:
        walker = _Walker()
        walker.walk(schema, obj, [], res.kind, prune=mode != "Strict")
        found = walker.out
        if found.decode_error:
            raise status.bad_request(f'{res.kind} in version "{res.version}" cannot be handled as a {res.kind}: '
                                     f"{found.decode_error}")
        if found.unknown and mode == "Strict":
            if apply:
                gv = f"{res.group}/{res.version}" if res.group else f"/{res.version}"
                raise status.bad_request(f"failed to create typed patch object ({gv}, Kind={res.kind}) {name}: "
                                         + "; ".join(f".{u}: field not declared in schema" for u in found.unknown))
            raise status.bad_request("strict decoding error: " + ", ".join(f'unknown field "{u}"' for u in found.unknown))
        if found.unknown and mode == "Warn" and warnings is not None:
            warnings.extend(f'unknown field "{u}"' for u in found.unknown)
        errors = list(found.required)
    else:
        errors = []
    if decode_only:
        return
    errors.extend(metadata_errors(res, obj))
    rule = SEMANTIC.get((res.group, res.plural))
    if rule is not None:
        errors.extend(rule(obj))
    if errors:
        raise invalid(res, name, _dedupe(errors))


def _dedupe(errors: list[FieldError]) -> list[FieldError]:
    seen, out = set(), []
    for e in errors:
        if (e.reason, e.field) not in seen:
            seen.add((e.reason, e.field))
            out.append(e)
    return out


