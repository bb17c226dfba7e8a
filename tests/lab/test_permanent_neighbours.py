"""The node network's neighbour entries are permanent (issue 16): the kernel's neighbour table limit
(``gc_thresh3``) is one for the whole host, so a 48-node lab's ~2,500 dynamic entries overflowed it,
new entries were refused and SYNs waiting for them lost (``table_fulls`` in ``ip -s ntable``).
Permanent entries are not counted against that limit. Checked on the plan (no root): every node has
one for every other node and every client, every client one for every node and every other client,
with the MAC the switch stage gives that peer; VIPs and pods stay dynamic.
"""

from __future__ import annotations

from netiso.backends.lab.topology import plan
from tests.lab.test_topology import make_topology


def _lines(p, ns: str) -> list[str]:
    return [line for stage in p.stages for n, tool, batch in stage.batches if n == ns and tool == "ip" for line in batch]


def test_every_node_and_client_knows_every_peer_on_the_node_network_permanently() -> None:
    topo = make_topology("vxlan")
    p = plan(topo, "nxh7beef")
    peers = {n.ip: n.mac for n in p.net.nodes.values()} | {c.ip: c.mac for c in p.net.clients.values()}
    holders = [(n.netns, n.ip) for n in p.net.nodes.values()] + [(c.netns, c.ip) for c in p.net.clients.values()]
    for ns, own in holders:
        permanent = {line.split()[2]: line.split()[4] for line in _lines(p, ns)
                     if line.startswith("neigh replace") and "dev eth0 nud permanent" in line}
        assert permanent == {ip: mac for ip, mac in peers.items() if ip != own}, ns


def test_pods_and_vips_keep_resolving_by_arp() -> None:
    p = plan(make_topology("vxlan"), "nxh7beef")
    for pod in p.net.pods.values():
        assert not any(line.startswith("neigh") for line in _lines(p, pod.netns))
    pod_ips = {pod.ip for pod in p.net.pods.values()}
    for n in p.net.nodes.values():
        assert not any(line.startswith("neigh") and line.split()[2] in pod_ips for line in _lines(p, n.netns))
