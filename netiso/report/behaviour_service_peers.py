"""docs/behaviour.md, section "KubeSphere service-peer whitelists and targetPort", generated.

KubeSphere converts an egress whitelist whose peer is a Service into a NetworkPolicy rule with
the Service's ``port`` values (kubesphere/kubesphere release-3.4,
pkg/controller/network/nsnetworkpolicy/nsnetworkpolicy_controller.go, ``handlerPeerService``),
while the policy judges the packet after kube-proxy's DNAT, on the pod port (``targetPort``).
This section builds that case as one scenario, predicts it with the oracle, measures it with the
same ``measure`` callable as the rest of the page (the lab, in ``bin/behaviour-doc``) and writes
each flow with both answers, so the page shows the gap as observed, not as claimed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from netiso.model.addressing import resolve
from netiso.model.loader import loads
from netiso.model.types import Topology
from netiso.oracle.predict import predict_all
from netiso.report.behaviour_knobs import measured_suffix

NAME = "behaviour-service-peer-target-port"
TITLE = "## KubeSphere service-peer whitelists and `targetPort`"


def scenario_dict() -> dict[str, Any]:
    """shop (isolated) whitelists egress to billing/db (80 -> 9376) and billing/cache (6379 -> 6379)."""
    return {
        "name": NAME,
        "cluster": {"encapsulation": "vxlan"},
        "workspaces": [{"name": "ws", "projects": [
            {"name": "shop", "isolation": True, "whitelist": [
                {"direction": "egress", "peer": {"service": "billing/db"}},
                {"direction": "egress", "peer": {"service": "billing/cache"}}]},
            {"name": "billing"}]}],
        "workloads": [
            {"name": "app", "project": "shop", "nodes": ["worker"]},
            {"name": "db", "project": "billing", "nodes": ["worker2"], "ports": ["9376/TCP"]},
            {"name": "cache", "project": "billing", "nodes": ["worker2"], "ports": ["6379/TCP"]}],
        "services": [
            {"name": "db", "project": "billing", "ports": [{"port": 80, "targetPort": 9376}]},
            {"name": "cache", "project": "billing", "ports": ["6379/TCP"]}],
        "flows": [
            {"from": "pod:shop/app", "to": "clusterip:billing/db"},
            {"from": "pod:shop/app", "to": "pod:billing/db", "port": "9376/TCP"},
            {"from": "pod:shop/app", "to": "pod:billing/db", "port": "80/TCP"},
            {"from": "pod:shop/app", "to": "clusterip:billing/cache"}],
    }


def topology() -> Topology:
    (s,) = loads(yaml.safe_dump(scenario_dict(), sort_keys=False), f"<{NAME}>")
    return resolve(s)


def _ports(policy: dict[str, Any]) -> str:
    ports = [f"{p['port']}/{p['protocol']}" for rule in policy["spec"].get("egress", []) for p in rule.get("ports", [])]
    return ", ".join(f"`{p}`" for p in ports)


def section(measure: Any | None) -> list[str]:
    """The section's lines; ``measure([topology])`` as in netiso.report.behaviour (None: predictions only)."""
    topo = topology()
    preds = predict_all(topo)
    measured: Sequence[Any] | None = None
    if measure is not None:
        (result,) = measure([topo])
        measured = result.results
    by_name = {p["metadata"]["name"]: p for p in topo.policies}
    out = ["", TITLE, "",
           "KubeSphere writes a whitelist whose peer is a Service with the Service's `port`s, never its "
           "`targetPort`s (`handlerPeerService` in its nsnetworkpolicy controller); Calico judges the packet "
           "after kube-proxy's DNAT, on the pod port. Scenario `" + NAME + "`: project `shop` (isolated) "
           "whitelists egress to Service `billing/db` (port 80, targetPort 9376) and to `billing/cache` "
           "(port = targetPort = 6379).", ""]
    for name in ("nsnp-egress-service-billing-db", "nsnp-egress-service-billing-cache"):
        out.append(f"* KubeSphere writes `{name}`: egress to the Service's pods on {_ports(by_name[name])}.")
    for warning in topo.warnings:
        out.append(f"* netiso warns: {warning}.")
    for i, pred in enumerate(preds):
        t = pred.target
        dnat = f", DNAT to the pod port {_pod_port(pred)}" if t.service is not None else ""
        why = (f"decided by `{pred.decided_by}`" if pred.decided_by else
               "no rule decides it: nothing listens on that pod port, the pod resets it" if pred.verdict == "refused"
               else "no rule decides it")
        out.append(f"* `{pred.flow.src}` → `{pred.flow.dst}` ({t.port}{dnat}): predicted **{pred.verdict}**, {why}"
                   + measured_suffix(measured[i] if measured is not None else None))
    out.append("")
    return out


def _pod_port(pred: Any) -> str:
    """The port the DNAT hop chose (the flow's first outcome), read from the predicted path."""
    for hop in pred.outcomes[0].hops:
        if "KUBE-SEP DNAT" in hop:
            return hop.rsplit(":", 1)[1].split(")", 1)[0]
    return "?"
