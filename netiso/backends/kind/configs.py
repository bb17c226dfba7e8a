"""kind cluster configs: one per encapsulation, rendered per group, named by what they contain.

Why a hash in the name: ``kind create cluster`` refuses a name that exists, and every wrapper
that "reuses" a cluster (pytest-kind-ng's ``create()``) reuses it *whatever its config*. netiso
names a cluster ``netiso-<enc>-<lb>-<hash8>`` where the hash covers the rendered kind config and
the sha256 of every add-on manifest the group installs (plus the version of netiso's own
overlays), so ``--keep-cluster`` reuses a cluster only when it is the very same cluster: change
a vendored manifest, the node image or the node count and the next run builds a new one.

Mirrors ``kind.x-k8s.io/v1alpha4`` (kubernetes-sigs/kind ``pkg/apis/config/v1alpha4/types.go``):
``networking.{disableDefaultCNI, podSubnet, serviceSubnet, kubeProxyMode}`` and
``nodes[].{role, image, labels}``. The files live in ``cluster-configs/kind/<enc>.yaml``.

Scenario groups: a scenario runs on the cluster of its ``(encapsulation, loadBalancer)``;
``loadBalancer: none`` scenarios ride with ``metallb`` (an unused pool changes nothing for them),
so a full run needs six clusters, plus one per distinct cluster-wide setting a scenario asks for
(kube-proxy's configuration, Felix's ``defaultEndpointToHostAction``, the pool's ``natOutgoing``).

>>> group_key_of("vxlan", "none")
('vxlan', 'metallb')
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from netiso.model.cluster_groups import (  # noqa: F401 - re-exported: the kind backend's vocabulary
    GROUP_SETTINGS,
    calico_tag,
    cluster_settings_tag,
    in_cluster_group,
    parse_group,
    proxy_tag,
    settings_tag,
)
from netiso.model.types import ClusterSpec, KubeProxySpec, Topology

REPO_ROOT = Path(__file__).resolve().parents[3]
KIND_CONFIG_DIR = REPO_ROOT / "cluster-configs" / "kind"

ENCAPSULATIONS: tuple[str, ...] = ("direct", "ipip", "vxlan")
LOAD_BALANCERS: tuple[str, ...] = ("metallb", "openelb")
GROUPS: tuple[tuple[str, str], ...] = tuple((e, lb) for e in ENCAPSULATIONS for lb in LOAD_BALANCERS)

KIND_VERSION = "v0.32.0"
# kubernetes-sigs/kind@v0.32.0 pkg/apis/config/defaults/image.go (const Image).
NODE_IMAGE = "kindest/node:v1.36.1@sha256:3489c7674813ba5d8b1a9977baea8a6e553784dab7b84759d1014dbd78f7ebd5"
OVERLAY_VERSION = "1"  # bump when the add-on overlays in addons.py change what is installed
ENCAPSULATION_LABEL = "netiso.io/encapsulation"


def group_key_of(encapsulation: str, load_balancer: str) -> tuple[str, str]:
    """The (encapsulation, load balancer) cluster a scenario runs on (``none`` -> metallb)."""
    if encapsulation not in ENCAPSULATIONS:
        raise ValueError(f"encapsulation {encapsulation!r} is not one of {', '.join(ENCAPSULATIONS)}")
    lb = "metallb" if load_balancer == "none" else load_balancer
    if lb not in LOAD_BALANCERS:
        raise ValueError(f"loadBalancer {load_balancer!r} is not one of metallb, openelb, none")
    return encapsulation, lb


def group_of(topo: Topology) -> tuple[str, ...]:
    """The cluster a scenario runs on: (encapsulation, load balancer), plus a tag of its
    kube-proxy and Calico settings when ``cluster.kubeProxy`` is not kubeadm's default (the
    install plan's kube-proxy step, ``addons.KubeProxySettings``) or ``cluster.felix`` /
    ``cluster.natOutgoing`` are not calico.yaml's (calico-node's env, ``addons.calico_manifest``):
    a cluster of its own either way, since both are cluster-wide."""
    tag = cluster_settings_tag(topo.scenario.cluster)
    return group_key_of(topo.encapsulation, topo.load_balancer) + ((tag,) if tag else ())


@dataclass(frozen=True)
class Group:
    """The scenarios of one cluster and what the cluster must offer them."""

    encapsulation: str
    load_balancer: str
    topos: tuple[Topology, ...] = ()
    kube_proxy: KubeProxySpec = field(default_factory=KubeProxySpec)
    endpoint_to_host: str = "ACCEPT"  # calico-node's FELIX_DEFAULTENDPOINTTOHOSTACTION
    nat_outgoing: bool = True  # the IPv4 pool's natOutgoing (CALICO_IPV4POOL_NAT_OUTGOING)

    @property
    def calico_tag(self) -> str:
        return calico_tag(self.endpoint_to_host, self.nat_outgoing)

    @property
    def key(self) -> tuple[str, ...]:
        tag = settings_tag(self.kube_proxy, self.calico_tag)
        return (self.encapsulation, self.load_balancer) + ((tag,) if tag else ())

    @property
    def label(self) -> str:
        parts = [f"kube-proxy {t}" for t in (proxy_tag(self.kube_proxy),) if t]
        parts += [f"calico {t}" for t in (self.calico_tag,) if t]
        return f"{self.encapsulation}/{self.load_balancer}" + (f" ({'; '.join(parts)})" if parts else "")

    @property
    def scenario_nodes(self) -> tuple[str, ...]:
        """The longest node list of the group's scenarios (all share the default three today)."""
        lists = [tuple(t.nodes) for t in self.topos] or [("control-plane", "worker", "worker2")]
        return max(lists, key=len)

    @property
    def workers(self) -> int:
        return max(2, len(self.scenario_nodes) - 1)

    @property
    def clients(self) -> tuple[str, ...]:
        """Every ``client:`` name of the group, in first-seen order."""
        return tuple(dict.fromkeys(c for t in self.topos for c in t.clients))


def group_topologies(topos: Iterable[Topology]) -> list[Group]:
    """Scenarios grouped by cluster, groups in the fixed order of :data:`GROUPS`."""
    by_key: dict[tuple[str, ...], list[Topology]] = {}
    for topo in topos:
        by_key.setdefault(group_of(topo), []).append(topo)
    order = {g: i for i, g in enumerate(GROUPS)}
    keys = sorted(by_key, key=lambda k: (order[(k[0], k[1])], k[2:]))
    return [_group(k, tuple(by_key[k]), by_key[k][0].scenario.cluster) for k in keys]


def _group(key: tuple[str, ...], topos: tuple[Topology, ...], cluster: ClusterSpec) -> Group:
    return Group(key[0], key[1], topos, cluster.kubeProxy, cluster.felix.defaultEndpointToHostAction,
                 cluster.natOutgoing)


def group_checksums(group: Group) -> dict[str, str]:
    """What the cluster name's hash covers besides the kind config: the add-ons' checksums and,
    for a kube-proxy or Calico settings group, those settings (two groups differing only there are two clusters)."""
    from netiso.backends.kind.addons import addon_checksums

    sums = dict(addon_checksums(group.load_balancer))
    tag = proxy_tag(group.kube_proxy)
    if tag:
        sums["kube-proxy settings"] = tag
    if group.calico_tag:
        sums["calico settings"] = group.calico_tag
    return sums


def all_groups() -> list[Group]:
    """The six (encapsulation, load balancer) groups without scenarios (dry-run of everything)."""
    return [Group(e, lb) for e, lb in GROUPS]


def load_config(encapsulation: str, config_dir: Path = KIND_CONFIG_DIR) -> dict[str, Any]:
    """The checked-in kind config of ``encapsulation`` as a mapping."""
    if encapsulation not in ENCAPSULATIONS:
        raise ValueError(f"no kind config for encapsulation {encapsulation!r}")
    data = yaml.safe_load((config_dir / f"{encapsulation}.yaml").read_text())
    if not isinstance(data, dict) or data.get("kind") != "Cluster":
        raise ValueError(f"{config_dir / (encapsulation + '.yaml')}: not a kind Cluster config")
    return data


def render_config(
    encapsulation: str,
    workers: int = 2,
    image_registry: str | None = None,
    config_dir: Path = KIND_CONFIG_DIR,
) -> str:
    """The kind config to create the cluster with: ``workers`` worker nodes, mirrored node image.

    The first worker entry of the file is the template for extra workers.
    """
    from netiso.backends.kind.images import mirror_reference

    data = load_config(encapsulation, config_dir)
    nodes: list[dict[str, Any]] = list(data.get("nodes") or [])
    control = [n for n in nodes if n.get("role") == "control-plane"]
    worker_nodes = [n for n in nodes if n.get("role") == "worker"]
    if len(control) != 1 or not worker_nodes:
        raise ValueError(f"kind config {encapsulation}: needs one control-plane and at least one worker")
    template = worker_nodes[0]
    worker_nodes = (worker_nodes + [copy.deepcopy(template) for _ in range(workers)])[:workers]
    for node in [*control, *worker_nodes]:
        node["image"] = mirror_reference(node.get("image") or NODE_IMAGE, image_registry)
    data["nodes"] = [*control, *worker_nodes]
    return yaml.safe_dump(data, sort_keys=False)


def pod_subnet(rendered: str) -> str:
    """The ``networking.podSubnet`` of a rendered config (the Calico IPv4 pool)."""
    return str(yaml.safe_load(rendered)["networking"]["podSubnet"])


def config_hash(rendered: str, addon_checksums: Mapping[str, str] | Sequence[str]) -> str:
    """8 hex digits of sha256 over the rendered config, the add-on checksums and the overlay version.

    >>> config_hash("kind: Cluster\\n", ["ab"]) == config_hash("kind: Cluster\\n", ["ab"])
    True
    >>> config_hash("kind: Cluster\\n", ["ab"]) == config_hash("kind: Cluster\\n", ["cd"])
    False
    """
    if isinstance(addon_checksums, Mapping):
        sums = sorted(f"{k}={v}" for k, v in addon_checksums.items())
    else:
        sums = list(addon_checksums)
    digest = hashlib.sha256()
    digest.update(rendered.encode())
    for line in [f"overlay={OVERLAY_VERSION}", *sums]:
        digest.update(b"\n" + line.encode())
    return digest.hexdigest()[:8]


def cluster_name(encapsulation: str, load_balancer: str, rendered: str, addon_checksums: Mapping[str, str]) -> str:
    """``netiso-<enc>-<lb>-<hash8>`` (at most 31 characters: kind node names stay short).

    >>> cluster_name("ipip", "openelb", "kind: Cluster\\n", {}).startswith("netiso-ipip-openelb-")
    True
    """
    return f"netiso-{encapsulation}-{load_balancer}-{config_hash(rendered, addon_checksums)}"


def kind_node_names(name: str, workers: int) -> list[str]:
    """The node names kind gives a cluster: ``N-control-plane``, ``N-worker``, ``N-worker2``, ...

    >>> kind_node_names("c", 2)
    ['c-control-plane', 'c-worker', 'c-worker2']
    """
    return [f"{name}-control-plane"] + [f"{name}-worker{'' if i == 1 else i}" for i in range(1, workers + 1)]


def node_map(scenario_nodes: Sequence[str], name: str, workers: int) -> dict[str, str]:
    """Scenario node -> kind node, in order (the first scenario node is the control-plane).

    >>> node_map(["control-plane", "worker", "worker2"], "c", 2)["worker2"]
    'c-worker2'
    """
    return dict(zip(scenario_nodes, kind_node_names(name, workers), strict=False))
