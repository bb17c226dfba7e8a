"""Service ``targetPort`` in the model: the scenario forms, their errors, render, endpoints per port.

Facts pinned here (Kubernetes API, pkg/api/v1/pod FindPort and the EndpointSlice controller): a
Service is addressed by its ``port``; ``targetPort`` defaults to ``port``; a named targetPort is
resolved on each selected pod from its container ports of that name *and protocol*, and a pod
without it is no endpoint of that Service port. And KubeSphere's handlerPeerService writes an
egress service-peer whitelist with the Service's ``port`` values, never its ``targetPort``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from netiso.model.addressing import load_topologies, resolve
from netiso.model.errors import ScenarioError
from netiso.model.loader import loads
from netiso.model.render import render_objects
from netiso.model.types import Port, Topology

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "scenarios" / "service-target-port.yaml"


def topo_of(services: list[Any], *, workloads: list[dict[str, Any]] | None = None,
            whitelist: list[dict[str, Any]] | None = None, isolation: bool = True) -> Topology:
    doc = {
        "name": "tp",
        "workspaces": [{"name": "ws", "projects": [
            {"name": "shop", "isolation": isolation, "whitelist": whitelist or []}, {"name": "billing"}]}],
        "workloads": workloads or [{"name": "db", "project": "billing", "nodes": ["worker"],
                                    "ports": [{"port": 9376, "name": "http"}]}],
        "services": [{"name": "db", "project": "billing", "ports": services}],
    }
    (s,) = loads(yaml.safe_dump(doc, sort_keys=False), "tp.yaml")
    return resolve(s)


@pytest.mark.parametrize(("written", "port"), [
    ("80:8080/TCP", Port(80, "TCP", None, 8080)),
    ("80:8080", Port(80, "TCP", None, 8080)),
    ("53:5353/UDP", Port(53, "UDP", None, 5353)),
    ("80:http", Port(80, "TCP", None, "http")),
    ({"port": 80, "targetPort": 8080, "protocol": "TCP"}, Port(80, "TCP", None, 8080)),
    ({"port": 80, "targetPort": "http", "name": "web"}, Port(80, "TCP", "web", "http")),
    ({"port": 80, "targetPort": "9376"}, Port(80, "TCP", None, 9376)),
    ("80:80/TCP", Port(80)),  # targetPort = port is the default, stored as such
    ("8080/TCP", Port(8080)),
])
def test_service_port_forms(written: Any, port: Port) -> None:
    t = topo_of([written])
    assert t.scenario.services[0].ports == (port,)


@pytest.mark.parametrize(("written", "message"), [
    ("80:/TCP", "is not PORT:TARGETPORT/PROTO"),
    ("80:0/TCP", "targetPort 0 is out of range"),
    ({"port": 80, "targetPort": 70000}, "targetPort 70000 is out of range"),
    ("80:Http", "neither a port number nor a container port name"),
    ({"port": 80, "targetPort": "a-very-long-port-name"}, "at most 15 characters"),
    ({"port": 80, "targetPort": True}, "expected a port number or a container port name"),
    ({"port": 80, "target": 8080}, "did you mean 'targetPort'"),
])
def test_bad_target_ports_name_the_field(written: Any, message: str) -> None:
    with pytest.raises(ScenarioError, match=message) as err:
        topo_of([written])
    assert "services[0].ports[0]" in str(err.value)


def test_workload_flow_and_whitelist_ports_take_no_target_port() -> None:
    with pytest.raises(ScenarioError, match=r"workloads\[0\]\.ports\[0\]"):
        topo_of(["80"], workloads=[{"name": "db", "project": "billing", "nodes": ["worker"], "ports": ["80:90/TCP"]}])
    with pytest.raises(ScenarioError, match=r"whitelist\[0\]\.ports\[0\].targetPort: unknown field"):
        topo_of(["80"], whitelist=[{"direction": "egress", "peer": {"service": "billing/db"},
                                    "ports": [{"port": 80, "targetPort": 90}]}])


def test_render_writes_the_target_port_and_defaults_it_to_the_port() -> None:
    t = topo_of(["80:9376/TCP", {"port": 81, "targetPort": "http"}, "8080/TCP"])
    (svc,) = [o for o in render_objects(t) if o["kind"] == "Service"]
    assert [(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [(80, 9376), (81, "http"), (8080, 8080)]


def test_a_named_target_port_resolves_per_pod_and_excludes_pods_without_it() -> None:
    t = topo_of([{"port": 80, "targetPort": "http"}, "8080/TCP"], workloads=[
        {"name": "db", "project": "billing", "nodes": ["worker"], "labels": {"app": "db"},
         "ports": [{"port": 9376, "name": "http"}, "8080/TCP"]},
        {"name": "old", "project": "billing", "nodes": ["worker2"], "labels": {"app": "db"}, "ports": ["8080/TCP"]},
        {"name": "udp", "project": "billing", "nodes": ["worker2"], "labels": {"app": "db"},
         "ports": [{"port": 9000, "protocol": "UDP", "name": "http"}, "8080/TCP"]},
    ])
    svc = t.services["billing/db"]
    named, plain = svc.ports
    assert [p.workload for p in svc.endpoints] == ["db", "old", "udp"]
    assert [p.workload for p in svc.endpoints_for(named)] == ["db"]  # same name, other protocol: no match
    assert [named.target_for(p) for p in svc.endpoints] == [9376, None, None]
    assert [p.workload for p in svc.endpoints_for(plain)] == ["db", "old", "udp"]
    with pytest.raises(ValueError, match="resolve it per endpoint"):
        _ = named.target_port


def test_bundled_scenarios_without_target_ports_keep_target_equal_to_port() -> None:
    topos = load_topologies([str(p) for p in sorted((ROOT / "scenarios").glob("*.yaml")) if p != BUNDLED])
    for topo in topos:
        for svc in topo.services.values():
            for sp in svc.ports:
                assert sp.port.target is None and sp.target_port == sp.port.port, (topo.name, svc.key)


# --------------------------------------------------------------------------- KubeSphere service peers


def test_egress_service_whitelist_carries_the_service_port_and_warns_about_the_pod_port() -> None:
    t = topo_of(["80:9376/TCP"], whitelist=[{"direction": "egress", "peer": {"service": "billing/db"}}])
    (pol,) = [p for p in t.policies if p["metadata"]["name"] == "nsnp-egress-service-billing-db"]
    assert pol["spec"]["egress"][0]["ports"] == [{"protocol": "TCP", "port": 80}]  # never 9376
    (warning,) = [w for w in t.warnings if "targetPort" in w]
    assert warning.startswith("shop: whitelist rule egress-service-billing-db allows Service billing/db port 80/TCP")
    assert "the policy sees the pod port 9376 after kube-proxy's DNAT" in warning


def test_named_target_port_warning_names_the_resolved_pod_port() -> None:
    t = topo_of([{"port": 80, "targetPort": "http"}],
                whitelist=[{"direction": "egress", "peer": {"service": "billing/db"}}])
    assert any("port 80/TCP" in w and "pod port 9376" in w for w in t.warnings)


@pytest.mark.parametrize("case", ["equal", "ingress", "not-isolated-workspace-mode"])
def test_no_target_port_warning_where_nothing_differs_or_nothing_is_rendered(case: str) -> None:
    direction = "ingress" if case == "ingress" else "egress"
    ports = ["9376/TCP"] if case == "equal" else ["80:9376/TCP"]
    t = topo_of(ports, whitelist=[{"direction": direction, "peer": {"service": "billing/db"}}],
                isolation=case != "not-isolated-workspace-mode")
    assert not [w for w in t.warnings if "targetPort" in w]


def test_the_bundled_scenario_warns_about_its_whitelist() -> None:
    topos = {t.name: t for t in load_topologies([str(BUNDLED)])}
    (warning,) = topos["egress-whitelist-target-port"].warnings
    assert "egress-service-billing-db" in warning and "port 80/TCP" in warning and "pod port 9376" in warning
    assert topos["service-target-port"].warnings == []
