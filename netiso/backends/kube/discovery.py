"""What the cluster assigned, read back as :class:`ClusterFacts` keyed by the scenario's symbols.

The oracle predicts a cluster run for the topology *as realized*
(``netiso.model.addressing.resolve(scenario, facts)``), so every address a probe can see must
come from the cluster, never from the lab's address plan:

* nodes: ``status.addresses`` InternalIP (what kubelet reports, ``kubectl get node -o wide``),
  the LoadBalancer exclusion label ``node.kubernetes.io/exclude-from-external-load-balancers``;
* Calico tunnel addresses: the node annotations Calico's allocateip reconciler writes
  (``projectcalico.org/IPv4IPIPTunnelAddr`` in IPIP mode, ``projectcalico.org/IPv4VXLANTunnelAddr``
  in VXLAN mode; calico node/pkg/allocateip); none in direct mode;
* node pod blocks: Calico ``BlockAffinity`` objects (``spec.node``/``spec.cidr``/``spec.state``,
  libcalico-go api/pkg/apis/projectcalico/v3 blockaffinity), the one holding the node's pods
  preferred; ``spec.podCIDR`` when Calico uses host-local IPAM. They are read from the API group
  the matched IPPool came from (preflight.calico_api: ``projectcalico.org/v3`` with native v3
  CRDs, else ``crd.projectcalico.org/v1``), which the pool's ``apiVersion`` carries;
* networks: the node network from Calico's ``projectcalico.org/IPv4Address`` annotation
  (address/prefix of the node interface), the pod network from the IPPool's ``cidr``;
* pods: ``status.podIP`` of each pod of the run (pod names are the scenario's, see naming);
* Services: ``spec.clusterIP``, ``spec.ports[].nodePort``, ``spec.healthCheckNodePort``,
  ``status.loadBalancer.ingress[0].ip``; kube-dns' ClusterIP from ``kube-system/kube-dns``.

The node announcing a VIP: MetalLB records it in ``ServiceL2Status`` (read by the backend);
OpenELB records it nowhere in the API, but every speaker logs its election
(``klog.Infof("[%s] wins the right to announce the IP address %s")``, older releases
``"node %s wins ..."``; openelb pkg/speaker/layer2/memberlist.go), so :func:`openelb_announcer`
reads the speakers' logs (the latest line for the VIP, majority over speakers).

Client addresses are not read from the API: ``backend`` asks each client host through its
``--client`` command and passes them in. Knowingly not discovered: the service CIDR (the
oracle does not use it; only the lab routes it).
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from netiso.backends.kube.client import Kube
from netiso.backends.kube.naming import RunNames
from netiso.backends.kube.preflight import EXCLUDE_LB_LABEL, ClusterNode
from netiso.model.types import ClusterFacts, Topology

TUNNEL_ANNOTATIONS = {
    "ipip": "projectcalico.org/IPv4IPIPTunnelAddr",
    "vxlan": "projectcalico.org/IPv4VXLANTunnelAddr",
}
NODE_ADDRESS_ANNOTATION = "projectcalico.org/IPv4Address"
CALICO_V1 = "crd.projectcalico.org/v1"


@dataclass
class Snapshot:
    """The objects discovery reads, fetched once (so that mapping them is a pure function)."""

    nodes: dict[str, ClusterNode]
    pods: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (namespace, name) -> Pod
    services: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    affinities: list[dict[str, Any]] = field(default_factory=list)
    dns: dict[str, Any] | None = None


def snapshot(kube: Kube, topo: Topology, names: RunNames, nodes: Mapping[str, ClusterNode],
             calico_api: str = CALICO_V1) -> Snapshot:
    """List the run's pods and Services, Calico's block affinities (in ``calico_api``) and kube-dns."""
    snap = Snapshot(nodes=dict(nodes))
    for project in topo.namespaces:
        ns = names.namespace(project)
        for pod in kube.list("v1", "Pod", ns, label_selector=names.selector):
            snap.pods[(ns, pod["metadata"]["name"])] = pod
        for svc in kube.list("v1", "Service", ns, label_selector=names.selector):
            snap.services[(ns, svc["metadata"]["name"])] = svc
    snap.affinities = kube.list(calico_api, "BlockAffinity")
    snap.dns = kube.get("v1", "Service", "kube-dns", "kube-system")
    return snap


def lb_ip(svc: Mapping[str, Any]) -> str | None:
    """The first LoadBalancer ingress IP of a Service (None while pending)."""
    for entry in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
        if entry.get("ip"):
            return str(entry["ip"])
    return None


def facts_from(snap: Snapshot, topo: Topology, names: RunNames, node_map: Mapping[str, str],
               pool: Mapping[str, Any] | None, client_ips: Mapping[str, str]) -> ClusterFacts:
    """Map a snapshot to ClusterFacts (scenario names and symbols as keys)."""
    node_ips: dict[str, str] = {}
    tunnels: dict[str, str | None] = {}
    excluded: dict[str, bool] = {}
    annotation = TUNNEL_ANNOTATIONS.get(topo.encapsulation)
    for scenario_node, cluster_node in node_map.items():
        node = snap.nodes[cluster_node]
        if node.internal_ip:
            node_ips[scenario_node] = node.internal_ip
        tunnels[scenario_node] = node.annotations.get(annotation) if annotation else None
        excluded[scenario_node] = EXCLUDE_LB_LABEL in node.labels

    pod_ips: dict[str, str] = {}
    for pod in topo.pods:
        obj = snap.pods.get((names.namespace(pod.project), names.pod_name(pod)))
        ip = ((obj or {}).get("status") or {}).get("podIP")
        if ip:
            pod_ips[pod.symbol] = str(ip)

    blocks = {n: b for n in node_map if (b := _block(snap, node_map[n], tunnels.get(n),
                                                       [ip for p in topo.pods if p.node == n
                                                        and (ip := pod_ips.get(p.symbol))]))}

    cluster_ips: dict[str, str] = {}
    node_ports: dict[str, int] = {}
    hc_ports: dict[str, int] = {}
    vips: dict[str, str] = {}
    for svc in topo.services.values():
        obj = snap.services.get((names.namespace(svc.project), svc.name))
        if obj is None:
            continue
        spec = obj.get("spec") or {}
        if spec.get("clusterIP") and spec["clusterIP"] != "None":
            cluster_ips[svc.key] = str(spec["clusterIP"])
        for port in spec.get("ports") or []:
            if port.get("nodePort"):
                node_ports[f"{svc.key} {port['port']}/{port.get('protocol', 'TCP')}"] = int(port["nodePort"])
        if spec.get("healthCheckNodePort"):
            hc_ports[svc.key] = int(spec["healthCheckNodePort"])
        vip = lb_ip(obj)
        if vip:
            vips[svc.key] = vip

    dns_ip = ((snap.dns or {}).get("spec") or {}).get("clusterIP")
    return ClusterFacts(
        node_names=dict(node_map), node_ips=node_ips, tunnel_ips=tunnels, lb_excluded=excluded, blocks=blocks,
        client_ips=dict(client_ips), pod_ips=pod_ips, cluster_ips=cluster_ips, node_ports=node_ports,
        health_check_node_ports=hc_ports, lb_ips=vips, dns_ip=str(dns_ip) if dns_ip else None,
        node_network=node_network([snap.nodes[c] for c in node_map.values()]),
        pod_network=str((pool or {}).get("spec", {}).get("cidr") or "") or None,
    )


def _block(snap: Snapshot, cluster_node: str, tunnel: str | None, pod_ips: list[str]) -> str | None:
    """The node's affine block: the one holding its pods (or its tunnel address), else the first; podCIDR last."""
    mine = []
    for aff in snap.affinities:
        spec = aff.get("spec") or {}
        if spec.get("node") != cluster_node or spec.get("state", "confirmed") not in ("confirmed", ""):
            continue
        try:
            mine.append(ipaddress.ip_network(str(spec.get("cidr")), strict=False))
        except ValueError:
            continue
    mine = sorted((b for b in mine if b.version == 4), key=lambda b: (int(b.network_address), b.prefixlen))
    for wanted in [*pod_ips, *([tunnel] if tunnel else [])]:
        addr = ipaddress.ip_address(wanted)
        for block in mine:
            if addr in block:
                return str(block)
    if mine:
        return str(mine[0])
    return snap.nodes[cluster_node].pod_cidr


def node_network(nodes: list[ClusterNode]) -> str | None:
    """The node network: Calico's interface annotation (ip/prefix), else the smallest /24-or-wider net of all node IPs."""
    for node in nodes:
        text = node.annotations.get(NODE_ADDRESS_ANNOTATION)
        if text and "/" in text:
            try:
                return str(ipaddress.ip_interface(text).network)
            except ValueError:
                pass
    ips = [ipaddress.ip_address(n.internal_ip) for n in nodes if n.internal_ip]
    if not ips:
        return None
    net = ipaddress.ip_network(f"{ips[0]}/24", strict=False)
    while not all(ip in net for ip in ips):
        net = net.supernet()
    return str(net)


def discover(kube: Kube, topo: Topology, names: RunNames, node_map: Mapping[str, str],
             nodes: Mapping[str, ClusterNode], pool: Mapping[str, Any] | None,
             client_ips: Mapping[str, str]) -> ClusterFacts:
    """Read the cluster and return the facts of ``topo``'s realization (nodes re-read: annotations may be new)."""
    fresh = {n: ClusterNode.of(o) for n in set(node_map.values())
             if (o := kube.get("v1", "Node", n)) is not None}
    merged = {**nodes, **fresh}
    calico_api = str((pool or {}).get("apiVersion") or CALICO_V1)  # the group preflight read the pool from
    return facts_from(snapshot(kube, topo, names, merged, calico_api), topo, names, node_map, pool, client_ips)


OPENELB_SPEAKERS = "app=openelb,component=speaker"
_OPENELB_WINS = re.compile(r"(?:\[(?P<a>[^\]\s]+)\]|node (?P<b>\S+)) wins the right to announce the IP address (?P<ip>\S+)")


def openelb_winner(log: str, vip: str) -> str | None:
    """The node a speaker's log last named as the announcer of ``vip`` (None if it never did).

    >>> line = "I0101 memberlist.go:110] [kind-worker] wins the right to announce the IP address 172.18.255.200"
    >>> openelb_winner(line, "172.18.255.200"), openelb_winner(line, "172.18.255.201")
    ('kind-worker', None)
    """
    winner = None
    for match in _OPENELB_WINS.finditer(log):
        if match.group("ip") == vip:
            winner = match.group("a") or match.group("b")
    return winner


def openelb_announcer(kube: Kube, vip: str) -> str | None:
    """The cluster node OpenELB's speakers elected for ``vip``, from their logs (majority of their latest lines)."""
    votes: Counter[str] = Counter()
    for pod in kube.list("v1", "Pod", label_selector=OPENELB_SPEAKERS):
        meta = pod.get("metadata") or {}
        winner = openelb_winner(kube.pod_log(meta.get("namespace", ""), meta.get("name", "")), vip)
        if winner:
            votes[winner] += 1
    return votes.most_common(1)[0][0] if votes else None
