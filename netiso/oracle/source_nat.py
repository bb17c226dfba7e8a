"""nat POSTROUTING in the path engine: who rewrites a packet's source on its way out of a node.

In the order the chains are hooked on a node running Calico (Felix, iptables dataplane), the
CNI portmap plugin and kube-proxy (iptables mode):

  cali-nat-outgoing        Calico's IPPool natOutgoing: a pod source leaving the pools is masqueraded
                           (projectcalico/calico felix/rules/nat.go); ``nat_outgoing_excludes_hosts``
                           of the profile keeps node destinations out of it
  Felix tunnel MASQUERADE  a host-originated packet leaving through tunl0 / vxlan.calico takes the
                           tunnel address (felix/rules/static.go StaticNATPostroutingChains, hooked
                           before KUBE-POSTROUTING)
  CNI-HOSTPORT-MASQ        portmap's hairpin: the 0x2000 mark set by CNI-HOSTPORT-SETMARK
                           (containernetworking/plugins plugins/meta/portmap/portmap.go)
  KUBE-POSTROUTING         kube-proxy: MASQUERADE what KUBE-MARK-MASQ marked 0x4000
                           (kubernetes/kubernetes pkg/proxy/iptables/proxier.go)

MASQUERADE takes the primary address of the out device; a cali* veth has none, so the kernel's
inet_select_addr takes the first global address of the node (the profile's
``local_masquerade_sources`` lists the candidates, any of which a receiver may see).
"""

from __future__ import annotations

from dataclasses import replace

from netiso.model.types import NodeInfo, PodInfo
from netiso.oracle.hops import Hop, Packet, Step
from netiso.oracle.path_state import EngineState


class SourceNat(EngineState):
    """The masquerade decisions of nat POSTROUTING, and the address a MASQUERADE picks."""

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
