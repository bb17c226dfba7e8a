"""The CNI portmap plugin's hostPort DNAT in the path engine.

Mirrors containernetworking/plugins ``plugins/meta/portmap/portmap.go``: a pod's hostPort is
published on its own node only, by DNAT in nat PREROUTING/OUTPUT (CNI-HOSTPORT-DNAT, one CNI-DN-x
chain per pod), after kube-proxy's KUBE-SERVICES found no Service for the packet. No SNAT for
traffic from elsewhere, so the pod's ingress policy sees the client. The hairpin (a pod to its
own hostPort) is marked here and masqueraded in POSTROUTING (:mod:`netiso.oracle.source_nat`).
"""

from __future__ import annotations

from dataclasses import replace

from netiso.model.types import NodeInfo
from netiso.oracle.hops import Hop, Packet, Step
from netiso.oracle.path_state import EngineState


class HostPortNat(EngineState):
    """CNI-HOSTPORT-DNAT (and CNI-HOSTPORT-SETMARK for the hairpin) on the pod's node."""

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
