"""``cluster.kubesphere``: KubeSphere's cluster-wide settings that change the isolation policy.

KubeSphere's nsnetworkpolicy controller (kubesphere/kubesphere release-3.4,
pkg/controller/network/nsnetworkpolicy/nsnetworkpolicy_controller.go) builds every
``nsnp-network-isolate`` from two settings outside any project:

* ``generateNSNP`` adds one ``namespaceSelector {kubesphere.io/namespace: <ns>}`` peer per entry of
  the network options' ``nsnpOptions.allowedIngressNamespaces`` (pkg/simple/client/network/options.go,
  the kubesphere-config ConfigMap) - the way to admit a gateway or monitoring namespace everywhere;
* ``generateNodeRule`` adds one ingress rule of ipBlocks built from every Node's
  ``kubesphere.io/snat-node-ips`` annotation (``;``-separated addresses; an address that does not
  parse is skipped, so a CIDR here admits nothing) - the answer to "which node addresses must I
  allow" for traffic a NodePort/LoadBalancer masquerades.

A scenario names them once::

    cluster:
      kubesphere:
        allowedIngressNamespaces: [kubesphere-controls-system]
        snatNodeIPs: [tunnel:worker, node:worker2, 198.18.0.12]

``snatNodeIPs`` takes ``node:NAME`` / ``tunnel:NAME`` (``*`` for every node) or a literal IP; the
annotation carries addresses, never CIDRs, so a CIDR is refused here rather than silently
ignored as upstream would.

>>> from netiso.model.fields import Cursor
>>> read_kubesphere(Cursor("f", 0, "t", "cluster.kubesphere"),
...                 {"snatNodeIPs": ["tunnel:worker"]}, ("control-plane", "worker"), "vxlan")
KubeSphereSettings(allowed_ingress_namespaces=(), snat_node_ips=('tunnel:worker',))
"""

from __future__ import annotations

import ipaddress
from typing import Any

from netiso.model import fields as f
from netiso.model.fields import Cursor
from netiso.model.symbols import SymbolSyntaxError, parse_symbol
from netiso.model.types import KubeSphereSettings

KEYS = ("allowedIngressNamespaces", "snatNodeIPs")


def read_kubesphere(cur: Cursor, value: Any, nodes: tuple[str, ...], encapsulation: str) -> KubeSphereSettings:
    """Validate ``cluster.kubesphere``; every fault names its field and the fix."""
    if value is None:
        return KubeSphereSettings()
    f.mapping(cur, value, KEYS)
    ncur = cur.at("allowedIngressNamespaces")
    namespaces = tuple(f.dns_name(ncur.at(i), v, "namespace name")
                       for i, v in enumerate(f.seq(ncur, value.get("allowedIngressNamespaces"))))
    scur = cur.at("snatNodeIPs")
    ips: list[str] = []
    for i, item in enumerate(f.seq(scur, value.get("snatNodeIPs"))):
        ips.append(_snat_entry(scur.at(i), item, nodes, encapsulation))
    for what, items, c in (("namespace", namespaces, ncur), ("address", tuple(ips), scur)):
        for i, item in enumerate(items):
            if item in items[:i]:
                c.at(i).fail(f"duplicate {what} '{item}'")
    return KubeSphereSettings(namespaces, tuple(ips))


def _snat_entry(cur: Cursor, item: Any, nodes: tuple[str, ...], encapsulation: str) -> str:
    text = f.string(cur, item)
    try:
        sym = parse_symbol(text)
    except SymbolSyntaxError as exc:
        cur.fail(str(exc))
    if sym.kind == "cidr":
        try:
            ipaddress.ip_address(text)
        except ValueError:
            cur.fail(f"'{text}' is not an IP address: kubesphere.io/snat-node-ips holds addresses (KubeSphere "
                     "skips anything else); write one address, node:NAME or tunnel:NAME")
        return text
    if sym.kind not in ("node", "tunnel"):
        cur.fail(f"'{text}': snatNodeIPs takes node:NAME, tunnel:NAME (or *) or an IP address, "
                 "the addresses a node masquerades to")
    if sym.name != "*" and sym.name not in nodes:
        cur.fail(f"unknown node '{sym.name}' (nodes: {', '.join(nodes)})")
    if sym.kind == "tunnel" and encapsulation == "direct":
        cur.fail(f"'{text}' names a tunnel address but cluster.encapsulation is direct (no tunnel device); "
                 "use node:NAME or switch to ipip/vxlan")
    return text
