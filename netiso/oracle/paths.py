"""The path engine: walk one connection attempt through nodes as the kernel would.

A packet is followed hop by hop through the same decisions a node's netfilter and routing make
under the default profile (kube-proxy iptables + Calico iptables), in kernel order:

  nat PREROUTING/OUTPUT  kube-proxy: KUBE-SERVICES -> [KUBE-FW] -> KUBE-EXT (mark) -> KUBE-SVC/SVL -> KUBE-SEP
                         (cluster IP, LB IP, NodePort, external IP)
                         (DNAT; service_nat.py); the Service and kube-proxy knobs are decided in proxy_knobs.py;
                         then portmap's CNI-HOSTPORT-DNAT for a hostPort (host_port_nat.py)
  routing                local address (INPUT) / local pod (cali*) / remote block (tunnel or eth0) / node net
  filter FORWARD/INPUT   Calico first: sender pod's egress policy, receiver pod's ingress policy;
                         then kube-proxy filter: KUBE-PROXY-FIREWALL DROP (source ranges),
                         KUBE-EXTERNAL-SERVICES DROP/REJECT, KUBE-SERVICES REJECT (DROP: ITP Local);
                         INPUT from a local pod: cali-wl-to-host (egress policy, then Felix's
                         defaultEndpointToHostAction: ACCEPT ends INPUT before kube-proxy's rules)
  local delivery         a node address: its host-network server answers (``to: node:N`` flows,
                         flows.host_servers), else the node's stack refuses (RST / ICMP) (local_delivery.py)
  nat POSTROUTING        Calico natOutgoing, Felix tunnel MASQUERADE, portmap's CNI-HOSTPORT-MASQ (hairpin),
                         KUBE-POSTROUTING MASQUERADE (source_nat.py)

This module holds the walk itself: where a packet starts (a client, a pod, a node's host
network), the routing decision on each node and Calico's FORWARD policy; each stage that
mirrors one component's chains lives in its own module, mixed into :class:`PathEngine`. The
records a walk writes (:class:`Packet`, :class:`Hop`, :class:`Step`, :class:`Outcome`, ...)
live in hops.py and are importable from here too.

Every decision appends a readable hop line with its reason. Where kube-proxy balances over
several endpoints the walk branches, so one flow yields one :class:`Outcome` per endpoint.
Replies are assumed to follow conntrack back (true for every path these rules build).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import replace

from netiso.model.types import NodeInfo, PodInfo
from netiso.oracle.hops import Hop, Origin, Outcome, Packet, PolicyCheck, Step, egress_dropped
from netiso.oracle.host_port_nat import HostPortNat
from netiso.oracle.local_delivery import LocalDelivery
from netiso.oracle.path_state import TUNNEL_DEV
from netiso.oracle.service_nat import ServiceNat
from netiso.oracle.source_nat import SourceNat

# the names this module has always offered (predict, minimal, deciding, the reports and tests import them)
__all__ = ["TUNNEL_DEV", "Hop", "Origin", "Outcome", "Packet", "PathEngine", "PolicyCheck", "Step"]


class PathEngine(ServiceNat, HostPortNat, SourceNat, LocalDelivery):
    """Walk packets through a resolved topology (one engine per scenario).

    Its state (topology, profile, policy engine) and the address look-ups come from
    :class:`~netiso.oracle.path_state.EngineState`, the base of every part mixed in here.
    """

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
                    hops.append(egress_dropped(n, at, f"FORWARD cali-from-wl-dispatch (egress of {from_pod.symbol})",
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
