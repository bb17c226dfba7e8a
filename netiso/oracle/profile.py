"""Behaviour profiles: which implementation's rules the oracle applies.

Only one profile exists today. Upstream Kubernetes says SNAT under externalTrafficPolicy
Cluster is *allowed*, not required (kubernetes PR #125222), so a prediction is always keyed by
the profile that made it rather than claimed as universal.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    # MASQUERADE out of a device without IPv4 (a cali* veth, same-node delivery) picks the first
    # global address of the node (inet_select_addr); ifindex order decides between node IP and
    # tunnel IP, so unless pinned the oracle accepts either.
    local_masquerade_sources: tuple[str, ...] = ("node", "tunnel")
    # Calico natOutgoingExclusions: IPPoolsOnly (default) masquerades pod -> node IPs too.
    nat_outgoing_excludes_hosts: bool = False
    # ingress-nginx proxy timeouts used by the lab controller (504 -> dropped, 502 -> refused)
    ingress_upstream_timeout_s: float = 1.0


KUBE_PROXY_IPTABLES_CALICO = Profile("kube-proxy-iptables/calico-iptables")
PROFILES = {KUBE_PROXY_IPTABLES_CALICO.name: KUBE_PROXY_IPTABLES_CALICO}
DEFAULT_PROFILE = KUBE_PROXY_IPTABLES_CALICO
