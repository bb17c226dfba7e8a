"""RBAC authorization over the Roles, ClusterRoles and bindings stored in the emulated cluster.

Why: a deny-list says only "this one call fails"; a real cluster decides every request from the
rules bound to the caller, namespace by namespace, with resourceNames, wildcards and subresources,
and refuses a Role that grants what its creator does not hold. Evaluating the stored RBAC objects
lets a test bind ``cluster-configs/kube/rbac.yaml`` to the caller and run a whole recorded run
through the same decisions a cluster makes.

Mirrors k8s.io/kubernetes plugin/pkg/auth/authorizer/rbac (``rbac.go`` RBACAuthorizer.Authorize
and its ``allowed by ... "<binding>" of <Kind> "<role>" to <subject>`` reason,
``subject_locator``/``rule.go`` matching: ``*`` verbs, groups and resources, ``pods/exec``,
``*/exec`` and ``pods/*`` resources, resourceNames only for requests that name an object) and
pkg/registry/rbac/validation/rule.go ``ConfirmNoEscalation`` (a Role / ClusterRole may only grant
rules its creator holds, unless the creator may ``escalate``; a binding may only bind a role whose
rules the creator holds, unless it may ``bind`` that role), with the 403 wording of
``NewForbidden`` and ``user "u" (groups=[...]) is attempting to grant RBAC permissions not currently
held``.

Knowingly absent: ClusterRole aggregation (``aggregationRule``), impersonation, the Node and
Webhook authorizers, non-resource URL rules (every authenticated user may read discovery,
``/version`` and the health endpoints, as the bootstrap ``system:discovery`` /
``system:public-info-viewer`` roles allow).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from . import status
from .resources import CRUD, Catalogue
from .store import Store

RBAC = "rbac.authorization.k8s.io"
ADMIN_ROLE = "cluster-admin"
DEFAULT_BINDING = "netiso-test"
GRANTED_ROLE = "netiso-test:granted"  # what deny() leaves the test user


@dataclass(frozen=True)
class Subject:
    """Who calls: a user name and its groups (a ServiceAccount token: ``system:serviceaccount:ns:name``)."""

    user: str
    groups: tuple[str, ...] = ("system:authenticated",)

    @classmethod
    def service_account(cls, namespace: str, name: str) -> Subject:
        return cls(f"system:serviceaccount:{namespace}:{name}",
                   ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"))

    def matches(self, subject: dict[str, Any], binding_namespace: str) -> bool:
        kind, name = subject.get("kind"), subject.get("name")
        if kind == "User":
            return name == self.user
        if kind == "Group":
            return name in self.groups
        if kind == "ServiceAccount":
            ns = subject.get("namespace") or binding_namespace
            return self.user == f"system:serviceaccount:{ns}:{name}"
        return False

    def describe(self) -> str:
        if self.user.startswith("system:serviceaccount:"):
            ns, name = self.user.split(":")[2:4]
            return f'ServiceAccount "{name}/{ns}"'
        return f'User "{self.user}"'


@dataclass(frozen=True)
class Request:
    """The authorizer's attributes of one resource request."""

    verb: str
    group: str
    resource: str
    subresource: str = ""
    namespace: str = ""
    name: str = ""

    @property
    def combined(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def _has(values: Iterable[str] | None, wanted: str) -> bool:
    values = list(values or [])
    return "*" in values or wanted in values


def _resource_matches(rule_resources: Iterable[str], req: Request) -> bool:
    for r in rule_resources or []:
        if r == "*" or r == req.combined:
            return True
        if req.subresource and r == f"*/{req.subresource}":
            return True
        if r.endswith("/*") and r[:-2] == req.resource and req.subresource:
            return True
    return False


def rule_allows(rule: dict[str, Any], req: Request) -> bool:
    """rbac/validation RuleAllows: verb, API group, resource[/subresource] and resourceNames."""
    if not _has(rule.get("verbs"), req.verb) or not _has(rule.get("apiGroups"), req.group):
        return False
    if not _resource_matches(rule.get("resources") or [], req):
        return False
    names = rule.get("resourceNames") or []
    return not names or req.name in names


@dataclass
class Rbac:
    """The authorizer: evaluates the store's RBAC objects; ``deny`` rewrites the test user's grant."""

    store: Store
    denials: list[tuple[str, str, str]] = field(default_factory=list)

    # -- state ---------------------------------------------------------------------------------
    def _objects(self, plural: str, namespace: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        with self.store.lock:
            return [(ns, obj) for (g, p, ns, _), obj in self.store.objects.items()
                    if g == RBAC and p == plural and (namespace is None or ns == namespace)]

    def _role(self, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        plural = "clusterroles" if kind == "ClusterRole" else "roles"
        with self.store.lock:
            return self.store.objects.get((RBAC, plural, "" if kind == "ClusterRole" else namespace, name))

    def rules_for(self, who: Subject, namespace: str) -> list[tuple[dict[str, Any], str]]:
        """Every rule bound to ``who`` that applies in ``namespace`` ("" = cluster scope), with the
        authorizer's "allowed by" text for each."""
        out: list[tuple[dict[str, Any], str]] = []
        for _, b in self._objects("clusterrolebindings"):
            if any(who.matches(s, "") for s in b.get("subjects") or []):
                ref = b.get("roleRef") or {}
                role = self._role("ClusterRole", ref.get("name", ""), "")
                why = (f'RBAC: allowed by ClusterRoleBinding "{b["metadata"]["name"]}" of ClusterRole '
                       f'"{ref.get("name")}" to {who.describe()}')
                out += [(r, why) for r in (role or {}).get("rules") or []]
        if namespace:
            for ns, b in self._objects("rolebindings", namespace):
                if any(who.matches(s, ns) for s in b.get("subjects") or []):
                    ref = b.get("roleRef") or {}
                    role = self._role(ref.get("kind", ""), ref.get("name", ""), ns)
                    why = (f'RBAC: allowed by RoleBinding "{b["metadata"]["name"]}/{ns}" of {ref.get("kind")} '
                           f'"{ref.get("name")}" to {who.describe()}')
                    out += [(r, why) for r in (role or {}).get("rules") or []]
        return out

    def authorize(self, who: Subject, req: Request) -> tuple[bool, str]:
        """(allowed, reason) as RBACAuthorizer.Authorize answers."""
        for rule, why in self.rules_for(who, req.namespace):
            if rule_allows(rule, req):
                return True, why
        return False, ""

    # -- escalation ----------------------------------------------------------------------------
    def confirm_no_escalation(self, who: Subject, verb: str, plural: str, obj: dict[str, Any],
                              namespace: str) -> None:
        """403 when creating/updating a role or binding would grant ``who`` more than it holds."""
        name = str((obj.get("metadata") or {}).get("name") or "")
        if plural in ("roles", "clusterroles"):
            if self.authorize(who, Request("escalate", RBAC, plural, namespace=namespace, name=name))[0]:
                return
            rules = obj.get("rules") or []
        else:
            ref = obj.get("roleRef") or {}
            role_plural = "clusterroles" if ref.get("kind") == "ClusterRole" else "roles"
            if self.authorize(who, Request("bind", RBAC, role_plural, namespace=namespace, name=ref.get("name", "")))[0]:
                return
            role = self._role(ref.get("kind", ""), ref.get("name", ""), namespace)
            if role is None:
                raise status.not_found(RBAC, role_plural, ref.get("name", ""))
            rules = role.get("rules") or []
        held = [r for r, _ in self.rules_for(who, namespace)]
        missing = [r for r in _expand(rules) if not any(rule_allows(h, r[1]) for h in held)]
        if not missing:
            return
        lines = "\n".join(_describe(rule) for rule in _compact([m[0] for m in missing]))
        groups = " ".join(json.dumps(g) for g in who.groups)
        raise status.ApiError(403, "Forbidden", f'{plural}.{RBAC} "{name}" is forbidden: user "{who.user}" '
                              f"(groups=[{groups}]) is attempting to grant RBAC permissions not currently held:\n{lines}",
                              {"name": name, "group": RBAC, "kind": plural})

    # -- the test user's default grant and deny() ----------------------------------------------
    def bootstrap(self, user: str) -> None:
        """cluster-admin bound to ``user``, as a kind cluster's admin kubeconfig is (kubeadm's
        ``kubeadm:cluster-admins`` binding)."""
        self._put("clusterroles", ADMIN_ROLE, {
            "apiVersion": f"{RBAC}/v1", "kind": "ClusterRole",
            "metadata": {"name": ADMIN_ROLE, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                      {"nonResourceURLs": ["*"], "verbs": ["*"]}]})
        self._bind(user, ADMIN_ROLE)

    def _bind(self, user: str, role: str) -> None:
        self._put("clusterrolebindings", DEFAULT_BINDING, {
            "apiVersion": f"{RBAC}/v1", "kind": "ClusterRoleBinding", "metadata": {"name": DEFAULT_BINDING},
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": RBAC, "kind": "User", "name": user}]})

    def _put(self, plural: str, name: str, obj: dict[str, Any]) -> None:
        res = self.store.catalogue().find(RBAC, "v1", plural)
        assert res is not None
        if self.store.get(res, None, name) is None:
            self.store.create(res, None, obj)
        else:
            self.store.replace(res, None, name, obj)

    def deny(self, user: str, verb: str, resource: str, group: str) -> None:
        """The test user keeps every permission of the current catalogue except (verb, resource, group)
        (``*`` matches any): an explicit ClusterRole replaces cluster-admin in its binding, expanded
        again whenever a CRD adds resources."""
        if not self.denials:
            self.store.on_change.append(lambda _kind, res, _obj: self._regrant(user) if res.plural ==
                                        "customresourcedefinitions" else None)
        self.denials.append((verb, resource, group))
        self._regrant(user)

    def _regrant(self, user: str) -> None:
        rules = granted_rules(self.store.catalogue(), self.denials)
        self._put("clusterroles", GRANTED_ROLE, {"apiVersion": f"{RBAC}/v1", "kind": "ClusterRole",
                                                 "metadata": {"name": GRANTED_ROLE}, "rules": rules})
        self._bind(user, GRANTED_ROLE)


def granted_rules(cat: Catalogue, denials: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
    """One rule per served resource (and subresource) with every verb but the denied ones."""
    extra = {"roles": ("bind", "escalate"), "clusterroles": ("bind", "escalate")}
    sub_verbs = {"exec": ("create", "get"), "log": ("get",), "status": ("get", "patch", "update"),
                 "finalize": ("update",), "eviction": ("create",)}
    out: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for res in cat.all:
        entries = [(res.plural, tuple(CRUD) + extra.get(res.plural, ()))]
        entries += [(f"{res.plural}/{s}", sub_verbs.get(s, ("get",))) for s in res.subresources]
        for resource, verbs in entries:
            if (res.group, resource) in seen:
                continue
            seen.add((res.group, resource))
            kept = [v for v in verbs if not any(d[0] in ("*", v) and d[1] in ("*", resource) and d[2] in ("*", res.group)
                                                for d in denials)]
            if kept:
                out.append({"apiGroups": [res.group], "resources": [resource], "verbs": kept})
    return out


def _expand(rules: list[dict[str, Any]]) -> list[tuple[dict[str, Any], Request]]:
    """Every (verb, group, resource, name) a list of rules grants, as single-value rules and requests
    (wildcards stay literal: only a wildcard covers a wildcard)."""
    out = []
    for rule in rules:
        if rule.get("nonResourceURLs"):
            continue
        for group in rule.get("apiGroups") or []:
            for resource in rule.get("resources") or []:
                base, _, sub = resource.partition("/")
                for verb in rule.get("verbs") or []:
                    for name in rule.get("resourceNames") or [""]:
                        single = {"apiGroups": [group], "resources": [resource], "verbs": [verb]}
                        if name:
                            single["resourceNames"] = [name]
                        out.append((single, Request(verb, group, base, sub, name=name)))
    return out


def _compact(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Single-value rules merged back by (group, resource, names), as the escalation message lists them."""
    merged: dict[tuple[str, str, tuple[str, ...]], list[str]] = {}
    for r in rules:
        key = (r["apiGroups"][0], r["resources"][0], tuple(r.get("resourceNames") or ()))
        merged.setdefault(key, []).append(r["verbs"][0])
    return [{"apiGroups": [g], "resources": [res], "resourceNames": list(names), "verbs": verbs}
            for (g, res, names), verbs in merged.items()]


def _describe(rule: dict[str, Any]) -> str:
    """rbacv1helpers.CompactString: ``{APIGroups:["g"], Resources:["r"], Verbs:["get" "list"]}``."""
    def q(values: list[str]) -> str:
        return "[" + " ".join(json.dumps(v) for v in values) + "]"

    parts = [f"APIGroups:{q(rule['apiGroups'])}", f"Resources:{q(rule['resources'])}"]
    if rule.get("resourceNames"):
        parts.append(f"ResourceNames:{q(rule['resourceNames'])}")
    parts.append(f"Verbs:{q(rule['verbs'])}")
    return "{" + ", ".join(parts) + "}"
