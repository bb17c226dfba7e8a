"""Address symbols and flow endpoints of the scenario contract, parsed into small records.

Symbols name addresses independently of any backend (``client:alice``, ``node:worker``,
``tunnel:worker2``, ``pod:demo/web@worker``, ``ingress-controller:demo/web``); flow endpoints
name where traffic starts and where it goes (``nodeport:demo/web@worker2``,
``loadbalancer:demo/web``, ``ingress:demo/web``). Parsing here is purely syntactic; whether the
names exist is checked by the loader against the scenario.

>>> parse_symbol("pod:demo/web@worker")
Symbol(kind='pod', project='demo', name='web', node='worker')
>>> parse_endpoint("nodeport:demo/web@worker2")
Symbol(kind='nodeport', project='demo', name='web', node='worker2')
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")

SYMBOL_KINDS = ("client", "node", "tunnel", "pod", "ingress-controller")
FROM_KINDS = ("client", "pod", "node")
TO_KINDS = ("pod", "clusterip", "nodeport", "loadbalancer", "externalip", "healthcheck", "hostport", "ingress",
            "client", "node")


@dataclass(frozen=True)
class Symbol:
    kind: str  # client|node|tunnel|pod|ingress-controller|clusterip|nodeport|loadbalancer|ingress|cidr
    project: str | None = None
    name: str | None = None  # client/node name, workload/service/ingress name, or the literal CIDR
    node: str | None = None  # @NODE, or None

    def __str__(self) -> str:
        if self.kind == "cidr":
            return str(self.name)
        ref = f"{self.project}/{self.name}" if self.project is not None else str(self.name)
        text = f"{self.kind}:{ref}"
        return f"{text}@{self.node}" if self.node else text


class SymbolSyntaxError(ValueError):
    """The text is not a well-formed symbol; the message says what forms are allowed."""


def _split_ref(kind: str, rest: str, *, node_allowed: bool, node_required: bool = False) -> Symbol:
    node = None
    if "@" in rest:
        if not node_allowed:
            raise SymbolSyntaxError(f"'{kind}:' takes no @NODE")
        rest, node = rest.split("@", 1)
        if not NAME_RE.match(node):
            raise SymbolSyntaxError(f"'{node}' is not a node name")
    elif node_required:
        raise SymbolSyntaxError(f"'{kind}:' needs @NODE, e.g. {kind}:PROJECT/SERVICE@worker")
    if rest.count("/") != 1:
        raise SymbolSyntaxError(f"'{kind}:' needs PROJECT/NAME, got '{rest}'")
    project, name = rest.split("/")
    if not NAME_RE.match(project) or not NAME_RE.match(name):
        raise SymbolSyntaxError(f"'{rest}' is not PROJECT/NAME (lower-case DNS names)")
    return Symbol(kind, project, name, node)


def parse_symbol(text: str) -> Symbol:
    """Parse an address symbol (or a literal IP/CIDR, kind ``cidr``)."""
    if not isinstance(text, str) or not text:
        raise SymbolSyntaxError("expected a symbol such as client:NAME, node:NAME, pod:PROJECT/WORKLOAD")
    if ":" not in text or (text.count(".") == 3 and "/" in text) or _is_ip(text):
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise SymbolSyntaxError(
                f"'{text}' is neither a symbol (client:, node:, tunnel:, pod:, ingress-controller:) "
                "nor a literal IP/CIDR"
            ) from None
        return Symbol("cidr", name=str(net) if "/" in text else text)
    kind, rest = text.split(":", 1)
    if kind in ("client", "node", "tunnel"):
        if rest != "*" and not NAME_RE.match(rest):
            raise SymbolSyntaxError(f"'{rest}' is not a {kind} name (or '*' for any)")
        if kind == "client" and rest == "*":
            raise SymbolSyntaxError("'client:*' is not a symbol: name the client")
        return Symbol(kind, name=rest)
    if kind == "pod":
        return _split_ref(kind, rest, node_allowed=True)
    if kind == "ingress-controller":
        return _split_ref(kind, rest, node_allowed=False)
    raise SymbolSyntaxError(
        f"unknown symbol kind '{kind}:' (allowed: {', '.join(k + ':' for k in SYMBOL_KINDS)} or a literal IP/CIDR)"
    )


def parse_endpoint(text: str) -> Symbol:
    """Parse a flow endpoint (``from:`` or ``to:``)."""
    if not isinstance(text, str) or ":" not in text:
        raise SymbolSyntaxError(
            f"'{text}' is not a flow endpoint (e.g. client:NAME, pod:PROJECT/WORKLOAD[@NODE], "
            "nodeport:PROJECT/SERVICE@NODE)"
        )
    kind, rest = text.split(":", 1)
    if kind in ("client", "node"):
        if not NAME_RE.match(rest):
            raise SymbolSyntaxError(f"'{rest}' is not a {kind} name")
        return Symbol(kind, name=rest)
    if kind == "pod":
        return _split_ref(kind, rest, node_allowed=True)
    if kind in ("clusterip", "loadbalancer"):
        return _split_ref(kind, rest, node_allowed=False)
    # healthcheck: NODE's kube-proxy health server for the Service; hostport: a workload's hostPort on NODE
    if kind in ("nodeport", "healthcheck", "hostport"):
        return _split_ref(kind, rest, node_allowed=True, node_required=True)
    if kind in ("ingress", "externalip"):  # externalip: @NODE is where the outside network routes it
        return _split_ref(kind, rest, node_allowed=True)
    raise SymbolSyntaxError(
        f"unknown endpoint kind '{kind}:' (allowed: client:, pod:, node:, clusterip:, nodeport:, "
        "loadbalancer:, externalip:, healthcheck:, hostport:, ingress:)"
    )


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
