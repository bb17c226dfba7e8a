"""What explains a mismatch on a cluster: the pods, their Events, the policies and the Service.

Why: a report that says a flow was ``allowed`` where ``dropped`` was predicted is only useful
with what a person would look at next - ``kubectl describe pod`` (state, node, IP, the last
Events), ``kubectl get networkpolicy -o yaml`` in the destination namespace, the Service and its
EndpointSlices. This gathers exactly that for the pods a flow involves, read-only, after the
probes; a read that fails becomes an ``evidence error`` entry, never an exception.

Knowingly different from kubectl: objects are dumped without ``managedFields`` (noise for a
reader), and the node's rule trace is not read at all - the kube backend has no access to the
nodes, only to the API server (:data:`NODE_TRACE_SKIP` says so; the kind backend replaces it).

A mixin of ``KubeRealization``: it reads ``kube`` and ``names`` from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from netiso.backends.base import NODE_TRACE_KEY, BackendUnavailable
from netiso.backends.kube.client import KubeApiError
from netiso.backends.kube.waiting import event_time, pod_state
from netiso.model.types import PodInfo
from netiso.oracle.judge import Observation
from netiso.oracle.predict import Prediction

NODE_TRACE_SKIP = ("skipped: the kernel's rule trace (iptables TRACE with xtables-monitor --trace) is read on the "
                   "nodes themselves, and the kube backend has no access to them (only to the API server); "
                   "--backend kind has it, through docker exec into its node containers")


class MismatchEvidence:
    """Evidence of one flow (see the module docstring)."""

    kube: Any
    names: Any

    def evidence(self, pred: Prediction, obs: Observation) -> dict[str, str]:
        out: dict[str, str] = {NODE_TRACE_KEY: NODE_TRACE_SKIP}  # a skip reason, not an error (kind replaces it)
        t = pred.target
        pods: list[PodInfo] = []
        if t.origin_pod is not None:
            pods.append(t.origin_pod)
        if t.dst_pod is not None:
            pods.append(t.dst_pod)
        if t.service is not None:
            pods += list(t.service.endpoints)
        try:
            for pod in {p.symbol: p for p in pods}.values():
                ns, name = self.names.namespace(pod.project), self.names.pod_name(pod)
                obj = self.kube.get("v1", "Pod", name, ns)
                events = self.kube.list("v1", "Event", ns, field_selector=f"involvedObject.name={name}")
                lines = [f"{pod_state(obj)}; node {((obj or {}).get('spec') or {}).get('nodeName')}; "
                         f"podIP {((obj or {}).get('status') or {}).get('podIP')}"]
                lines += [f"{e.get('type', '')} {e.get('reason', '')}: {e.get('message', '')}"
                          for e in sorted(events, key=event_time)[-5:]]
                out[f"pod {pod.symbol} ({ns}/{name})"] = "\n".join(lines)
            project = t.service.project if t.service is not None else t.dst_pod.project if t.dst_pod else None
            if project is not None:
                ns = self.names.namespace(project)
                policies = self.kube.list("networking.k8s.io/v1", "NetworkPolicy", ns)
                out[f"networkpolicies {ns}"] = yaml.safe_dump_all([_clean(p) for p in policies], sort_keys=False) or "(none)"
            if t.service is not None:
                ns = self.names.namespace(t.service.project)
                svc = self.kube.get("v1", "Service", t.service.name, ns)
                slices = self.kube.list("discovery.k8s.io/v1", "EndpointSlice", ns,
                                        label_selector=f"kubernetes.io/service-name={t.service.name}")
                out[f"service {ns}/{t.service.name}"] = yaml.safe_dump_all(
                    [_clean(o) for o in [svc, *slices] if o], sort_keys=False)
        except (KubeApiError, BackendUnavailable) as exc:
            out["evidence error"] = str(exc)
        return out


def _clean(obj: Mapping[str, Any]) -> dict[str, Any]:
    """An object without managedFields (evidence stays readable)."""
    out = dict(obj)
    meta = dict(out.get("metadata") or {})
    meta.pop("managedFields", None)
    out["metadata"] = meta
    return out
