"""Calico-like policy enforcement and NAT rules for one lab node, compiled from NetworkPolicies.

The lab enforces exactly the NetworkPolicy manifests in ``topology.policies`` (what ``netiso
render`` emits, KubeSphere's generated ones included) and never looks at the tenancy model: if
the tenancy compiler is wrong, the lab must show it. The chains follow Felix's iptables
dataplane (projectcalico/calico felix/rules: static.go, endpoints.go, dispatch.go, policy.go)
so that a verdict can be explained with the chain and comment a real node would show.

Why filter FORWARD is the right place, and why it matters to this suite: workload policy runs
in ``filter FORWARD`` (``-i cali+`` = the sender's egress, ``-o cali+`` = the receiver's
ingress). That hook sits *after* kube-proxy's DNAT (nat PREROUTING), so policy sees the real
pod destination and target port rather than a ClusterIP/NodePort, and *before* kube-proxy's
MASQUERADE (nat POSTROUTING), so policy sees the source as it was before this node's SNAT. On
the node that delivers to a local endpoint, an ETP=Cluster NodePort connection is therefore
policed with the real client IP although the pod sees a node address; a connection forwarded
to another node is policed there with this node's (tunnel) address. Traffic between two pods
on one node crosses FORWARD once: the sender's egress chain returns with the accept mark and
the receiver's ingress chain still runs. Pod -> its own node goes through INPUT (egress
policy, ``cali-wl-to-host``, then ``cluster.felix.defaultEndpointToHostAction``: ACCEPT ends
INPUT before kube-proxy's jumps, RETURN hands the packet back to them, DROP drops; static.go
``filterWorkloadToHostChain``); node -> local pod (OUTPUT) is not policed, as in Calico.
``cluster.natOutgoing: false`` leaves ``cali40masq-ipam-pools`` empty, as Felix does for a pool
without natOutgoing, so ``cali-nat-outgoing`` matches nothing.

Deliberate differences from Felix, each without effect on verdicts:

* every rule that can decide a packet (policy allow, isolation drop, profile allow, the
  infrastructure drops, the MASQUERADEs) has a comment that starts with its
  ``netiso.oracle.decided`` token (``netiso:policy=shop/x ingress allow; <Felix's text>``), so
  a TRACE of the kernel names the decision in the oracle's words; Felix's own comments are
  kept after the token, and rules Felix leaves uncommented (INVALID drop, tunnel MASQUERADE)
  get one.

* conntrack: as in Felix, ``RELATED,ESTABLISHED -j ACCEPT`` and ``INVALID -j DROP`` open every
  per-endpoint chain (``cali-fw-*``/``cali-tw-*``), not ``cali-FORWARD``: forwarded traffic
  that touches no workload (node network transit, NodePort to another node) is not Calico's
  to accept or drop. Replies of allowed connections are accepted by the first endpoint chain
  (so a policy change does not cut established flows, as on a real node). INVALID packets
  (no conntrack entry a mid-stream segment could belong to) are dropped, Felix's default
  (``DisableConntrackInvalid: false``): the policy rules judge connections, not stray packets.
* ``ipBlock`` peers are ``hash:net`` sets with ``except`` entries marked ``nomatch`` (the most
  specific prefix wins, so an excepted address is not in the set); Felix renders CIDRs inline
  with mark-bit blocks. ``0.0.0.0/0`` is stored as two /1 halves (hash:net rejects /0).
* named ports: one ``hash:ip`` set per resolved number (pods whose port of that name and
  protocol has that number) matched with ``--dport N``; Felix uses ``hash:ip,port`` sets.
* Felix appends ``-m mark --mark 0x10000/0x10000 -j ACCEPT`` at the END of FORWARD, after
  kube-proxy's jumps (whose REJECT of endpoint-less services must still run); ``merge`` keeps
  Calico's hooks first, so that rule comes separately from :func:`render_forward_tail`.
* not rendered: policy-group chains, host endpoints, mangle/raw chains, floating IPs,
  the ``ksa.*`` service-account profiles (they allow all, like ``kns.*``).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from netiso.backends.lab.iptables import RuleSet, Table
from netiso.backends.lab.naming import cali_iface
from netiso.model.selectors import matches
from netiso.model.types import PodInfo, Topology
from netiso.oracle.decided import Decision

MAX_CHAIN_NAME = 28  # iptables (xt) limit
MAX_IPSET_NAME = 31  # IPSET_MAXNAMELEN - 1
MARK_ACCEPT = 0x10000  # Felix's default bits inside IptablesMarkMask 0xffff0000
MARK_PASS = 0x20000
MARK_SCRATCH = 0xC0000
TIER = "default"
VXLAN_PORT = 4789
TUNNEL_DEVICES = {"ipip": "tunl0", "vxlan": "vxlan.calico"}
DIRECTIONS = ("Ingress", "Egress")
METADATA_NAME_LABEL = "kubernetes.io/metadata.name"

ALL_POOLS_SET = "cali40all-ipam-pools"
MASQ_POOLS_SET = "cali40masq-ipam-pools"
ALL_HOSTS_SET = "cali40all-hosts-net"
ALL_VXLAN_SET = "cali40all-vxlan-net"

_ACCEPT_MARK = f"-j MARK --set-xmark {MARK_ACCEPT:#x}/{MARK_ACCEPT:#x}"
_IF_ACCEPTED = f"-m mark --mark {MARK_ACCEPT:#x}/{MARK_ACCEPT:#x}"
_IF_NOT_PASSED = f"-m mark --mark 0x0/{MARK_PASS:#x}"


# --------------------------------------------------------------------------- names


def length_limited_id(prefix: str, suffix: str, max_len: int = MAX_CHAIN_NAME) -> str:
    """``prefix + suffix``, or ``prefix + "_" + hash`` when too long (Felix's hashutils scheme).

    >>> length_limited_id("cali-tw-", "calie4ff24dd77c")
    'cali-tw-calie4ff24dd77c'
    >>> len(length_limited_id("cali-pi-", "demo/knp.default.allow-from-ingress"))
    28
    """
    if len(prefix) + len(suffix) < max_len or (len(prefix) + len(suffix) == max_len and suffix[:1] != "_"):
        return prefix + suffix
    digest = base64.urlsafe_b64encode(hashlib.sha256(suffix.encode()).digest()).decode().rstrip("=")
    return prefix + "_" + digest[: max_len - 1 - len(prefix)]


def policy_id(policy: Mapping[str, Any]) -> str:
    """Calico's name of a Kubernetes NetworkPolicy: ``<namespace>/knp.default.<name>``."""
    meta = policy.get("metadata") or {}
    return f"{meta.get('namespace')}/knp.default.{meta.get('name')}"


def policy_chain_name(direction: str, policy: Mapping[str, Any]) -> str:
    """``cali-pi-...`` (Ingress) or ``cali-po-...`` (Egress), at most 28 characters."""
    prefix = "cali-pi-" if direction == "Ingress" else "cali-po-"
    return length_limited_id(prefix, policy_id(policy))


def endpoint_chain_name(prefix: str, iface: str) -> str:
    """``cali-tw-<iface>`` (to workload) / ``cali-fw-<iface>`` (from workload)."""
    return length_limited_id(prefix, iface)


def _set_name(kind: str, key: object) -> str:
    """``cali40<kind>:`` + 23 characters of a hash of the set's definition (31 in all)."""
    raw = json.dumps(key, sort_keys=True, separators=(",", ":")).encode()
    digest = base64.urlsafe_b64encode(hashlib.sha224(raw).digest()).decode()
    prefix = f"cali40{kind}:"
    return prefix + digest[: MAX_IPSET_NAME - len(prefix)]


def _comment(text: str, decision: Decision | None = None) -> str:
    """``-m comment``; a deciding rule's comment starts with its :class:`Decision` token."""
    clean = text.replace('"', "'").replace("\n", " ")
    clean = decision.comment(clean) if decision is not None else clean[:255]
    return f'-m comment --comment "{clean}"'


# --------------------------------------------------------------------------- ip sets


@dataclass(frozen=True)
class IPSet:
    name: str
    type: str  # hash:ip | hash:net
    entries: tuple[str, ...]  # "ip", "cidr" or "cidr nomatch"
    about: str  # what the set stands for (written as a comment in the restore document)


def render_ipsets(sets: Iterable[IPSet]) -> str:
    """An ``ipset restore`` document that can be loaded again and again.

    Each set is filled under a temporary name and swapped in, as Felix does, so reloading a
    changed topology never leaves a referenced set missing or half filled.
    """
    lines: list[str] = []
    for s in sorted(sets, key=lambda s: s.name):
        tmp = "cali4t" + s.name[len("cali40") :]
        lines.append(f"# {s.name}: {s.about}")
        lines.append(f"create {s.name} {s.type} family inet -exist")
        lines.append(f"create {tmp} {s.type} family inet -exist")
        lines.append(f"flush {tmp}")
        lines.extend(f"add {tmp} {entry}" for entry in s.entries)
        lines.append(f"swap {tmp} {s.name}")
        lines.append(f"destroy {tmp}")
    return "\n".join(lines) + "\n"


def _net_entries(cidr: str, nomatch: bool = False) -> list[str]:
    net = ipaddress.ip_network(cidr, strict=False)
    parts = list(net.subnets(new_prefix=1)) if net.prefixlen == 0 else [net]
    return [f"{p}{' nomatch' if nomatch else ''}" for p in parts]


class _SetRegistry:
    """The ip sets one node needs; identical definitions share one set."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self.sets: dict[str, IPSet] = {}

    def _add(self, ipset: IPSet) -> str:
        self.sets.setdefault(ipset.name, ipset)
        return ipset.name

    def selector(self, namespace: str, peer: Mapping[str, Any]) -> str:
        """Pods a peer selects: namespaceSelector x podSelector, else the policy's namespace."""
        pod_sel = peer.get("podSelector") or {}
        ns_sel = peer.get("namespaceSelector")
        key = {"namespace": namespace if ns_sel is None else None, "nsSel": ns_sel, "podSel": pod_sel}
        ips = sorted(
            {p.ip for p in self.topology.pods if self._in_ns(p, namespace, ns_sel) and matches(pod_sel, p.labels)}
        )
        where = f"namespace {namespace}" if ns_sel is None else f"namespaces {json.dumps(ns_sel, sort_keys=True)}"
        about = f"pods {json.dumps(pod_sel, sort_keys=True)} in {where}"
        return self._add(IPSet(_set_name("s", key), "hash:ip", tuple(ips), about))

    def _in_ns(self, pod: PodInfo, namespace: str, ns_sel: Mapping[str, Any] | None) -> bool:
        if ns_sel is None:
            return pod.project == namespace
        # The API server stamps kubernetes.io/metadata.name on every namespace (as the oracle assumes).
        labels = {METADATA_NAME_LABEL: pod.project, **(self.topology.namespaces.get(pod.project) or {})}
        return matches(ns_sel, labels)

    def ip_block(self, block: Mapping[str, Any]) -> str:
        cidr = str(block["cidr"])
        excepts = [str(e) for e in block.get("except") or []]
        entries = _net_entries(cidr) + [e for x in excepts for e in _net_entries(x, nomatch=True)]
        about = f"ipBlock {cidr}" + (f" except {', '.join(excepts)}" if excepts else "")
        return self._add(IPSet(_set_name("b", [cidr, sorted(excepts)]), "hash:net", tuple(entries), about))

    def named_port(self, name: str, protocol: str) -> list[tuple[int, str]]:
        """(number, set of the pods whose port ``name``/``protocol`` has that number) pairs."""
        by_number: dict[int, set[str]] = {}
        for pod in self.topology.pods:
            for port in pod.ports:
                if port.name == name and port.protocol.lower() == protocol:
                    by_number.setdefault(port.port, set()).add(pod.ip)
        out = []
        for number, ips in sorted(by_number.items()):
            key = {"namedPort": name, "protocol": protocol, "port": number}
            about = f"pods whose port {name!r}/{protocol} is {number}"
            out.append((number, self._add(IPSet(_set_name("n", key), "hash:ip", tuple(sorted(ips)), about))))
        return out

    def nets(self, name: str, cidrs: Sequence[str], about: str) -> str:
        entries = tuple(e for c in cidrs for e in _net_entries(c))
        return self._add(IPSet(name, "hash:net", entries, about))


# --------------------------------------------------------------------------- policies


@dataclass(frozen=True)
class _Policy:
    manifest: Mapping[str, Any]
    namespace: str
    name: str
    types: tuple[str, ...]

    @classmethod
    def parse(cls, manifest: Mapping[str, Any]) -> _Policy:
        kind = manifest.get("kind", "NetworkPolicy")
        if kind != "NetworkPolicy":
            raise ValueError(f"not a NetworkPolicy: kind {kind!r}")
        meta = manifest.get("metadata") or {}
        if not meta.get("namespace") or not meta.get("name"):
            raise ValueError(f"NetworkPolicy without metadata.namespace/name: {meta!r}")
        spec = manifest.get("spec") or {}
        types = tuple(spec.get("policyTypes") or ())
        if not types:  # Kubernetes defaulting: Ingress always, Egress if egress rules exist
            types = ("Ingress", "Egress") if spec.get("egress") else ("Ingress",)
        for t in types:
            if t not in DIRECTIONS:
                raise ValueError(f"{meta['namespace']}/{meta['name']}: unknown policyType {t!r}")
        return cls(manifest, str(meta["namespace"]), str(meta["name"]), types)

    @property
    def spec(self) -> Mapping[str, Any]:
        return self.manifest.get("spec") or {}

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def selects(self, pod: PodInfo, direction: str) -> bool:
        return (
            direction in self.types
            and pod.project == self.namespace
            and matches(self.spec.get("podSelector") or {}, pod.labels)
        )


def _multiport_chunks(items: list[tuple[str, int]]) -> list[list[str]]:
    """Split ``multiport`` operands into groups of at most 15 slots (a range takes 2)."""
    chunks: list[list[str]] = [[]]
    free = 15
    for text, slots in items:
        if slots > free:
            chunks.append([])
            free = 15
        chunks[-1].append(text)
        free -= slots
    return chunks


def _port_matches(sets: _SetRegistry, ports: Sequence[Mapping[str, Any]]) -> list[str]:
    """Match fragments for one rule's ``ports`` (OR-ed); ``[""]`` = any port and protocol.

    An empty result means no port can match (a named port no pod declares).
    """
    if not ports:
        return [""]
    numeric: dict[str, list[tuple[str, int]]] = {}
    any_port: list[str] = []
    named: list[str] = []
    for entry in ports:
        proto = str(entry.get("protocol") or "TCP").lower()
        port = entry.get("port")
        if port is None:
            any_port.append(f"-p {proto}")
        elif isinstance(port, str) and not port.isdigit():
            named += [
                f"-p {proto} -m multiport --dports {n} -m set --match-set {s} dst"
                for n, s in sets.named_port(port, proto)
            ]
        else:
            start, end = int(port), entry.get("endPort")
            item = (f"{start}:{int(end)}", 2) if end and int(end) > start else (str(start), 1)
            numeric.setdefault(proto, []).append(item)
    out = list(any_port)
    for proto, items in numeric.items():
        out += [f"-p {proto} -m multiport --dports {','.join(c)}" for c in _multiport_chunks(items)]
    return out + named


def _policy_chain_rules(sets: _SetRegistry, policy: _Policy, direction: str) -> list[str]:
    """Allow rules of one policy direction: set the accept mark and return (Felix's allow)."""
    side, rules_key, peers_key = ("src", "ingress", "from") if direction == "Ingress" else ("dst", "egress", "to")
    specs: list[str] = []
    for i, rule in enumerate(policy.spec.get(rules_key) or []):
        port_matches = _port_matches(sets, rule.get("ports") or [])
        peers: list[Mapping[str, Any] | None] = list(rule.get(peers_key) or []) or [None]
        for j, peer in enumerate(peers):
            if peer is None:
                peer_match = ""
            elif "ipBlock" in peer:
                peer_match = f"-m set --match-set {sets.ip_block(peer['ipBlock'])} {side}"
            elif "podSelector" in peer or "namespaceSelector" in peer:
                peer_match = f"-m set --match-set {sets.selector(policy.namespace, peer)} {side}"
            else:
                continue  # an empty peer selects nothing (the API server rejects it anyway)
            where = f"{policy.key} {rules_key}[{i}]" + ("" if peer is None else f" {peers_key}[{j}]")
            for pm in port_matches:
                decided = Decision("policy", f"{policy.key} {direction.lower()}", "allow")
                match = " ".join(x for x in (pm, peer_match, _comment(f"allow {where}", decided)) if x)
                specs += [f"{match} {_ACCEPT_MARK}", f"{_IF_ACCEPTED} -j RETURN"]
    return specs


# --------------------------------------------------------------------------- chains


def _endpoint_chain(
    table: Table, chain: str, pod: PodInfo, direction: str, policies: list[_Policy], from_workload: bool
) -> None:
    table.add(chain, "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
    invalid = _comment("conntrack INVALID", Decision("calico", "conntrack-invalid", "drop"))
    table.add(chain, f"-m conntrack --ctstate INVALID {invalid} -j DROP")
    table.add(chain, f"-j MARK --set-xmark 0x0/{MARK_ACCEPT | MARK_PASS:#x}")
    if from_workload:  # encapsulated packets from a pod could bypass egress policy
        encap = Decision("calico", "workload-encap", "drop")
        vxlan = _comment("Drop VXLAN encapped packets originating in workloads", encap)
        table.add(chain, f"-p udp -m multiport --dports {VXLAN_PORT} {vxlan} -j DROP")
        table.add(chain, f"-p 4 {_comment('Drop IPinIP encapped packets originating in workloads', encap)} -j DROP")
    if policies:
        table.add(chain, f"{_comment(f'Start of tier {TIER}')} -j MARK --set-xmark 0x0/{MARK_PASS:#x}")
        for pol in policies:
            table.add(chain, f"{_IF_NOT_PASSED} -j {policy_chain_name(direction, pol.manifest)}")
            table.add(chain, f"{_IF_ACCEPTED} {_comment('Return if policy accepted')} -j RETURN")
        names = ", ".join(p.key for p in policies)
        why = f"Drop if no policies passed packet: tier {TIER}, {direction.lower()} of {pod.symbol} ({names})"
        isolated = Decision("isolation", f"{pod.project} {direction.lower()}", "drop")
        table.add(chain, f"{_IF_NOT_PASSED} {_comment(why, isolated)} -j DROP")
    profile = length_limited_id("cali-pri-" if direction == "Ingress" else "cali-pro-", f"kns.{pod.project}")
    table.add(chain, f"-j {profile}")
    table.add(chain, f"{_IF_ACCEPTED} {_comment('Return if profile accepted')} -j RETURN")
    no_profile = Decision("calico", f"{pod.project} {direction.lower()} no-profile", "drop")
    table.add(chain, f"{_comment('Drop if no profiles matched', no_profile)} -j DROP")
    _profile_chain(table, profile, pod.project, direction)


def _profile_chain(table: Table, chain: str, namespace: str, direction: str) -> None:
    """Kubernetes namespace profile ``kns.<ns>``: allow all (what applies when no policy does)."""
    if chain in table.chains:
        return
    table.chain(chain)
    allowed = Decision("profile", f"{namespace} {direction.lower()}", "allow")
    table.add(chain, f"{_comment(f'profile kns.{namespace}: allow', allowed)} {_ACCEPT_MARK}")
    table.add(chain, f"{_IF_ACCEPTED} -j RETURN")


def _dispatch(table: Table, chain: str, flag: str, prefix: str, ifaces: list[str]) -> None:
    table.chain(chain)
    for iface in ifaces:
        table.add(chain, f"{flag} {iface} -g {endpoint_chain_name(prefix, iface)}")
    table.add(chain, f"{_comment('Unknown interface', Decision('calico', 'unknown-interface', 'drop'))} -j DROP")


def _static_filter(filt: Table, sets: _SetRegistry, topology: Topology) -> None:
    """cali-FORWARD, cali-INPUT (+ tunnel packet checks), cali-wl-to-host, cali-OUTPUT."""
    clear = f"-j MARK --set-xmark 0x0/{MARK_PASS | MARK_SCRATCH:#x}"
    filt.add("cali-FORWARD", f"{_comment('clear Calico pass/scratch marks')} {clear}")
    filt.add("cali-FORWARD", "-i cali+ -j cali-from-wl-dispatch")
    filt.add("cali-FORWARD", "-o cali+ -j cali-to-wl-dispatch")

    node_ips = [f"{n.ip}/32" for n in topology.nodes.values()]
    local = "-m addrtype --dst-type LOCAL"
    if topology.encapsulation == "ipip":
        hosts = sets.nets(ALL_HOSTS_SET, node_ips, "all node addresses")
        ok = _comment("Allow IPIP packets from Calico hosts")
        bad = _comment("Drop IPIP packets from non-Calico hosts", Decision("calico", "tunnel-source", "drop"))
        filt.add("cali-INPUT", f"-p 4 -m set --match-set {hosts} src {local} {ok} -j ACCEPT")
        filt.add("cali-INPUT", f"-p 4 {bad} -j DROP")
    elif topology.encapsulation == "vxlan":
        vx = sets.nets(ALL_VXLAN_SET, node_ips, "addresses of VXLAN nodes")
        ok = _comment("Allow IPv4 VXLAN packets from allowed hosts")
        bad = _comment("Drop IPv4 VXLAN packets from non-allowed hosts", Decision("calico", "tunnel-source", "drop"))
        udp = f"-p udp -m multiport --dports {VXLAN_PORT}"
        filt.add("cali-INPUT", f"{udp} -m set --match-set {vx} src {local} {ok} -j ACCEPT")
        filt.add("cali-INPUT", f"{udp} {local} {bad} -j DROP")
    filt.add("cali-INPUT", "-i cali+ -g cali-wl-to-host")
    filt.add("cali-wl-to-host", "-j cali-from-wl-dispatch")
    action = topology.scenario.cluster.felix.defaultEndpointToHostAction
    to_host = Decision("calico", "endpoint-to-host", "drop") if action == "DROP" else None
    filt.add("cali-wl-to-host", f"{_comment('Configured DefaultEndpointToHostAction', to_host)} -j {action}")
    filt.add("cali-OUTPUT", f"-o cali+ {_comment('host -> workload is not policed')} -j RETURN")


def render_calico(topology: Topology, node: str) -> tuple[RuleSet, str]:
    """Node ``node``'s Calico iptables rules and the ``ipset restore`` document they need.

    Load the ip sets first (the rules reference them), then ``render_restore(merge(calico,
    kube_proxy, render_forward_tail()))``.
    """
    if node not in topology.nodes:
        raise ValueError(f"unknown node {node!r} (nodes: {', '.join(topology.nodes)})")
    policies = sorted((_Policy.parse(m) for m in topology.policies), key=lambda p: policy_id(p.manifest))
    keys = [p.key for p in policies]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise ValueError(f"duplicate NetworkPolicy: {', '.join(dupes)}")

    sets = _SetRegistry(topology)
    rs = RuleSet()
    filt, nat = rs.table("filter"), rs.table("nat")
    local = sorted((p for p in topology.pods if p.node == node), key=cali_iface)

    # Hooks first in each built-in chain, as Felix inserts them.
    filt.hook("INPUT", "-j cali-INPUT")
    filt.hook("FORWARD", "-j cali-FORWARD")
    filt.hook("OUTPUT", "-j cali-OUTPUT")
    nat.hook("POSTROUTING", "-j cali-POSTROUTING")

    _static_filter(filt, sets, topology)
    ifaces = [cali_iface(p) for p in local]
    _dispatch(filt, "cali-from-wl-dispatch", "-i", "cali-fw-", ifaces)
    _dispatch(filt, "cali-to-wl-dispatch", "-o", "cali-tw-", ifaces)

    used: dict[tuple[str, str], _Policy] = {}
    for pod in local:
        iface = cali_iface(pod)
        for direction, prefix in (("Ingress", "cali-tw-"), ("Egress", "cali-fw-")):
            selected = [p for p in policies if p.selects(pod, direction)]
            used.update({(direction, p.key): p for p in selected})
            chain = endpoint_chain_name(prefix, iface)
            _endpoint_chain(filt, chain, pod, direction, selected, from_workload=direction == "Egress")
    for (direction, _), pol in sorted(used.items()):
        chain = policy_chain_name(direction, pol.manifest)
        filt.chain(chain)
        filt.add(chain, _comment(f"Policy {pol.key} {direction.lower()}"))  # no target: a label
        for spec in _policy_chain_rules(sets, pol, direction):
            filt.add(chain, spec)

    pools = [topology.pod_network]
    all_pools = sets.nets(ALL_POOLS_SET, pools, "all IP pools")
    masq = pools if topology.scenario.cluster.natOutgoing else []
    masq_pools = sets.nets(MASQ_POOLS_SET, masq, "IP pools with natOutgoing")
    nat.add("cali-POSTROUTING", "-j cali-nat-outgoing")
    if topology.encapsulation in TUNNEL_DEVICES:
        nat.add(
            "cali-POSTROUTING",
            f"-o {TUNNEL_DEVICES[topology.encapsulation]} -m addrtype ! --src-type LOCAL --limit-iface-out"
            f" -m addrtype --src-type LOCAL {_comment('tunnel source', Decision('masquerade', 'tunnel'))}"
            " -j MASQUERADE",
        )
    nat.add(
        "cali-nat-outgoing",
        f"-m set --match-set {masq_pools} src -m set ! --match-set {all_pools} dst"
        f" {_comment('natOutgoing', Decision('masquerade', 'nat-outgoing'))} -j MASQUERADE --random-fully",
    )
    return rs, render_ipsets(sets.sets.values())


def render_forward_tail() -> RuleSet:
    """Felix's rule appended at the END of filter FORWARD: accept what workload policy accepted.

    Merge it after kube-proxy's rule set so that kube-proxy's filter rules (REJECT of services
    without endpoints, DROP of ETP=Local traffic without local endpoints) still see the packet.
    """
    rs = RuleSet()
    rs.table("filter").hook("FORWARD", f"{_IF_ACCEPTED} {_comment('Policy explicitly accepted packet.')} -j ACCEPT")
    return rs
