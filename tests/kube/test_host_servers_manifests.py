"""The kube backend serves a node's host-network ports (``to: node:NAME`` flows) from the run's
hostNetwork node pod: one agnhost netexec container per port, beside the probe container."""

from __future__ import annotations

from pathlib import Path

from netiso.backends.kube.manifests import KubeTarget, workload_objects
from netiso.backends.kube.naming import RunNames
from netiso.model.addressing import load_topologies

BUNDLED = Path(__file__).resolve().parents[2] / "scenarios" / "host-network-servers.yaml"


def test_kube_node_pod_serves_the_host_port_with_netexec() -> None:
    topo = next(t for t in load_topologies([str(BUNDLED)])
                if t.name == "host-servers-endpoint-to-host-accept")
    target = KubeTarget(RunNames("nx0a1b2c"), {n: n for n in topo.nodes})
    pods = [o for o in workload_objects(topo, target) if o["spec"].get("hostNetwork")]
    by_node = {o["spec"]["nodeName"]: o for o in pods}
    assert len(by_node) == 2  # worker (server + source) and worker2 (server)
    for pod in pods:
        servers = [c for c in pod["spec"]["containers"] if c["args"][0] == "netexec"]
        assert [c["args"] for c in servers] == [["netexec", "--http-port=8080", "--udp-port=-1"]]
        assert servers[0]["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
