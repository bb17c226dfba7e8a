"""The founding-article matrix, built in Python: one scenario (one lab) per (encapsulation, LB).

The KubeSphere article "网络隔离的最小配置" asks which whitelist entry an isolated project needs
so that NodePort / LoadBalancer / Ingress traffic still reaches it, under externalTrafficPolicy
Cluster and Local, entering on a node with and without an endpoint, in Calico direct, IPIP and
VXLAN. Each generated scenario answers it for one (mode, load balancer) pair with three views
of the same workload (``web``, pinned on ``worker``), one per project of workspace ``ws``:

* ``shop`` whitelists alice's CIDR only (bob is not whitelisted): the article's set-up. Every
  exposure x entry node x client.
* ``shop-infra`` whitelists every *infrastructure* source and no client: all node IPs, all
  tunnel IPs and the ingress controllers' namespace. bob passes there exactly when the policy
  saw something other than bob (SNAT or a proxy), and the source the pod saw names the entry
  that admitted him. Together with ``shop`` this derives the minimal entry per case.
* ``shop-entry`` whitelists alice plus the SNAT address of one entry node (worker2's tunnel IP,
  or its node IP in direct mode): the article's "can't block specific IPs because of SNAT".

LoadBalancer entry nodes are not chosen by the client but by the announcer's hash, so the VIPs
are planned (:func:`plan_vips`): the pool is placed so that one Cluster VIP is announced by the
endpoint node, one by the other worker, one hashes first to the control-plane (which MetalLB
must skip), the Local VIP would hash to a node *without* endpoint if Local did not restrict the
candidates, and the Cluster-exposed ingress controller (on worker2) is announced by worker.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import yaml

from netiso.model import election
from netiso.model.addressing import resolve
from netiso.model.loader import loads
from netiso.model.types import DEFAULT_NODES, Topology

MODES = ("direct", "ipip", "vxlan")
LOAD_BALANCERS = ("metallb", "openelb")
CONTROL_PLANE, ENDPOINT_NODE, OTHER_NODE = DEFAULT_NODES  # control-plane, worker, worker2
CLIENTS = ("alice", "bob")
CONTROLLER_NS = "kubesphere-controls-system"
CONTROLLER_NODE = OTHER_NODE
NODE_NETWORK = ipaddress.ip_network("198.18.0.0/24")

SHOP, INFRA, ENTRY = "shop", "shop-infra", "shop-entry"
VARIANT_TAG = {SHOP: "", INFRA: "infra-", ENTRY: "entrywl-"}


@dataclass(frozen=True)
class Exposure:
    """One way into the project: a Service (or an ingress) and how the entry node is chosen."""

    name: str  # readable id part, e.g. nodeport-local
    kind: str  # nodeport | loadbalancer | ingress
    etp: str  # Cluster | Local (ingress: the controller Service's)
    obj: str  # service or ingress name in the project
    entries: tuple[str, ...] = ()  # NodePort / NodePort-exposed controller: entry nodes to try
    vip_rule: str | None = None  # LoadBalancer: planning rule of its VIP (see plan_vips)


EXPOSURES: tuple[Exposure, ...] = (
    Exposure("nodeport-cluster", "nodeport", "Cluster", "np-cluster", (ENDPOINT_NODE, OTHER_NODE)),
    Exposure("nodeport-local", "nodeport", "Local", "np-local", (ENDPOINT_NODE, OTHER_NODE)),
    Exposure("lb-cluster", "loadbalancer", "Cluster", "lb-cluster-a", vip_rule="at-endpoint-node"),
    Exposure("lb-cluster", "loadbalancer", "Cluster", "lb-cluster-b", vip_rule="at-other-node"),
    Exposure("lb-cluster-cphash", "loadbalancer", "Cluster", "lb-cluster-c", vip_rule="hash-favours-control-plane"),
    Exposure("lb-local", "loadbalancer", "Local", "lb-local", vip_rule="hash-favours-node-without-endpoint"),
    Exposure("ingress-nodeport-local", "ingress", "Local", "web-np", (CONTROLLER_NODE, ENDPOINT_NODE)),
    Exposure("ingress-lb-cluster", "ingress", "Cluster", "web-lb", vip_rule="controller-at-node-without-controller"),
)


@dataclass(frozen=True)
class Case:
    """One flow of a matrix scenario, with what it means in the founding question."""

    id: str  # e.g. vxlan-metallb-infra-nodeport-local-worker2-bob
    mode: str
    lb: str
    variant: str  # shop | shop-infra | shop-entry (the project, i.e. its whitelist)
    exposure: Exposure
    entry: str  # planned entry node (LoadBalancer: the planned announcer)
    client: str
    index: int  # flow index in the scenario

    @property
    def row(self) -> str:
        """The matrix row this case belongs to (same exposure and entry, any project/client)."""
        return f"{self.exposure.name}-{self.entry}"


@dataclass(frozen=True)
class FoundingScenario:
    mode: str
    lb: str
    topo: Topology
    cases: tuple[Case, ...]

    @property
    def id(self) -> str:
        return f"{self.mode}-{self.lb}"

    def case(self, variant: str, exposure: str, entry: str, client: str) -> Case | None:
        return next((c for c in self.cases if (c.variant, c.exposure.name, c.entry, c.client)
                     == (variant, exposure, entry, client)), None)


# --------------------------------------------------------------------------- sourced facts


def hash_order(nodes: Iterable[str], vip: str) -> list[str]:
    """Nodes in announcer preference order for ``vip``: MetalLB L2 (speaker/layer2_controller.go
    ShouldAnnounce) and OpenELB layer2 (SetBalancer) both sort by ``sha256(node + "#" + ip)``.

    Written from the facts on purpose (not :mod:`netiso.model.election`) so the documented-behaviour
    tests judge the lab against the sources, not against the model.
    """
    return sorted(nodes, key=lambda n: hashlib.sha256(f"{n}#{vip}".encode()).digest())


def snat_symbol(mode: str, node: str) -> str:
    """What MASQUERADE picks for a packet forwarded from ``node`` to another node: the primary
    address of the output device - ``tunl0``/``vxlan.calico`` (tunnel IP) or eth0 (node IP)."""
    return f"node:{node}" if mode == "direct" else f"tunnel:{node}"


# --------------------------------------------------------------------------- VIP planning


def _vip_ok(rule: str, lb: str, vip: str) -> bool:
    """Whether ``vip`` serves a planning rule under ``lb``'s election (the model's, which the lab
    implements: the plan only has to make the intended cases happen)."""
    nodes = [(n, i == 0) for i, n in enumerate(DEFAULT_NODES)]

    def elected(etp: str, endpoints: list[str]) -> str | None:
        return election.elect(election.candidates(lb, nodes, etp, endpoints), vip)

    if rule == "at-endpoint-node":
        return elected("Cluster", [ENDPOINT_NODE]) == ENDPOINT_NODE
    if rule == "at-other-node":
        return elected("Cluster", [ENDPOINT_NODE]) == OTHER_NODE
    if rule == "hash-favours-control-plane":
        return hash_order(DEFAULT_NODES, vip)[0] == CONTROL_PLANE
    if rule == "hash-favours-node-without-endpoint":
        return elected("Cluster", [ENDPOINT_NODE]) != ENDPOINT_NODE
    if rule == "controller-at-node-without-controller":
        return elected("Cluster", [CONTROLLER_NODE]) == ENDPOINT_NODE
    raise ValueError(f"unknown VIP rule {rule}")


def _assign(rules: list[tuple[str, str]], vips: list[str], lb: str) -> list[tuple[str, str]] | None:
    """Match (key, rule) pairs to ``vips`` in order (backtracking); None when impossible."""
    if not vips:
        return [] if not rules else None
    vip = vips[0]
    for i, (key, rule) in enumerate(rules):
        if _vip_ok(rule, lb, vip):
            rest = _assign(rules[:i] + rules[i + 1:], vips[1:], lb)
            if rest is not None:
                return [(key, vip), *rest]
    return None


@functools.cache
def plan_vips(lb: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """``(pool, ((service key, vip), ...))`` in allocation order, the controller's VIP last.

    The address plan hands VIPs out from the pool in Service order, the ingress controllers'
    Services after the scenario's; the first window of the node network that satisfies every
    rule wins (deterministic, so a report read weeks later names the same VIPs).
    """
    lbs = [(f"{v}/{e.obj}", e.vip_rule) for v in (SHOP, INFRA) for e in EXPOSURES
           if e.kind == "loadbalancer" and e.vip_rule]
    ctrl_rule = next(e.vip_rule for e in EXPOSURES if e.kind == "ingress" and e.vip_rule)
    width = len(lbs) + 1
    for start in list(range(200, 255 - width)) + list(range(110, 200)):
        vips = [str(NODE_NETWORK.network_address + start + i) for i in range(width)]
        if not _vip_ok(ctrl_rule or "", lb, vips[-1]):
            continue
        order = _assign(lbs, vips[:-1], lb)
        if order is not None:
            return f"{vips[0]}-{vips[-1]}", (*order, ("controller", vips[-1]))
    raise RuntimeError(f"no VIP window satisfies the founding matrix's rules for {lb}")


# --------------------------------------------------------------------------- scenario


def _whitelist(mode: str, variant: str) -> list[dict[str, object]]:
    def cidr(symbol: str) -> dict[str, object]:
        return {"direction": "ingress", "peer": {"cidr": symbol}}

    if variant == SHOP:
        return [cidr("client:alice")]
    if variant == ENTRY:
        return [cidr("client:alice"), cidr(snat_symbol(mode, OTHER_NODE))]
    infra = [cidr("node:*")] + ([] if mode == "direct" else [cidr("tunnel:*")])
    return [*infra, {"direction": "ingress", "peer": {"project": CONTROLLER_NS}}]


def _services(vip_order: list[str]) -> list[dict[str, object]]:
    """Every Service of the scenario, LoadBalancers first in the planned VIP order (the address
    plan allocates VIPs in Service order across all projects)."""
    by_key: dict[str, dict[str, object]] = {}
    for variant in (SHOP, INFRA, ENTRY):
        for e in EXPOSURES:
            if e.kind == "ingress" or (variant == ENTRY and e.obj != "np-cluster"):
                continue
            stype = "NodePort" if e.kind == "nodeport" else "LoadBalancer"
            by_key[f"{variant}/{e.obj}"] = {"name": e.obj, "project": variant, "selector": {"app": "web"},
                                            "type": stype, "externalTrafficPolicy": e.etp}
        if variant != ENTRY:  # the ingresses' backend
            by_key[f"{variant}/web"] = {"name": "web", "project": variant, "selector": {"app": "web"}}
    ordered = [by_key.pop(key) for key in vip_order if key in by_key]
    return ordered + list(by_key.values())


def _ingresses(variant: str) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for e in EXPOSURES:
        if e.kind != "ingress":
            continue
        exposure = "NodePort" if e.entries else "LoadBalancer"
        out.append({"name": e.obj, "project": variant, "host": f"{e.obj}.{variant}.example", "service": "web",
                    "controller": {"project": CONTROLLER_NS, "node": CONTROLLER_NODE, "exposure": exposure,
                                   "externalTrafficPolicy": e.etp}})
    return out


def _targets(variant: str, exposure: Exposure) -> list[tuple[str, str | None]]:
    """``(to:, entry node or None for the announcer)`` of every flow into ``exposure``."""
    if exposure.kind == "nodeport":
        return [(f"nodeport:{variant}/{exposure.obj}@{n}", n) for n in exposure.entries]
    if exposure.kind == "loadbalancer":
        return [(f"loadbalancer:{variant}/{exposure.obj}", None)]
    if exposure.entries:
        return [(f"ingress:{variant}/{exposure.obj}@{n}", n) for n in exposure.entries]
    return [(f"ingress:{variant}/{exposure.obj}", None)]


def scenario_yaml(mode: str, lb: str) -> str:
    """The matrix scenario of (``mode``, ``lb``) as scenario YAML (readable with ``netiso render``)."""
    pool, order = plan_vips(lb)
    vip_order = [k for k, _ in order]
    doc = {
        "name": f"founding-{mode}-{lb}",
        "description": (
            f"Founding-article matrix, Calico {mode}, {lb}: web on {ENDPOINT_NODE} in isolated projects "
            f"{SHOP} (alice's CIDR), {INFRA} (node/tunnel IPs and {CONTROLLER_NS}) and {ENTRY} (alice and "
            f"{snat_symbol(mode, OTHER_NODE)}), exposed by NodePort and LoadBalancer under Cluster and Local and "
            f"by ingresses through controllers on {CONTROLLER_NODE}."),
        "cluster": {"encapsulation": mode, "loadBalancer": lb, "clients": list(CLIENTS),
                    "network": {"loadBalancerPool": pool}},
        "workspaces": [{"name": "ws", "projects": [
            {"name": v, "isolation": True, "whitelist": _whitelist(mode, v)} for v in (SHOP, INFRA, ENTRY)]}],
        "projects": [{"name": CONTROLLER_NS}],
        "workloads": [{"name": "web", "project": v, "nodes": [ENDPOINT_NODE]} for v in (SHOP, INFRA, ENTRY)],
        "services": _services(vip_order),
        "ingresses": _ingresses(SHOP) + _ingresses(INFRA),
        "flows": [],
    }
    flows: list[dict[str, str]] = doc["flows"]  # type: ignore[assignment]
    for variant, clients in ((SHOP, CLIENTS), (INFRA, ("bob",))):
        for e in EXPOSURES:
            for to, _ in _targets(variant, e):
                flows.extend({"from": f"client:{c}", "to": to} for c in clients)
    flows += [{"from": "client:alice", "to": f"nodeport:{ENTRY}/np-cluster@{OTHER_NODE}"},
              {"from": "client:bob", "to": f"nodeport:{ENTRY}/np-cluster@{OTHER_NODE}"},
              {"from": "client:bob", "to": f"nodeport:{ENTRY}/np-cluster@{ENDPOINT_NODE}"}]
    return yaml.safe_dump(doc, sort_keys=False, width=120)


def _exposure_of(to: str) -> Exposure:
    obj = to.split("/", 1)[1].split("@", 1)[0]
    return next(e for e in EXPOSURES if e.obj == obj)


def build(mode: str, lb: str) -> FoundingScenario:
    scenario = loads(scenario_yaml(mode, lb), file=f"<founding {mode}-{lb}>")[0]
    topo = resolve(scenario)
    cases = []
    for i, flow in enumerate(scenario.flows):
        variant = flow.dst.split(":", 1)[1].split("/", 1)[0]
        exposure = _exposure_of(flow.dst)
        entry = flow.dst.split("@", 1)[1] if "@" in flow.dst else None
        if entry is None:
            svc = (topo.services[f"{variant}/{exposure.obj}"] if exposure.kind == "loadbalancer"
                   else topo.ingresses[f"{variant}/{exposure.obj}"].controller.service)
            entry = svc.lb_node or "unannounced"
        client = flow.src.split(":", 1)[1]
        cid = f"{mode}-{lb}-{VARIANT_TAG[variant]}{exposure.name}-{entry}-{client}"
        cases.append(Case(cid, mode, lb, variant, exposure, entry, client, i))
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), f"duplicate case ids in {mode}-{lb}: {ids}"
    return FoundingScenario(mode, lb, topo, tuple(cases))


@functools.cache
def matrix() -> tuple[FoundingScenario, ...]:
    """Every (mode, LB) scenario of the founding matrix, resolved (no lab is built here)."""
    return tuple(build(m, lb) for m in MODES for lb in LOAD_BALANCERS)


def select(keep: Callable[[Case], bool]) -> list[tuple[FoundingScenario, Case]]:
    return [(fs, c) for fs in matrix() for c in fs.cases if keep(c)]
