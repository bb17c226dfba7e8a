"""kube-proxy's nat table in the path engine: which Service a packet hits and where it is DNATed.

Mirrors kube-proxy's iptables mode (kubernetes/kubernetes ``pkg/proxy/iptables/proxier.go``):
nat PREROUTING/OUTPUT jump to KUBE-SERVICES, which matches a cluster IP (-> KUBE-SVC, or
KUBE-SVL with internalTrafficPolicy Local), a load-balancer IP (-> KUBE-FW when
loadBalancerSourceRanges are set, then KUBE-EXT), an external IP (-> KUBE-EXT) and, last, any
local address (--dst-type LOCAL -> KUBE-NODEPORTS -> KUBE-EXT). KUBE-EXT applies the
externalTrafficPolicy; KUBE-SEP DNATs to one endpoint, and the walk branches once per endpoint
(kube-proxy balances at random). KUBE-MARK-MASQ only sets the 0x4000 mark here; the masquerade
itself happens in POSTROUTING (:mod:`netiso.oracle.source_nat`).

What nothing DNATs is not decided here: the filter verdict kube-proxy will give it (REJECT for
no endpoints, DROP for none local or outside the source ranges) is handed back *deferred*,
because Calico's policy chains run before kube-proxy's filter rules (paths.py applies it). The
Service and kube-proxy knobs (endpoint categories, source ranges, nodePortAddresses, affinity)
are decided in :mod:`netiso.oracle.proxy_knobs`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from netiso.model.types import NodeInfo, PodInfo, ServiceInfo, ServicePortInfo
from netiso.oracle import proxy_knobs as knobs
from netiso.oracle.hops import Hop, Packet, Step
from netiso.oracle.path_state import EngineState


class ServiceNat(EngineState):
    """KUBE-SERVICES and the chains behind it (KUBE-FW, KUBE-EXT, KUBE-SVC/SVL, KUBE-SEP)."""

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

