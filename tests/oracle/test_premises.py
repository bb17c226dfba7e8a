"""Oracle: OpenELB's announce rule without endpoints, and clients that do not route to pod IPs."""

from __future__ import annotations

import hashlib
import random

import pytest

from netiso.model import election
from netiso.model.addressing import resolve
from netiso.model.loader import loads
from netiso.oracle.predict import predict_all

NO_ENDPOINTS = """
name: t
cluster: {{loadBalancer: {lb}, clients: [alice]}}
projects: [{{name: shop}}]
services:
  - {{name: empty, project: shop, selector: {{app: nothing}}, type: LoadBalancer, externalTrafficPolicy: {etp}}}
flows:
  - {{from: client:alice, to: loadbalancer:shop/empty}}
"""


@pytest.mark.parametrize(("lb", "etp", "verdict"), [
    ("openelb", "Cluster", "refused"),   # every node a next hop: the elected node's kube-proxy REJECTs
    ("metallb", "Cluster", "dropped"),   # MetalLB announces only with a ready endpoint: ARP unanswered
    ("openelb", "Local", "dropped"),
    ("metallb", "Local", "dropped"),
])
def test_lb_service_without_endpoints_is_announced_only_by_openelb_under_cluster(lb: str, etp: str, verdict: str) -> None:
    topo = resolve(loads(NO_ENDPOINTS.format(lb=lb, etp=etp))[0])
    (pred,) = predict_all(topo)
    assert pred.verdict == verdict
    svc = topo.services["shop/empty"]
    assert (svc.lb_node is not None) == (verdict == "refused")
    if verdict == "refused":
        assert svc.lb_candidates == tuple(topo.nodes)
        assert pred.decided_by == "kube-proxy shop/empty no-endpoints reject"


ROUTES = """
name: t
cluster: {{clients: [alice], clientsRouteToPods: {routes}}}
projects: [{{name: shop}}]
workloads: [{{name: web, project: shop, nodes: [worker]}}]
flows: [{{from: client:alice, to: pod:shop/web}}]
"""


def test_client_to_pod_ip_is_dropped_with_the_reason_when_the_network_does_not_route_clients_to_pods() -> None:
    (pred,) = predict_all(resolve(loads(ROUTES.format(routes="false"))[0]))
    assert pred.verdict == "dropped" and pred.decided_by is None
    assert "clientsRouteToPods: false" in pred.path[-1]
    (routed,) = predict_all(resolve(loads(ROUTES.format(routes="true"))[0]))
    assert routed.verdict == "allowed"


def test_find_vip_elects_the_wanted_node_by_an_independent_hash() -> None:
    rng = random.Random(7)
    for _ in range(50):
        nodes = [f"n{rng.randrange(10**6)}-{i}" for i in range(rng.randrange(1, 5))]
        wanted = rng.choice(nodes)
        pool = [f"10.1.{i // 256}.{i % 256}" for i in range(300)]
        taken = set(rng.sample(pool, 20))
        vip = election.find_vip(pool, taken, nodes, wanted)
        assert vip is not None and vip not in taken
        assert min(nodes, key=lambda n: hashlib.sha256(f"{n}#{vip}".encode()).digest()) == wanted
        earlier = pool[:pool.index(vip)]  # the first such address: none before it qualifies
        assert all(a in taken or min(nodes, key=lambda n: hashlib.sha256(f"{n}#{a}".encode()).digest()) != wanted
                   for a in earlier)
    assert election.find_vip(["10.0.0.1"], (), ["a"], "b") is None
