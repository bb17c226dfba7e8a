"""Every permission the kube backend uses, in one list: preflight asks for each, the plan prints it.

Preflight checks each with a SelfSubjectAccessReview before anything is created (a missing one
is named: "not allowed to: create namespaces"); ``--dry-run``'s plan.txt lists the same; a test
checks every request of a whole recorded run against this list and against
cluster-configs/kube/rbac.yaml. Kept free of the kubernetes client, so the plan writer can use it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Access:
    """One permission netiso uses: ``verb`` on ``resource`` (``sub`` = subresource) in ``group``."""

    verb: str
    resource: str
    group: str = ""
    sub: str | None = None

    def __str__(self) -> str:
        res = f"{self.resource}/{self.sub}" if self.sub else self.resource
        return f"{self.verb} {res}" + (f" (group {self.group})" if self.group else "")


def _acc(verbs: str, resource: str, group: str = "", sub: str | None = None) -> list[Access]:
    return [Access(v, resource, group, sub) for v in verbs.split()]


# Exactly the calls this package makes (tests check each recorded request against rbac.yaml).
ACCESS: tuple[Access, ...] = tuple(
    _acc("get list create delete", "namespaces")
    + _acc("get list", "nodes")
    + _acc("get list create delete", "pods")
    + _acc("get create", "pods", sub="exec")
    + _acc("get list create delete", "services")
    + _acc("create delete", "serviceaccounts")
    + _acc("get", "configmaps")
    + _acc("list", "events")
    + _acc("list", "endpointslices", "discovery.k8s.io")
    + _acc("list create delete", "networkpolicies", "networking.k8s.io")
    + _acc("get create delete", "ingresses", "networking.k8s.io")
    + _acc("list create delete", "ingressclasses", "networking.k8s.io")
    + _acc("create delete", "roles", "rbac.authorization.k8s.io")
    + _acc("create delete", "rolebindings", "rbac.authorization.k8s.io")
    + _acc("list create delete", "clusterroles", "rbac.authorization.k8s.io")
    + _acc("list create delete", "clusterrolebindings", "rbac.authorization.k8s.io")
    + _acc("get create patch delete", "leases", "coordination.k8s.io")
    + _acc("get", "daemonsets", "apps")  # calico-node's environment: Felix's settings (felix_settings.py)
)
# Calico's IPPools, BlockAffinities and FelixConfigurations, in the API group the cluster serves them from (preflight asks
# discovery): crd.projectcalico.org (the classic manifests' CRDs) or projectcalico.org (native v3 CRDs,
# or Calico's aggregated API server). rbac.yaml grants both; preflight checks the served one.
CALICO_ACCESS: dict[str, tuple[Access, ...]] = {
    group: tuple(_acc("list", "ippools", group) + _acc("list", "blockaffinities", group)
                 + _acc("list", "felixconfigurations", group))
    for group in ("projectcalico.org", "crd.projectcalico.org")
}
# Only needed for the scenario's load balancer (checked when a scenario has a LoadBalancer Service).
LB_ACCESS: dict[str, tuple[Access, ...]] = {
    "metallb": tuple(_acc("list", "ipaddresspools", "metallb.io") + _acc("list", "servicel2statuses", "metallb.io")),
    "openelb": tuple(_acc("list", "eips", "network.kubesphere.io") + _acc("get", "pods", sub="log")),
}

# Only with --kubesphere controller (ClusterRole netiso-kubesphere-controller in rbac.yaml): the objects a
# KubeSphere user creates, and ks-installer's ClusterConfiguration preflight reads the version from
# (kubesphere-system/kubesphere-config is a ConfigMap: "get configmaps" above already covers it).
KUBESPHERE_ACCESS: tuple[Access, ...] = tuple(
    _acc("get list create delete", "workspaces", "tenant.kubesphere.io")
    + _acc("get list create delete", "namespacenetworkpolicies", "network.kubesphere.io")
    + _acc("get", "clusterconfigurations", "installer.kubesphere.io")
)


def access_for(load_balancer: str, calico_group: str | None = None, *, kubesphere: str | None = None) -> list[Access]:
    """What a scenario with ``load_balancer`` needs: the common list, Calico's group (both when not
    known yet, as in a dry run) and the load balancer's.

    >>> [str(a) for a in access_for("openelb")][-2:]
    ['list eips (group network.kubesphere.io)', 'get pods/log']
    >>> [str(a) for a in access_for("none", "projectcalico.org")][-1]
    'list felixconfigurations (group projectcalico.org)'
    """
    groups = [calico_group] if calico_group else list(CALICO_ACCESS)
    return [*ACCESS, *(a for g in groups for a in CALICO_ACCESS[g]), *LB_ACCESS.get(load_balancer, ()),
            *(KUBESPHERE_ACCESS if kubesphere else ())]
