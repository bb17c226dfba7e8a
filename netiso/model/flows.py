"""Resolve a flow's endpoints to what is actually sent: from where, to which IP and port.

Oracle and backends share this so that the prediction and the probe talk about the very same
packet. Conventions (documented in docs/scenarios.md's extension notes):

* ``pod:P/W`` without ``@NODE`` means the workload's first replica (scenario node order);
* ``nodeport:P/S@N`` is node N's InternalIP and the NodePort of the chosen service port;
* ``healthcheck:P/S@N`` is node N's InternalIP at the Service's healthCheckNodePort (TCP);
* ``externalip:P/S[@N]`` is the Service's first external IP and the service port; from a client
  the outside network routes it to node N (``entry_node``);
* ``hostport:P/W@N`` is node N's InternalIP at the hostPort of the workload's chosen container
  port (``port:`` names the container port; default its first port with a hostPort); the
  replica on N answers on the container port (the CNI portmap plugin's DNAT);
* ``ingress:P/I`` goes to the controller Service: NodePort on the controller's node (or
  ``@NODE``), or the VIP for a LoadBalancer controller; the Host header carries the host;
* ``port:`` defaults to the service's (or workload's) first port; clients' echo servers listen
  on 8080/TCP unless the flow says otherwise;
* ``node:N`` as a destination is a host-network server on node N's InternalIP at the flow's port
  (default 8080/TCP): every ``to: node:N`` flow of a scenario makes N serve that port
  (:func:`host_servers`), so every backend runs the same listeners the oracle assumes.
"""

from __future__ import annotations

from dataclasses import dataclass

from netiso.model.symbols import parse_endpoint
from netiso.model.types import FlowSpec, IngressInfo, PodInfo, Port, ServiceInfo, Topology

DEFAULT_CLIENT_PORT = Port(8080, "TCP")
DEFAULT_HOST_PORT = Port(8080, "TCP")  # a node's host-network server (to: node:NAME)


def host_servers(topo: Topology) -> dict[str, frozenset[Port]]:
    """The host-network servers a scenario's flows imply: node name -> the ports it serves.

    >>> from netiso.model.addressing import resolve
    >>> from netiso.model.loader import loads
    >>> (scenario,) = loads("{name: x, flows: [{from: 'node:worker2', to: 'node:worker', port: 9000/UDP}]}")
    >>> topo = resolve(scenario)
    >>> {name: sorted(str(p) for p in ports) for name, ports in host_servers(topo).items()}
    {'worker': ['9000/UDP']}
    """
    out: dict[str, set[Port]] = {}
    for flow in topo.scenario.flows:
        dst = parse_endpoint(flow.dst)
        if dst.kind == "node":
            out.setdefault(str(dst.name), set()).add(flow.port or DEFAULT_HOST_PORT)
    return {name: frozenset(ports) for name, ports in out.items()}


def external_ip_routes(topo: Topology) -> dict[str, dict[str, str]]:
    """The outside network's routes a scenario's flows imply: client -> {external IP: node}.

    ``externalip:P/S@N`` from a client means that client's router sends the Service's first
    external IP to node N (the loader keeps one node per client and address).
    """
    out: dict[str, dict[str, str]] = {}
    for flow in topo.scenario.flows:
        src, dst = parse_endpoint(flow.src), parse_endpoint(flow.dst)
        if src.kind == "client" and dst.kind == "externalip" and dst.node:
            ip = topo.services[f"{dst.project}/{dst.name}"].external_ips[0]
            out.setdefault(str(src.name), {})[ip] = dst.node
    return out


@dataclass(frozen=True)
class FlowTarget:
    origin_kind: str  # client | pod | node
    origin_name: str  # client/node name or pod symbol
    origin_pod: PodInfo | None
    dst_kind: str  # pod | clusterip | nodeport | loadbalancer | ingress | client
    dst_ip: str | None  # None: nothing to send to (e.g. a VIP never allocated)
    dst_port: int
    protocol: str
    port: Port  # the declared port (service/workload port) reported in results
    host: str | None = None  # Host header (ingress)
    service: ServiceInfo | None = None
    ingress: IngressInfo | None = None
    dst_pod: PodInfo | None = None
    entry_node: str | None = None


def first_replica(topo: Topology, project: str, workload: str, node: str | None) -> PodInfo:
    pods = [p for p in topo.pods_of(project, workload) if node in (None, p.node)]
    return pods[0]


def resolve_flow(topo: Topology, flow: FlowSpec) -> FlowTarget:
    """Where ``flow`` starts and which IP/port/protocol it sends to."""
    src = parse_endpoint(flow.src)
    dst = parse_endpoint(flow.dst)
    origin_pod = first_replica(topo, src.project, src.name, src.node) if src.kind == "pod" else None
    origin_name = origin_pod.symbol if origin_pod else str(src.name)
    common = {"origin_kind": src.kind, "origin_name": origin_name, "origin_pod": origin_pod, "dst_kind": dst.kind}
    if dst.kind == "pod":
        pod = first_replica(topo, dst.project, dst.name, dst.node)
        port = flow.port or pod.ports[0]
        return FlowTarget(**common, dst_ip=pod.ip, dst_port=port.port, protocol=port.protocol, port=port,
                          dst_pod=pod, entry_node=pod.node)
    if dst.kind == "node":
        port = flow.port or DEFAULT_HOST_PORT
        node = topo.nodes[str(dst.name)]
        return FlowTarget(**common, dst_ip=node.ip, dst_port=port.port, protocol=port.protocol, port=port,
                          entry_node=node.name)
    if dst.kind == "client":
        port = flow.port or DEFAULT_CLIENT_PORT
        return FlowTarget(**common, dst_ip=topo.clients[dst.name].ip, dst_port=port.port, protocol=port.protocol,
                          port=port)
    if dst.kind in ("clusterip", "nodeport", "loadbalancer"):
        svc = topo.services[f"{dst.project}/{dst.name}"]
        sp = svc.port_for(flow.port)
        assert sp is not None, "validated by the loader"
        if dst.kind == "clusterip":
            return FlowTarget(**common, dst_ip=svc.cluster_ip, dst_port=sp.port.port, protocol=sp.port.protocol,
                              port=sp.port, service=svc)
        if dst.kind == "nodeport":
            node = topo.nodes[dst.node]
            return FlowTarget(**common, dst_ip=node.ip, dst_port=sp.node_port or 0, protocol=sp.port.protocol,
                              port=sp.port, service=svc, entry_node=node.name)
        return FlowTarget(**common, dst_ip=svc.lb_ip, dst_port=sp.port.port, protocol=sp.port.protocol,
                          port=sp.port, service=svc, entry_node=svc.lb_node)
    if dst.kind == "healthcheck":  # NODE's kube-proxy health server for the Service
        svc = topo.services[f"{dst.project}/{dst.name}"]
        node = topo.nodes[dst.node]
        hc = svc.health_check_node_port or 0
        return FlowTarget(**common, dst_ip=node.ip, dst_port=hc, protocol="TCP", port=Port(hc, "TCP"),
                          service=svc, entry_node=node.name)
    if dst.kind == "externalip":  # the first external IP; a client's route takes it to @NODE
        svc = topo.services[f"{dst.project}/{dst.name}"]
        sp = svc.port_for(flow.port)
        assert sp is not None and svc.external_ips, "validated by the loader"
        return FlowTarget(**common, dst_ip=svc.external_ips[0], dst_port=sp.port.port, protocol=sp.port.protocol,
                          port=sp.port, service=svc, entry_node=dst.node)
    if dst.kind == "hostport":  # NODE's hostPort, DNATed by portmap to the replica on NODE
        pod = first_replica(topo, dst.project, dst.name, dst.node)
        host, cport = next((h, p) for h, p in pod.host_ports
                           if flow.port is None or (p.port, p.protocol) == (flow.port.port, flow.port.protocol))
        node = topo.nodes[dst.node]
        return FlowTarget(**common, dst_ip=node.ip, dst_port=host, protocol=cport.protocol, port=cport,
                          dst_pod=pod, entry_node=node.name)
    # ingress
    ing = topo.ingresses[f"{dst.project}/{dst.name}"]
    csvc = ing.controller.service
    sp = csvc.ports[0]
    if ing.controller.exposure == "LoadBalancer":
        return FlowTarget(**common, dst_ip=csvc.lb_ip, dst_port=sp.port.port, protocol="TCP", port=ing.port.port,
                          host=ing.host, service=csvc, ingress=ing, entry_node=csvc.lb_node)
    node = topo.nodes[dst.node or ing.controller.pod.node]
    return FlowTarget(**common, dst_ip=node.ip, dst_port=sp.node_port or 0, protocol="TCP", port=ing.port.port,
                      host=ing.host, service=csvc, ingress=ing, entry_node=node.name)
