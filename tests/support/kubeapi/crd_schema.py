"""The emulated API server's check of a custom resource against its CRD's ``openAPIV3Schema``.

Mirrors the apiextensions server's structural-schema validation (k8s.io/apiextensions-apiserver
pkg/apiserver/validation): types, enums, required fields and patterns answered 422 Invalid with one
cause per field and the message format ``<Kind>.<group> "<name>" is invalid: <field>: <why>``
(``Unsupported value`` / ``Required value`` / ``Invalid value``). Checked with jsonschema's Draft 7
validator after turning OpenAPI's ``nullable`` into JSON Schema's ``type: [T, "null"]``.

Knowingly different: unknown fields pass and are kept (the real server prunes them), and
``x-kubernetes-*`` extensions and CEL validation rules are ignored.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema

from . import status
from .resources import Resource


def go_pattern(pattern: str) -> str:
    """A Go (RE2) pattern as Python's ``re`` reads it: RE2 takes a flag group such as ``(?i)`` anywhere
    and applies it to the rest of the expression; Python wants global flags first. Calico's CRDs write
    ``^(?i)(Drop|Accept|Return)?$``.

    >>> go_pattern("^(?i)(Drop|Accept|Return)?$")
    '(?i)^(Drop|Accept|Return)?$'
    """
    if pattern.startswith("^(?i)"):
        return "(?i)^" + pattern[len("^(?i)"):]
    return pattern


def _nullable(schema: Any) -> Any:
    """OpenAPI v3 ``nullable: true`` as JSON Schema's ``type: [T, "null"]`` (and Go patterns as Python's)."""
    if isinstance(schema, list):
        return [_nullable(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _nullable(v) for k, v in schema.items()}
    if isinstance(out.get("pattern"), str):
        out["pattern"] = go_pattern(out["pattern"])
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def check_schema(res: Resource, obj: dict[str, Any], name: str) -> None:
    """422 Invalid when a custom resource breaks its CRD's openAPIV3Schema (types, enums, required,
    patterns). Unknown fields pass: the real server prunes them, this one keeps them."""
    if not res.custom or not res.schema:
        return
    body = {k: v for k, v in obj.items() if k != "metadata"}
    schema = _nullable({k: v for k, v in res.schema.items() if k != "properties"} |
                       {"properties": {k: v for k, v in (res.schema.get("properties") or {}).items() if k != "metadata"}})
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(body), key=lambda e: list(e.absolute_path))
    if not errors:
        return
    causes, parts = [], []
    for e in errors:
        field = ".".join(str(p) for p in e.absolute_path)
        if e.validator == "enum":
            reason = "FieldValueNotSupported"
            msg = f"Unsupported value: {json_dump(e.instance)}: supported values: " + \
                  ", ".join(json_dump(v) for v in e.validator_value)
        elif e.validator == "required":
            reason, msg = "FieldValueRequired", "Required value"
            missing = e.message.split("'")[1] if "'" in e.message else ""
            field = f"{field}.{missing}" if field else missing
        else:
            reason, msg = "FieldValueInvalid", f"Invalid value: {json_dump(e.instance)}: {field} in body {e.message}"
        causes.append({"reason": reason, "message": msg, "field": field})
        parts.append(f"{field}: {msg}")
    listed = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    raise status.ApiError(422, "Invalid", f'{res.kind}.{res.group} "{name}" is invalid: {listed}',
                          {"name": name, "group": res.group, "kind": res.kind, "causes": causes})


def json_dump(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else f'"{value}"'
