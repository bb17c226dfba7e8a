"""docs/behaviour.md, section "Cluster settings", generated: one entry per knob value, what it changes.

Why a section of its own: the exposure tables above hold the cluster settings at their defaults.
A knob (a Felix or IP-pool setting, a kube-proxy setting) changes what some flows meet, and the
page should show that as measured, not as claimed. Each :class:`Knob` names its scenario key,
the flows whose answer it changes, and one cluster section per value; every value becomes one
generated scenario (``behaviour-knob-<slug>-<value>``), predicted by the oracle and measured
with the same ``measure`` callable as the rest of the page. Other settings add a ``Knob`` to
:data:`KNOBS`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from netiso.model.addressing import resolve
from netiso.model.loader import loads
from netiso.model.types import Topology
from netiso.oracle.predict import Prediction, predict_all

TITLE = "## Cluster settings"


@dataclass(frozen=True)
class Knob:
    key: str  # the scenario key, e.g. cluster.natOutgoing
    what: str  # what it changes, one sentence
    values: tuple[tuple[str, dict[str, Any]], ...]  # (value as written, the cluster section that sets it)
    flows: tuple[dict[str, Any], ...]
    services: tuple[dict[str, Any], ...] = ()
    clients: tuple[str, ...] = ("alice",)
    workloads: tuple[dict[str, Any], ...] = ()  # besides the probe pod on worker
    isolated: bool = True  # project shop isolated (False: the knob's own effect, no policy in the way)
    answerers: bool = False  # the knob changes which endpoint answers: say it on each line

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.key.rsplit(".", 1)[-1].lower()).strip("-")


_WEB = ({"name": "web", "project": "shop", "nodes": ["worker2"]},)  # kube-proxy knobs: the endpoint on worker2


def _web(**extra: Any) -> dict[str, Any]:
    return {"name": "web", "project": "shop", **extra}


PROXY_KNOBS: tuple[Knob, ...] = (  # kube-proxy's knobs (netiso/oracle/proxy_knobs.py); project not isolated
    Knob("cluster.kubeProxy.masqueradeAll",
         "kube-proxy marks every packet to a cluster IP for masquerade, pods' included: the endpoint sees the "
         "sending node's address (here its VXLAN tunnel address) instead of the pod.",
         (("false", {}), ("true", {"kubeProxy": {"masqueradeAll": True}})),
         ({"from": "pod:shop/probe", "to": "clusterip:shop/web"},), (_web(),), workloads=_WEB, isolated=False),
    Knob("cluster.kubeProxy.detectLocalMode",
         "kube-proxy's local-traffic detector: with ClusterCIDR a pod reaching an externalTrafficPolicy Local "
         "NodePort is sent to every endpoint (short-circuit, no SNAT); with None it is treated like outside "
         "traffic: only the entry node's endpoints, and here, on a node without one, the node's stack refuses it.",
         (("ClusterCIDR", {}), ("None", {"kubeProxy": {"detectLocalMode": "None"}})),
         ({"from": "pod:shop/probe", "to": "nodeport:shop/web@worker"},),
         (_web(type="NodePort", externalTrafficPolicy="Local"),), workloads=_WEB, isolated=False),
    Knob("cluster.kubeProxy.nodePortAddresses",
         "which node addresses accept NodePorts: every local address (default), or only those in the CIDRs; "
         "elsewhere nothing is DNATed and the node's stack refuses the connection.",
         (("(all addresses)", {}), ("[198.18.0.11/32] (worker's InternalIP)",
                                   {"kubeProxy": {"nodePortAddresses": ["198.18.0.11/32"]}})),
         ({"from": "client:alice", "to": "nodeport:shop/web@worker"},
          {"from": "client:alice", "to": "nodeport:shop/web@worker2"}),
         (_web(type="NodePort"),), workloads=_WEB, isolated=False),
    Knob("services[].internalTrafficPolicy",
         "Local: a cluster IP reaches only the endpoints on the sender's node; without one there, kube-proxy "
         "DROPs it (\"has no local endpoints\").",
         (("Cluster", {"services": [_web()]}), ("Local", {"services": [_web(internalTrafficPolicy="Local")]})),
         ({"from": "pod:shop/probe", "to": "clusterip:shop/web"},), workloads=_WEB, isolated=False),
    Knob("services[].loadBalancerSourceRanges",
         "the VIP admits only sources in the ranges (KUBE-FW); others are dropped at the entry node "
         "(KUBE-PROXY-FIREWALL). The Service's NodePorts are not filtered.",
         (("(none)", {"services": [_web(type="LoadBalancer")]}),
          ("[client:alice]", {"services": [_web(type="LoadBalancer", loadBalancerSourceRanges=["client:alice"])]})),
         ({"from": "client:alice", "to": "loadbalancer:shop/web"}, {"from": "client:bob", "to": "loadbalancer:shop/web"},
          {"from": "client:bob", "to": "nodeport:shop/web@worker2"}),
         clients=("alice", "bob"), workloads=_WEB, isolated=False),
    Knob("services[].sessionAffinity",
         "ClientIP: kube-proxy's `-m recent` lists send every later connection from one source to the endpoint "
         "its first went to (for `sessionAffinityConfig.clientIP.timeoutSeconds`, default 10800); None: each "
         "connection is balanced anew. Shown by one flow probed 8 times (`repeat: 8`).",
         (("None", {"services": [_web()]}), ("ClientIP", {"services": [_web(sessionAffinity="ClientIP")]})),
         ({"from": "pod:shop/probe", "to": "clusterip:shop/web", "repeat": 8},),
         workloads=({"name": "web", "project": "shop", "nodes": ["worker", "worker2"]},), isolated=False),
    Knob("services[].externalIPs",
         "kube-proxy captures the address on every node (KUBE-EXT, as a NodePort); alice's router sends it to "
         "worker, which has no endpoint: with externalTrafficPolicy Cluster it is masqueraded and forwarded, "
         "with Local dropped; a pod is sent to the endpoints either way (masqueraded only with Cluster).",
         tuple((f"[203.0.113.50], externalTrafficPolicy {etp}",
                {"services": [_web(type="NodePort", externalTrafficPolicy=etp, externalIPs=["203.0.113.50"])]})
               for etp in ("Cluster", "Local")),
         ({"from": "client:alice", "to": "externalip:shop/web@worker"}, {"from": "pod:shop/probe", "to": "externalip:shop/web"}),
         workloads=_WEB, isolated=False),
    Knob("services[].healthCheckNodePort",
         "an externalTrafficPolicy Local LoadBalancer's health check node port: kube-proxy's health server on "
         "each node answers 200 with the number of the Service's endpoints there, 503 with 0 (an outside load "
         "balancer's cue to skip the node).",
         tuple((label, {"loadBalancer": "metallb", "services": [_web(type="LoadBalancer", externalTrafficPolicy="Local",
                                                                       selector=selector)]})
               for label, selector in (("endpoint on worker2", {"app": "web"}), ("no endpoints", {"app": "none"}))),
         ({"from": "client:alice", "to": "healthcheck:shop/web@worker2"},
          {"from": "client:alice", "to": "healthcheck:shop/web@worker"}),
         workloads=_WEB, isolated=False),
    Knob("workloads[].state + services[].publishNotReadyAddresses",
         "kube-proxy sends to ready endpoints, and only when a Service has none ready to the ones still serving "
         "while terminating (per node the same under externalTrafficPolicy Local); endpoints neither ready nor "
         "serving are none at all (REJECT), unless the Service publishes not-ready addresses (every endpoint ready). "
         "The pods run and listen in every state; `web` is a NodePort with externalTrafficPolicy Local.",
         tuple((label, {"workloads": [{"name": "web", "project": "shop", "nodes": ["worker", "worker2"],
                                       **({"state": state} if state else {})}],
                        "services": [_web(type="NodePort", externalTrafficPolicy="Local", **extra)]})
               for label, state, extra in (
                   ("all ready", None, {}),
                   ("worker not-ready, worker2 terminating", {"worker": "not-ready", "worker2": "terminating"}, {}),
                   ("worker not-ready, worker2 terminating-not-ready",
                    {"worker": "not-ready", "worker2": "terminating-not-ready"}, {}),
                   ("the same, publishNotReadyAddresses: true",
                    {"worker": "not-ready", "worker2": "terminating-not-ready"}, {"publishNotReadyAddresses": True}))),
         ({"from": "pod:shop/probe", "to": "clusterip:shop/web"},
          {"from": "client:alice", "to": "nodeport:shop/web@worker2"}),
         workloads=({"name": "web", "project": "shop", "nodes": ["worker", "worker2"]},), isolated=False,
         answerers=True),
)

_EMPTY = {"name": "empty", "project": "shop", "selector": {"app": "nothing"}, "type": "NodePort"}
KNOBS: tuple[Knob, ...] = (
    Knob("cluster.felix.defaultEndpointToHostAction",
         "what Felix does with a pod's packet to its own node once the pod's egress policy admitted it "
         "(`cali-wl-to-host`, ahead of kube-proxy's INPUT rules): ACCEPT - the node's stack answers; RETURN - "
         "kube-proxy's rules run; DROP - lost. Another node's address is not \"to host\" on the pod's node.",
         tuple((v, {"felix": {"defaultEndpointToHostAction": v}}) for v in ("ACCEPT", "RETURN", "DROP")),
         ({"from": "pod:shop/probe", "to": "nodeport:shop/empty@worker"},
          {"from": "pod:shop/probe", "to": "nodeport:shop/empty@worker2"},
          {"from": "pod:shop/probe", "to": "node:worker", "port": "8080/TCP"},
          {"from": "pod:shop/probe", "to": "node:worker2", "port": "8080/TCP"}),
         services=(_EMPTY,)),
    Knob("cluster.natOutgoing",
         "the IP pool's natOutgoing: a pod's connection to an address outside the pools is masqueraded to its "
         "node (true), or keeps the pod IP (false), which the outside network must route back "
         "(`cluster.clientsRouteToPods`).",
         (("true", {"natOutgoing": True}), ("false", {"natOutgoing": False}),
          ("false, clientsRouteToPods false", {"natOutgoing": False, "clientsRouteToPods": False})),
         ({"from": "pod:shop/probe", "to": "client:alice"},
          {"from": "pod:shop/probe", "to": "node:worker2", "port": "8080/TCP"})),
    Knob("workloads[].ports[].hostPort",
         "the CNI portmap plugin DNATs the node's hostPort to the pod on that node only, without SNAT of its "
         "own: the project's isolation decides on the address the packet arrives with. alice keeps hers "
         "(outside the project: dropped); a pod of the same project on another node is masqueraded by "
         "natOutgoing on its way to the node address (outside the IP pools), so isolation sees its node "
         "and drops it too; the pod reaching its own hostPort (hairpin) is masqueraded to its node by "
         "portmap, after its own policy saw (and admitted) the pod itself.",
         (("9090 -> container port 8080, project shop isolated", {}),),
         ({"from": "client:alice", "to": "hostport:shop/web@worker2"},
          {"from": "pod:shop/probe", "to": "hostport:shop/web@worker2"},
          {"from": "pod:shop/web@worker2", "to": "hostport:shop/web@worker2"}),
         workloads=({"name": "web", "project": "shop", "nodes": ["worker2"],
                     "ports": [{"port": 8080, "hostPort": 9090}]},)),
    *PROXY_KNOBS,
)


def scenario_dict(knob: Knob, index: int) -> dict[str, Any]:
    """The scenario of one knob value: isolated project ``shop`` with a probe pod on ``worker``."""
    value, section = knob.values[index]
    cluster = dict(section)
    services = cluster.pop("services", list(knob.services))  # a Service knob's value sets its Services
    workloads = cluster.pop("workloads", list(knob.workloads))  # and a workload knob's its workloads
    return {
        "name": f"behaviour-knob-{knob.slug}-{index}",
        "description": f"{knob.key}: {value}",
        "cluster": {"encapsulation": "vxlan", "clients": list(knob.clients), **cluster},
        "workspaces": [{"name": "ws", "projects": [{"name": "shop", "isolation": knob.isolated}]}],
        "workloads": [{"name": "probe", "project": "shop", "nodes": ["worker"]}, *workloads],
        "services": services,
        "flows": list(knob.flows),
    }


def topologies() -> list[tuple[Knob, str, Topology]]:
    out = []
    for knob in KNOBS:
        for i, (value, _) in enumerate(knob.values):
            doc = scenario_dict(knob, i)
            (s,) = loads(yaml.safe_dump(doc, sort_keys=False), f"<{doc['name']}>")
            out.append((knob, value, resolve(s)))
    return out


def _answer(pred: Prediction, answerers: bool = False) -> str:
    text = f"**{pred.verdict}**"
    if pred.verdict == "allowed" and pred.source:
        text += f", the server sees {' or '.join(f'`{s}`' for s in pred.source)}"
    if answerers and pred.verdict == "allowed" and pred.answered_by:
        text += f", answered by {' or '.join(f'`{a}`' for a in pred.answered_by)}"
    if pred.verdict == "allowed" and pred.health:
        text = f"**{pred.verdict}**, " + " or ".join(f"HTTP {st} with localEndpoints {n}" for st, n in pred.health)
    if pred.verdict == "allowed" and pred.flow.repeat > 1:
        text += (f", all {pred.flow.repeat} probes answered by the first one's endpoint" if pred.sticky else
                 f", each of {pred.flow.repeat} probes by any of {', '.join(f'`{a}`' for a in pred.answered_by)}")
    decided = pred.decided_by
    return text + (f", decided by `{decided}`" if isinstance(decided, str) else ", no rule decides it")


def section(measure: Any | None) -> list[str]:
    """The section's lines; ``measure(topologies)`` as in netiso.report.behaviour (None: predictions only)."""
    cases = topologies()
    results: Sequence[Any] | None = measure([t for _, _, t in cases]) if measure is not None else None
    out = ["", TITLE, "",
           "Each setting at each value, in its own generated scenario (`behaviour-knob-…`: project `shop` isolated, "
           "a probe pod on `worker`, Calico VXLAN); every other setting at its default.", ""]
    for knob in KNOBS:
        extra = [f"`pod:shop/{w['name']}` on {', '.join(w['nodes'])}" for w in knob.workloads]
        setting = ("" if knob.isolated else "; project `shop` not isolated") + (f"; also {', '.join(extra)}"
                                                                              if extra else "")
        out.append(f"* `{knob.key}` — {knob.what}" + (f" ({setting[2:]})" if setting else ""))
        for i, (k, value, topo) in enumerate(cases):
            if k is not knob:
                continue
            measured = results[i].results if results is not None else None
            for j, pred in enumerate(predict_all(topo)):
                out.append(f"  - `{value}`: `{pred.flow.src}` → `{pred.flow.dst}`: {_answer(pred, knob.answerers)}"
                           + measured_suffix(measured[j] if measured is not None else None))
    out.append("")
    return out


def measured_suffix(result: Any) -> str:
    """What the lab said of one flow, for a behaviour.md line (a FlowResult, or None when not measured)."""
    if result is None:
        return "; not measured."
    if result.match:
        return f"; measured **{result.obs.verdict}** on the lab (agrees)."
    return f"; lab: **{result.obs.verdict}** ({'; '.join(result.problems)})."
