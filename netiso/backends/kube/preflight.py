"""Everything that would stop a run on this cluster, found before anything is created.

Each check reads the cluster the way an operator would check it by hand, and a failure is one
:class:`BackendUnavailable` sentence (exit 2) naming what was found and what netiso needs:

* access: one SelfSubjectAccessReview per verb/resource netiso uses (``kubectl auth can-i``),
  the missing ones listed together (the grant is ``cluster-configs/kube/rbac.yaml``);
* kube-proxy mode: ConfigMap ``kube-system/kube-proxy`` key ``config.conf`` (the
  KubeProxyConfiguration kubeadm and kind write; ``mode: ""`` means iptables on Linux,
  k8s.io/kubernetes pkg/proxy/apis/config). ipvs/nftables are refused unless ``--profile``
  names a profile the oracle has (``netiso.oracle.profile.PROFILES``): the oracle predicts
  iptables' DNAT/SNAT, not the others';
* not KubeSphere: netiso writes the ``nsnp-network-isolate`` NetworkPolicies and the
  ``kubesphere.io/network-isolate`` annotation KubeSphere's own controller owns
  (kubesphere pkg/controller/network/nsnetworkpolicy); on a KubeSphere cluster that controller
  would rewrite or delete them mid-run, so such a cluster is refused (:func:`check_not_kubesphere`).
  With ``--kubesphere controller`` it is the other way round: KubeSphere 3.3/3.4 with network
  isolation enabled is required (kubesphere_controller.check), and its controller writes them;
* CNI: Calico's IPPools, read from the API group discovery says serves them
  (:func:`calico_api`): ``projectcalico.org/v3`` (Calico v3.32's native v3 CRDs,
  manifests/v3_projectcalico_org.yaml; or the aggregated Calico API server, which serves the same
  objects) first, else ``crd.projectcalico.org/v1`` (the classic manifests' CRDs, the
  Kubernetes-datastore backing of v3; libcalico-go api/pkg/apis/projectcalico/v3/ippool.go: both
  carry the same spec): an enabled IPv4 pool whose ``ipipMode``/``vxlanMode`` (default ``Never``) equal what the
  scenario's encapsulation needs (direct: Never/Never; ipip: Always/Never; vxlan: Never/Always).
  ``CrossSubnet`` encapsulates only between subnets, which netiso does not predict; that pool's
  ``natOutgoing`` must be the scenario's ``cluster.natOutgoing`` (:func:`check_nat_outgoing`);
* load balancer: MetalLB ``metallb.io/v1beta1`` IPAddressPools, OpenELB
  ``network.kubesphere.io/v1alpha2`` Eips (the default one, annotation
  ``eip.openelb.kubesphere.io/is-default-eip``, preferred), only for scenarios with a
  LoadBalancer Service; the address ranges of the pool used (the first auto-assigning
  IPAddressPool by name, ``spec.addresses``; the Eip's ``spec.address``) are kept, so that
  realization can request VIPs that elect the scenario's planned node (vips.py);
* nodes: Ready and not cordoned; the node map (``--node-map scenario=cluster``; unmapped
  scenario nodes take the remaining nodes, control-plane role first, then workers by name);
* clients: ``client:NAME`` endpoints without ``--client NAME=COMMAND`` are reported (their flows
  become ``skipped``), never an error;
* namespaces in the way: a namespace netiso wants that exists without this run's label is a
  refusal: netiso never adopts or deletes what it did not create.

* Felix: ``defaultEndpointToHostAction`` on every node a scenario maps to is the scenario's
  ``cluster.felix`` (felix_settings.py: calico-node's environment first, then the
  FelixConfigurations ``node.<name>``, selector-scoped, ``default``, then Felix's built-in DROP,
  as Felix resolves it).

Knowingly not checked here (a live cluster shows them during realize): admission policies
that reject hostNetwork/privileged pods (Pod Security is set ``privileged`` on the run's
system namespace only), image pull access, NetworkPolicy enforcement actually being on.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from netiso.backends.base import BackendOptions, BackendUnavailable
from netiso.backends.kube import kubesphere_controller
from netiso.backends.kube.access import ACCESS, CALICO_ACCESS, KUBESPHERE_ACCESS, LB_ACCESS, Access
from netiso.backends.kube.client import Kube, KubeApiError
from netiso.backends.kube.felix_settings import Setting, check_felix_settings
from netiso.backends.kube.naming import RUN_LABEL, RunNames
from netiso.backends.kube.proxy_settings import check_proxy_settings
from netiso.model.symbols import parse_endpoint
from netiso.model.types import Topology
from netiso.oracle.profile import PROFILES

CONTROL_PLANE_LABELS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")
EXCLUDE_LB_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
OPENELB_DEFAULT_EIP = "eip.openelb.kubesphere.io/is-default-eip"
PREDICTED_PROXY_MODES = ("", "iptables")
CALICO_APIS = ("projectcalico.org/v3", "crd.projectcalico.org/v1")  # preference order (see calico_api)
KUBESPHERE_NAMESPACE = "kubesphere-system"
WANTED_MODES = {"direct": ("Never", "Never"), "ipip": ("Always", "Never"), "vxlan": ("Never", "Always")}


@dataclass(frozen=True)
class ClusterNode:
    """What netiso reads of a Node (and keeps for discovery)."""

    name: str
    internal_ip: str | None
    control_plane: bool
    ready: bool
    schedulable: bool
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    pod_cidr: str | None

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> ClusterNode:
        meta = obj.get("metadata") or {}
        labels = dict(meta.get("labels") or {})
        status = obj.get("status") or {}
        spec = obj.get("spec") or {}
        ip = next((a.get("address") for a in status.get("addresses") or [] if a.get("type") == "InternalIP"), None)
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
        return cls(name=meta["name"], internal_ip=ip, control_plane=any(k in labels for k in CONTROL_PLANE_LABELS),
                   ready=ready, schedulable=not spec.get("unschedulable", False), labels=labels,
                   annotations=dict(meta.get("annotations") or {}), pod_cidr=spec.get("podCIDR"))

    @property
    def usable(self) -> bool:
        return self.ready and self.schedulable


@dataclass
class Findings:
    """What preflight found: the facts realize and discovery build on."""

    proxy_mode: str = ""
    pools: dict[str, dict[str, Any]] = field(default_factory=dict)  # scenario -> the matching IPPool
    metallb_pool: str | None = None
    openelb_eip: str | None = None
    # the address ranges VIPs are requested from (vips.choose_vips): the MetalLB pools or the Eip
    lb_ranges: list[str] = field(default_factory=list)
    lb_pool_label: str = ""  # "IPAddressPool metallb-system/NAME" / "Eip NAME": named in skip reasons
    lb_avoid_buggy: bool = False  # MetalLB avoidBuggyIPs: never .0 / .255
    nodes: dict[str, ClusterNode] = field(default_factory=dict)  # cluster node name -> node
    node_maps: dict[str, dict[str, str]] = field(default_factory=dict)  # scenario -> {scenario node: cluster node}
    unmapped_clients: dict[str, list[str]] = field(default_factory=dict)  # scenario -> client names
    notes: list[str] = field(default_factory=list)
    kubesphere: kubesphere_controller.KubeSphereInfo | None = None  # --kubesphere controller: the cluster's
    felix: dict[str, Setting] = field(default_factory=dict)  # cluster node -> Felix's defaultEndpointToHostAction


# --------------------------------------------------------------------------- the checks


def check_access(kube: Kube, needed: Sequence[Access] = ACCESS) -> None:
    """Every permission in ``needed`` (SelfSubjectAccessReview); one refusal naming all missing."""
    missing = [a for a in needed if not kube.can_i(a.verb, a.resource, a.group, subresource=a.sub)[0]]
    if missing:
        who = f"context {kube.target.context!r}"
        raise BackendUnavailable(
            f"{who} is not allowed to: {', '.join(str(a) for a in missing)} (SelfSubjectAccessReview); "
            "grant netiso the role in cluster-configs/kube/rbac.yaml")


def check_proxy_mode(kube: Kube, profile: str | None) -> str:
    """kube-proxy's mode from its ConfigMap; returns it (``iptables`` for the empty default)."""
    if profile is not None and profile not in PROFILES:
        raise BackendUnavailable(f"--profile {profile!r} is not a profile netiso predicts (known: {', '.join(PROFILES)})")
    cm = kube.get("v1", "ConfigMap", "kube-proxy", "kube-system")
    if cm is None:
        if profile is not None:
            return "asserted by --profile"
        raise BackendUnavailable(
            "cannot tell kube-proxy's mode: ConfigMap kube-system/kube-proxy does not exist (kube-proxy not "
            "installed by kubeadm/kind, or replaced by the CNI). netiso predicts kube-proxy in iptables mode; if "
            f"this cluster behaves like that, assert it with --profile {next(iter(PROFILES))}")
    text = (cm.get("data") or {}).get("config.conf")
    try:
        conf = yaml.safe_load(text) if text else None
    except yaml.YAMLError as exc:
        raise BackendUnavailable(f"ConfigMap kube-system/kube-proxy: config.conf is not YAML ({exc})") from None
    if not isinstance(conf, dict):
        raise BackendUnavailable("ConfigMap kube-system/kube-proxy has no config.conf (KubeProxyConfiguration); "
                                 f"assert the mode with --profile {next(iter(PROFILES))}")
    mode = str(conf.get("mode") or "")
    if mode in PREDICTED_PROXY_MODES:
        return mode or "iptables"
    if profile is not None:
        return mode
    raise BackendUnavailable(
        f"kube-proxy runs in {mode!r} mode (ConfigMap kube-system/kube-proxy, config.conf); netiso predicts the "
        f"iptables mode only. Run on an iptables cluster, or pass --profile {next(iter(PROFILES))} to compare "
        "against the iptables predictions anyway")


def _modes(pool: Mapping[str, Any]) -> tuple[str, str]:
    spec = pool.get("spec") or {}
    return str(spec.get("ipipMode") or "Never"), str(spec.get("vxlanMode") or "Never")


def served(kube: Kube, api_version: str) -> set[str] | None:
    """The resources discovery lists under ``/apis/<api_version>`` (None when the group version is not served).

    Discovery is readable by every authenticated user (system:discovery), so it needs no grant.
    A 503 is an aggregated API server that is down: not served, as far as netiso can use it.
    """
    try:
        answer = kube.request("GET", f"/apis/{api_version}", what=f"read API discovery of {api_version}")
    except KubeApiError as exc:
        if exc.status in (404, 503):
            return None
        raise
    return {str(r.get("name")) for r in (answer or {}).get("resources") or []}


def served_groups(kube: Kube) -> dict[str, list[str]]:
    """``/apis``: API group -> the versions the server serves (discovery, no grant needed)."""
    answer = kube.request("GET", "/apis", what="read API discovery (/apis)") or {}
    return {str(g.get("name")): [str(v.get("groupVersion")) for v in g.get("versions") or []]
            for g in answer.get("groups") or []}


def calico_api(kube: Kube) -> str:
    """The apiVersion Calico's IPPools and BlockAffinities are read from; refusal when neither is served.

    ``projectcalico.org/v3`` wins when it serves both kinds: with native v3 CRDs it is the only
    live copy (a migrated cluster may keep stale ``crd.projectcalico.org/v1`` objects), and the
    aggregated API server serves there the very objects it stores in v1.
    """
    for api in CALICO_APIS:
        if {"ippools", "blockaffinities"} <= (served(kube, api) or set()):
            return api
    raise BackendUnavailable(
        f"Calico is not installed (the API serves IPPools and BlockAffinities in neither {' nor '.join(CALICO_APIS)}): "
        "netiso predicts Calico's datapath and needs it as the CNI")


def check_not_kubesphere(kube: Kube, groups: Mapping[str, Sequence[str]]) -> None:
    """Refuse a cluster that runs KubeSphere: its controller owns the policies netiso writes.

    Signs (any one): the ``tenant.kubesphere.io`` group (workspaces, KubeSphere's tenancy), a
    ``network.kubesphere.io`` version serving ``namespacenetworkpolicies`` (KubeSphere's network
    isolation; OpenELB shares the group for its Eips, so the group alone is no sign), the
    ``kubesphere-system`` namespace (where ks-controller-manager runs).
    """
    signs = []
    if "tenant.kubesphere.io" in groups:
        signs.append("API group tenant.kubesphere.io (workspaces)")
    for api in groups.get("network.kubesphere.io", ()):
        if "namespacenetworkpolicies" in (served(kube, api) or set()):
            signs.append(f"{api} NamespaceNetworkPolicies")
            break
    if kube.get("v1", "Namespace", KUBESPHERE_NAMESPACE) is not None:
        signs.append(f"namespace {KUBESPHERE_NAMESPACE} (ks-controller-manager)")
    if signs:
        raise BackendUnavailable(
            f"this cluster runs KubeSphere ({'; '.join(signs)}): netiso writes the nsnp-network-isolate "
            "NetworkPolicies and the kubesphere.io/network-isolate annotation itself, as KubeSphere would, and "
            "KubeSphere's own controller (ks-controller-manager) owns those names and would rewrite or delete them "
            "mid-run, so the results would measure the two fighting. Run netiso on a cluster without KubeSphere, or "
            "pass --kubesphere controller to let KubeSphere's controller write them (KubeSphere 3.3/3.4 with "
            "network isolation enabled)")


def _list_installed(kube: Kube, api_version: str, kind: str, missing: str) -> list[dict[str, Any]]:
    """Every ``kind`` object, or refusal ``missing`` when the API does not serve the kind (its add-on is absent)."""
    try:
        return kube.list(api_version, kind)
    except KubeApiError as exc:
        if exc.status == 404:
            raise BackendUnavailable(missing) from None
        raise


def ipv4_pools(kube: Kube, api_version: str = CALICO_APIS[-1]) -> list[dict[str, Any]]:
    """Enabled IPv4 Calico IPPools of ``api_version`` (calico_api), by name; refusal when there are none."""
    pools = _list_installed(kube, api_version, "IPPool",
                            f"Calico is not installed (the API has no {api_version} IPPools): netiso "
                            "predicts Calico's datapath and needs it as the CNI")
    usable = []
    for pool in sorted(pools, key=lambda p: p["metadata"]["name"]):
        spec = pool.get("spec") or {}
        try:
            v4 = ipaddress.ip_network(str(spec.get("cidr")), strict=False).version == 4
        except ValueError:
            continue
        if v4 and not spec.get("disabled", False):
            usable.append(pool)
    if not usable:
        raise BackendUnavailable(f"Calico has no enabled IPv4 IPPool ({api_version} ippools): nowhere for "
                                 "pod addresses to come from")
    return usable


def check_pool(pools: Sequence[Mapping[str, Any]], topo: Topology) -> dict[str, Any]:
    """The IPPool matching ``topo``'s encapsulation, or a refusal naming each pool and both values."""
    want_ipip, want_vxlan = WANTED_MODES[topo.encapsulation]
    for pool in pools:
        if _modes(pool) == (want_ipip, want_vxlan):
            check_nat_outgoing(pool, topo)
            return dict(pool)
    found = "; ".join(f"IPPool {p['metadata']['name']} has ipipMode {_modes(p)[0]}, vxlanMode {_modes(p)[1]}"
                      for p in pools)
    cross = any("CrossSubnet" in _modes(p) for p in pools)
    note = (" (CrossSubnet encapsulates only between subnets, which netiso does not predict: use Always or Never)"
            if cross else "")
    raise BackendUnavailable(
        f"scenario {topo.name!r} wants encapsulation {topo.encapsulation} (ipipMode {want_ipip}, vxlanMode "
        f"{want_vxlan}), but {found}{note}; run scenarios of the cluster's mode, or change the pool")


def check_nat_outgoing(pool: Mapping[str, Any], topo: Topology) -> None:
    """The pool's ``natOutgoing`` (absent = false, libcalico-go ippool.go) is the scenario's ``cluster.natOutgoing``:
    the oracle predicts a pod's source outside the cluster from it (node address, or the pod IP)."""
    have = bool((pool.get("spec") or {}).get("natOutgoing", False))
    want = topo.scenario.cluster.natOutgoing
    if have != want:
        raise BackendUnavailable(
            f"scenario {topo.name!r} says cluster.natOutgoing {str(want).lower()}, but IPPool "
            f"{pool['metadata']['name']} has natOutgoing {str(have).lower()}; set cluster.natOutgoing to the "
            "pool's value in the scenario, or change the pool")


def needs_lb(topo: Topology) -> bool:
    return any(s.type == "LoadBalancer" for s in topo.services.values())


def check_load_balancer(kube: Kube, impl: str, findings: Findings) -> None:
    """The scenario's LoadBalancer implementation is installed and has addresses to hand out."""
    if impl == "metallb":
        pools = _list_installed(kube, "metallb.io/v1beta1", "IPAddressPool",
                                "the scenario's loadBalancer is metallb, but MetalLB is not installed "
                                "(no metallb.io/v1beta1 IPAddressPool resource)")
        if not pools:
            raise BackendUnavailable("MetalLB is installed but has no IPAddressPool: LoadBalancer Services would get "
                                     "no address (create one, e.g. on the node network)")
        auto = [p for p in pools if (p.get("spec") or {}).get("autoAssign", True) is not False]
        if not auto:
            findings.metallb_pool = sorted(p["metadata"]["name"] for p in pools)[0]
        chosen = sorted(auto or [p for p in pools if p["metadata"]["name"] == findings.metallb_pool],
                        key=lambda p: p["metadata"]["name"])[:1]
        for pool in chosen:
            spec = pool.get("spec") or {}
            findings.lb_ranges = [str(a) for a in spec.get("addresses") or []]
            findings.lb_avoid_buggy = bool(spec.get("avoidBuggyIPs", False))
            findings.lb_pool_label = (f"IPAddressPool {pool['metadata'].get('namespace', 'metallb-system')}/"
                                      f"{pool['metadata']['name']}")
    elif impl == "openelb":
        eips = _list_installed(kube, "network.kubesphere.io/v1alpha2", "Eip",
                               "the scenario's loadBalancer is openelb, but OpenELB is not installed "
                               "(no network.kubesphere.io/v1alpha2 Eip resource)")
        enabled = sorted((e for e in eips if not (e.get("spec") or {}).get("disable", False)),
                         key=lambda e: e["metadata"]["name"])
        if not enabled:
            raise BackendUnavailable("OpenELB is installed but has no enabled Eip: LoadBalancer Services would get no "
                                     "address")
        default = [e for e in enabled
                   if ((e["metadata"].get("annotations") or {}).get(OPENELB_DEFAULT_EIP) == "true")]
        eip = (default or enabled)[0]
        findings.openelb_eip = eip["metadata"]["name"]
        findings.lb_ranges = [str((eip.get("spec") or {}).get("address") or "")]
        findings.lb_pool_label = f"Eip {findings.openelb_eip}"


def read_nodes(kube: Kube) -> dict[str, ClusterNode]:
    return {n.name: n for n in (ClusterNode.of(o) for o in kube.list("v1", "Node"))}


def default_order(nodes: Mapping[str, ClusterNode]) -> list[str]:
    """Usable cluster nodes in default mapping order: control-plane role first, then by name."""
    usable = [n for n in nodes.values() if n.usable]
    return [n.name for n in sorted(usable, key=lambda n: (not n.control_plane, n.name))]


def map_nodes(topo: Topology, nodes: Mapping[str, ClusterNode], node_map: Mapping[str, str]) -> dict[str, str]:
    """Scenario node -> cluster node for ``topo``: ``--node-map`` entries, the rest in default order."""
    for scenario_node, cluster_node in node_map.items():
        if cluster_node not in nodes:
            raise BackendUnavailable(f"--node-map {scenario_node}={cluster_node}: the cluster has no node "
                                     f"{cluster_node!r} (it has: {', '.join(sorted(nodes)) or 'none'})")
        if not nodes[cluster_node].usable:
            raise BackendUnavailable(f"--node-map {scenario_node}={cluster_node}: node {cluster_node} is not Ready "
                                     "or is cordoned")
    wanted = list(topo.nodes)
    mapping = {n: node_map[n] for n in wanted if n in node_map}
    taken = list(mapping.values())
    dupes = sorted({c for c in taken if taken.count(c) > 1})
    if dupes:
        raise BackendUnavailable(f"--node-map maps several scenario nodes of {topo.name!r} to {', '.join(dupes)}: "
                                 "each scenario node needs a node of its own")
    free = [n for n in default_order(nodes) if n not in taken]
    rest = [n for n in wanted if n not in mapping]
    if len(rest) > len(free):
        usable = len(default_order(nodes))
        raise BackendUnavailable(
            f"scenario {topo.name!r} needs {len(wanted)} nodes ({', '.join(wanted)}), the cluster has {usable} "
            f"Ready schedulable node(s) ({', '.join(default_order(nodes)) or 'none'})"
            + (f" of which {len(taken)} are taken by --node-map" if taken else ""))
    mapping.update(zip(rest, free, strict=False))
    return {n: mapping[n] for n in wanted}


def clients_of(topo: Topology) -> list[str]:
    """Client names that flows of ``topo`` start from or send to, in first-use order."""
    out: list[str] = []
    for flow in topo.scenario.flows:
        for end in (flow.src, flow.dst):
            sym = parse_endpoint(end)
            if sym.kind == "client" and sym.name and sym.name not in out:
                out.append(str(sym.name))
    return out


def check_namespaces(kube: Kube, names: RunNames, topo: Topology) -> None:
    """Refuse when a namespace this run wants exists without this run's label."""
    wanted = [names.system_namespace] + [names.namespace(p) for p in topo.namespaces]
    for ns in wanted:
        obj = kube.get("v1", "Namespace", ns)
        if obj is None:
            continue
        label = ((obj.get("metadata") or {}).get("labels") or {}).get(RUN_LABEL)
        if label != names.run:
            owner = f"it carries {RUN_LABEL}={label}" if label else f"it does not carry the label {RUN_LABEL}={names.run}"
            raise BackendUnavailable(
                f"namespace {ns} already exists and {owner}: netiso never adopts or deletes a namespace it did not "
                "create; delete or rename it, or run again (a new run id picks other names)")


def run_preflight(kube: Kube, topos: Sequence[Topology], options: BackendOptions,
                  names_for: Callable[[Topology], RunNames]) -> Findings:
    """Every check, in the order an operator would look; raises BackendUnavailable on the first failure."""
    findings = Findings()
    try:
        kube.version()
    except KubeApiError as exc:
        raise BackendUnavailable(f"the API server {kube.target.server} answered /version with {exc}") from None
    impls = sorted({t.load_balancer for t in topos if needs_lb(t) and t.load_balancer != "none"})
    calico = calico_api(kube)
    controller = options.kubesphere == "controller"
    check_access(kube, [*ACCESS, *CALICO_ACCESS[calico.split("/")[0]],
                        *(a for impl in impls for a in LB_ACCESS.get(impl, ())),
                        *(KUBESPHERE_ACCESS if controller else ())])
    if controller:  # KubeSphere 3.3/3.4 with network isolation on, or a refusal naming why
        findings.kubesphere = kubesphere_controller.check(kube)
    else:
        check_not_kubesphere(kube, served_groups(kube))
    findings.proxy_mode = check_proxy_mode(kube, options.profile)
    proxy_cm = kube.get("v1", "ConfigMap", "kube-proxy", "kube-system")
    check_proxy_settings(((proxy_cm or {}).get("data") or {}).get("config.conf"), topos)
    pools = ipv4_pools(kube, calico)
    for topo in topos:
        findings.pools[topo.name] = check_pool(pools, topo)
    for impl in impls:
        check_load_balancer(kube, impl, findings)
    findings.nodes = read_nodes(kube)
    for topo in topos:
        findings.node_maps[topo.name] = map_nodes(topo, findings.nodes, options.node_map)
        missing = [c for c in clients_of(topo) if c not in options.clients]
        if missing:
            findings.unmapped_clients[topo.name] = missing
            findings.notes.append(
                f"{topo.name}: no --client mapping for {', '.join('client:' + c for c in missing)}; their flows are "
                "reported skipped (map each with --client NAME='COMMAND PREFIX', e.g. 'docker exec -i c1')")
        check_names(topo, names_for(topo), findings.node_maps[topo.name])
        check_namespaces(kube, names_for(topo), topo)
    findings.felix = check_felix_settings(kube, calico, topos, findings.node_maps)
    return findings


def check_names(topo: Topology, names: RunNames, node_map: Mapping[str, str]) -> None:
    """Every name the run would create is valid (DNS labels, label values): built here, before anything exists."""
    from netiso.backends.kube import manifests  # the objects themselves decide the names

    target = manifests.KubeTarget(names, node_map)
    try:
        manifests.namespace_objects(topo, target)
        manifests.workload_objects(topo, target)
        manifests.service_objects(topo, target)
        manifests.ingress_objects(topo, target)
    except ValueError as exc:
        raise BackendUnavailable(f"scenario {topo.name!r} cannot be named in a cluster: {exc}") from None
