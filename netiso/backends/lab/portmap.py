"""The CNI portmap plugin's hostPort rules for one lab node, as the plugin writes them.

Mirrors containernetworking/plugins ``plugins/meta/portmap/portmap.go`` (iptables backend),
which Calico's CNI chains for a pod with a hostPort::

    nat PREROUTING/OUTPUT  -m addrtype --dst-type LOCAL -> CNI-HOSTPORT-DNAT
    CNI-HOSTPORT-DNAT      -p tcp -m multiport --dports H1,H2 -> CNI-DN-x   (one chain per pod)
    CNI-DN-x               -p tcp --dport H -j DNAT --to-destination podIP:containerPort

Only the pod's own node gets them: the port is open on that node's addresses only. No SNAT
for traffic from elsewhere, so the pod (and its ingress policy, after DNAT) sees the client.

Knowingly different: upstream also marks hairpin (pod to its own hostPort) and localhost
traffic in CNI-DN-x for CNI-HOSTPORT-MASQ; the loader refuses the hairpin flow and the lab
never sends from 127.0.0.1, so those rules are left out (they would never match). Upstream's
chain name hashes the network name and container ID; here the pod symbol, which is stable.
A DNAT decides nothing (``netiso.oracle.decided``): the policy after it does, so no rule here
carries a netiso token.
"""

from __future__ import annotations

import hashlib

from netiso.backends.lab.iptables import RuleSet
from netiso.model.types import PodInfo, Topology

TOP_CHAIN = "CNI-HOSTPORT-DNAT"


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
                nat.add(chain, f"-p {proto.lower()} -m {proto.lower()} --dport {h} -j DNAT "
                        f"--to-destination {pod.ip}:{p.port}")
    return rs
