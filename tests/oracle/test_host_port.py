"""``hostport:P/W@NODE``: the CNI portmap plugin's DNAT, predicted as an exposure path of its own.

The bundled scenarios/host-port.yaml is predicted as its ``expect`` says: the pod sees the client
(no SNAT), and the project's isolation policy decides on the client and the container port
after the DNAT. Without the hostPort the very same packet reaches the node's own stack and is
refused. The lab observes the scenario in tests/lab/test_host_port_lab.py.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from netiso.model.addressing import load_topologies, resolve
from netiso.model.loader import loads
from netiso.oracle.paths import Origin, Packet, PathEngine
from netiso.oracle.predict import predict_all
from netiso.oracle.profile import DEFAULT_PROFILE

BUNDLED = Path(__file__).resolve().parents[2] / "scenarios" / "host-port.yaml"


def test_the_bundled_scenario_is_predicted_as_its_expect_says_and_decided_by_the_policy() -> None:
    (topo,) = load_topologies([str(BUNDLED)])
    preds = {f"{p.flow.src} -> {p.flow.dst}": p for p in predict_all(topo)}
    for p in preds.values():
        assert not p.disagreements, f"{p.flow.label}: {p.disagreements}"
    alice = preds["client:alice -> hostport:shop/web@worker"]
    assert alice.target.dst_ip == topo.nodes["worker"].ip and alice.target.dst_port == 9090
    assert any("CNI-HOSTPORT-DNAT (portmap): hostPort 9090/TCP DNAT → pod:shop/web@worker" in h for h in alice.path)
    assert alice.decided_by.startswith("policy shop/") and alice.decided_by.endswith("ingress allow")
    assert preds["client:bob -> hostport:shop/web@worker"].decided_by == "isolation shop ingress drop"
    assert preds["pod:other/probe -> hostport:shop/web@worker"].decided_by == "isolation shop ingress drop"


def test_without_the_host_port_the_node_itself_refuses() -> None:
    (topo,) = load_topologies([str(BUNDLED)])
    bare = replace(topo, pods=[replace(p, host_ports=()) for p in topo.pods])
    walked = PathEngine(bare, DEFAULT_PROFILE).walk(Origin("client", "alice"),
                                                   Packet("", topo.nodes["worker"].ip, 9090, "TCP"))
    assert [o.verdict for o in walked] == ["refused"]


def test_the_port_is_open_on_the_pods_node_only_and_maps_to_the_chosen_container_port() -> None:
    topo = resolve(loads(
        "name: t\ncluster: {clients: [alice]}\nprojects: [{name: demo}]\n"
        "workloads: [{name: web, project: demo, nodes: [worker, worker2], "
        "ports: [{port: 8080, hostPort: 9090}, {port: 53, hostPort: 5353, protocol: UDP}]}]\n"
        "flows: [{from: client:alice, to: hostport:demo/web@worker2},\n"
        "        {from: client:alice, to: hostport:demo/web@worker, port: 53/UDP},\n"
        "        {from: node:worker, to: hostport:demo/web@worker}]\n")[0])
    preds = predict_all(topo)
    assert [(p.target.dst_port, p.target.protocol, p.verdict, p.answered_by, p.source) for p in preds] == [
        (9090, "TCP", "allowed", ["pod:demo/web@worker2"], ["client:alice"]),
        (5353, "UDP", "allowed", ["pod:demo/web@worker"], ["client:alice"]),
        (9090, "TCP", "allowed", ["pod:demo/web@worker"], ["node:worker"]),
    ]
    # worker2's pod does not open worker's port: only the replica on the node is DNATed to
    assert any("DNAT → pod:demo/web@worker2" in h for h in preds[0].path)


def test_a_pod_to_its_own_host_port_is_masqueraded_to_its_node_after_its_policy_saw_the_pod() -> None:
    """portmap's hairpin (``snat: true``): CNI-HOSTPORT-SETMARK on the pod's own /32, DNAT back to it,
    Calico's ingress policy in FORWARD sees the pod, CNI-HOSTPORT-MASQ then picks the node's address."""
    (topo,) = load_topologies([str(BUNDLED)])
    preds = {f"{p.flow.src} -> {p.flow.dst}": p for p in predict_all(topo)}
    hairpin = preds["pod:shop/web@worker -> hostport:shop/web@worker"]
    worker = topo.nodes["worker"]
    assert hairpin.verdict == "allowed" and set(hairpin.outcomes[0].seen) == {worker.ip, worker.tunnel_ip}
    assert hairpin.decided_by == "policy shop/nsnp-network-isolate ingress allow; masquerade portmap"
    web = next(p for p in topo.pods if p.symbol == "pod:shop/web@worker")
    policy = next(h for h in hairpin.path if "FORWARD ingress of pod:shop/web@worker" in h)
    assert f"admits pod:shop/web@worker ({web.ip})" in policy  # the pod itself, not the node
    order = [i for i, h in enumerate(hairpin.path) if "CNI-HOSTPORT-SETMARK" in h or "CNI-HOSTPORT-MASQ" in h]
    assert len(order) == 2 and order[0] < hairpin.path.index(policy) < order[1]


def test_only_the_pods_own_address_is_marked_for_the_hairpin_masquerade() -> None:
    (topo,) = load_topologies([str(BUNDLED)])
    web = next(p for p in topo.pods if p.symbol == "pod:shop/web@worker")
    engine = PathEngine(topo, DEFAULT_PROFILE)
    (alice,) = engine.walk(Origin("client", "alice"), Packet("", topo.nodes["worker"].ip, 9090, "TCP"))
    assert not any("CNI-HOSTPORT-MASQ" in h for h in alice.hops) and alice.seen == (topo.clients["alice"].ip,)
    (own,) = engine.walk(Origin("pod", web.symbol, web), Packet("", topo.nodes["worker"].ip, 9090, "TCP"))
    assert web.ip not in own.seen
