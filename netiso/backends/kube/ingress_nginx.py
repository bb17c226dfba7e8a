"""What netiso gives each ingress-nginx controller it starts: upstream's RBAC, probes and security context.

Mirrors ingress-nginx controller-v1.15.1 ``deploy/static/provider/kind/deploy.yaml``
(kubernetes/ingress-nginx, the vendored copy under cluster-configs/addons/): the controller's Role
and ClusterRole rules, its readiness probe and security context, as granted upstream. Deliberate
differences: one ServiceAccount/Role per controller namespace and one ClusterRole per run (names
carry the run id, see ``RunNames.ingress_rbac``), each controller's own leader-election Lease named
in the Role, an IngressClass of the run's own (``netiso-<run>``) so a cluster's existing controllers
never serve netiso's Ingresses, and no admission webhook.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from netiso.backends.kube.naming import RunNames
from netiso.model.types import PodInfo, ServiceInfo

# The controller's Role and ClusterRole rules, as granted upstream. The Role's leader-election
# Lease name is the only value that changes (one per controller, see RunNames.election_id).
INGRESS_NGINX_ROLE_RULES: tuple[dict[str, Any], ...] = (
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["configmaps", "pods", "secrets", "endpoints"],
     "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses/status"], "verbs": ["update"]},
    {"apiGroups": ["networking.k8s.io"], "resources": ["ingressclasses"], "verbs": ["get", "list", "watch"]},
    # {"apiGroups": ["coordination.k8s.io"], "resourceNames": [<election ids>], ...} inserted here
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch", "get"]},
)
INGRESS_NGINX_CLUSTER_ROLE_RULES: tuple[dict[str, Any], ...] = (
    {"apiGroups": [""], "resources": ["configmaps", "endpoints", "nodes", "pods", "secrets", "namespaces"],
     "verbs": ["list", "watch"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["list", "watch"]},
    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
    {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses/status"], "verbs": ["update"]},
    {"apiGroups": ["networking.k8s.io"], "resources": ["ingressclasses"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch", "get"]},
)
# The same deploy.yaml's controller container: readiness on the health port, the security context.
INGRESS_NGINX_READINESS: dict[str, Any] = {
    "httpGet": {"path": "/healthz", "port": 10254, "scheme": "HTTP"},
    "initialDelaySeconds": 10, "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1,
    "failureThreshold": 3,
}
INGRESS_NGINX_SECURITY: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
    "readOnlyRootFilesystem": False,
    "runAsGroup": 82,
    "runAsNonRoot": True,
    "runAsUser": 101,
    "seccompProfile": {"type": "RuntimeDefault"},
}
INGRESS_NGINX_LD_PRELOAD = {"name": "LD_PRELOAD", "value": "/usr/local/lib/libmimalloc.so"}


def ingress_access(controllers: Sequence[tuple[PodInfo, ServiceInfo]], names: RunNames) -> list[dict[str, Any]]:
    """ServiceAccount/Role/RoleBinding per controller namespace, then ClusterRole(Binding) and IngressClass."""
    if not controllers:
        return []
    rbac = names.ingress_rbac
    by_ns: dict[str, list[str]] = {}
    for pod, svc in controllers:
        by_ns.setdefault(names.namespace(pod.project), []).append(names.election_id(svc.name))
    out: list[dict[str, Any]] = []
    for ns, election_ids in by_ns.items():
        rules = [copy.deepcopy(r) for r in INGRESS_NGINX_ROLE_RULES]
        at = next(i for i, r in enumerate(rules) if r["apiGroups"] == ["coordination.k8s.io"])
        rules.insert(at, {"apiGroups": ["coordination.k8s.io"], "resourceNames": sorted(set(election_ids)),
                          "resources": ["leases"], "verbs": ["get", "update"]})
        meta = {"name": rbac, "namespace": ns, "labels": names.labels}
        out.append({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": copy.deepcopy(meta),
                    "automountServiceAccountToken": True})
        out.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": copy.deepcopy(meta),
                    "rules": rules})
        out.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                    "metadata": copy.deepcopy(meta),
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": rbac},
                    "subjects": [{"kind": "ServiceAccount", "name": rbac, "namespace": ns}]})
    cluster_meta = {"name": rbac, "labels": names.labels}
    out.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": copy.deepcopy(cluster_meta),
                "rules": [copy.deepcopy(r) for r in INGRESS_NGINX_CLUSTER_ROLE_RULES]})
    out.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": copy.deepcopy(cluster_meta),
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": rbac},
                "subjects": [{"kind": "ServiceAccount", "name": rbac, "namespace": ns} for ns in by_ns]})
    out.append({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                "metadata": {"name": names.ingress_class, "labels": names.labels},
                "spec": {"controller": names.controller_class}})
    return out
