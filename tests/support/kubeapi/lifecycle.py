"""Time in the emulated cluster: what changes between one read of an object and the next.

Why: a real cluster is never done when a write returns. Pods are Pending before they run, a
DaemonSet's status lags its spec, a CRD's kind answers 404 until it is Established, a deleted
namespace stays Terminating while its content goes, a deleted pod lingers through its grace
period. A client that checks once instead of polling works against an instant emulator and fails
on a real cluster; this module makes the emulator fail it too.

Time here is *observations*, not seconds: an object moves on when a client reads it through the
API (a GET of it, a LIST that includes it; for a CRD also a request under its ``/apis/<group>``,
for a workload's pods also a read of the workload), never when the test itself peeks at the store.
So the selftest stays fast (no sleeps) and deterministic, and a client that polls converges while
one that reads once does not. :class:`Timing` holds the knobs, all on by default;
``Timing.instant()`` (``FakeCluster.instant()``) is the old everything-at-once behaviour for a test
that wants it (each such test says why). Objects seeded with ``FakeCluster.add`` are "already
there" and never wait.

Mirrors (each step named after the upstream component that takes it):

* kubelet: a new pod is Pending (scheduled, containers ``ContainerCreating``, no pod IP, a Normal
  ``Pulling`` Event) for ``pod_start`` observations, then Running and Ready;
* graceful deletion (k8s.io/apiserver pkg/registry/rest/delete.go BeforeDelete, pod strategy
  CheckGracefulDelete): a deleted pod keeps existing with ``deletionTimestamp`` and
  ``deletionGracePeriodSeconds`` (DeleteOptions', else the pod's terminationGracePeriodSeconds, else
  30; its EndpointSlice endpoint ``terminating``) for ``pod_grace`` observations, longer by its
  preStop sleep hook (the kubelet runs it before stopping the containers, pkg/kubelet/lifecycle
  handlers.go), and a DELETE meanwhile answers the pod again; ``gracePeriodSeconds: 0`` deletes at once;
* namespace controller + pkg/registry/core/namespace/storage/storage.go: a deleted namespace stays in
  phase Terminating with ``deletionTimestamp`` for ``namespace_finalize`` observations; a DELETE
  meanwhile answers 409 Conflict (see store.py); creates in it answer 403 (NamespaceLifecycle);
* apiextensions-apiserver's establishing controller: a new CRD has ``NamesAccepted`` True and
  ``Established`` False for ``crd_establish`` observations; until Established its kinds are not
  served (404 on their paths, absent from discovery);
* the DaemonSet / Deployment controllers (workloads.py ``step``): a spec change is first only
  *observed* (``status.observedGeneration``), then pods are replaced one per observation, each of
  them starting as above, so ``updatedNumberScheduled``/``updatedReplicas`` and
  ``numberReady``/``readyReplicas`` climb over successive reads.

Knowingly differs: observations stand for time, so a client that polls very fast converges in
fewer seconds than on a real cluster (no assertion here is about seconds); watches do not count as
observations; a namespace's content is removed at once at its DELETE (its phase lingers, not its
pods); controllers' own deletions of pods (rollouts) are immediate, not graceful.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .resources import Resource
from .store import Key, Store, now

if TYPE_CHECKING:
    from .controllers import Controllers
    from .workloads import WorkloadControllers

Obj = dict[str, Any]
WORKLOADS = (("apps", "daemonsets"), ("apps", "deployments"), ("batch", "jobs"))


@dataclass
class Timing:
    """How many observations each transition takes (0 = at once); tune per test on ``FakeCluster.timing``."""

    pod_start: int = 2  # reads of a new pod (or of its workload) while it is Pending
    pod_grace: int = 2  # reads of a deleted pod while it is Terminating
    prestop_second: int = 1  # further reads per second of a preStop sleep hook (bounded by the grace period)
    namespace_finalize: int = 3  # reads of a deleted namespace while it is Terminating
    crd_establish: int = 2  # reads of a new CRD (or of its group) before it is Established
    rollout: bool = True  # workloads roll out one pod per read instead of at their write
    exec_frames: int = 3  # stdout of an exec is sent in this many websocket frames
    exec_frame_gap_s: float = 0.002  # real seconds between two of them (streamed, never a long sleep)

    @classmethod
    def instant(cls) -> Timing:
        """Everything at once, as the emulator behaved before it had time."""
        return cls(pod_start=0, pod_grace=0, namespace_finalize=0, crd_establish=0, rollout=False, exec_frames=1,
                   exec_frame_gap_s=0.0)


def _prestop_sleep(pod: Obj) -> int:
    """The longest ``lifecycle.preStop.sleep.seconds`` of the pod's containers (0 without one)."""
    return max((int((((c.get("lifecycle") or {}).get("preStop") or {}).get("sleep") or {}).get("seconds", 0))
                for c in (pod.get("spec") or {}).get("containers") or []), default=0)


def established(crd: Obj) -> bool:
    return any(c.get("type") == "Established" and c.get("status") == "True"
               for c in (crd.get("status") or {}).get("conditions") or [])


class Lifecycle:
    """Counts observations per object and moves objects on; registered on a Store next to the controllers."""

    def __init__(self, store: Store, controllers: Controllers, timing: Timing) -> None:
        self.store = store
        self.controllers = controllers
        self.timing = timing
        self.workloads: WorkloadControllers | None = None
        self.left: dict[Key, tuple[str, int]] = {}  # object -> (what it waits for, observations left)
        self.start_after: dict[tuple[str, str], int] = {}  # (namespace, pod) -> its own pod_start
        self._local = threading.local()
        controllers.start_later = self._start_later
        store.namespace_linger = lambda: 0 if self.seeding_now else self.timing.namespace_finalize
        store.on_create.append(self._created)
        store.on_change.append(self._changed)

    # -- seeding: objects that are "already there" --------------------------------------------
    @property
    def seeding_now(self) -> bool:
        return bool(getattr(self._local, "seeding", False))

    @contextlib.contextmanager
    def seeding(self) -> Iterator[None]:
        self._local.seeding = True
        try:
            yield
        finally:
            self._local.seeding = False

    @property
    def gradual_rollouts(self) -> bool:
        return self.timing.rollout and not self.seeding_now

    # -- hooks --------------------------------------------------------------------------------
    def _start_later(self, pod: Obj) -> bool:
        """Asked by Controllers when a pod is created: does it start later (and from when)?"""
        meta = pod["metadata"]
        reads = self.start_after.get((meta.get("namespace"), meta["name"]), self.timing.pod_start)
        if self.seeding_now or reads <= 0:
            return False
        self.left[("", "pods", meta.get("namespace") or "", meta["name"])] = ("start", reads)
        return True

    def _created(self, res: Resource, obj: Obj) -> None:
        if (res.group, res.plural) != ("apiextensions.k8s.io", "customresourcedefinitions"):
            return
        if established(obj):
            return  # seeded with its status
        spec = obj.get("spec") or {}
        later = not self.seeding_now and self.timing.crd_establish > 0
        ts = now()
        storage = [v.get("name") for v in spec.get("versions") or [] if v.get("storage")]
        obj["status"] = {"acceptedNames": spec.get("names") or {}, "storedVersions": storage, "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found",
             "lastTransitionTime": ts},
            {"type": "Established", "status": "False" if later else "True",
             "reason": "Installing" if later else "InitialNamesAccepted",
             "message": "the initial names have been accepted" if not later else "not all names are accepted",
             "lastTransitionTime": ts}]}
        if later:
            self.left[Store.key(res, None, obj["metadata"]["name"])] = ("establish", self.timing.crd_establish)

    def _changed(self, kind: str, res: Resource, obj: Obj) -> None:
        if kind == "DELETED":
            self.left.pop(Store.key(res, obj["metadata"].get("namespace"), obj["metadata"]["name"]), None)

    # -- graceful pod deletion (called by the server's DELETE) --------------------------------
    def delete_pod(self, res: Resource, namespace: str, name: str, options: Obj | None = None) -> Obj | None:
        """Begin graceful deletion; the pod as the DELETE answers it, or None when it goes at once.

        The grace period is DeleteOptions ``gracePeriodSeconds``, else the pod's
        ``terminationGracePeriodSeconds`` (default 30); 0 deletes at once, also a pod already
        terminating (what ``kubectl delete --force --grace-period=0`` sends); a shorter grace for a
        pod already terminating shortens its hold (the kubelet cancels a running preStop sleep). A container's
        ``preStop: {sleep: {seconds: S}}`` hook (PodLifecycleSleepAction) keeps the kubelet from
        stopping it for S seconds, at most the grace period: the pod stays Terminating (Ready, so its
        slice endpoint ``serving``) for ``prestop_second`` observations per such second on top of
        ``pod_grace``.
        """
        with self.store.lock:
            pod = self.store.get(res, namespace, name)
            grace = (options or {}).get("gracePeriodSeconds")
            if grace is None:
                grace = (pod or {}).get("spec", {}).get("terminationGracePeriodSeconds", 30)
            if pod is None or self.timing.pod_grace <= 0 or grace == 0:
                self.left.pop(Store.key(res, namespace, name), None)
                return None
            key = Store.key(res, namespace, name)
            if pod["metadata"].get("deletionTimestamp"):
                # already terminating: a repeated DELETE answers the pod again; a shorter grace
                # shortens it (BeforeDelete), and the kubelet cuts the running preStop sleep short
                if grace < (pod["metadata"].get("deletionGracePeriodSeconds") or grace + 1):
                    pod["metadata"]["deletionGracePeriodSeconds"] = grace
                    what, left = self.left.get(key, ("grace", 0))
                    self.left[key] = (what, min(left, self.timing.pod_grace + grace * self.timing.prestop_second))
                    return self.store.replace(res, namespace, name, pod)
                return pod
            pod["metadata"].update(deletionTimestamp=now(), deletionGracePeriodSeconds=grace)
            self.left[key] = ("grace", self.timing.pod_grace + min(_prestop_sleep(pod), grace) * self.timing.prestop_second)
            return self.store.replace(res, namespace, name, pod)

    # -- observations -------------------------------------------------------------------------
    def observe_group(self, group: str) -> None:
        """A request under ``/apis/<group>``: time passes for that group's pending CRDs."""
        with self.store.lock:
            crds = self.store.catalogue().find("apiextensions.k8s.io", "v1", "customresourcedefinitions")
            assert crds is not None
            for key, (what, _) in list(self.left.items()):
                if what == "establish":
                    crd = self.store.objects.get(key)
                    if crd is not None and (crd.get("spec") or {}).get("group") == group:
                        self._tick(crds, key, crd)

    def observe(self, res: Resource, objs: list[Obj | None]) -> None:
        """Objects a client just read through the API (a GET's object, a LIST's items)."""
        with self.store.lock:
            for view in objs:
                if view is None:
                    continue
                meta = view["metadata"]
                key = Store.key(res, meta.get("namespace"), meta["name"])
                obj = self.store.objects.get(key)
                if obj is None:
                    continue
                if (res.group, res.plural) == ("", "namespaces"):
                    self.store.observe_namespace(meta["name"])
                elif (res.group, res.plural) in WORKLOADS and self.workloads is not None:
                    pods = self.store.catalogue().find("", "v1", "pods")
                    assert pods is not None
                    for pod in self.workloads.owned(meta["namespace"], obj["kind"], meta["name"]):
                        key_p = Store.key(pods, meta["namespace"], pod["metadata"]["name"])
                        if key_p in self.left:  # time passes for its pods too
                            self._tick(pods, key_p, self.store.objects[key_p])
                    self.workloads.step(res, self.store.objects.get(key) or obj)
                elif key in self.left:
                    self._tick(res, key, obj)

    def _tick(self, res: Resource, key: Key, obj: Obj) -> None:
        what, left = self.left[key]
        if left > 0:
            self.left[key] = (what, left - 1)
            return
        del self.left[key]
        ns, name = obj["metadata"].get("namespace"), obj["metadata"]["name"]
        if what == "start":
            self.controllers.starting.discard((ns, name))
            self.store.replace(res, ns, name, {**obj, "status": self.controllers.pod_status(obj)}, "status")
        elif what == "grace":
            self.store.delete(res, ns, name)
        elif what == "establish":
            status = dict(obj.get("status") or {})
            status["conditions"] = [
                {**c, "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted",
                 "lastTransitionTime": now()} if c.get("type") == "Established" else c for c in status.get("conditions") or []]
            self.store.replace(res, None, name, {**obj, "status": status}, "status")
