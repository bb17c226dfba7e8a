"""The fake API server's object store: create / read / list / replace / patch / delete, with watches.

Why: everything the HTTP layer and the controller emulation do goes through one thread-safe
store, so a test can seed and inspect objects from its own thread while the server's event
loop serves the official client.

Mirrors the generic registry of k8s.io/apiserver (pkg/registry/generic/registry/store.go):
server-set ``uid``, ``creationTimestamp``, ``resourceVersion`` (one cluster-wide counter, as etcd's
revision), ``generation``; 409 AlreadyExists on a taken name; 409 Conflict when an update carries
a stale ``resourceVersion``; 404 NotFound; ``generateName``; RFC 1123 name and label-value
validation (422 Invalid); custom resources checked against their CRD's openAPIV3Schema (crd_schema.py, 422 Invalid:
types, enums, required fields, patterns; unknown fields are kept where the real server prunes
them); the status subresource split (writes to the main resource keep the
stored status, ``/status`` writes change only status); namespaced creates into a missing
namespace (404) or a terminating one (403, NamespaceLifecycle admission); namespace deletion
removing everything in it, the namespace itself staying in phase Terminating for
``namespace_linger()`` observations (lifecycle.py), and a DELETE of a Terminating namespace
answered 409 Conflict as pkg/registry/core/namespace/storage/storage.go answers it. Patches (patching.py): JSON merge patch
(RFC 7386), JSON patch (RFC 6902: add/remove/replace/test), and strategic merge patch and
apply patch treated as merge patches (the real strategic merge merges lists such as containers
by key; this one replaces lists). Strategic merge on custom resources is refused with 415 as
the real server refuses it. Knowingly absent: managedFields, finalizers and garbage collection
by ownerReferences, admission, defaulting beyond the fields above, resourceVersion history for
watches (a watch with a resourceVersion starts "now").
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import itertools
import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import status
from .crd_schema import check_schema
from .patching import patched
from .resources import Catalogue, Resource
from .selectors import Predicate
from .validation_rules import (  # the apiserver's name rules and their texts, written once
    DNS1123_LABEL,
    DNS1123_SUBDOMAIN,
    LABEL_MSG,
    LABEL_NAMED,
    LABEL_VALUE,
    LABEL_VALUE_MSG,
    SUBDOMAIN_MSG,
)

Key = tuple[str, str, str, str]  # group, plural, namespace ("" when cluster-scoped), name



def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Watcher:
    resource: Resource
    namespace: str | None
    match: Predicate
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue


class Store:
    """All objects of one fake cluster. Every method may be called from any thread."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.objects: dict[Key, dict[str, Any]] = {}
        self._rv = itertools.count(1000)
        self.last_rv = "999"
        self.watchers: list[Watcher] = []
        # observations a deleted namespace stays Terminating (lifecycle.py sets it from its Timing)
        self.namespace_linger: Callable[[], int] = lambda: 0
        self._lingering: dict[str, int] = {}
        self._catalogue: Catalogue | None = None
        self._served: Catalogue | None = None
        # controller emulation: mutate an object about to be created; react after any write
        self.on_create: list[Callable[[Resource, dict[str, Any]], None]] = []
        self.on_change: list[Callable[[str, Resource, dict[str, Any]], None]] = []

    # -- catalogue ---------------------------------------------------------------------------
    def catalogue(self) -> Catalogue:
        with self.lock:
            if self._catalogue is None:
                crds = [o for (g, p, _, _), o in self.objects.items() if (g, p) == ("apiextensions.k8s.io",
                                                                                  "customresourcedefinitions")]
                self._catalogue = Catalogue(crds)
            return self._catalogue

    def resource(self, api_version: str, plural: str) -> Resource:
        """A kind the catalogue knows (built-in or from a CRD), by ``apiVersion`` and plural; the controllers'
        lookup, so an unknown one is a bug in the emulator (AssertionError), not an API answer."""
        group, _, version = api_version.rpartition("/")
        res = self.catalogue().find(group, version, plural)
        assert res is not None, plural
        return res

    def served_catalogue(self) -> Catalogue:
        """What the API serves: the built-ins and the CRDs that are Established (the apiextensions
        server serves a CRD's kinds, and lists them in discovery, only from then on)."""
        with self.lock:
            if self._served is None:
                crds = [o for (g, p, _, _), o in self.objects.items() if (g, p) == ("apiextensions.k8s.io",
                                                                                  "customresourcedefinitions")
                        and any(c.get("type") == "Established" and c.get("status") == "True"
                                for c in (o.get("status") or {}).get("conditions") or [])]
                self._served = Catalogue(crds)
            return self._served

    def _next_rv(self) -> str:
        self.last_rv = str(next(self._rv))
        return self.last_rv

    @staticmethod
    def key(res: Resource, namespace: str | None, name: str) -> Key:
        return (res.group, res.plural, (namespace or "") if res.namespaced else "", name)

    # -- reads --------------------------------------------------------------------------------
    def get(self, res: Resource, namespace: str | None, name: str) -> dict[str, Any] | None:
        with self.lock:
            return self._view(res, self.objects.get(self.key(res, namespace, name)))

    def observe_namespace(self, name: str) -> None:
        """A client read a Terminating namespace: one observation less before it is gone."""
        with self.lock:
            if name not in self._lingering:
                return
            if self._lingering[name] <= 0:
                self._finish_namespace(name)
            else:
                self._lingering[name] -= 1

    def list(self, res: Resource, namespace: str | None, match: Predicate | None = None) -> list[dict[str, Any]]:
        with self.lock:
            out = []
            for (g, p, ns, _), obj in sorted(self.objects.items()):
                if (g, p) != (res.group, res.plural) or (res.namespaced and namespace and ns != namespace):
                    continue
                view = self._view(res, obj)
                if match is None or match(view):
                    out.append(view)
            return out

    @staticmethod
    def _view(res: Resource, obj: dict[str, Any] | None) -> dict[str, Any] | None:
        if obj is None:
            return None
        out = copy.deepcopy(obj)
        out["apiVersion"] = res.api_version  # one storage, served in the requested version
        return out

    # -- writes -------------------------------------------------------------------------------
    def create(self, res: Resource, namespace: str | None, obj: dict[str, Any], *, keep_status: bool = False) -> dict:
        with self.lock:
            obj = copy.deepcopy(obj)
            meta = obj.setdefault("metadata", {})
            if res.namespaced:
                namespace = namespace or meta.get("namespace") or "default"
                if meta.get("namespace") and meta["namespace"] != namespace:
                    raise status.bad_request("the namespace of the provided object does not match the namespace sent on "
                                             "the request")
                meta["namespace"] = namespace
            else:
                meta.pop("namespace", None)
                namespace = None
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + "".join(random.choices("bcdfghjklmnpqrstvwxz2456789", k=5))
            name = meta.get("name") or ""
            self._validate(res, obj, name)
            check_schema(res, obj, name)
            if namespace is not None:
                ns = self.objects.get(("", "namespaces", "", namespace))
                if ns is None:
                    raise status.not_found("", "namespaces", namespace)
                if (ns.get("status") or {}).get("phase") == "Terminating":
                    raise status.terminating(res.group, res.plural, name, namespace)
            key = self.key(res, namespace, name)
            if key in self.objects:
                raise status.already_exists(res.group, res.plural, name)
            obj["apiVersion"], obj["kind"] = res.api_version, res.kind
            if not keep_status and "status" in res.subresources:
                obj.pop("status", None)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now()
            if "spec" in obj or res.custom:
                meta["generation"] = 1
            if (res.group, res.plural) == ("", "namespaces"):
                meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = name
                obj.setdefault("spec", {"finalizers": ["kubernetes"]})
                obj.setdefault("status", {})["phase"] = "Active"
            for hook in self.on_create:
                hook(res, obj)
            return self._commit("ADDED", res, key, obj)

    def replace(self, res: Resource, namespace: str | None, name: str, obj: dict[str, Any],
                subresource: str | None = None) -> dict[str, Any]:
        with self.lock:
            key = self.key(res, namespace, name)
            old = self.objects.get(key)
            if old is None:
                raise status.not_found(res.group, res.plural, name)
            meta = obj.get("metadata") or {}
            if meta.get("name", name) != name:
                raise status.bad_request(f'the name of the object ({meta.get("name")}) does not match the name on the URL '
                                         f"({name})")
            sent_rv = meta.get("resourceVersion")
            if sent_rv and sent_rv != old["metadata"]["resourceVersion"]:
                raise status.ApiError(409, "Conflict", f'Operation cannot be fulfilled on {res.group_resource} "{name}": '
                                      "the object has been modified; please apply your changes to the latest version "
                                      "and try again", {"name": name, **({"group": res.group} if res.group else {}),
                                                        "kind": res.plural})
            return self._store_update(res, key, old, copy.deepcopy(obj), subresource)

    def patch(self, res: Resource, namespace: str | None, name: str, body: Any, content_type: str,
              subresource: str | None = None) -> dict[str, Any]:
        with self.lock:
            key = self.key(res, namespace, name)
            old = self.objects.get(key)
            if old is None:
                raise status.not_found(res.group, res.plural, name)
            new = patched(res, self._view(res, old), body, content_type.split(";")[0].strip())
            return self._store_update(res, key, old, new, subresource)

    def _store_update(self, res: Resource, key: Key, old: dict, new: dict, subresource: str | None) -> dict[str, Any]:
        if subresource == "status":
            merged = copy.deepcopy(old)
            merged["status"] = new.get("status")
            new = merged
        else:
            if "status" in res.subresources:
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
            self._validate(res, new, key[3])
        check_schema(res, new, key[3])
        meta = new.setdefault("metadata", {})
        for fixed in ("uid", "creationTimestamp", "namespace", "name", "deletionTimestamp", "generation"):
            if fixed in old["metadata"]:
                meta[fixed] = old["metadata"][fixed]
        if "generation" in meta and new.get("spec") != old.get("spec"):
            meta["generation"] += 1
        new["apiVersion"], new["kind"] = res.api_version, res.kind
        return self._commit("MODIFIED", res, key, new)

    def _commit(self, event: str, res: Resource, key: Key, obj: dict[str, Any]) -> dict[str, Any]:
        """Store a created or updated object under a new resourceVersion, tell the watchers, return its view
        (a CRD written changes what the catalogue serves)."""
        obj["metadata"]["resourceVersion"] = self._next_rv()
        self.objects[key] = obj
        if (res.group, res.plural) == ("apiextensions.k8s.io", "customresourcedefinitions"):
            self._catalogue = self._served = None
        self._changed(event, res, obj)
        return self._view(res, obj)  # type: ignore[return-value]

    def delete(self, res: Resource, namespace: str | None, name: str) -> dict[str, Any]:
        """Removes the object and returns its last state (namespaces: in phase Terminating)."""
        with self.lock:
            key = self.key(res, namespace, name)
            obj = self.objects.get(key)
            if obj is None:
                raise status.not_found(res.group, res.plural, name)
            if (res.group, res.plural) == ("", "namespaces"):
                if obj["metadata"].get("deletionTimestamp"):
                    raise status.namespace_terminating_conflict(name)
                obj["metadata"].setdefault("deletionTimestamp", now())
                obj.setdefault("status", {})["phase"] = "Terminating"
                obj["metadata"]["resourceVersion"] = self._next_rv()
                view = self._view(res, obj)
                self._changed("MODIFIED", res, obj)
                self._remove_namespace_content(name)
                linger = self.namespace_linger()
                if linger > 0:
                    self._lingering.setdefault(name, linger)  # visible Terminating for ``linger`` reads
                else:
                    self._finish_namespace(name)
                return view  # type: ignore[return-value]
            del self.objects[key]
            if (res.group, res.plural) == ("apiextensions.k8s.io", "customresourcedefinitions"):
                self._catalogue = self._served = None
            obj["metadata"]["deletionTimestamp"] = now()
            self._changed("DELETED", res, obj)
            return self._view(res, obj)  # type: ignore[return-value]

    def _remove_namespace_content(self, namespace: str) -> None:
        cat = self.catalogue()
        for key in [k for k in self.objects if k[2] == namespace]:
            obj = self.objects.pop(key, None)
            if obj is None:  # a controller reacting to an earlier removal already took it
                continue
            res = cat.by_kind(obj["apiVersion"], obj["kind"])
            if res is not None:
                self._changed("DELETED", res, obj)

    def _finish_namespace(self, name: str) -> None:
        self._lingering.pop(name, None)
        obj = self.objects.pop(("", "namespaces", "", name), None)
        if obj is not None:
            res = self.catalogue().find("", "v1", "namespaces")
            assert res is not None
            self._changed("DELETED", res, obj)

    def _validate(self, res: Resource, obj: dict[str, Any], name: str) -> None:
        """Name and label values, worded as the apiserver's ValidateObjectMeta (validation_rules.py's texts)."""
        if not name:
            raise status.invalid(res.kind, res.group, "", "metadata.name", "",
                                 "name or generateName is required")
        as_label = (res.group, res.plural) in LABEL_NAMED
        if as_label and (len(name) > 63 or not DNS1123_LABEL.match(name)):
            raise status.invalid(res.kind, res.group, name, "metadata.name", name,
                                 LABEL_MSG + ("" if len(name) <= 63 else "; must be no more than 63 characters"))
        if not as_label and (len(name) > 253 or not DNS1123_SUBDOMAIN.match(name)) and ":" not in name:
            raise status.invalid(res.kind, res.group, name, "metadata.name", name, SUBDOMAIN_MSG)
        for v in ((obj.get("metadata") or {}).get("labels") or {}).values():
            if not isinstance(v, str) or len(v) > 63 or not LABEL_VALUE.match(v):
                raise status.invalid(res.kind, res.group, name, "metadata.labels", str(v), LABEL_VALUE_MSG)

    # -- watches ------------------------------------------------------------------------------
    def _changed(self, kind: str, res: Resource, obj: dict[str, Any]) -> None:
        ns = (obj.get("metadata") or {}).get("namespace")
        for w in list(self.watchers):
            if (w.resource.group, w.resource.plural) != (res.group, res.plural):
                continue
            if w.namespace and ns != w.namespace:
                continue
            view = self._view(w.resource, obj)
            if w.match(view):  # type: ignore[arg-type]
                w.loop.call_soon_threadsafe(w.queue.put_nowait, {"type": kind, "object": view})
        for hook in self.on_change:
            hook(kind, res, obj)

    def subscribe(self, watcher: Watcher) -> None:
        with self.lock:
            self.watchers.append(watcher)

    def unsubscribe(self, watcher: Watcher) -> None:
        with self.lock:
            if watcher in self.watchers:
                self.watchers.remove(watcher)
