"""Validation of a scenario's objects: tenancy (workspaces, projects, whitelists), workloads,
services, ingresses and raw NetworkPolicies.

Called by :mod:`netiso.model.loader` with a :class:`~netiso.model.fields.Cursor` that knows the
file, document and field path, so every problem names all three. Cross-references (a service
peer, a pod symbol in a whitelist) are checked once every object is known.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from netiso.model import fields as f
from netiso.model.fields import Cursor
from netiso.model.service_knob_input import (
    SERVICE_KNOBS,
    read_external_ips,
    read_service_knobs,
    read_session_affinity,
    read_states,
)
from netiso.model.symbols import SymbolSyntaxError, parse_symbol
from netiso.model.tenancy import ISOLATE_POLICY, NSNP_PREFIX
from netiso.model.types import (
    SERVICE_TYPES,
    TRAFFIC_POLICIES,
    ClusterSpec,
    ControllerSpec,
    IngressSpec,
    Port,
    ProjectSpec,
    Scenario,
    ServiceSpec,
    WhitelistRule,
    WorkloadSpec,
    WorkspaceSpec,
)

DEFAULT_PORTS = (Port(8080, "TCP"),)


# --------------------------------------------------------------------------- tenancy


def read_tenancy(cur: Cursor, doc: Mapping[str, Any], cluster: ClusterSpec) -> tuple[tuple[WorkspaceSpec, ...],
                                                                                  tuple[ProjectSpec, ...]]:
    workspaces: list[WorkspaceSpec] = []
    projects: list[ProjectSpec] = []
    seen: dict[str, str] = {}

    def add_project(pcur: Cursor, value: Any, ws: str | None) -> None:
        keys = ("name", "isolation", "whitelist", "labels")
        f.mapping(pcur, value, keys, required=("name",))
        name = f.dns_name(pcur.at("name"), value["name"], "project name")
        if name in seen:
            pcur.at("name").fail(f"project '{name}' is already defined at {seen[name]}")
        seen[name] = pcur.path
        isolation = f.boolean(pcur.at("isolation"), value.get("isolation"))
        whitelist = read_whitelist(pcur.at("whitelist"), value.get("whitelist"), cluster)
        if ws is None and isolation:
            # syncNs returns early for a namespace without kubesphere.io/workspace: the annotation
            # does nothing. A whitelist is different: syncNSNP converts an NSNP in any namespace
            # (nsnetworkpolicy_controller.go, syncNSNP), so it is accepted here.
            pcur.at("isolation").fail(
                "KubeSphere only isolates projects that belong to a workspace (its controller skips "
                "namespaces without the kubesphere.io/workspace label): move this project under workspaces:")
        plabels = f.labels(pcur.at("labels"), value.get("labels"))
        for reserved in ("kubesphere.io/namespace", "kubesphere.io/workspace", "kubernetes.io/metadata.name"):
            if reserved in plabels:
                pcur.at("labels").at(reserved).fail("is set by netiso from the project/workspace; remove it")
        projects.append(ProjectSpec(name, ws, isolation, whitelist, plabels))

    ws_seen: set[str] = set()
    for i, ws in enumerate(f.seq(cur.at("workspaces"), doc.get("workspaces"))):
        wcur = cur.at("workspaces").at(i)
        f.mapping(wcur, ws, ("name", "isolation", "projects"), required=("name",))
        wname = f.dns_name(wcur.at("name"), ws["name"], "workspace name")
        if wname in ws_seen:
            wcur.at("name").fail(f"duplicate workspace '{wname}'")
        ws_seen.add(wname)
        before = len(projects)
        for j, p in enumerate(f.seq(wcur.at("projects"), ws.get("projects"))):
            add_project(wcur.at("projects").at(j), p, wname)
        workspaces.append(WorkspaceSpec(wname, f.boolean(wcur.at("isolation"), ws.get("isolation")),
                                        tuple(p.name for p in projects[before:])))
    for i, p in enumerate(f.seq(cur.at("projects"), doc.get("projects"))):
        add_project(cur.at("projects").at(i), p, None)
    return tuple(workspaces), tuple(projects)


RESERVED_RULE_NAME = ISOLATE_POLICY.removeprefix(NSNP_PREFIX)  # nsnp-<rule name> must not clash with it


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def read_whitelist(cur: Cursor, value: Any, cluster: ClusterSpec) -> tuple[WhitelistRule, ...]:
    rules: list[WhitelistRule] = []
    for i, item in enumerate(f.seq(cur, value)):
        rcur = cur.at(i)
        f.mapping(rcur, item, ("name", "direction", "peer", "ports"), required=("direction", "peer"))
        direction = f.choice(rcur.at("direction"), item["direction"], ("ingress", "egress"))
        pcur = rcur.at("peer")
        peer = f.mapping(pcur, item["peer"], ("cidr", "project", "service"))
        kinds = [k for k in ("cidr", "project", "service") if k in peer]
        if len(kinds) != 1:
            pcur.fail(f"needs exactly one of cidr, project, service; got {len(kinds)}"
                      + (f" ({', '.join(kinds)})" if kinds else ""))
        kind = kinds[0]
        pvalue = f.string(pcur.at(kind), peer[kind])
        if kind == "cidr":
            check_cidr_symbol(pcur.at("cidr"), pvalue, cluster)
        elif kind == "service" and pvalue.count("/") != 1:
            pcur.at("service").fail(f"'{pvalue}' is not PROJECT/SERVICE")
        ports = f.ports(rcur.at("ports"), item.get("ports"))
        default_name = f"{direction}-{kind}-{slug(pvalue)}"[:50].rstrip("-")
        name = f.dns_name(rcur.at("name"), item.get("name", default_name), "whitelist rule name")
        if name == RESERVED_RULE_NAME:
            # KubeSphere names the isolation policy nsnp-network-isolate; a rule of this name would
            # compile to a second NetworkPolicy of the same name (a cluster holds one of them)
            rcur.at("name").fail(f"'{name}' is reserved: project isolation is KubeSphere's "
                                 f"nsnp-{RESERVED_RULE_NAME} NetworkPolicy; give the rule another name")
        if any(r.name == name for r in rules):
            name = f"{name}-{i}"
        rules.append(WhitelistRule(name, direction, kind, pvalue, ports))
    return tuple(rules)


def check_cidr_symbol(cur: Cursor, text: str, cluster: ClusterSpec) -> None:
    try:
        sym = parse_symbol(text)
    except SymbolSyntaxError as exc:
        cur.fail(str(exc))
    if sym.kind == "cidr":
        if "/" in text:
            f.cidr(cur, text)
        return
    if sym.kind in ("pod", "ingress-controller"):
        return  # checked once workloads and ingresses are known
    check_host_symbol(cur, sym, cluster)


def check_host_symbol(cur: Cursor, sym: Any, cluster: ClusterSpec) -> None:
    if sym.kind == "client" and sym.name not in cluster.clients:
        cur.fail(f"unknown client '{sym.name}' (clients: {', '.join(cluster.clients)})")
    if sym.kind in ("node", "tunnel") and sym.name != "*" and sym.name not in cluster.nodes:
        cur.fail(f"unknown node '{sym.name}' (nodes: {', '.join(cluster.nodes)})")
    if sym.kind == "tunnel" and cluster.encapsulation == "direct":
        cur.fail(f"'{sym}' names a tunnel address but cluster.encapsulation is direct (no tunnel device); "
                 "use node:NAME or switch to ipip/vxlan")


def check_whitelist_refs(cur: Cursor, doc: Mapping[str, Any], s: Scenario) -> None:
    """Project/service/pod references of whitelist rules, once every object is known."""
    for p in s.projects:
        pcur = project_cursor(cur, doc, p.name)
        for i, rule in enumerate(p.whitelist):
            rcur = pcur.at("whitelist").at(i).at("peer").at(rule.peer_kind)
            if rule.peer_kind == "project" and s.project(rule.peer_value) is None:
                rcur.fail(f"unknown project '{rule.peer_value}' (projects: {', '.join(x.name for x in s.projects)})")
            if rule.peer_kind == "service":
                project, name = rule.peer_value.split("/")
                if not any(x.project == project and x.name == name for x in s.services):
                    rcur.fail(f"unknown service '{rule.peer_value}' "
                              f"(services: {', '.join(x.project + '/' + x.name for x in s.services) or 'none'})")
            if rule.peer_kind == "cidr":
                sym = parse_symbol(rule.peer_value)
                check_object_symbol(rcur, sym, s)


def project_cursor(cur: Cursor, doc: Mapping[str, Any], name: str) -> Cursor:
    for i, ws in enumerate(doc.get("workspaces") or []):
        for j, p in enumerate(ws.get("projects") or []):
            if p.get("name") == name:
                return cur.at("workspaces").at(i).at("projects").at(j)
    for i, p in enumerate(doc.get("projects") or []):
        if p.get("name") == name:
            return cur.at("projects").at(i)
    return cur


def check_object_symbol(cur: Cursor, sym: Any, s: Scenario) -> None:
    if sym.kind == "pod":
        find_workload(cur, s, sym.project, sym.name, sym.node)
    elif sym.kind == "ingress-controller":
        if not any(i.project == sym.project and i.name == sym.name for i in s.ingresses):
            cur.fail(f"unknown ingress '{sym.project}/{sym.name}' "
                     f"(ingresses: {', '.join(i.project + '/' + i.name for i in s.ingresses) or 'none'})")
    elif sym.kind in ("client", "node", "tunnel"):
        check_host_symbol(cur, sym, s.cluster)


# --------------------------------------------------------------------------- workloads, services


def project_ref(cur: Cursor, value: Any, projects: set[str]) -> str:
    name = f.string(cur, value)
    if name not in projects:
        cur.fail(f"unknown project '{name}' (projects: {', '.join(sorted(projects)) or 'none'}); "
                 "declare it under workspaces[].projects or projects")
    return name


def node_ref(cur: Cursor, value: Any, cluster: ClusterSpec) -> str:
    name = f.string(cur, value)
    if name not in cluster.nodes:
        cur.fail(f"unknown node '{name}' (nodes: {', '.join(cluster.nodes)})")
    return name


def read_workloads(cur: Cursor, value: Any, cluster: ClusterSpec, projects: set[str]) -> tuple[WorkloadSpec, ...]:
    out: list[WorkloadSpec] = []
    for i, item in enumerate(f.seq(cur, value)):
        wcur = cur.at(i)
        f.mapping(wcur, item, ("name", "project", "nodes", "labels", "ports", "state"),
                  required=("name", "project", "nodes"))
        name = f.dns_name(wcur.at("name"), item["name"], "workload name")
        project = project_ref(wcur.at("project"), item["project"], projects)
        if any(w.name == name and w.project == project for w in out):
            wcur.at("name").fail(f"duplicate workload '{project}/{name}'")
        ncur = wcur.at("nodes")
        listed = f.seq(ncur, item["nodes"], allow_empty=False)
        nodes = tuple(node_ref(ncur.at(j), n, cluster) for j, n in enumerate(listed))
        for j, n in enumerate(nodes):
            if n in nodes[:j]:
                ncur.at(j).fail(f"node '{n}' listed twice (one replica is pinned to each listed node)")
        wlabels = f.labels(wcur.at("labels"), item.get("labels")) if "labels" in item else {"app": name}
        ports, host_ports = f.workload_ports(wcur.at("ports"), item.get("ports"), DEFAULT_PORTS)
        names = [p.name for p in ports if p.name]
        if len(names) != len(set(names)):
            wcur.at("ports").fail("port names must be unique within a workload")
        for h, hp in host_ports:  # the scheduler never puts two pods with one hostPort on a node
            other = next((w for w in out for n in nodes if n in w.nodes
                          and any(x == h and q.protocol == hp.protocol for x, q in w.host_ports)), None)
            if other is not None:
                wcur.at("ports").fail(f"hostPort {h}/{hp.protocol} is already taken on a node of this workload by "
                                      f"'{other.project}/{other.name}' (a node port maps to one pod)")
        states = read_states(wcur.at("state"), item.get("state"), nodes)
        out.append(WorkloadSpec(name, project, nodes, wlabels, ports, host_ports, states))
    return tuple(out)


def read_services(cur: Cursor, value: Any, cluster: ClusterSpec, projects: set[str]) -> tuple[ServiceSpec, ...]:
    out: list[ServiceSpec] = []
    for i, item in enumerate(f.seq(cur, value)):
        scur = cur.at(i)
        f.mapping(scur, item, ("name", "project", "selector", "type", "externalTrafficPolicy", "ports",
                               *SERVICE_KNOBS), required=("name", "project"))
        name = f.dns_name(scur.at("name"), item["name"], "service name")
        project = project_ref(scur.at("project"), item["project"], projects)
        if any(s.name == name and s.project == project for s in out):
            scur.at("name").fail(f"duplicate service '{project}/{name}'")
        selector = f.labels(scur.at("selector"), item.get("selector")) if "selector" in item else {"app": name}
        if not selector:
            scur.at("selector").fail("must not be empty: netiso manages endpoints through the selector")
        stype = f.choice(scur.at("type"), item.get("type"), SERVICE_TYPES, "ClusterIP")
        etp = f.choice(scur.at("externalTrafficPolicy"), item.get("externalTrafficPolicy"), TRAFFIC_POLICIES, "Cluster")
        if stype == "ClusterIP" and "externalTrafficPolicy" in item:
            scur.at("externalTrafficPolicy").fail("only NodePort and LoadBalancer services have an "
                                                  "externalTrafficPolicy (Kubernetes rejects it on ClusterIP)")
        if stype == "LoadBalancer" and cluster.loadBalancer == "none":
            scur.at("type").fail("LoadBalancer needs cluster.loadBalancer: metallb or openelb (it is none)")
        ports = f.service_ports(scur.at("ports"), item.get("ports"), DEFAULT_PORTS)
        itp, ranges = read_service_knobs(scur, item, stype, cluster)
        out.append(ServiceSpec(name, project, selector, stype, etp, ports, itp, ranges,
                               read_session_affinity(scur, item), read_external_ips(scur, item, out),
                               f.boolean(scur.at("publishNotReadyAddresses"), item.get("publishNotReadyAddresses"))))
    return tuple(out)


def read_ingresses(cur: Cursor, value: Any, cluster: ClusterSpec, projects: set[str],
               services: tuple[ServiceSpec, ...]) -> tuple[IngressSpec, ...]:
    out: list[IngressSpec] = []
    for i, item in enumerate(f.seq(cur, value)):
        icur = cur.at(i)
        f.mapping(icur, item, ("name", "project", "host", "service", "port", "controller"),
                  required=("name", "project", "host", "service", "controller"))
        name = f.dns_name(icur.at("name"), item["name"], "ingress name")
        project = project_ref(icur.at("project"), item["project"], projects)
        if any(x.name == name and x.project == project for x in out):
            icur.at("name").fail(f"duplicate ingress '{project}/{name}'")
        host = f.string(icur.at("host"), item["host"])
        if not re.match(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", host):
            icur.at("host").fail(f"'{host}' is not a DNS host name")
        svc_name = f.string(icur.at("service"), item["service"])
        svc = next((s for s in services if s.project == project and s.name == svc_name), None)
        if svc is None:
            there = ", ".join(s.name for s in services if s.project == project) or "none"
            icur.at("service").fail(f"backend service '{svc_name}' does not exist in project '{project}' "
                                    f"(services there: {there})")
        port = None
        if "port" in item:
            port = f.port(icur.at("port"), item["port"])
            if not any(p.port == port.port and p.protocol == port.protocol for p in svc.ports):
                icur.at("port").fail(f"service '{project}/{svc_name}' has no port {port}")
        if port is None and svc.ports[0].protocol != "TCP":
            icur.at("service").fail("an ingress needs a TCP service port; set ingresses[].port")
        ccur = icur.at("controller")
        c = f.mapping(ccur, item["controller"], ("project", "node", "exposure", "externalTrafficPolicy"),
                      required=("project", "node"))
        exposure = f.choice(ccur.at("exposure"), c.get("exposure"), ("NodePort", "LoadBalancer"), "NodePort")
        if exposure == "LoadBalancer" and cluster.loadBalancer == "none":
            ccur.at("exposure").fail("LoadBalancer needs cluster.loadBalancer: metallb or openelb (it is none)")
        controller = ControllerSpec(
            project=project_ref(ccur.at("project"), c["project"], projects),
            node=node_ref(ccur.at("node"), c["node"], cluster),
            exposure=exposure,
            externalTrafficPolicy=f.choice(ccur.at("externalTrafficPolicy"), c.get("externalTrafficPolicy"),
                                           TRAFFIC_POLICIES, "Cluster"),
        )
        if any(x.host == host and x.controller == controller for x in out):
            icur.at("host").fail(f"host '{host}' is already routed by another ingress on the same controller")
        out.append(IngressSpec(name, project, host, svc_name, controller, port))
    return tuple(out)


CONTROLLER_NAME_RE = re.compile(r"^ingress-controller(-[0-9]+)?$")


def check_controller_names(cur: Cursor, workloads: tuple[WorkloadSpec, ...], services: tuple[ServiceSpec, ...],
                            ingresses: tuple[IngressSpec, ...]) -> None:
    """Names the address plan gives ingress controllers (``ingress-controller[-N]``) are reserved.

    A workload of that name would be selected by the controller's Service (same ``app`` label)
    and a Service of that name would collide with it; both fail late or silently otherwise.
    """
    hosts: dict[str, int] = {}
    for n, ing in enumerate(ingresses):
        hosts.setdefault(ing.controller.project, n)
    for what, objects in (("workloads", workloads), ("services", services)):
        for k, obj in enumerate(objects):
            if obj.project in hosts and CONTROLLER_NAME_RE.match(obj.name):
                cur.at(what).at(k).at("name").fail(
                    f"'{obj.name}' is reserved in project '{obj.project}': netiso names the ingress controller "
                    f"of ingresses[{hosts[obj.project]}] (its pod and Service) ingress-controller[-N] there; "
                    "rename it")


def read_network_policies(cur: Cursor, value: Any, projects: set[str]) -> tuple[Mapping[str, Any], ...]:
    from netiso.model.netpol_validate import validate_network_policy

    out: list[Mapping[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for i, item in enumerate(f.seq(cur, value)):
        pcur = cur.at(i)
        problems = validate_network_policy(item)
        if problems:
            path, message = problems[0]
            (pcur.at(path) if path else pcur).fail(message)
        ns = item["metadata"]["namespace"]
        name = item["metadata"]["name"]
        if ns not in projects:
            pcur.at("metadata.namespace").fail(f"unknown project '{ns}' (projects: {', '.join(sorted(projects))})")
        if name.startswith("nsnp-"):
            pcur.at("metadata.name").fail("names starting with 'nsnp-' belong to KubeSphere's generated "
                                          "policies; choose another name")
        if (ns, name) in seen:
            pcur.at("metadata.name").fail(f"duplicate NetworkPolicy '{ns}/{name}'")
        seen.add((ns, name))
        out.append(item)
    return tuple(out)

# --------------------------------------------------------------------------- flows


def find_workload(cur: Cursor, s: Scenario, project: str, name: str, node: str | None) -> WorkloadSpec:
    w = next((w for w in s.workloads if w.project == project and w.name == name), None)
    if w is None:
        cur.fail(f"unknown workload '{project}/{name}' "
                 f"(workloads: {', '.join(x.project + '/' + x.name for x in s.workloads) or 'none'})")
    if node is not None and node not in w.nodes:
        if node not in s.cluster.nodes:
            cur.fail(f"unknown node '{node}' (nodes: {', '.join(s.cluster.nodes)})")
        cur.fail(f"workload '{project}/{name}' has no replica on '{node}' (it runs on {', '.join(w.nodes)})")
    return w


def find_service(cur: Cursor, s: Scenario, project: str, name: str) -> ServiceSpec:
    svc = next((x for x in s.services if x.project == project and x.name == name), None)
    if svc is None:
        cur.fail(f"unknown service '{project}/{name}' "
                 f"(services: {', '.join(x.project + '/' + x.name for x in s.services) or 'none'})")
    return svc
