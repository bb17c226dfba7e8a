"""Build the datapath of a resolved :class:`~netiso.model.types.Topology`, wired like Calico.

One network namespace per node, external client, pod, plus a switch namespace whose bridge
``br0`` is the node network. What a node gets follows Calico (reference-facts.md section B):

* pods: veth ``eth0`` with the pod IP /32, ``169.254.1.1 dev eth0 scope link`` and
  ``default via 169.254.1.1``; host side ``cali…`` (MAC ee:ee:ee:ee:ee:ee, no IPv4 address,
  proxy_arp=1, proxy_delay=0, rp_filter=1, route_localnet=1, as Felix/the CNI plugin set them)
  and the host route ``podIP/32 dev caliX scope link``; a ``blackhole <block>`` per node;
* direct: ``block via nodeIP dev eth0 proto bird``; VXLAN: ``vxlan.calico`` (VNI 4096, port 4789,
  nolearning) with static neighbour + FDB entries and ``block via tunnelIP dev vxlan.calico
  onlink``; IPIP: ``tunl0`` is a persistent TUN device (no ipip module here) whose packets a
  forwarder process turns into real IP-in-IP, routes ``block via nodeIP dev tunl0 onlink``.

Lab-only choices (each needed because a lab node, unlike a real one, has no default route):

* ``rp_filter`` is 0 on nodes (all/default; the cali* interfaces keep Felix's strict 1): a real
  node has a default route, so its loose/strict check passes for any source that arrives on
  the expected side. Without a default route loose mode would drop every packet whose source
  is not routable from the node at all (a client outside the node network, a VIP reply), which
  is an artefact of the lab, not behaviour to measure.
* ``nxsink0``, a bridge without ports on each node, is the "elsewhere" device: the kernel only
  proxy-ARPs for an address whose route leaves through *another* interface than the one the
  request came in on. A real node's default route provides that for ``169.254.1.1`` (pods ARP
  for their gateway on ``cali…``); here ``169.254.1.1/32 dev nxsink0`` does. The LoadBalancer
  announcer routes an announced VIP there too (see announce.py). Anything sent to it is dropped.
* nodes route the Service network out of ``eth0`` (``serviceNetwork dev eth0 scope link``): a
  real node reaches it by its default route; kube-proxy's DNAT rewrites it before it leaves.
  Services' external IPs likewise (``externalIP/32 dev eth0 scope link``), and a client routes an
  external IP via the node its ``externalip:P/S@NODE`` flows name (the outside network's route).
* clients get a route to every node's pod block via that node (the "external router knows the
  pod routes" assumption of BGP/direct networks), so ``client -> pod:`` flows are possible;
  with ``cluster.clientsRouteToPods: false`` they route the pod network into ``nxsink0`` instead
  (a bridge without ports or ARP: the packet is lost silently, as at a router without the route).
* IPv6 is disabled in every lab namespace (no DAD/RS/MLD chatter in captures; the lab is IPv4).
* the node network's neighbour entries are permanent (node -> other nodes and clients, client ->
  nodes and other clients): the kernel's neighbour table limit (``gc_thresh3``, 1024 by default) is
  one for the whole host, not per namespace, and a 48-node lab asks for ~2,500 entries at once;
  past the limit the kernel refuses new entries, the packet waiting for one is lost and its SYN
  retransmitted 1 s later (issue 16: the false drops at 48 nodes; ``table_fulls`` in
  ``ip -s ntable``). Permanent entries are not counted against the limit (Linux >= 4.19,
  "neighbor: Improve garbage collection"), and the host's limit is not ours to raise. Without
  effect on verdicts: these addresses never move. VIPs stay dynamic (the announcer's ARP answers
  are measured, announce.py), and so do pods (the gateway's proxy ARP is Calico's own).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from netiso.backends.lab import naming
from netiso.backends.lab.runs import Run, TeardownReport
from netiso.model.flows import external_ip_routes
from netiso.model.types import ENCAPSULATIONS, Topology

POD_MTU = {"direct": 1500, "ipip": 1480, "vxlan": 1450}
BRIDGE = "br0"
NODE_IF = "eth0"
POD_IF = "eth0"
VXLAN_DEV = "vxlan.calico"
VXLAN_VNI = 4096
VXLAN_PORT = 4789
IPIP_DEV = "tunl0"
SINK_DEV = "nxsink0"
POD_GATEWAY = "169.254.1.1"
CALI_MAC = "ee:ee:ee:ee:ee:ee"  # Calico's CNI plugin gives every host-side veth this MAC
PROTO_BIRD = "12"  # routes BIRD programs (direct, IPIP); Felix's VXLAN routes use the default (boot)
PROTO_FELIX = "80"  # Felix's own blackhole routes (VXLAN mode)

# Deterministic MACs: 02:6e:78 ("nx", locally administered) : kind : index (16 bit).
MAC_NODE, MAC_CLIENT, MAC_VTEP, MAC_SWITCH_NODE, MAC_SWITCH_CLIENT = 1, 2, 3, 4, 5
_MAC_OUI = "02:6e:78"


def lab_mac(kind: int, index: int) -> str:
    """A deterministic lab MAC that maps back to (kind, index).

    >>> lab_mac(MAC_NODE, 2)
    '02:6e:78:01:00:02'
    >>> parse_lab_mac('02:6E:78:01:00:02')
    (1, 2)
    """
    if not 0 <= index < 1 << 16:
        raise ValueError(f"lab MAC index {index} out of range")
    return f"{_MAC_OUI}:{kind:02x}:{index >> 8:02x}:{index & 0xFF:02x}"


def parse_lab_mac(mac: str) -> tuple[int, int] | None:
    """(kind, index) of a lab MAC, None for any other MAC."""
    parts = mac.lower().split(":")
    if len(parts) != 6 or ":".join(parts[:3]) != _MAC_OUI:
        return None
    return int(parts[3], 16), int(parts[4], 16) << 8 | int(parts[5], 16)


# --------------------------------------------------------------------------- what gets built


@dataclass(frozen=True)
class NodeNet:
    name: str
    index: int
    netns: str
    ip: str
    prefixlen: int
    mac: str
    switch_port: str
    block: str
    tunnel_ip: str | None
    tunnel_dev: str | None  # vxlan.calico | tunl0 | None (direct)
    vtep_mac: str | None


@dataclass(frozen=True)
class ClientNet:
    name: str
    index: int
    netns: str
    ip: str
    mac: str
    switch_port: str


@dataclass(frozen=True)
class PodNet:
    symbol: str
    netns: str
    ip: str
    node: str
    host_iface: str
    mtu: int


@dataclass
class Stage:
    """Batches that may run in parallel: (netns, tool, lines); tool is ``ip`` or ``bridge``."""

    name: str
    batches: list[tuple[str, str, list[str]]] = field(default_factory=list)


@dataclass
class BuildPlan:
    """Everything :func:`build` will do, computed without touching the kernel (testable)."""

    namespaces: list[str]
    sysctls_before: dict[str, dict[str, str]]  # written before any link exists (defaults apply)
    stages: list[Stage]
    sysctls_after: dict[str, dict[str, str]]  # per-interface keys, once the interfaces exist
    net: LabNet


@dataclass
class LabNet:
    """The built lab network: namespace, interface and MAC of every node, client and pod."""

    run: Run | None
    topology: Topology
    encapsulation: str
    switch_ns: str
    nodes: dict[str, NodeNet]
    clients: dict[str, ClientNet]
    pods: dict[str, PodNet]  # by pod symbol
    pod_mtu: int
    bridge: str = BRIDGE
    announced: dict[str, str] = field(default_factory=dict)  # VIP -> node (see announce.py)
    up_seconds: float = 0.0

    def ns_of(self, symbol: str) -> str:
        """Namespace of ``node:N``, ``client:C`` or ``pod:PROJECT/WORKLOAD@NODE``."""
        kind, _, name = symbol.partition(":")
        if kind == "node" and name in self.nodes:
            return self.nodes[name].netns
        if kind == "client" and name in self.clients:
            return self.clients[name].netns
        if kind == "pod" and symbol in self.pods:
            return self.pods[symbol].netns
        known = [*(f"node:{x}" for x in self.nodes), *(f"client:{x}" for x in self.clients), *self.pods]
        raise KeyError(f"unknown lab endpoint {symbol!r} (known: {', '.join(known)})")

    def node_of_mac(self, mac: str) -> str | None:
        """The node whose eth0 has ``mac`` (how an ARP answer is traced back to a node)."""
        return next((n.name for n in self.nodes.values() if n.mac == mac.lower()), None)

    def teardown(self) -> TeardownReport:
        """End the run: kill its processes, delete its namespaces and state file."""
        if self.run is None:
            raise RuntimeError("this LabNet was planned, not built: nothing to tear down")
        return self.run.down()


# --------------------------------------------------------------------------- planning


def _check(topology: Topology) -> tuple[str, ipaddress.IPv4Network]:
    enc = topology.encapsulation
    if enc not in ENCAPSULATIONS:
        raise ValueError(f"encapsulation {enc!r}: expected one of {', '.join(ENCAPSULATIONS)}")
    net = ipaddress.IPv4Network(topology.node_network)
    indexes = [n.index for n in topology.nodes.values()]
    if len(set(indexes)) != len(indexes):
        raise ValueError(f"node indexes must be unique, got {indexes}")
    for n in topology.nodes.values():
        if ipaddress.IPv4Address(n.ip) not in net:
            raise ValueError(f"node {n.name}: IP {n.ip} is outside the node network {net}")
        if enc != "direct" and not n.tunnel_ip:
            raise ValueError(f"node {n.name}: {enc} mode needs a tunnel IP")
    for c in topology.clients.values():
        if ipaddress.IPv4Address(c.ip) not in net:
            raise ValueError(f"client {c.name}: IP {c.ip} is outside the node network {net}")
    for p in topology.pods:
        node = topology.nodes.get(p.node)
        if node is None:
            raise ValueError(f"{p.symbol}: unknown node {p.node!r}")
        if ipaddress.IPv4Address(p.ip) not in ipaddress.IPv4Network(node.block):
            raise ValueError(f"{p.symbol}: IP {p.ip} is outside its node's block {node.block}")
    return enc, net


def plan(topology: Topology, prefix: str) -> BuildPlan:
    """Compute namespaces, sysctls and ``ip``/``bridge`` batches for ``topology``."""
    enc, net = _check(topology)
    mtu = POD_MTU[enc]
    sw = naming.switch_ns(prefix)
    tunnel_dev = {"direct": None, "vxlan": VXLAN_DEV, "ipip": IPIP_DEV}[enc]
    nodes = {
        n.name: NodeNet(
            name=n.name,
            index=n.index,
            netns=naming.node_ns(prefix, n.name),
            ip=n.ip,
            prefixlen=net.prefixlen,
            mac=lab_mac(MAC_NODE, n.index),
            switch_port=f"swn{n.index}",
            block=n.block,
            tunnel_ip=n.tunnel_ip if enc != "direct" else None,
            tunnel_dev=tunnel_dev,
            vtep_mac=lab_mac(MAC_VTEP, n.index) if enc == "vxlan" else None,
        )
        for n in topology.nodes.values()
    }
    clients = {
        c.name: ClientNet(
            name=c.name,
            index=i,
            netns=naming.client_ns(prefix, c.name),
            ip=c.ip,
            mac=lab_mac(MAC_CLIENT, i),
            switch_port=f"swc{i}",
        )
        for i, c in enumerate(topology.clients.values())
    }
    pods = {
        p.symbol: PodNet(
            symbol=p.symbol,
            netns=naming.pod_ns(prefix, p),
            ip=p.ip,
            node=p.node,
            host_iface=naming.cali_iface(p),
            mtu=mtu,
        )
        for p in topology.pods
    }
    labnet = LabNet(None, topology, enc, sw, nodes, clients, pods, mtu)

    namespaces = [sw, *(n.netns for n in nodes.values()), *(c.netns for c in clients.values())]
    namespaces += [p.netns for p in pods.values()]
    if len(set(namespaces)) != len(namespaces):
        raise ValueError("two lab objects map to the same namespace name")

    # The kernel rate-limits ICMP errors per peer (about 6, then 1/s): a burst of probes would see
    # REJECT / port-unreachable answers turn into silence, i.e. "refused" misread as "dropped".
    before: dict[str, dict[str, str]] = {ns: {"net/ipv4/icmp_ratemask": "0"} for ns in namespaces}
    if Path("/proc/sys/net/ipv6").is_dir():
        for ns in namespaces:
            before[ns].update({"net/ipv6/conf/all/disable_ipv6": "1", "net/ipv6/conf/default/disable_ipv6": "1"})
    if Path("/proc/sys/net/bridge").is_dir():
        # A switch does not run iptables/conntrack on the frames it bridges.
        before.setdefault(sw, {}).update(
            {f"net/bridge/bridge-nf-call-{t}": "0" for t in ("iptables", "ip6tables", "arptables")}
        )
    for n in nodes.values():
        before.setdefault(n.netns, {}).update(
            {
                "net/ipv4/ip_forward": "1",
                "net/ipv4/conf/all/rp_filter": "0",
                "net/ipv4/conf/default/rp_filter": "0",
            }
        )

    switch = Stage("switch", [(sw, "ip", _switch_lines(nodes, clients))])
    node_stage = Stage("nodes", [(n.netns, "ip", _node_lines(labnet, n)) for n in nodes.values()])
    leaf_stage = Stage("clients+pods")
    if enc == "vxlan":
        leaf_stage.batches += [(n.netns, "bridge", _fdb_lines(labnet, n)) for n in nodes.values()]
    leaf_stage.batches += [(c.netns, "ip", _client_lines(labnet, c)) for c in clients.values()]
    leaf_stage.batches += [(p.netns, "ip", _pod_lines(p)) for p in pods.values()]

    after: dict[str, dict[str, str]] = {}
    for n in nodes.values():
        kv = after.setdefault(n.netns, {f"net/ipv4/neigh/{NODE_IF}/proxy_delay": "0"})
        for p in pods.values():
            if p.node == n.name:
                i = p.host_iface
                kv.update(
                    {
                        f"net/ipv4/conf/{i}/proxy_arp": "1",
                        f"net/ipv4/neigh/{i}/proxy_delay": "0",
                        f"net/ipv4/conf/{i}/forwarding": "1",
                        f"net/ipv4/conf/{i}/route_localnet": "1",
                        f"net/ipv4/conf/{i}/rp_filter": "1",
                    }
                )
    return BuildPlan(namespaces, before, [switch, node_stage, leaf_stage], after, labnet)


def _switch_lines(nodes: dict[str, NodeNet], clients: dict[str, ClientNet]) -> list[str]:
    lines = [
        "link set lo up",
        f"link add {BRIDGE} type bridge stp_state 0 mcast_snooping 0",
        f"link set {BRIDGE} up",
    ]
    ports = [(n.switch_port, lab_mac(MAC_SWITCH_NODE, n.index), n.mac, n.netns) for n in nodes.values()]
    ports += [(c.switch_port, lab_mac(MAC_SWITCH_CLIENT, c.index), c.mac, c.netns) for c in clients.values()]
    for port, port_mac, peer_mac, peer_ns in ports:
        lines += [
            f"link add {port} address {port_mac} type veth peer name {NODE_IF} address {peer_mac} netns {peer_ns}",
            f"link set {port} master {BRIDGE}",
            f"link set {port} up",
        ]
    return lines


def _node_lines(labnet: LabNet, n: NodeNet) -> list[str]:
    enc = labnet.encapsulation
    remotes = [r for r in labnet.nodes.values() if r is not n]
    lines = [
        "link set lo up",
        f"addr add {n.ip}/{n.prefixlen} dev {NODE_IF}",
        f"link set {NODE_IF} up",
        f"link add {SINK_DEV} type bridge",
        f"link set {SINK_DEV} up",
        f"route add {POD_GATEWAY}/32 dev {SINK_DEV}",
        f"route add blackhole {n.block} proto {PROTO_FELIX if enc == 'vxlan' else PROTO_BIRD}",
        # the Service network is reachable on the node network (kube-proxy DNATs before routing)
        f"route replace {labnet.topology.service_network} dev {NODE_IF} scope link",
    ]
    # external IPs, like the Service network, leave by a real node's default route unless DNATed
    lines += [f"route replace {ip}/32 dev {NODE_IF} scope link"
              for svc in labnet.topology.services.values() for ip in svc.external_ips]
    lines += _neighbours(labnet, n.ip)
    for p in labnet.pods.values():
        if p.node != n.name:
            continue
        lines += [
            f"link add {p.host_iface} mtu {p.mtu} address {CALI_MAC} type veth"
            f" peer name {POD_IF} mtu {p.mtu} netns {p.netns}",
            f"link set {p.host_iface} up",
            f"route add {p.ip}/32 dev {p.host_iface} scope link",
        ]
    if enc == "direct":
        lines += [f"route add {r.block} via {r.ip} dev {NODE_IF} proto {PROTO_BIRD}" for r in remotes]
    elif enc == "vxlan":
        lines += [
            f"link add {VXLAN_DEV} address {n.vtep_mac} mtu {labnet.pod_mtu} type vxlan id {VXLAN_VNI}"
            f" local {n.ip} dev {NODE_IF} dstport {VXLAN_PORT} nolearning",
            f"addr add {n.tunnel_ip}/32 dev {VXLAN_DEV}",
            f"link set {VXLAN_DEV} up",
        ]
        for r in remotes:
            lines += [
                f"neigh add {r.tunnel_ip} lladdr {r.vtep_mac} dev {VXLAN_DEV} nud permanent",
                f"route add {r.block} via {r.tunnel_ip} dev {VXLAN_DEV} onlink",
            ]
    else:  # ipip: TUN device, encapsulated by the forwarder (ipip.py)
        lines += [
            f"tuntap add mode tun name {IPIP_DEV}",
            f"link set {IPIP_DEV} mtu {labnet.pod_mtu}",
            f"addr add {n.tunnel_ip}/32 dev {IPIP_DEV}",
            f"link set {IPIP_DEV} up",
        ]
        lines += [f"route add {r.block} via {r.ip} dev {IPIP_DEV} onlink proto {PROTO_BIRD}" for r in remotes]
    return lines


def _neighbours(labnet: LabNet, own_ip: str) -> list[str]:
    """Permanent neighbour entries for every other node and client on the node network (see the
    module docstring: the host-wide neighbour table limit would drop packets in a large lab)."""
    peers = [(r.ip, r.mac) for r in labnet.nodes.values()] + [(c.ip, c.mac) for c in labnet.clients.values()]
    return [f"neigh replace {ip} lladdr {mac} dev {NODE_IF} nud permanent" for ip, mac in peers if ip != own_ip]


def _fdb_lines(labnet: LabNet, n: NodeNet) -> list[str]:
    return [
        f"fdb add {r.vtep_mac} dev {VXLAN_DEV} dst {r.ip} self permanent"
        for r in labnet.nodes.values()
        if r is not n
    ]


def _client_lines(labnet: LabNet, c: ClientNet) -> list[str]:
    """A client's address and routes: pod blocks via their nodes, or (``clientsRouteToPods: false``)
    the pod network into a portless, ARP-less bridge: a router that knows no pod route loses the
    packet silently (a timeout, ``dropped``), where a missing route would fail at once (ENETUNREACH)."""
    prefixlen = ipaddress.IPv4Network(labnet.topology.node_network).prefixlen
    lines = ["link set lo up", f"addr add {c.ip}/{prefixlen} dev {NODE_IF}", f"link set {NODE_IF} up"]
    lines += _neighbours(labnet, c.ip)
    if labnet.topology.scenario.cluster.clientsRouteToPods:
        lines += [f"route add {n.block} via {n.ip} dev {NODE_IF}" for n in labnet.nodes.values()]
    else:
        lines += [f"link add {SINK_DEV} type bridge", f"link set {SINK_DEV} arp off", f"link set {SINK_DEV} up",
                  f"route add {labnet.topology.pod_network} dev {SINK_DEV}"]
    # externalip:P/S@NODE flows: the outside network routes the Service's external IP to that node
    for ip, node in sorted(external_ip_routes(labnet.topology).get(c.name, {}).items()):
        lines.append(f"route add {ip}/32 via {labnet.nodes[node].ip} dev {NODE_IF}")
    return lines


def _pod_lines(p: PodNet) -> list[str]:
    return [
        "link set lo up",
        f"addr add {p.ip}/32 dev {POD_IF}",
        f"link set {POD_IF} up",
        f"route add {POD_GATEWAY} dev {POD_IF} scope link",
        f"route add default via {POD_GATEWAY} dev {POD_IF}",
    ]


# --------------------------------------------------------------------------- building


def _run_stage(run: Run, stage: Stage, workers: int) -> None:
    def one(batch: tuple[str, str, list[str]]) -> None:
        netns, tool, lines = batch
        run.ip_batch(netns, lines, tool=tool)

    if workers <= 1 or len(stage.batches) <= 1:
        for b in stage.batches:
            one(b)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"lab-{stage.name}") as pool:
        for fut in [pool.submit(one, b) for b in stage.batches]:
            fut.result()


def build(topology: Topology, run: Run, *, workers: int = 4) -> LabNet:
    """Create the namespaces, links, addresses, routes and sysctls of ``topology``.

    About one ``ip`` process per namespace (run ``workers`` at a time) and two sysctl threads.
    On any failure the run is torn down before the error propagates: nothing is left
    half-built.
    """
    t0 = time.monotonic()
    p = plan(topology, run.prefix)
    try:
        run.add_namespaces(p.namespaces)
        run.write_sysctls(p.sysctls_before)
        for stage in p.stages:
            _run_stage(run, stage, workers)
        run.write_sysctls(p.sysctls_after)
    except BaseException:
        run.down()
        raise
    p.net.run = run
    p.net.up_seconds = time.monotonic() - t0
    return p.net


def verify_no_default_route(labnet: LabNet) -> list[str]:
    """Nodes and clients that have a default route (should be none: lab traffic stays in)."""
    bad = []
    for ns in [*(n.netns for n in labnet.nodes.values()), *(c.netns for c in labnet.clients.values())]:
        assert labnet.run is not None
        out = labnet.run.run(["ip", "-4", "route", "show", "default"], netns=ns).stdout
        if out.strip():
            bad.append(ns)
    return bad


__all__: Sequence[str] = (
    "BRIDGE",
    "NODE_IF",
    "POD_MTU",
    "SINK_DEV",
    "VXLAN_DEV",
    "BuildPlan",
    "ClientNet",
    "LabNet",
    "NodeNet",
    "PodNet",
    "build",
    "lab_mac",
    "parse_lab_mac",
    "plan",
    "verify_no_default_route",
)
