"""networking.k8s.io/v1 NetworkPolicy semantics: may this packet pass, and why (not)?

The oracle needs one definition of NetworkPolicy that every verdict and every explanation
derives from, independent of any datapath. This module is that definition, written from
the API reference rather than from any CNI:

* a pod is *isolated* for a direction as soon as one policy of its namespace selects it
  (``spec.podSelector``, ``{}`` = every pod of the namespace) and lists that direction in
  its policy types; a pod selected by no policy for a direction is not restricted at all;
* ``policyTypes`` defaults to ``[Ingress]`` plus ``Egress`` when ``spec.egress`` has at
  least one rule (the API server's defaulting: ``egress: []`` alone does not isolate);
* traffic to/from an isolated pod passes when ANY rule of ANY selecting policy admits it
  (policies and rules are a union, there is no deny and no order);
* a rule without ``from``/``to`` admits every peer, a rule without ``ports`` every port;
  ``ingress: [{}]`` allows all, ``ingress: []`` (or none, with Ingress in policyTypes)
  denies all;
* peers: ``podSelector`` alone = pods of the policy's namespace; ``namespaceSelector`` alone
  = every pod of the matching namespaces; both in ONE peer = AND; ``ipBlock`` = addresses in
  ``cidr`` and in no ``except``;
* ports: ``protocol`` (default TCP), a number, a number with ``endPort`` (inclusive range),
  or a named port, resolved against the *destination* pod's named container ports (for
  ingress the protected pod itself, for egress the destination pod; a named port never
  matches a destination that is not a pod).

Two choices the API leaves to implementations, made here as Calico makes them:

* ipBlock peers match by IP, pod traffic included. Kubernetes says ipBlock is meant for
  cluster-external addresses and leaves pod IPs in an ipBlock implementation-defined;
  Calico matches whatever source/destination address the packet carries.
* A source that is not a pod (external client, node or tunnel address, SNAT address) can
  only be matched by ipBlock peers: pod and namespace selectors select pods, never
  addresses. The caller decides what the policy sees: pass ``src_pod`` only when the
  packet's source address really is that pod (not after SNAT).

Namespaces always carry ``kubernetes.io/metadata.name: <name>`` (the API server sets it
since 1.21); it is added when the given labels lack it.

>>> from netiso.model.types import PodInfo, Port
>>> web = PodInfo("shop", "web", "worker", "100.64.1.5", {"app": "web"}, (Port(8080),))
>>> deny = {"metadata": {"name": "deny", "namespace": "shop"}, "spec": {"podSelector": {}}}
>>> engine = PolicyEngine([deny], {"shop": {}})
>>> engine.ingress(web, "203.0.113.9", None, 8080, "TCP").reason
'deny in shop does not admit 203.0.113.9 on 8080/TCP'
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from netiso.model.selectors import describe as describe_selector
from netiso.model.selectors import matches
from netiso.model.types import PodInfo

Direction = Literal["ingress", "egress"]
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
_PEERS_KEY: dict[str, str] = {"ingress": "from", "egress": "to"}
_TYPE_OF: dict[str, str] = {"ingress": "Ingress", "egress": "Egress"}


@dataclass(frozen=True)
class Decision:
    """The verdict of one direction (ingress at the destination or egress at the source)."""

    allowed: bool
    isolated: bool  # some policy selects the pod for this direction
    policies: tuple[str, ...]  # "ns/name" of the policies selecting the pod for this direction
    admitted_by: str | None  # "ns/name ingress[0] from[1]": the first rule/peer that admitted it
    reason: str  # one readable sentence naming the policies involved
    notes: tuple[str, ...] = ()  # when denied: why each rule of each selecting policy missed


@dataclass(frozen=True)
class Connection:
    """Both ends of a pod-to-pod (or external-to-pod) connection: egress AND ingress."""

    egress: Decision | None  # None: the source is not a pod, nothing polices its egress
    ingress: Decision | None  # None: the destination is not a pod

    @property
    def allowed(self) -> bool:
        return all(d.allowed for d in (self.egress, self.ingress) if d is not None)

    @property
    def reason(self) -> str:
        """The denying side's reason, else both sides' reasons."""
        sides = [d for d in (self.egress, self.ingress) if d is not None]
        denied = [d.reason for d in sides if not d.allowed]
        return "; ".join(denied or [d.reason for d in sides]) or "no pod involved: not policed"


@dataclass(frozen=True)
class _Policy:
    namespace: str
    name: str
    pod_selector: Mapping[str, Any]
    rules: Mapping[str, tuple[Mapping[str, Any], ...]]  # only the directions the policy isolates

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def effective_policy_types(spec: Mapping[str, Any]) -> tuple[str, ...]:
    """``spec.policyTypes`` after API-server defaulting.

    >>> effective_policy_types({"ingress": [{}]})
    ('Ingress',)
    >>> effective_policy_types({"egress": [{}]})
    ('Ingress', 'Egress')
    >>> effective_policy_types({"egress": []})      # empty egress does not imply Egress
    ('Ingress',)
    >>> effective_policy_types({"policyTypes": ["Egress"], "ingress": [{}]})
    ('Egress',)
    """
    explicit = spec.get("policyTypes")
    if explicit:
        return tuple(explicit)
    return ("Ingress", "Egress") if spec.get("egress") else ("Ingress",)


def ip_in_block(ip: str, block: Mapping[str, Any]) -> bool:
    """True when ``ip`` is in ``block["cidr"]`` and in none of ``block["except"]``.

    >>> ip_in_block("100.64.1.5", {"cidr": "100.64.0.0/16", "except": ["100.64.1.0/24"]})
    False
    >>> ip_in_block("100.64.2.5", {"cidr": "100.64.0.0/16", "except": ["100.64.1.0/24"]})
    True
    """
    addr = ipaddress.ip_address(ip)

    def inside(cidr: str) -> bool:
        net = ipaddress.ip_network(cidr, strict=False)
        return net.version == addr.version and addr in net

    return inside(block["cidr"]) and not any(inside(c) for c in block.get("except") or ())


def describe_port(entry: Mapping[str, Any]) -> str:
    """A NetworkPolicyPort as text: ``80/TCP``, ``80-90/TCP``, ``http/TCP``, ``any/UDP``.

    >>> describe_port({"port": 80, "endPort": 90})
    '80-90/TCP'
    >>> describe_port({"protocol": "UDP"})
    'any/UDP'
    """
    proto = str(entry.get("protocol") or "TCP").upper()
    port = entry.get("port")
    if port is None:
        return f"any/{proto}"
    end = entry.get("endPort")
    return f"{port}-{end}/{proto}" if end is not None and end != port else f"{port}/{proto}"


class PolicyEngine:
    """Evaluates NetworkPolicy manifests for concrete packets.

    ``policies`` are manifests as ``netiso render`` emits them (each must name its
    namespace); ``namespaces`` maps a namespace to its labels; ``describe_ip`` turns an
    address into a symbol for reasons (default, and whenever it returns the bare IP: the
    pod's symbol for pods, else the IP).
    """

    def __init__(
        self,
        policies: Iterable[Mapping[str, Any]],
        namespaces: Mapping[str, Mapping[str, str]],
        describe_ip: Callable[[str], str] | None = None,
    ) -> None:
        self._policies = tuple(_parse(doc) for doc in policies)
        self._namespaces = namespaces
        self._describe_ip = describe_ip

    # ------------------------------------------------------------------ public API

    def ingress(self, dst: PodInfo, src_ip: str, src_pod: PodInfo | None, port: int, protocol: str) -> Decision:
        """May a packet from ``src_ip`` (the pod ``src_pod``, if it is one) enter ``dst``?

        ``port``/``protocol`` are the destination port the pod receives on (after DNAT).
        """
        return self._evaluate("ingress", dst, src_ip, src_pod, dst, port, protocol)

    def egress(self, src: PodInfo, dst_ip: str, dst_pod: PodInfo | None, port: int, protocol: str) -> Decision:
        """May ``src`` send a packet to ``dst_ip`` (the pod ``dst_pod``, if it is one)?

        Policy sees the address the packet carries when it leaves the pod: for a Service
        that is its ClusterIP only if the caller evaluates before DNAT. Calico evaluates
        egress after kube-proxy's DNAT, so pass the endpoint pod and its target port.
        """
        return self._evaluate("egress", src, dst_ip, dst_pod, dst_pod, port, protocol)

    def connection(
        self,
        src_ip: str,
        src_pod: PodInfo | None,
        dst_ip: str,
        dst_pod: PodInfo | None,
        port: int,
        protocol: str,
    ) -> Connection:
        """Egress at the source pod (if any) and ingress at the destination pod (if any)."""
        egress = self.egress(src_pod, dst_ip, dst_pod, port, protocol) if src_pod else None
        ingress = self.ingress(dst_pod, src_ip, src_pod, port, protocol) if dst_pod else None
        return Connection(egress=egress, ingress=ingress)

    def selecting(self, pod: PodInfo, direction: Direction) -> tuple[str, ...]:
        """``ns/name`` of every policy that isolates ``pod`` for ``direction``."""
        return tuple(p.key for p in self._selecting(pod, direction))

    def namespace_labels(self, namespace: str) -> Mapping[str, str]:
        """The namespace's labels, always including ``kubernetes.io/metadata.name``."""
        return {NAMESPACE_NAME_LABEL: namespace, **(self._namespaces.get(namespace) or {})}

    # ------------------------------------------------------------------ evaluation

    def _selecting(self, pod: PodInfo, direction: str) -> list[_Policy]:
        return [
            p
            for p in self._policies
            if direction in p.rules and p.namespace == pod.project and matches(p.pod_selector, pod.labels)
        ]

    def _evaluate(
        self,
        direction: str,
        subject: PodInfo,
        peer_ip: str,
        peer_pod: PodInfo | None,
        port_owner: PodInfo | None,
        port: int,
        protocol: str,
    ) -> Decision:
        protocol = protocol.upper()
        selecting = self._selecting(subject, direction)
        keys = tuple(p.key for p in selecting)
        if not selecting:
            reason = f"no policy selects {subject.symbol} for {direction}: allowed"
            return Decision(True, False, (), None, reason)
        other = self._describe(peer_ip, peer_pod)
        what = f"{other} on {port}/{protocol}"
        peers_key = _PEERS_KEY[direction]
        notes: list[str] = []
        for policy in selecting:
            rules = policy.rules[direction]
            if not rules:
                notes.append(f"{policy.key} has no {direction} rules: it admits nothing")
            for i, rule in enumerate(rules):
                where = f"{policy.key} {direction}[{i}]"
                ports = rule.get("ports") or ()
                port_ok = not ports or any(self._port_matches(e, port, protocol, port_owner) for e in ports)
                peers = rule.get(peers_key) or ()
                hit = None if peers else where
                for j, peer in enumerate(peers):
                    if hit is None and self._peer_matches(policy, peer, peer_ip, peer_pod):
                        hit = f"{where} {peers_key}[{j}]"
                if hit and port_ok:
                    verb = "admits" if direction == "ingress" else f"lets {subject.symbol} reach"
                    return Decision(True, True, keys, hit, f"{hit} {verb} {what}")
                notes.append(self._miss(where, rule, peers_key, hit is not None, port_ok, what))
        names = ", ".join(p.name for p in selecting)
        does = "does" if len(selecting) == 1 else "do"
        if direction == "ingress":
            reason = f"{names} in {subject.project} {does} not admit {what}"
        else:
            reason = f"{names} in {subject.project} {does} not let {subject.symbol} reach {what}"
        return Decision(False, True, keys, None, reason, tuple(notes))

    def _peer_matches(self, policy: _Policy, peer: Mapping[str, Any], ip: str, pod: PodInfo | None) -> bool:
        block = peer.get("ipBlock")
        if block is not None:
            return ip_in_block(ip, block)
        pod_sel = peer.get("podSelector")
        ns_sel = peer.get("namespaceSelector")
        if pod is None or (pod_sel is None and ns_sel is None):
            return False  # selectors select pods, never bare addresses; an empty peer selects nothing
        if ns_sel is None:
            in_scope = pod.project == policy.namespace
        else:
            in_scope = matches(ns_sel, self.namespace_labels(pod.project))
        return in_scope and (pod_sel is None or matches(pod_sel, pod.labels))

    @staticmethod
    def _port_matches(entry: Mapping[str, Any], port: int, protocol: str, owner: PodInfo | None) -> bool:
        if str(entry.get("protocol") or "TCP").upper() != protocol:
            return False
        value = entry.get("port")
        if value is None:
            return True
        if isinstance(value, int) and not isinstance(value, bool):
            end = entry.get("endPort")
            return value <= port <= (end if isinstance(end, int) else value)
        if owner is None:
            return False  # a named port resolves only against a destination pod
        return any(p.name == value and p.protocol == protocol and p.port == port for p in owner.ports)

    def _describe(self, ip: str, pod: PodInfo | None) -> str:
        symbol = self._describe_ip(ip) if self._describe_ip is not None else ip
        if symbol == ip and pod is not None:
            symbol = pod.symbol  # describe_ip does not know the address: the pod still has a name
        return symbol if symbol == ip else f"{symbol} ({ip})"

    @staticmethod
    def _miss(where: str, rule: Mapping[str, Any], peers_key: str, peer_ok: bool, port_ok: bool, what: str) -> str:
        peers: Sequence[Mapping[str, Any]] = rule.get(peers_key) or ()
        ports = ", ".join(describe_port(e) for e in rule.get("ports") or ())
        if peer_ok:
            return f"{where}: peer matches but the port is not in [{ports}]"
        wanted = "; ".join(_describe_peer(p) for p in peers)
        if port_ok:
            return f"{where}: port matches but {what} is not among [{wanted}]"
        return f"{where}: neither peer [{wanted}] nor port [{ports}] matches"


def _describe_peer(peer: Mapping[str, Any]) -> str:
    block = peer.get("ipBlock")
    if block is not None:
        excepts = block.get("except") or ()
        return f"ipBlock {block.get('cidr')}" + (f" except {','.join(excepts)}" if excepts else "")
    parts = []
    if peer.get("namespaceSelector") is not None:
        parts.append(f"namespaces {describe_selector(peer['namespaceSelector'])}")
    if peer.get("podSelector") is not None:
        parts.append(f"pods {describe_selector(peer['podSelector'])}")
    return " and ".join(parts) or "empty peer (selects nothing)"


def _parse(doc: Mapping[str, Any]) -> _Policy:
    meta = doc.get("metadata") or {}
    name = meta.get("name") or "<unnamed>"
    namespace = meta.get("namespace")
    if not namespace:
        raise ValueError(f"NetworkPolicy {name!r} has no metadata.namespace: a policy must name its namespace")
    spec = doc.get("spec") or {}
    types = effective_policy_types(spec)
    rules = {
        direction: tuple(spec.get(direction) or ()) for direction, type_name in _TYPE_OF.items() if type_name in types
    }
    return _Policy(namespace, name, spec.get("podSelector") or {}, rules)
