"""Validation of a scenario's flows and their expectations (docs: scenarios.md, "Flow endpoints").

A flow must start where traffic can start (client, pod, node), end at something that exists
and fits its kind (a NodePort needs a NodePort/LoadBalancer service and a node, ...), and its
``expect`` may only name symbols that make sense for the flow.
"""

from __future__ import annotations

from typing import Any

from netiso.model import fields as f
from netiso.model.fields import Cursor
from netiso.model.scenario_objects import check_host_symbol, check_object_symbol, find_service, find_workload, node_ref
from netiso.model.symbols import SymbolSyntaxError, parse_endpoint, parse_symbol
from netiso.model.types import (
    VERDICTS,
    Expectation,
    FlowSpec,
    IngressSpec,
    Scenario,
    ServiceSpec,
)


def read_flows(cur: Cursor, value: Any, s: Scenario) -> tuple[FlowSpec, ...]:
    out: list[FlowSpec] = []
    routes: dict[tuple[str, str], str] = {}  # (client, external IP) -> the node the outside network routes it to
    for i, item in enumerate(f.seq(cur, value)):
        fcur = cur.at(i)
        f.mapping(fcur, item, ("from", "to", "port", "expect", "intent", "repeat"), required=("from", "to"))
        src_text = f.string(fcur.at("from"), item["from"])
        dst_text = f.string(fcur.at("to"), item["to"])
        try:
            src = parse_endpoint(src_text)
        except SymbolSyntaxError as exc:
            fcur.at("from").fail(str(exc))
        try:
            dst = parse_endpoint(dst_text)
        except SymbolSyntaxError as exc:
            fcur.at("to").fail(str(exc))
        if src.kind not in ("client", "pod", "node"):
            fcur.at("from").fail(f"'{src.kind}:' cannot start a flow (from: takes client:, pod: or node:)")
        if src.kind == "client" and dst.kind == "client":
            fcur.at("to").fail("client -> client traffic never touches the cluster (to: client: is for egress "
                               "from pod: or node:)")
        if src.kind == "client" and dst.kind == "clusterip":
            # External hosts have no route to the service network: only kube-proxy on a node DNATs it.
            fcur.at("to").fail("clusterip: is reachable only from pod: and node: sources; from a client use "
                               "nodeport:PROJECT/SERVICE@NODE, loadbalancer: or ingress:")
        # existence of what the endpoints name
        if src.kind in ("client", "node"):
            check_host_symbol(fcur.at("from"), src, s.cluster)
        else:
            find_workload(fcur.at("from"), s, src.project, src.name, src.node)
        dcur = fcur.at("to")
        svc: ServiceSpec | None = None
        ing: IngressSpec | None = None
        if dst.kind in ("client", "node"):  # node: a host-network server on the node (flow's port)
            check_host_symbol(dcur, dst, s.cluster)
        elif dst.kind == "pod":
            find_workload(dcur, s, dst.project, dst.name, dst.node)
        elif dst.kind in ("clusterip", "nodeport", "loadbalancer"):
            svc = find_service(dcur, s, dst.project, dst.name)
            if dst.kind == "nodeport":
                if svc.type == "ClusterIP":
                    dcur.fail(f"service '{dst.project}/{dst.name}' is ClusterIP and has no NodePort "
                              "(type NodePort or LoadBalancer has one)")
                node_ref(dcur, dst.node, s.cluster)
            if dst.kind == "loadbalancer" and svc.type != "LoadBalancer":
                dcur.fail(f"service '{dst.project}/{dst.name}' is {svc.type}, not LoadBalancer")
        elif dst.kind == "healthcheck":
            svc = find_service(dcur, s, dst.project, dst.name)
            check_health_check(dcur, svc, dst.node, s)
        elif dst.kind == "externalip":
            svc = find_service(dcur, s, dst.project, dst.name)
            check_external_ip_route(dcur, src.kind, src.name, dst.node, svc, s, routes)
        elif dst.kind == "hostport":
            check_host_port(dcur, fcur.at("port"), dst.project, dst.name, dst.node, item.get("port"), s)
        elif dst.kind == "ingress":
            ing = next((x for x in s.ingresses if x.project == dst.project and x.name == dst.name), None)
            if ing is None:
                dcur.fail(f"unknown ingress '{dst.project}/{dst.name}' "
                          f"(ingresses: {', '.join(x.project + '/' + x.name for x in s.ingresses) or 'none'})")
            if dst.node is not None:
                node_ref(dcur, dst.node, s.cluster)
                if ing.controller.exposure == "LoadBalancer":
                    dcur.fail("@NODE only applies to a NodePort-exposed controller; this one is LoadBalancer "
                              "(traffic goes to the VIP)")
        port = None
        if "port" in item:
            port = f.port(fcur.at("port"), item["port"])
            if svc is not None and not any(p.port == port.port and p.protocol == port.protocol for p in svc.ports):
                fcur.at("port").fail(f"service '{svc.project}/{svc.name}' has no port {port} "
                                     f"(ports: {', '.join(str(p) for p in svc.ports)})")
            if ing is not None:
                fcur.at("port").fail("ingress flows always use the controller's HTTP port; remove port:")
        if "port" in item and dst.kind == "healthcheck":
            fcur.at("port").fail("a health check goes to the Service's healthCheckNodePort; remove port:")
        expect = read_expect(fcur.at("expect"), item.get("expect"), s, dst.kind == "ingress",
                             is_health=dst.kind == "healthcheck")
        intent = None
        if item.get("intent") is not None:
            intent = f.choice(fcur.at("intent"), item["intent"], ("wanted", "unwanted"))
        out.append(FlowSpec(src_text, dst_text, port, expect, intent, i, read_repeat(fcur.at("repeat"), item)))
    return tuple(out)


def check_external_ip_route(cur: Cursor, src_kind: str, src_name: str | None, node: str | None, svc: ServiceSpec,
                            s: Scenario, routes: dict[tuple[str, str], str]) -> None:
    """``externalip:P/S@NODE``: the Service's first external IP, which the outside network routes to NODE.

    A client needs @NODE (its route to the address), and one node per client and address (a host
    has one route to an address); a pod or node sends it to kube-proxy on its own node, so @NODE
    would say nothing there.
    """
    if not svc.externalIPs:
        cur.fail(f"service '{svc.project}/{svc.name}' has no externalIPs (add externalIPs: [203.0.113.10] to it)")
    if src_kind != "client":
        if node is not None:
            cur.fail("@NODE is where the outside network routes the external IP, for client: sources only; a pod "
                     "or node sends it to kube-proxy on its own node: remove @NODE")
        return
    if node is None:
        cur.fail("from a client, name the node the outside network routes the external IP to: "
                 f"externalip:{svc.project}/{svc.name}@NODE")
    node_ref(cur, node, s.cluster)
    key = (str(src_name), svc.externalIPs[0])
    if routes.setdefault(key, node) != node:
        cur.fail(f"client:{src_name} already routes {svc.externalIPs[0]} via {routes[key]} (one route per address); "
                 f"use @{routes[key]}")


def check_host_port(cur: Cursor, pcur: Cursor, project: str | None, name: str | None, node: str | None,
                    port: Any, s: Scenario) -> None:
    """``hostport:P/W@NODE``: a workload port with a hostPort, on a node that runs a replica.

    The portmap plugin opens the port on the pod's own node only. A pod may reach its own
    hostPort (hairpin): portmap masquerades it to the node (oracle/host_port_nat.py, oracle/source_nat.py).
    """
    w = find_workload(cur, s, project, name, None)
    node_ref(cur, node, s.cluster)
    if not w.host_ports:
        cur.fail(f"workload '{w.project}/{w.name}' has no hostPort (write a port as {{port: 8080, hostPort: 8080}})")
    if node not in w.nodes:
        cur.fail(f"workload '{w.project}/{w.name}' has no replica on '{node}': its hostPort is open only on its "
                 f"pods' nodes ({', '.join(w.nodes)})")
    if port is not None:
        p = f.port(pcur, port)
        if not any(q.port == p.port and q.protocol == p.protocol for _, q in w.host_ports):
            pcur.fail(f"port: names the container port; workload '{w.project}/{w.name}' has no hostPort on {p} "
                      f"(ports with a hostPort: {', '.join(str(q) for _, q in w.host_ports)})")


def check_health_check(cur: Cursor, svc: ServiceSpec, node: str | None, s: Scenario) -> None:
    """``healthcheck:P/S@NODE``: only an ETP Local LoadBalancer Service has a healthCheckNodePort.

    With ``cluster.kubeProxy.nodePortAddresses`` kube-proxy's health server listens on those
    addresses only, which the lab's does not model: refused rather than predicted wrong.
    """
    if svc.type != "LoadBalancer" or svc.externalTrafficPolicy != "Local":
        cur.fail(f"service '{svc.project}/{svc.name}' has no healthCheckNodePort: only a LoadBalancer with "
                 "externalTrafficPolicy: Local has one")
    node_ref(cur, node, s.cluster)
    if s.cluster.kubeProxy.nodePortAddresses:
        cur.fail("health checks are not modelled with cluster.kubeProxy.nodePortAddresses (kube-proxy's health "
                 "server then listens on those addresses only); remove one or the other")


MAX_REPEAT = 20


def read_repeat(cur: Cursor, item: Any) -> int:
    """``repeat: N``: the flow is probed N times, one probe after the other, from the same source.

    Why: kube-proxy's ClientIP session affinity is a property of repeated connections (every
    probe after the first lands on the first one's endpoint); a single probe cannot show it.
    """
    value = item.get("repeat", 1)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_REPEAT:
        cur.fail(f"expected a whole number of probes, 1 to {MAX_REPEAT}; got {f.describe(value)}")
    return value


def read_expect(cur: Cursor, value: Any, s: Scenario, is_ingress: bool, *, is_health: bool = False) -> Expectation | None:
    if value is None:
        return None
    f.mapping(cur, value, ("verdict", "source", "answeredBy", "forwardedFor", "status"))
    status = None
    if "status" in value:
        if not is_health:
            cur.at("status").fail("status only applies to health-check flows (to: healthcheck:...)")
        if value["status"] not in (200, 503):
            cur.at("status").fail(f"kube-proxy's health server answers 200 or 503; got {f.describe(value['status'])}")
        status = value["status"]
    if is_health and any(k in value for k in ("source", "answeredBy", "forwardedFor")):
        cur.fail("a health check is judged on its verdict and status (kube-proxy's answer names no client or "
                 "server): remove source/answeredBy/forwardedFor")
    verdict = None
    if value.get("verdict") is not None:
        verdict = f.choice(cur.at("verdict"), value["verdict"], VERDICTS)
    out: dict[str, tuple[str, ...]] = {}
    for key in ("source", "answeredBy", "forwardedFor"):
        kcur = cur.at(key)
        items = f.one_or_many(kcur, value.get(key))
        if key == "forwardedFor" and items and not is_ingress:
            kcur.fail("forwardedFor only applies to ingress flows (to: ingress:...)")
        for j, text in enumerate(items):
            icur = kcur.at(j) if not isinstance(value.get(key), str) else kcur
            try:
                sym = parse_symbol(text)
            except SymbolSyntaxError as exc:
                icur.fail(str(exc))
            if key == "answeredBy" and sym.kind not in ("pod", "ingress-controller", "node"):
                icur.fail(f"answeredBy names a pod (pod:PROJECT/WORKLOAD[@NODE]) or a node (node:NAME, "
                          f"a host-network server); got '{text}'")
            check_object_symbol(icur, sym, s)
        out[key] = items
    if verdict and verdict != "allowed" and (out["source"] or out["answeredBy"] or out["forwardedFor"]):
        cur.fail(f"verdict {verdict} means nothing answers: source/answeredBy/forwardedFor only apply to allowed flows")
    if status is not None and verdict not in (None, "allowed"):
        cur.fail(f"verdict {verdict} means nothing answers: status only applies to an answered health check")
    return Expectation(verdict, out["source"], out["answeredBy"], out["forwardedFor"], status)
