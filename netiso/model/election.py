"""Which node announces a LoadBalancer VIP (MetalLB L2 / OpenELB layer2), and which VIP to ask for.

Both implementations pick, among the eligible nodes, the one whose
``sha256(node + "#" + ip)`` sorts first (MetalLB speaker/layer2_controller.go ShouldAnnounce;
OpenELB pkg/speaker/layer2 SetBalancer). Eligibility differs and is where behaviour lives:

* MetalLB: nodes running a speaker, minus nodes labelled
  ``node.kubernetes.io/exclude-from-external-load-balancers`` (the kubeadm control-plane of a
  multi-node cluster); with externalTrafficPolicy Local only nodes with a ready endpoint; with
  no ready endpoint at all nothing is announced (ShouldAnnounce: ``activeEndpointExists``,
  whatever the policy).
* OpenELB layer2 (v0.6.0): the speaker DaemonSet (hostNetwork) runs on every node and does not
  read the exclusion label (ASSUMPTION, to be measured on kind); Local keeps only endpoint nodes
  and announces nothing without one; **Cluster announces from every node whether or not the
  Service has an endpoint** (pkg/speaker/manager.go getServiceNodes reads the Endpoints only
  under Local), so a client of an endpoint-less Cluster Service reaches a node and meets
  kube-proxy's REJECT instead of silence.

Because the announcer depends on the VIP, a scenario whose ``expect`` was worked out for the
lab's plan (its node names, its pool) only means the same on a cluster if the cluster's VIP
elects the same node there: :func:`find_vip` searches a real pool for such an address.

>>> elect(["worker", "worker2"], "198.18.0.200")
'worker'
>>> find_vip(pool_addresses(["198.18.0.200-198.18.0.210"]), {"198.18.0.203"}, ["worker", "worker2"], "worker2")
'198.18.0.205'
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Collection, Iterable, Iterator, Sequence


def _key(node: str, ip: str) -> bytes:
    return hashlib.sha256(f"{node}#{ip}".encode()).digest()


def elect(candidates: Iterable[str], ip: str) -> str | None:
    """The announcing node among ``candidates`` for VIP ``ip`` (None when there is none)."""
    ordered = sorted(candidates, key=lambda n: _key(n, ip))
    return ordered[0] if ordered else None


def candidates(impl: str, nodes: Iterable[tuple[str, bool]], etp: str, endpoint_nodes: Iterable[str]) -> list[str]:
    """Nodes eligible to announce. ``nodes`` are (name, lb_excluded) pairs in cluster order.

    ``endpoint_nodes``: nodes with an endpoint the implementation counts (MetalLB: ready or
    serving; OpenELB: in the Endpoints' addresses; ``netiso.model.endpoint_states``).

    >>> nodes = [("control-plane", True), ("worker", False)]
    >>> candidates("metallb", nodes, "Cluster", []), candidates("openelb", nodes, "Cluster", [])
    ([], ['control-plane', 'worker'])
    >>> candidates("openelb", nodes, "Local", [])
    []
    """
    with_endpoint = set(endpoint_nodes)
    if impl == "metallb":
        if not with_endpoint:
            return []  # MetalLB withdraws a VIP without a ready endpoint, under either policy
        eligible = [n for n, excluded in nodes if not excluded]
    elif impl == "openelb":
        if etp == "Local" and not with_endpoint:
            return []  # getServiceNodes: Local and no endpoint node -> no next hop, nothing announced
        eligible = [n for n, _ in nodes]
    else:
        return []
    if etp == "Local":
        eligible = [n for n in eligible if n in with_endpoint]
    return eligible


def pool_addresses(ranges: Iterable[str], *, avoid_buggy: bool = False) -> Iterator[str]:
    """Every address of a pool written as MetalLB/OpenELB write them: ``FIRST-LAST``, a CIDR or one IP.

    ``avoid_buggy`` skips addresses ending in .0 and .255 (MetalLB's ``avoidBuggyIPs``). IPv6
    ranges are skipped: netiso's topologies are IPv4.

    >>> list(pool_addresses(["172.18.255.254-172.18.255.255", "10.0.0.8/31", "10.0.1.1"]))
    ['172.18.255.254', '172.18.255.255', '10.0.0.8', '10.0.0.9', '10.0.1.1']
    """
    for text in ranges:
        text = str(text).strip()
        if "-" in text:
            first, last = (ipaddress.ip_address(x.strip()) for x in text.split("-", 1))
            addrs: Iterable[ipaddress.IPv4Address | ipaddress.IPv6Address] = (
                ipaddress.ip_address(i) for i in range(int(first), int(last) + 1))
            if first.version != 4:
                continue
        else:
            net = ipaddress.ip_network(text, strict=False)
            if net.version != 4:
                continue
            addrs = iter(net)
        for addr in addrs:
            if avoid_buggy and str(addr).endswith((".0", ".255")):
                continue
            yield str(addr)


def find_vip(addresses: Iterable[str], taken: Collection[str], eligible: Sequence[str], wanted: str | None) -> str | None:
    """The first free address that the ``eligible`` nodes elect ``wanted`` for; None when none does.

    ``wanted`` None asks for a VIP nobody announces: only possible when nobody is eligible (then
    the first free address). A ``wanted`` node that is not eligible is never elected.

    >>> find_vip(["10.0.0.1", "10.0.0.2"], (), [], None)
    '10.0.0.1'
    >>> find_vip(["10.0.0.1", "10.0.0.2"], (), ["a", "b"], "c") is None
    True
    """
    if wanted is None and eligible:
        return None
    if wanted is not None and wanted not in eligible:
        return None
    for addr in addresses:
        if addr in taken:
            continue
        if elect(eligible, addr) == wanted:
            return addr
    return None
