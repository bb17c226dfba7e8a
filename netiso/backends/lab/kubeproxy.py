"""kube-proxy (iptables mode) rules for one lab node, as kube-proxy itself would write them.

The lab does not imitate kube-proxy's *effect*; it loads kube-proxy's *rules* into the node's
namespace, so that every claim about SNAT, DROP and REJECT is decided by the real kernel.
The rules follow ``pkg/proxy/iptables/proxier.go`` (Kubernetes 1.3x) and the kubelet's few
chains (``pkg/kubelet/kubelet_network_linux.go``), so ``iptables-save`` in a lab node reads
like a real node's. The packet flow they build::

    nat PREROUTING/OUTPUT -> KUBE-SERVICES
        -d clusterIP --dport P  -> KUBE-SVC-x   (ClusterIP; KUBE-SVL-x with internalTrafficPolicy Local)
        -d externalIP --dport P -> KUBE-EXT-x   (spec.externalIPs, any type)
        -d lbIP --dport P       -> KUBE-EXT-x   (LoadBalancer; KUBE-FW-x with loadBalancerSourceRanges)
        last: --dst-type LOCAL  -> KUBE-NODEPORTS --dport nodePort -> KUBE-EXT-x
              (nodePortAddresses: one "-d <node address>" rule per address inside them instead)
    KUBE-SVC-x  ! -s podCIDR -> KUBE-MARK-MASQ (masqueradeAll: every source; no detector: no rule),
                then 1/n, 1/(n-1) ... -> KUBE-SEP-y
    KUBE-SVL-x  the same over the endpoints on THIS node only (externalTrafficPolicy / internalTrafficPolicy Local)
                (endpoints: the ready ones; with none ready, the serving terminating ones: cluster-wide for
                 KUBE-SVC, per node for KUBE-SVL; neither anywhere is "no endpoints")
    KUBE-FW-x   -s <each source range> -> KUBE-EXT-x; the rest falls through (filter KUBE-PROXY-FIREWALL DROPs)
    KUBE-EXT-x  Cluster: -> KUBE-MARK-MASQ, -> KUBE-SVC-x (always SNAT)
                Local:   pods -> KUBE-SVC-x (only with the local-traffic detector); host-originated -> MASQ + KUBE-SVC-x;
                         everything else -> KUBE-SVL-x, or falls through when no local endpoint
                (sessionAffinity ClientIP: first "-m recent --name KUBE-SEP-y --rcheck --seconds T --reap -> KUBE-SEP-y"
                 per endpoint)
    KUBE-SEP-y  -s epIP -> KUBE-MARK-MASQ (hairpin), DNAT --to-destination epIP:targetPort
                (sessionAffinity ClientIP: "-m recent --name KUBE-SEP-y --set" on the DNAT rule)
    nat POSTROUTING -> KUBE-POSTROUTING: marked 0x4000 -> clear mark, MASQUERADE --random-fully
    filter: KUBE-SERVICES REJECTs cluster IPs without endpoints (DROPs them with ITP Local and none
            here); KUBE-PROXY-FIREWALL DROPs LB traffic that KUBE-FW left un-DNATed; KUBE-EXTERNAL-SERVICES
            REJECTs (no endpoints) or DROPs (ETP Local, none on this node) node ports and LB IPs
            that nothing DNATed; KUBE-NODEPORTS ACCEPTs health-check node ports; KUBE-FORWARD
            accepts marked and established traffic and drops ctstate INVALID.

Why the traffic that nothing DNATs is dropped in *filter*: NodePort/LB traffic of an ETP Local
service without a local endpoint leaves KUBE-EXT without a jump, stays addressed to the node
(INPUT) or the LB IP (FORWARD) and meets KUBE-EXTERNAL-SERVICES: the client times out.

Comments of the deciding rules (REJECT/DROP in filter, the MASQUERADE, the INVALID and localnet
drops) start with their ``netiso.oracle.decided`` token, then kube-proxy's own text, so that a
TRACE names the decision in the oracle's words (upstream's INVALID drop has no comment).

The per-service-port decisions (chain names, endpoint categories, which chains a port needs)
are made in :mod:`netiso.backends.lab.kubeproxy_plan`; this module writes the rules from them.
Endpoints come sorted by ``ip:port`` string as kube-proxy's endpoint cache sorts them, so the
probability ladder is the one a real node shows.
"""

from __future__ import annotations

from dataclasses import dataclass

from netiso.backends.lab.iptables import RuleSet
from netiso.backends.lab.kubeproxy_plan import (
    PortPlan,
    ServiceChains,
    categorize_endpoints,
    describe_chains,
    endpoint_chain,
    node_plans,
    plan_port,
    port_name_string,
    port_proto_hash,
    service_chains,
)
from netiso.model.types import KubeProxySpec, NodeInfo, PodInfo, Topology
from netiso.oracle.decided import Decision
from netiso.oracle.proxy_knobs import in_ranges

# the plan's names stay importable from here, where the lab, its tests and test_decided always found them
__all__ = [
    "KubeProxyConfig",
    "PortPlan",
    "ServiceChains",
    "categorize_endpoints",
    "describe_chains",
    "endpoint_chain",
    "node_plans",
    "node_port_ips",
    "plan_port",
    "port_name_string",
    "port_proto_hash",
    "render_kube_proxy",
    "service_chains",
]

MASQUERADE_BIT = 14  # kube-proxy's default --iptables-masquerade-bit

KUBE_SERVICES = "KUBE-SERVICES"
KUBE_EXTERNAL_SERVICES = "KUBE-EXTERNAL-SERVICES"
KUBE_NODEPORTS = "KUBE-NODEPORTS"
KUBE_POSTROUTING = "KUBE-POSTROUTING"
KUBE_MARK_MASQ = "KUBE-MARK-MASQ"
KUBE_FORWARD = "KUBE-FORWARD"
KUBE_PROXY_FIREWALL = "KUBE-PROXY-FIREWALL"
KUBE_FIREWALL = "KUBE-FIREWALL"
KUBE_PROXY_CANARY = "KUBE-PROXY-CANARY"
KUBELET_CANARY = "KUBE-KUBELET-CANARY"
KUBE_IPTABLES_HINT = "KUBE-IPTABLES-HINT"

# nfacct counter names kube-proxy uses when the kernel has nfnetlink_acct.
NFACCT_INVALID = "ct_state_invalid_dropped_pkts"
NFACCT_LOCALHOST_NODEPORT = "localhost_nps_accepted_pkts"

_NEW = "-m conntrack --ctstate NEW"
# kube-proxy's iptablesJumpChains, in its order: (table, built-in chain, extra args, comment, target).
_PROXY_JUMPS: tuple[tuple[str, str, str, str, str], ...] = (
    ("filter", "INPUT", _NEW, "kubernetes externally-visible service portals", KUBE_EXTERNAL_SERVICES),
    ("filter", "FORWARD", _NEW, "kubernetes externally-visible service portals", KUBE_EXTERNAL_SERVICES),
    ("filter", "INPUT", "", "kubernetes health check service ports", KUBE_NODEPORTS),
    ("filter", "FORWARD", _NEW, "kubernetes service portals", KUBE_SERVICES),
    ("filter", "OUTPUT", _NEW, "kubernetes service portals", KUBE_SERVICES),
    ("filter", "FORWARD", "", "kubernetes forwarding rules", KUBE_FORWARD),
    ("filter", "INPUT", _NEW, "kubernetes load balancer firewall", KUBE_PROXY_FIREWALL),
    ("filter", "OUTPUT", _NEW, "kubernetes load balancer firewall", KUBE_PROXY_FIREWALL),
    ("filter", "FORWARD", _NEW, "kubernetes load balancer firewall", KUBE_PROXY_FIREWALL),
    ("nat", "OUTPUT", "", "kubernetes service portals", KUBE_SERVICES),
    ("nat", "PREROUTING", "", "kubernetes service portals", KUBE_SERVICES),
    ("nat", "POSTROUTING", "", "kubernetes postrouting rules", KUBE_POSTROUTING),
    # iptablesKubeletJumpChains: kube-proxy re-ensures the kubelet's jumps (no comment).
    ("filter", "INPUT", "", "", KUBE_FIREWALL),
    ("filter", "OUTPUT", "", "", KUBE_FIREWALL),
)
# The kubelet starts first and prepends its two jumps (OUTPUT, then INPUT).
_KUBELET_JUMPS: tuple[tuple[str, str, str], ...] = (
    ("filter", "OUTPUT", f"-j {KUBE_FIREWALL}"),
    ("filter", "INPUT", f"-j {KUBE_FIREWALL}"),
)
_LOCALNET_RULE = (
    f'-m comment --comment "{Decision("kubelet", "localnet", "drop").comment("block incoming localnet connections")}"'
    ' -d 127.0.0.0/8 ! -s 127.0.0.0/8 '
    "-m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP"
)


@dataclass(frozen=True)
class KubeProxyConfig:
    """The kube-proxy settings that change the rules; defaults are kube-proxy's (and kind's).

    ``nfacct`` is off by default although real nodes usually have it: it needs nfacct objects
    created over nfnetlink, which the lab does not do. ``localhost_nodeports`` (upstream
    default true) makes the node builder responsible for ``route_localnet=1`` in the node.
    ``kubelet`` adds the chains the kubelet creates (hint, canary, KUBE-FIREWALL first jumps).
    """

    masquerade_bit: int = MASQUERADE_BIT
    masquerade_all: bool = False
    localhost_nodeports: bool = True
    random_fully: bool = True
    conntrack_tcp_be_liberal: bool = False
    nfacct: bool = False
    kubelet: bool = True
    detect_local: bool = True  # the ClusterCIDR local-traffic detector (False: none)
    node_port_addresses: tuple[str, ...] = ()  # CIDRs; () = every local address

    @property
    def mark(self) -> str:
        return f"{1 << self.masquerade_bit:#x}"

    @classmethod
    def of(cls, spec: KubeProxySpec) -> KubeProxyConfig:
        """The lab's configuration for a scenario's ``cluster.kubeProxy``."""
        return cls(masquerade_all=spec.masqueradeAll, detect_local=spec.detects_local,
                   node_port_addresses=spec.nodePortAddresses)



def _probability(n: int) -> str:
    return f"{1.0 / n:.10f}"  # proxier.go computeProbability: "%0.10f"


def _hooks(rs: RuleSet, cfg: KubeProxyConfig) -> None:
    """Jumps into built-in chains in the order a node ends up with.

    kube-proxy *prepends* each jump (EnsureRule Prepend) unless it exists, after the kubelet
    prepended its KUBE-FIREWALL jumps, so e.g. INPUT reads KUBE-PROXY-FIREWALL, KUBE-NODEPORTS,
    KUBE-EXTERNAL-SERVICES, KUBE-FIREWALL as ``iptables -L`` shows on a kubeadm node.
    """
    chains: dict[tuple[str, str], list[str]] = {}
    if cfg.kubelet:
        for table, builtin, spec in _KUBELET_JUMPS:
            chains.setdefault((table, builtin), []).insert(0, spec)
    for table, builtin, extra, comment, target in _PROXY_JUMPS:
        parts = [extra] if extra else []
        if comment:
            parts.append(f'-m comment --comment "{comment}"')
        spec = " ".join([*parts, f"-j {target}"])
        rules = chains.setdefault((table, builtin), [])
        if spec not in rules:
            rules.insert(0, spec)
    for (table, builtin), specs in chains.items():
        for spec in specs:
            rs.table(table).hook(builtin, spec)


def _skeleton(rs: RuleSet, cfg: KubeProxyConfig) -> None:
    """Top-level chains and their fixed rules (masquerade, forward, localnet firewall)."""
    flt, nat = rs.table("filter"), rs.table("nat")
    for chain in (KUBE_SERVICES, KUBE_EXTERNAL_SERVICES, KUBE_FORWARD, KUBE_NODEPORTS, KUBE_PROXY_FIREWALL):
        flt.chain(chain)
    for chain in (KUBE_SERVICES, KUBE_NODEPORTS, KUBE_POSTROUTING, KUBE_MARK_MASQ):
        nat.chain(chain)
    mark = cfg.mark
    nat.add(KUBE_POSTROUTING, f"-m mark ! --mark {mark}/{mark} -j RETURN")
    nat.add(KUBE_POSTROUTING, f"-j MARK --xor-mark {mark}")  # clear it: no double SNAT on re-entry
    snat = Decision("masquerade", "kube-proxy").comment("kubernetes service traffic requiring SNAT")
    masq = f'-m comment --comment "{snat}" -j MASQUERADE'
    nat.add(KUBE_POSTROUTING, masq + (" --random-fully" if cfg.random_fully else ""))
    nat.add(KUBE_MARK_MASQ, f"-j MARK --or-mark {mark}")
    # kube-proxy writes the localnet rule with localhost node ports; the kubelet always does.
    flt.chain(KUBE_FIREWALL)
    if cfg.localhost_nodeports or cfg.kubelet:
        flt.add(KUBE_FIREWALL, _LOCALNET_RULE)
    for table in ("mangle", "nat", "filter"):
        if cfg.kubelet:
            rs.table(table).chain(KUBELET_CANARY)
        rs.table(table).chain(KUBE_PROXY_CANARY)
    if cfg.kubelet:
        rs.table("mangle").chain(KUBE_IPTABLES_HINT)


def _service_port_rules(rs: RuleSet, plan: PortPlan, pod_cidr: str, cfg: KubeProxyConfig, node_ip: str) -> None:
    """One service port, in proxier.go's order (order matters within each chain)."""
    flt, nat = rs.table("filter"), rs.table("nat")
    svc, proto, name, ch = plan.service, plan.protocol, plan.name, plan.chains
    match, port = f"-m {proto} -p {proto}", plan.port.port.port
    # Filter verdict for what nothing DNATs: REJECT without endpoints, DROP without local ones.
    target, comment = ("DROP", Decision("kube-proxy", f"{name} no-local-endpoints", "drop").comment(
        f"{name} has no local endpoints")) if plan.has_endpoints else (
        "REJECT", Decision("kube-proxy", f"{name} no-endpoints", "reject").comment(f"{name} has no endpoints"))
    cip = f'-m comment --comment "{name} cluster IP" {match} -d {svc.cluster_ip} --dport {port}'

    internal = ch.svl if plan.internal_local else ch.svc  # internalTrafficChain
    # Capture the cluster IP: REJECT without endpoints, DROP with ITP Local and none on this node.
    if plan.has_internal_endpoints:
        nat.add(KUBE_SERVICES, f"{cip} -j {internal}")
    else:
        flt.add(KUBE_SERVICES, f'-m comment --comment "{comment}" {match} -d {svc.cluster_ip} '
                f"--dport {port} -j {target}")
    # Capture the external IPs: KUBE-EXT as for a node port (no source ranges).
    for ext_ip in plan.external_ips:
        dst = f"{match} -d {ext_ip} --dport {port}"
        if plan.has_endpoints:
            nat.add(KUBE_SERVICES, f'-m comment --comment "{name} external IP" {dst} -j {ch.ext}')
        if not plan.has_external_endpoints:
            flt.add(KUBE_EXTERNAL_SERVICES, f'-m comment --comment "{comment}" {dst} -j {target}')
    # Capture the load-balancer IP (through KUBE-FW when source ranges are set).
    if plan.lb_ip is not None:
        dst = f"{match} -d {plan.lb_ip} --dport {port}"
        if plan.has_endpoints:
            lb_chain = ch.fw if plan.uses_firewall else ch.ext
            nat.add(KUBE_SERVICES, f'-m comment --comment "{name} loadbalancer IP" {dst} -j {lb_chain}')
        if plan.uses_firewall:
            fw = Decision("kube-proxy", f"{name} source-ranges", "drop").comment(
                f"{name} traffic not accepted by {ch.fw}")
            flt.add(KUBE_PROXY_FIREWALL, f'-m comment --comment "{fw}" {dst} -j DROP')
        if not plan.has_external_endpoints:
            flt.add(KUBE_EXTERNAL_SERVICES, f'-m comment --comment "{comment}" {dst} -j {target}')
    # Capture the node port.
    if plan.node_port is not None:
        if plan.has_endpoints:
            if cfg.localhost_nodeports and cfg.nfacct:
                nat.add(KUBE_NODEPORTS, f"-m comment --comment {name} {match} -d 127.0.0.0/8 --dport "
                        f"{plan.node_port} -m nfacct --nfacct-name {NFACCT_LOCALHOST_NODEPORT} -j {ch.ext}")
            nat.add(KUBE_NODEPORTS, f"-m comment --comment {name} {match} --dport {plan.node_port} -j {ch.ext}")
        if not plan.has_external_endpoints:
            flt.add(KUBE_EXTERNAL_SERVICES, f'-m comment --comment "{comment}" -m addrtype --dst-type LOCAL '
                    f"{match} --dport {plan.node_port} -j {target}")
    if plan.health_check_node_port:
        flt.add(KUBE_NODEPORTS, f'-m comment --comment "{name} health check node port" -m tcp -p tcp '
                f"--dport {plan.health_check_node_port} -j ACCEPT")
    if not plan.has_endpoints:
        return  # no nat chains at all for a service without endpoints

    reachable = plan.reachable
    for chain in (((ch.ext,) if plan.externally_accessible else ()) + ((ch.fw,) if plan.uses_firewall else ())
                  + ((ch.svc,) if plan.uses_cluster_chain else ()) + ((ch.svl,) if plan.uses_local_chain else ())):
        nat.chain(chain)
    for pod in reachable:
        nat.chain(plan.endpoint_chains[pod.ip])

    # Off-cluster sources reaching a cluster IP may bounce off-node: masquerade them (masqueradeAll:
    # everything; without a local-traffic detector: nothing).
    if plan.has_internal_endpoints and (cfg.masquerade_all or cfg.detect_local):
        not_local = "" if cfg.masquerade_all else f" ! -s {pod_cidr}"
        nat.add(internal, f"{cip}{not_local} -j {KUBE_MARK_MASQ}")
    if plan.externally_accessible:
        _external_chain(rs, plan, pod_cidr, cfg)
    if plan.uses_firewall:
        _firewall_chain(rs, plan, node_ip)
    if plan.uses_cluster_chain:
        _balance(rs, plan, ch.svc, plan.endpoints)
    if plan.uses_local_chain:
        _balance(rs, plan, ch.svl, plan.local_endpoints)
    for pod in reachable:
        sep = plan.endpoint_chains[pod.ip]
        nat.add(sep, f"-m comment --comment {name} -s {pod.ip} -j {KUBE_MARK_MASQ}")  # hairpin
        # ClientIP affinity: remember the client in this endpoint's recent list (per node, per source IP)
        sticky = f" -m recent --name {sep} --set" if plan.affinity_timeout is not None else ""
        nat.add(sep, f"-m comment --comment {name}{sticky} {match} -j DNAT --to-destination {plan.endpoint(pod)}")


def _external_chain(rs: RuleSet, plan: PortPlan, pod_cidr: str, cfg: KubeProxyConfig) -> None:
    nat, ch, name = rs.table("nat"), plan.chains, plan.name
    if not plan.external_local:
        nat.add(ch.ext, f'-m comment --comment "masquerade traffic for {name} external destinations" '
                f"-j {KUBE_MARK_MASQ}")
        nat.add(ch.ext, f"-j {ch.svc}")
        return
    # Pods reaching an external address get Cluster semantics (as if via an external LB), when
    # kube-proxy can tell a pod (the local-traffic detector).
    if cfg.detect_local:
        nat.add(ch.ext, f'-m comment --comment "pod traffic for {name} external destinations" '
                f"-s {pod_cidr} -j {ch.svc}")
    # The host itself picked the node/LB IP as source: it must be masqueraded.
    nat.add(ch.ext, f'-m comment --comment "masquerade LOCAL traffic for {name} external destinations" '
            f"-m addrtype --src-type LOCAL -j {KUBE_MARK_MASQ}")
    nat.add(ch.ext, f'-m comment --comment "route LOCAL traffic for {name} external destinations" '
            f"-m addrtype --src-type LOCAL -j {ch.svc}")
    if plan.local_endpoints:
        nat.add(ch.ext, f"-j {ch.svl}")
    # else: nothing DNATs it, filter KUBE-EXTERNAL-SERVICES drops it


def _firewall_chain(rs: RuleSet, plan: PortPlan, node_ip: str) -> None:
    """KUBE-FW: sources in loadBalancerSourceRanges go on to KUBE-EXT; the rest is left un-DNATed
    for filter KUBE-PROXY-FIREWALL to drop (the node's own VIP-sourced traffic passes when the
    node IP is in a range: ``allowFromNode``)."""
    nat, ch, name = rs.table("nat"), plan.chains, plan.name
    head = f'-m comment --comment "{name} loadbalancer IP"'
    for cidr in plan.source_ranges:
        nat.add(ch.fw, f"{head} -s {cidr} -j {ch.ext}")
    if plan.lb_ip and in_ranges(node_ip, plan.source_ranges):
        nat.add(ch.fw, f"{head} -s {plan.lb_ip} -j {ch.ext}")
    nat.add(ch.fw, f'-m comment --comment "other traffic to {name} will be dropped by KUBE-PROXY-FIREWALL"')


def _balance(rs: RuleSet, plan: PortPlan, chain: str, endpoints: tuple[PodInfo, ...]) -> None:
    """Random ladder 1/n, 1/(n-1) ... with the last endpoint unconditional: uniform overall.

    With ClientIP session affinity the ladder is preceded by one ``-m recent --rcheck`` rule per
    endpoint (writeServiceToEndpointRules): a source seen by an endpoint's ``--set`` within the
    timeout goes straight back to it; ``--reap`` prunes older entries.
    """
    nat, n = rs.table("nat"), len(endpoints)
    if plan.affinity_timeout is not None:
        for pod in endpoints:
            sep = plan.endpoint_chains[pod.ip]
            nat.add(chain, f'-m comment --comment "{plan.name} -> {plan.endpoint(pod)}" -m recent --name {sep} '
                    f"--rcheck --seconds {plan.affinity_timeout} --reap -j {sep}")
    for i, pod in enumerate(endpoints):
        stat = f" -m statistic --mode random --probability {_probability(n - i)}" if i < n - 1 else ""
        nat.add(chain, f'-m comment --comment "{plan.name} -> {plan.endpoint(pod)}"{stat} '
                f"-j {plan.endpoint_chains[pod.ip]}")


def render_kube_proxy(topology: Topology, node: str, config: KubeProxyConfig | None = None) -> RuleSet:
    """The filter, nat (and kubelet's mangle) rules kube-proxy keeps on ``node``.

    Merge it after Calico's rule set (``merge(calico, kube_proxy)``) and load it with
    ``render_restore``; the local-traffic detector is the cluster CIDR (``pod_network``).
    """
    cfg = config or KubeProxyConfig.of(topology.scenario.cluster.kubeProxy)
    info = topology.nodes[node]
    rs = RuleSet()
    _hooks(rs, cfg)
    _skeleton(rs, cfg)
    for plan in node_plans(topology, node):
        _service_port_rules(rs, plan, topology.pod_network, cfg, info.ip)
    # Tail call to KUBE-NODEPORTS: must stay the last rule of KUBE-SERVICES; with nodePortAddresses
    # one rule per node address inside them (GetNodeIPs: the addresses of the node's interfaces).
    tail = '-m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain"'
    if not cfg.node_port_addresses:
        dst = "-m addrtype --dst-type LOCAL" + ("" if cfg.localhost_nodeports else " ! -d 127.0.0.0/8")
        rs.table("nat").add(KUBE_SERVICES, f"{tail} {dst} -j {KUBE_NODEPORTS}")
    for ip in node_port_ips(info, cfg):
        rs.table("nat").add(KUBE_SERVICES, f"{tail} -d {ip} -j {KUBE_NODEPORTS}")
    flt = rs.table("filter")
    if not cfg.conntrack_tcp_be_liberal:
        acct = f" -m nfacct --nfacct-name {NFACCT_INVALID}" if cfg.nfacct else ""
        invalid = Decision("kube-proxy", "conntrack-invalid", "drop").comment("conntrack INVALID")
        flt.add(KUBE_FORWARD, f'-m conntrack --ctstate INVALID{acct} -m comment --comment "{invalid}" -j DROP')
    flt.add(KUBE_FORWARD, f'-m comment --comment "kubernetes forwarding rules" -m mark --mark '
            f"{cfg.mark}/{cfg.mark} -j ACCEPT")
    flt.add(KUBE_FORWARD, '-m comment --comment "kubernetes forwarding conntrack rule" '
            "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
    return rs


def node_port_ips(node: NodeInfo, cfg: KubeProxyConfig) -> list[str]:
    """The node's addresses inside ``nodePortAddresses`` (node IP, tunnel IP; none without the setting)."""
    if not cfg.node_port_addresses:
        return []
    return [ip for ip in (node.ip, node.tunnel_ip) if ip and in_ranges(ip, cfg.node_port_addresses)]
