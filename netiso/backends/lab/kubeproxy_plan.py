"""What kube-proxy decides for each service port on one lab node, before any rule is written.

Mirrors kubernetes/kubernetes ``pkg/proxy/iptables/proxier.go`` (the per-service-port chain
names: ``servicePortChainName`` and friends, one hash of ``ns/name:port`` + protocol, the
endpoint chain's hash with ``ip:port`` added) and ``pkg/proxy/topology.go``
``CategorizeEndpoints`` (no topology hints): the cluster endpoints are the ready ones and,
only when none is ready anywhere, the serving terminating ones; a node's local endpoints are
the same choice over its own pods. Headless Services are not proxied; the cluster DNS
Service is, as on a real node.

Kept apart from the rule writer (:mod:`netiso.backends.lab.kubeproxy`) because the evidence
and reports read the same plan (:func:`describe_chains`, :func:`node_plans`) without rules.

Upstream iterates Services in Go map order; here service ports are sorted by name so that the
document is stable. Endpoints are sorted by ``ip:port`` string as kube-proxy's endpoint cache
sorts them, so the probability ladder the writer builds is the one a real node shows.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field

from netiso.model.types import PodInfo, ServiceInfo, ServicePortInfo, Topology


@dataclass(frozen=True)
class ServiceChains:
    """The per-service-port chain names (all share one hash; only the prefix differs)."""

    svc: str  # KUBE-SVC: cluster-wide endpoints
    svl: str  # KUBE-SVL: this node's endpoints (traffic policy Local)
    ext: str  # KUBE-EXT: entry for node ports and LB IPs
    fw: str  # KUBE-FW: loadBalancerSourceRanges


@dataclass(frozen=True)
class PortPlan:
    """What kube-proxy on ``node`` decides for one service port; rules and reports both use it."""

    service: ServiceInfo
    port: ServicePortInfo
    name: str  # "ns/svc:port" or "ns/svc"
    protocol: str  # lower case, as in the rules
    chains: ServiceChains
    endpoints: tuple[PodInfo, ...]  # cluster endpoints (ready, else serving terminating), sorted as kube-proxy sorts
    local_endpoints: tuple[PodInfo, ...]  # this node's ready endpoints, else its serving terminating ones
    node_port: int | None
    lb_ip: str | None
    external_local: bool  # externally reachable and externalTrafficPolicy Local
    health_check_node_port: int | None = None
    endpoint_chains: dict[str, str] = field(default_factory=dict)  # endpoint ip -> KUBE-SEP
    internal_local: bool = False  # internalTrafficPolicy Local
    source_ranges: tuple[str, ...] = ()  # loadBalancerSourceRanges (LoadBalancer only)
    affinity_timeout: int | None = None  # sessionAffinity ClientIP: StickyMaxAgeSeconds (None: no affinity)
    external_ips: tuple[str, ...] = ()  # spec.externalIPs

    @property
    def has_endpoints(self) -> bool:
        return bool(self.endpoints)

    @property
    def has_internal_endpoints(self) -> bool:
        """False when the cluster IP must be REJECTed (no endpoints) or DROPped (ITP Local, none here)."""
        return self.has_endpoints and (not self.internal_local or bool(self.local_endpoints))

    @property
    def uses_cluster_chain(self) -> bool:
        """KUBE-SVC exists: ITP Cluster, or external traffic (its short-circuits need it, UsesClusterEndpoints)."""
        return self.has_endpoints and (not self.internal_local or self.externally_accessible)

    @property
    def uses_local_chain(self) -> bool:
        """KUBE-SVL exists: local endpoints and a Local policy in use (UsesLocalEndpoints)."""
        return bool(self.local_endpoints) and (self.internal_local or self.external_local)

    @property
    def reachable(self) -> tuple[PodInfo, ...]:
        """allLocallyReachableEndpoints: the KUBE-SEP chains this node needs (cluster and local merged
        when the local ones are a terminating fallback the cluster list lacks)."""
        picked = (self.endpoints if self.uses_cluster_chain else ()) + (
            self.local_endpoints if self.uses_local_chain else ())
        return tuple(sorted({p.ip: p for p in picked}.values(), key=self.endpoint))

    @property
    def uses_firewall(self) -> bool:
        return self.has_endpoints and self.lb_ip is not None and bool(self.source_ranges)

    @property
    def externally_accessible(self) -> bool:
        """ExternallyAccessible: a NodePort, a load-balancer IP or an external IP."""
        return self.node_port is not None or self.lb_ip is not None or bool(self.external_ips)

    @property
    def has_external_endpoints(self) -> bool:
        """False when external traffic must be REJECTed (none at all) or DROPped (none local)."""
        return self.has_endpoints and (not self.external_local or bool(self.local_endpoints))

    def endpoint(self, pod: PodInfo) -> str:
        """``ip:targetPort`` of one endpoint: the DNAT destination (a named targetPort resolved on ``pod``)."""
        return f"{pod.ip}:{self.port.target_for(pod)}"


def port_name_string(service: ServiceInfo, port: ServicePortInfo) -> str:
    """kube-proxy's ServicePortName string: ``ns/name:port``, or ``ns/name`` for an unnamed port.

    >>> from netiso.model.types import Port
    >>> svc = ServiceInfo("demo", "web", "ClusterIP", "Cluster", {}, (), "198.19.0.10", ())
    >>> port_name_string(svc, ServicePortInfo(Port(80), None))
    'demo/web'
    >>> port_name_string(svc, ServicePortInfo(Port(80, name="http"), None))
    'demo/web:http'
    """
    base = f"{service.project}/{service.name}"
    return f"{base}:{port.port.name}" if port.port.name else base


def port_proto_hash(name: str, protocol: str, endpoint: str = "") -> str:
    """First 16 chars of base32(sha256(name + protocol [+ endpoint])), kube-proxy's chain hash.

    >>> port_proto_hash("default/kubernetes:https", "tcp")
    'NPX46M4PTMTKRN6Y'
    """
    digest = hashlib.sha256(f"{name}{protocol}{endpoint}".encode()).digest()
    return base64.b32encode(digest).decode()[:16]


def service_chains(service: ServiceInfo, port: ServicePortInfo) -> ServiceChains:
    h = port_proto_hash(port_name_string(service, port), port.port.protocol.lower())
    return ServiceChains(svc=f"KUBE-SVC-{h}", svl=f"KUBE-SVL-{h}", ext=f"KUBE-EXT-{h}", fw=f"KUBE-FW-{h}")


def endpoint_chain(service: ServiceInfo, port: ServicePortInfo, endpoint_ip: str, target: int | None = None) -> str:
    """``KUBE-SEP-`` chain of one endpoint (hash input includes ``ip:targetPort``; ``target``: the
    endpoint's resolved port, needed when the targetPort is a name)."""
    name, proto = port_name_string(service, port), port.port.protocol.lower()
    port_number = port.target_port if target is None else target
    return "KUBE-SEP-" + port_proto_hash(name, proto, f"{endpoint_ip}:{port_number}")


def categorize_endpoints(service: ServiceInfo, slice_eps: tuple[PodInfo, ...],
                         node: str) -> tuple[tuple[PodInfo, ...], tuple[PodInfo, ...]]:
    """(cluster, local) endpoints from the EndpointSlice's conditions, as pkg/proxy/topology.go
    CategorizeEndpoints picks them (no topology hints): the ready endpoints, and only when there
    is none the ready-to-serve terminating ones; per node the same choice over its own."""
    ready: list[PodInfo] = []
    serving_terminating: list[PodInfo] = []
    for pod in slice_eps:
        c = service.conditions(pod)
        if c.ready:
            ready.append(pod)
        elif c.serving and c.terminating:
            serving_terminating.append(pod)
    cluster = ready if ready else serving_terminating
    local = [p for p in ready if p.node == node] or [p for p in serving_terminating if p.node == node]
    return tuple(cluster), tuple(local)


def plan_port(service: ServiceInfo, port: ServicePortInfo, node: str) -> PortPlan:
    """Classify one service port for ``node`` the way proxier.go's CategorizeEndpoints does."""
    # one endpoint per address; a pod that lacks a named targetPort is no endpoint of this port
    by_ip = {p.ip: p for p in service.endpoints_for(port)}
    slice_eps = tuple(sorted(by_ip.values(), key=lambda p: f"{p.ip}:{port.target_for(p)}"))
    eps, local = categorize_endpoints(service, slice_eps, node)
    external_types = ("NodePort", "LoadBalancer")
    node_port = port.node_port if service.type in external_types else None
    lb_ip = service.lb_ip if service.type == "LoadBalancer" else None
    accessible = node_port is not None or lb_ip is not None or bool(service.external_ips)
    return PortPlan(
        service=service,
        port=port,
        name=port_name_string(service, port),
        protocol=port.port.protocol.lower(),
        chains=service_chains(service, port),
        endpoints=eps,
        local_endpoints=local,
        node_port=node_port,
        lb_ip=lb_ip,
        external_local=accessible and service.etp == "Local",
        health_check_node_port=service.health_check_node_port if service.type == "LoadBalancer" else None,
        endpoint_chains={p.ip: endpoint_chain(service, port, p.ip, port.target_for(p)) for p in slice_eps},
        internal_local=service.itp == "Local",
        source_ranges=service.source_ranges if lb_ip is not None else (),
        affinity_timeout=service.affinity_timeout,
        external_ips=service.external_ips,
    )


def node_plans(topology: Topology, node: str) -> list[PortPlan]:
    """Every proxied service port of the topology (DNS included), sorted by port name."""
    if node not in topology.nodes:
        raise KeyError(f"unknown node {node!r}; nodes: {sorted(topology.nodes)}")
    services = list(topology.services.values())
    if topology.dns_service is not None and topology.dns_service.key not in topology.services:
        services.append(topology.dns_service)
    plans = [
        plan_port(svc, sp, node)
        for svc in services
        if svc.cluster_ip and svc.cluster_ip != "None"  # headless Services are not proxied
        for sp in svc.ports
    ]
    return sorted(plans, key=lambda p: (p.name, p.protocol))


def describe_chains(topology: Topology, node: str) -> list[str]:
    """One line per service port: where its traffic goes on ``node`` (for evidence and reports).

    e.g. ``demo/web:http 198.19.0.10:80/TCP NodePort 30080 ETP Local -> KUBE-EXT-… ->
    KUBE-SVL-… [100.64.1.2:80@worker]; cluster KUBE-SVC-… [2 endpoints]``.
    """
    lines = []
    for p in node_plans(topology, node):
        head = f"{p.name} {p.service.cluster_ip}:{p.port.port}"
        entry = "".join([f" NodePort {p.node_port}" if p.node_port is not None else "",
                         f" LB {p.lb_ip}" if p.lb_ip else "", *(f" externalIP {ip}" for ip in p.external_ips)])
        if entry:
            entry += f" ETP {'Local' if p.external_local else 'Cluster'}"
        if not p.has_endpoints:
            lines.append(f"{head}{entry}: no endpoints -> REJECT")
            continue
        eps = ", ".join(f"{p.endpoint(e)}@{e.node}" for e in p.endpoints)
        line = f"{head}{entry}: cluster {p.chains.svc} [{eps}]"
        if p.external_local:
            local = ", ".join(p.endpoint(e) for e in p.local_endpoints)
            line += (f"; external {p.chains.ext} -> {p.chains.svl} [{local}]" if p.local_endpoints
                     else f"; external {p.chains.ext}: no local endpoints -> DROP")
        elif entry:
            line += f"; external {p.chains.ext} -> MASQ -> {p.chains.svc}"
        if p.health_check_node_port:
            line += f"; health check {p.health_check_node_port}/TCP ACCEPT"
        lines.append(line)
    return lines
