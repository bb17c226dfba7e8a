"""Words for :mod:`netiso.oracle.minimal`: why an entry is needed, why a flow is forced open or
unsatisfiable, always derived from the predicted hop path (never written per case).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from netiso.model.addressing import symbols_of
from netiso.model.flows import FlowTarget
from netiso.model.types import PodInfo, Topology
from netiso.oracle.paths import Outcome
from netiso.oracle.predict import Prediction

if TYPE_CHECKING:
    from netiso.oracle.minimal import Entry, _Eval, _View
    from netiso.oracle.paths import PolicyCheck


def peer_of(topo: Topology, c: PolicyCheck) -> tuple[str, str]:
    if c.src_pod is not None:
        return "project", c.src_pod.project
    names = [s for s in symbols_of(topo, c.src_ip) if s.split(":", 1)[0] in ("client", "node", "tunnel")]
    return "cidr", names[0] if names else f"{c.src_ip}/32"


def fatal_text(outcome: Outcome) -> str:
    """The hop that ended a non-policy failure (and the final one, when it came later)."""
    ends = [h for h in outcome.hops if h.rstrip().endswith(("→ dropped", "→ refused"))]
    if not ends:
        return outcome.hops[-1] if outcome.hops else f"{outcome.verdict} (no path)"
    tail = outcome.hops[-1]
    return ends[0] if tail == ends[0] else f"{ends[0]}; {tail}"


def denial_text(v: _View) -> str:
    return v.outcome.hops[v.denial_hop] if v.denial is not None else fatal_text(v.outcome)


# --------------------------------------------------------------------------- explanations from the path


def symbol(topo: Topology, ip: str, pod: PodInfo | None) -> str:
    if pod is not None:
        return pod.symbol
    names = symbols_of(topo, ip)
    return names[0] if names else ip


def origin_ips(topo: Topology, t: FlowTarget) -> set[str]:
    if t.origin_kind == "client":
        return {topo.clients[t.origin_name].ip}
    if t.origin_kind == "pod" and t.origin_pod is not None:
        return {t.origin_pod.ip}
    node = topo.nodes.get(t.origin_name)
    return {ip for ip in ((node.ip, node.tunnel_ip) if node else ()) if ip}


def context(pred: Prediction, pod: PodInfo) -> str:
    """Which exposure the flow took and where the protected pod sits relative to the entry."""
    t = pred.target
    svc = t.service
    where = ""
    if t.entry_node and t.ingress is None:
        where = (f", endpoint {pod.symbol} on the entry node" if pod.node == t.entry_node
                 else f", endpoint {pod.symbol} on another node")
    if t.dst_kind == "nodeport" and svc is not None:
        return f"NodePort {svc.key} (ETP {svc.etp}) entering {t.entry_node}{where}"
    if t.dst_kind == "externalip" and svc is not None:
        entry = f" routed to {t.entry_node}" if t.entry_node else " from the sender's node"
        return f"external IP {t.dst_ip} of {svc.key} (ETP {svc.etp}){entry}{where}"
    if t.dst_kind == "hostport":  # portmap's DNAT, no SNAT: the pod sees the sender
        return f"hostPort {t.dst_port}/{t.protocol} of {pod.symbol} on {t.entry_node} (portmap DNAT, no SNAT)"
    if t.dst_kind == "loadbalancer" and svc is not None:
        return f"LoadBalancer {svc.key} (ETP {svc.etp}), VIP announced by {t.entry_node}{where}"
    if t.ingress is not None:
        c = t.ingress.controller
        return f"Ingress {t.ingress.key} through its controller ({c.exposure}, ETP {c.etp}) entering {t.entry_node}"
    if t.dst_kind == "clusterip" and svc is not None:
        return f"ClusterIP {svc.key}"
    return f"{pred.flow.src} straight to {pod.symbol}"


def how_seen(pred: Prediction, outcome: Outcome, hop: int, c: PolicyCheck) -> str:
    """Why the policy at hop ``hop`` sees the source it sees, quoting the hop that decided it."""
    topo, t = pred.topo, pred.target
    seen = symbol(topo, c.src_ip, c.src_pod)
    origin = t.origin_name if t.origin_kind == "pod" else f"{t.origin_kind}:{t.origin_name}"
    before = outcome.hops[:hop]
    if c.src_ip in origin_ips(topo, t):
        mark = next((h for h in before if "KUBE-MARK-MASQ" in h or "marks for masquerade" in h), None)
        if mark is not None:
            return (f"{seen} keeps its own address up to the policy: kube-proxy marked it for masquerade ({mark}), "
                    "but the ingress policy hop comes before POSTROUTING's MASQUERADE")
        kept = next((h for h in before if "no SNAT" in h), None)
        return f"{seen} keeps its own address up to the policy" + (f" ({kept})" if kept else " (no NAT on the way)")
    source_hop = next((h for h in reversed(before) if seen in h or c.src_ip in h), None)
    quoted = f" ({source_hop})" if source_hop else ""
    if c.src_pod is not None:  # a proxy in between (the ingress controller) opens its own connection
        return f"the connection that reaches {c.pod.symbol} for {origin} comes from {seen}{quoted}"
    return f"{origin} arrives as {seen}{quoted}"


def entry_reason(entry: Entry, ev: _Eval) -> str:
    """Why ``entry`` is needed, from a wanted flow's path that the entry's absence blocks."""
    for v in ev.blocked:
        c = v.denial
        if c is None or c.pod.project != entry.project or peer_of(ev.pred.topo, c) != (entry.peer_kind, entry.peer_value):
            continue
        seen = symbol(ev.pred.topo, c.src_ip, c.src_pod)
        return (f"{context(ev.pred, c.pod)}: {how_seen(ev.pred, v.outcome, v.denial_hop, c)}, so "
                f"{entry.project}'s policy at {c.pod.symbol} sees {seen} on {c.port}/{c.protocol}")
    return ""


def forced_because(ev: _Eval, view: _View, hop: int, c: PolicyCheck, names: Mapping[str, Entry]) -> str:
    """Which rule admits the unwanted flow, and why its source is one a wanted flow shares."""
    admitted = c.decision.admitted_by or ""
    seen = symbol(ev.pred.topo, c.src_ip, c.src_pod)
    how = how_seen(ev.pred, view.outcome, hop, c)
    entry = next((e for key, e in names.items() if admitted.startswith(key + " ")), None)
    if entry is None:
        return f"admitted by {admitted} (not a whitelist entry): {how}"
    rule = next(key.split("/nsnp-", 1)[1] for key, e in names.items() if e == entry)
    if c.src_ip in origin_ips(ev.pred.topo, ev.pred.target):
        return (f"{rule} ({entry.peer}) admits {seen} itself: a whitelist entry opens {entry.project} to that source "
                "for every flow, not only the wanted one")
    t = ev.pred.target
    if c.src_pod is not None and c.src_pod.role == "ingress-controller":
        shared = f"every request through the controller in {c.src_pod.project} arrives from that pod"
    elif t.entry_node and seen in (f"node:{t.entry_node}", f"tunnel:{t.entry_node}"):
        shared = f"every source entering on {t.entry_node} is masqueraded to that same address"
    else:
        shared = f"{seen} is shared by every source taking this path"
    return f"{rule} ({entry.peer}) admits {seen}: {how}; {shared}, so the policy cannot tell the wanted client apart"
