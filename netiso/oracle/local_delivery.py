"""Local delivery in the path engine: filter INPUT on a node address, and the last hop into a pod.

A packet addressed to one of the node's own addresses (and not DNATed away) meets filter INPUT
in the order Felix and kube-proxy leave it: Felix's cali-INPUT first (projectcalico/calico
felix/rules/static.go: a pod's packet to its own node goes to cali-wl-to-host, the pod's egress
policy, then ``defaultEndpointToHostAction``), then kube-proxy's KUBE-NODEPORTS (health check
node ports ACCEPTed, answered by kube-proxy's health server, pkg/proxy/healthcheck) and the
deferred filter verdicts (KUBE-EXTERNAL-SERVICES REJECT/DROP, KUBE-PROXY-FIREWALL DROP), then
the node's stack: its host-network server answers (``to: node:N`` flows, flows.host_servers) or
it refuses (RST / ICMP port unreachable). A pod answers when something listens on the port.
"""

from __future__ import annotations

from collections.abc import Iterator

from netiso.model.types import NodeInfo, PodInfo
from netiso.oracle import proxy_knobs as knobs
from netiso.oracle.hops import Hop, Outcome, Packet, Step, egress_dropped
from netiso.oracle.path_state import EngineState


class LocalDelivery(EngineState):
    """filter INPUT and the host stack of a node; delivery to a pod."""

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
                hops.append(egress_dropped(n, at, "INPUT cali-wl-to-host", pkt, d))
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
