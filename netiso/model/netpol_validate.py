"""Validation of raw networking.k8s.io/v1 NetworkPolicy manifests written into scenarios.

A typo in a raw policy (``ingres:``, ``protocol: tcp``, ``cidr: 10.0.0.0/33``) would
otherwise surface much later as an unexplained verdict, or only when a Kubernetes backend
rejects the object. The lab and the oracle never talk to an API server, so this module
applies the API server's rules (pkg/apis/networking/validation) plus strict field checking
(unknown keys), and says for each problem where it is, what is wrong and what is allowed.

>>> validate_network_policy({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
...     "metadata": {"name": "p", "namespace": "x"}, "spec": {"ingres": []}})
[('spec.ingres', "unknown field, did you mean 'ingress'?")]
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from netiso.model.selectors import OPERATORS

Problem = tuple[str, str]

API_VERSION = "networking.k8s.io/v1"
KIND = "NetworkPolicy"
PROTOCOLS = ("TCP", "UDP", "SCTP")
POLICY_TYPES = ("Ingress", "Egress")

_TOP_KEYS = ("apiVersion", "kind", "metadata", "spec")
_META_KEYS = (
    "name", "namespace", "labels", "annotations", "generateName", "uid", "resourceVersion",
    "generation", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
    "ownerReferences", "finalizers", "managedFields", "selfLink",
)  # fmt: skip
_SPEC_KEYS = ("podSelector", "policyTypes", "ingress", "egress")
_SELECTOR_KEYS = ("matchLabels", "matchExpressions")
_EXPRESSION_KEYS = ("key", "operator", "values")
_PEER_KEYS = ("podSelector", "namespaceSelector", "ipBlock")
_IPBLOCK_KEYS = ("cidr", "except")
_PORT_KEYS = ("protocol", "port", "endPort")

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_PORT_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


def validate_network_policy(doc: Any) -> list[Problem]:
    """Every problem of a raw NetworkPolicy manifest as ``(field path, message)``; ``[]`` if valid.

    >>> validate_network_policy({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
    ...     "metadata": {"name": "p"}, "spec": {}})
    [('metadata.namespace', 'required: a raw NetworkPolicy must name its namespace')]
    """
    if not isinstance(doc, Mapping):
        return [("", f"a NetworkPolicy must be a mapping, got {_kind(doc)}")]
    problems: list[Problem] = []
    _unknown(doc, _TOP_KEYS, "", problems)
    if doc.get("apiVersion") != API_VERSION:
        problems.append(("apiVersion", f"{doc.get('apiVersion')!r} is not {API_VERSION!r}"))
    if doc.get("kind") != KIND:
        problems.append(("kind", f"{doc.get('kind')!r} is not {KIND!r}"))
    _metadata(doc.get("metadata"), problems)
    spec = doc.get("spec")
    if spec is None:
        problems.append(("spec", "required: a NetworkPolicy needs a spec (at least podSelector: {})"))
    elif _mapping(spec, "spec", problems):
        _spec(spec, problems)
    return problems


# --------------------------------------------------------------------------- sections


def _metadata(meta: Any, problems: list[Problem]) -> None:
    if meta is None:
        problems.append(("metadata", "required: a NetworkPolicy needs metadata.name and metadata.namespace"))
        return
    if not _mapping(meta, "metadata", problems):
        return
    _unknown(meta, _META_KEYS, "metadata", problems)
    name = meta.get("name")
    if name is None:
        problems.append(("metadata.name", "required: every NetworkPolicy needs a name"))
    elif not isinstance(name, str) or len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        problems.append(("metadata.name", f"{name!r} is not a DNS subdomain (lower-case a-z, 0-9, '-', '.')"))
    namespace = meta.get("namespace")
    if namespace is None:
        problems.append(("metadata.namespace", "required: a raw NetworkPolicy must name its namespace"))
    elif not isinstance(namespace, str) or len(namespace) > 63 or not _DNS_LABEL.match(namespace):
        problems.append(("metadata.namespace", f"{namespace!r} is not a DNS label (lower-case a-z, 0-9, '-', max 63)"))
    for key in ("labels", "annotations"):
        value = meta.get(key)
        if value is not None and _mapping(value, f"metadata.{key}", problems):
            for k, v in value.items():
                if not isinstance(v, str):
                    problems.append((f"metadata.{key}.{k}", f"values must be strings, got {_kind(v)}"))


def _spec(spec: Mapping[str, Any], problems: list[Problem]) -> None:
    _unknown(spec, _SPEC_KEYS, "spec", problems)
    if "podSelector" in spec:
        _selector(spec["podSelector"], "spec.podSelector", problems)
    types = spec.get("policyTypes")
    if types is not None and _list(types, "spec.policyTypes", problems):
        for i, value in enumerate(types):
            if value not in POLICY_TYPES:
                problems.append((f"spec.policyTypes[{i}]", f"{value!r} is not one of {', '.join(POLICY_TYPES)}"))
        if len(types) > len(POLICY_TYPES):
            problems.append(("spec.policyTypes", "may not list more than Ingress and Egress"))
        elif len(set(map(str, types))) < len(types):
            problems.append(("spec.policyTypes", "lists a type twice"))
    for direction, peers_key, wrong in (("ingress", "from", "to"), ("egress", "to", "from")):
        rules = spec.get(direction)
        if rules is None or not _list(rules, f"spec.{direction}", problems):
            continue
        for i, rule in enumerate(rules):
            path = f"spec.{direction}[{i}]"
            if not _mapping(rule, path, problems):
                continue
            for key in rule:
                if key == wrong:
                    problems.append((f"{path}.{key}", f"{direction} rules take {peers_key!r}, not {wrong!r}"))
                elif key not in ("ports", peers_key):
                    problems.append((f"{path}.{key}", _unknown_message(key, ("ports", peers_key))))
            ports = rule.get("ports")
            if ports is not None and _list(ports, f"{path}.ports", problems):
                for j, port in enumerate(ports):
                    _port(port, f"{path}.ports[{j}]", problems)
            peers = rule.get(peers_key)
            if peers is not None and _list(peers, f"{path}.{peers_key}", problems):
                for j, peer in enumerate(peers):
                    _peer(peer, f"{path}.{peers_key}[{j}]", problems)


def _peer(peer: Any, path: str, problems: list[Problem]) -> None:
    if not _mapping(peer, path, problems):
        return
    _unknown(peer, _PEER_KEYS, path, problems)
    present = [k for k in _PEER_KEYS if peer.get(k) is not None]
    if not present:
        problems.append((path, "a peer needs podSelector, namespaceSelector (or both) or ipBlock"))
    elif "ipBlock" in present and len(present) > 1:
        problems.append((path, "ipBlock cannot be combined with podSelector/namespaceSelector in one peer"))
    for key in ("podSelector", "namespaceSelector"):
        if peer.get(key) is not None:
            _selector(peer[key], f"{path}.{key}", problems)
    if peer.get("ipBlock") is not None:
        _ip_block(peer["ipBlock"], f"{path}.ipBlock", problems)


def _ip_block(block: Any, path: str, problems: list[Problem]) -> None:
    if not _mapping(block, path, problems):
        return
    _unknown(block, _IPBLOCK_KEYS, path, problems)
    cidr = block.get("cidr")
    net = None
    if cidr is None or cidr == "":
        problems.append((f"{path}.cidr", "required: an ipBlock needs a cidr such as 203.0.113.0/24"))
    else:
        net = _network(cidr, f"{path}.cidr", problems)
    excepts = block.get("except")
    if excepts is None or not _list(excepts, f"{path}.except", problems):
        return
    for i, value in enumerate(excepts):
        sub = _network(value, f"{path}.except[{i}]", problems)
        if net is None or sub is None:
            continue
        if sub.version != net.version or not sub.subnet_of(net) or sub.prefixlen <= net.prefixlen:
            problems.append((f"{path}.except[{i}]", f"{value!r} is not a strict subset of cidr {cidr!r}"))


def _port(entry: Any, path: str, problems: list[Problem]) -> None:
    if not _mapping(entry, path, problems):
        return
    _unknown(entry, _PORT_KEYS, path, problems)
    protocol = entry.get("protocol")
    if protocol is not None and protocol not in PROTOCOLS:
        problems.append((f"{path}.protocol", f"{protocol!r} is not one of {', '.join(PROTOCOLS)}"))
    port = entry.get("port")
    end = entry.get("endPort")
    numeric = isinstance(port, int) and not isinstance(port, bool)
    if port is None:
        pass
    elif numeric:
        if not 1 <= port <= 65535:
            problems.append((f"{path}.port", f"{port} is not a port number (1-65535)"))
    elif isinstance(port, str):
        if port.isdigit():
            problems.append((f"{path}.port", f"{port!r} is a string: write {port} unquoted for a port number"))
        elif len(port) > 15 or not _PORT_NAME.match(port) or "--" in port or not re.search("[a-z]", port):
            problems.append(
                (f"{path}.port", f"{port!r} is not a port name (1-15 lower-case a-z, 0-9, '-', one letter)")
            )
    else:
        problems.append((f"{path}.port", f"must be a port number or a port name, got {_kind(port)}"))
    if end is None:
        return
    if not isinstance(end, int) or isinstance(end, bool):
        problems.append((f"{path}.endPort", f"must be a port number, got {_kind(end)}"))
    elif port is None:
        problems.append((f"{path}.endPort", "requires a numeric port: endPort ends the range port..endPort"))
    elif not numeric:
        problems.append((f"{path}.endPort", f"requires a numeric port, not the named port {port!r}"))
    elif end < port:
        problems.append((f"{path}.endPort", f"{end} is below port {port}: endPort must be >= port"))
    elif end > 65535:
        problems.append((f"{path}.endPort", f"{end} is not a port number (1-65535)"))


def _selector(selector: Any, path: str, problems: list[Problem]) -> None:
    if selector is None:
        return
    if not _mapping(selector, path, problems):
        return
    _unknown(selector, _SELECTOR_KEYS, path, problems)
    labels = selector.get("matchLabels")
    if labels is not None and _mapping(labels, f"{path}.matchLabels", problems):
        for key, value in labels.items():
            _label_key(key, f"{path}.matchLabels", problems)
            _label_value(value, f"{path}.matchLabels.{key}", problems)
    exprs = selector.get("matchExpressions")
    if exprs is None or not _list(exprs, f"{path}.matchExpressions", problems):
        return
    for i, expr in enumerate(exprs):
        epath = f"{path}.matchExpressions[{i}]"
        if not _mapping(expr, epath, problems):
            continue
        _unknown(expr, _EXPRESSION_KEYS, epath, problems)
        if expr.get("key") is None:
            problems.append((f"{epath}.key", "required: the label key the expression tests"))
        else:
            _label_key(expr["key"], epath + ".key", problems, is_field=True)
        op = expr.get("operator")
        values = expr.get("values")
        if op not in OPERATORS:
            problems.append((f"{epath}.operator", f"{op!r} is not one of {', '.join(OPERATORS)}"))
        elif op in ("In", "NotIn") and not values:
            problems.append((f"{epath}.values", f"required: {op} needs at least one value"))
        elif op in ("Exists", "DoesNotExist") and values:
            problems.append((f"{epath}.values", f"must be empty: {op} tests only the key"))
        if values and _list(values, f"{epath}.values", problems):
            for j, value in enumerate(values):
                _label_value(value, f"{epath}.values[{j}]", problems)


# --------------------------------------------------------------------------- helpers


def _label_key(key: Any, path: str, problems: list[Problem], is_field: bool = False) -> None:
    where = path if is_field else f"{path}.{key}"
    if not isinstance(key, str):
        problems.append((where, f"a label key must be a string, got {_kind(key)}"))
        return
    prefix, slash, name = key.rpartition("/")
    if (
        (slash and not prefix)
        or (prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)))
        or (len(name) > 63 or not _LABEL_NAME.match(name))
    ):
        problems.append((where, f"{key!r} is not a label key ([prefix/]name, name: a-z0-9-_. max 63)"))


def _label_value(value: Any, path: str, problems: list[Problem]) -> None:
    if not isinstance(value, str):
        problems.append((path, f"label values are strings, got {_kind(value)} (quote it)"))
    elif value and (len(value) > 63 or not _LABEL_NAME.match(value)):
        problems.append((path, f"{value!r} is not a label value (a-z0-9-_. max 63, alphanumeric ends)"))


def _network(value: Any, path: str, problems: list[Problem]) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    if not isinstance(value, str) or "/" not in value:
        problems.append((path, f"{value!r} is not a CIDR (address/prefix, e.g. 203.0.113.0/24)"))
        return None
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        problems.append((path, f"{value!r} is not a CIDR (address/prefix, e.g. 203.0.113.0/24)"))
        return None


def _unknown(doc: Mapping[str, Any], allowed: tuple[str, ...], path: str, problems: list[Problem]) -> None:
    for key in doc:
        if key not in allowed:
            problems.append((f"{path}.{key}" if path else str(key), _unknown_message(key, allowed)))


def _unknown_message(key: Any, allowed: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
    if close:
        return f"unknown field, did you mean {close[0]!r}?"
    return f"unknown field (allowed: {', '.join(allowed)})"


def _mapping(value: Any, path: str, problems: list[Problem]) -> bool:
    if isinstance(value, Mapping):
        return True
    problems.append((path, f"must be a mapping, got {_kind(value)}"))
    return False


def _list(value: Any, path: str, problems: list[Problem]) -> bool:
    if isinstance(value, list | tuple):
        return True
    problems.append((path, f"must be a list, got {_kind(value)}"))
    return False


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "a number"}.get(
        type(value), type(value).__name__
    )
