"""Random but valid scenarios for differential testing: the oracle against the kernel lab.

Each seed gives one scenario (mode, load balancer, isolation, whitelists, NodePort and
LoadBalancer services under both traffic policies, an optional ingress, and flows from
clients, pods and nodes to every kind of target). The scenarios carry no ``expect``: the
point is that the oracle's prediction and the lab's observation agree wherever the dice land,
including corners no hand-written scenario thought of.
"""

from __future__ import annotations

import random
from typing import Any

import yaml

NODES = ["control-plane", "worker", "worker2"]


def random_scenario(seed: int) -> dict[str, Any]:
    r = random.Random(seed)
    mode = r.choice(["direct", "ipip", "vxlan"])
    whitelist: list[dict[str, Any]] = []
    shop = {"name": "shop", "isolation": r.random() < 0.7, "whitelist": whitelist}
    for _ in range(r.randint(0, 2)):
        if r.random() < 0.5:
            symbols = ["client:alice", "client:bob", f"node:{r.choice(NODES)}"]
            if mode != "direct":
                symbols.append(f"tunnel:{r.choice(NODES)}")
            whitelist.append({"direction": "ingress", "peer": {"cidr": r.choice(symbols)}})
        else:
            whitelist.append({"direction": "ingress",
                              "peer": {"project": r.choice(["other", "kubesphere-controls-system"])}})
    if r.random() < 0.3:  # egress whitelist: also adds KubeSphere's DNS egress rules
        whitelist.append({"direction": "egress",
                          "peer": r.choice([{"cidr": "client:alice"}, {"project": "other"}])})
    web_nodes = r.sample(NODES, r.randint(1, 2))
    services: list[dict[str, Any]] = [
        {"name": f"s{i}", "project": "shop", "selector": {"app": "web"},
         "type": r.choice(["NodePort", "LoadBalancer"]), "externalTrafficPolicy": r.choice(["Cluster", "Local"])}
        for i in range(2)
    ]
    services.append({"name": "c", "project": "shop", "selector": {"app": "web"}})
    udp = r.random() < 0.3
    if udp:  # the same paths with UDP: silence is dropped, ICMP port unreachable refused
        services.append({"name": "u", "project": "shop", "selector": {"app": "dns"},
                         "type": "NodePort", "externalTrafficPolicy": r.choice(["Cluster", "Local"]),
                         "ports": ["5353/UDP"]})
    policies: list[dict[str, Any]] = []
    if r.random() < 0.4:  # a raw NetworkPolicy in the other project
        peer = r.choice([{"namespaceSelector": {"matchLabels": {"kubesphere.io/namespace": "shop"}}},
                         {"ipBlock": {"cidr": "198.18.0.0/24", "except": ["198.18.0.101/32"]}},
                         {"podSelector": {"matchLabels": {"app": "nothing"}}}])
        policies.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                         "metadata": {"name": "guard", "namespace": "other"},
                         "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": [peer]}]}})
    ingresses = []
    if r.random() < 0.5:
        ingresses.append({"name": "ing", "project": "shop", "host": "web.example", "service": "c",
                          "controller": {"project": "kubesphere-controls-system", "node": r.choice(NODES),
                                         "exposure": r.choice(["NodePort", "LoadBalancer"]),
                                         "externalTrafficPolicy": r.choice(["Cluster", "Local"])}})
    sources = ["client:alice", "client:bob", "pod:other/cli", "pod:shop/loc", *(f"node:{n}" for n in NODES)]
    flows: list[dict[str, str]] = []
    for _ in range(14):
        src = r.choice(sources)
        targets = [f"pod:shop/web@{n}" for n in web_nodes] + ["pod:other/cli"]
        for s in services:
            if s.get("type", "ClusterIP") != "ClusterIP":
                targets += [f"nodeport:shop/{s['name']}@{n}" for n in NODES]
            if s.get("type") == "LoadBalancer":
                targets.append(f"loadbalancer:shop/{s['name']}")
        if not src.startswith("client:"):
            targets += ["clusterip:shop/c", r.choice(["client:alice", "client:bob"])]
        if ingresses:
            targets.append("ingress:shop/ing")
            if ingresses[0]["controller"]["exposure"] == "NodePort":
                targets += [f"ingress:shop/ing@{n}" for n in NODES]
        flow = {"from": src, "to": r.choice(targets)}
        if flow["to"] == "pod:other/cli" and src == "pod:other/cli":
            continue
        if udp and r.random() < 0.2:
            flow = {"from": src, "to": f"nodeport:shop/u@{r.choice(NODES)}"}
        if flow not in flows:
            flows.append(flow)
    return {
        "name": f"random-{seed}",
        "description": f"random differential scenario, seed {seed}",
        "cluster": {"encapsulation": mode, "loadBalancer": r.choice(["metallb", "openelb"]),
                    "clients": ["alice", "bob"]},
        "workspaces": [{"name": "ws", "isolation": r.random() < 0.3, "projects": [shop, {"name": "other"}]}],
        "projects": [{"name": "kubesphere-controls-system"}],
        "workloads": [{"name": "web", "project": "shop", "nodes": web_nodes},
                      {"name": "cli", "project": "other", "nodes": [r.choice(NODES)]},
                      {"name": "loc", "project": "shop", "nodes": [r.choice(NODES)]},
                      {"name": "dns", "project": "shop", "nodes": [r.choice(NODES)], "ports": ["5353/UDP"]}],
        "services": services,
        "ingresses": ingresses,
        "networkPolicies": policies,
        "flows": flows,
    }


def random_scenarios_yaml(seeds: range) -> str:
    return yaml.safe_dump_all([random_scenario(s) for s in seeds], sort_keys=False)
