"""Small typed readers over parsed YAML that raise precise :class:`ScenarioError` messages.

The loader walks a document with a :class:`Cursor` that knows the file, the document and the
field path, so every message names all three and says what is allowed instead of what Python
happened to trip over.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from netiso.model.errors import ScenarioError
from netiso.model.types import PROTOCOLS, Port


@dataclass(frozen=True)
class Cursor:
    file: str
    document: int
    name: str | None
    path: str

    def at(self, key: str | int) -> Cursor:
        if isinstance(key, int):
            return Cursor(self.file, self.document, self.name, f"{self.path}[{key}]")
        return Cursor(self.file, self.document, self.name, f"{self.path}.{key}" if self.path else key)

    def fail(self, message: str) -> NoReturn:
        raise ScenarioError(message, file=self.file, document=self.document, name=self.name,
                            field=self.path or None)


def describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def mapping(cur: Cursor, value: Any, allowed: Iterable[str], required: Iterable[str] = ()) -> Mapping[str, Any]:
    """Check that ``value`` is a mapping with only ``allowed`` keys and all ``required`` ones."""
    allowed = tuple(allowed)
    if not isinstance(value, Mapping):
        cur.fail(f"expected a mapping with keys {', '.join(allowed)}; got {describe(value)}")
    for key in value:
        if key not in allowed:
            hint = difflib.get_close_matches(str(key), allowed, n=1)
            extra = f", did you mean '{hint[0]}'?" if hint else f" (allowed: {', '.join(allowed)})"
            cur.at(str(key)).fail(f"unknown field{extra}")
    for key in required:
        if key not in value or value[key] is None:
            cur.at(key).fail("required field is missing")
    return value


def seq(cur: Cursor, value: Any, *, allow_empty: bool = True) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        cur.fail(f"expected a list; got {describe(value)}")
    if not value and not allow_empty:
        cur.fail("must not be empty")
    return value


def string(cur: Cursor, value: Any) -> str:
    if not isinstance(value, str) or not value:
        cur.fail(f"expected a non-empty string; got {describe(value)}")
    return value


def boolean(cur: Cursor, value: Any, default: bool = False) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        cur.fail(f"expected true or false; got {describe(value)}")
    return value


def choice(cur: Cursor, value: Any, allowed: Iterable[str], default: str | None = None) -> str:
    allowed = tuple(allowed)
    if value is None and default is not None:
        return default
    if value not in allowed:
        cur.fail(f"{describe(value)} is not one of {', '.join(allowed)}")
    return value


def dns_name(cur: Cursor, value: Any, what: str = "name") -> str:
    from netiso.model.symbols import NAME_RE

    text = string(cur, value)
    if not NAME_RE.match(text) or len(text) > 63:
        cur.fail(f"'{text}' is not a valid {what}: use lower-case letters, digits and '-' (at most 63)")
    return text


def labels(cur: Cursor, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        cur.fail(f"expected a mapping of label key to value; got {describe(value)}")
    out: dict[str, str] = {}
    for key, val in value.items():
        if not isinstance(key, str) or not key:
            cur.fail(f"label key {describe(key)} must be a non-empty string")
        if not isinstance(val, str):
            cur.at(key).fail(f"label value must be a string (quote numbers and booleans); got {describe(val)}")
        out[key] = val
    return out


def port(cur: Cursor, value: Any) -> Port:
    """``8080/TCP``, ``8080`` (TCP) or ``{port: 8080, protocol: TCP, name: http}``."""
    name = None
    if isinstance(value, Mapping):
        mapping(cur, value, ("port", "protocol", "name"), required=("port",))
        number, proto, name = value["port"], value.get("protocol", "TCP"), value.get("name")
        if name is not None:
            name = dns_name(cur.at("name"), name, "port name")
            if len(name) > 15:
                cur.at("name").fail(f"port name '{name}' is longer than 15 characters (IANA_SVC_NAME)")
    elif isinstance(value, bool):
        cur.fail(f"expected PORT/PROTO such as 8080/TCP; got {describe(value)}")
    elif isinstance(value, int):
        number, proto = value, "TCP"
    elif isinstance(value, str):
        number_text, _, proto = value.partition("/")
        proto = proto or "TCP"
        if not number_text.isdigit():
            cur.fail(f"'{value}' is not PORT/PROTO (e.g. 8080/TCP; PROTO in {', '.join(PROTOCOLS)})")
        number = int(number_text)
    else:
        cur.fail(f"expected PORT/PROTO such as 8080/TCP; got {describe(value)}")
    if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= 65535:
        cur.fail(f"port {describe(number)} is out of range 1-65535")
    if proto not in PROTOCOLS:
        cur.fail(f"protocol {describe(proto)} is not one of {', '.join(PROTOCOLS)}")
    return Port(number, proto, name)


def ports(cur: Cursor, value: Any, default: tuple[Port, ...] = ()) -> tuple[Port, ...]:
    if value is None:
        return default
    items = seq(cur, value, allow_empty=False)
    out = tuple(port(cur.at(i), v) for i, v in enumerate(items))
    _no_duplicates(cur, out)
    return out


def workload_ports(cur: Cursor, value: Any, default: tuple[Port, ...] = ()
                   ) -> tuple[tuple[Port, ...], tuple[tuple[int, Port], ...]]:
    """A workload's container ports: every :func:`port` form, plus ``{port: 80, hostPort: 8080}``.

    ``hostPort`` opens the port on the node of each replica (the CNI portmap plugin's DNAT);
    returned apart as ``(hostPort, container port)`` so that :class:`Port` keeps its meaning.
    """
    if value is None:
        return default, ()
    items = seq(cur, value, allow_empty=False)
    out: list[Port] = []
    hosts: list[tuple[int, Port]] = []
    for i, v in enumerate(items):
        icur = cur.at(i)
        host = None
        if isinstance(v, Mapping):
            mapping(icur, v, ("port", "hostPort", "protocol", "name"), required=("port",))
        if isinstance(v, Mapping) and "hostPort" in v:
            host = v["hostPort"]
            if isinstance(host, bool) or not isinstance(host, int) or not 1 <= host <= 65535:
                icur.at("hostPort").fail(f"hostPort {describe(host)} is not a port number 1-65535")
            v = {k: x for k, x in v.items() if k != "hostPort"}
        p = port(icur, v)
        out.append(p)
        if host is not None:
            if any(h == host and q.protocol == p.protocol for h, q in hosts):
                icur.at("hostPort").fail(f"hostPort {host}/{p.protocol} is listed twice (one node port maps to one "
                                         "container port)")
            hosts.append((host, p))
    _no_duplicates(cur, tuple(out))
    return tuple(out), tuple(hosts)


def _no_duplicates(cur: Cursor, ports: tuple[Port, ...]) -> None:
    seen: set[tuple[int, str]] = set()
    for i, p in enumerate(ports):
        if (p.port, p.protocol) in seen:
            cur.at(i).fail(f"port {p} is listed twice")
        seen.add((p.port, p.protocol))


IANA_SVC_NAME_RE = re.compile(r"^(?=.*[a-z])[a-z0-9]([a-z0-9]|-(?!-))*[a-z0-9]$|^[a-z]$")


def target_port(cur: Cursor, value: Any) -> int | str:
    """A Service ``targetPort``: a number 1-65535, or a container port name (IANA_SVC_NAME)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        cur.fail(f"expected a port number or a container port name; got {describe(value)}")
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int):
        if not 1 <= value <= 65535:
            cur.fail(f"targetPort {value} is out of range 1-65535")
        return value
    if len(value) > 15 or not IANA_SVC_NAME_RE.match(value):
        cur.fail(f"targetPort '{value}' is neither a port number nor a container port name (lower-case "
                 "letters, digits and single '-', at least one letter, at most 15 characters)")
    return value


def service_port(cur: Cursor, value: Any) -> Port:
    """A Service port: every :func:`port` form, plus ``targetPort``.

    ``80:8080/TCP`` (or ``80:8080``, ``80:http``) and ``{port: 80, targetPort: 8080, protocol: TCP,
    name: web}``; without a targetPort the Service port's own number is the target.
    """
    target = None
    if isinstance(value, Mapping):
        mapping(cur, value, ("port", "targetPort", "protocol", "name"), required=("port",))
        if value.get("targetPort") is not None:
            target = target_port(cur.at("targetPort"), value["targetPort"])
        value = {k: v for k, v in value.items() if k != "targetPort"}
    elif isinstance(value, str) and ":" in value:
        head, _, proto = value.partition("/")
        number, _, target_text = head.partition(":")
        if not target_text:
            cur.fail(f"'{value}' is not PORT:TARGETPORT/PROTO (e.g. 80:8080/TCP)")
        target = target_port(cur, target_text)
        value = f"{number}/{proto}" if proto else number
    base = port(cur, value)
    return Port(base.port, base.protocol, base.name, None if target == base.port else target)


def service_ports(cur: Cursor, value: Any, default: tuple[Port, ...] = ()) -> tuple[Port, ...]:
    if value is None:
        return default
    items = seq(cur, value, allow_empty=False)
    out = tuple(service_port(cur.at(i), v) for i, v in enumerate(items))
    _no_duplicates(cur, out)
    return out


def cidr(cur: Cursor, value: Any) -> str:
    text = string(cur, value)
    try:
        return str(ipaddress.ip_network(text, strict=True))
    except ValueError as exc:
        cur.fail(f"'{text}' is not a CIDR ({exc})")


def one_or_many(cur: Cursor, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    items = seq(cur, value)
    return tuple(string(cur.at(i), v) for i, v in enumerate(items))
