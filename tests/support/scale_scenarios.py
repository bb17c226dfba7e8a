"""Large generated scenarios, the shape issue 16's user measured: many nodes, many projects, many flows.

``scale_scenario(nodes)``: one control-plane and ``nodes - 1`` workers (Calico VXLAN, clients alice
and bob). Each worker hosts two isolated projects of one workspace, ``p<i>a`` and ``p<i>b``, each
with two pods of its workload ``web`` (both on that worker) and a NodePort Service
(``externalTrafficPolicy: Cluster``). ``p<i>a`` whitelists alice and the pod network (so every
in-cluster SNAT source - tunnel addresses - passes: NodePort flows entering anywhere are
allowed for alice *and* bob); ``p<i>b`` whitelists alice only and its sibling project (so most
client flows entering on another node are dropped by the policy, settled by the kernel trace).
Flows: every client to every NodePort on every node, and every pod to the ClusterIPs of both
projects on its own worker and on the next worker (a ring).

Sizes: 12 nodes -> 44 pods, 704 flows; 24 -> 92, 2,576; 48 -> 188, 9,776 (the issue's table).

>>> d = scale_scenario(3)
>>> len(d["cluster"]["nodes"]), len(d["flows"])
(3, 56)
"""

from __future__ import annotations

from typing import Any

import yaml

POD_NETWORK = "100.64.0.0/16"  # the default pod network (docs/scenarios.md, cluster.network)


def scale_scenario(nodes: int, *, name: str | None = None, encapsulation: str = "vxlan") -> dict[str, Any]:
    """The scenario document for ``nodes`` nodes (at least 2: a control-plane and one worker)."""
    if nodes < 2:
        raise ValueError("a scale scenario needs at least 2 nodes (control-plane + worker)")
    workers = ["worker"] + [f"worker{i}" for i in range(2, nodes)]
    projects: list[dict[str, Any]] = []
    workloads: list[dict[str, Any]] = []
    services: list[dict[str, Any]] = []
    for i, worker in enumerate(workers):
        a, b = f"p{i}a", f"p{i}b"
        projects.append({"name": a, "isolation": True, "whitelist": [
            {"direction": "ingress", "peer": {"cidr": "client:alice"}},
            {"direction": "ingress", "peer": {"cidr": POD_NETWORK}}]})
        projects.append({"name": b, "isolation": True, "whitelist": [
            {"direction": "ingress", "peer": {"cidr": "client:alice"}},
            {"direction": "ingress", "peer": {"project": a}}]})
        for project in (a, b):
            for workload in ("web", "web2"):  # two pods behind one Service, both on this worker
                workloads.append({"name": workload, "project": project, "nodes": [worker], "labels": {"app": "web"}})
            services.append({"name": "web", "project": project, "type": "NodePort",
                             "externalTrafficPolicy": "Cluster"})
    all_nodes = ["control-plane", *workers]
    flows: list[dict[str, Any]] = []
    for client in ("alice", "bob"):
        for svc in services:
            for node in all_nodes:
                flows.append({"from": f"client:{client}", "to": f"nodeport:{svc['project']}/web@{node}"})
    for i, _worker in enumerate(workers):
        nxt = (i + 1) % len(workers)
        targets = [f"p{i}a", f"p{i}b", f"p{nxt}a", f"p{nxt}b"]
        for project in (f"p{i}a", f"p{i}b"):
            for workload in ("web", "web2"):
                src = f"pod:{project}/{workload}"
                for target in dict.fromkeys(targets):
                    flows.append({"from": src, "to": f"clusterip:{target}/web"})
    return {
        "name": name or f"scale-{nodes}",
        "description": f"generated: {nodes} nodes, two isolated projects per worker, every client to every "
                       "NodePort on every node, pods to ClusterIPs",
        "cluster": {"encapsulation": encapsulation, "clients": ["alice", "bob"], "nodes": all_nodes},
        "workspaces": [{"name": "ws", "projects": projects}],
        "workloads": workloads,
        "services": services,
        "flows": flows,
    }


def scale_scenario_yaml(nodes: int, **kw: Any) -> str:
    return yaml.safe_dump(scale_scenario(nodes, **kw), sort_keys=False)


def explained_lab_doc(tmp: Any, nodes: int) -> dict[str, Any]:
    """``netiso explain --json`` of the ``nodes``-node scenario, labelled a lab document: what report
    tests fill with observations of their own (no lab needed to test the documents at scale)."""
    import json

    from netiso.cli import main

    (tmp / "scale.yaml").write_text(scale_scenario_yaml(nodes))
    assert main(["explain", str(tmp / "scale.yaml"), "--json", str(tmp / "e.json")]) == 0
    doc: dict[str, Any] = json.loads((tmp / "e.json").read_text())
    doc["backend"] = "lab"
    return doc
