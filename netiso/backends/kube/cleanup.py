"""Removing a run from a shared cluster: at ``down()``, on Ctrl-C, at exit, and by the janitor.

A real cluster outlives netiso's process, so ownership is recorded *in the cluster*:

* every object of a run carries the label ``netiso.io/run=<run>`` (naming.RunNames.labels);
  deleting a run is deleting its labelled cluster-scoped objects (ClusterRole(Binding)s,
  IngressClass, and with ``--kubesphere controller`` its Workspaces) and its labelled namespaces
  (which takes everything inside with them - NamespaceNetworkPolicies too -, the namespace
  controller's job), then waiting, bounded, until the namespaces are gone. A namespace
  stays in phase Terminating while its content goes, and a DELETE of it meanwhile answers 409
  Conflict ("The system is ensuring all content is removed from this namespace",
  kubernetes pkg/registry/core/namespace/storage/storage.go): that means "being deleted" (another
  janitor, an earlier interrupted clean-up), so it is waited for like the others, never an error;
* the run's liveness is a ``coordination.k8s.io/v1`` Lease ``netiso-run`` in ``{run}-netiso``
  renewed by a daemon thread (:class:`LeaseKeeper`) while the run lives, the way
  client-go's leader election keeps a Lease (k8s.io/client-go/tools/leaderelection): a run is
  finished when its Lease is missing or ``renewTime + leaseDurationSeconds`` has passed;
* the janitor deletes only runs that are finished, and only objects selected by the run label:
  a namespace without the label is never listed, so never deleted.

Knowingly different from leader election: one holder per Lease, no optimistic-concurrency
takeover (a run never gives its Lease to another process), and a run younger than
:data:`BIRTH_GRACE_S` without a Lease is treated as being born, not finished (its system
namespace is created a moment before its Lease).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from netiso.backends.kube.client import Kube, KubeApiError
from netiso.backends.kube.manifests import LEASE_SECONDS, micro_time
from netiso.backends.kube.naming import LEASE_NAME, RUN_LABEL, RUN_RE, RunNames
from netiso.backends.kube.pod_states import force_delete_stateful_pods

log = logging.getLogger("netiso.kube")

# cluster-scoped kinds a run creates (namespaced ones go with their namespace)
CLUSTER_KINDS: tuple[tuple[str, str], ...] = (
    ("networking.k8s.io/v1", "IngressClass"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
)
# --kubesphere controller: the run's Workspaces (cluster-scoped, run-labelled); its NamespaceNetworkPolicies are
# namespaced and go with the namespaces. Only listed in that mode: elsewhere the API group is not served (404)
# and rbac.yaml's netiso role does not grant it.
KUBESPHERE_KINDS: tuple[tuple[str, str], ...] = (("tenant.kubesphere.io/v1alpha1", "Workspace"),)
BIRTH_GRACE_S = 120.0
RENEW_EVERY_S = LEASE_SECONDS / 3


def parse_time(text: str | None) -> datetime | None:
    """A Kubernetes Time/MicroTime (RFC 3339, ``Z``) as an aware datetime; None if absent/unreadable."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


def lease_state(kube: Kube, names: RunNames, now: datetime) -> tuple[bool, str]:
    """(alive, why) of a run from its Lease."""
    lease = kube.get("coordination.k8s.io/v1", "Lease", LEASE_NAME, names.system_namespace)
    if lease is None:
        return False, "no Lease"
    spec = lease.get("spec") or {}
    renewed = parse_time(spec.get("renewTime")) or parse_time(spec.get("acquireTime"))
    duration = int(spec.get("leaseDurationSeconds") or LEASE_SECONDS)
    if renewed is None:
        return False, "Lease never renewed"
    age = (now - renewed).total_seconds()
    holder = spec.get("holderIdentity") or "?"
    if age > duration:
        return False, f"Lease of {holder} expired {age - duration:.0f} s ago"
    return True, f"Lease of {holder} renewed {age:.0f} s ago (valid {duration} s)"


def delete_run(kube: Kube, names: RunNames, *, wait_s: float = 120.0, poll_s: float = 1.0,
               sleep: Callable[[float], None] = time.sleep,
               kinds: tuple[tuple[str, str], ...] = CLUSTER_KINDS) -> list[str]:
    """Delete every object labelled with ``names.run``; wait up to ``wait_s`` for its namespaces to go.

    ``kinds``: the cluster-scoped kinds to look for (``CLUSTER_KINDS + KUBESPHERE_KINDS`` in controller mode).
    """
    lines: list[str] = []
    for api_version, kind in kinds:
        for obj in kube.list(api_version, kind, label_selector=names.selector):
            if kube.delete(api_version, kind, obj["metadata"]["name"]):
                lines.append(f"deleted {kind} {obj['metadata']['name']}")
    for ns in kube.list("v1", "Namespace", label_selector=names.selector):
        name = ns["metadata"]["name"]
        if ((ns.get("metadata") or {}).get("labels") or {}).get(RUN_LABEL) != names.run:
            continue  # belt and braces: the selector already guarantees it
        # pods kept terminating by a long preStop sleep would hold the namespace for that long
        lines += force_delete_stateful_pods(kube, name, names.selector)
        try:
            if kube.delete("v1", "Namespace", name):
                lines.append(f"deleted namespace {name}")
        except KubeApiError as exc:
            if exc.status != 409:
                raise
            lines.append(f"namespace {name} is already being deleted (Terminating)")
    deadline = time.monotonic() + wait_s
    while True:
        left = [n["metadata"]["name"] for n in kube.list("v1", "Namespace", label_selector=names.selector)]
        if not left:
            break
        if time.monotonic() >= deadline:
            lines.append(f"still terminating after {wait_s:g} s: {', '.join(sorted(left))}")
            break
        sleep(poll_s)
    return lines


def labelled_runs(kube: Kube, kinds: tuple[tuple[str, str], ...] = CLUSTER_KINDS) -> dict[str, datetime | None]:
    """Run ids that own something in the cluster -> the youngest creation time seen for the run."""
    runs: dict[str, datetime | None] = {}
    found = list(kube.list("v1", "Namespace", label_selector=RUN_LABEL))
    for api_version, kind in kinds:
        found += kube.list(api_version, kind, label_selector=RUN_LABEL)
    for obj in found:
        meta = obj.get("metadata") or {}
        run = (meta.get("labels") or {}).get(RUN_LABEL, "")
        if not RUN_RE.match(run):
            continue
        created = parse_time(meta.get("creationTimestamp"))
        prev = runs.get(run)
        runs[run] = created if prev is None or (created is not None and created > prev) else prev
    return runs


def janitor(kube: Kube, *, now: datetime | None = None, keep: frozenset[str] = frozenset(),
            wait_s: float = 120.0, poll_s: float = 1.0, sleep: Callable[[float], None] = time.sleep,
            kinds: tuple[tuple[str, str], ...] = CLUSTER_KINDS) -> list[str]:
    """Delete the runs that are finished (Lease missing or expired); one line per decision and deletion.

    ``keep`` are run ids of this process (never collected, whatever their Lease says). Each finished
    run's namespaces are waited for (up to ``wait_s``, polled every ``poll_s``) until they are gone:
    a run is collected when its namespaces no longer exist, not when their deletion was asked.
    """
    now = now or datetime.now(UTC)
    lines: list[str] = []
    for run, youngest in sorted(labelled_runs(kube, kinds).items()):
        if run in keep:
            continue
        names = RunNames(run)
        alive, why = lease_state(kube, names, now)
        if not alive and why == "no Lease" and youngest is not None and (now - youngest).total_seconds() < BIRTH_GRACE_S:
            alive, why = True, f"no Lease yet, created {(now - youngest).total_seconds():.0f} s ago (being born)"
        if alive:
            lines.append(f"run {run}: kept ({why})")
            continue
        lines.append(f"run {run}: finished ({why})")
        lines += [f"  {line}" for line in delete_run(kube, names, wait_s=wait_s, poll_s=poll_s, sleep=sleep,
                                                      kinds=kinds)]
    return lines


class LeaseKeeper:
    """Renews a run's Lease from a daemon thread until :meth:`stop` (a failed renewal is logged, retried)."""

    def __init__(self, kube: Kube, names: RunNames, *, every_s: float = RENEW_EVERY_S) -> None:
        self.kube = kube
        self.names = names
        self.every_s = every_s
        self.renewals = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"netiso-lease-{names.run}", daemon=True)

    def start(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def renew(self) -> None:
        self.kube.patch("coordination.k8s.io/v1", "Lease", LEASE_NAME,
                        {"spec": {"renewTime": micro_time(datetime.now(UTC))}}, self.names.system_namespace)
        self.renewals += 1

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.renew()
            except (KubeApiError, Exception) as exc:  # a renewal failure must not kill the thread
                log.warning("renewing Lease of run %s: %s", self.names.run, exc)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
