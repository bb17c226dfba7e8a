"""The objects the kube backend applies for one scenario, phase by phase, as plain dicts.

The kube backend applies "the same objects ``netiso render`` emits", moved into the run's
namespaces: every builder of ``netiso.model.render`` is reused and only what a shared, real
cluster requires is changed here. Phases, in apply order (``PHASES``):

1. ``run``: Namespace ``{run}-netiso`` and the Lease ``netiso-run`` (coordination.k8s.io/v1): the
   run record the janitor reads (holder, renewTime, leaseDurationSeconds: a run whose Lease is
   not renewed in time is finished and may be removed).
2. ``namespaces``: one Namespace per scenario project, ``{run}-{project}``, with the tenancy
   labels rewritten consistently (``kubernetes.io/metadata.name`` and ``kubesphere.io/namespace``
   = the prefixed name, ``kubesphere.io/workspace`` = ``{run}-{workspace}``) so that no real
   namespace of a real KubeSphere cluster ever matches a selector of the run.
3. ``workloads``: agnhost ``netexec`` pods (render's containers: one per port group, TCP and UDP,
   readiness on ``/hostname``) pinned with ``nodeName`` to the mapped cluster node and tolerating
   the control-plane taint; one hostNetwork agnhost ``pause`` pod per scenario node used as a
   flow source (it binds no port on the node); ingress-nginx controllers with their
   ServiceAccount, Role/RoleBinding, ClusterRole/ClusterRoleBinding and the run's IngressClass.
4. ``services``: render's Services in the prefixed namespaces with no ``clusterIP`` and no
   ``nodePort``/``healthCheckNodePort`` (the cluster assigns them; discovery reads them back),
   and the LoadBalancer annotations of the installed implementation.
5. ``policies``: the NetworkPolicies (KubeSphere-generated ``nsnp-*`` and raw ones) rendered from
   the topology *as realized* (ipBlocks hold discovered addresses), so this phase is built
   after discovery by its own function.
6. ``ingresses``: render's Ingresses with ``ingressClassName: netiso-{run}``.

Deliberate differences from what ``netiso render`` / a KubeSphere cluster would hold:

* NamespaceNetworkPolicy CRs are not applied: a plain cluster has no KubeSphere controller; the
  NetworkPolicies it would generate from them (already in ``topology.policies``) are applied.
* A plain cluster has no ``kubesphere.io/namespace`` label on namespaces it did not create, so a
  selector ``kubesphere.io/namespace: kube-system`` (KubeSphere's DNS egress rule) - or any other
  namespace that is not a scenario project - becomes ``kubernetes.io/metadata.name: kube-system``,
  which Kubernetes sets on every namespace: the same namespace is selected.
* ``kubesphere.io/workspace`` values that name no scenario workspace (e.g. KubeKey's
  ``system-workspace``) stay as written and match nothing on a plain cluster.
* The VIP requested (``metallb.io/loadBalancerIPs`` / OpenELB's ``eip.openelb.kubesphere.io/v1alpha1``)
  is not the lab plan's but the one ``vips.choose_vips`` found in the cluster's pool that elects
  the plan's announcing node over the cluster's node names (``KubeTarget.vips``); without one the
  cluster allocates. Discovery reads ``status.loadBalancer`` either way.
* Every ingress controller of the run watches the one IngressClass ``netiso-{run}``; each
  publishes its own Service (flows always enter through the controller they name).

>>> from netiso.model.addressing import resolve
>>> from netiso.model.loader import loads
>>> from netiso.backends.kube.naming import RunNames
>>> topo = resolve(loads("name: t\\nprojects: [{name: demo}]\\n")[0])
>>> target = KubeTarget(RunNames("nx0a1b2c"), {n: "kind-" + n for n in topo.nodes})
>>> [o["metadata"]["name"] for o in namespace_objects(topo, target)]
['nx0a1b2c-demo']
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from netiso.backends.kube import images
from netiso.backends.kube.ingress_nginx import (
    INGRESS_NGINX_LD_PRELOAD,
    INGRESS_NGINX_READINESS,
    INGRESS_NGINX_SECURITY,
    ingress_access,
)
from netiso.backends.kube.naming import LEASE_NAME, RunNames
from netiso.backends.kube.pod_states import shape_pod
from netiso.model import render
from netiso.model.flows import host_servers
from netiso.model.symbols import parse_endpoint
from netiso.model.tenancy import METADATA_NAME_LABEL, NAMESPACE_LABEL, WORKSPACE_LABEL
from netiso.model.types import PodInfo, Port, ServiceInfo, Topology

PHASES: tuple[str, ...] = ("run", "namespaces", "workloads", "services", "policies", "ingresses")

LEASE_SECONDS = 300  # a run renews its Lease well within this; the janitor waits at least this long
ROLE_LABEL = "netiso.io/role"
NODE_LABEL = "netiso.io/node"
SCENARIO_ANNOTATION = "netiso.io/scenario"
NODE_PROBE_CONTAINER = "probe"

METALLB_POOL_ANNOTATION = "metallb.io/address-pool"
# Pod Security Admission (k8s.io/pod-security-admission): a namespace's enforced level. netiso labels
# every namespace it creates with the level its pods need, so a cluster whose AdmissionConfiguration
# default is stricter (restricted) still admits them: agnhost workload pods and ingress-nginx
# controllers comply with "baseline" (no host namespaces, no privileged, no added capability
# beyond the baseline set); the hostNetwork node-probe pods of the run's -netiso namespace need "privileged".
POD_SECURITY_LABEL = "pod-security.kubernetes.io/enforce"
PROJECT_POD_SECURITY = "baseline"
SYSTEM_POD_SECURITY = "privileged"

# kind/kubeadm taint the control-plane NoSchedule; a pod pinned with nodeName bypasses the scheduler,
# but the tolerations say the placement is deliberate (and keep working if the kubelet checks them).
CONTROL_PLANE_TOLERATIONS: tuple[dict[str, str], ...] = (
    {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node-role.kubernetes.io/master", "operator": "Exists", "effect": "NoSchedule"},
)



@dataclass(frozen=True)
class KubeTarget:
    """Where and how a scenario is realized: run names, node map, image registry, LB details.

    ``node_map`` maps every scenario node to a cluster node; ``registry`` is
    ``--image-registry``; ``metallb_pool`` names a MetalLB IPAddressPool to allocate from
    (None: MetalLB's default choice); ``openelb_eip`` names the OpenELB Eip (None: its default Eip);
    ``vips`` maps a LoadBalancer Service (``PROJECT/NAME``) to the VIP it requests (vips.py).
    """

    names: RunNames
    node_map: Mapping[str, str] = field(default_factory=dict)
    registry: str | None = None
    metallb_pool: str | None = None
    openelb_eip: str | None = None
    vips: Mapping[str, str] = field(default_factory=dict)

    def cluster_node(self, node: str) -> str:
        """The cluster node standing for scenario node ``node`` (ValueError naming it if unmapped)."""
        try:
            return self.node_map[node]
        except KeyError:
            known = ", ".join(f"{k}={v}" for k, v in self.node_map.items()) or "empty"
            raise ValueError(f"scenario node {node!r} is not mapped to a cluster node (--node-map: {known})") from None

    def image(self, name: str) -> str:
        return images.image(name, self.registry)


# --------------------------------------------------------------------------- phases


def run_objects(target: KubeTarget, *, holder: str, renew_time: datetime | str,
                lease_seconds: int = LEASE_SECONDS, scenario: str | None = None) -> list[dict[str, Any]]:
    """Phase ``run``: the system Namespace and the run's Lease.

    ``holder`` identifies the process that owns the run (e.g. ``netiso@HOST/PID``); the janitor
    treats the run as finished once ``renewTime + leaseDurationSeconds`` has passed.

    >>> t = KubeTarget(RunNames("nx0a1b2c"))
    >>> lease = run_objects(t, holder="netiso@h/1", renew_time="2026-01-01T00:00:00.000000Z")[1]
    >>> lease["metadata"]["namespace"], lease["spec"]["holderIdentity"]
    ('nx0a1b2c-netiso', 'netiso@h/1')
    """
    names = target.names
    stamp = renew_time if isinstance(renew_time, str) else micro_time(renew_time)
    ns_labels = {
        **names.labels,
        METADATA_NAME_LABEL: names.system_namespace,
        # hostNetwork probe pods live here: allowed under Pod Security Admission only as privileged.
        POD_SECURITY_LABEL: SYSTEM_POD_SECURITY,
    }
    namespace = render.namespace(names.system_namespace, ns_labels, {})
    lease_meta: dict[str, Any] = {"name": LEASE_NAME, "namespace": names.system_namespace, "labels": names.labels}
    if scenario:
        lease_meta["annotations"] = {SCENARIO_ANNOTATION: scenario}
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": lease_meta,
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": lease_seconds,
                 "acquireTime": stamp, "renewTime": stamp},
    }
    return [namespace, lease]


def namespace_objects(topo: Topology, target: KubeTarget) -> list[dict[str, Any]]:
    """Phase ``namespaces``: the scenario's projects as ``{run}-{project}`` with rewritten tenancy labels."""
    names = target.names
    out = []
    for project, labels in topo.namespaces.items():
        ns = names.namespace(project)
        rewritten: dict[str, str] = {}
        for key, value in labels.items():
            if key in (METADATA_NAME_LABEL, NAMESPACE_LABEL):
                rewritten[key] = ns
            elif key == WORKSPACE_LABEL:
                rewritten[key] = names.workspace(value)
            else:
                rewritten[key] = value
        rewritten[METADATA_NAME_LABEL] = ns
        rewritten[POD_SECURITY_LABEL] = PROJECT_POD_SECURITY  # see POD_SECURITY_LABEL
        rewritten.update(names.labels)
        out.append(render.namespace(ns, rewritten, topo.namespace_annotations.get(project, {})))
    return out


def workload_objects(topo: Topology, target: KubeTarget) -> list[dict[str, Any]]:
    """Phase ``workloads``: controller RBAC + IngressClass first (pods need their ServiceAccount),
    then workload pods, node-probe pods and ingress-nginx controller pods."""
    controllers = render.ingress_controllers(topo)
    out: list[dict[str, Any]] = []
    out.extend(ingress_access(controllers, target.names))
    out.extend(_workload_pod(p, target) for p in topo.pods if p.role != "ingress-controller")
    servers = host_servers(topo)
    out.extend(_node_pod(node, target, servers.get(node, ())) for node in source_nodes(topo))
    out.extend(_controller_pod(pod, svc, target) for pod, svc in controllers)
    return out


def service_objects(topo: Topology, target: KubeTarget) -> list[dict[str, Any]]:
    """Phase ``services``: render's Services, prefixed, with cluster-assigned IPs and node ports."""
    controllers = render.ingress_controllers(topo)
    controller_keys = {svc.key for _, svc in controllers}
    ordered = [s for s in topo.services.values() if s.key not in controller_keys and s.role != "ingress-controller"]
    ordered += [svc for _, svc in controllers]
    return [_service(svc, topo.load_balancer, target) for svc in ordered]


def policy_objects(topo: Topology, target: KubeTarget) -> list[dict[str, Any]]:
    """Phase ``policies``: every NetworkPolicy of ``topo`` (as realized) in the run's namespaces.

    Namespace selectors are rewritten as the namespaces' labels were (see the module notes);
    ipBlocks are kept literally, so pass the topology whose addresses were discovered.
    """
    projects = {p.name for p in topo.scenario.projects}
    workspaces = {w.name for w in topo.scenario.workspaces} | {
        p.workspace for p in topo.scenario.projects if p.workspace}
    out = []
    for policy in topo.policies:
        obj = render.plain(policy)
        meta = obj.setdefault("metadata", {})
        where = f"NetworkPolicy {meta.get('namespace')}/{meta.get('name')}"
        meta["namespace"] = target.names.namespace(meta["namespace"])
        meta["labels"] = {**(meta.get("labels") or {}), **target.names.labels}
        spec = obj.get("spec") or {}
        for direction, peers_key in (("ingress", "from"), ("egress", "to")):
            for rule in spec.get(direction) or []:
                for peer in rule.get(peers_key) or []:
                    if peer.get("namespaceSelector") is not None:
                        peer["namespaceSelector"] = rewrite_namespace_selector(
                            peer["namespaceSelector"], target.names, projects, workspaces, where)
        out.append(obj)
    return out


def ingress_objects(topo: Topology, target: KubeTarget) -> list[dict[str, Any]]:
    """Phase ``ingresses``: render's Ingresses in the prefixed namespaces, class ``netiso-{run}``."""
    names = target.names
    out = []
    for ing in topo.ingresses.values():
        obj = render.ingress(names.namespace(ing.project), ing.name, ing.host, ing.service.name,
                             ing.port.port.port, ingress_class=names.ingress_class)
        _stamp(obj, names)
        out.append(obj)
    return out


def phases(topo: Topology, target: KubeTarget, *, holder: str, renew_time: datetime | str,
           realized: Topology | None = None) -> list[tuple[str, list[dict[str, Any]]]]:
    """Every phase as (name, objects), in apply order; ``realized`` feeds the policies (default ``topo``)."""
    return [
        ("run", run_objects(target, holder=holder, renew_time=renew_time, scenario=topo.name)),
        ("namespaces", namespace_objects(topo, target)),
        ("workloads", workload_objects(topo, target)),
        ("services", service_objects(topo, target)),
        ("policies", policy_objects(realized or topo, target)),
        ("ingresses", ingress_objects(topo, target)),
    ]


def all_objects(topo: Topology, target: KubeTarget, *, holder: str, renew_time: datetime | str,
                realized: Topology | None = None) -> list[dict[str, Any]]:
    """Every object of the scenario in apply order (the phases concatenated)."""
    return [obj for _, objs in phases(topo, target, holder=holder, renew_time=renew_time, realized=realized)
            for obj in objs]


# --------------------------------------------------------------------------- selectors


def rewrite_namespace_selector(selector: Mapping[str, Any], names: RunNames, projects: Iterable[str],
                               workspaces: Iterable[str], where: str = "NetworkPolicy") -> dict[str, Any]:
    """A namespaceSelector with the tenancy label values of scenario projects/workspaces prefixed.

    Keys ``kubernetes.io/metadata.name`` and ``kubesphere.io/namespace`` name namespaces: a
    scenario project becomes ``{run}-{project}``; any other namespace (``kube-system``) is selected
    by ``kubernetes.io/metadata.name`` (a plain cluster labels only our namespaces with
    ``kubesphere.io/namespace``). ``kubesphere.io/workspace`` values naming a scenario workspace
    become ``{run}-{workspace}``. Other keys, and Exists/DoesNotExist expressions, stay as written.

    >>> n = RunNames("nx0a1b2c")
    >>> rewrite_namespace_selector({"matchLabels": {"kubesphere.io/namespace": "kube-system"}}, n, ["demo"], [])
    {'matchLabels': {'kubernetes.io/metadata.name': 'kube-system'}}
    >>> rewrite_namespace_selector({"matchExpressions": [{"key": "kubesphere.io/workspace",
    ...     "operator": "In", "values": ["ws", "other"]}]}, n, [], ["ws"])["matchExpressions"][0]["values"]
    ['nx0a1b2c-ws', 'other']
    """
    projects = set(projects)
    workspaces = set(workspaces)
    out: dict[str, Any] = {k: copy.deepcopy(v) for k, v in selector.items()
                           if k not in ("matchLabels", "matchExpressions")}

    def rename(key: str, value: str) -> tuple[str, str]:
        if key in (METADATA_NAME_LABEL, NAMESPACE_LABEL):
            if value in projects:
                return key, names.namespace(value)
            return METADATA_NAME_LABEL, value
        if key == WORKSPACE_LABEL and value in workspaces:
            return key, names.workspace(value)
        return key, value

    if selector.get("matchLabels") is not None:
        labels: dict[str, str] = {}
        for key, value in selector["matchLabels"].items():
            new_key, new_value = rename(key, value)
            if labels.get(new_key, new_value) != new_value:
                raise ValueError(f"{where}: namespaceSelector {dict(selector['matchLabels'])} cannot be rewritten: "
                                 f"{key}={value} and another label both become {new_key}")
            labels[new_key] = new_value
        out["matchLabels"] = labels
    if selector.get("matchExpressions") is not None:
        exprs = []
        for expr in selector["matchExpressions"]:
            expr = dict(expr)
            key = expr.get("key", "")
            if expr.get("operator") in ("In", "NotIn") and key in (METADATA_NAME_LABEL, NAMESPACE_LABEL,
                                                                    WORKSPACE_LABEL):
                renamed = [rename(key, v) for v in expr.get("values") or []]
                keys = {k for k, _ in renamed}
                if len(keys) > 1:
                    # Mixed project / system namespaces under kubesphere.io/namespace: our namespaces
                    # carry kubernetes.io/metadata.name with the same value, so that key selects both.
                    keys = {METADATA_NAME_LABEL}
                expr["key"] = keys.pop() if keys else key
                expr["values"] = [v for _, v in renamed]
            exprs.append(expr)
        out["matchExpressions"] = exprs
    return out


# --------------------------------------------------------------------------- helpers


def source_nodes(topo: Topology) -> list[str]:
    """Scenario nodes that some flow starts from or ends at (``node:NAME``), in scenario node order:
    each gets a hostNetwork pod (probes leave from it; it serves the node's host-network ports)."""
    used = set(host_servers(topo))
    for flow in topo.scenario.flows:
        sym = parse_endpoint(flow.src)
        if sym.kind == "node" and sym.name:
            used.add(sym.name)
    return [n for n in topo.nodes if n in used]


def micro_time(when: datetime) -> str:
    """A Kubernetes MicroTime (RFC 3339, microseconds, UTC ``Z``).

    >>> micro_time(datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC))
    '2026-01-02T03:04:05.000006Z'
    """
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def api_path(obj: Mapping[str, Any], *, item: bool = False) -> str:
    """The REST path of ``obj``'s collection (POST), or of the object itself with ``item=True``.

    >>> api_path({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
    ...           "metadata": {"name": "p", "namespace": "ns"}}, item=True)
    '/apis/networking.k8s.io/v1/namespaces/ns/networkpolicies/p'
    """
    api_version = obj["apiVersion"]
    kind = obj["kind"]
    try:
        plural, namespaced = RESOURCES[kind]
    except KeyError:
        raise ValueError(f"no REST mapping for kind {kind!r}") from None
    root = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    meta = obj.get("metadata") or {}
    path = f"{root}/namespaces/{meta['namespace']}/{plural}" if namespaced else f"{root}/{plural}"
    return f"{path}/{meta['name']}" if item else path


RESOURCES: dict[str, tuple[str, bool]] = {
    "Namespace": ("namespaces", False),
    "Pod": ("pods", True),
    "Service": ("services", True),
    "ServiceAccount": ("serviceaccounts", True),
    "Lease": ("leases", True),
    "NetworkPolicy": ("networkpolicies", True),
    "Ingress": ("ingresses", True),
    "IngressClass": ("ingressclasses", False),
    "Role": ("roles", True),
    "RoleBinding": ("rolebindings", True),
    "ClusterRole": ("clusterroles", False),
    "ClusterRoleBinding": ("clusterrolebindings", False),
    "Workspace": ("workspaces", False),  # --kubesphere controller (kubesphere_objects.py)
    "NamespaceNetworkPolicy": ("namespacenetworkpolicies", True),
}


def _stamp(obj: dict[str, Any], names: RunNames, extra: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Add the run labels (and ``extra``) to ``obj``'s metadata.labels; run labels win."""
    meta = obj.setdefault("metadata", {})
    meta["labels"] = {**(meta.get("labels") or {}), **(extra or {}), **names.labels}
    return obj


def _pinned_pod(obj: dict[str, Any], pod: PodInfo, target: KubeTarget) -> dict[str, Any]:
    names = target.names
    obj["metadata"]["name"] = names.pod_name(pod)
    obj["metadata"]["namespace"] = names.namespace(pod.project)
    spec = obj["spec"]
    spec["nodeName"] = target.cluster_node(pod.node)
    spec["tolerations"] = [dict(t) for t in CONTROL_PLANE_TOLERATIONS]
    return obj


def _workload_pod(pod: PodInfo, target: KubeTarget) -> dict[str, Any]:
    obj = _pinned_pod(render.workload_pod(pod), pod, target)
    for container in obj["spec"]["containers"]:
        container["image"] = target.image("agnhost")
    # Probes only need the pod's network; no API token, no service-link environment, quick deletion.
    obj["spec"].update({"automountServiceAccountToken": False, "enableServiceLinks": False,
                        "terminationGracePeriodSeconds": 1})
    shape_pod(obj, pod)  # a not-ready / terminating replica (pod_states.py)
    return _stamp(obj, target.names, {ROLE_LABEL: "workload"})


def _node_pod(node: str, target: KubeTarget, serves: Iterable[Port] = ()) -> dict[str, Any]:
    """A hostNetwork agnhost ``pause`` pod: exec'd probes leave from the node's own network stack.

    ``serves``: the node's host-network servers (``to: node:NAME`` flows, ``flows.host_servers``),
    one agnhost ``netexec`` container per port number on the node's own addresses, as a hostNetwork
    workload would listen: ``--http-port`` N always (netexec binds it; a UDP-only number borrows it,
    as render.workload_pod does), ``--udp-port`` N where UDP N is served, else ``-1``.
    """
    names = target.names
    numbers = sorted({p.port for p in serves})
    servers = [{"name": f"host-{n}", "image": target.image("agnhost"),
                "args": ["netexec", f"--http-port={n}",
                         f"--udp-port={n if any(p.port == n and p.protocol == 'UDP' for p in serves) else -1}"],
                "ports": [{"containerPort": p.port, "protocol": p.protocol}
                          for p in sorted(serves, key=lambda x: x.protocol) if p.port == n]}
               for n in numbers]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": names.node_pod(node), "namespace": names.system_namespace,
                     "labels": {ROLE_LABEL: "node-probe", NODE_LABEL: node, **names.labels}},
        "spec": {
            "nodeName": target.cluster_node(node),
            "hostNetwork": True,
            "dnsPolicy": "ClusterFirstWithHostNet",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 1,
            # A node source may be any node, whatever its taints (as node agents' DaemonSets do).
            "tolerations": [{"operator": "Exists"}],
            "containers": [{"name": NODE_PROBE_CONTAINER, "image": target.image("agnhost"), "args": ["pause"]},
                           *servers],
        },
    }


def _controller_pod(pod: PodInfo, svc: ServiceInfo, target: KubeTarget) -> dict[str, Any]:
    names = target.names
    obj = render.controller_pod(pod, svc.name, ingress_class=names.ingress_class,
                                controller_class=names.controller_class, watch_without_class=False)
    _pinned_pod(obj, pod, target)
    container = obj["spec"]["containers"][0]
    container["image"] = target.image("ingress-nginx-controller")
    container["env"] = [*container.get("env", []), dict(INGRESS_NGINX_LD_PRELOAD)]
    container["readinessProbe"] = copy.deepcopy(INGRESS_NGINX_READINESS)
    container["securityContext"] = copy.deepcopy(INGRESS_NGINX_SECURITY)
    obj["spec"].update({"serviceAccountName": names.ingress_rbac, "automountServiceAccountToken": True,
                        "terminationGracePeriodSeconds": 0})
    return _stamp(obj, names, {ROLE_LABEL: "ingress-controller"})


def _service(svc: ServiceInfo, load_balancer: str, target: KubeTarget) -> dict[str, Any]:
    obj = render.service(svc, load_balancer, backend="kube")
    meta = obj["metadata"]
    meta["namespace"] = target.names.namespace(svc.project)
    meta.pop("annotations", None)
    annotations = _lb_annotations(svc, load_balancer, target)
    if annotations:
        meta["annotations"] = annotations
    spec = obj["spec"]
    spec.pop("clusterIP", None)
    spec.pop("healthCheckNodePort", None)
    for port in spec["ports"]:
        port.pop("nodePort", None)
    return _stamp(obj, target.names)


def _lb_annotations(svc: ServiceInfo, load_balancer: str, target: KubeTarget) -> dict[str, str]:
    """What the installed LoadBalancer implementation needs to handle this Service, and its VIP request."""
    if svc.type != "LoadBalancer":
        return {}
    vip = target.vips.get(svc.key)
    if load_balancer == "metallb":
        out = {METALLB_POOL_ANNOTATION: target.metallb_pool} if target.metallb_pool else {}
        if vip:
            out[render.METALLB_IPS_ANNOTATION] = vip
        return out
    if load_balancer == "openelb":
        out = {render.OPENELB_ANNOTATION: "openelb"}
        if target.openelb_eip:
            out[render.OPENELB_EIP_ANNOTATION] = target.openelb_eip
        if vip:
            out[render.OPENELB_IP_ANNOTATION] = vip
        return out
    return {}
