"""Ingress probes settled by the rule that drops nginx's upstream connection, and what nginx would connect to.

The unit tests (no root) prove :func:`netiso.backends.lab.ingress.upstream_connections` names
exactly the connections the rendered nginx.conf makes for a Host, and nothing where that is not
certain. The lab tests (root, real nginx and kernel) prove that with tracing an ingress flow whose
backend policy drops the controller is answered ``dropped`` by that rule (not by nginx's 504 after
its connect timeout), with the same verdicts, sources and deciding rules as without tracing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from netiso.backends.lab.ingress import render_nginx_conf, upstream_connections
from netiso.backends.lab.iptables import render_restore
from netiso.backends.lab.trace import UPSTREAM_DSCP, trace_rules, upstream_mark_rules
from netiso.model.addressing import load_topologies
from netiso.model.types import (
    ClusterSpec,
    ControllerInfo,
    IngressInfo,
    PodInfo,
    Port,
    Scenario,
    ServiceInfo,
    ServicePortInfo,
    Topology,
)
from tests.support.traced_check import check_scenario_traced

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
CTL_IP, B1_IP, B2_IP, B3_IP, B4_IP = "100.64.9.10", "100.64.9.11", "100.64.9.12", "100.64.9.13", "100.64.9.14"


def pod(workload: str, ip: str, port: int = 8080, role: str = "workload") -> PodInfo:
    return PodInfo("demo", workload, "worker", ip, {"app": workload}, (Port(port, name="http"),), role)


def service(name: str, endpoints: tuple[PodInfo, ...], port: int = 8080) -> ServiceInfo:
    return ServiceInfo("demo", name, "ClusterIP", "Cluster", {"app": name}, (ServicePortInfo(Port(port, name="http"), None),),
                       "198.19.0.50", endpoints)


CTL_POD = pod("ingress-controller", CTL_IP, 80, "ingress-controller")
CTL = ControllerInfo(CTL_POD, service("ingress-controller", (CTL_POD,), 80), "NodePort", "Cluster")


def topology(routes: dict[str, ServiceInfo]) -> Topology:
    ings = {f"demo/ing-{i}": IngressInfo("demo", f"ing-{i}", host, svc, svc.ports[0], CTL)
            for i, (host, svc) in enumerate(routes.items())}
    pods = list({p.ip: p for s in routes.values() for p in s.endpoints}.values()) + [CTL_POD]
    scenario = Scenario("ing", "ingress", ClusterSpec(nodes=("worker",)), (), (), (), (), (), (), ())
    return Topology(scenario, "direct", "none", "198.18.9.0/24", "100.64.0.0/16", "198.19.0.0/16", {}, {}, pods,
                    {s.key: s for s in routes.values()}, ings, {}, {}, [])


B1, B2, B3, B4 = pod("b1", B1_IP), pod("b2", B2_IP), pod("b3", B3_IP), pod("b4", B4_IP)


def test_upstream_connections_are_the_upstream_servers_nginx_conf_routes_the_host_to(tmp_path: Path) -> None:
    topo = topology({"a.example": service("svc-a", (B1,)), "both.example": service("svc-both", (B1, B2))})
    conf = render_nginx_conf(topo, CTL, tmp_path)
    assert upstream_connections(topo, CTL, "a.example") == [f"{CTL_IP}>{B1_IP}:8080"]
    assert upstream_connections(topo, CTL, "BOTH.example:80") == [f"{CTL_IP}>{B1_IP}:8080", f"{CTL_IP}>{B2_IP}:8080"]
    for conn in upstream_connections(topo, CTL, "both.example"):
        assert f"server {conn.split('>')[1]} max_fails=0;" in conf


def test_an_unknown_host_goes_to_the_catch_all_ingress_or_to_no_upstream_at_all() -> None:
    without = topology({"a.example": service("svc-a", (B1,))})
    assert upstream_connections(without, CTL, "198.18.9.1:30080") == []  # 404 from the default server
    with_catch_all = topology({"a.example": service("svc-a", (B1,)), "": service("svc-any", (B2,))})
    assert upstream_connections(with_catch_all, CTL, "198.18.9.1:30080") == [f"{CTL_IP}>{B2_IP}:8080"]


def test_nothing_is_followed_where_nginx_might_not_try_exactly_those_connections() -> None:
    wildcard = topology({"*.example": service("svc-w", (B1,)), "a.example": service("svc-a", (B2,))})
    assert upstream_connections(wildcard, CTL, "a.example") == []  # nginx's wildcard precedence: not mirrored
    no_endpoints = topology({"a.example": service("svc-a", ())})
    assert upstream_connections(no_endpoints, CTL, "a.example") == []  # 503 from nginx itself
    many = topology({"a.example": service("svc-a", (B1, B2, B3, B4))})
    assert upstream_connections(many, CTL, "a.example") == []  # 4 endpoints, nginx tries 3


def test_the_upstream_mark_touches_only_syns_of_the_controller_pod_and_the_nodes_trace_them() -> None:
    mark = render_restore(upstream_mark_rules())
    assert "*mangle" in mark and "-A OUTPUT -p tcp -m tcp --syn" in mark and f"--set-dscp {UPSTREAM_DSCP:#x}" in mark
    assert "*filter" not in mark and "*nat" not in mark
    raw = render_restore(trace_rules())
    assert f'-A PREROUTING -p tcp -m dscp --dscp {UPSTREAM_DSCP:#x} -m tcp --syn -m comment --comment ' \
           '"netiso: trace ingress upstream SYN" -j TRACE' in raw
    assert f"--dscp {UPSTREAM_DSCP:#x}" not in render_restore(trace_rules(upstream_dscp=None))


@pytest.mark.lab
def test_a_backend_drop_behind_the_ingress_controller_is_settled_by_the_policy_rule_not_by_nginx_504() -> None:
    topo = next(t for t in load_topologies([str(SCENARIOS / "ingress.yaml")]) if t.name == "ingress-nodeport-cluster-vxlan")
    traced = check_scenario_traced(topo, trace=True)
    plain = check_scenario_traced(topo, trace=False)
    backend_drops = [r for r in traced.results if r.pred.flow.dst.startswith("ingress:shop2/")]
    assert len(backend_drops) == 2
    for r in backend_drops:
        assert r.obs.verdict == "dropped"
        assert r.obs.detail.startswith("dropped by isolation shop2 ingress drop (node worker filter cali-tw-")
        assert " on the proxy upstream 100.64." in r.obs.detail
    for p in plain.results:
        if p.pred.flow.dst.startswith("ingress:shop2/"):
            assert p.obs.detail == "HTTP 504"  # without tracing nginx's own answer decides, as before
    for t, p in zip(traced.results, plain.results, strict=True):
        assert (t.obs.verdict, t.obs.source_ip, t.obs.answered_by, t.obs.forwarded_for) == \
               (p.obs.verdict, p.obs.source_ip, p.obs.answered_by, p.obs.forwarded_for)
        assert not t.problems and not p.problems, (t.pred.flow.label, t.problems, p.problems)
