"""What a write passes through before it is stored: validation, admission, RBAC escalation, field ownership.

Why: server.py routes requests; this module holds the order a real kube-apiserver runs a create,
update or patch through, so each strictness can be switched off per test (``Strictness``) while
everything else keeps working. The order mirrors k8s.io/apiserver pkg/endpoints/handlers
(create.go, update.go, patch.go) and pkg/registry/generic/registry/store.go: decode (400), the
PatchOptions check (422), the patch applied to the live object (server-side apply: apply.py), the
strategy's validation (422: validation.py; custom resources: store.py against the CRD), RBAC's
escalation check for roles and bindings (403: rbac.py), the validating admission plugins (Pod
Security: admission.py, 403), then storage with managedFields updated.

Knowingly differs: no mutating admission beyond what server.py's ServiceAccount lag emulates, no
defaulting before validation (a Service port without ``protocol`` is validated as written), and
status-subresource writes are neither validated nor tracked in managedFields.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from . import admission, apply, status, validation
from .patching import patched
from .rbac import Rbac, Subject
from .resources import Resource
from .store import Store

APPLY_TYPE = "application/apply-patch+yaml"
RBAC_WRITES = {"roles", "clusterroles", "rolebindings", "clusterrolebindings"}


@dataclass
class Strictness:
    """Which real-server behaviours are on (all by default); a test switches one off when it is about
    something else, or sets the cluster-wide Pod Security default (AdmissionConfiguration
    ``defaults.enforce``; kind and kubeadm leave it ``privileged``)."""

    validation: bool = True
    admission: bool = True
    server_side_apply: bool = True
    authorization: bool = True
    pod_security_default: str = "privileged"
    # a level enforced whatever a namespace's label says: what a cluster policy engine (Kyverno's or
    # Gatekeeper's Pod Security policies) does; built-in Pod Security Admission always honours the label
    pod_security_forced: str | None = None


@dataclass
class Writes:
    store: Store
    rbac: Rbac
    strict: Strictness
    warnings: list[str] = field(default_factory=list)  # every Warn-mode warning answered, in order

    def _validate(self, res: Resource, obj: dict[str, Any], query: Any, *, is_apply: bool = False,
                  decode_only: bool = False) -> list[str]:
        warned: list[str] = []
        if self.strict.validation and not res.custom:
            validation.check(res, obj, field_validation=query.get("fieldValidation"), apply=is_apply, warnings=warned,
                             decode_only=decode_only)
        self.warnings.extend(warned)
        return warned

    def _admit(self, res: Resource, namespace: str | None, obj: dict[str, Any], who: Subject, verb: str) -> None:
        if self.strict.authorization and res.group == "rbac.authorization.k8s.io" and res.plural in RBAC_WRITES:
            self.rbac.confirm_no_escalation(who, verb, res.plural, obj, namespace or "")
        if self.strict.admission and (res.group, res.plural) == ("", "pods") and verb == "create":
            ns_res = self.store.catalogue().find("", "v1", "namespaces")
            assert ns_res is not None
            admission.admit_pod(obj, self.store.get(ns_res, None, namespace or ""), self.strict.pod_security_default,
                                self.strict.pod_security_forced)

    def create(self, res: Resource, namespace: str | None, body: dict[str, Any], who: Subject, query: Any,
               user_agent: str) -> tuple[dict[str, Any], list[str]]:
        body = copy.deepcopy(body)
        warned = self._validate(res, body, query)
        self._admit(res, namespace, body, who, "create")
        if self.strict.server_side_apply:
            apply.record_update(res, None, body, query.get("fieldManager") or apply.manager_from(user_agent))
        return self.store.create(res, namespace, body), warned

    def update(self, res: Resource, namespace: str | None, name: str, body: dict[str, Any], sub: str | None,
               who: Subject, query: Any, user_agent: str) -> tuple[dict[str, Any], list[str]]:
        warned: list[str] = []
        if sub is None:
            body = copy.deepcopy(body)
            warned = self._validate(res, body, query)
            self._admit(res, namespace, body, who, "update")
            old = self.store.get(res, namespace, name)
            if self.strict.server_side_apply and old is not None:
                apply.record_update(res, old, body, query.get("fieldManager") or apply.manager_from(user_agent))
        return self.store.replace(res, namespace, name, body, sub), warned

    def patch(self, res: Resource, namespace: str | None, name: str, body: Any, content_type: str, sub: str | None,
              who: Subject, query: Any, user_agent: str) -> tuple[dict[str, Any], int, list[str]]:
        """The patched (or, for an apply to a missing object, created) object and the HTTP code."""
        ctype = content_type.split(";")[0].strip()
        is_apply = ctype == APPLY_TYPE
        if self.strict.server_side_apply:
            apply.check_patch_options(is_apply, query.get("fieldManager"), query.get("force"))
        with self.store.lock:
            live = self.store.get(res, namespace, name)
            if is_apply and self.strict.server_side_apply:
                return self._apply(res, namespace, name, body, live, who, query)
            if live is None:
                if is_apply:  # the lenient path: an apply creates
                    return self.store.create(res, namespace, body), 201, []
                raise status.not_found(res.group, res.plural, name)
            new = patched(res, live, body, ctype)
            warned: list[str] = []
            if sub is None:
                warned = self._validate(res, new, query)
                self._admit(res, namespace, new, who, "update")
                if self.strict.server_side_apply:
                    apply.record_update(res, live, new, query.get("fieldManager") or apply.manager_from(user_agent))
            return self.store.replace(res, namespace, name, new, sub), 200, warned

    def _apply(self, res: Resource, namespace: str | None, name: str, body: Any, live: dict[str, Any] | None,
               who: Subject, query: Any) -> tuple[dict[str, Any], int, list[str]]:
        if not isinstance(body, dict):
            raise status.bad_request("error decoding YAML: the apply configuration is not an object")
        cfg = copy.deepcopy(body)
        meta = cfg.setdefault("metadata", {})
        if meta.get("name", name) != name:
            raise status.bad_request(f'the name of the object ({meta.get("name")}) does not match the name on the URL '
                                     f"({name})")
        meta["name"] = name
        # the apply configuration is decoded (types, unknown fields); the merged object is validated
        warned = self._validate(res, cfg, query, is_apply=True, decode_only=True)
        new = apply.apply(res, live, cfg, str(query.get("fieldManager")), query.get("force") in ("true", "1"))
        self._validate(res, new, {"fieldValidation": "Ignore"})
        if live is None:
            self._admit(res, namespace, new, who, "create")
            return self.store.create(res, namespace, new), 201, warned
        self._admit(res, namespace, new, who, "update")
        new["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
        return self.store.replace(res, namespace, name, new), 200, warned
