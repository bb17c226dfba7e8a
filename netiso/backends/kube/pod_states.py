"""Putting a workload replica into its scenario endpoint state on a real cluster.

The states (``netiso.model.endpoint_states``) are made the way they happen on a cluster, never
by writing an EndpointSlice:

* ``not-ready``: the pod's readiness probe is an ``httpGet`` on a port nothing in the pod listens
  on (connection refused, so the kubelet keeps the Ready condition False); the pod still runs and
  serves its ports. The realization waits for such a pod to be *Running and not Ready* instead of
  Ready (``waiting.py``).
* ``terminating``: once every pod is up, the pod is deleted gracefully. Its containers carry a
  ``preStop: {sleep: {seconds: N}}`` hook (PodLifecycleSleepAction: alpha in Kubernetes 1.29,
  beta and on by default from 1.30, GA in 1.34; older API servers drop the field or refuse it)
  and ``terminationGracePeriodSeconds`` N, so the kubelet keeps the containers running through
  the whole run; the readiness probe keeps passing, so the EndpointSlice controller writes
  ``ready: false, serving: true, terminating: true``. The realization waits until the slice says so.
* ``terminating-not-ready``: both: a failing readiness probe and the graceful deletion
  (``serving: false, terminating: true``).

Such a pod would hold its namespace in Terminating for N seconds at clean-up; clean-up deletes
the run's pods that carry :data:`STATE_ANNOTATION` again with ``gracePeriodSeconds: 1`` first. Not
0: a force deletion removes the Pod from the API at once while the kubelet goes on with the
termination it began (N seconds of preStop sleep: the container, its veth and its IP stay on the
node, and Calico's IPAM garbage collection may hand the IP out meanwhile); a DELETE with a shorter
grace on a pod already terminating shortens its deletionGracePeriodSeconds (apiserver
``BeforeDelete``), and the kubelet cancels the running sleep hook (``runSleepHandler`` waits on the
termination's context) and stops the container within that second.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from netiso.backends.base import BackendUnavailable
from netiso.model.types import PodInfo

STATE_ANNOTATION = "netiso.io/endpoint-state"
PRESTOP_SLEEP_S = 1800  # longer than any run: the pod stays Terminating until clean-up force-deletes it
NOT_READY_STATES = ("not-ready", "terminating-not-ready")
TERMINATING_STATES = ("terminating", "terminating-not-ready")


def unused_port(pod: PodInfo) -> int:
    """A TCP port none of the pod's containers listens on (netexec binds only the declared ones)."""
    taken = {p.port for p in pod.ports}
    return next(n for n in range(1, 65536) if n not in taken)


def shape_pod(obj: dict[str, Any], pod: PodInfo) -> dict[str, Any]:
    """Give a workload pod manifest what its ``state`` needs (unchanged for a ready pod)."""
    if pod.state == "ready":
        return obj
    obj["metadata"].setdefault("annotations", {})[STATE_ANNOTATION] = pod.state
    spec = obj["spec"]
    for container in spec["containers"]:
        if pod.state in NOT_READY_STATES:
            container["readinessProbe"] = {"httpGet": {"path": "/hostname", "port": unused_port(pod)},
                                           "periodSeconds": 2}
        if pod.state in TERMINATING_STATES:
            container["lifecycle"] = {"preStop": {"sleep": {"seconds": PRESTOP_SLEEP_S}}}
    if pod.state in TERMINATING_STATES:
        spec["terminationGracePeriodSeconds"] = PRESTOP_SLEEP_S
    return obj


def state_of(obj: Mapping[str, Any] | None) -> str:
    """The endpoint state a pod manifest (or the pod read back) was made for."""
    return (((obj or {}).get("metadata") or {}).get("annotations") or {}).get(STATE_ANNOTATION, "ready")


def running_not_ready(pod: Mapping[str, Any] | None) -> bool:
    """Phase Running, every container started, the Ready condition False: a readiness probe failing."""
    if not pod:
        return False
    status = pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    started = bool(statuses) and all("running" in (cs.get("state") or {}) for cs in statuses)
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    return status.get("phase") == "Running" and started and not ready


def slice_endpoint(slices: list[dict[str, Any]], pod_name: str) -> dict[str, Any] | None:
    """The EndpointSlice endpoint whose targetRef is the pod (None: in no slice yet)."""
    for sl in slices:
        for ep in sl.get("endpoints") or []:
            if ((ep.get("targetRef") or {}).get("name")) == pod_name:
                return ep
    return None


def shows_terminating(ep: Mapping[str, Any] | None, state: str) -> bool:
    """The slice says terminating, and serving exactly when the pod is meant to pass readiness."""
    cond = (ep or {}).get("conditions") or {}
    return bool(ep) and cond.get("terminating") is True and cond.get("serving") is (state == "terminating")


class Terminations:
    """A mixin of ``KubeRealization``: graceful deletions for the terminating states, and their wait."""

    if TYPE_CHECKING:
        def _wait(self, check: Callable[[], list[tuple[str, str]]], timeout: float) -> list[tuple[str, str]]: ...

    kube: Any
    names: Any
    timeouts: Any
    planned: Any
    applied: list[dict[str, Any]]
    backend: Any

    def terminate_pods(self) -> None:
        """Delete the ``terminating*`` pods gracefully, then wait until every Service's slice shows it."""
        doomed = [o for o in self.applied if o["kind"] == "Pod" and state_of(o) in TERMINATING_STATES]
        if not doomed:
            return
        for obj in doomed:  # an API server without PodLifecycleSleepAction drops the hook: the pod would just go
            meta = obj["metadata"]
            stored = self.kube.get("v1", "Pod", meta["name"], meta["namespace"]) or {}
            if not all(_sleeps(c) for c in (stored.get("spec") or {}).get("containers") or [{}]):
                raise BackendUnavailable(
                    f"pod {meta['namespace']}/{meta['name']} came back without its preStop sleep hook: the API server "
                    "does not have PodLifecycleSleepAction (Kubernetes 1.30+, or 1.29 with the feature gate on), "
                    "so a terminating replica cannot be held in graceful shutdown; remove the terminating states "
                    "from the scenario or use a newer cluster")
        for obj in doomed:
            meta = obj["metadata"]
            self.kube.delete("v1", "Pod", meta["name"], meta["namespace"])
        self.backend.progress(f"{self.planned.name}: {len(doomed)} pod(s) terminating gracefully (preStop sleep)")
        watched = self._sliced(doomed)
        state: dict[tuple[str, str, str], Any] = {}

        def pending() -> list[tuple[str, str]]:
            out = []
            for ns, svc, pod, want in watched:
                slices = self.kube.list("discovery.k8s.io/v1", "EndpointSlice", ns,
                                        label_selector=f"kubernetes.io/service-name={svc}")
                ep = state[(ns, svc, pod)] = slice_endpoint(slices, pod)
                if not shows_terminating(ep, want):
                    out.append((ns, f"{svc}: {pod}"))
            return out

        left = self._wait(pending, self.timeouts.pods_ready)  # ReadinessWaits' bounded poll (waiting.py)
        if left:
            ns, what = left[0]
            svc, pod = what.split(": ", 1)
            ep = state.get((ns, svc, pod))
            raise BackendUnavailable(
                f"pod {ns}/{pod} was deleted to be terminating but Service {ns}/{svc}'s EndpointSlice does not show it "
                f"terminating after {self.timeouts.pods_ready:g} s (endpoint: {(ep or {}).get('conditions') or 'absent'}); "
                "the API server needs PodLifecycleSleepAction (Kubernetes 1.30+) for the preStop sleep that keeps it running")

    def _sliced(self, doomed: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
        """(namespace, Service, pod, state) for every Service of the plan that selects a doomed pod."""
        by_symbol = {self.names.pod_name(p): p for p in self.planned.pods}
        out = []
        for obj in doomed:
            meta = obj["metadata"]
            pod = by_symbol.get(meta["name"])
            for svc in self.planned.services.values():
                if pod is not None and any(e.symbol == pod.symbol for e in svc.endpoints):
                    out.append((meta["namespace"], svc.name, meta["name"], state_of(obj)))
        return out


def _sleeps(container: Mapping[str, Any]) -> bool:
    return "sleep" in ((container.get("lifecycle") or {}).get("preStop") or {})


def force_delete_stateful_pods(kube: Any, namespace: str, selector: str) -> list[str]:
    """Shorten the graceful termination of the run's held pods to 1 s (clean-up never waits N s; see the module docstring)."""
    lines = []
    for pod in kube.list("v1", "Pod", namespace, label_selector=selector):
        if state_of(pod) in TERMINATING_STATES and kube.delete("v1", "Pod", pod["metadata"]["name"], namespace,
                                                             grace_period_seconds=1):
            lines.append(f"deleted pod {namespace}/{pod['metadata']['name']} with gracePeriodSeconds 1 "
                         "(its preStop sleep cut short)")
    return lines

