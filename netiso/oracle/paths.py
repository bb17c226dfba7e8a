"""The path engine: walk one connection attempt through nodes as the kernel would.

A packet is followed hop by hop through the same decisions a node's netfilter and routing make
under the default profile (kube-proxy iptables + Calico iptables), in kernel order:

  nat PREROUTING/OUTPUT  kube-proxy: KUBE-SERVICES -> [KUBE-FW] -> KUBE-EXT (mark) -> KUBE-SVC/SVL -> KUBE-SEP
                         (cluster IP, LB IP, NodePort, external IP)
                         (DNAT); the Service and kube-proxy knobs are decided in proxy_knobs.py
  routing                local address (INPUT) / local pod (cali*) / remote block (tunnel or eth0) / node net
  filter FORWARD/INPUT   Calico first: sender pod's egress policy, receiver pod's ingress policy;
                         then kube-proxy filter: KUBE-PROXY-FIREWALL DROP (source ranges),
                         KUBE-EXTERNAL-SERVICES DROP/REJECT, KUBE-SERVICES REJECT (DROP: ITP Local);
                         INPUT from a local pod: cali-wl-to-host (egress policy, then Felix's
                         defaultEndpointToHostAction: ACCEPT ends INPUT before kube-proxy's rules)
  local delivery         a node address: its host-network server answers (``to: node:N`` flows,
                         flows.host_servers), else the node's stack refuses (RST / ICMP)
  nat POSTROUTING        Calico natOutgoing, Felix tunnel MASQUERADE, portmap's CNI-HOSTPORT-MASQ (hairpin),
                         KUBE-POSTROUTING MASQUERADE

Every decision appends a readable hop line with its reason. Where kube-proxy balances over
several endpoints the walk branches, so one flow yields one :class:`Outcome` per endpoint.
Replies are assumed to follow conntrack back (true for every path these rules build).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from netiso.model.addressing import symbols_of
from netiso.model.flows import host_servers
from netiso.model.types import NodeInfo, PodInfo, ServiceInfo, ServicePortInfo, Topology
from netiso.oracle import proxy_knobs as knobs
from netiso.oracle.netpol import Decision, PolicyEngine
from netiso.oracle.profile import Profile

TUNNEL_DEV = {"ipip": "tunl0", "vxlan": "vxlan.calico", "direct": "eth0"}


@dataclass(frozen=True)
class Packet:
    src: str
    dst: str
    dport: int
    proto: str
    mark: bool = False  # kube-proxy's 0x4000 masquerade mark
    hostport_mark: bool = False  # portmap's 0x2000 (CNI-HOSTPORT-SETMARK): a pod to its own hostPort (hairpin)
    src_alts: tuple[str, ...] = ()  # other addresses MASQUERADE may have picked (same-node delivery)


@dataclass(frozen=True)
class PolicyCheck:
    """An ingress policy decision taken on the way: who was protected and what source it saw."""

    pod: PodInfo
    src_ip: str
    src_pod: PodInfo | None
    port: int
    protocol: str
    decision: Decision


@dataclass(frozen=True)
class Step:
    """What a hop did, in structure: where it happened, which kind of step, the packet after it.

    Read by the path diagrams (netiso/report/diagram.py) so they never parse the hop text. Kinds:
    send, arp, service (kube-proxy matched a service, no DNAT yet), dnat, snat, policy, filter
    (kube-proxy's filter verdict), tunnel / forward (to the next node), deliver, refuse, drop,
    proxy (ingress-nginx), note.
    """

    at: str  # symbol of the place: client:alice, node:w1, pod:ns/name@w1
    kind: str
    src: str | None = None  # the packet's source address after this step
    dst: str | None = None  # ... and its destination
    alts: tuple[str, ...] = ()  # other sources MASQUERADE may have picked
    to: str | None = None  # tunnel / forward / arp: the next place's symbol
    via: str | None = None  # tunnel / forward: the device (tunl0, vxlan.calico, eth0)
    verdict: str | None = None  # set when the walk ends here: allowed | dropped | refused
    direction: str | None = None  # policy: ingress | egress
    decision: Decision | None = None  # policy: the decision taken
    rule: str | None = None  # service / snat / filter: the chain or rule that acted, e.g. "KUBE-POSTROUTING"


class Hop(str):
    """A hop line; one that reports an ingress policy decision also carries it as ``check``.

    A plain ``str`` everywhere (JSON, reports); consumers that reason about *why* a flow was
    admitted or dropped (minimal-config) read ``check`` instead of parsing the text, diagrams
    read ``step``.
    """

    check: PolicyCheck | None
    step: Step | None

    def __new__(cls, text: str, check: PolicyCheck | None = None, step: Step | None = None) -> Hop:
        hop = super().__new__(cls, text)
        hop.check = check
        hop.step = step
        return hop


@dataclass
class Outcome:
    """One way a connection attempt ends."""

    verdict: str  # allowed | dropped | refused
    hops: list[str]
    receiver: str | None = None  # symbol of who answered (pod or client)
    seen: tuple[str, ...] = ()  # source IPs the receiver may see
    endpoint: PodInfo | None = None
    extra: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Origin:
    kind: str  # client | pod | node
    name: str  # client or node name; pod: symbol
    pod: PodInfo | None = None


class PathEngine:
    """Walk packets through a resolved topology (one engine per scenario)."""

    def __init__(self, topo: Topology, profile: Profile) -> None:
        self.topo = topo
        self.profile = profile
        self.pod_net = ipaddress.ip_network(topo.pod_network)
        self.node_net = ipaddress.ip_network(topo.node_network)
        self.policy = PolicyEngine(topo.policies, topo.namespaces, describe_ip=self._short)
        self.dev = TUNNEL_DEV[topo.encapsulation]
        self.proxy = topo.scenario.cluster.kubeProxy
        self.host_servers = host_servers(topo)
        # the pod block that holds an address, looked up per hop of every flow (an ip_network per
        # node and lookup was a third of the oracle's time at 48 nodes)
        self._blocks = [(ipaddress.ip_network(n.block), n) for n in topo.nodes.values()]
        self._owners: dict[str, NodeInfo | None] = {}

    # ------------------------------------------------------------------ naming helpers
    def sym(self, ip: str) -> str:
        names = symbols_of(self.topo, ip)
        return f"{names[0]} ({ip})" if names else ip

    def _short(self, ip: str) -> str:
        names = symbols_of(self.topo, ip)
        return names[0] if names else ip

    def in_pods(self, ip: str) -> bool:
        return ipaddress.ip_address(ip) in self.pod_net

    def _local_addrs(self, node: NodeInfo) -> set[str]:
        return {node.ip} | ({node.tunnel_ip} if node.tunnel_ip else set())

    def _block_owner(self, ip: str) -> NodeInfo | None:
        if ip not in self._owners:
            addr = ipaddress.ip_address(ip)
            self._owners[ip] = next((n for net, n in self._blocks if addr in net), None)
        return self._owners[ip]

    # ------------------------------------------------------------------ entry points
    def walk(self, origin: Origin, pkt: Packet, via: str | None = None) -> list[Outcome]:
        """``via``: the node a client's route sends ``pkt.dst`` to (an external IP's @NODE)."""
        hops: list[str] = []
        if origin.kind == "client":
            return list(self._from_client(origin.name, pkt, hops, via))
        if origin.kind == "pod":
            assert origin.pod is not None
            pod = origin.pod
            pkt = replace(pkt, src=pod.ip)
            hops.append(Hop(f"{pod.symbol} ({pod.ip}) sends to {self._short(pkt.dst)} {pkt.dport}/{pkt.proto} "
                            f"via its default route 169.254.1.1 (proxy-ARP on the host side)",
                            step=Step(pod.symbol, "send", pod.ip, pkt.dst, to=f"node:{pod.node}")))
            return list(self._at_node(self.topo.nodes[pod.node], pkt, hops, from_pod=pod, local=False))
        node = self.topo.nodes[origin.name]
        src = self._host_source(node, pkt.dst)
        alts: tuple[str, ...] = ()
        dst_pod = self.topo.pod_by_ip(pkt.dst)
        if dst_pod is not None and dst_pod.node == node.name:
            # the route to a local pod leaves through a cali* veth without IPv4: the kernel takes the
            # first global address of the node, as for same-node MASQUERADE (either is acceptable)
            picks = self._out_addresses(node, "cali")
            src, alts = picks[0], tuple(picks[1:])
        hops.append(Hop(f"node:{node.name} (host network) sends to {self._short(pkt.dst)} {pkt.dport}/{pkt.proto}, "
                        f"source address {self._alts([src, *alts])} chosen by the route",
                        step=Step(node.symbol, "send", src, pkt.dst, alts)))
        return list(self._at_node(node, replace(pkt, src=src, src_alts=alts), hops, from_pod=None, local=True))

    # ------------------------------------------------------------------ origins
    def _from_client(self, name: str, pkt: Packet, hops: list[str], via: str | None = None) -> Iterator[Outcome]:
        client = self.topo.clients[name]
        pkt = replace(pkt, src=client.ip)
        dst = pkt.dst
        owner = self._block_owner(dst) if self.in_pods(dst) else None
        node = next((n for n in self.topo.nodes.values() if dst in self._local_addrs(n) and dst == n.ip), None)
        lb = next((s for s in self.topo.services.values() if s.lb_ip == dst), None)
        ext = next((s for s in self.topo.services.values() if dst in s.external_ips), None)
        if owner is not None and not self.topo.scenario.cluster.clientsRouteToPods:
            hops.append(Hop(f"client:{name} ({client.ip}) has no route to pod IP {dst}: the network outside the "
                            "cluster does not route clients to pod blocks (cluster.clientsRouteToPods: false) → dropped",
                            step=Step(client.symbol, "drop", client.ip, dst, verdict="dropped")))
            yield Outcome("dropped", hops)
        elif owner is not None:
            hops.append(Hop(f"client:{name} ({client.ip}) routes {owner.block} via node:{owner.name} "
                            "(the external router knows the pod routes)",
                            step=Step(client.symbol, "send", client.ip, dst, to=owner.symbol, via="router")))
            yield from self._at_node(owner, pkt, hops, from_pod=None, local=False)
        elif node is not None:
            hops.append(Hop(f"client:{name} ({client.ip}) → node:{node.name} ({dst}:{pkt.dport}/{pkt.proto}) on the node network",
                            step=Step(client.symbol, "send", client.ip, dst, to=node.symbol, via="eth0")))
            yield from self._at_node(node, pkt, hops, from_pod=None, local=False)
        elif ext is not None and via is not None:
            hops.append(Hop(f"client:{name} ({client.ip}) routes external IP {dst} of {ext.key} via node:{via} "
                            "(the outside network's route to the address)",
                            step=Step(client.symbol, "send", client.ip, dst, to=f"node:{via}", via="router")))
            yield from self._at_node(self.topo.nodes[via], pkt, hops, from_pod=None, local=False)
        elif lb is not None:
            if lb.lb_node is None:
                why = ("no node has a ready endpoint" if not lb.endpoints else
                       "no endpoint it counts (ready, or for MetalLB serving while terminating)"
                       if not lb.announcing_nodes(self.topo.load_balancer) else
                       "no eligible node (externalTrafficPolicy Local and no endpoint on an announcing node)")
                hops.append(Hop(f"client:{name}: ARP for VIP {dst} gets no answer: {self.topo.load_balancer} announces it "
                                f"from no node ({why}) → dropped",
                                step=Step(client.symbol, "arp", client.ip, dst, verdict="dropped")))
                yield Outcome("dropped", hops)
                return
            hops.append(Hop(f"client:{name}: ARP for VIP {dst} answered by node:{lb.lb_node} "
                            f"({self.topo.load_balancer} elected it among {', '.join(lb.lb_candidates)})",
                            step=Step(client.symbol, "arp", client.ip, dst, to=f"node:{lb.lb_node}", via="eth0")))
            yield from self._at_node(self.topo.nodes[lb.lb_node], pkt, hops, from_pod=None, local=False)
        else:
            hops.append(Hop(f"client:{name} has no route to {dst} → dropped",
                            step=Step(client.symbol, "drop", client.ip, dst, verdict="dropped")))
            yield Outcome("dropped", hops)

    def _host_source(self, node: NodeInfo, dst: str) -> str:
        """Source address the kernel picks for a host-originated packet (primary address of the out device)."""
        if self.in_pods(dst):
            owner = self._block_owner(dst)
            if owner is not None and owner.name != node.name and node.tunnel_ip:
                return node.tunnel_ip  # route via tunl0 / vxlan.calico: that device's address
        return node.ip

    # ------------------------------------------------------------------ one node
    def _at_node(self, node: NodeInfo, pkt: Packet, hops: list[str], *, from_pod: PodInfo | None,
                 local: bool) -> Iterator[Outcome]:
        hook = "OUTPUT" if local else "PREROUTING"
        for branch_pkt, branch_hops, deferred in self._kube_proxy_nat(node, pkt, list(hops), hook, local):
            if deferred is None and branch_pkt.dst in self._local_addrs(node):
                branch_pkt = self._host_port_dnat(node, branch_pkt, branch_hops, hook)
            yield from self._route(node, branch_pkt, branch_hops, from_pod=from_pod, local=local, deferred=deferred)

    def _host_port_dnat(self, node: NodeInfo, pkt: Packet, hops: list[str], hook: str) -> Packet:
        """The CNI portmap plugin's DNAT of a hostPort to the pod on this node (CNI-HOSTPORT-DNAT).

        Mirrors containernetworking/plugins plugins/meta/portmap/portmap.go: nat PREROUTING and
        OUTPUT jump to CNI-HOSTPORT-DNAT for ``--dst-type LOCAL``, each pod's CNI-DN-x chain DNATs
        ``--dport hostPort`` to podIP:containerPort. No SNAT for traffic from elsewhere (the pod
        sees the client), so the pod's ingress policy sees the client and the container port.
        Hairpin (``snat: true``, Calico's conflist): a packet from the pod's own address (its
        /32, Calico IPAM) is first marked 0x2000 (CNI-HOSTPORT-SETMARK), and CNI-HOSTPORT-MASQ
        masquerades it in POSTROUTING (:meth:`_postrouting`) - after Calico's FORWARD policy,
        which therefore sees the pod itself as the source.
        """
        for pod in self.topo.pods:
            target = pod.host_port_for(pkt.dport, pkt.proto) if pod.node == node.name else None
            if target is None:
                continue
            hairpin = pkt.src == pod.ip
            if hairpin:
                hops.append(Hop(f"{node.name}: nat {hook} CNI-DN (portmap): the source is {pod.symbol} itself "
                                "(hairpin) → CNI-HOSTPORT-SETMARK marks 0x2000 for masquerade",
                                step=Step(node.symbol, "note", pkt.src, pkt.dst, rule="CNI-HOSTPORT-SETMARK")))
            hops.append(Hop(f"{node.name}: nat {hook} CNI-HOSTPORT-DNAT (portmap): hostPort {pkt.dport}/{pkt.proto} "
                            f"DNAT → {pod.symbol} ({pod.ip}:{target.port})",
                            step=Step(node.symbol, "dnat", pkt.src, pod.ip, to=pod.symbol, rule="CNI-HOSTPORT-DNAT")))
            return replace(pkt, dst=pod.ip, dport=target.port, hostport_mark=hairpin)
        return pkt

    def _route(self, node: NodeInfo, pkt: Packet, hops: list[str], *, from_pod: PodInfo | None, local: bool,
               deferred: tuple[str, str] | None) -> Iterator[Outcome]:
        n = node.name
        at = node.symbol
        dst_pod = self.topo.pod_by_ip(pkt.dst)
        is_local_addr = pkt.dst in self._local_addrs(node)
        if is_local_addr and not local:
            yield from self._input(node, pkt, hops, from_pod=from_pod, deferred=deferred)
            return
        if is_local_addr and not deferred:  # the host to one of its own addresses: over lo, INPUT
            hops.append(Hop(f"{n}: {self._short(pkt.dst)} is a local address: OUTPUT → lo → INPUT "
                            "(not routed, no Calico chain applies)", step=Step(at, "note", pkt.src, pkt.dst)))
            yield from self._input(node, pkt, hops, from_pod=None, deferred=None)
            return
        # where does it go?
        if dst_pod is not None and dst_pod.node == n:
            out, nxt = "cali", None
        elif self.in_pods(pkt.dst):
            owner = self._block_owner(pkt.dst)
            if owner is None or owner.name == n:
                hops.append(Hop(f"{n}: {pkt.dst} is in no allocated pod (blackhole route of the block) → dropped",
                                step=Step(at, "drop", pkt.src, pkt.dst, verdict="dropped")))
                yield Outcome("dropped", hops)
                return
            out, nxt = self.dev, owner
        elif ipaddress.ip_address(pkt.dst) in self.node_net:
            out, nxt = "eth0", None
        elif deferred:
            out, nxt = "default", None  # a real node routes it by its default route; kube-proxy's filter decides
        else:
            hops.append(Hop(f"{n}: no route to {pkt.dst} inside the cluster (not DNATed) → dropped",
                            step=Step(at, "drop", pkt.src, pkt.dst, verdict="dropped")))
            yield Outcome("dropped", hops)
            return
        chain = "OUTPUT" if local else "FORWARD"
        if not local:
            if from_pod is not None:
                d = self.policy.egress(from_pod, pkt.dst, dst_pod, pkt.dport, pkt.proto)
                if not d.allowed:
                    hops.append(_egress_dropped(n, at, f"FORWARD cali-from-wl-dispatch (egress of {from_pod.symbol})",
                                                pkt, d))
                    yield Outcome("dropped", hops)
                    return
                if d.isolated:
                    hops.append(Hop(f"{n}: FORWARD egress of {from_pod.symbol}: {d.reason}",
                                    step=Step(at, "policy", pkt.src, pkt.dst, direction="egress", decision=d)))
            if out == "cali":
                assert dst_pod is not None
                src_pod = self.topo.pod_by_ip(pkt.src)
                d = self.policy.ingress(dst_pod, pkt.src, src_pod, pkt.dport, pkt.proto)
                check = PolicyCheck(dst_pod, pkt.src, src_pod, pkt.dport, pkt.proto, d)
                if not d.allowed:
                    hops.append(Hop(f"{n}: FORWARD cali-to-wl-dispatch (ingress of {dst_pod.symbol}): {d.reason} → dropped",
                                    check, Step(at, "policy", pkt.src, pkt.dst, verdict="dropped", direction="ingress",
                                                decision=d)))
                    yield Outcome("dropped", hops)
                    return
                hops.append(Hop(f"{n}: FORWARD ingress of {dst_pod.symbol}: {d.reason}", check,
                                Step(at, "policy", pkt.src, pkt.dst, direction="ingress", decision=d)))
        if deferred:  # kube-proxy's filter rules come after Calico's policy chains
            hops.append(Hop(f"{n}: {chain} {deferred[1]}", step=Step(at, "filter", pkt.src, pkt.dst, verdict=deferred[0],
                                          rule=deferred[1].split(":", 1)[0])))
            yield Outcome(deferred[0], hops)
            return
        if local and out == "cali":
            hops.append(Hop(f"{n}: OUTPUT to local {dst_pod.symbol}: host → local pod traffic is not policed by Calico",
                            step=Step(at, "note", pkt.src, pkt.dst)))
        pkt = self._postrouting(node, pkt, out, hops, local=local, from_pod=from_pod)
        if out == "cali":
            assert dst_pod is not None
            yield self._deliver_pod(dst_pod, pkt, hops)
        elif nxt is not None:
            how = {"tunl0": "IP-in-IP (protocol 4)", "vxlan.calico": "VXLAN (VNI 4096, UDP 4789)",
                   "eth0": "plain routing (no encapsulation)"}[out]
            hops.append(Hop(f"{n} → {nxt.name} via {out}: {how} across the node network",
                            step=Step(at, "tunnel", pkt.src, pkt.dst, to=nxt.symbol, via=out)))
            yield from self._at_node(nxt, pkt, hops, from_pod=None, local=False)
        else:
            client = next((c for c in self.topo.clients.values() if c.ip == pkt.dst), None)
            if client is None:
                other = next((x for x in self.topo.nodes.values() if x.ip == pkt.dst), None)
                if other is not None:
                    hops.append(Hop(f"{n} → node:{other.name} on the node network",
                                    step=Step(at, "forward", pkt.src, pkt.dst, to=other.symbol, via="eth0")))
                    yield from self._at_node(other, pkt, hops, from_pod=None, local=False)
                    return
                hops.append(Hop(f"{n}: nobody on the node network answers ARP for {pkt.dst} → dropped",
                                step=Step(at, "drop", pkt.src, pkt.dst, verdict="dropped")))
                yield Outcome("dropped", hops)
                return
            if self.in_pods(pkt.src) and not self.topo.scenario.cluster.clientsRouteToPods:
                hops.append(Hop(f"client:{client.name} answers {self.sym(pkt.src)} (cluster.natOutgoing: false kept the "
                                "pod IP), but the network outside the cluster has no route back to pod blocks "
                                "(cluster.clientsRouteToPods: false): the answer is lost → dropped",
                                step=Step(client.symbol, "drop", pkt.src, pkt.dst, verdict="dropped")))
                yield Outcome("dropped", hops)
                return
            hops.append(Hop(f"client:{client.name} answers; it sees {self.sym(pkt.src)}",
                            step=Step(client.symbol, "deliver", pkt.src, pkt.dst, verdict="allowed")))
            yield Outcome("allowed", hops, receiver=client.symbol, seen=(pkt.src,))

    def _input(self, node: NodeInfo, pkt: Packet, hops: list[str], *, from_pod: PodInfo | None,
               deferred: tuple[str, str] | None) -> Iterator[Outcome]:
        """filter INPUT, in the order Felix and kube-proxy leave it: Felix's ``cali-INPUT`` first.

        Felix inserts its jump at the top of INPUT (ChainInsertMode Insert) and keeps it there;
        kube-proxy's jumps (KUBE-PROXY-FIREWALL, KUBE-NODEPORTS, KUBE-EXTERNAL-SERVICES) come
        after. A pod's packet to its own node (``-i cali+``) goes to ``cali-wl-to-host``: the
        pod's egress policy, then ``defaultEndpointToHostAction`` - ACCEPT ends INPUT there (the
        host stack answers; kube-proxy's REJECT of a NodePort without endpoints never runs),
        RETURN goes on to kube-proxy's rules, DROP drops. Anything else falls through cali-INPUT.
        """
        n, at = node.name, node.symbol
        if from_pod is not None:
            # cali-wl-to-host: the pod's egress policy first (cali-from-wl-dispatch)
            d = self.policy.egress(from_pod, pkt.dst, None, pkt.dport, pkt.proto)
            if not d.allowed:
                hops.append(_egress_dropped(n, at, "INPUT cali-wl-to-host", pkt, d))
                yield Outcome("dropped", hops)
                return
            action = self.topo.scenario.cluster.felix.defaultEndpointToHostAction
            if action == "DROP":
                hops.append(Hop(f"{n}: INPUT cali-wl-to-host: defaultEndpointToHostAction DROP (pod → its own node) "
                                "→ dropped",
                                step=Step(at, "drop", pkt.src, pkt.dst, verdict="dropped", rule="cali-wl-to-host")))
                yield Outcome("dropped", hops)
                return
            if action == "ACCEPT":
                hops.append(Hop(f"{n}: INPUT cali-wl-to-host: defaultEndpointToHostAction ACCEPT: the host stack "
                                "takes it (kube-proxy's INPUT rules come after Felix's and never see it)",
                                step=Step(at, "note", pkt.src, pkt.dst)))
                deferred = None
        if deferred:
            hops.append(Hop(f"{n}: INPUT {deferred[1]}",
                            step=Step(at, "filter", pkt.src, pkt.dst, verdict=deferred[0],
                                      rule=deferred[1].split(":", 1)[0])))
            yield Outcome(deferred[0], hops)
            return
        health = knobs.health_check(self.topo, node, pkt.dport, pkt.proto)
        if health is not None:
            svc, count = health
            status = 200 if count else 503
            hops.append(Hop(f"{n}: INPUT KUBE-NODEPORTS accepts {svc.key}'s health check node port; kube-proxy's "
                            f"health server answers {status} (localEndpoints {count} on {n})",
                            step=Step(at, "deliver", pkt.src, pkt.dst, verdict="allowed", rule="KUBE-NODEPORTS")))
            yield Outcome("allowed", hops, receiver=at, seen=(pkt.src, *pkt.src_alts),
                          extra={"status": status, "local_endpoints": count})
            return
        if any(p.port == pkt.dport and p.protocol == pkt.proto for p in self.host_servers.get(n, ())):
            seen = (pkt.src, *pkt.src_alts)
            hops.append(Hop(f"{at}: its host-network server on {pkt.dport}/{pkt.proto} answers; it sees "
                            f"{' or '.join(self.sym(x) for x in seen)} (no workload policy guards the host)",
                            step=Step(at, "deliver", pkt.src, pkt.dst, pkt.src_alts, verdict="allowed")))
            yield Outcome("allowed", hops, receiver=at, seen=seen)
            return
        hops.append(Hop(f"{n}: nothing listens on {self._short(pkt.dst)} {pkt.dport}/{pkt.proto} → "
                        f"{'RST' if pkt.proto == 'TCP' else 'ICMP port unreachable'} → refused (the node's own stack)",
                        step=Step(at, "refuse", pkt.src, pkt.dst, verdict="refused")))
        yield Outcome("refused", hops)

    def _deliver_pod(self, pod: PodInfo, pkt: Packet, hops: list[str]) -> Outcome:
        serves = any(p.port == pkt.dport and p.protocol == pkt.proto for p in pod.ports)
        if not serves:
            hops.append(Hop(f"{pod.symbol}: nothing listens on {pkt.dport}/{pkt.proto} → "
                            f"{'RST' if pkt.proto == 'TCP' else 'ICMP port unreachable'} → refused",
                            step=Step(pod.symbol, "refuse", pkt.src, pkt.dst, verdict="refused")))
            return Outcome("refused", hops)
        seen = (pkt.src, *pkt.src_alts)
        hops.append(Hop(f"{pod.symbol} answers; it sees {' or '.join(self.sym(s) for s in seen)}",
                        step=Step(pod.symbol, "deliver", pkt.src, pkt.dst, pkt.src_alts, verdict="allowed")))
        return Outcome("allowed", hops, receiver=pod.symbol, seen=seen, endpoint=pod)

    # ------------------------------------------------------------------ NAT
    def _postrouting(self, node: NodeInfo, pkt: Packet, out: str, hops: list[str], *, local: bool,
                     from_pod: PodInfo | None) -> Packet:
        n = node.name
        addrs = self._out_addresses(node, out)
        if (self.topo.scenario.cluster.natOutgoing
                and self.in_pods(pkt.src) and not self.in_pods(pkt.dst) and pkt.src not in self._local_addrs(node)
                and not (self.profile.nat_outgoing_excludes_hosts and self._is_host(pkt.dst))):
            hops.append(Hop(f"{n}: POSTROUTING cali-nat-outgoing (natOutgoing: pod source, destination outside the "
                            f"pools) MASQUERADE out {out} picks {self._alts(addrs)}",
                            step=Step(node.symbol, "snat", addrs[0], pkt.dst, tuple(addrs[1:]), via=out,
                                      rule="cali-nat-outgoing")))
            return replace(pkt, src=addrs[0], src_alts=tuple(addrs[1:]), mark=False)
        # Felix's cali-POSTROUTING (natOutgoing, then the tunnel rule) is hooked before KUBE-POSTROUTING:
        # a host-originated packet leaving through the tunnel is masqueraded by Felix even when
        # kube-proxy marked it (same address either way; the trace shows which rule did it).
        if (out in ("tunl0", "vxlan.calico") and local and pkt.src in self._local_addrs(node)
                and pkt.src != node.tunnel_ip):
            hops.append(Hop(f"{n}: POSTROUTING Felix tunnel rule MASQUERADE picks {self.sym(node.tunnel_ip or '')}",
                            step=Step(node.symbol, "snat", node.tunnel_ip or pkt.src, pkt.dst, via=out,
                                      rule="Felix tunnel MASQUERADE")))
            return replace(pkt, src=node.tunnel_ip or pkt.src, mark=False)
        if pkt.hostport_mark:  # portmap prepends its jump to POSTROUTING; nothing else matches a hairpin
            hops.append(Hop(f"{n}: POSTROUTING CNI-HOSTPORT-MASQ MASQUERADE (mark 0x2000, portmap hairpin) out {out} "
                            f"picks {self._alts(addrs)}",
                            step=Step(node.symbol, "snat", addrs[0], pkt.dst, tuple(addrs[1:]), via=out,
                                      rule="CNI-HOSTPORT-MASQ")))
            return replace(pkt, src=addrs[0], src_alts=tuple(addrs[1:]), hostport_mark=False)
        if pkt.mark:
            hops.append(Hop(f"{n}: POSTROUTING KUBE-POSTROUTING MASQUERADE (mark 0x4000) out {out} picks {self._alts(addrs)}",
                            step=Step(node.symbol, "snat", addrs[0], pkt.dst, tuple(addrs[1:]), via=out,
                                      rule="KUBE-POSTROUTING")))
            return replace(pkt, src=addrs[0], src_alts=tuple(addrs[1:]), mark=False)
        return pkt

    def _alts(self, addrs: list[str]) -> str:
        return " or ".join(self.sym(a) for a in addrs)

    def _is_host(self, ip: str) -> bool:
        return any(n.ip == ip for n in self.topo.nodes.values())

    def _out_addresses(self, node: NodeInfo, out: str) -> list[str]:
        if out == "eth0":
            return [node.ip]
        if out in ("tunl0", "vxlan.calico"):
            return [node.tunnel_ip or node.ip]
        # a cali* veth has no IPv4: inet_select_addr takes the first global address of the node
        picks = []
        for kind in self.profile.local_masquerade_sources:
            ip = node.ip if kind == "node" else node.tunnel_ip
            if ip and ip not in picks:
                picks.append(ip)
        return picks

    def _kube_proxy_nat(self, node: NodeInfo, pkt: Packet, hops: list[str], hook: str,
                        local: bool) -> Iterator[tuple[Packet, list[str], tuple[str, str] | None]]:
        """kube-proxy's nat table; yields (packet, hops, deferred filter verdict) per endpoint branch."""
        n = node.name
        for svc in self.topo.services.values():
            sp = self._match_port(svc, pkt.dport, pkt.proto, node_port=False)
            if svc.cluster_ip == pkt.dst and sp is not None:
                name = f"{svc.key}:{sp.port}"
                if not knobs.categorize(svc, sp, n).has_any:
                    yield pkt, hops + [Hop(f"{n}: nat {hook} KUBE-SERVICES: no DNAT for {name} (cluster IP)"
                                           + _no_usable(svc, sp),
                                           step=Step(node.symbol, "service", pkt.src, pkt.dst,
                                                     rule=f"KUBE-SERVICES {svc.key}"))], (
                        "refused", f"KUBE-SERVICES: \"{name} has no endpoints\" → REJECT → refused")
                    return
                eps = knobs.internal_endpoints(svc, sp, n)
                chain = "KUBE-SVL" if svc.itp == "Local" else "KUBE-SVC"
                if not eps:  # internalTrafficPolicy Local, no endpoint on this node
                    yield pkt, hops + [Hop(f"{n}: nat {hook} KUBE-SERVICES: internalTrafficPolicy Local and no endpoint "
                                           f"on {n}, no DNAT for {name} (cluster IP)",
                                           step=Step(node.symbol, "service", pkt.src, pkt.dst,
                                                     rule=f"KUBE-SERVICES {svc.key}"))], (
                        "dropped", f"KUBE-SERVICES: \"{name} has no local endpoints\" → DROP → dropped")
                    return
                mark = pkt.mark
                note = f"{n}: nat {hook} KUBE-SERVICES → {chain} for {name} (cluster IP)" + _fallback(
                    svc, sp, n, local=svc.itp == "Local")
                if self.proxy.masqueradeAll:
                    mark = True
                    note += "; masqueradeAll → KUBE-MARK-MASQ"
                elif self.proxy.detects_local and not self.in_pods(pkt.src):
                    mark = True
                    note += "; source outside the pod CIDR → KUBE-MARK-MASQ"
                yield from self._to_endpoints(node, replace(pkt, mark=mark),
                                              hops + [Hop(note, step=Step(node.symbol, "service", pkt.src, pkt.dst,
                                                                        rule=f"{chain} {svc.key}"))],
                                              svc, sp, eps)
                return
            if svc.lb_ip and svc.lb_ip == pkt.dst and sp is not None:
                name = f"{svc.key}:{sp.port}"
                entry = f"load balancer IP {svc.lb_ip}"
                if svc.source_ranges and knobs.categorize(svc, sp, n).has_any:
                    fw = Step(node.symbol, "service", pkt.src, pkt.dst, rule=f"KUBE-FW {svc.key}")
                    if not knobs.firewall_admits(svc, node, pkt.src):
                        yield pkt, hops + [Hop(f"{n}: nat {hook} {entry} → KUBE-FW for {name}: {self._short(pkt.src)} "
                                               f"is outside loadBalancerSourceRanges ({', '.join(svc.source_ranges)}), "
                                               "no DNAT", step=fw)], knobs.firewall_drop(name)
                        return
                    hops = hops + [Hop(f"{n}: nat {hook} {entry} → KUBE-FW for {name}: source in "
                                       f"loadBalancerSourceRanges → KUBE-EXT", step=fw)]
                yield from self._ext(node, pkt, hops, svc, sp, entry, hook, local)
                return
            if pkt.dst in svc.external_ips and sp is not None:  # no source ranges here: KUBE-FW is the VIP's
                yield from self._ext(node, pkt, hops, svc, sp, f"external IP {pkt.dst}", hook, local)
                return
        if pkt.dst in self._local_addrs(node) or (local and pkt.dst in self._local_addrs(node)):
            for svc in self.topo.services.values():
                sp = self._match_port(svc, pkt.dport, pkt.proto, node_port=True)
                if sp is not None and not knobs.accepts_node_ports(self.proxy, pkt.dst):
                    name = f"{svc.key}:{sp.port}"
                    yield pkt, hops + [Hop(f"{n}: nat {hook} KUBE-SERVICES: {self._short(pkt.dst)} is not in "
                                           f"nodePortAddresses ({', '.join(self.proxy.nodePortAddresses)}), no jump to "
                                           "KUBE-NODEPORTS, no DNAT",
                                           step=Step(node.symbol, "service", pkt.src, pkt.dst,
                                                     rule=f"KUBE-SERVICES {svc.key}"))], knobs.external_filter(
                        svc, sp, n, name)
                    return
                if sp is not None:
                    yield from self._ext(node, pkt, hops, svc, sp, f"NodePort {sp.node_port} "
                                         "(KUBE-SERVICES: dst-type LOCAL → KUBE-NODEPORTS)", hook, local)
                    return
        yield pkt, hops, None

    @staticmethod
    def _match_port(svc: ServiceInfo, dport: int, proto: str, node_port: bool) -> ServicePortInfo | None:
        for sp in svc.ports:
            number = sp.node_port if node_port else sp.port.port
            if number == dport and sp.port.protocol == proto:
                return sp
        return None

    def _ext(self, node: NodeInfo, pkt: Packet, hops: list[str], svc: ServiceInfo, sp: ServicePortInfo,
             entry: str, hook: str, local: bool) -> Iterator[tuple[Packet, list[str], tuple[str, str] | None]]:
        n = node.name
        name = f"{svc.key}:{sp.port}"
        head = f"{n}: nat {hook} {entry} → KUBE-EXT for {name} (ETP {svc.etp})"
        step = Step(node.symbol, "service", pkt.src, pkt.dst, rule=f"KUBE-EXT {svc.key} (ETP {svc.etp})")
        cats = knobs.categorize(svc, sp, n)
        if not cats.has_any:
            yield pkt, hops + [Hop(head + _no_usable(svc, sp), step=step)], (
                "refused", f"KUBE-EXTERNAL-SERVICES: \"{name} has no endpoints\" → REJECT → refused")
            return
        cluster = _fallback(svc, sp, n, local=False)
        if svc.etp == "Cluster":
            yield from self._to_endpoints(node, replace(pkt, mark=True), hops + [
                Hop(head + " marks for masquerade (KUBE-MARK-MASQ)" + cluster, step=step)], svc, sp, cats.cluster)
            return
        if self.in_pods(pkt.src) and self.proxy.detects_local:
            yield from self._to_endpoints(node, pkt, hops + [
                Hop(head + ": pod source → KUBE-SVC (Cluster semantics, no SNAT)" + cluster, step=step)],
                svc, sp, cats.cluster)
            return
        if local or pkt.src in self._local_addrs(node):
            yield from self._to_endpoints(node, replace(pkt, mark=True), hops + [
                Hop(head + ": source is a local address → KUBE-MARK-MASQ, KUBE-SVC (all endpoints)" + cluster,
                    step=step)], svc, sp, cats.cluster)
            return
        if not cats.local:
            yield pkt, hops + [Hop(head + f": no local endpoint on {n}, no DNAT", step=step)], (
                "dropped", f"KUBE-EXTERNAL-SERVICES: \"{name} has no local endpoints\" → DROP → dropped")
            return
        yield from self._to_endpoints(node, pkt, hops + [
            Hop(head + " → KUBE-SVL (local endpoints only, no SNAT)" + _fallback(svc, sp, n, local=True), step=step)],
            svc, sp, cats.local)

    def _to_endpoints(self, node: NodeInfo, pkt: Packet, hops: list[str], svc: ServiceInfo, sp: ServicePortInfo,
                      endpoints: tuple[PodInfo, ...]) -> Iterator[tuple[Packet, list[str], None]]:
        for ep in endpoints:
            mark = pkt.mark
            target = sp.target_for(ep)
            assert target is not None, "endpoints_for keeps the pods that resolve the targetPort"
            note = (f"{node.name}: KUBE-SEP DNAT → {ep.symbol} ({ep.ip}:{target})"
                    + (f" [1 of {len(endpoints)} endpoints, random]" if len(endpoints) > 1 else ""))
            if pkt.src == ep.ip:
                mark = True
                note += "; hairpin (source is the endpoint) → KUBE-MARK-MASQ"
            sticky = knobs.affinity_rule(svc)
            if sticky:
                note += f"; {sticky}: later connections from {self._short(pkt.src)} return to it"
            step = Step(node.symbol, "dnat", pkt.src, ep.ip, to=ep.symbol, rule=sticky)
            yield replace(pkt, dst=ep.ip, dport=target, mark=mark), hops + [Hop(note, step=step)], None


def _no_usable(svc: ServiceInfo, sp: ServicePortInfo) -> str:
    """Why a Service with pods in its EndpointSlice still has no endpoints for kube-proxy ('' when it has no pods)."""
    return (" (its endpoints are neither ready nor serving while terminating: none usable)"
            if svc.endpoints_for(sp) else "")


def _fallback(svc: ServiceInfo, sp: ServicePortInfo, node: str, local: bool) -> str:
    """The note for kube-proxy falling back to serving terminating endpoints ('' when it uses ready ones)."""
    cats = knobs.categorize(svc, sp, node)
    if local and cats.local_fallback:
        return f" (no ready endpoint on {node}: its serving terminating endpoints)"
    if not local and cats.terminating_fallback:
        return " (no ready endpoint anywhere: the serving terminating endpoints)"
    return ""


def _egress_dropped(node: str, at: str, where: str, pkt: Packet, d: Decision) -> Hop:
    """The hop of a packet the sending pod's egress policy drops (in FORWARD or, towards its node, INPUT)."""
    return Hop(f"{node}: {where}: {d.reason} → dropped",
               step=Step(at, "policy", pkt.src, pkt.dst, verdict="dropped", direction="egress", decision=d))
