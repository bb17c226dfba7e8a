"""What a walk of the path engine carries and writes down: the packet, the hops, the outcome.

Kept apart from the engine (:mod:`netiso.oracle.paths` and its parts: service_nat, host_port_nat,
source_nat, local_delivery) so that every part imports the same records from below and none
imports another. Consumers read these records, never the hop text: minimal-config reads a
hop's :class:`PolicyCheck`, the path diagrams (netiso/report/diagram.py) its :class:`Step`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netiso.model.types import PodInfo
from netiso.oracle.netpol import Decision


@dataclass(frozen=True)
class Packet:
    src: str
    dst: str
    dport: int
    proto: str
    mark: bool = False  # kube-proxy's 0x4000 masquerade mark
    hostport_mark: bool = False  # portmap's 0x2000 (CNI-HOSTPORT-SETMARK): a pod to its own hostPort (hairpin)
    src_alts: tuple[str, ...] = ()  # other addresses MASQUERADE may have picked (same-node delivery)


@dataclass(frozen=True)
class PolicyCheck:
    """An ingress policy decision taken on the way: who was protected and what source it saw."""

    pod: PodInfo
    src_ip: str
    src_pod: PodInfo | None
    port: int
    protocol: str
    decision: Decision


@dataclass(frozen=True)
class Step:
    """What a hop did, in structure: where it happened, which kind of step, the packet after it.

    Read by the path diagrams (netiso/report/diagram.py) so they never parse the hop text. Kinds:
    send, arp, service (kube-proxy matched a service, no DNAT yet), dnat, snat, policy, filter
    (kube-proxy's filter verdict), tunnel / forward (to the next node), deliver, refuse, drop,
    proxy (ingress-nginx), note.
    """

    at: str  # symbol of the place: client:alice, node:w1, pod:ns/name@w1
    kind: str
    src: str | None = None  # the packet's source address after this step
    dst: str | None = None  # ... and its destination
    alts: tuple[str, ...] = ()  # other sources MASQUERADE may have picked
    to: str | None = None  # tunnel / forward / arp: the next place's symbol
    via: str | None = None  # tunnel / forward: the device (tunl0, vxlan.calico, eth0)
    verdict: str | None = None  # set when the walk ends here: allowed | dropped | refused
    direction: str | None = None  # policy: ingress | egress
    decision: Decision | None = None  # policy: the decision taken
    rule: str | None = None  # service / snat / filter: the chain or rule that acted, e.g. "KUBE-POSTROUTING"


class Hop(str):
    """A hop line; one that reports an ingress policy decision also carries it as ``check``.

    A plain ``str`` everywhere (JSON, reports); consumers that reason about *why* a flow was
    admitted or dropped (minimal-config) read ``check`` instead of parsing the text, diagrams
    read ``step``.
    """

    check: PolicyCheck | None
    step: Step | None

    def __new__(cls, text: str, check: PolicyCheck | None = None, step: Step | None = None) -> Hop:
        hop = super().__new__(cls, text)
        hop.check = check
        hop.step = step
        return hop


@dataclass
class Outcome:
    """One way a connection attempt ends."""

    verdict: str  # allowed | dropped | refused
    hops: list[str]
    receiver: str | None = None  # symbol of who answered (pod or client)
    seen: tuple[str, ...] = ()  # source IPs the receiver may see
    endpoint: PodInfo | None = None
    extra: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Origin:
    kind: str  # client | pod | node
    name: str  # client or node name; pod: symbol
    pod: PodInfo | None = None


def egress_dropped(node: str, at: str, where: str, pkt: Packet, d: Decision) -> Hop:
    """The hop of a packet the sending pod's egress policy drops (in FORWARD or, towards its node, INPUT)."""
    return Hop(f"{node}: {where}: {d.reason} → dropped",
               step=Step(at, "policy", pkt.src, pkt.dst, verdict="dropped", direction="egress", decision=d))
