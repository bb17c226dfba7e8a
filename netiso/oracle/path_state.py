"""What every part of the path engine reads: the scenario, and who owns an address.

The engine is one class (:class:`netiso.oracle.paths.PathEngine`) assembled from parts that each
follow one stage of a node's packet handling (service_nat, host_port_nat, source_nat,
local_delivery, and the routing walk in paths.py). They share this base: the resolved topology
and profile, the policy engine, and the address look-ups every hop needs (is it a pod address,
which node's pod block holds it, which addresses are the node's own, how to name it in a hop).
"""

from __future__ import annotations

import ipaddress

from netiso.model.addressing import symbols_of
from netiso.model.flows import host_servers
from netiso.model.types import NodeInfo, Topology
from netiso.oracle.netpol import PolicyEngine
from netiso.oracle.profile import Profile

TUNNEL_DEV = {"ipip": "tunl0", "vxlan": "vxlan.calico", "direct": "eth0"}


class EngineState:
    """The state of a path engine (one per scenario) and its address look-ups."""

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

    def _alts(self, addrs: list[str]) -> str:
        return " or ".join(self.sym(a) for a in addrs)

    # ------------------------------------------------------------------ address look-ups
    def in_pods(self, ip: str) -> bool:
        return ipaddress.ip_address(ip) in self.pod_net

    def _local_addrs(self, node: NodeInfo) -> set[str]:
        return {node.ip} | ({node.tunnel_ip} if node.tunnel_ip else set())

    def _block_owner(self, ip: str) -> NodeInfo | None:
        if ip not in self._owners:
            addr = ipaddress.ip_address(ip)
            self._owners[ip] = next((n for net, n in self._blocks if addr in net), None)
        return self._owners[ip]

    def _is_host(self, ip: str) -> bool:
        return any(n.ip == ip for n in self.topo.nodes.values())
