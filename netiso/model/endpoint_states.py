"""Endpoint states of a workload's replicas, and the EndpointSlice conditions they become.

A replica is ``ready`` (the default), ``not-ready`` (its readiness probe fails), ``terminating``
(deleted, still serving during its graceful shutdown: a preStop hook keeps it running) or
``terminating-not-ready`` (deleted and its readiness probe failing). In every state the pod runs
and listens: a flow addressed to the pod itself reaches it. What changes is what the control
plane publishes and what each consumer makes of it:

* the EndpointSlice controller (kubernetes ``staging/src/k8s.io/endpointslice/utils.go``
  podToEndpoint, read at aroradaman/kubernetes@4177b600): ``serving`` = the pod's Ready
  condition, ``terminating`` = a deletionTimestamp, ``ready`` = ``publishNotReadyAddresses`` or
  (serving and not terminating); every selected pod with an IP is in the slice
  (ShouldPodBeInEndpoints with includeTerminating);
* kube-proxy (``pkg/proxy/topology.go`` CategorizeEndpoints) uses ready endpoints, or when a
  Service has none the serving-and-terminating ones; its health check node port counts only
  the *ready* local endpoints (``EndpointsMap.LocalReadyEndpoints``): the oracle
  (``netiso.oracle.proxy_knobs``) and the lab (``netiso.backends.lab.kubeproxy``) each
  implement that categorization on their own, from the conditions below;
* ingress-nginx (``internal/ingress/controller/endpointslices.go`` getEndpointsFromSlices) keeps
  an endpoint only when its ``ready`` condition is true;
* MetalLB's speaker (``internal/k8s/epslices`` EndpointCanServe, used by
  ``speaker/layer2_controller.go``) counts an endpoint that is ready *or serving*;
* OpenELB v0.6.0 (``pkg/speaker/manager.go`` getServiceNodes) reads the v1 Endpoints'
  ``addresses``: the endpoints controller puts a pod there when it is Ready and not deleted, or
  with ``publishNotReadyAddresses`` always (``ShouldPodBeInEndpoints(pod, tolerateUnready)``).

>>> conditions("terminating", publish_not_ready=False)
EndpointConditions(ready=False, serving=True, terminating=True)
>>> conditions("not-ready", publish_not_ready=True)
EndpointConditions(ready=True, serving=False, terminating=False)
"""

from __future__ import annotations

from dataclasses import dataclass

STATES: tuple[str, ...] = ("ready", "not-ready", "terminating", "terminating-not-ready")


@dataclass(frozen=True)
class EndpointConditions:
    """``discovery.k8s.io/v1`` EndpointConditions of one endpoint."""

    ready: bool
    serving: bool
    terminating: bool

    @property
    def usable(self) -> bool:
        """kube-proxy can send to it: ready, or serving while terminating (the fallback)."""
        return self.ready or (self.serving and self.terminating)


def conditions(state: str, publish_not_ready: bool) -> EndpointConditions:
    """What the EndpointSlice controller writes for a pod in ``state`` (podToEndpoint)."""
    if state not in STATES:
        raise ValueError(f"unknown endpoint state {state!r} (states: {', '.join(STATES)})")
    serving = state in ("ready", "terminating")
    terminating = state.startswith("terminating")
    return EndpointConditions(ready=publish_not_ready or (serving and not terminating), serving=serving,
                              terminating=terminating)


def metallb_counts(state: str, publish_not_ready: bool) -> bool:
    """MetalLB's EndpointCanServe: ready, or serving (a terminating pod still announces)."""
    c = conditions(state, publish_not_ready)
    return c.ready or c.serving


def openelb_counts(state: str, publish_not_ready: bool) -> bool:
    """OpenELB reads Endpoints ``addresses``: Ready and not deleted, or any pod with publishNotReadyAddresses."""
    return publish_not_ready or state == "ready"


def announcing_counts(impl: str, state: str, publish_not_ready: bool) -> bool:
    """Whether a pod in ``state`` makes its node an endpoint node for ``impl``'s VIP election."""
    if impl == "openelb":
        return openelb_counts(state, publish_not_ready)
    return metallb_counts(state, publish_not_ready)
