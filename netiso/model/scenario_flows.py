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
    for i, item in enumerate(f.seq(cur, value)):
        fcur = cur.at(i)
        f.mapping(fcur, item, ("from", "to", "port", "expect", "intent"), required=("from", "to"))
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
        if dst.kind == "node":
            fcur.at("to").fail("'node:' cannot end a flow (to: takes pod:, clusterip:, nodeport:, loadbalancer:, "
                               "ingress: or client:); to reach a node use nodeport:PROJECT/SERVICE@NODE")
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
        if dst.kind == "client":
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
        expect = read_expect(fcur.at("expect"), item.get("expect"), s, dst.kind == "ingress")
        intent = None
        if item.get("intent") is not None:
            intent = f.choice(fcur.at("intent"), item["intent"], ("wanted", "unwanted"))
        out.append(FlowSpec(src_text, dst_text, port, expect, intent, i))
    return tuple(out)


def read_expect(cur: Cursor, value: Any, s: Scenario, is_ingress: bool) -> Expectation | None:
    if value is None:
        return None
    f.mapping(cur, value, ("verdict", "source", "answeredBy", "forwardedFor"))
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
            if key == "answeredBy" and sym.kind not in ("pod", "ingress-controller"):
                icur.fail(f"answeredBy names a pod (pod:PROJECT/WORKLOAD[@NODE]); got '{text}'")
            check_object_symbol(icur, sym, s)
        out[key] = items
    if verdict and verdict != "allowed" and (out["source"] or out["answeredBy"] or out["forwardedFor"]):
        cur.fail(f"verdict {verdict} means nothing answers: source/answeredBy/forwardedFor only apply to allowed flows")
    return Expectation(verdict, out["source"], out["answeredBy"], out["forwardedFor"])
