"""docs/behaviour.md: how every exposure path behaves under project isolation, generated.

Why generated: the founding article ("网络隔离的最小配置") answers its question with prose and
pictures that nobody re-checks. This module builds the question as scenarios, predicts every
flow with the oracle, measures the same flows on a backend (the lab, through a ``measure``
callable handed in by ``bin/behaviour-doc``: this layer may not import ``netiso.checking``) and
writes one deterministic Markdown page, so the page is regenerated and compared in the tests
instead of drifting.

What is asked, per Calico encapsulation (direct / IPIP / VXLAN): an isolated project ``shop``
(workspace ``ws``, no whitelist) runs ``web`` on ``worker``; it is reached as a pod, through a
ClusterIP, a NodePort and a LoadBalancer (MetalLB and OpenELB) under externalTrafficPolicy
Cluster and Local, and through ingresses whose controllers (in ``kubesphere-controls-system``,
on ``worker2``) are exposed by NodePort or LoadBalancer; each entered on a node with and
without the endpoint. For every row:

* the verdict with isolation and no whitelist (scenario ``behaviour-<mode>-<lb>``);
* the minimal whitelist that opens it (:func:`netiso.oracle.minimal.minimal_config` on that
  flow alone) and, measured with the union of those entries (scenario ``...-whitelisted``),
  which source the pod sees;
* which source the *policy* sees: the ingress decision of ``shop``'s pod on the predicted
  path (:class:`netiso.oracle.paths.Hop` ``check``), which can differ from the pod's view;
* a Mermaid diagram of the path, shared by the rows that take the same path;
* the claims of the founding article (as summarised in the project's design notes) checked
  against the measured rows, with the rows where they differ.

LoadBalancer entry nodes are chosen by the announcer's hash, not by the client, so the address
pool is placed (:func:`_plan_pool`) until one Cluster VIP is announced by the endpoint node and
one by a node without it; the search is deterministic, so the page names the same VIPs every
time. No timings or run ids reach the page.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from netiso.model.addressing import resolve
from netiso.model.loader import loads
from netiso.model.types import Scenario, ServiceInfo, Topology
from netiso.oracle.minimal import MinimalConfig, minimal_config
from netiso.oracle.paths import TUNNEL_DEV
from netiso.oracle.predict import Prediction, predict_all
from netiso.oracle.profile import DEFAULT_PROFILE
from netiso.report.behaviour_knobs import section as knob_section
from netiso.report.behaviour_service_peers import section as service_peer_section

MODES = ("direct", "ipip", "vxlan")
LOAD_BALANCERS = ("metallb", "openelb")
PROJECT = "shop"
OTHER = "other"
CONTROLLER_NS = "kubesphere-controls-system"
SECOND_CONTROLLER_NS = "ingress-nginx"
ENDPOINT_NODE, OTHER_NODE = "worker", "worker2"
CONTROLLER_NODE = OTHER_NODE
DEFAULT_OUT = Path("docs/behaviour.md")

# measure(topologies) -> one result per topology, in order; each has ``.results``, a list (in flow
# order) of objects with ``.obs`` (verdict, source_ip, answered_by, forwarded_for), ``.match``
# and ``.problems`` - what netiso.checking.check_many returns.
Measure = Callable[[list[Topology]], Sequence[Any]]


@dataclass(frozen=True)
class RowSpec:
    """One flow of the question: how the project is reached and where the traffic enters."""

    exposure: str  # pod | ClusterIP | NodePort | LoadBalancer | Ingress (NodePort) | Ingress (LoadBalancer)
    etp: str  # Cluster | Local | "–" (pod, ClusterIP)
    src: str
    dst: str
    lb_only: bool = False  # differs between MetalLB and OpenELB: measured in both scenarios


def _row_specs() -> list[RowSpec]:
    web = f"{PROJECT}/web"
    rows = [
        RowSpec("pod", "–", "client:alice", f"pod:{web}"),
        RowSpec("pod", "–", f"pod:{OTHER}/cli@{ENDPOINT_NODE}", f"pod:{web}"),
        RowSpec("pod", "–", f"pod:{OTHER}/cli@{OTHER_NODE}", f"pod:{web}"),
        RowSpec("pod", "–", f"node:{ENDPOINT_NODE}", f"pod:{web}"),
        RowSpec("pod", "–", f"node:{OTHER_NODE}", f"pod:{web}"),
        RowSpec("ClusterIP", "–", f"pod:{OTHER}/cli@{ENDPOINT_NODE}", f"clusterip:{web}"),
        RowSpec("ClusterIP", "–", f"pod:{OTHER}/cli@{OTHER_NODE}", f"clusterip:{web}"),
    ]
    for etp in ("Cluster", "Local"):
        rows += [RowSpec("NodePort", etp, "client:alice", f"nodeport:{PROJECT}/np-{etp.lower()}@{n}")
                 for n in (ENDPOINT_NODE, OTHER_NODE)]
    rows += [RowSpec("LoadBalancer", "Cluster", "client:alice", f"loadbalancer:{PROJECT}/lb-cluster-{x}", True)
             for x in ("a", "b")]
    rows.append(RowSpec("LoadBalancer", "Local", "client:alice", f"loadbalancer:{PROJECT}/lb-local", True))
    for etp in ("Cluster", "Local"):
        rows += [RowSpec("Ingress (NodePort)", etp, "client:alice", f"ingress:{PROJECT}/web-np-{etp.lower()}@{n}")
                 for n in (CONTROLLER_NODE, ENDPOINT_NODE)]
    rows += [RowSpec("Ingress (LoadBalancer)", "Cluster", "client:alice", f"ingress:{PROJECT}/web-lb-cluster-{x}", True)
             for x in ("a", "b")]
    rows.append(RowSpec("Ingress (LoadBalancer)", "Local", "client:alice", f"ingress:{PROJECT}/web-lb-local", True))
    return rows


ROWS = tuple(_row_specs())


# --------------------------------------------------------------------------- scenarios


# A LoadBalancer-exposed controller Service per (ingress, ETP). Controllers are one per
# (project, node, exposure, ETP), so the two Cluster ones live in two namespaces: the path is the
# same, only the namespace the minimal whitelist names differs.
LB_INGRESSES = (("web-lb-cluster-a", CONTROLLER_NS, "Cluster"), ("web-lb-cluster-b", SECOND_CONTROLLER_NS, "Cluster"),
                ("web-lb-local", CONTROLLER_NS, "Local"))


def scenario_dict(mode: str, lb: str, pool: str, lb_order: Sequence[str] = ("a", "b"),
                  ingress_order: Sequence[int] = (0, 1, 2)) -> dict[str, Any]:
    """The question for (``mode``, ``lb``) as a scenario document (no whitelist); the orders
    decide which VIP of the pool each LoadBalancer Service gets."""
    services: list[dict[str, Any]] = [
        {"name": f"lb-cluster-{x}", "project": PROJECT, "selector": {"app": "web"}, "type": "LoadBalancer",
         "externalTrafficPolicy": "Cluster"} for x in lb_order]
    services.append({"name": "lb-local", "project": PROJECT, "selector": {"app": "web"}, "type": "LoadBalancer",
                     "externalTrafficPolicy": "Local"})
    services += [{"name": f"np-{etp.lower()}", "project": PROJECT, "selector": {"app": "web"}, "type": "NodePort",
                  "externalTrafficPolicy": etp} for etp in ("Cluster", "Local")]
    services.append({"name": "web", "project": PROJECT})

    def ingress(name: str, ns: str, exposure: str, etp: str) -> dict[str, Any]:
        return {"name": name, "project": PROJECT, "host": f"{name}.shop.example", "service": "web",
                "controller": {"project": ns, "node": CONTROLLER_NODE, "exposure": exposure,
                               "externalTrafficPolicy": etp}}

    ingresses = [ingress(f"web-np-{etp.lower()}", CONTROLLER_NS, "NodePort", etp) for etp in ("Cluster", "Local")]
    ingresses += [ingress(LB_INGRESSES[i][0], LB_INGRESSES[i][1], "LoadBalancer", LB_INGRESSES[i][2])
                  for i in ingress_order]
    rows = [r for r in ROWS if lb == LOAD_BALANCERS[0] or r.lb_only]
    return {
        "name": f"behaviour-{mode}-{lb}",
        "description": (f"docs/behaviour.md, Calico {mode}, {lb}: {PROJECT}/web on {ENDPOINT_NODE} in an isolated "
                        f"project without whitelist, reached as a pod, by ClusterIP, NodePort, LoadBalancer and "
                        f"ingresses (controllers in {CONTROLLER_NS} and {SECOND_CONTROLLER_NS} on {CONTROLLER_NODE})."),
        "cluster": {"encapsulation": mode, "loadBalancer": lb, "clients": ["alice"],
                    "network": {"loadBalancerPool": pool}},
        "workspaces": [{"name": "ws", "projects": [{"name": PROJECT, "isolation": True}]}],
        "projects": [{"name": OTHER}, {"name": CONTROLLER_NS}, {"name": SECOND_CONTROLLER_NS}],
        "workloads": [{"name": "web", "project": PROJECT, "nodes": [ENDPOINT_NODE]},
                      {"name": "cli", "project": OTHER, "nodes": [ENDPOINT_NODE, OTHER_NODE]}],
        "services": services,
        "ingresses": ingresses,
        "flows": [{"from": r.src, "to": r.dst, "intent": "wanted"} for r in rows],
    }


def _planned(topo: Topology) -> bool:
    """Both kinds of entry occur: ``-a`` enters the node with the endpoint (the controller for
    an ingress), ``-b`` a node without it."""
    a, b = topo.services[f"{PROJECT}/lb-cluster-a"], topo.services[f"{PROJECT}/lb-cluster-b"]
    ia, ib = (topo.ingresses[f"{PROJECT}/web-lb-cluster-{x}"].controller.service for x in ("a", "b"))
    return (a.lb_node == ENDPOINT_NODE and b.lb_node not in (None, ENDPOINT_NODE)
            and ia.lb_node == CONTROLLER_NODE and ib.lb_node not in (None, CONTROLLER_NODE))


def _plan_pool(mode: str, lb: str) -> tuple[Scenario, Topology]:
    """The first pool window (and order of the Cluster LoadBalancers) that satisfies :func:`_planned`.

    Each order is loaded (validated) once; windows only swap the pool, which the loader checks
    no further than its syntax.
    """
    variants = []
    for order in itertools.product((("a", "b"), ("b", "a")), ((0, 1, 2), (1, 0, 2))):
        text = yaml.safe_dump(scenario_dict(mode, lb, "198.18.0.200-198.18.0.250", *order), sort_keys=False, width=120)
        variants.append(loads(text, file=f"<behaviour {mode}-{lb}>")[0])
    for start in range(200, 245):
        for base in variants:
            network = replace(base.cluster.network, loadBalancerPool=f"198.18.0.{start}-198.18.0.250")
            scenario = replace(base, cluster=replace(base.cluster, network=network))
            topo = resolve(scenario)
            if _planned(topo):
                return scenario, topo
    raise RuntimeError(f"no LoadBalancer pool window gives both entry kinds for {lb}")


@dataclass
class Case:
    """One (mode, load balancer): the scenario without whitelist and the whitelisted one."""

    mode: str
    lb: str
    plain: Scenario
    plain_topo: Topology
    whitelisted: Scenario
    whitelisted_topo: Topology
    minimal: list[MinimalConfig]  # per flow, the minimal whitelist of that flow alone
    plain_preds: list[Prediction] = field(default_factory=list)
    white_preds: list[Prediction] = field(default_factory=list)
    plain_obs: list[Any] | None = None
    white_obs: list[Any] | None = None


def build_case(mode: str, lb: str) -> Case:
    plain, topo = _plan_pool(mode, lb)
    per_flow = []
    for flow in plain.flows:
        only = tuple(replace(f, intent="wanted" if f is flow else None) for f in plain.flows)
        per_flow.append(minimal_config(replace(plain, flows=only)))
    union = minimal_config(plain)
    white = replace(union.scenario_with(), name=f"{plain.name}-whitelisted",
                    description=plain.description.replace("without whitelist", "with its minimal whitelist"))
    white_topo = resolve(white)
    case = Case(mode, lb, plain, topo, white, white_topo, per_flow)
    case.plain_preds = predict_all(topo, DEFAULT_PROFILE)
    case.white_preds = predict_all(white_topo, DEFAULT_PROFILE)
    return case


def build_cases() -> list[Case]:
    return [build_case(m, lb) for m in MODES for lb in LOAD_BALANCERS]


def topologies(cases: Sequence[Case]) -> list[Topology]:
    """What a backend must run, in the order :func:`attach` expects the results."""
    return [t for c in cases for t in (c.plain_topo, c.whitelisted_topo)]


def attach(cases: Sequence[Case], results: Sequence[Any]) -> None:
    if len(results) != 2 * len(cases):
        raise ValueError(f"expected {2 * len(cases)} scenario results, got {len(results)}")
    for i, case in enumerate(cases):
        case.plain_obs = list(results[2 * i].results)
        case.white_obs = list(results[2 * i + 1].results)


# --------------------------------------------------------------------------- one row


@dataclass
class Row:
    spec: RowSpec
    case: Case
    index: int  # flow index in the case's scenarios
    entry: str
    measured_entry: str | None  # LoadBalancer rows: the node that answered ARP for the VIP on the lab
    has_endpoint: bool
    label: str  # exposure as shown (LoadBalancer (MetalLB) ...)
    verdict: str
    measured_verdict: str | None
    pod_sees: list[str]
    measured_pod: str | None
    xff: list[str]  # ingress rows: X-Forwarded-For as predicted
    measured_xff: str | None
    policy_sees: list[str]
    whitelist: str
    whitelisted_verdict: str
    measured_whitelisted: str | None
    agree: bool | None
    disagreement: str = ""
    diagram: str = ""

    @property
    def mode(self) -> str:
        return self.case.mode


def _exposed_service(pred: Prediction) -> ServiceInfo | None:
    """The Service the flow enters by: the ingress controller's for an ingress, else the target's."""
    t = pred.target
    return t.ingress.controller.service if t.ingress is not None else t.service


def _entry(spec: RowSpec, pred: Prediction) -> tuple[str, bool]:
    if spec.exposure in ("pod", "ClusterIP"):
        if spec.src.startswith("pod:"):
            node = spec.src.split("@", 1)[1]
        elif spec.src.startswith("node:"):
            node = spec.src.split(":", 1)[1]
        else:  # a client routes the pod block to the node that owns it
            node = ENDPOINT_NODE
        return node, node == ENDPOINT_NODE
    svc = _exposed_service(pred)
    assert svc is not None
    node = spec.dst.split("@", 1)[1] if "@" in spec.dst else (svc.lb_node or "none")
    return node, node in svc.endpoint_nodes()


def _policy_sees(pred: Prediction) -> list[str]:
    """The sources the protected pod's ingress policy judged on the predicted path(s)."""
    out: list[str] = []
    for outcome in pred.outcomes:
        for hop in outcome.hops:
            check = getattr(hop, "check", None)
            if check is not None and check.pod.project == PROJECT:
                sym = pred.symbol(check.src_ip)
                if sym not in out:
                    out.append(sym)
    return out


def _whitelist_text(result: MinimalConfig, spec: RowSpec, has_endpoint: bool) -> str:
    project = result.project(PROJECT)
    if project is None:
        return "none needed"
    if project.unsatisfiable:
        if spec.etp == "Local" and not has_endpoint:  # said in words, not in the oracle's hop text
            return ("none opens it: kube-proxy drops it on the entry node (externalTrafficPolicy Local, "
                    "no local endpoint), before any policy")
        return "none opens it: " + project.unsatisfiable[0].because
    entries = [f"`{e.peer_kind}: {e.peer_value}`" + (f" ({', '.join(str(p) for p in e.ports)})" if e.ports else "")
               for e in project.whitelist]
    return ", ".join(entries) or "none needed"


def _symbol(pred: Prediction, ip: str | None) -> str | None:
    return None if ip is None else pred.symbol(ip)


def build_rows(cases: Sequence[Case]) -> list[Row]:
    rows = []
    for case in cases:
        specs = [r for r in ROWS if case.lb == LOAD_BALANCERS[0] or r.lb_only]
        for i, spec in enumerate(specs):
            plain, white = case.plain_preds[i], case.white_preds[i]
            assert (plain.flow.src, plain.flow.dst) == (spec.src, spec.dst)
            entry, has_ep = _entry(spec, plain)
            label = spec.exposure
            if spec.lb_only:
                label += " · " + {"metallb": "MetalLB", "openelb": "OpenELB"}[case.lb]
            measured = case.plain_obs is not None and case.white_obs is not None
            pr = case.plain_obs[i] if case.plain_obs is not None else None
            wr = case.white_obs[i] if case.white_obs is not None else None
            problems = []
            if measured:
                problems = [f"without whitelist: {p}" for p in pr.problems] + [
                    f"with the minimal whitelist: {p}" for p in wr.problems]
            rows.append(Row(
                spec=spec, case=case, index=i, entry=entry, has_endpoint=has_ep, label=label,
                measured_entry=(pr.obs.elected or wr.obs.elected) if measured else None,
                verdict=plain.verdict, measured_verdict=pr.obs.verdict if pr else None,
                pod_sees=list(white.source), measured_pod=_symbol(white, wr.obs.source_ip) if wr else None,
                xff=list(white.forwarded_for or []), measured_xff=_symbol(white, wr.obs.forwarded_for) if wr else None,
                policy_sees=_policy_sees(white) or _policy_sees(plain),
                whitelist=_whitelist_text(case.minimal[i], spec, has_ep),
                whitelisted_verdict=white.verdict, measured_whitelisted=wr.obs.verdict if wr else None,
                agree=(pr.match and wr.match) if measured else None, disagreement="; ".join(problems)))
    order = {(r.src, r.dst): i for i, r in enumerate(ROWS)}
    rows.sort(key=lambda r: (MODES.index(r.mode), order[(r.spec.src, r.spec.dst)], LOAD_BALANCERS.index(r.case.lb)))
    for row in rows:
        row.diagram = diagram(row)
    return rows


# --------------------------------------------------------------------------- diagrams


def _role(sym: str, row: Row) -> str:
    """A source symbol named by its role in the row (so paths that differ only in names share a diagram)."""
    kind, _, rest = sym.partition(":")
    if kind == "client":
        return "the client"
    if kind == "ingress-controller":
        return "the ingress controller pod"
    if kind == "pod":
        return "the source pod"
    where = "entry node" if rest == row.entry else ("endpoint node" if rest == ENDPOINT_NODE else f"node {rest}")
    if kind == "node":
        return f"{where} IP"
    if kind == "tunnel":
        return f"{where} tunnel IP"
    return sym


def _roles(symbols: Sequence[str], row: Row) -> str:
    return " or ".join(dict.fromkeys(_role(s, row) for s in symbols)) or "–"


def diagram(row: Row) -> str:
    """Mermaid flowchart of the row's path (names replaced by roles, so identical paths share it)."""
    spec, mode = row.spec, row.mode
    dev = TUNNEL_DEV[mode]
    cross = f"{dev} ({mode})" if mode != "direct" else "eth0 (direct routing)"
    unsat = row.whitelist.startswith("none opens it")
    policy = _roles(row.policy_sees, row)
    pod = _roles(row.pod_sees, row)
    lines = ["flowchart LR"]
    src = {"client": "client", "pod": "pod of another project", "node": "node (host network)"}[spec.src.split(":")[0]]
    lines.append(f'  S["{src}"]')
    endpoint_label = "endpoint node" if row.entry != ENDPOINT_NODE else "entry = endpoint node"
    if spec.exposure == "pod":
        if spec.src.startswith("node:") and row.has_endpoint:
            lines.append('  S -->|"cali veth (OUTPUT)"| W["same node<br/>host to local pod: not policed by Calico"]')
        elif spec.src.startswith("client:"):
            lines.append(f'  S -->|"routed to the pod block"| W["{endpoint_label}<br/>Calico ingress policy sees {policy}"]')
        elif row.has_endpoint:
            lines.append(f'  S -->|"cali veth"| W["same node<br/>Calico ingress policy sees {policy}"]')
        else:
            lines.append(f'  S -->|"{cross}"| W["endpoint node<br/>Calico ingress policy sees {policy}"]')
    elif spec.exposure == "ClusterIP":
        first = "same node" if row.has_endpoint else "source pod's node"
        lines.append(f'  S --> E["{first}<br/>kube-proxy DNAT to the pod, no SNAT"]')
        if row.has_endpoint:
            lines.append(f'  E --> W["Calico ingress policy sees {policy}"]')
        else:
            lines.append(f'  E -->|"{cross}"| W["endpoint node<br/>Calico ingress policy sees {policy}"]')
    else:
        ingress = spec.exposure.startswith("Ingress")
        how = "ARP for the VIP answered by" if "LoadBalancer" in spec.exposure else "NodePort on"
        has = "with" if row.has_endpoint else "without"
        what = "controller pod" if ingress else "endpoint"
        if unsat:
            lines.append(f'  S -->|"{how} the entry node"| E["entry node {has} {what}<br/>'
                         f'ETP {spec.etp}: no local endpoint, DROP"]')
            lines.append("  style E stroke:#c00,stroke-width:2px")
            return "\n".join(lines)
        if spec.etp == "Local":
            nat = "DNAT to the local endpoint, no SNAT"
        elif row.has_endpoint:
            nat = "DNAT, marked for MASQUERADE"
        else:
            nat = "DNAT to the remote endpoint, MASQUERADE"
        lines.append(f'  S -->|"{how} the entry node"| E["entry node {has} {what}<br/>kube-proxy {nat}"]')
        if ingress:
            seen = _roles(row.case.white_preds[row.index].forwarded_for or [], row)
            if row.has_endpoint:
                lines.append(f'  E --> C["ingress controller pod (nginx) sees {seen}<br/>'
                             f'proxies to the backend pod IP, X-Forwarded-For: {seen}"]')
            else:
                lines.append(f'  E -->|"{cross}"| C["ingress controller pod (nginx) sees {seen}<br/>'
                             f'proxies to the backend pod IP, X-Forwarded-For: {seen}"]')
            lines.append(f'  C -->|"{cross}"| W["endpoint node<br/>Calico ingress policy sees {policy}"]')
        elif row.has_endpoint:
            tail = ", then MASQUERADE to a node address" if spec.etp == "Cluster" else ""
            lines.append(f'  E --> W["Calico ingress policy sees {policy}{tail}"]')
        else:
            lines.append(f'  E -->|"{cross}"| W["endpoint node<br/>Calico ingress policy sees {policy}"]')
    lines.append(f'  W --> P["pod {PROJECT}/web sees {pod}"]')
    return "\n".join(lines)


# --------------------------------------------------------------------------- the article's claims


@dataclass(frozen=True)
class Claim:
    """A statement of the founding article (as summarised in the design notes) and how to test
    it on a row: ``applies`` selects the rows, ``holds`` tells whether the row bears it out."""

    text: str
    applies: Callable[[Row], bool]
    holds: Callable[[Row], bool]
    measured: str  # what the rows show when it does not hold


def _service(row: Row) -> bool:
    return row.spec.exposure in ("NodePort", "LoadBalancer")


def _endpoint_nodes(row: Row) -> tuple[str, ...]:
    svc = _exposed_service(row.case.plain_preds[row.index])
    return svc.endpoint_nodes() if svc is not None else ()


def _controller_ns(row: Row) -> str:
    target = row.case.plain_preds[row.index].target
    return target.ingress.controller.pod.project if target.ingress is not None else ""


def _pod_seen(row: Row) -> list[str]:
    return [row.measured_pod] if row.measured_pod else row.pod_sees


def _passes(row: Row) -> bool:
    return (row.measured_whitelisted or row.whitelisted_verdict) == "allowed"


CLAIMS = (
    Claim("externalTrafficPolicy Local keeps the client's address: the pod and the policy see the client.",
          lambda r: _service(r) and r.spec.etp == "Local" and r.has_endpoint,
          lambda r: _pod_seen(r) == ["client:alice"] and r.policy_sees == ["client:alice"],
          "the pod or the policy saw another address"),
    Claim("externalTrafficPolicy Local entered on a node without an endpoint: the traffic is dropped.",
          lambda r: _service(r) and r.spec.etp == "Local" and not r.has_endpoint,
          lambda r: not _passes(r),
          "it passed"),
    Claim("A LoadBalancer VIP with externalTrafficPolicy Local is announced only by a node with an endpoint "
          "(MetalLB L2, OpenELB layer2).",
          lambda r: "LoadBalancer" in r.spec.exposure and r.spec.etp == "Local",
          lambda r: (r.measured_entry or r.entry) in _endpoint_nodes(r),
          "another node answered ARP for the VIP"),
    Claim("externalTrafficPolicy Cluster with the endpoint on another node: SNAT to the entry node "
          "(its tunnel IP with IPIP/VXLAN, its node IP in direct mode), so a whitelist of the client's "
          "address is not enough and the SNAT address must be whitelisted (\"can't block specific IPs\").",
          lambda r: _service(r) and r.spec.etp == "Cluster" and not r.has_endpoint,
          lambda r: _pod_seen(r) == r.policy_sees and all(
              s == (f"node:{r.entry}" if r.mode == "direct" else f"tunnel:{r.entry}") for s in r.policy_sees),
          "the pod or the policy saw another address"),
    Claim("externalTrafficPolicy Cluster with the endpoint on the entry node: the client address \"may\" be kept.",
          lambda r: _service(r) and r.spec.etp == "Cluster" and r.has_endpoint,
          lambda r: _pod_seen(r) == ["client:alice"],
          "kube-proxy (iptables) always marks Cluster traffic for MASQUERADE: the Calico policy "
          "(filter FORWARD, before POSTROUTING) still judges the client, so a whitelist of the client "
          "address opens it, but the pod sees a node address"),
    Claim("Ingress: X-Forwarded-For carries the client only when the controller's own entry kept it "
          "(externalTrafficPolicy Local on the controller's Service); otherwise the address that replaced it.",
          lambda r: r.spec.exposure.startswith("Ingress") and _passes(r),
          lambda r: ((r.measured_xff if r.measured_xff else r.xff[0] if len(r.xff) == 1 else None) == "client:alice")
          == (r.spec.etp == "Local"),
          "X-Forwarded-For did not follow the controller Service's traffic policy"),
    Claim("Ingress: the backend sees the ingress controller, so the controller's namespace must be whitelisted.",
          lambda r: r.spec.exposure.startswith("Ingress") and _passes(r),
          lambda r: _pod_seen(r) == ["ingress-controller:" + r.spec.dst.split(":", 1)[1].split("@", 1)[0]]
          and f"project: {_controller_ns(r)}" in r.whitelist,
          "the backend saw another address or the minimal whitelist is not the controller's namespace"),
)


# --------------------------------------------------------------------------- rendering


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _verdict(pred: str, measured: str | None) -> str:
    if measured is None or measured == pred:
        return pred
    return f"{pred} (lab: **{measured}**)"


def _seen_cell(predicted: list[str], measured: str | None) -> str:
    pred = " or ".join(f"`{s}`" for s in predicted)
    if measured is None:
        return pred
    return f"`{measured}`" + ("" if measured in predicted else f" (predicted {pred})")


def _pod_cell(row: Row) -> str:
    if row.whitelisted_verdict != "allowed" and row.measured_whitelisted != "allowed":
        return "–"
    text = _seen_cell(row.pod_sees, row.measured_pod)
    if row.spec.exposure.startswith("Ingress"):
        text += "; X-Forwarded-For " + _seen_cell(row.xff, row.measured_xff)
    return text


def _entry_cell(row: Row) -> str:
    text = f"{row.entry} {'✔' if row.has_endpoint else '✘'}"
    if row.measured_entry is not None and row.measured_entry != row.entry:
        text += f" (lab: VIP answered by **{row.measured_entry}**)"
    return text


def _policy_cell(row: Row) -> str:
    if row.policy_sees:
        return " or ".join(f"`{s}`" for s in row.policy_sees)
    if row.whitelisted_verdict == "allowed":
        return "– (host to local pod: not policed)"
    return "– (dropped before it)"


def _agree_cell(row: Row) -> str:
    if row.agree is None:
        return "not measured"
    return "✓" if row.agree else "✗ " + _cell(row.disagreement)


def render(rows: Sequence[Row], measured: bool) -> str:
    diagrams: dict[str, str] = {}
    for row in rows:
        diagrams.setdefault(row.diagram, f"D{len(diagrams) + 1}")
    out = [
        "# How exposure paths behave under KubeSphere project isolation",
        "",
        "<!-- generated by bin/behaviour-doc (netiso/report/behaviour.py); do not edit by hand -->",
        "",
        f"Profile `{DEFAULT_PROFILE.name}` (kube-proxy in iptables mode, Calico's iptables dataplane). "
        + ("Every flow was predicted by the oracle **and measured on the embedded lab** (real kernel datapath "
           "in network namespaces); the last column says whether the lab agreed with the prediction."
           if measured else
           "**Predictions only**: this page was generated with `--no-measure`, nothing was measured."),
        "",
        "The set-up: project `shop` (workspace `ws`, project isolation on, **no whitelist**) runs one replica "
        f"of `web` on `{ENDPOINT_NODE}`; `{OTHER_NODE}` and `control-plane` have no endpoint. External client "
        f"`alice`; pods of project `{OTHER}` on both workers; ingress controllers (nginx) in "
        f"`{CONTROLLER_NS}` on `{CONTROLLER_NODE}`. For LoadBalancer rows the entry node is the node that "
        "announces the VIP (MetalLB L2 / OpenELB layer2 election), placed so that both kinds of entry occur.",
        "",
        "Columns:",
        "",
        "* **entry**: the node where the traffic enters (for pod and ClusterIP rows: the source pod's node); "
        "✔ = it runs the endpoint (for ingress rows: the controller pod).",
        "* **no whitelist**: the verdict with isolation on and no whitelist.",
        "* **minimal whitelist**: the smallest KubeSphere ingress whitelist of `shop` that opens this flow "
        "alone (`netiso minimal-config`), with the pod port after DNAT.",
        "* **with it**: the verdict once that whitelist is applied.",
        "* **policy sees**: the source address Calico's ingress policy of `shop/web` judges (on the predicted path).",
        "* **pod sees**: the source address the pod sees (measured with the minimal whitelist applied).",
        "* **path**: the diagram below.",
        "",
    ]
    for mode in MODES:
        out += [f"## Calico {mode}" + {"direct": " (no encapsulation, BGP routes)", "ipip": " (IP-in-IP, tunl0)",
                                        "vxlan": " (VXLAN, vxlan.calico)"}[mode], ""]
        head = ["exposure", "ETP", "from → to", "entry", "no whitelist", "minimal whitelist", "with it",
                "policy sees", "pod sees", "path", "lab agrees"]
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "---|" * len(head))
        for row in (r for r in rows if r.mode == mode):
            cells = [row.label, row.spec.etp, f"`{row.spec.src}` → `{row.spec.dst}`",
                     _entry_cell(row),
                     _verdict(row.verdict, row.measured_verdict), row.whitelist,
                     _verdict(row.whitelisted_verdict, row.measured_whitelisted),
                     _policy_cell(row),
                     _pod_cell(row), diagrams[row.diagram], _agree_cell(row)]
            out.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        out.append("")
    out += ["## Path diagrams", "",
            "One diagram per distinct path; addresses are named by their role in the flow, so a diagram is "
            "shared by every row (and mode) that takes the same path.", ""]
    for text, ident in diagrams.items():
        users = [f"{r.mode} {r.label}{'' if r.spec.etp == '–' else ' ' + r.spec.etp} `{r.spec.src}` → `{r.spec.dst}`"
                 for r in rows if r.diagram == text]
        out += [f"### {ident}", "", "Used by: " + "; ".join(users) + ".", "", "```mermaid", text, "```", ""]
    out += ["## Where the measurements differ from the founding article", "",
            "The KubeSphere article \"网络隔离的最小配置\" (the minimal configuration of network isolation) "
            "explains which whitelist an isolated project needs. Its claims, each checked on the rows it "
            "speaks about" + (" as measured:" if measured else " as predicted:"), ""]
    for claim in CLAIMS:
        covered = [r for r in rows if claim.applies(r)]
        bad = [r for r in covered if not claim.holds(r)]
        status = "holds" if not bad else ("**differs**" if len(bad) == len(covered) else "**differs in part**")
        out.append(f"* {claim.text} — {status} ({len(covered) - len(bad)} of {len(covered)} rows bear it out).")
        if bad:
            out.append(f"  Measured instead: {claim.measured}. Rows:")
            for r in bad:
                out.append(f"  - {r.mode}, {r.label} {r.spec.etp}, `{r.spec.dst}` (entry {r.entry}): policy sees "
                           f"{' or '.join(f'`{s}`' for s in r.policy_sees) or '–'}, pod sees "
                           f"{' or '.join(f'`{s}`' for s in _pod_seen(r)) or '–'}")
    out.append("")
    out += ["## Scenarios", "",
            "The rows come from these generated scenarios (`behaviour-<mode>-<lb>` without whitelist, "
            "`…-whitelisted` with the union of the rows' minimal whitelists); the MetalLB scenario "
            "carries every row, the OpenELB one only the rows whose entry depends on the load balancer.", ""]
    seen: set[str] = set()
    for r in rows:
        c = r.case
        if c.plain.name in seen:
            continue
        seen.add(c.plain.name)
        pool = c.plain.cluster.network.loadBalancerPool
        vips = ", ".join(f"{k.split('/', 1)[1]} {s.lb_ip} (announced by {s.lb_node})"
                         for k, s in c.plain_topo.services.items() if s.lb_ip)
        out.append(f"* `{c.plain.name}` / `{c.whitelisted.name}`: pool {pool}; {vips}")
    out.append("")
    return "\n".join(out)


def generate(measure: Measure | None = None) -> str:
    """The whole page; ``measure`` runs the scenarios on a backend (None: predictions only)."""
    cases = build_cases()
    if measure is not None:
        attach(cases, measure(topologies(cases)))
    page = render(build_rows(cases), measured=measure is not None)
    return page + "\n".join(service_peer_section(measure)) + "\n".join(knob_section(measure))


def main(argv: Sequence[str] | None = None, measure: Measure | None = None) -> int:
    """``bin/behaviour-doc [--out FILE] [--no-measure]``; the script hands in ``measure``."""
    p = argparse.ArgumentParser(prog="behaviour-doc", description="Regenerate docs/behaviour.md.")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write (default docs/behaviour.md)")
    p.add_argument("--no-measure", action="store_true", help="predictions only: no lab (no root needed)")
    args = p.parse_args(argv)
    text = generate(None if args.no_measure else measure)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0

