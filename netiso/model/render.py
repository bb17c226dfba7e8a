"""Every Kubernetes object a cluster backend would apply for a resolved Topology (``netiso render``).

The manifests are the contract between the model and the real clusters: the kube/kind backends
apply them, and a person reads them to see exactly what a scenario means. So the output is
deterministic (same topology, same bytes), addresses are literal (from the topology, never
re-derived) and every generated object is what the real component would hold: the
NetworkPolicies KubeSphere generates (netiso.model.tenancy), Services with the node ports the
oracle predicted for, LoadBalancer requests in the annotation dialect of MetalLB or OpenELB.

Order: Namespaces, NamespaceNetworkPolicies, NetworkPolicies (generated, then raw), Pods
(workloads, then ingress controllers), Services (same), Ingresses, LB address-pool objects.

>>> print(to_yaml([{"kind": "Namespace", "metadata": {"name": "demo"}}]), end="")
---
kind: Namespace
metadata:
  name: demo
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import yaml

from netiso.model.tenancy import namespace_network_policies
from netiso.model.types import PodInfo, Port, ServiceInfo, Topology

AGNHOST_IMAGE = "registry.k8s.io/e2e-test-images/agnhost:2.66.1"
INGRESS_NGINX_IMAGE = "registry.k8s.io/ingress-nginx/controller:v1.15.1"
INGRESS_CLASS = "nginx"
CONTROLLER_CLASS = "k8s.io/ingress-nginx"
BACKENDS = ("lab", "kind", "kube")

METALLB_NAMESPACE = "metallb-system"
METALLB_POOL = "netiso-pool"
METALLB_L2 = "netiso-l2"
METALLB_IPS_ANNOTATION = "metallb.io/loadBalancerIPs"
OPENELB_EIP = "netiso-eip"
OPENELB_ANNOTATION = "lb.kubesphere.io/v1alpha1"  # value "openelb": OpenELB handles this Service
OPENELB_EIP_ANNOTATION = "eip.openelb.kubesphere.io/v1alpha2"  # which Eip to allocate from
OPENELB_IP_ANNOTATION = "eip.openelb.kubesphere.io/v1alpha1"  # the exact IP (overrides spec.loadBalancerIP)
OPENELB_DEFAULT_EIP_ANNOTATION = "eip.openelb.kubesphere.io/is-default-eip"
OPENELB_INTERFACE = "eth0"  # kind nodes' interface on the docker network


def render_objects(
    topology: Topology, backend: str = "lab", resolve_cidr: Callable[[str], str | Sequence[str]] | None = None
) -> list[dict[str, Any]]:
    """All manifests for ``topology``, in apply order, as plain dicts.

    ``backend="lab"`` renders every address literally; ``kind``/``kube`` leave ClusterIPs to the
    cluster (its service CIDR is not the lab plan's) and keep everything else. ``resolve_cidr``
    turns whitelist cidr symbols into CIDRs for the NamespaceNetworkPolicies (default: the
    address plan's resolver over this topology).

    >>> from netiso.model.addressing import resolve
    >>> from netiso.model.loader import loads
    >>> [o["kind"] for o in render_objects(resolve(loads("name: t\\nprojects: [{name: a}]\\n")[0]))]
    ['Namespace', 'IPAddressPool', 'L2Advertisement']
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r} (allowed: {', '.join(BACKENDS)})")
    if resolve_cidr is None:
        from netiso.model.addressing import resolve_cidr as plan_resolve_cidr

        def resolve_cidr(text: str) -> Sequence[str]:
            return plan_resolve_cidr(topology, text)

    objects: list[dict[str, Any]] = []
    for name, labels in topology.namespaces.items():
        objects.append(namespace(name, labels, topology.namespace_annotations.get(name, {})))
    objects.extend(namespace_network_policies(topology.scenario, resolve_cidr))
    objects.extend(_plain(p) for p in topology.policies)

    controllers = _controllers(topology)
    objects.extend(workload_pod(p) for p in topology.pods if p.role != "ingress-controller")
    objects.extend(controller_pod(pod, svc.name) for pod, svc in controllers)

    controller_keys = {svc.key for _, svc in controllers}
    for svc in topology.services.values():
        if svc.key not in controller_keys and svc.role != "ingress-controller":
            objects.append(service(svc, topology.load_balancer, backend))
    objects.extend(service(svc, topology.load_balancer, backend) for _, svc in controllers)

    for ing in topology.ingresses.values():
        objects.append(ingress(ing.project, ing.name, ing.host, ing.service.name, ing.port.port.port))
    objects.extend(lb_pool_objects(topology.load_balancer, topology.scenario.cluster.network.loadBalancerPool))
    return objects


def to_yaml(objects: Iterable[Mapping[str, Any]]) -> str:
    """Multi-document YAML, each document starting with ``---``, keys in insertion order.

    >>> to_yaml([{"b": 1, "a": (2,)}, {"c": {}}])
    '---\\nb: 1\\na:\\n- 2\\n---\\nc: {}\\n'
    """
    return "".join(
        "---\n" + yaml.safe_dump(_plain(o), sort_keys=False, default_flow_style=False, width=4096)
        for o in objects
    )


# --------------------------------------------------------------------------- object builders


def namespace(name: str, labels: Mapping[str, str], annotations: Mapping[str, str]) -> dict[str, Any]:
    """A Namespace with its tenancy labels and (if any) the isolation annotation.

    >>> namespace("shop", {"kubesphere.io/namespace": "shop"}, {})["metadata"]
    {'name': 'shop', 'labels': {'kubesphere.io/namespace': 'shop'}}
    """
    meta: dict[str, Any] = {"name": name, "labels": dict(labels)}
    if annotations:
        meta["annotations"] = dict(annotations)
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def workload_pod(pod: PodInfo) -> dict[str, Any]:
    """One workload replica: agnhost ``netexec`` pinned to its node with ``nodeName``.

    netexec serves one HTTP (TCP) port, one UDP and one SCTP port per process, so ports are packed
    into as few containers as possible (same-numbered TCP/UDP together). A container without a
    TCP port still has to bind its HTTP port: it uses the number of its UDP/SCTP port (TCP and
    UDP port spaces are separate). UDP is disabled (``--udp-port=-1``) where not declared, so no
    undeclared port is open by default; for the same reason readiness probes ``/hostname``, not
    ``/healthz`` (which stays 412 while no UDP/SCTP server runs).

    >>> p = workload_pod(PodInfo("demo", "web", "worker", "100.64.1.1", {"app": "web"}, (Port(8080),)))
    >>> p["spec"]["nodeName"], p["spec"]["containers"][0]["args"]
    ('worker', ['netexec', '--http-port=8080', '--udp-port=-1'])
    """
    groups = _netexec_groups(pod.ports)
    containers = []
    for i, group in enumerate(groups):
        http = _http_port(group)
        args = ["netexec", f"--http-port={http}", f"--udp-port={group['UDP'].port if 'UDP' in group else -1}"]
        if "SCTP" in group:
            args.append(f"--sctp-port={group['SCTP'].port}")
        containers.append({
            "name": "netexec" if len(groups) == 1 else f"netexec-{i}",
            "image": AGNHOST_IMAGE,
            "args": args,
            "ports": [_container_port(group[proto], pod) for proto in ("TCP", "UDP", "SCTP") if proto in group],
            "readinessProbe": {"httpGet": {"path": "/hostname", "port": http}, "periodSeconds": 2},
        })
    return _pod(pod, containers)


def controller_pod(
    pod: PodInfo,
    service_name: str,
    *,
    ingress_class: str = INGRESS_CLASS,
    controller_class: str = CONTROLLER_CLASS,
    watch_without_class: bool = True,
) -> dict[str, Any]:
    """The ingress-nginx controller pod, pinned to its node, watching class ``nginx``.

    The keyword arguments let a cluster backend give the controller a class of its own (the
    kube backend: ``netiso-<run>``, ``--watch-ingress-without-class=false``) so that it never
    serves, or is served by, an ingress-nginx the cluster already runs.

    RBAC, ServiceAccount and the IngressClass come with the ingress-nginx install of the cluster
    backend; this pod only fixes placement, labels and the publish Service.

    >>> pod = PodInfo("gw", "ingress-controller", "worker2", "100.64.2.5", {"app": "ingress-controller"},
    ...               (Port(80, "TCP", "http"),), role="ingress-controller")
    >>> controller_pod(pod, "ingress-controller")["spec"]["containers"][0]["ports"]
    [{'name': 'http', 'containerPort': 80, 'protocol': 'TCP'}]
    """
    container = {
        "name": "controller",
        "image": INGRESS_NGINX_IMAGE,
        "args": [
            "/nginx-ingress-controller",
            f"--publish-service=$(POD_NAMESPACE)/{service_name}",
            f"--election-id={service_name}-leader",
            f"--controller-class={controller_class}",
            f"--ingress-class={ingress_class}",
            f"--watch-ingress-without-class={'true' if watch_without_class else 'false'}",
        ],
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        ],
        "ports": [_container_port(p) for p in pod.ports],
    }
    return _pod(pod, [container])


def service(svc: ServiceInfo, load_balancer: str, backend: str = "lab") -> dict[str, Any]:
    """A Service with the topology's node ports, ClusterIP (lab) and LoadBalancer IP request.

    >>> from netiso.model.types import ServicePortInfo
    >>> s = ServiceInfo("demo", "web", "LoadBalancer", "Cluster", {"app": "web"},
    ...                 (ServicePortInfo(Port(8080), 30000),), "198.19.0.100", (), lb_ip="198.18.0.200")
    >>> service(s, "metallb")["metadata"]["annotations"]
    {'metallb.io/loadBalancerIPs': '198.18.0.200'}
    """
    meta: dict[str, Any] = {"name": svc.name, "namespace": svc.project}
    annotations = _lb_annotations(svc, load_balancer)
    if annotations:
        meta["annotations"] = annotations
    named = len(svc.ports) > 1
    ports = []
    for sp in svc.ports:
        entry: dict[str, Any] = {}
        name = sp.port.name or (f"{sp.port.protocol.lower()}-{sp.port.port}" if named else None)
        if name:
            entry["name"] = name
        entry.update({"protocol": sp.port.protocol, "port": sp.port.port, "targetPort": sp.target})
        if sp.node_port is not None and svc.type in ("NodePort", "LoadBalancer"):
            entry["nodePort"] = sp.node_port
        ports.append(entry)
    spec: dict[str, Any] = {"type": svc.type, "selector": dict(svc.selector), "ports": ports}
    if backend == "lab":
        spec["clusterIP"] = svc.cluster_ip
    if svc.type in ("NodePort", "LoadBalancer"):
        # The API rejects externalTrafficPolicy on ClusterIP Services.
        spec["externalTrafficPolicy"] = svc.etp
    if svc.type == "LoadBalancer" and svc.etp == "Local" and svc.health_check_node_port is not None:
        spec["healthCheckNodePort"] = svc.health_check_node_port
    if svc.itp != "Cluster":
        spec["internalTrafficPolicy"] = svc.itp
    if svc.source_ranges:  # resolved from the scenario's CIDRs/symbols (kube: the cluster's addresses)
        spec["loadBalancerSourceRanges"] = list(svc.source_ranges)
    if svc.external_ips:
        spec["externalIPs"] = list(svc.external_ips)
    if svc.publish_not_ready:
        spec["publishNotReadyAddresses"] = True
    if svc.affinity_timeout is not None:
        spec["sessionAffinity"] = "ClientIP"
        spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": svc.affinity_timeout}}
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec}


def ingress(
    project: str, name: str, host: str, service_name: str, port: int, ingress_class: str = INGRESS_CLASS
) -> dict[str, Any]:
    """A networking.k8s.io/v1 Ingress: one host, path ``/`` to one Service port, class ``nginx``.

    >>> ingress("shop", "web", "web.example", "web", 8080)["spec"]["rules"][0]["host"]
    'web.example'
    """
    backend = {"service": {"name": service_name, "port": {"number": port}}}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": project},
        "spec": {
            "ingressClassName": ingress_class,
            "rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}],
        },
    }


def lb_pool_objects(load_balancer: str, pool: str) -> list[dict[str, Any]]:
    """The address pool the LoadBalancer implementation announces from (layer 2).

    MetalLB: an IPAddressPool and an L2Advertisement in metallb-system. OpenELB: a cluster-scoped
    layer2 Eip marked as the default pool (the speaker must run with ``--enable-layer2=true``).

    >>> [o["kind"] for o in lb_pool_objects("metallb", "198.18.0.200-198.18.0.250")]
    ['IPAddressPool', 'L2Advertisement']
    """
    if load_balancer == "metallb":
        return [
            {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
             "metadata": {"name": METALLB_POOL, "namespace": METALLB_NAMESPACE}, "spec": {"addresses": [pool]}},
            {"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
             "metadata": {"name": METALLB_L2, "namespace": METALLB_NAMESPACE},
             "spec": {"ipAddressPools": [METALLB_POOL]}},
        ]
    if load_balancer == "openelb":
        return [
            {"apiVersion": "network.kubesphere.io/v1alpha2", "kind": "Eip",
             "metadata": {"name": OPENELB_EIP, "annotations": {OPENELB_DEFAULT_EIP_ANNOTATION: "true"}},
             "spec": {"address": pool, "protocol": "layer2", "interface": OPENELB_INTERFACE}},
        ]
    return []


def ingress_controllers(topology: Topology) -> list[tuple[PodInfo, ServiceInfo]]:
    """Distinct ingress controllers as (pod, Service), in the order ``render_objects`` emits them."""
    return _controllers(topology)


# --------------------------------------------------------------------------- helpers


def _controllers(topology: Topology) -> list[tuple[PodInfo, ServiceInfo]]:
    """Distinct ingress controllers (pod, Service), in ingress order; several ingresses may share one."""
    seen: dict[str, tuple[PodInfo, ServiceInfo]] = {}
    for ing in topology.ingresses.values():
        ctl = ing.controller
        seen.setdefault(ctl.service.key, (ctl.pod, ctl.service))
    # Controller pods the topology lists without any ingress (should not happen) still get rendered.
    keys = {pod.symbol for pod, _ in seen.values()}
    for pod in topology.pods:
        if pod.role == "ingress-controller" and pod.symbol not in keys:
            svc = topology.services.get(f"{pod.project}/{pod.workload}")
            if svc is not None:
                seen.setdefault(svc.key, (pod, svc))
    return list(seen.values())


def _lb_annotations(svc: ServiceInfo, load_balancer: str) -> dict[str, str]:
    if svc.type != "LoadBalancer":
        return {}
    if load_balancer == "metallb" and svc.lb_ip:
        return {METALLB_IPS_ANNOTATION: svc.lb_ip}
    if load_balancer == "openelb":
        out = {OPENELB_ANNOTATION: "openelb", OPENELB_EIP_ANNOTATION: OPENELB_EIP}
        if svc.lb_ip:
            out[OPENELB_IP_ANNOTATION] = svc.lb_ip
        return out
    return {}


def _pod(pod: PodInfo, containers: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": pod.name, "namespace": pod.project, "labels": dict(pod.labels)},
        "spec": {"nodeName": pod.node, "containers": containers},
    }


def _container_port(port: Port, pod: PodInfo | None = None) -> dict[str, Any]:
    """A container port; with the workload's ``hostPort`` for it (the kubelet hands it to portmap)."""
    entry: dict[str, Any] = {}
    if port.name:
        entry["name"] = port.name
    entry.update({"containerPort": port.port, "protocol": port.protocol})
    host = next((h for h, p in pod.host_ports if p == port), None) if pod is not None else None
    if host is not None:
        entry["hostPort"] = host
    return entry


def _netexec_groups(ports: Sequence[Port]) -> list[dict[str, Port]]:
    """Pack ports into netexec processes: one TCP (HTTP), one UDP, one SCTP port each."""
    groups: list[dict[str, Port]] = [{"TCP": p} for p in ports if p.protocol == "TCP"]
    for proto in ("UDP", "SCTP"):
        for p in (x for x in ports if x.protocol == proto):
            free = [g for g in groups if proto not in g]
            same = [g for g in free if _http_port(g) == p.port]
            slot = (same or free or [None])[0]
            if slot is None:
                slot = {}
                groups.append(slot)
            slot[proto] = p
    if not groups:
        raise ValueError("a workload needs at least one port")
    http_ports = [_http_port(g) for g in groups]
    if len(set(http_ports)) != len(http_ports):
        raise ValueError(f"cannot pack ports {', '.join(str(p) for p in ports)} into netexec processes")
    return groups


def _http_port(group: Mapping[str, Port]) -> int:
    for proto in ("TCP", "UDP", "SCTP"):
        if proto in group:
            return group[proto].port
    raise ValueError("empty port group")


def plain(value: Any) -> Any:
    """A deep copy of ``value`` as plain dicts/lists (what backends may mutate and YAML-dump).

    >>> plain({"a": (1, {"b": 2})})
    {'a': [1, {'b': 2}]}
    """
    return _plain(value)


def _plain(value: Any) -> Any:
    """Deep copy into plain dict/list/str so yaml.safe_dump accepts it (Mappings, tuples)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
