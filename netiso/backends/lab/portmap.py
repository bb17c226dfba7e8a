"""The CNI portmap plugin's hostPort rules for one lab node, as the plugin writes them.

Mirrors containernetworking/plugins ``plugins/meta/portmap/portmap_iptables.go`` (iptables
backend; ``forwardPorts``, ``fillDnatRules``, ``genSetMarkChain``, ``genMarkMasqChain``), which
Calico's CNI chains for a pod with a hostPort, with ``"snat": true`` (calico.yaml's conflist; also
portmap's default when unset, main.go)::

    nat PREROUTING/OUTPUT  -m addrtype --dst-type LOCAL -> CNI-HOSTPORT-DNAT
    CNI-HOSTPORT-DNAT      -p tcp -m multiport --dports H1,H2 -> CNI-DN-x   (one chain per pod)
    CNI-DN-x               -p tcp --dport H -s podIP/32 -j CNI-HOSTPORT-SETMARK   (hairpin)
                           -p tcp --dport H -j DNAT --to-destination podIP:containerPort
    CNI-HOSTPORT-SETMARK   -j MARK --set-xmark 0x2000/0x2000   (markMasqBit 13, the default)
    nat POSTROUTING        -> CNI-HOSTPORT-MASQ: -m mark --mark 0x2000/0x2000 -j MASQUERADE

Only the pod's own node gets them: the port is open on that node's addresses only. No SNAT for
traffic from elsewhere, so the pod (and its ingress policy, after DNAT) sees the client. The
hairpin rule's source is the pod's own network, ``podIP/32`` with Calico's IPAM
(cni-plugin/pkg/ipamplugin/ipam_plugin.go), so only the pod itself is marked: its packet to its
own hostPort is DNATed back out of its cali veth, Calico's ingress policy (filter FORWARD) sees
the pod itself, and CNI-HOSTPORT-MASQ then rewrites the source to the address the kernel picks
for that route: the veth has no IPv4, so ``inet_select_addr`` takes the first global address of
the node's devices (eth0's InternalIP here and on a real node; the tunnel address on a node whose
tunnel device comes first - the oracle accepts either, profile.local_masquerade_sources). The lab
and a real Calico node run the same kernel code for it, so nothing is lab-specific. Why the
masquerade at all: without it the pod would receive a packet from its own address and answer it
over its own ``lo``, past the node's conntrack, and the connection would never complete (seen on
the lab with the SETMARK rule removed: the hairpin probe times out).

Knowingly different: upstream also marks ``-s 127.0.0.1`` (a node process to localhost:hostPort,
with route_localnet on the veth); a scenario cannot address 127.0.0.1 (a ``node:`` source sends
from the node's address to ``hostport:`` = the InternalIP), so that rule is left out. Upstream
prepends its POSTROUTING jump; here it comes after Calico's and kube-proxy's jumps (merge
order): neither of theirs matches a hairpin packet (destination in the pools, no 0x4000 mark, no
tunnel device), so without effect. The MASQUERADE rule carries the ``masquerade portmap`` token
(``netiso.oracle.decided``) so a trace names it; the DNAT and MARK decide nothing. Upstream's
chain name hashes the network name and container ID; here the pod symbol, which is stable.
"""

from __future__ import annotations

import hashlib

from netiso.backends.lab.iptables import RuleSet
from netiso.model.types import PodInfo, Topology
from netiso.oracle.decided import Decision

TOP_CHAIN = "CNI-HOSTPORT-DNAT"
SETMARK_CHAIN = "CNI-HOSTPORT-SETMARK"
MASQ_CHAIN = "CNI-HOSTPORT-MASQ"
MASQ_MARK = "0x2000/0x2000"  # 1 << markMasqBit (13, portmap's DefaultMarkBit)


def pod_chain(pod: PodInfo) -> str:
    """``CNI-DN-`` and 17 hex characters of a hash, as upstream's FormatChainNameWithPrefix."""
    return "CNI-DN-" + hashlib.sha512(pod.symbol.encode()).hexdigest()[:17]


def render_portmap(topology: Topology, node: str) -> RuleSet:
    """The nat rules portmap keeps on ``node`` for the hostPorts of the pods there (empty if none)."""
    rs = RuleSet()
    pods = [p for p in topology.pods if p.node == node and p.host_ports]
    if not pods:
        return rs
    nat = rs.table("nat")
    nat.add(SETMARK_CHAIN, f'-m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark {MASQ_MARK}')
    masq = Decision("masquerade", "portmap").comment("CNI portfwd requiring masquerade")
    nat.add(MASQ_CHAIN, f'-m mark --mark {MASQ_MARK} -m comment --comment "{masq}" -j MASQUERADE')
    nat.hook("POSTROUTING", f'-m comment --comment "CNI portfwd requiring masquerade" -j {MASQ_CHAIN}')
    nat.chain(TOP_CHAIN)
    for builtin in ("PREROUTING", "OUTPUT"):
        nat.hook(builtin, f"-m addrtype --dst-type LOCAL -j {TOP_CHAIN}")
    for pod in pods:
        chain = pod_chain(pod)
        nat.chain(chain)
        for proto in sorted({p.protocol for _, p in pod.host_ports}):
            mapped = [(h, p) for h, p in pod.host_ports if p.protocol == proto]
            dports = ",".join(str(h) for h, _ in mapped)
            nat.add(TOP_CHAIN, f'-p {proto.lower()} -m comment --comment "dnat name: \\"k8s-pod-network\\" id: '
                    f'\\"{pod.symbol}\\"" -m multiport --dports {dports} -j {chain}')
            for h, p in mapped:
                base = f"-p {proto.lower()} -m {proto.lower()} --dport {h}"
                nat.add(chain, f"{base} -s {pod.ip}/32 -j {SETMARK_CHAIN}")  # hairpin: the pod itself
                nat.add(chain, f"{base} -j DNAT --to-destination {pod.ip}:{p.port}")
    return rs
