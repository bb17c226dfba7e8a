"""Golden-file tests of ``netiso render`` plus the properties a cluster backend relies on.

Each ``golden/<case>.yaml`` scenario file is loaded, resolved by the address plan and rendered;
the output (KubeSphere warnings as ``#`` comments, then the manifests) must equal
``golden/<case>.out.yaml`` byte for byte. Regenerate after an intended change with
``NETISO_REGEN_GOLDEN=1 pytest tests/model/test_render.py`` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from netiso.model.addressing import resolve
from netiso.model.loader import loads
from netiso.model.netpol_validate import validate_network_policy
from netiso.model.render import render_objects, to_yaml
from netiso.model.selectors import matches
from netiso.model.types import Topology

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p for p in GOLDEN.glob("*.yaml") if not p.name.endswith(".out.yaml"))
REGEN = os.environ.get("NETISO_REGEN_GOLDEN") == "1"


def _topologies(path: Path) -> list[Topology]:
    return [resolve(s) for s in loads(path.read_text(), file=str(path))]


def _render_file(path: Path) -> str:
    parts = []
    for topo in _topologies(path):
        header = [f"# scenario: {topo.name}"] + [f"# warning: {w}" for w in topo.warnings]
        parts.append("\n".join(header) + "\n" + to_yaml(render_objects(topo)))
    return "".join(parts)


def _render(text: str, backend: str = "lab") -> list[dict[str, Any]]:
    return render_objects(resolve(loads(text)[0]), backend=backend)


def _by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


@pytest.mark.parametrize("case", CASES, ids=[p.stem for p in CASES])
def test_render_matches_golden(case: Path) -> None:
    actual = _render_file(case)
    expected_path = case.with_name(case.stem + ".out.yaml")
    if REGEN:
        expected_path.write_text(actual)
    assert expected_path.exists(), f"missing {expected_path.name}: run with NETISO_REGEN_GOLDEN=1"
    assert actual == expected_path.read_text()


def test_golden_cases_cover_the_brief() -> None:
    stems = {p.stem for p in CASES}
    assert {"project-isolation", "workspace-isolation", "project-wins-in-isolated-workspace", "whitelist-cidr",
            "whitelist-project", "whitelist-service", "egress-dns", "whitelist-deleted", "raw-networkpolicy",
            "full"} <= stems


@pytest.mark.parametrize("case", CASES, ids=[p.stem for p in CASES])
def test_rendered_yaml_round_trips_and_policies_are_valid(case: Path) -> None:
    for topo in _topologies(case):
        objects = render_objects(topo)
        assert list(yaml.safe_load_all(to_yaml(objects))) == objects
        for np in _by_kind(objects, "NetworkPolicy"):
            assert validate_network_policy(np) == [], np["metadata"]["name"]


def test_render_is_deterministic() -> None:
    case = GOLDEN / "full.yaml"
    assert _render_file(case) == _render_file(case)


def test_order_of_kinds_is_apply_order() -> None:
    kinds = [o["kind"] for o in _render((GOLDEN / "full.yaml").read_text())]
    order = ["Namespace", "NamespaceNetworkPolicy", "NetworkPolicy", "Pod", "Service", "Ingress",
             "IPAddressPool", "L2Advertisement"]
    firsts = [kinds.index(k) for k in order]
    assert firsts == sorted(firsts)
    assert kinds == sorted(kinds, key=order.index)


def test_generated_policies_come_before_raw_ones() -> None:
    nps = _by_kind(_render((GOLDEN / "raw-networkpolicy.yaml").read_text()), "NetworkPolicy")
    assert [p["metadata"]["name"] for p in nps] == ["nsnp-network-isolate", "allow-web-from-anywhere"]
    assert nps[1]["spec"]["ingress"] == [{"ports": [{"port": "http", "protocol": "TCP"}]}]


def test_every_service_selects_its_pods_and_every_pod_is_pinned() -> None:
    objects = _render((GOLDEN / "full.yaml").read_text())
    pods = _by_kind(objects, "Pod")
    assert all(p["spec"]["nodeName"] for p in pods)
    for svc in _by_kind(objects, "Service"):
        selected = [p for p in pods if p["metadata"]["namespace"] == svc["metadata"]["namespace"]
                    and matches({"matchLabels": svc["spec"]["selector"]}, p["metadata"]["labels"])]
        assert selected, svc["metadata"]["name"]
        for port in svc["spec"]["ports"]:
            served = {(c["containerPort"], c["protocol"]) for p in selected
                      for ctr in p["spec"]["containers"] for c in ctr["ports"]}
            assert (port["targetPort"], port["protocol"]) in served


def test_node_ports_and_cluster_ips_come_from_the_topology() -> None:
    topo = resolve(loads((GOLDEN / "full.yaml").read_text())[0])
    rendered = {s["metadata"]["name"]: s for s in _by_kind(render_objects(topo), "Service")}
    for info in topo.services.values():
        svc = rendered[info.name]
        assert svc["spec"]["clusterIP"] == info.cluster_ip
        assert [p.get("nodePort") for p in svc["spec"]["ports"]] == [p.node_port for p in info.ports]


def test_cluster_backends_leave_cluster_ips_to_the_cluster() -> None:
    text = (GOLDEN / "full.yaml").read_text()
    for svc in _by_kind(_render(text, backend="kind"), "Service"):
        assert "clusterIP" not in svc["spec"]
        assert all("nodePort" in p for p in svc["spec"]["ports"])
    with pytest.raises(ValueError, match="unknown backend"):
        _render(text, backend="docker")


def test_metallb_services_request_their_vip_by_annotation() -> None:
    topo = resolve(loads((GOLDEN / "full.yaml").read_text())[0])
    for svc in _by_kind(render_objects(topo), "Service"):
        info = topo.services[f"{svc['metadata']['namespace']}/{svc['metadata']['name']}"]
        if info.type == "LoadBalancer":
            assert svc["metadata"]["annotations"] == {"metallb.io/loadBalancerIPs": info.lb_ip}
        else:
            assert "annotations" not in svc["metadata"]


def test_openelb_services_name_the_eip_and_the_ip() -> None:
    topo = resolve(loads((GOLDEN / "full.yaml").read_text())[1])
    objects = render_objects(topo)
    eip = _by_kind(objects, "Eip")
    assert len(eip) == 1 and eip[0]["spec"]["protocol"] == "layer2"
    lb = [s for s in _by_kind(objects, "Service") if s["spec"]["type"] == "LoadBalancer"]
    assert lb
    for svc in lb:
        ann = svc["metadata"]["annotations"]
        assert ann["lb.kubesphere.io/v1alpha1"] == "openelb"
        assert ann["eip.openelb.kubesphere.io/v1alpha2"] == eip[0]["metadata"]["name"]
        assert ann["eip.openelb.kubesphere.io/v1alpha1"] == topo.services[
            f"{svc['metadata']['namespace']}/{svc['metadata']['name']}"].lb_ip


def test_no_pool_objects_without_a_load_balancer() -> None:
    text = "name: t\ncluster: {loadBalancer: none}\nprojects: [{name: a}]\n"
    assert [o["kind"] for o in _render(text)] == ["Namespace"]


def test_multi_port_workload_packs_ports_into_netexec_processes() -> None:
    pods = _by_kind(_render((GOLDEN / "full.yaml").read_text()), "Pod")
    dns = next(p for p in pods if p["metadata"]["name"] == "dns-worker2")
    args = [c["args"] for c in dns["spec"]["containers"]]
    assert args == [["netexec", "--http-port=53", "--udp-port=53"],
                    ["netexec", "--http-port=9090", "--udp-port=9090"]]
    names = [c["name"] for c in dns["spec"]["containers"]]
    assert len(set(names)) == len(names)


def test_named_workload_ports_become_named_container_ports() -> None:
    pod = _by_kind(_render((GOLDEN / "raw-networkpolicy.yaml").read_text()), "Pod")[0]
    assert pod["spec"]["containers"][0]["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]


def test_ingress_and_its_controller() -> None:
    objects = _render((GOLDEN / "full.yaml").read_text())
    ing = _by_kind(objects, "Ingress")[0]
    assert ing["spec"]["ingressClassName"] == "nginx"
    rule = ing["spec"]["rules"][0]
    assert rule["host"] == "web.example"
    assert rule["http"]["paths"][0]["backend"] == {"service": {"name": "web", "port": {"number": 8080}}}
    ctl = [p for p in _by_kind(objects, "Pod") if p["metadata"]["namespace"] == "kubesphere-controls-system"]
    assert len(ctl) == 1 and ctl[0]["spec"]["nodeName"] == "worker2"
    svc = [s for s in _by_kind(objects, "Service") if s["metadata"]["namespace"] == "kubesphere-controls-system"]
    assert len(svc) == 1
    assert svc[0]["spec"]["type"] == "LoadBalancer" and svc[0]["spec"]["externalTrafficPolicy"] == "Local"
    assert "healthCheckNodePort" in svc[0]["spec"]
    assert f"--publish-service=$(POD_NAMESPACE)/{svc[0]['metadata']['name']}" in ctl[0]["spec"]["containers"][0]["args"]


def test_ingresses_sharing_a_controller_render_it_once() -> None:
    text = """
name: shared
workspaces: [{name: ws, projects: [{name: shop}]}]
projects: [{name: gw}]
workloads: [{name: a, project: shop, nodes: [worker]}, {name: b, project: shop, nodes: [worker]}]
services: [{name: a, project: shop, type: ClusterIP}, {name: b, project: shop, type: ClusterIP}]
ingresses:
  - {name: a, project: shop, host: a.example, service: a, controller: {project: gw, node: worker}}
  - {name: b, project: shop, host: b.example, service: b, controller: {project: gw, node: worker}}
"""
    objects = _render(text)
    assert len([p for p in _by_kind(objects, "Pod") if p["metadata"]["namespace"] == "gw"]) == 1
    assert len([s for s in _by_kind(objects, "Service") if s["metadata"]["namespace"] == "gw"]) == 1
    assert len(_by_kind(objects, "Ingress")) == 2


def test_nsnp_objects_show_the_resolved_cidr() -> None:
    objects = _render((GOLDEN / "whitelist-cidr.yaml").read_text())
    nsnps = {o["metadata"]["name"]: o for o in _by_kind(objects, "NamespaceNetworkPolicy")}
    assert nsnps["ingress-cidr-client-alice"]["spec"]["ingress"][0]["from"] == [{"ipBlock": {"cidr": "198.18.0.100/32"}}]
    tunnels = nsnps["ingress-cidr-tunnel"]["spec"]["ingress"][0]["from"]
    assert [p["ipBlock"]["cidr"] for p in tunnels] == ["100.64.0.0/32", "100.64.1.0/32", "100.64.2.0/32"]
    nps = {o["metadata"]["name"]: o for o in _by_kind(objects, "NetworkPolicy")}
    assert nps["nsnp-ingress-cidr-tunnel"]["spec"]["ingress"][0]["from"] == tunnels


def test_deleted_whitelists_render_neither_nsnp_nor_policy() -> None:
    topo = _topologies(GOLDEN / "whitelist-deleted.yaml")[0]
    objects = render_objects(topo)
    assert _by_kind(objects, "NamespaceNetworkPolicy") == []
    assert [p["metadata"]["name"] for p in _by_kind(objects, "NetworkPolicy")] == ["nsnp-network-isolate"]
    assert len(topo.warnings) == 2 and all("deletes every NamespaceNetworkPolicy" in w for w in topo.warnings)
