"""LoadBalancer VIPs are requested so the cluster's announcer is the one the scenario was planned for.

Against the emulated API server (tests/support/kubeapi): its MetalLB/OpenELB controllers honour
the request annotations and its MetalLB writes ServiceL2Status with an election written
independently of netiso.model.election; the tests below elect once more with their own hash.
The seeded cluster's nodes are ``kind-control-plane``, ``kind-worker``, ``kind-worker2`` and its
pool 172.18.255.200-250: the pool's first address elects ``kind-worker2`` (= worker2), where the
lab plan (198.18.0.200) elects ``worker`` - so without a request the realized announcer differs.
"""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from netiso.backends.base import BackendOptions
from netiso.backends.kube.backend import KubeBackend
from netiso.backends.kube.naming import RunNames
from netiso.backends.kube.vips import REQUEST_ANNOTATIONS
from netiso.oracle.predict import predict_all
from tests.kube.conftest import FAST, RUN, topo_of
from tests.kube.test_kube_backend import standin_client
from tests.support.kubeapi import seed_cluster

LB = """
name: lb-plan
cluster: {encapsulation: vxlan, loadBalancer: metallb, clients: [alice]}
projects:
  - name: shop
workloads:
  - {name: web, project: shop, nodes: [worker2]}
  - {name: probe, project: shop, nodes: [worker]}
services:
  - {name: web, project: shop, type: LoadBalancer, externalTrafficPolicy: Cluster}
flows:
  - {from: client:alice, to: loadbalancer:shop/web}
  - {from: pod:shop/probe, to: loadbalancer:shop/web}
  - {from: client:alice, to: pod:shop/web}
"""
NODES = ("kind-control-plane", "kind-worker", "kind-worker2")


def _elect(nodes: list[str], ip: str) -> str:
    """The test's own sha256(node#ip) election (not netiso.model.election)."""
    return min(nodes, key=lambda n: hashlib.sha256(f"{n}#{ip}".encode()).digest())


def _eligible(lb: str) -> list[str]:
    return list(NODES[1:]) if lb == "metallb" else list(NODES)  # MetalLB skips the excluded control-plane


@pytest.mark.parametrize("lb", ["metallb", "openelb"])
def test_emulated_api_service_requests_a_vip_that_elects_the_planned_node(fake_cluster, kube_backend, lb: str) -> None:
    planned = topo_of(LB, **{"loadBalancer: metallb": f"loadBalancer: {lb}"})
    assert planned.services["shop/web"].lb_node == "worker"
    assert _elect(_eligible(lb), "172.18.255.200") == "kind-worker2", "the pool's first address must elect another node"
    seed_cluster(fake_cluster, load_balancer=lb)
    real = kube_backend().realize(planned)
    svc = fake_cluster.get("v1", "Service", "web", f"{RUN}-shop")
    assert svc is not None
    requested = svc["metadata"]["annotations"][REQUEST_ANNOTATIONS[lb]]
    assert svc["status"]["loadBalancer"]["ingress"][0]["ip"] == requested
    assert _elect(_eligible(lb), requested) == "kind-worker"
    assert real.topo.services["shop/web"].lb_node == "worker"
    if lb == "metallb":  # the emulated speaker's own election, read as the backend reads it
        assert real.elected("shop", "web") == "worker"
    assert not real.lb_skips
    real.down()


def test_emulated_api_no_vip_in_the_pool_elects_the_planned_node_so_client_vip_flows_are_skipped(
        fake_cluster, kube_backend, tmp_path: Path) -> None:
    seed_cluster(fake_cluster)
    fake_cluster.add({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",  # sorts first: preflight's pool
                      "metadata": {"name": "a-tiny", "namespace": "metallb-system"},
                      "spec": {"addresses": ["172.18.255.200/32"], "autoAssign": True}})
    real = kube_backend(clients={"alice": standin_client(tmp_path)}).realize(topo_of(LB))
    svc = fake_cluster.get("v1", "Service", "web", f"{RUN}-shop")
    assert svc is not None and REQUEST_ANNOTATIONS["metallb"] not in (svc["metadata"].get("annotations") or {})
    preds = predict_all(real.topo)
    client_vip = next(p for p in preds if p.flow.src == "client:alice" and p.flow.dst.startswith("loadbalancer:"))
    pod_vip = next(p for p in preds if p.flow.src.startswith("pod:"))
    (obs,) = real.probe([client_vip])
    assert obs.verdict == "skipped"
    assert "IPAddressPool metallb-system/a-tiny" in (obs.detail or "") and "node:worker (kind-worker)" in (obs.detail or "")
    assert real._skip_reason(pod_vip) is None  # kube-proxy answers a pod's VIP traffic on its own node: no election
    real.down()


@pytest.mark.parametrize(("scenario_routes", "no_pod_routes", "skipped"), [
    ("true", ("alice",), True),   # the scenario wants the pod reachable; alice's host has no route
    ("false", (), True),          # the scenario models no route; alice's host routes (the default)
    ("false", ("alice",), False),
    ("true", (), False),
])
def test_emulated_api_client_to_pod_flow_is_skipped_when_the_client_cannot_meet_the_scenarios_routing(
        fake_cluster, kube_backend, tmp_path: Path, scenario_routes: str, no_pod_routes: tuple[str, ...],
        skipped: bool) -> None:
    seed_cluster(fake_cluster)
    text = LB.replace("clients: [alice]", f"clients: [alice], clientsRouteToPods: {scenario_routes}")
    real = kube_backend(clients={"alice": standin_client(tmp_path)},
                        clients_without_pod_routes=no_pod_routes).realize(topo_of(text))
    pred = next(p for p in predict_all(real.topo) if p.flow.dst == "pod:shop/web")
    reason = real._skip_reason(pred)
    assert (reason is not None) == skipped
    if skipped:
        assert reason is not None and f"clientsRouteToPods: {scenario_routes}" in reason and "client:alice" in reason
    real.down()


def test_emulated_api_two_scenarios_built_at_once_request_different_vips(fake_cluster) -> None:
    """``--jobs 2``: both realizations list the cluster's Services before either has created its
    own (a barrier forces that interleaving), so the cluster shows the same addresses free to both;
    the backend's in-process reservation must still give them different VIPs, held until ``down``."""
    seed_cluster(fake_cluster)
    first, second = topo_of(LB), topo_of(LB, **{"name: lb-plan": "name: lb-plan-two"})
    runs = {first.name: "nx0a1b2c", second.name: "nx0d3e4f"}
    backend = KubeBackend(BackendOptions(kubeconfig=str(fake_cluster.kubeconfig)),
                          names_for=lambda topo: RunNames(runs[topo.name]), timeouts=FAST)
    backend.preflight([first, second])
    kube = backend.kube
    barrier = threading.Barrier(2, timeout=20)
    cluster_list = kube.list

    def list_then_meet(api_version: str, kind: str, namespace: str | None = None, **kw: Any) -> list[dict[str, Any]]:
        out = cluster_list(api_version, kind, namespace, **kw)
        if (api_version, kind, namespace) == ("v1", "Service", None):  # vips.choose_on_cluster's look at the cluster
            barrier.wait()
        return out

    kube.list = list_then_meet  # type: ignore[method-assign]
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            reals = list(pool.map(backend.realize, [first, second]))
        kube.list = cluster_list  # type: ignore[method-assign]
        requested = [fake_cluster.get("v1", "Service", "web", f"{runs[t.name]}-shop")["metadata"]["annotations"]
                     [REQUEST_ANNOTATIONS["metallb"]] for t in (first, second)]
        assert requested[0] != requested[1], requested
        assert all(_elect(_eligible("metallb"), vip) == "kind-worker" for vip in requested)
        assert [r.topo.services["shop/web"].lb_ip for r in reals] == requested
        reals[0].down()  # its VIP is free for the next scenario again, the other one's stays reserved
        assert backend.vip_reservations.held == {requested[1]}
    finally:
        kube.list = cluster_list  # type: ignore[method-assign]
        backend.close()
    assert backend.vip_reservations.held == frozenset()
