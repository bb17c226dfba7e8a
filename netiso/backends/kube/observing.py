"""A probe result in the judge's vocabulary: who answered, who announced the VIP, the verdict.

Why: the cluster answers in its own names (netexec's ``/hostname`` is a pod name such as
``web-worker`` in a run namespace, a VIP's announcer is a cluster node name), while the judge
compares against the scenario's symbols (``shop/web``, node ``worker``). This mixin maps one to
the other and keeps what it cannot map raw and said in the detail, so an answer from outside the
run shows as such instead of being taken for a scenario pod.

What it mirrors: the VIP announcer comes from MetalLB's ServiceL2Status (metallb
api/v1beta1/servicel2status_types.go, written by its speaker) and, for OpenELB, which records
none in the API (its speakers elect by hashing ``node#ip`` in memory, openelb
pkg/speaker/layer2/memberlist.go), from the election line every speaker logs
(discovery.openelb_announcer). Both are read once per realization and cached.

A mixin of ``KubeRealization``: it reads ``kube``, ``names``, ``topo`` and ``back_map`` from it.
"""

from __future__ import annotations

import logging
from typing import Any

from netiso.backends.base import BackendUnavailable
from netiso.backends.kube.client import KubeApiError
from netiso.backends.kube.discovery import openelb_announcer
from netiso.backends.kube.probing import ClusterProbeResult
from netiso.model.symbols import parse_endpoint
from netiso.model.types import PodInfo
from netiso.oracle.judge import Observation
from netiso.oracle.predict import Prediction

log = logging.getLogger("netiso.kube")


class ObservationMapping:
    """Cluster answers -> scenario symbols (see the module docstring)."""

    kube: Any
    names: Any
    topo: Any
    back_map: dict[str, str]
    _l2: dict[tuple[str, str], str] | None  # MetalLB (namespace, service) -> node, read once
    _openelb: dict[str, str | None]  # OpenELB VIP -> node, read once per VIP

    def observation(self, pred: Prediction, r: ClusterProbeResult) -> Observation:
        """A probe result in the judge's vocabulary: hostname -> pod symbol, source IP raw, elected node."""
        verdict = r.verdict
        detail = r.detail
        if r.inconsistent:
            seen = set((r.distribution or {}).keys())
            predicted = {o.verdict for o in pred.outcomes}
            if pred.verdict != "mixed" or not seen <= predicted:
                verdict = "error"  # an unsettled flow is a mismatch that shows its distribution
        xff = (r.forwarded_for or "").split(",")[0].strip() or None
        answered = self.answered_by(pred, r.hostname)
        if r.hostname and answered is None:  # not a pod of this run: say who, keep the judge's symbols clean
            detail = "; ".join(x for x in (f"answered by {r.hostname!r}, not a pod of run {self.names.run}", detail) if x)
        obs = Observation(verdict=verdict, source_ip=r.client_ip, answered_by=answered,
                          forwarded_for=xff, ms=r.ms, detail=detail, status=r.status, local_endpoints=r.local_endpoints)
        svc = pred.target.service
        if (svc is not None and svc.lb_ip and pred.target.dst_ip == svc.lb_ip
                and pred.target.origin_kind == "client"):
            obs.elected = self.elected(svc.project, svc.name, svc.lb_ip)
        return obs

    def answered_by(self, pred: Prediction, hostname: str | None) -> str | None:
        """The symbol of the pod (or client) whose netexec answered ``/hostname``; None for an unknown name.

        Pod names repeat across projects (``web-worker`` in two projects): the pods the oracle
        predicts as answerers are preferred, then scenario order.
        """
        if not hostname:
            return None
        if pred.target.dst_kind in ("client", "node"):  # a node's host server answers with the node's hostname
            return f"{pred.target.dst_kind}:{parse_endpoint(pred.flow.dst).name}"
        candidates: list[PodInfo] = [p for p in self.topo.pods if self.names.pod_name(p) == hostname]
        if not candidates:
            return None
        preferred = [p for p in candidates if p.symbol in pred.answered_by]
        return (preferred or candidates)[0].symbol

    def elected(self, project: str, service: str, vip: str | None = None) -> str | None:
        """The scenario node announcing a Service's VIP, None if unknown.

        MetalLB: its ServiceL2Status; OpenELB: its speakers' election log lines (discovery.openelb_announcer).
        """
        if self.topo.load_balancer == "openelb" and vip:
            if vip not in self._openelb:
                try:
                    self._openelb[vip] = openelb_announcer(self.kube, vip)
                except (KubeApiError, BackendUnavailable) as exc:
                    log.warning("reading OpenELB speaker logs: %s", exc)
                    self._openelb[vip] = None
            node = self._openelb[vip]
            return self.back_map.get(node, node) if node else None
        if self.topo.load_balancer != "metallb":
            return None
        if self._l2 is None:
            self._l2 = {}
            try:
                for st in self.kube.list("metallb.io/v1beta1", "ServiceL2Status"):
                    status = st.get("status") or {}
                    if status.get("node"):
                        self._l2[(str(status.get("serviceNamespace")), str(status.get("serviceName")))] = status["node"]
            except (KubeApiError, BackendUnavailable) as exc:
                log.warning("reading MetalLB ServiceL2Status: %s", exc)
        node = self._l2.get((self.names.namespace(project), service))
        return self.back_map.get(node, node) if node else None
