"""The Kubernetes netpol e2e scenarios, re-expressed as truth tables for the policy engine.

Source: kubernetes/kubernetes test/e2e/network/netpol/network_policy.go. Each test names the
upstream ``It(...)`` it re-expresses; the expectations are written from what the scenario
means (as the upstream Reachability expectations are), never computed. The model is the
upstream one: namespaces x, y, z labelled ``ns=<name>`` and ``kubernetes.io/metadata.name``;
pods a, b, c labelled ``pod=<name>``, each serving 80 and 81 over TCP, UDP and SCTP on ports
named ``serve-<port>-<protocol>``. All 9 pods are probed (the original 81-cell table), and
loopback cells are ignored, as upstream does (kubernetes#95879: undefined across CNIs).

A connection passes when the source pod's egress AND the destination pod's ingress allow it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from netiso.model.types import PodInfo, Port
from netiso.oracle.netpol import PolicyEngine

NAMESPACES = ("x", "y", "z")
POD_NAMES = ("a", "b", "c")
SERVE_PORTS = tuple(Port(p, proto, f"serve-{p}-{proto.lower()}") for p in (80, 81) for proto in ("TCP", "UDP", "SCTP"))


def _pod(ns: str, name: str, extra: Mapping[str, str] | None = None) -> PodInfo:
    ip = f"100.64.{NAMESPACES.index(ns) + 1}.{POD_NAMES.index(name) + 10}"
    return PodInfo(ns, name, "worker", ip, {"pod": name, **(extra or {})}, SERVE_PORTS)


PODS: dict[str, PodInfo] = {f"{ns}/{p}": _pod(ns, p) for ns in NAMESPACES for p in POD_NAMES}
NS_LABELS: dict[str, dict[str, str]] = {ns: {"ns": ns, "kubernetes.io/metadata.name": ns} for ns in NAMESPACES}


# --------------------------------------------------------------------------- policy builders


def netpol(
    name: str,
    selector: Mapping[str, Any],
    *,
    ns: str = "x",
    ingress: Iterable[Mapping[str, Any]] | None = None,
    egress: Iterable[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """A policy as the upstream helpers build it: each direction given is listed in policyTypes."""
    spec: dict[str, Any] = {"podSelector": dict(selector), "policyTypes": []}
    if ingress is not None:
        spec["ingress"] = list(ingress)
        spec["policyTypes"].append("Ingress")
    if egress is not None:
        spec["egress"] = list(egress)
        spec["policyTypes"].append("Egress")
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


def labels(**kv: str) -> dict[str, Any]:
    return {"matchLabels": dict(kv)}


def expr(key: str, op: str, *values: str) -> dict[str, Any]:
    return {"matchExpressions": [{"key": key, "operator": op, "values": list(values)}]}


def ns_name(ns: str) -> dict[str, Any]:
    return labels(**{"kubernetes.io/metadata.name": ns})


POD_A = labels(pod="a")
ALL: dict[str, Any] = {}


# --------------------------------------------------------------------------- truth tables


class Reachability:
    """Expected connectivity between every pair of pods (rows: from, columns: to)."""

    def __init__(self, pods: Mapping[str, PodInfo] = PODS, default: bool = True) -> None:
        self.pods = dict(pods)
        self.cells = {(s, d): default for s in self.pods for d in self.pods}

    def expect(self, src: str, dst: str, ok: bool) -> Reachability:
        self.cells[(src, dst)] = ok
        return self

    def expect_peer(self, src: str = "", dst: str = "", *, ok: bool) -> Reachability:
        """``src``/``dst`` are ``""`` (any), ``"ns"`` or ``"ns/pod"``, like upstream's Peer."""
        for s, d in self.cells:
            if _covers(src, s) and _covers(dst, d):
                self.cells[(s, d)] = ok
        return self

    def all_ingress(self, dst: str, ok: bool) -> Reachability:
        return self.expect_peer("", dst, ok=ok)

    def all_egress(self, src: str, ok: bool) -> Reachability:
        return self.expect_peer(src, "", ok=ok)


def _covers(pattern: str, pod_key: str) -> bool:
    return not pattern or pattern == pod_key or pattern == pod_key.split("/")[0]


def observe(
    policies: Iterable[Mapping[str, Any]],
    port: int,
    protocol: str,
    pods: Mapping[str, PodInfo] = PODS,
    ns_labels: Mapping[str, Mapping[str, str]] = NS_LABELS,
) -> dict[tuple[str, str], bool]:
    engine = PolicyEngine(list(policies), ns_labels)
    return {
        (s, d): engine.connection(src.ip, src, dst.ip, dst, port, protocol).allowed
        for s, src in pods.items()
        for d, dst in pods.items()
    }


def validate(
    policies: Iterable[Mapping[str, Any]],
    expected: Reachability,
    port: int = 80,
    protocol: str = "TCP",
    ns_labels: Mapping[str, Mapping[str, str]] = NS_LABELS,
) -> None:
    """Fail with the expected/observed/comparison tables when any non-loopback cell differs."""
    observed = observe(policies, port, protocol, expected.pods, ns_labels)
    wrong = {cell for cell, ok in expected.cells.items() if cell[0] != cell[1] and observed[cell] != ok}
    if wrong:
        names = list(expected.pods)

        def table(mark: Any) -> str:
            rows = ["-\t" + "\t".join(names)]
            rows += [s + "\t" + "\t".join(mark((s, d)) for d in names) for s in names]
            return "\n".join(rows)

        pytest.fail(
            f"{len(wrong)} cell(s) differ on {port}/{protocol}\nexpected:\n"
            + table(lambda c: "." if expected.cells[c] else "X")
            + "\nobserved:\n"
            + table(lambda c: "." if observed[c] else "X")
            + "\ncomparison (! = differs):\n"
            + table(lambda c: "!" if c in wrong else "."),
            pytrace=False,
        )


# --------------------------------------------------------------------------- ingress basics


@pytest.mark.parametrize("protocol", ["TCP", "UDP", "SCTP"])
def test_default_deny_ingress(protocol: str) -> None:
    """Upstream: "should support a 'default-deny-ingress' policy" (TCP, and the UDP/SCTP contexts)."""
    policy = netpol("deny-ingress", ALL, ingress=[])
    validate([policy], Reachability().expect_peer("", "x", ok=False), 80, protocol)


def test_default_deny_all() -> None:
    """Upstream: "should support a 'default-deny-all' policy": nothing enters or leaves x."""
    policy = netpol("deny-all", ALL, ingress=[], egress=[])
    expected = Reachability().expect_peer("", "x", ok=False).expect_peer("x", "", ok=False)
    validate([policy], expected)


def test_allow_from_pods_within_server_namespace_by_pod_selector() -> None:
    """Upstream: "should enforce policy to allow traffic from pods within server namespace based on
    PodSelector": only x/b may reach x/a; a podSelector peer alone means the policy's namespace."""
    policy = netpol("x-a-allows-x-b", POD_A, ingress=[{"from": [{"podSelector": labels(pod="b")}]}])
    validate([policy], Reachability().all_ingress("x/a", False).expect("x/b", "x/a", True))


def test_allow_ingress_for_a_target() -> None:
    """Upstream: "should enforce policy to allow ingress traffic for a target": deny-all in x, plus
    an allow-all-peers policy (empty podSelector AND empty namespaceSelector) on x/a only."""
    deny = netpol("deny-all", ALL, ingress=[])
    allow = netpol("allow-all-to-a", POD_A, ingress=[{"from": [{"podSelector": {}, "namespaceSelector": {}}]}])
    expected = Reachability().expect_peer("", "x", ok=False).all_ingress("x/a", True)
    validate([deny, allow], expected)


def test_allow_ingress_from_pods_in_all_namespaces() -> None:
    """Upstream: "should enforce policy to allow ingress traffic from pods in all namespaces":
    an empty namespaceSelector selects every pod of every namespace."""
    policy = netpol("allow-from-another-ns", POD_A, ingress=[{"from": [{"namespaceSelector": {}}]}])
    validate([policy], Reachability())


def test_allow_only_from_a_different_namespace_by_namespace_selector() -> None:
    """Upstream: "should enforce policy to allow traffic only from a different namespace, based on
    NamespaceSelector": x/a admits namespace y only, its own namespace included in the denial."""
    policy = netpol(
        "allow-client-a-via-ns-selector", POD_A, ingress=[{"from": [{"namespaceSelector": labels(ns="y")}]}]
    )
    expected = Reachability().expect_peer("x", "x/a", ok=False).expect_peer("z", "x/a", ok=False)
    validate([policy], expected)


def test_pod_selector_with_match_expressions() -> None:
    """Upstream: "should enforce policy based on PodSelector with MatchExpressions"."""
    policy = netpol("x-a-allows-x-b", POD_A, ingress=[{"from": [{"podSelector": expr("pod", "In", "b")}]}])
    validate([policy], Reachability().all_ingress("x/a", False).expect("x/b", "x/a", True))


def test_namespace_selector_with_match_expressions() -> None:
    """Upstream: "should enforce policy based on NamespaceSelector with MatchExpressions"."""
    policy = netpol(
        "allow-ns-y-match-selector", POD_A, ingress=[{"from": [{"namespaceSelector": expr("ns", "In", "y")}]}]
    )
    expected = Reachability().expect_peer("x", "x/a", ok=False).expect_peer("z", "x/a", ok=False)
    validate([policy], expected)


def test_pod_selector_or_namespace_selector() -> None:
    """Upstream: "should enforce policy based on PodSelector or NamespaceSelector": two peers are
    an OR: namespaces other than x, or pod b of x."""
    peers = [{"namespaceSelector": expr("ns", "NotIn", "x")}, {"podSelector": labels(pod="b")}]
    policy = netpol("allow-ns-y-match-selector", POD_A, ingress=[{"from": peers}])
    validate([policy], Reachability().expect("x/c", "x/a", False))


def test_pod_selector_and_namespace_selector() -> None:
    """Upstream: "should enforce policy based on PodSelector and NamespaceSelector": both selectors in
    ONE peer are an AND: pods b of namespaces other than x."""
    peer = {"namespaceSelector": expr("ns", "NotIn", "x"), "podSelector": labels(pod="b")}
    policy = netpol("allow-ns-y-podselector-and-nsselector", POD_A, ingress=[{"from": [peer]}])
    expected = Reachability().all_ingress("x/a", False).expect("y/b", "x/a", True).expect("z/b", "x/a", True)
    validate([policy], expected)


def test_multiple_pod_selectors_and_namespace_selectors() -> None:
    """Upstream: "should enforce policy based on Multiple PodSelectors and NamespaceSelectors":
    pods b or c of namespaces other than x."""
    peer = {"namespaceSelector": expr("ns", "NotIn", "x"), "podSelector": expr("pod", "In", "b", "c")}
    policy = netpol("allow-ns-y-z-pod-b-c", POD_A, ingress=[{"from": [peer]}])
    expected = Reachability().expect_peer("x", "x/a", ok=False)
    expected.expect("y/a", "x/a", False).expect("z/a", "x/a", False)
    validate([policy], expected)


def test_any_pod_selectors() -> None:
    """Upstream: "should enforce policy based on any PodSelectors": x/b and x/c via two peers."""
    peers = [{"podSelector": labels(pod="b")}, {"podSelector": labels(pod="c")}]
    policy = netpol("allow-ns-x-pod-b-c", POD_A, ingress=[{"from": peers}])
    expected = Reachability().all_ingress("x/a", False).expect("x/b", "x/a", True).expect("x/c", "x/a", True)
    validate([policy], expected)


@pytest.mark.parametrize("protocol", ["TCP", "UDP", "SCTP"])
def test_only_from_a_pod_in_a_different_namespace(protocol: str) -> None:
    """Upstream: "should enforce policy to allow traffic only from a pod in a different namespace
    based on PodSelector and NamespaceSelector" (TCP, and the UDP/SCTP contexts): only y/a."""
    peer = {"namespaceSelector": labels(ns="y"), "podSelector": labels(pod="a")}
    policy = netpol("allow-ns-y-pod-a-via-namespace-pod-selector", POD_A, ingress=[{"from": [peer]}])
    validate([policy], Reachability().all_ingress("x/a", False).expect("y/a", "x/a", True), 80, protocol)


def test_namespace_selector_match_labels_default_ns_label() -> None:
    """Upstream: "should enforce policy to allow traffic based on NamespaceSelector with MatchLabels
    using default ns label" (kubernetes.io/metadata.name)."""
    policy = netpol(
        "allow-client-a-via-ns-selector-for-immutable-ns-label",
        POD_A,
        ingress=[{"from": [{"namespaceSelector": ns_name("y")}]}],
    )
    expected = Reachability().expect_peer("x", "x/a", ok=False).expect_peer("z", "x/a", ok=False)
    validate([policy], expected)


def test_default_ns_label_is_present_even_when_not_given() -> None:
    """Same upstream test: the API server stamps kubernetes.io/metadata.name on every namespace, so
    the policy works even when the scenario's namespace labels omit it."""
    bare = {ns: {"ns": ns} for ns in NAMESPACES}
    policy = netpol(
        "allow-client-a-via-ns-selector-for-immutable-ns-label",
        POD_A,
        ingress=[{"from": [{"namespaceSelector": ns_name("y")}]}],
    )
    expected = Reachability().expect_peer("x", "x/a", ok=False).expect_peer("z", "x/a", ok=False)
    validate([policy], expected, ns_labels=bare)


def test_deny_ingress_from_pods_on_other_namespaces() -> None:
    """Upstream: "should deny ingress from pods on other namespaces": an empty podSelector peer means
    every pod of the policy's own namespace, and nothing else."""
    policy = netpol("deny-empty-policy", ALL, ingress=[{"from": [{"podSelector": {}}]}])
    expected = Reachability().expect_peer("y", "x", ok=False).expect_peer("z", "x", ok=False)
    validate([policy], expected)


# --------------------------------------------------------------------------- ports and protocols


@pytest.mark.parametrize("protocol", ["TCP", "UDP", "SCTP"])
def test_policy_based_on_ports(protocol: str) -> None:
    """Upstream: "should enforce policy based on Ports" (TCP, and the UDP/SCTP contexts): namespace y
    may reach x/a on 81 only; probing 81 shows y allowed, x and z denied."""
    rule = {"from": [{"namespaceSelector": labels(ns="y")}], "ports": [{"port": 81, "protocol": protocol}]}
    policy = netpol("allow-client-a-via-ns-selector", POD_A, ingress=[rule])
    expected = Reachability().expect_peer("x", "x/a", ok=False).expect_peer("z", "x/a", ok=False)
    validate([policy], expected, 81, protocol)
    validate([policy], Reachability().all_ingress("x/a", False), 80, protocol)


def test_multiple_stacked_policies_with_overlapping_pod_selectors() -> None:
    """Upstream: "should enforce multiple, stacked policies with overlapping podSelectors": a policy
    for port 81 leaves 80 closed; a second policy for 80 opens it (policies are a union)."""

    def allow(name: str, port: int) -> dict[str, Any]:
        rule = {"from": [{"namespaceSelector": labels(ns="y")}], "ports": [{"port": port, "protocol": "TCP"}]}
        return netpol(name, POD_A, ingress=[rule])

    allowed = Reachability().expect_peer("x", "x/a", ok=False).expect_peer("z", "x/a", ok=False)
    only81 = [allow("allow-client-a-via-ns-selector", 81)]
    validate(only81, allowed, 81)
    validate(only81, Reachability().all_ingress("x/a", False), 80)
    validate([*only81, allow("allow-client-a-via-ns-selector-80", 80)], allowed, 80)


def test_allow_all_policy() -> None:
    """Upstream: "should support allow-all policy": ``ingress: [{}]`` restricts nothing, any port."""
    policy = netpol("allow-all", ALL, ingress=[{}])
    validate([policy], Reachability(), 80)
    validate([policy], Reachability(), 81)


def test_ingress_on_one_named_port() -> None:
    """Upstream: "should allow ingress access on one named port": serve-81-tcp opens 81, not 80."""
    policy = netpol("allow-all", ALL, ingress=[{"ports": [{"port": "serve-81-tcp"}]}])
    validate([policy], Reachability(), 81)
    validate([policy], Reachability().expect_peer("", "x", ok=False), 80)


def test_ingress_from_namespace_on_one_named_port() -> None:
    """Upstream: "should allow ingress access from namespace on one named port": y may use
    serve-80-tcp of x/a; port 81 is closed for everyone."""
    rule = {"from": [{"namespaceSelector": labels(ns="y")}], "ports": [{"port": "serve-80-tcp", "protocol": "TCP"}]}
    policy = netpol("allow-client-a-via-ns-selector-80", POD_A, ingress=[rule])
    expected = Reachability().expect_peer("x", "x/a", ok=False).expect_peer("z", "x/a", ok=False)
    validate([policy], expected, 80)
    validate([policy], Reachability().all_ingress("x/a", False), 81)


def test_named_port_resolves_name_and_protocol_together() -> None:
    """Same upstream test, other protocols: serve-80-tcp names the TCP container port only, so a
    rule naming it with protocol UDP opens nothing, while serve-80-udp opens UDP 80."""
    wrong = netpol("allow-named", POD_A, ingress=[{"ports": [{"port": "serve-80-tcp", "protocol": "UDP"}]}])
    validate([wrong], Reachability().all_ingress("x/a", False), 80, "UDP")
    validate([wrong], Reachability().all_ingress("x/a", False), 80, "TCP")
    right = netpol("allow-named", POD_A, ingress=[{"ports": [{"port": "serve-80-udp", "protocol": "UDP"}]}])
    validate([right], Reachability(), 80, "UDP")


def test_ingress_any_port_on_a_specific_protocol() -> None:
    """Upstream: "should enforce ingress policy allowing any port traffic to a server on a specific
    protocol": a port entry with only ``protocol: TCP`` admits every TCP port and no UDP."""
    policy = netpol("allow-ingress-by-proto", POD_A, ingress=[{"ports": [{"protocol": "TCP"}]}])
    validate([policy], Reachability(), 80, "TCP")
    validate([policy], Reachability(), 81, "TCP")
    validate([policy], Reachability().all_ingress("x/a", False), 80, "UDP")


def test_multiple_ingress_policies_allow_all_takes_precedence() -> None:
    """Upstream: "should enforce multiple ingress policies with ingress allow-all policy taking
    precedence": port 80 only closes 81; adding ``ingress: [{}]`` reopens it."""
    port80 = netpol("allow-ingress-port-80", ALL, ingress=[{"ports": [{"port": 80}]}])
    validate([port80], Reachability().expect_peer("", "x", ok=False), 81)
    validate([port80, netpol("allow-ingress", ALL, ingress=[{}])], Reachability(), 81)


def test_sctp_is_not_treated_as_tcp() -> None:
    """Upstream: "should not mistakenly treat 'protocol: SCTP' as 'protocol: TCP', even if the plugin
    doesn't support SCTP": with default-deny, an SCTP 81 rule must not open TCP 81."""
    deny = netpol("deny-ingress", ALL, ingress=[])
    sctp = netpol("allow-only-sctp-ingress-on-port-81", POD_A, ingress=[{"ports": [{"port": 81, "protocol": "SCTP"}]}])
    validate([deny, sctp], Reachability().expect_peer("", "x", ok=False), 81, "TCP")
    validate([deny, sctp], Reachability().expect_peer("", "x", ok=False).all_ingress("x/a", True), 81, "SCTP")


def test_policy_allowing_sctp_isolates_the_pod() -> None:
    """Upstream: "should properly isolate pods that are selected by a policy allowing SCTP, even if the
    plugin doesn't support SCTP": being selected isolates x/a for TCP 81."""
    policy = netpol(
        "allow-only-sctp-ingress-on-port-80", POD_A, ingress=[{"ports": [{"port": 80, "protocol": "SCTP"}]}]
    )
    validate([policy], Reachability().all_ingress("x/a", False), 81, "TCP")


def test_udp_only_policy_does_not_allow_tcp() -> None:
    """Upstream: "should not allow access by TCP when a policy specifies only UDP"."""
    policy = netpol("allow-only-udp-ingress-on-port-81", POD_A, ingress=[{"ports": [{"port": 81, "protocol": "UDP"}]}])
    validate([policy], Reachability().all_ingress("x/a", False), 81, "TCP")
    validate([policy], Reachability(), 81, "UDP")


def test_end_port_range_ingress() -> None:
    """Port ranges (KEP-2079, ``endPort``; upstream's endPort e2e cases): 81-82 admits 81 from y, and
    the range is inclusive on both ends; 80 stays closed."""
    rule = {"from": [{"namespaceSelector": labels(ns="y")}], "ports": [{"port": 81, "endPort": 82, "protocol": "TCP"}]}
    policy = netpol("allow-y-81-82", POD_A, ingress=[rule])
    expected = Reachability().expect_peer("x", "x/a", ok=False).expect_peer("z", "x/a", ok=False)
    validate([policy], expected, 81)
    validate([policy], Reachability().all_ingress("x/a", False), 80)


def test_end_port_range_egress_and_protocol() -> None:
    """Port ranges (KEP-2079) on egress: 80-81/TCP lets x/a reach both ports, not over UDP."""
    policy = netpol("allow-egress-80-81", POD_A, egress=[{"ports": [{"port": 80, "endPort": 81}]}])
    validate([policy], Reachability(), 80)
    validate([policy], Reachability(), 81)
    validate([policy], Reachability().all_egress("x/a", False), 81, "UDP")


# --------------------------------------------------------------------------- egress


def test_egress_on_one_named_port() -> None:
    """Upstream: "should allow egress access on one named port": egress from x may use
    serve-80-tcp (resolved against each destination pod); 81 is closed for x's egress."""
    policy = netpol("allow-egress", ALL, egress=[{"ports": [{"port": "serve-80-tcp"}]}])
    validate([policy], Reachability(), 80)
    validate([policy], Reachability().expect_peer("x", "", ok=False), 81)


def test_egress_on_numeric_port_81() -> None:
    """Derived from "should enforce multiple egress policies with egress allow-all policy taking
    precedence" (first step, mirrored to 81): an egress rule for 81 closes 80 for x."""
    policy = netpol("allow-egress-port-81", ALL, egress=[{"ports": [{"port": 81}]}])
    validate([policy], Reachability(), 81)
    validate([policy], Reachability().expect_peer("x", "", ok=False), 80)


def test_multiple_egress_policies_allow_all_takes_precedence() -> None:
    """Upstream: "should enforce multiple egress policies with egress allow-all policy taking
    precedence"."""
    port80 = netpol("allow-egress-port-80", ALL, egress=[{"ports": [{"port": 80}]}])
    validate([port80], Reachability().expect_peer("x", "", ok=False), 81)
    validate([port80, netpol("allow-egress", ALL, egress=[{}])], Reachability(), 81)


def test_deny_egress_from_pods_by_pod_selector() -> None:
    """Upstream: "should deny egress from pods based on PodSelector": only x/a is cut off."""
    policy = netpol("deny-egress-pod-a", POD_A, egress=[])
    validate([policy], Reachability().all_egress("x/a", False))


def test_deny_egress_from_all_pods_in_a_namespace() -> None:
    """Upstream: "should deny egress from all pods in a namespace"."""
    policy = netpol("deny-egress-ns-x", ALL, egress=[])
    validate([policy], Reachability().expect_peer("x", "", ok=False))


def test_ingress_and_egress_specified_together() -> None:
    """Upstream: "should work with Ingress, Egress specified together": x/a admits x/b only and may
    send to port 80 only."""
    policy = netpol(
        "allow-client-a-via-pod-selector",
        POD_A,
        ingress=[{"from": [{"podSelector": labels(pod="b")}]}],
        egress=[{"ports": [{"port": 80}]}],
    )
    validate([policy], Reachability().all_ingress("x/a", False).expect("x/b", "x/a", True), 80)
    on81 = Reachability().all_ingress("x/a", False).all_egress("x/a", False).expect("x/b", "x/a", True)
    validate([policy], on81, 81)


def test_egress_denied_on_client_side_even_if_server_allows() -> None:
    """Upstream: "should support denying of egress traffic on the client side (even if the server
    explicitly allows this traffic)": x/a may only reach y/a; y/a and y/b admit only x/a."""
    egress = netpol(
        "allow-to-ns-y-pod-a", POD_A, egress=[{"to": [{"namespaceSelector": labels(ns="y"), "podSelector": POD_A}]}]
    )
    from_xa = [{"from": [{"namespaceSelector": labels(ns="x"), "podSelector": POD_A}]}]
    ya = netpol("allow-from-xa-on-ya-match-selector", POD_A, ns="y", ingress=from_xa)
    yb = netpol("allow-from-xa-on-yb-match-selector", labels(pod="b"), ns="y", ingress=from_xa)
    expected = Reachability().all_egress("x/a", False).all_ingress("y/a", False)
    expected.expect("x/a", "y/a", True).all_ingress("y/b", False)
    validate([egress, ya, yb], expected)


def test_egress_to_a_server_in_another_namespace_by_pod_and_namespace_selector() -> None:
    """Upstream: "should enforce egress policy allowing traffic to a server in a different namespace
    based on PodSelector and NamespaceSelector"."""
    policy = netpol(
        "allow-to-ns-y-pod-a", POD_A, egress=[{"to": [{"namespaceSelector": labels(ns="y"), "podSelector": POD_A}]}]
    )
    validate([policy], Reachability().all_egress("x/a", False).expect("x/a", "y/a", True))


def test_egress_namespace_selector_match_expressions_default_ns_label() -> None:
    """Upstream: "should enforce policy based on NamespaceSelector with MatchExpressions using default
    ns label": x/a may reach every namespace NotIn (y)."""
    selector = expr("kubernetes.io/metadata.name", "NotIn", "y")
    policy = netpol(
        "allow-ns-y-match-selector-for-immutable-ns-label", POD_A, egress=[{"to": [{"namespaceSelector": selector}]}]
    )
    validate([policy], Reachability().expect_peer("x/a", "y", ok=False))


def test_ingress_and_egress_controlled_independently() -> None:
    """Upstream: "should enforce policies to check ingress and egress policies can be controlled
    independently based on PodSelector": an allow-all egress policy leaves ingress open; a deny
    ingress policy then closes only ingress."""
    allow_egress = netpol("allow-egress-for-target", POD_A, egress=[{}])
    validate([allow_egress], Reachability())
    deny_ingress = netpol("deny-ingress-via-label-selector", POD_A, ingress=[])
    validate([allow_egress, deny_ingress], Reachability().all_ingress("x/a", False))


# --------------------------------------------------------------------------- ipBlock


def test_egress_to_server_in_cidr_block() -> None:
    """Upstream: "should allow egress access to server in CIDR block": x/a may reach y/b's /32 only
    (pod IPs are matched by IP, as Calico does)."""
    policy = netpol(
        "allow-client-a-via-cidr-egress-rule", POD_A, egress=[{"to": [{"ipBlock": {"cidr": f"{PODS['y/b'].ip}/32"}}]}]
    )
    validate([policy], Reachability().all_egress("x/a", False).expect("x/a", "y/b", True))


def _large_cidr_except_xb() -> dict[str, Any]:
    """The /4 around x/b's IP (as upstream's makeLargeCIDRForIP), except x/b itself."""
    return {"ipBlock": {"cidr": "96.0.0.0/4", "except": [f"{PODS['x/b'].ip}/32"]}}


def test_except_clause_egress_cidr_block() -> None:
    """Upstream: "should enforce except clause while egress access to server in CIDR block"."""
    policy = netpol("allow-client-a-via-cidr-egress-rule", POD_A, egress=[{"to": [_large_cidr_except_xb()]}])
    validate([policy], Reachability().expect("x/a", "x/b", False))


def test_ip_in_both_cidr_and_except_is_allowed_by_another_policy() -> None:
    """Upstream: "should ensure an IP overlapping both IPBlock.CIDR and IPBlock.Except is allowed".
    Upstream's second step UPDATES the policy (same name) to x/b's /32 only; that is reproduced,
    and so is the overlap the title means: a second policy admitting the excepted IP wins."""
    name = "allow-client-a-via-cidr-egress-rule"
    first = netpol(name, POD_A, egress=[{"to": [_large_cidr_except_xb()]}])
    validate([first], Reachability().expect("x/a", "x/b", False))
    updated = netpol(name, POD_A, egress=[{"to": [{"ipBlock": {"cidr": f"{PODS['x/b'].ip}/32"}}]}])
    validate([updated], Reachability().all_egress("x/a", False).expect("x/a", "x/b", True))
    second = netpol("allow-x-b", POD_A, egress=[{"to": [{"ipBlock": {"cidr": f"{PODS['x/b'].ip}/32"}}]}])
    validate([first, second], Reachability())


# --------------------------------------------------------------------------- updates


def test_updated_policy_allow_all_to_deny_all() -> None:
    """Upstream: "should enforce updated policy": allow-all, then ``ingress: []`` denies all."""
    policy = netpol("allow-all-mutate-to-deny-all", ALL, ingress=[{}])
    validate([policy], Reachability(), 81)
    policy["spec"]["ingress"] = []
    validate([policy], Reachability().expect_peer("", "x", ok=False), 81)


def test_ingress_from_updated_namespace() -> None:
    """Upstream: "should allow ingress access from updated namespace": labelling y ns2=updated
    admits all of y into x/a."""
    policy = netpol(
        "allow-client-a-via-ns-selector", POD_A, ingress=[{"from": [{"namespaceSelector": labels(ns2="updated")}]}]
    )
    validate([policy], Reachability().all_ingress("x/a", False))
    relabelled = {**NS_LABELS, "y": {**NS_LABELS["y"], "ns2": "updated"}}
    validate([policy], Reachability().all_ingress("x/a", False).expect_peer("y", "", ok=True), ns_labels=relabelled)


def test_ingress_from_updated_pod() -> None:
    """Upstream: "should allow ingress access from updated pod": x/b gains pod2=updated."""
    selector = labels(pod="b", pod2="updated")
    policy = netpol("allow-client-a-via-pod-selector", POD_A, ingress=[{"from": [{"podSelector": selector}]}])
    validate([policy], Reachability().all_ingress("x/a", False))
    pods = {**PODS, "x/b": _pod("x", "b", {"pod2": "updated"})}
    validate([policy], Reachability(pods).all_ingress("x/a", False).expect("x/b", "x/a", True))


def test_deny_ingress_to_updated_pod() -> None:
    """Upstream: "should deny ingress access to updated pod": x/a becomes isolated once labelled."""
    policy = netpol("deny-ingress-via-label-selector", labels(target="isolated"), ingress=[])
    validate([policy], Reachability())
    pods = {**PODS, "x/a": _pod("x", "a", {"target": "isolated"})}
    validate([policy], Reachability(pods).all_ingress("x/a", False))


def test_stop_enforcing_after_policies_are_deleted() -> None:
    """Upstream: "should stop enforcing policies after they are deleted"."""
    deny = netpol("deny-all", ALL, ingress=[], egress=[])
    validate([deny], Reachability().expect_peer("x", "", ok=False).expect_peer("", "x", ok=False))
    validate([], Reachability())


def test_truth_table_reports_a_wrong_expectation() -> None:
    """The harness itself can fail: a wrong expectation is reported with the differing cell."""
    policy = netpol("deny-ingress", ALL, ingress=[])
    with pytest.raises(pytest.fail.Exception, match=r"1 cell\(s\) differ"):
        validate([policy], Reachability().expect_peer("", "x", ok=False).expect("y/a", "x/b", True))
