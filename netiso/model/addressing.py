"""The address plan: turn a Scenario into a Topology with every address resolved.

Deterministic so that the oracle, the lab and a report read weeks later agree on every IP:

* nodes: ``nodeNetwork`` host 10 + i (198.18.0.10, .11, ...); the first node is the
  control-plane and, as kubeadm/kind do in multi-node clusters, carries the
  exclude-from-external-load-balancers label;
* clients: host 100 + j of the node network (198.18.0.100, ...);
* pod blocks: node i owns ``podNetwork + i*256`` with the Calico block size (/26):
  100.64.0.0/26, 100.64.1.0/26, ...; the tunnel address (ipip/vxlan) is the block's first
  address, as Calico's allocateip reconciler hands out (100.64.2.0 for the third node); pods
  take the following addresses in scenario order (workloads, then ingress controllers);
* services: ClusterIPs from ``serviceNetwork`` host 100 + k (198.19.0.100, ...), host 10 is
  kube-dns; NodePorts 30000 + k over (service, port) in order; health-check node ports
  32000 + k; LoadBalancer VIPs from the pool in service order.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace

from netiso.model import election
from netiso.model.endpoint_states import announcing_counts
from netiso.model.loader import pool_range
from netiso.model.selectors import matches
from netiso.model.symbols import parse_symbol
from netiso.model.tenancy import KUBE_DNS
from netiso.model.types import (
    ClientInfo,
    ClusterFacts,
    ControllerInfo,
    IngressInfo,
    NodeInfo,
    PodInfo,
    Port,
    Scenario,
    ServiceInfo,
    ServicePortInfo,
    Topology,
)

CONTROLLER_PORT = Port(80, "TCP", "http")


def resolve(scenario: Scenario, facts: ClusterFacts | None = None) -> Topology:
    """Resolve every address of ``scenario`` (see the module docstring for the plan).

    With ``facts`` (a real cluster's assignments, see ClusterFacts) those win over the plan and
    the LoadBalancer election hashes the cluster's node names; names and symbols stay the
    scenario's.
    """
    facts = facts or ClusterFacts()
    plan = scenario.cluster.network
    enc = scenario.cluster.encapsulation
    node_net = ipaddress.ip_network(facts.node_network or plan.nodeNetwork, strict=False)
    plan_node_net = ipaddress.ip_network(plan.nodeNetwork)
    plan_pod_net = ipaddress.ip_network(plan.podNetwork)
    pod_net = ipaddress.ip_network(facts.pod_network or plan.podNetwork, strict=False)
    svc_net = ipaddress.ip_network(facts.service_network or plan.serviceNetwork, strict=False)
    plan_svc_net = ipaddress.ip_network(plan.serviceNetwork)
    multi = len(scenario.cluster.nodes) > 1

    nodes: dict[str, NodeInfo] = {}
    plan_blocks: dict[str, ipaddress.IPv4Network | ipaddress.IPv6Network] = {}
    for i, name in enumerate(scenario.cluster.nodes):
        base = plan_pod_net.network_address + i * 256
        block = plan_blocks[name] = ipaddress.ip_network(f"{base}/{plan.blockSize}")
        plan_node_ip = str(plan_node_net.network_address + 10 + i)
        nodes[name] = NodeInfo(
            name=name, index=i, ip=facts.node_ips.get(name, plan_node_ip), block=facts.blocks.get(name, str(block)),
            tunnel_ip=(facts.tunnel_ips[name] if name in facts.tunnel_ips else
                       None if enc == "direct" else str(block.network_address)),
            lb_excluded=facts.lb_excluded.get(name, multi and i == 0),
            cluster_name=facts.node_names.get(name, ""),
        )
    clients = {c: ClientInfo(c, facts.client_ips.get(c, str(plan_node_net.network_address + 100 + j)))
               for j, c in enumerate(scenario.cluster.clients)}

    next_host = {n: 1 for n in nodes}

    def pod_ip(node: str, symbol: str) -> str:
        block = plan_blocks[node]
        ip = block.network_address + next_host[node]
        next_host[node] += 1
        if ip not in block or ip == block.broadcast_address:
            raise ValueError(f"node {node}: pod block {block} is full")
        return facts.pod_ips.get(symbol, str(ip))

    pods: list[PodInfo] = []
    for w in scenario.workloads:
        for node in w.nodes:
            pods.append(PodInfo(w.project, w.name, node, pod_ip(node, f"pod:{w.project}/{w.name}@{node}"),
                                dict(w.labels), w.ports, host_ports=w.host_ports, state=w.states.get(node, "ready")))

    # one controller per distinct (project, node, exposure, etp)
    controllers: dict[tuple[str, str, str, str], PodInfo] = {}
    for ing in scenario.ingresses:
        c = ing.controller
        key = (c.project, c.node, c.exposure, c.externalTrafficPolicy)
        if key not in controllers:
            suffix = "" if not controllers else f"-{len(controllers)}"
            name = f"ingress-controller{suffix}"
            controllers[key] = PodInfo(c.project, name, c.node, pod_ip(c.node, f"pod:{c.project}/{name}@{c.node}"),
                                       {"app": name, "app.kubernetes.io/component": "controller"},
                                       (CONTROLLER_PORT,), role="ingress-controller")
    pods.extend(controllers.values())

    pool = iter(pool_range(plan.loadBalancerPool))
    svc_index = 0
    node_port = 30000
    hc_port = 32000
    services: dict[str, ServiceInfo] = {}

    def make_service(project: str, name: str, stype: str, etp: str, selector: dict[str, str],
                     ports: tuple[Port, ...], role: str = "workload", publish_not_ready: bool = False) -> ServiceInfo:
        nonlocal svc_index, node_port, hc_port
        if len(ports) > 1:  # Kubernetes requires names on multi-port Services (render names them alike)
            ports = tuple(p if p.name else replace(p, name=f"{p.protocol.lower()}-{p.port}") for p in ports)
        key = f"{project}/{name}"
        cluster_ip = facts.cluster_ips.get(key, str(plan_svc_net.network_address + 100 + svc_index))
        svc_index += 1
        sports = []
        for p in ports:
            np = None
            if stype in ("NodePort", "LoadBalancer"):
                np = facts.node_ports.get(f"{key} {p}", node_port)
                node_port += 1
            sports.append(ServicePortInfo(p, np))
        endpoints = tuple(p for p in pods if p.project == project and matches({"matchLabels": selector}, p.labels))
        lb_ip = hc = None
        cands: tuple[str, ...] = ()
        lb_node = None
        if stype == "LoadBalancer":
            try:
                lb_ip = next(pool)
            except StopIteration:
                raise ValueError(f"loadBalancerPool {plan.loadBalancerPool} is exhausted") from None
            lb_ip = facts.lb_ips.get(key, lb_ip)
            if etp == "Local":
                hc = facts.health_check_node_ports.get(key, hc_port)
                hc_port += 1
            # the election hashes the names the cluster knows its nodes by
            real = {n: info.host_name for n, info in nodes.items()}
            back = {v: k for k, v in real.items()}
            # the speakers read the endpoints' conditions, each its own way (netiso.model.endpoint_states)
            impl = scenario.cluster.loadBalancer
            cands = tuple(back[c] for c in election.candidates(
                scenario.cluster.loadBalancer, [(real[n.name], n.lb_excluded) for n in nodes.values()], etp,
                [real[p.node] for p in endpoints if announcing_counts(impl, p.state, publish_not_ready)]))
            elected = election.elect([real[c] for c in cands], lb_ip)
            lb_node = back[elected] if elected is not None else None
        return ServiceInfo(project, name, stype, etp, dict(selector), tuple(sports), cluster_ip, endpoints,
                           lb_ip, hc, cands, lb_node, role, publish_not_ready=publish_not_ready)

    for s in scenario.services:
        services[f"{s.project}/{s.name}"] = replace(
            make_service(s.project, s.name, s.type, s.externalTrafficPolicy, dict(s.selector), s.ports,
                         publish_not_ready=s.publishNotReadyAddresses),
            itp=s.internalTrafficPolicy, affinity_timeout=s.sessionAffinityTimeout, external_ips=s.externalIPs)
    controller_infos: dict[tuple[str, str, str, str], ControllerInfo] = {}
    for key, pod in controllers.items():
        project, _node, exposure, etp = key
        skey = f"{project}/{pod.workload}"
        if skey in services:
            raise ValueError(f"service {skey} clashes with the ingress controller's service; rename it")
        svc = make_service(project, pod.workload, exposure, etp, {"app": pod.workload}, (CONTROLLER_PORT,),
                           role="ingress-controller")
        services[skey] = svc
        controller_infos[key] = ControllerInfo(pod, svc, exposure, etp)

    ingresses: dict[str, IngressInfo] = {}
    for ing in scenario.ingresses:
        c = ing.controller
        backend = services[f"{ing.project}/{ing.service}"]
        port = backend.port_for(ing.port)
        assert port is not None
        ingresses[f"{ing.project}/{ing.name}"] = IngressInfo(
            ing.project, ing.name, ing.host, backend, port,
            controller_infos[(c.project, c.node, c.exposure, c.externalTrafficPolicy)])

    # KubeSphere builds the DNS egress rule from the Service that exists (kube-dns, else coredns, in
    # kube-system): a scenario that declares one is that cluster; otherwise kubeadm's default
    dns = declared_dns(services) or ServiceInfo(
        KUBE_DNS.namespace, KUBE_DNS.name, "ClusterIP", "Cluster", dict(KUBE_DNS.selector),
        tuple(ServicePortInfo(p, None) for p in KUBE_DNS.ports), facts.dns_ip or str(plan_svc_net.network_address + 10), ())

    topo = Topology(
        scenario=scenario, encapsulation=enc, load_balancer=scenario.cluster.loadBalancer,
        node_network=str(node_net), pod_network=str(pod_net), service_network=str(svc_net),
        nodes=nodes, clients=clients, pods=pods, services=services, ingresses=ingresses,
        namespaces={}, namespace_annotations={}, policies=[], dns_service=dns,
    )
    for spec in scenario.services:  # source ranges may name clients/nodes: resolved once addresses are known
        if spec.loadBalancerSourceRanges:
            key = f"{spec.project}/{spec.name}"
            cidrs = tuple(c for text in spec.loadBalancerSourceRanges for c in resolve_cidr(topo, text))
            topo.services[key] = replace(topo.services[key], source_ranges=cidrs)
    _apply_tenancy(topo)
    return topo


def declared_dns(services: dict[str, ServiceInfo]) -> ServiceInfo | None:
    """The cluster DNS Service a scenario declares, looked up as KubeSphere does.

    KubeSphere's nsnetworkpolicy controller (generateDNSServiceRule) reads ``kube-system/kube-dns``
    and falls back to ``kube-system/coredns``.

    >>> declared_dns({}) is None
    True
    """
    for name in (KUBE_DNS.name, "coredns"):
        svc = services.get(f"{KUBE_DNS.namespace}/{name}")
        if svc is not None:
            return svc
    return None


def addresses_of(topo: Topology, symbol: str) -> list[str]:
    """Every IP a symbol denotes in ``topo`` (``node:*`` is all node IPs; a CIDR is itself).

    >>> # addresses_of(topo, "tunnel:worker2") -> ["100.64.2.0"]
    """
    sym = parse_symbol(symbol)
    if sym.kind == "cidr":
        return [str(sym.name)]
    if sym.kind == "client":
        return [topo.clients[sym.name].ip] if sym.name in topo.clients else []
    if sym.kind in ("node", "tunnel"):
        chosen = topo.nodes.values() if sym.name == "*" else [topo.nodes[sym.name]] if sym.name in topo.nodes else []
        if sym.kind == "node":
            return [n.ip for n in chosen]
        return [n.tunnel_ip for n in chosen if n.tunnel_ip]
    if sym.kind == "pod":
        return [p.ip for p in topo.pods_of(sym.project, sym.name) if sym.node in (None, p.node)]
    if sym.kind == "ingress-controller":
        ing = topo.ingresses.get(f"{sym.project}/{sym.name}")
        return [ing.controller.pod.ip] if ing else []
    return []


def resolve_cidr(topo: Topology, text: str) -> list[str]:
    """A whitelist ``cidr:`` value as CIDRs: a symbol becomes its /32s, a literal stays."""
    sym = parse_symbol(text)
    if sym.kind == "cidr":
        return [str(ipaddress.ip_network(str(sym.name), strict=False))]
    return [f"{ip}/32" for ip in addresses_of(topo, text)]


def symbols_of(topo: Topology, ip: str) -> list[str]:
    """Every symbol that denotes ``ip`` (most specific first); empty when the lab does not know it.

    Answered from an index built once per topology (the judge and the reports ask for every flow:
    a scan per call cost seconds on a 48-node scenario); the index is rebuilt when the
    topology's address-bearing collections are replaced or change size.
    """
    return list(_symbol_index(topo).get(ip, ()))


def _symbol_index(topo: Topology) -> dict[str, list[str]]:
    key = tuple((id(c), len(c)) for c in (topo.clients, topo.nodes, topo.pods, topo.ingresses))
    cached = topo.__dict__.get("_symbol_index")
    if cached is not None and cached[0] == key:
        return cached[1]
    index: dict[str, list[str]] = {}

    def add(address: str | None, symbol: str) -> None:
        if address:
            index.setdefault(address, []).append(symbol)

    for c in topo.clients.values():
        add(c.ip, c.symbol)
    for n in topo.nodes.values():
        add(n.ip, n.symbol)
        add(n.tunnel_ip, f"tunnel:{n.name}")
    for p in topo.pods:
        add(p.ip, p.symbol)
    for ing in topo.ingresses.values():
        add(ing.controller.pod.ip, f"ingress-controller:{ing.key}")
    topo.__dict__["_symbol_index"] = (key, index)
    return index


def snat_node_ips(topo: Topology) -> list[str]:
    """The addresses ``cluster.kubesphere.snatNodeIPs`` denotes (the nodes' snat-node-ips annotations).

    Symbols resolve against the topology as realized (a cluster's real node and tunnel addresses);
    each address once, in the order written (KubeSphere sorts them itself).
    """
    out: list[str] = []
    for symbol in topo.scenario.cluster.kubesphere.snat_node_ips:
        for ip in addresses_of(topo, symbol):
            if ip not in out:
                out.append(ip)
    return out


def _apply_tenancy(topo: Topology) -> None:
    from netiso.model import tenancy
    from netiso.model.service_peer_ports import service_peer_warnings

    s = topo.scenario
    topo.namespaces = tenancy.namespace_labels(s)
    topo.namespace_annotations = tenancy.namespace_annotations(s)

    def service_of(project: str, name: str):  # -> ServiceSpec | None
        return next((x for x in s.services if x.project == project and x.name == name), None)

    settings = s.cluster.kubesphere
    policies, warnings = tenancy.compile_tenancy(
        s, lambda text: resolve_cidr(topo, text), service_of, dns=topo.dns_service or tenancy.KUBE_DNS,
        allowed_ingress_namespaces=settings.allowed_ingress_namespaces,
        snat_node_ips=snat_node_ips(topo))
    topo.policies = list(policies) + [dict(p) for p in s.networkPolicies]
    topo.warnings = list(warnings) + service_peer_warnings(topo)


def load_topologies(paths: list[str]) -> list[Topology]:
    """Load scenarios from files/directories and resolve each; every error is an InputError."""
    from netiso.model.errors import InputError
    from netiso.model.loader import load_scenarios

    topos = []
    for scenario in load_scenarios(paths):
        try:
            topos.append(resolve(scenario))
        except ValueError as exc:
            raise InputError(str(exc), file=scenario.source.file, document=scenario.source.index,
                             name=scenario.name, field="cluster.network") from None
    return topos
