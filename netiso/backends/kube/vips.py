"""Which VIP each LoadBalancer Service asks for, so the cluster's announcer is the plan's.

Why: a scenario's ``expect`` (and its entry-node reasoning: which node SNATs, whether the
endpoint is local) was worked out for the lab's plan - ``resolve(scenario)``: node names
``control-plane``/``worker``/``worker2`` and the pool 198.18.0.200+. MetalLB L2 and OpenELB
layer2 elect the announcer by hashing ``node#vip``, so on a cluster with other node names
(``netiso-<enc>-<lb>-<hash>-worker`` on kind, the user's on kube) and another pool, the address
the cluster would hand out elects some other node, and the flow would silently mean something
else. So, before the Services are created, :func:`choose_vips` searches the real pool (what
preflight found: the MetalLB IPAddressPool's ``spec.addresses`` or the OpenELB Eip's
``spec.address``) for a free address that the real nodes (names and
``exclude-from-external-load-balancers`` labels) elect the plan's node for
(``netiso.model.election.find_vip``), and the Service requests it:

* MetalLB: annotation ``metallb.io/loadBalancerIPs`` (metallb.io/docs "Requesting specific IPs");
* OpenELB v0.6.0: annotation ``eip.openelb.kubesphere.io/v1alpha1`` (it overrides
  ``spec.loadBalancerIP``: openelb pkg/controllers/ipam/ipam.go ConstructRequest).

Where no free address elects the planned node (too small a pool, a planned node that is not
eligible there), the Service gets no request, and the flows whose meaning depends on the
announcer (clients to the VIP) are reported ``skipped`` with :attr:`VipChoice.reason`, never
compared against a different election.

Parallel runs (``--jobs`` > 1): the cluster's Services only show a VIP once its Service exists,
so two scenarios choosing at the same moment would both see the same address free. Every choice
goes through the backend's :class:`VipReservations` (a lock and the addresses this process has
handed out): an address stays reserved from its choice until that realization's ``down``.

Knowingly not modelled: MetalLB pool ``serviceAllocation`` (namespace/priority restrictions) and
IP sharing keys; addresses that another tool holds without a Service status are not known.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from netiso.model import election
from netiso.model.render import METALLB_IPS_ANNOTATION, OPENELB_IP_ANNOTATION
from netiso.model.types import ServiceInfo, Topology

REQUEST_ANNOTATIONS = {"metallb": METALLB_IPS_ANNOTATION, "openelb": OPENELB_IP_ANNOTATION}


@dataclass(frozen=True)
class VipChoice:
    """One LoadBalancer Service's request: the VIP, and the node the plan (and so the VIP) elects."""

    service: str  # PROJECT/NAME
    vip: str | None  # the address to request; None: no free address elects the planned node
    planned: str | None  # the scenario node the plan elects (None: the plan announces it from nowhere)
    cluster_node: str | None  # that node's name in the cluster
    reason: str | None = None  # why ``vip`` is None (the skip reason of the flows that depend on it)

    def describe(self) -> str:
        """One line for plan.txt / the log.

        >>> VipChoice("shop/web", "172.18.255.201", "worker", "kind-worker").describe()
        'shop/web: requests VIP 172.18.255.201, elected node:worker (kind-worker) as planned'
        """
        if self.vip is None:
            return f"{self.service}: no VIP requested - {self.reason}"
        who = (f"elected node:{self.planned} ({self.cluster_node}) as planned" if self.planned
               else "announced by no node, as planned")
        return f"{self.service}: requests VIP {self.vip}, {who}"


class VipReservations:
    """The VIPs this process has chosen for realizations still up: chosen under one lock, held until ``down``.

    >>> held = VipReservations()
    >>> held.choose(lambda taken: {"a/web": VipChoice("a/web", "10.0.0.1", None, None)})["a/web"].vip
    '10.0.0.1'
    >>> seen = []
    >>> _ = held.choose(lambda taken: seen.append(sorted(taken)) or {})
    >>> held.release(["10.0.0.1"])
    >>> _ = held.choose(lambda taken: seen.append(sorted(taken)) or {})
    >>> seen
    [['10.0.0.1'], []]
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: set[str] = set()

    def choose(self, pick: Callable[[frozenset[str]], dict[str, VipChoice]]) -> dict[str, VipChoice]:
        """``pick(reserved)`` under the lock; the VIPs it chooses become reserved."""
        with self._lock:
            chosen = pick(frozenset(self._held))
            self._held.update(c.vip for c in chosen.values() if c.vip)
            return chosen

    @property
    def held(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._held)

    def release(self, vips: Iterable[str | None]) -> None:
        with self._lock:
            self._held.difference_update(v for v in vips if v)


def lb_services(topo: Topology) -> list[ServiceInfo]:
    """The LoadBalancer Services of ``topo`` (workloads' and ingress controllers'), in topology order."""
    return [s for s in topo.services.values() if s.type == "LoadBalancer"]


def choose_vips(planned: Topology, node_map: Mapping[str, str], excluded: Mapping[str, bool],
                ranges: Sequence[str], taken: Collection[str] = (), *, pool_label: str = "the pool",
                avoid_buggy: bool = False) -> dict[str, VipChoice]:
    """A :class:`VipChoice` per LoadBalancer Service of ``planned`` (the lab plan's topology).

    ``node_map``: scenario node -> cluster node; ``excluded``: scenario node -> carries the
    exclusion label on the cluster; ``ranges``: the pool; ``taken``: addresses in use.

    >>> from netiso.model.addressing import resolve
    >>> from netiso.model.loader import loads
    >>> topo = resolve(loads('''name: t
    ... projects: [{name: a}]
    ... workloads: [{name: web, project: a, nodes: [worker2]}]
    ... services: [{name: web, project: a, type: LoadBalancer}]
    ... ''')[0])
    >>> topo.services["a/web"].lb_node
    'worker'
    >>> names = {n: "kind-" + n for n in topo.nodes}
    >>> c = choose_vips(topo, names, {"control-plane": True}, ["172.18.255.200-172.18.255.250"])["a/web"]
    >>> c.vip, election.elect(["kind-worker", "kind-worker2"], c.vip)
    ('172.18.255.203', 'kind-worker')
    """
    impl = planned.load_balancer
    used = set(taken)
    out: dict[str, VipChoice] = {}
    for svc in lb_services(planned):
        nodes = [(node_map[n], bool(excluded.get(n, False))) for n in planned.nodes]
        eligible = election.candidates(impl, nodes, svc.etp, [node_map[n] for n in svc.announcing_nodes(impl)])
        wanted = node_map[svc.lb_node] if svc.lb_node else None
        vip = election.find_vip(election.pool_addresses(ranges, avoid_buggy=avoid_buggy), used, eligible, wanted)
        reason = None
        if vip is None:
            back = {v: k for k, v in node_map.items()}
            among = ", ".join(f"node:{back.get(n, n)} ({n})" for n in eligible) or "no node"
            if wanted is None:
                reason = (f"the scenario's plan announces {svc.key}'s VIP from no node, but on this cluster {impl} "
                          f"may announce it from {among}, so no VIP behaves as planned")
            else:
                reason = (f"no free address in {pool_label} ({', '.join(ranges) or 'empty'}) makes {impl} elect "
                          f"node:{svc.lb_node} ({wanted}) among {among}, as the scenario's plan does for {svc.key}")
        else:
            used.add(vip)
        out[svc.key] = VipChoice(svc.key, vip, svc.lb_node, wanted, reason)
    return out


def addresses_in_use(services: Iterable[Mapping[str, Any]]) -> list[str]:
    """VIPs the cluster's Services hold or request (status, the MetalLB/OpenELB annotations, loadBalancerIP).

    >>> addresses_in_use([{"metadata": {"annotations": {"metallb.io/loadBalancerIPs": "10.0.0.5,10.0.0.6"}},
    ...                    "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.7"}]}}}])
    ['10.0.0.5', '10.0.0.6', '10.0.0.7']
    """
    out: set[str] = set()
    for svc in services:
        for entry in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
            if entry.get("ip"):
                out.add(str(entry["ip"]))
        annotations = (svc.get("metadata") or {}).get("annotations") or {}
        for key in REQUEST_ANNOTATIONS.values():
            out.update(a.strip() for a in str(annotations.get(key) or "").split(",") if a.strip())
        if (svc.get("spec") or {}).get("loadBalancerIP"):
            out.add(str(svc["spec"]["loadBalancerIP"]))
    return sorted(out)


def lb_skip_reasons(planned: Topology, realized: Topology, choices: Mapping[str, VipChoice]) -> dict[str, str]:
    """Service key -> why its client-to-VIP flows are skipped: no VIP was found, or the cluster's VIP
    elects another node than the plan (a request the load balancer did not honour)."""
    out: dict[str, str] = {}
    for key, choice in choices.items():
        if choice.reason:
            out[key] = choice.reason
            continue
        svc = realized.services.get(key)
        plan = planned.services.get(key)
        if svc is None or plan is None or svc.lb_node == plan.lb_node:
            continue
        got = f"node:{svc.lb_node}" if svc.lb_node else "no node"
        out[key] = (f"{key}'s VIP on this cluster is {svc.lb_ip} (requested {choice.vip}), which "
                    f"{realized.load_balancer} announces from {got}; the scenario's plan has "
                    f"{'node:' + plan.lb_node if plan.lb_node else 'no node'} announce it")
    return out


def choose_on_cluster(kube: Any, planned: Topology, findings: Any, node_map: Mapping[str, str],
                      reservations: VipReservations) -> dict[str, VipChoice]:
    """:func:`choose_vips` with what preflight found (pool, node labels), the VIPs the cluster's
    Services already hold (``GET /api/v1/services``, all namespaces) and those ``reservations``
    holds for this process' other realizations; {} without LoadBalancer Services. The chosen VIPs
    are reserved until the caller releases them."""
    if not lb_services(planned) or planned.load_balancer not in REQUEST_ANNOTATIONS:
        return {}
    from netiso.backends.kube.preflight import EXCLUDE_LB_LABEL

    excluded = {n: EXCLUDE_LB_LABEL in findings.nodes[c].labels for n, c in node_map.items() if c in findings.nodes}
    in_use = addresses_in_use(kube.list("v1", "Service"))
    return reservations.choose(lambda reserved: choose_vips(
        planned, node_map, excluded, findings.lb_ranges, {*in_use, *reserved},
        pool_label=findings.lb_pool_label or "the load balancer's pool", avoid_buggy=findings.lb_avoid_buggy))
