"""The realization's bounded waits: pods Ready, LoadBalancer addresses, ingress-nginx synced.

As the upstream netpol e2e does before it probes (kubemanager.go waits for every pod Ready), but
each timeout becomes one message a person can act on: the pod (or Service) that is not ready,
its state, and its last Event (``kubectl describe`` would show the same). Polled with tenacity,
bounded by :class:`~netiso.backends.kube.realization.Timeouts`: a pod is Pending for a while on any
cluster (scheduling, image pull), so one read is never the answer. Ready means the pod's ``Ready``
condition, not its phase: a Running pod whose readiness probe fails is not Ready (and would not be an
endpoint) - which is exactly what a scenario's ``not-ready`` replica must be, so it is waited for as
Running and not Ready instead. A mixin of ``KubeRealization``:
it reads ``kube``, ``names``, ``timeouts``, ``planned``, ``applied`` and ``backend`` from it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from netiso.backends.base import BackendUnavailable
from netiso.backends.kube.discovery import lb_ip
from netiso.backends.kube.pod_states import NOT_READY_STATES, running_not_ready, state_of


class ReadinessWaits:
    """Waits of a realization (see the module docstring for what each names on timeout)."""

    kube: Any
    names: Any
    timeouts: Any
    planned: Any
    applied: list[dict[str, Any]]
    backend: Any

    def _pods(self) -> list[tuple[str, str]]:
        return [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in self.applied if o["kind"] == "Pod"]

    def wait_pods_ready(self) -> None:
        """Every pod Ready, except the replicas a scenario makes ``not-ready`` (pod_states.py): those
        must be Running with their readiness probe failing, i.e. started and not Ready."""
        wanted = self._pods()
        unready = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in self.applied
                   if o["kind"] == "Pod" and state_of(o) in NOT_READY_STATES}
        state: dict[tuple[str, str], dict[str, Any]] = {}

        def not_there() -> list[tuple[str, str]]:
            for ns in sorted({ns for ns, _ in wanted}):
                for pod in self.kube.list("v1", "Pod", ns, label_selector=self.names.selector):
                    state[(ns, pod["metadata"]["name"])] = pod
            return [key for key in wanted
                    if not (running_not_ready(state.get(key)) if key in unready else _ready(state.get(key)))]

        pending = self._wait(not_there, self.timeouts.pods_ready)
        if pending:
            ns, name = pending[0]
            wish = ("Running with its readiness probe failing (the scenario's not-ready replica)"
                    if (ns, name) in unready else "Ready")
            raise BackendUnavailable(
                f"pod {ns}/{name} is not {wish} after {self.timeouts.pods_ready:g} s "
                f"({pod_state(state.get((ns, name)))}); last event: {self.last_event(ns, name)}"
                + (f"; also waiting for: {', '.join(f'{n}/{p}' for n, p in pending[1:])}" if len(pending) > 1 else ""))

    def wait_lb_ips(self) -> None:
        wanted = [(self.names.namespace(s.project), s.name) for s in self.planned.services.values()
                  if s.type == "LoadBalancer"]
        if not wanted:
            return

        def pending() -> list[tuple[str, str]]:
            return [(ns, n) for ns, n in wanted if not lb_ip(self.kube.get("v1", "Service", n, ns) or {})]

        left = self._wait(pending, self.timeouts.lb_ip)
        if left:
            ns, name = left[0]
            impl = self.planned.load_balancer
            raise BackendUnavailable(
                f"LoadBalancer Service {ns}/{name} got no address from {impl} after {self.timeouts.lb_ip:g} s "
                f"(status.loadBalancer.ingress is empty); last event: {self.last_event(ns, name, 'Service')}")

    def wait_ingresses_synced(self) -> None:
        """Wait (bounded, not fatal) until each Ingress has a status address: its controller has synced it.

        ingress-nginx writes ``status.loadBalancer.ingress`` from its ``--publish-service`` after
        it has loaded the Ingress (internal/ingress/status in kubernetes/ingress-nginx); probing
        before that would get nginx's default 404. Probes retry anyway, so a timeout is only noted.
        """
        wanted = [(self.names.namespace(i.project), i.name) for i in self.planned.ingresses.values()]
        if not wanted:
            return

        def pending() -> list[tuple[str, str]]:
            out = []
            for ns, name in wanted:
                obj = self.kube.get("networking.k8s.io/v1", "Ingress", name, ns) or {}
                if not ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress"):
                    out.append((ns, name))
            return out

        left = self._wait(pending, self.timeouts.ingress_sync)
        if left:
            self.backend.progress(f"{self.planned.name}: Ingress {', '.join(f'{n}/{i}' for n, i in left)} has no status "
                                  f"after {self.timeouts.ingress_sync:g} s (controller not synced yet?); probing anyway")

    def _wait(self, check: Callable[[], list[tuple[str, str]]], timeout: float) -> list[tuple[str, str]]:
        """Poll ``check`` until it returns nothing or ``timeout`` passes; the last non-empty answer."""
        retrying = Retrying(stop=stop_after_delay(timeout), wait=wait_fixed(self.timeouts.poll),
                            retry=retry_if_result(bool), reraise=False)
        try:
            return retrying(check)
        except RetryError as exc:
            return list(exc.last_attempt.result())

    def last_event(self, namespace: str, name: str, kind: str = "Pod") -> str:
        events = self.kube.list("v1", "Event", namespace,
                                field_selector=f"involvedObject.name={name},involvedObject.kind={kind}")
        if not events:
            return "none recorded"
        last = max(events, key=event_time)
        return f"{last.get('reason') or '?'}: {last.get('message') or ''}".strip()


def _ready(pod: Mapping[str, Any] | None) -> bool:
    if not pod:
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def pod_state(pod: Mapping[str, Any] | None) -> str:
    if not pod:
        return "not found"
    status = pod.get("status") or {}
    parts = [f"phase {status.get('phase') or 'unknown'}"]
    for cs in status.get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting")
        if waiting:
            parts.append(f"container {cs.get('name')} waiting: {waiting.get('reason')} {waiting.get('message') or ''}".strip())
    for c in status.get("conditions") or []:
        if c.get("status") != "True" and (c.get("reason") or c.get("message")):
            parts.append(f"{c.get('type')} {c.get('reason') or ''} {c.get('message') or ''}".strip())
    return "; ".join(parts)


def event_time(event: Mapping[str, Any]) -> str:
    return str(event.get("lastTimestamp") or event.get("eventTime") or
               (event.get("metadata") or {}).get("creationTimestamp") or "")
