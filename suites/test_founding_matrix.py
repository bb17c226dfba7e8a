"""The founding question, measured: which flows pass and which source survives, for an isolated
project exposed through NodePort, LoadBalancer (MetalLB, OpenELB) and Ingress, under
externalTrafficPolicy Cluster and Local, entering on a node with and without an endpoint, in
Calico direct, IPIP and VXLAN - and which whitelist entry each case needs.

The matrix is built in Python (suites/founding.py): one lab per (mode, LB), each flow observed
once (``scenario_runner``) and read by three kinds of tests:

(a) conformance: the observation matches the oracle's prediction;
(b) documented behaviour: assertions written from reference-facts.md alone (they read the
    observations and the topology's addresses, never the oracle's verdicts), so an oracle and
    a lab that agree on something the sources contradict still fail here;
(c) the founding question: per (mode, exposure, ETP, entry) the minimal whitelist entry derived
    from the observations, checked against a table written from the facts (printed with ``-s``).

A contradiction between an observation and a sourced fact is never weakened: it is listed in
``CONTRADICTIONS`` and marked xfail(strict=True) so it stays visible.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from fixtures.backend import expect_scenarios, flow_failure_message
from suites.founding import (
    CLIENTS,
    CONTROL_PLANE,
    CONTROLLER_NS,
    ENDPOINT_NODE,
    ENTRY,
    INFRA,
    OTHER_NODE,
    SHOP,
    Case,
    FoundingScenario,
    hash_order,
    matrix,
    select,
    snat_symbol,
)

pytestmark = pytest.mark.lab

# test name -> case/scenario id -> why the observation contradicts a sourced fact (see the report)
CONTRADICTIONS: dict[str, dict[str, str]] = {}

expect_scenarios([fs.topo for fs in matrix()])  # the first test builds all six labs side by side


def cases(test: str, keep: Callable[[Case], bool]) -> list[Any]:
    known = CONTRADICTIONS.get(test, {})
    return [pytest.param(fs, c, id=c.id, marks=[pytest.mark.xfail(strict=True, reason=known[c.id])]
                         if c.id in known else []) for fs, c in select(keep)]


def scenarios(test: str) -> list[Any]:
    known = CONTRADICTIONS.get(test, {})
    return [pytest.param(fs, id=fs.id, marks=[pytest.mark.xfail(strict=True, reason=known[fs.id])]
                         if fs.id in known else []) for fs in matrix()]


_REALIZED: dict[str, Any] = {}  # scenario name -> the topology as the backend realized it


def observe(runner: Any, fs: FoundingScenario, case: Case) -> Any:
    res = runner(fs.topo)
    _REALIZED[fs.topo.name] = res.topo
    return res.results[case.index]


def realized(fs: FoundingScenario) -> Any:
    """Addresses as built (the lab: the address plan; a cluster: what it assigned); plan until observed."""
    return _REALIZED.get(fs.topo.name, fs.topo)


def host(fs: FoundingScenario, node: str) -> str:
    """The name the backend knows a scenario node by (what MetalLB/OpenELB hash)."""
    return realized(fs).nodes[node].host_name


def hash_order_of(fs: FoundingScenario, nodes: list[str], vip: str) -> list[str]:
    """``hash_order`` over the backend's node names, answered in scenario names."""
    back = {host(fs, n): n for n in nodes}
    return [back[h] for h in hash_order([host(fs, n) for n in nodes], vip)]


def seen(result: Any) -> str:
    """The symbol of the source the server saw (``-`` when nothing answered)."""
    ip = result.obs.source_ip
    return result.pred.symbol(ip) if ip else "-"


def endpoint_nodes(fs: FoundingScenario, case: Case) -> set[str]:
    """Where the first hop's endpoints are: the web pods, or the ingress controller pod."""
    if case.exposure.kind == "ingress":
        return {fs.topo.ingresses[f"{case.variant}/{case.exposure.obj}"].controller.pod.node}
    return {p.node for p in fs.topo.pods_of(case.variant, "web")}


def entry_node(case: Case, result: Any) -> str | None:
    """The node the client's packet entered: the NodePort's node, or the VIP's ARP answerer."""
    return case.entry if case.exposure.entries else result.obs.elected


def vip_of(fs: FoundingScenario, case: Case) -> str:
    topo = realized(fs)
    if case.exposure.kind == "ingress":
        svc = topo.ingresses[f"{case.variant}/{case.exposure.obj}"].controller.service
    else:
        svc = topo.services[f"{case.variant}/{case.exposure.obj}"]
    assert svc.lb_ip, f"{case.id}: no VIP allocated"
    return svc.lb_ip


def ip_of(fs: FoundingScenario, symbol: str) -> str:
    kind, name = symbol.split(":", 1)
    topo = realized(fs)
    if kind == "client":
        return topo.clients[name].ip
    node = topo.nodes[name]
    return node.ip if kind == "node" else str(node.tunnel_ip)


def require_entry(case: Case, result: Any, expected: str) -> None:
    got = entry_node(case, result)
    assert got == expected, (f"{case.id}: the packet entered on {got}, the case was planned for {expected} "
                             "(VIP announced elsewhere?) - the case does not test what it says")


def is_service(c: Case) -> bool:
    return c.exposure.kind in ("nodeport", "loadbalancer")


# --------------------------------------------------------------------------- (a) conformance


@pytest.mark.parametrize(("fs", "case"), cases("test_conformance", lambda c: True))
def test_conformance(fs: FoundingScenario, case: Case, scenario_runner: Any) -> None:
    result = observe(scenario_runner, fs, case)
    assert result.match, flow_failure_message(result)


# --------------------------------------------------------------------------- (b) documented behaviour


@pytest.mark.parametrize(("fs", "case"), cases("test_local_preserves_client_ip", lambda c: (
    is_service(c) and c.exposure.etp == "Local" and c.entry == ENDPOINT_NODE and c.variant == SHOP
    and c.client == "alice")))
def test_local_preserves_client_ip(fs: FoundingScenario, case: Case, scenario_runner: Any) -> None:
    """ETP Local: KUBE-EXT jumps to KUBE-SVL without KUBE-MARK-MASQ - the pod sees the client."""
    result = observe(scenario_runner, fs, case)
    require_entry(case, result, ENDPOINT_NODE)
    assert result.obs.verdict == "allowed", f"{case.id}: alice is whitelisted by CIDR yet {result.obs.verdict}"
    assert result.obs.source_ip == ip_of(fs, "client:alice"), f"{case.id}: pod saw {seen(result)}, not client:alice"


@pytest.mark.parametrize(("fs", "case"), cases("test_local_policy_sees_client_not_node", lambda c: (
    is_service(c) and c.exposure.etp == "Local" and c.entry == ENDPOINT_NODE and c.variant == INFRA)))
def test_local_policy_sees_client_not_node(fs: FoundingScenario, case: Case, scenario_runner: Any) -> None:
    """shop-infra admits every node and tunnel IP but no client: under Local bob must be dropped,
    because the policy sees bob himself, not a node address."""
    result = observe(scenario_runner, fs, case)
    require_entry(case, result, ENDPOINT_NODE)
    assert result.obs.verdict == "dropped", (f"{case.id}: {result.obs.verdict} with source {seen(result)} - "
                                             "the policy did not see the client")


@pytest.mark.parametrize(("fs", "case"), cases("test_local_without_endpoint_drops", lambda c: (
    c.exposure.etp == "Local" and c.exposure.entries != () and c.entry not in (
        {ENDPOINT_NODE} if is_service(c) else {OTHER_NODE}))))
def test_local_without_endpoint_drops(fs: FoundingScenario, case: Case, scenario_runner: Any) -> None:
    """KUBE-EXTERNAL-SERVICES "has no local endpoints" -j DROP: the client times out (not refused),
    whatever the whitelist; for an ingress the Local controller Service drops before nginx."""
    result = observe(scenario_runner, fs, case)
    assert case.entry not in endpoint_nodes(fs, case)
    assert result.obs.verdict == "dropped", f"{case.id}: {result.obs.verdict} ({result.obs.detail})"


def _remote_cluster(c: Case) -> bool:
    return is_service(c) and c.exposure.etp == "Cluster" and c.entry != ENDPOINT_NODE and c.variant == INFRA


@pytest.mark.parametrize(("fs", "case"), cases("test_cluster_remote_endpoint_sees_entry_tunnel_ip", lambda c: (
    _remote_cluster(c) and c.mode != "direct")))
def test_cluster_remote_endpoint_sees_entry_tunnel_ip(fs: FoundingScenario, case: Case, scenario_runner: Any) -> None:
    """ETP Cluster, endpoint on another node, IPIP/VXLAN: the entry node masquerades out of
    tunl0/vxlan.calico, so pod and policy see the entry node's tunnel IP."""
    _check_remote_cluster(fs, case, scenario_runner)


@pytest.mark.parametrize(("fs", "case"), cases("test_cluster_remote_endpoint_sees_entry_node_ip", lambda c: (
    _remote_cluster(c) and c.mode == "direct")))
def test_cluster_remote_endpoint_sees_entry_node_ip(fs: FoundingScenario, case: Case, scenario_runner: Any) -> None:
    """Direct mode: the packet leaves the entry node via eth0, MASQUERADE picks its InternalIP."""
    _check_remote_cluster(fs, case, scenario_runner)


def _check_remote_cluster(fs: FoundingScenario, case: Case, runner: Any) -> None:
    result = observe(runner, fs, case)
    entry = entry_node(case, result)
    assert entry is not None and entry not in endpoint_nodes(fs, case), f"{case.id}: entered on {entry}"
    want = snat_symbol(case.mode, entry)
    assert result.obs.verdict == "allowed", (f"{case.id}: {result.obs.verdict}; shop-infra whitelists {want}, "
                                             "the policy should see it")
    assert result.obs.source_ip == ip_of(fs, want), f"{case.id}: pod saw {seen(result)}, facts say {want}"


@pytest.mark.parametrize(("fs", "case"), cases("test_cluster_local_endpoint_policy_sees_client", lambda c: (
    is_service(c) and c.exposure.etp == "Cluster" and c.entry == ENDPOINT_NODE and c.variant != ENTRY)))
def test_cluster_local_endpoint_policy_sees_client(fs: FoundingScenario, case: Case, scenario_runner: Any) -> None:
    """ETP Cluster entering the endpoint node: policy (filter FORWARD) runs before KUBE-POSTROUTING's
    MASQUERADE, so it judges the real client - alice passes on her CIDR, bob is dropped even where
    every node/tunnel IP is whitelisted - while the pod sees a node-local address."""
    result = observe(scenario_runner, fs, case)
    require_entry(case, result, ENDPOINT_NODE)
    if case.client == "alice":
        assert result.obs.verdict == "allowed", f"{case.id}: alice whitelisted by CIDR, yet {result.obs.verdict}"
        local = {ip_of(fs, f"node:{ENDPOINT_NODE}")} | (
            set() if case.mode == "direct" else {ip_of(fs, f"tunnel:{ENDPOINT_NODE}")})
        assert result.obs.source_ip in local, f"{case.id}: pod saw {seen(result)}, facts say a {ENDPOINT_NODE} address"
    else:
        assert result.obs.verdict == "dropped", (f"{case.id}: bob {result.obs.verdict} (source {seen(result)}): the "
                                                 "policy judged the masqueraded address, not the client")


@pytest.mark.parametrize("fs", scenarios("test_snat_forces_tunnel_ip_whitelist"))
def test_snat_forces_tunnel_ip_whitelist(fs: FoundingScenario, scenario_runner: Any) -> None:
    """"Can't block specific IPs because of SNAT": entering worker2 (no endpoint) under Cluster,
    alice's CIDR alone is not enough; whitelisting worker2's SNAT address lets alice in - and bob
    with her. The caveat is per entry node: entering the endpoint node bob is still dropped."""
    snat = snat_symbol(fs.mode, OTHER_NODE)

    def obs(variant: str, entry: str, client: str) -> Any:
        case = fs.case(variant, "nodeport-cluster", entry, client)
        assert case is not None
        return observe(scenario_runner, fs, case)

    only_cidr = obs(SHOP, OTHER_NODE, "alice")
    assert only_cidr.obs.verdict == "dropped", f"only alice's CIDR: {only_cidr.obs.verdict} (source {seen(only_cidr)})"
    for client in CLIENTS:
        r = obs(ENTRY, OTHER_NODE, client)
        assert r.obs.verdict == "allowed", f"{client} with {snat} whitelisted: {r.obs.verdict}"
        assert r.obs.source_ip == ip_of(fs, snat), f"{client}: pod saw {seen(r)}, facts say {snat}"
    at_endpoint = obs(ENTRY, ENDPOINT_NODE, "bob")
    assert at_endpoint.obs.verdict == "dropped", f"bob entering {ENDPOINT_NODE}: {at_endpoint.obs.verdict}"


def _lb(c: Case) -> bool:
    return c.exposure.kind == "loadbalancer" or (c.exposure.kind == "ingress" and not c.exposure.entries)


@pytest.mark.parametrize(("fs", "case"), cases("test_lb_local_announces_from_endpoint_node", lambda c: (
    _lb(c) and c.exposure.etp == "Local")))
def test_lb_local_announces_from_endpoint_node(fs: FoundingScenario, case: Case, scenario_runner: Any) -> None:
    """MetalLB (nodesWithEndpoint) and OpenELB (getServiceNodes) keep only endpoint nodes as
    candidates for Local. The VIP is chosen so that the hash alone would pick another node."""
    result = observe(scenario_runner, fs, case)
    eligible = [OTHER_NODE, ENDPOINT_NODE] + ([CONTROL_PLANE] if case.lb == "openelb" else [])
    assert hash_order_of(fs, eligible, vip_of(fs, case))[0] != ENDPOINT_NODE, "VIP plan: this case would prove nothing"
    assert result.obs.elected in endpoint_nodes(fs, case), f"{case.id}: VIP answered by {result.obs.elected}"


@pytest.mark.parametrize(("fs", "case"), cases("test_metallb_never_elects_control_plane", lambda c: (
    _lb(c) and c.lb == "metallb")))
def test_metallb_never_elects_control_plane(fs: FoundingScenario, case: Case, scenario_runner: Any) -> None:
    """The speaker skips nodes labelled exclude-from-external-load-balancers (the multi-node
    control-plane); among the rest the sha256(node#ip) order decides. The cphash VIPs hash first
    to the control-plane."""
    result = observe(scenario_runner, fs, case)
    vip = vip_of(fs, case)
    assert result.obs.elected is not None, f"{case.id}: nobody answered ARP for {vip}"
    assert result.obs.elected != CONTROL_PLANE, f"{case.id}: {vip} announced by the control-plane"
    if case.exposure.etp == "Cluster":
        assert result.obs.elected == hash_order_of(fs, [ENDPOINT_NODE, OTHER_NODE], vip)[0], (
            f"{case.id}: {vip} announced by {result.obs.elected}, the hash order says "
            f"{hash_order_of(fs, [ENDPOINT_NODE, OTHER_NODE], vip)[0]}")


def _ingress_reachable(c: Case) -> bool:
    return c.exposure.kind == "ingress" and (c.exposure.etp == "Cluster" or c.entry == OTHER_NODE)


@pytest.mark.parametrize(("fs", "case"), cases("test_ingress_backend_sees_controller_pod", lambda c: (
    _ingress_reachable(c) and c.variant == INFRA)))
def test_ingress_backend_sees_controller_pod(fs: FoundingScenario, case: Case, scenario_runner: Any) -> None:
    """ingress-nginx proxies to the endpoint pod IP: the backend's TCP source is the controller pod."""
    result = observe(scenario_runner, fs, case)
    ing = fs.topo.ingresses[f"{case.variant}/{case.exposure.obj}"]
    assert result.obs.verdict == "allowed", f"{case.id}: {result.obs.verdict} ({result.obs.detail})"
    assert result.obs.source_ip == ing.controller.pod.ip, f"{case.id}: backend saw {seen(result)}"
    assert result.obs.answered_by == f"pod:{case.variant}/web@{ENDPOINT_NODE}", f"answered by {result.obs.answered_by}"


@pytest.mark.parametrize(("fs", "case"), cases("test_ingress_xff_is_client_with_local_controller", lambda c: (
    _ingress_reachable(c) and c.variant == INFRA and c.exposure.etp == "Local")))
def test_ingress_xff_is_client_with_local_controller(fs: FoundingScenario, case: Case, scenario_runner: Any) -> None:
    """X-Forwarded-For = nginx's $remote_addr: the client, because Local kept it on the first leg."""
    result = observe(scenario_runner, fs, case)
    assert result.obs.forwarded_for == ip_of(fs, f"client:{case.client}"), (
        f"{case.id}: X-Forwarded-For {result.obs.forwarded_for}")


@pytest.mark.parametrize(("fs", "case"), cases("test_ingress_xff_is_entry_snat_with_cluster_controller", lambda c: (
    _ingress_reachable(c) and c.variant == INFRA and c.exposure.etp == "Cluster")))
def test_ingress_xff_is_entry_snat_with_cluster_controller(fs: FoundingScenario, case: Case,
                                                           scenario_runner: Any) -> None:
    """A Cluster controller Service entered on a node without the controller masquerades the first
    leg: nginx sees the entry node's tunnel/node IP and that is all X-Forwarded-For can carry."""
    result = observe(scenario_runner, fs, case)
    entry = entry_node(case, result)
    assert entry is not None and entry not in endpoint_nodes(fs, case), f"{case.id}: entered on {entry}"
    want = snat_symbol(case.mode, entry)
    assert result.obs.forwarded_for == ip_of(fs, want), f"{case.id}: X-Forwarded-For {result.obs.forwarded_for}, facts say {want}"


@pytest.mark.parametrize(("fs", "case"), cases("test_ingress_needs_controller_namespace_whitelisted", lambda c: (
    _ingress_reachable(c) and c.variant == SHOP and c.client == "alice")))
def test_ingress_needs_controller_namespace_whitelisted(fs: FoundingScenario, case: Case,
                                                        scenario_runner: Any) -> None:
    """alice's CIDR is whitelisted in shop, yet the backend policy sees the controller pod: nginx's
    upstream connection is dropped (504). shop-infra, which admits kubesphere-controls-system,
    passes the same path."""
    result = observe(scenario_runner, fs, case)
    assert result.obs.verdict == "dropped", f"{case.id}: {result.obs.verdict} (source {seen(result)})"
    twin = fs.case(INFRA, case.exposure.name, case.entry, "bob")
    assert twin is not None
    assert observe(scenario_runner, fs, twin).obs.verdict == "allowed", f"{twin.id}: the namespace entry did not help"


# --------------------------------------------------------------------------- (c) the founding question


def fact_entry(mode: str, kind: str, etp: str, entry: str | None, has_endpoint: bool) -> str:
    """The minimal whitelist entry according to reference-facts.md (written independently of the
    oracle): Local keeps the client or drops; Cluster keeps it for the policy on the endpoint
    node and masquerades to the entry's tunnel/node IP elsewhere; an ingress backend always
    sees the controller, so its namespace is the entry, once the controller is reachable."""
    if kind == "ingress":
        return f"project:{CONTROLLER_NS}" if etp == "Cluster" or has_endpoint else "unreachable"
    if has_endpoint:
        return "client-cidr"
    return "unreachable" if etp == "Local" or entry is None else snat_symbol(mode, entry)


def derive_entry(fs: FoundingScenario, shop_alice: Any, infra_bob: Any) -> str:
    """From observations only: if bob passes where only infrastructure sources are admitted, the
    source the pod saw is what the policy admitted (a node/tunnel IP, or a pod whose namespace is
    the entry); otherwise, if alice passes on her CIDR alone, the client CIDR is enough."""
    if infra_bob.obs.verdict == "allowed":
        ip = infra_bob.obs.source_ip
        pod = realized(fs).pod_by_ip(ip) if ip else None
        return f"project:{pod.project}" if pod else seen(infra_bob)
    return "client-cidr" if shop_alice.obs.verdict == "allowed" else "unreachable"


@pytest.mark.parametrize("fs", scenarios("test_minimal_whitelist"))
def test_minimal_whitelist(fs: FoundingScenario, scenario_runner: Any) -> None:
    rows: dict[str, dict[tuple[str, str], Case]] = {}
    for c in fs.cases:
        if c.variant != ENTRY:
            rows.setdefault(c.row, {})[(c.variant, c.client)] = c
    header = ["exposure", "ETP", "entry", "endpoint", "alice@shop", "bob@shop", "bob@infra (source)", "derived", "facts"]
    lines: list[tuple[bool, list[str]]] = []
    for cells in rows.values():
        alice, bob, infra = cells[(SHOP, "alice")], cells[(SHOP, "bob")], cells[(INFRA, "bob")]
        ra, rb, ri = (observe(scenario_runner, fs, c) for c in (alice, bob, infra))
        entries = {entry_node(c, r) for c, r in ((alice, ra), (bob, rb), (infra, ri))}
        entry = entries.pop() if len(entries) == 1 else None
        has_ep = entry in endpoint_nodes(fs, alice)
        derived = derive_entry(fs, ra, ri) if entry is not None else f"entries differ: {entries}"
        facts = fact_entry(fs.mode, alice.exposure.kind, alice.exposure.etp, entry, has_ep)
        ok = derived == facts and rb.obs.verdict != "allowed"  # bob is never whitelisted in shop
        infra_txt = f"{ri.obs.verdict} ({seen(ri)})" if ri.obs.verdict == "allowed" else ri.obs.verdict
        lines.append((ok, [alice.exposure.name, alice.exposure.etp, entry or "?", "yes" if has_ep else "no",
                           ra.obs.verdict, rb.obs.verdict, infra_txt, derived, facts]))
    widths = [max(len(r[i]) for r in [header] + [cols for _, cols in lines]) + 2 for i in range(len(header))]
    table = [f"{fs.id}: minimal whitelist entry per exposure and entry node (shop: alice's CIDR; "
             "infra: node/tunnel IPs + controller namespace)"]
    table += [("  " if ok else "✗ ") + "".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip()
              for ok, cols in [(True, header), *lines]]
    wrong = sum(not ok for ok, _ in lines)
    print("\n" + "\n".join(table))
    assert not wrong, "\n".join(table)
