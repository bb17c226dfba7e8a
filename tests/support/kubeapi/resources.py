"""The resource catalogue the fake API server serves: built-in kinds plus every stored CRD.

Why: the official client's ``DynamicClient`` and ``kubectl``-like code discover kinds through
``/api/v1`` and ``/apis/<group>/<version>`` (APIResourceList) and then build URLs from the
plural, the scope and the verbs found there, so this table must say what a real apiserver says.

Mirrors: the discovery documents of kube-apiserver 1.33 (plural, singularName, kind, namespaced,
verbs, shortNames, subresources listed as ``pods/exec`` etc.) for the kinds netiso touches;
custom resources come from ``apiextensions.k8s.io/v1`` CustomResourceDefinition objects
(``spec.group``, ``spec.names``, ``spec.scope``, served ``spec.versions``) as the apiextensions
server does. Knowingly differs: only the built-in kinds below exist (no storage version hashes,
no categories beyond ``all`` on a few, no aggregated discovery v2 documents).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

CRUD = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    verbs: tuple[str, ...] = CRUD
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    custom: bool = False
    schema: dict[str, Any] | None = field(default=None, compare=False, hash=False)  # a CRD version's openAPIV3Schema

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def group_resource(self) -> str:
        """``plural.group`` as apiserver messages name it (``ingresses.networking.k8s.io``)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def discovery(self) -> list[dict]:
        """Entries of an APIResourceList: the resource and each of its subresources."""
        main = {"name": self.plural, "singularName": self.singular, "namespaced": self.namespaced,
                "kind": self.kind, "verbs": list(self.verbs)}
        if self.short_names:
            main["shortNames"] = list(self.short_names)
        out = [main]
        for sub in self.subresources:
            verbs = {"exec": ["create", "get"], "log": ["get"], "status": ["get", "patch", "update"],
                     "finalize": ["update"], "eviction": ["create"]}.get(sub, ["get"])
            kind = {"exec": "PodExecOptions", "log": "Pod", "eviction": "Eviction"}.get(sub, self.kind)
            out.append({"name": f"{self.plural}/{sub}", "singularName": "", "namespaced": self.namespaced,
                        "kind": kind, "verbs": verbs})
        return out


def _r(api_version: str, plural: str, kind: str, namespaced: bool = True, **kw) -> Resource:
    group, _, version = api_version.rpartition("/")
    return Resource(group, version, plural, kind, namespaced, **kw)


BUILTIN: tuple[Resource, ...] = (
    _r("v1", "namespaces", "Namespace", False, verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
       short_names=("ns",), subresources=("finalize", "status")),
    _r("v1", "nodes", "Node", False, short_names=("no",), subresources=("status",)),
    _r("v1", "pods", "Pod", short_names=("po",), subresources=("exec", "log", "status", "eviction")),
    _r("v1", "services", "Service", short_names=("svc",), subresources=("status",)),
    _r("v1", "endpoints", "Endpoints", short_names=("ep",)),
    _r("v1", "configmaps", "ConfigMap", short_names=("cm",)),
    _r("v1", "secrets", "Secret"),
    _r("v1", "serviceaccounts", "ServiceAccount", short_names=("sa",)),
    _r("v1", "events", "Event", short_names=("ev",)),
    _r("apps/v1", "deployments", "Deployment", short_names=("deploy",), subresources=("status",)),
    _r("apps/v1", "daemonsets", "DaemonSet", short_names=("ds",), subresources=("status",)),
    _r("apps/v1", "replicasets", "ReplicaSet", short_names=("rs",), subresources=("status",)),
    _r("apps/v1", "statefulsets", "StatefulSet", short_names=("sts",), subresources=("status",)),
    _r("batch/v1", "jobs", "Job", subresources=("status",)),
    _r("networking.k8s.io/v1", "networkpolicies", "NetworkPolicy", short_names=("netpol",)),
    _r("networking.k8s.io/v1", "ingresses", "Ingress", short_names=("ing",), subresources=("status",)),
    _r("networking.k8s.io/v1", "ingressclasses", "IngressClass", False),
    _r("discovery.k8s.io/v1", "endpointslices", "EndpointSlice"),
    _r("events.k8s.io/v1", "events", "Event", short_names=("ev",)),
    _r("coordination.k8s.io/v1", "leases", "Lease"),
    _r("rbac.authorization.k8s.io/v1", "roles", "Role"),
    _r("rbac.authorization.k8s.io/v1", "rolebindings", "RoleBinding"),
    _r("rbac.authorization.k8s.io/v1", "clusterroles", "ClusterRole", False),
    _r("rbac.authorization.k8s.io/v1", "clusterrolebindings", "ClusterRoleBinding", False),
    _r("authorization.k8s.io/v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", False, verbs=("create",)),
    _r("policy/v1", "poddisruptionbudgets", "PodDisruptionBudget", short_names=("pdb",), subresources=("status",)),
    _r("admissionregistration.k8s.io/v1", "validatingwebhookconfigurations", "ValidatingWebhookConfiguration", False),
    _r("admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations", "MutatingWebhookConfiguration", False),
    _r("apiextensions.k8s.io/v1", "customresourcedefinitions", "CustomResourceDefinition", False,
       short_names=("crd", "crds"), subresources=("status",)),
)


def from_crd(crd: dict) -> list[Resource]:
    """The resources one CustomResourceDefinition serves (one per served version)."""
    spec = crd.get("spec", {})
    names = spec.get("names", {})
    out = []
    for v in spec.get("versions", []):
        if not v.get("served", True):
            continue
        subs = tuple(sorted((v.get("subresources") or {}).keys()))
        out.append(Resource(spec["group"], v["name"], names["plural"], names["kind"],
                            spec.get("scope", "Namespaced") == "Namespaced",
                            short_names=tuple(names.get("shortNames", ())), subresources=subs, custom=True,
                            schema=(v.get("schema") or {}).get("openAPIV3Schema")))
    return out


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Sort key of k8s.io/apimachinery version.CompareKubeAwareVersionStrings: GA before beta before
    alpha, higher numbers first, anything else last in lexical order."""
    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not m:
        return (3, 0, 0, version)
    level = {None: 0, "beta": 1, "alpha": 2}[m.group(2)]
    return (level, -int(m.group(1)), -int(m.group(3) or 0), version)


class Catalogue:
    """Look-ups over the built-ins and the CRDs currently stored."""

    def __init__(self, crds: Iterable[dict]) -> None:
        self.all: list[Resource] = list(BUILTIN)
        for crd in crds:
            self.all.extend(from_crd(crd))

    def find(self, group: str, version: str, plural: str) -> Resource | None:
        for r in self.all:
            if (r.group, r.version, r.plural) == (group, version, plural):
                return r
        return None

    def by_kind(self, api_version: str, kind: str) -> Resource | None:
        group, _, version = api_version.rpartition("/")
        for r in self.all:
            if (r.group, r.version, r.kind) == (group, version, kind):
                return r
        return None

    def group_versions(self) -> dict[str, list[str]]:
        """group -> served versions, the preferred (highest priority) first, as the apiserver lists them."""
        out: dict[str, list[str]] = {}
        for r in self.all:
            if r.group:
                versions = out.setdefault(r.group, [])
                if r.version not in versions:
                    versions.append(r.version)
        return {g: sorted(vs, key=version_priority) for g, vs in out.items()}

    def in_version(self, group: str, version: str) -> list[Resource]:
        return [r for r in self.all if r.group == group and r.version == version]
