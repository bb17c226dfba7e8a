"""LoadBalancer VIP announcement in layer 2 (MetalLB L2 / OpenELB layer2), and who won.

MetalLB's and OpenELB's speakers answer ARP for a VIP from exactly one node, without putting
the VIP on any interface: with kube-proxy in iptables mode the VIP never becomes a local
address, the node only DNATs what arrives for it (``KUBE-SERVICES -d <lbIP>``). The lab keeps
that property and lets the kernel answer instead of a userspace speaker:

* ``ip neigh add proxy VIP dev eth0`` on the elected node, with forwarding on and
  ``proxy_delay`` 0 on eth0 (set by topology.py), so the reply is immediate;
* ``VIP/32 dev nxsink0``: the kernel answers a proxy entry only when the target's route leaves
  through another interface than the one the request came in on (net/ipv4/arp.c
  ``arp_process``), and the node network route would point back out of eth0. Only ARP looks at
  this route: packets for the VIP are DNATed in PREROUTING before routing; anything else sent
  to the VIP is dropped in the sink (a real node would bounce it off eth0 and fail ARP).

On (re-)election the new node sends a gratuitous ARP, like the speakers do, so that clients
that already cached the old node's MAC move over. :func:`who_has` reads a client's neighbour
entry and maps the MAC back to a node: that is how an observation records which node won.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import struct

from netiso.backends.lab.netns import call_in
from netiso.backends.lab.runs import Run
from netiso.backends.lab.topology import NODE_IF, SINK_DEV, LabNet

_ARP_VALID_STATES = {"REACHABLE", "STALE", "DELAY", "PROBE", "PERMANENT", "NOARP"}


def _check_vip(labnet: LabNet, vip: str) -> None:
    net = ipaddress.IPv4Network(labnet.topology.node_network)
    if ipaddress.IPv4Address(vip) not in net:
        raise ValueError(f"VIP {vip} is outside the node network {net}: clients could not ARP for it")
    if any(n.ip == vip for n in labnet.nodes.values()) or any(c.ip == vip for c in labnet.clients.values()):
        raise ValueError(f"VIP {vip} is already a node or client address")


def _run(labnet: LabNet) -> Run:
    """The Run that owns the lab (announcing needs a built lab, not a plan)."""
    if labnet.run is None:
        raise RuntimeError("the lab network is not built")
    return labnet.run


def announce(labnet: LabNet, node: str, vip: str, *, gratuitous: bool = True) -> None:
    """Make ``node`` answer ARP for ``vip`` (moving it from the previous announcer if any)."""
    _check_vip(labnet, vip)
    if node not in labnet.nodes:
        raise KeyError(f"unknown node {node!r}")
    previous = labnet.announced.get(vip)
    if previous == node:
        return
    if previous is not None:
        withdraw(labnet, previous, vip)
    n = labnet.nodes[node]
    _run(labnet).ip_batch(
        n.netns,
        [f"route replace {vip}/32 dev {SINK_DEV}", f"neigh replace proxy {vip} dev {NODE_IF}"],
    )
    labnet.announced[vip] = node
    if gratuitous:
        send_gratuitous_arp(labnet, node, vip)


def withdraw(labnet: LabNet, node: str, vip: str) -> None:
    """Stop ``node`` answering ARP for ``vip`` (clients keep a cached entry until it expires)."""
    n = labnet.nodes[node]
    _run(labnet).ip_batch(n.netns, [f"neigh del proxy {vip} dev {NODE_IF}", f"route del {vip}/32 dev {SINK_DEV}"])
    if labnet.announced.get(vip) == node:
        del labnet.announced[vip]


def _arp_frame(mac: str, vip: str) -> bytes:
    """A gratuitous ARP request: sender = target = VIP, broadcast, from ``mac``."""
    hw = bytes.fromhex(mac.replace(":", ""))
    ip = socket.inet_aton(vip)
    eth = b"\xff" * 6 + hw + struct.pack("!H", 0x0806)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + hw + ip + b"\x00" * 6 + ip
    return eth + arp


def send_gratuitous_arp(labnet: LabNet, node: str, vip: str) -> None:
    """Broadcast a gratuitous ARP for ``vip`` from ``node``'s eth0 (what a new leader does).

    Linux updates an *existing* neighbour entry on a gratuitous ARP even within locktime, and
    does not create new ones (arp_accept=0): clients that never talked to the VIP ARP anew.
    """
    n = labnet.nodes[node]
    frame = _arp_frame(n.mac, vip)
    run = _run(labnet)
    run.replay.append(f"nsenter --net=/run/netns/{n.netns} arping -U -c 1 -I {NODE_IF} {vip}  # sent in-process")

    def send() -> None:
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
            s.bind((NODE_IF, 0))
            s.send(frame)

    call_in(n.netns, send)


def who_has(labnet: LabNet, client: str, vip: str) -> str | None:
    """The node whose MAC ``client`` has resolved ``vip`` to, None if unresolved or not a node.

    Read after traffic: the entry exists only once the client has ARPed for the VIP.
    """
    c = labnet.clients[client]
    out = _run(labnet).run(["ip", "-j", "-4", "neigh", "show", "to", vip, "dev", NODE_IF], netns=c.netns).stdout
    for entry in json.loads(out or "[]"):
        states = set(entry.get("state", []))
        mac = entry.get("lladdr")
        if mac and states & _ARP_VALID_STATES:
            return labnet.node_of_mac(mac)
    return None


__all__ = ["announce", "send_gratuitous_arp", "who_has", "withdraw"]
