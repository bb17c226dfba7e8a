"""Which node announces a LoadBalancer VIP (MetalLB L2 / OpenELB layer2).

Both implementations pick, among the eligible nodes, the one whose
``sha256(node + "#" + ip)`` sorts first (MetalLB speaker/layer2_controller.go ShouldAnnounce;
OpenELB pkg/speaker/layer2 SetBalancer). Eligibility differs and is where behaviour lives:

* MetalLB: nodes running a speaker, minus nodes labelled
  ``node.kubernetes.io/exclude-from-external-load-balancers`` (the kubeadm control-plane of a
  multi-node cluster); with externalTrafficPolicy Local only nodes with a ready endpoint; with
  no endpoint at all nothing is announced.
* OpenELB layer2: the speaker DaemonSet (hostNetwork) runs on every node and does not read the
  exclusion label (ASSUMPTION, to be measured on kind); Local keeps only endpoint nodes.

>>> elect(["worker", "worker2"], "198.18.0.200")
'worker'
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def _key(node: str, ip: str) -> bytes:
    return hashlib.sha256(f"{node}#{ip}".encode()).digest()


def elect(candidates: Iterable[str], ip: str) -> str | None:
    """The announcing node among ``candidates`` for VIP ``ip`` (None when there is none)."""
    ordered = sorted(candidates, key=lambda n: _key(n, ip))
    return ordered[0] if ordered else None


def candidates(impl: str, nodes: Iterable[tuple[str, bool]], etp: str, endpoint_nodes: Iterable[str]) -> list[str]:
    """Nodes eligible to announce. ``nodes`` are (name, lb_excluded) pairs in cluster order."""
    with_endpoint = set(endpoint_nodes)
    if not with_endpoint:
        return []  # MetalLB and OpenELB withdraw a VIP that has no ready endpoint
    if impl == "metallb":
        eligible = [n for n, excluded in nodes if not excluded]
    elif impl == "openelb":
        eligible = [n for n, _ in nodes]
    else:
        return []
    if etp == "Local":
        eligible = [n for n in eligible if n in with_endpoint]
    return eligible
