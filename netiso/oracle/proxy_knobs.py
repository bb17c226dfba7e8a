"""kube-proxy's knobs the path engine consults: traffic policies, source ranges, node-port addresses.

Kept beside :mod:`netiso.oracle.paths` (which walks the packet) so that each knob reads as the
one decision ``pkg/proxy/iptables/proxier.go`` (syncProxyRules) takes for it:

* ``internalTrafficPolicy: Local``: the cluster IP jumps to KUBE-SVL (this node's endpoints);
  with none here, filter KUBE-SERVICES DROPs it ("has no local endpoints"), even when other
  nodes have endpoints (``hasInternalEndpoints`` false).
* ``loadBalancerSourceRanges``: the LB IP jumps to KUBE-FW, which sends sources in a range
  (and the VIP itself when the node IP is in a range, ``allowFromNode``) on to KUBE-EXT;
  the rest falls through un-DNATed and filter KUBE-PROXY-FIREWALL DROPs it. Node ports are
  not subject to source ranges (upstream: "for better or for worse").
* ``masqueradeAll`` / ``detectLocalMode``: the cluster-IP masquerade rule is unconditional,
  ``! -s <pod CIDR>`` (the ClusterCIDR detector), or absent (no detector); without a
  detector, KUBE-EXT of an ETP Local service has no "pod traffic" short-circuit either.
* ``nodePortAddresses``: KUBE-SERVICES jumps to KUBE-NODEPORTS only for node addresses in
  these CIDRs; the filter rules for node ports keep ``--dst-type LOCAL`` (any address).
* ``sessionAffinity: ClientIP``: KUBE-SVC/KUBE-SVL first send a source an endpoint's
  ``-m recent --set`` has seen within ``timeoutSeconds`` back to that endpoint (``--rcheck
  --seconds T --reap``), before the random ladder; the first connection is balanced as usual.
  The lists live in each node's kernel and key on the source IP as that node sees it (before
  any SNAT), so repeated connections from one source through one node stick.
* ``healthCheckNodePort`` (ETP Local LoadBalancer): KUBE-NODEPORTS ACCEPTs it and kube-proxy's
  health server answers on every node (pkg/proxy/healthcheck/service_health.go): 200 with the
  number of the Service's *ready* endpoints on that node (EndpointsMap.LocalReadyEndpoints),
  503 with 0 — so a node whose only local endpoint is terminating answers 503 while its
  KUBE-SVL still sends external traffic there.
* endpoint states (``pkg/proxy/topology.go`` CategorizeEndpoints, read at
  aroradaman/kubernetes@4177b600): cluster endpoints are the ready ones, or, when the Service
  has none ready anywhere, the serving-and-terminating ones; a node's local endpoints are its
  ready ones, else its serving-and-terminating ones; a Service with neither anywhere has no
  endpoints (REJECT). The conditions come from ``netiso.model.endpoint_states``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from netiso.model.types import KubeProxySpec, NodeInfo, PodInfo, ServiceInfo, ServicePortInfo, Topology


def in_ranges(ip: str, cidrs: Iterable[str]) -> bool:
    """Whether ``ip`` lies in one of ``cidrs`` (loadBalancerSourceRanges, nodePortAddresses).

    >>> in_ranges("203.0.113.5", ["203.0.113.0/25"]), in_ranges("203.0.113.200", ["203.0.113.0/25"])
    (True, False)
    """
    addr = ipaddress.ip_address(ip)
    return any(addr in ipaddress.ip_network(c, strict=False) for c in cidrs)


def firewall_admits(svc: ServiceInfo, node: NodeInfo, src: str) -> bool:
    """KUBE-FW's answer for ``src`` reaching ``svc``'s LB IP on ``node`` (True without source ranges)."""
    if not svc.source_ranges:
        return True
    if in_ranges(src, svc.source_ranges):
        return True
    return src == svc.lb_ip and in_ranges(node.ip, svc.source_ranges)  # allowFromNode


def accepts_node_ports(proxy: KubeProxySpec, ip: str) -> bool:
    """Whether KUBE-SERVICES sends traffic to ``ip`` on to KUBE-NODEPORTS."""
    return not proxy.nodePortAddresses or in_ranges(ip, proxy.nodePortAddresses)


@dataclass(frozen=True)
class Categories:
    """CategorizeEndpoints' answer for one service port on one node."""

    cluster: tuple[PodInfo, ...]  # ready endpoints, else serving+terminating ones (Cluster policy)
    local: tuple[PodInfo, ...]  # this node's ready endpoints, else its serving+terminating ones
    terminating_fallback: bool  # cluster endpoints are terminating ones (no ready endpoint anywhere)
    local_fallback: bool  # local endpoints are terminating ones (no ready endpoint on this node)

    @property
    def has_any(self) -> bool:
        """hasAnyEndpoints: something usable anywhere (otherwise REJECT)."""
        return bool(self.cluster)


def categorize(svc: ServiceInfo, sp: ServicePortInfo, node: str) -> Categories:
    """kube-proxy's endpoint categories of ``svc``'s port ``sp`` on ``node`` (topology hints aside)."""
    eps = svc.endpoints_for(sp)
    cond = {p.ip: svc.conditions(p) for p in eps}
    ready = tuple(p for p in eps if cond[p.ip].ready)
    fallback = tuple(p for p in eps if cond[p.ip].serving and cond[p.ip].terminating)
    cluster = ready or fallback
    local_ready = tuple(p for p in ready if p.node == node)
    local_fallback = tuple(p for p in fallback if p.node == node)
    return Categories(cluster, local_ready or local_fallback, not ready and bool(fallback),
                      not local_ready and bool(local_fallback))


def internal_endpoints(svc: ServiceInfo, sp: ServicePortInfo, node: str) -> tuple[PodInfo, ...]:
    """The endpoints the cluster IP reaches from ``node``: the cluster ones, or this node's (ITP Local)."""
    cats = categorize(svc, sp, node)
    return cats.local if svc.itp == "Local" else cats.cluster


def external_filter(svc: ServiceInfo, sp: ServicePortInfo, node: str, name: str) -> tuple[str, str] | None:
    """KUBE-EXTERNAL-SERVICES' verdict for external traffic nothing DNATed (None: no rule)."""
    cats = categorize(svc, sp, node)
    if not cats.has_any:
        return "refused", f"KUBE-EXTERNAL-SERVICES: \"{name} has no endpoints\" → REJECT → refused"
    if svc.etp == "Local" and not cats.local:
        return "dropped", f"KUBE-EXTERNAL-SERVICES: \"{name} has no local endpoints\" → DROP → dropped"
    return None


FIREWALL_CHAIN = "KUBE-PROXY-FIREWALL"


def firewall_drop(name: str) -> tuple[str, str]:
    return "dropped", f"{FIREWALL_CHAIN}: \"{name} traffic not accepted by KUBE-FW\" → DROP → dropped"


AFFINITY_RULE = "sessionAffinity ClientIP"
# Repeated probes of a flow (``repeat:``) are fired within seconds; a shorter stickiness timeout
# may or may not have expired between two of them, so the oracle claims stickiness only from this.
MIN_STICKY_TIMEOUT_S = 10


def affinity_rule(svc: ServiceInfo) -> str | None:
    """The DNAT step's rule when ``svc`` pins a client to its endpoint (None: no affinity to judge)."""
    if svc.affinity_timeout is None or svc.affinity_timeout < MIN_STICKY_TIMEOUT_S:
        return None
    return f"{AFFINITY_RULE} ({svc.affinity_timeout}s)"


def health_check(topo: Topology, node: NodeInfo, port: int, proto: str) -> tuple[ServiceInfo, int] | None:
    """The Service whose health check node port ``port`` is, and its local endpoint count on ``node``."""
    if proto != "TCP":
        return None
    for svc in topo.services.values():
        if svc.type == "LoadBalancer" and svc.etp == "Local" and svc.health_check_node_port == port:
            return svc, len({p.ip for p in svc.endpoints if p.node == node.name and svc.conditions(p).ready})
    return None
