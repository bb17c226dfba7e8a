"""Load and validate scenario files (docs: scenarios.md, the public contract).

Every document becomes one :class:`~netiso.model.types.Scenario`. Validation is complete and
strict before anything is built: unknown fields, unknown names, endpoints that do not fit
their kind, symbols that make no sense in the chosen mode. A problem raises
:class:`~netiso.model.errors.ScenarioError` naming file, document (index and name) and field.

>>> s = loads("name: t\\nworkloads: [{name: web, project: demo, nodes: [worker]}]\\n"
...           "projects: [{name: demo}]\\n")[0]
>>> s.workloads[0].ports, s.cluster.encapsulation
((Port(port=8080, protocol='TCP', name=None),), 'vxlan')
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from netiso.model import fields as f
from netiso.model.errors import ScenarioError
from netiso.model.fields import Cursor
from netiso.model.symbols import SymbolSyntaxError, parse_endpoint, parse_symbol
from netiso.model.types import (
    DEFAULT_NODES,
    ENCAPSULATIONS,
    LOAD_BALANCERS,
    SERVICE_TYPES,
    TRAFFIC_POLICIES,
    VERDICTS,
    ClusterSpec,
    ControllerSpec,
    Expectation,
    FlowSpec,
    IngressSpec,
    NetworkPlan,
    Port,
    ProjectSpec,
    Scenario,
    ServiceSpec,
    Source,
    WhitelistRule,
    WorkloadSpec,
    WorkspaceSpec,
)

TOP_KEYS = ("name", "description", "cluster", "workspaces", "projects", "networkPolicies", "workloads",
            "services", "ingresses", "flows")
DEFAULT_PORTS = (Port(8080, "TCP"),)


def load_scenarios(paths: Iterable[str | Path]) -> list[Scenario]:
    """Load every scenario from files and directories (``*.yaml``/``*.yml``, recursively, sorted).

    Names must be unique across the whole run.
    """
    scenarios: list[Scenario] = []
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
            if not found:
                raise ScenarioError(f"directory {path} holds no *.yaml scenario files")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise ScenarioError(f"{path}: no such file or directory")
    seen: dict[str, Source] = {}
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ScenarioError(f"cannot read: {exc}", file=str(file)) from None
        for scenario in loads(text, str(file)):
            if scenario.name in seen:
                raise ScenarioError(
                    f"scenario name '{scenario.name}' is already used by {seen[scenario.name].where()}; "
                    "names must be unique within a run",
                    file=str(file), document=scenario.source.index, name=scenario.name, field="name")
            seen[scenario.name] = scenario.source
            scenarios.append(scenario)
    return scenarios


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys instead of silently keeping the last one.

    YAML requires unique keys and kubectl refuses them; PyYAML would quietly drop the first
    ``name:`` or ``flows:`` and the run would test something the user did not write.
    Merge keys (``<<``) keep their override semantics.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"found duplicate key '{key}'", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def loads(text: str, file: str = "<string>") -> list[Scenario]:
    """Parse every YAML document of ``text`` into a validated Scenario."""
    try:
        docs = list(yaml.load_all(text, Loader=_UniqueKeyLoader))  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError(f"not valid YAML{where}: {problem}", file=file) from None
    out = []
    for index, doc in enumerate(docs):
        if doc is None:
            continue
        out.append(_scenario(doc, file, index))
    if not out:
        raise ScenarioError("holds no scenario documents", file=file)
    return out


# --------------------------------------------------------------------------- one document


def _scenario(doc: Any, file: str, index: int) -> Scenario:
    name = doc.get("name") if isinstance(doc, Mapping) else None
    cur = Cursor(file, index, name if isinstance(name, str) else None, "")
    f.mapping(cur, doc, TOP_KEYS, required=("name",))
    name = f.dns_name(cur.at("name"), doc["name"], "scenario name")
    description = doc.get("description") or ""
    if not isinstance(description, str):
        cur.at("description").fail("expected text")

    cluster = _cluster(cur.at("cluster"), doc.get("cluster"))
    workspaces, projects = _tenancy(cur, doc, cluster)
    project_names = {p.name for p in projects}
    workloads = _workloads(cur.at("workloads"), doc.get("workloads"), cluster, project_names)
    services = _services(cur.at("services"), doc.get("services"), cluster, project_names)
    ingresses = _ingresses(cur.at("ingresses"), doc.get("ingresses"), cluster, project_names, services)
    _check_controller_names(cur, workloads, services, ingresses)
    policies = _network_policies(cur.at("networkPolicies"), doc.get("networkPolicies"), project_names)
    scenario = Scenario(
        name=name, description=description, cluster=cluster, workspaces=workspaces, projects=projects,
        networkPolicies=policies, workloads=workloads, services=services, ingresses=ingresses,
        flows=(), source=Source(file, index, name),
    )
    _check_whitelist_refs(cur, doc, scenario)
    flows = _flows(cur.at("flows"), doc.get("flows"), scenario)
    return Scenario(**{**scenario.__dict__, "flows": flows})


def _cluster(cur: Cursor, value: Any) -> ClusterSpec:
    if value is None:
        return ClusterSpec()
    f.mapping(cur, value, ("encapsulation", "nodes", "loadBalancer", "clients", "network"))
    enc = f.choice(cur.at("encapsulation"), value.get("encapsulation"), ENCAPSULATIONS, "vxlan")
    nodes = _names(cur.at("nodes"), value.get("nodes"), DEFAULT_NODES, "node name")
    lb = f.choice(cur.at("loadBalancer"), value.get("loadBalancer"), LOAD_BALANCERS, "metallb")
    clients = _names(cur.at("clients"), value.get("clients"), ("client",), "client name")
    network = _network(cur.at("network"), value.get("network"), len(nodes), len(clients))
    return ClusterSpec(enc, nodes, lb, clients, network)


def _names(cur: Cursor, value: Any, default: tuple[str, ...], what: str) -> tuple[str, ...]:
    if value is None:
        return default
    items = f.seq(cur, value, allow_empty=False)
    names = tuple(f.dns_name(cur.at(i), v, what) for i, v in enumerate(items))
    for i, n in enumerate(names):
        if n in names[:i]:
            cur.at(i).fail(f"duplicate {what} '{n}'")
    return names


def _network(cur: Cursor, value: Any, n_nodes: int, n_clients: int) -> NetworkPlan:
    if value is None:
        plan = NetworkPlan()
    else:
        f.mapping(cur, value, ("nodeNetwork", "podNetwork", "serviceNetwork", "loadBalancerPool", "blockSize"))
        base = NetworkPlan()
        block = value.get("blockSize", base.blockSize)
        if not isinstance(block, int) or isinstance(block, bool) or not 20 <= block <= 30:
            cur.at("blockSize").fail(f"{f.describe(block)} is not a block size between 20 and 30 (Calico default 26)")
        plan = NetworkPlan(
            nodeNetwork=f.cidr(cur.at("nodeNetwork"), value.get("nodeNetwork", base.nodeNetwork)),
            podNetwork=f.cidr(cur.at("podNetwork"), value.get("podNetwork", base.podNetwork)),
            serviceNetwork=f.cidr(cur.at("serviceNetwork"), value.get("serviceNetwork", base.serviceNetwork)),
            loadBalancerPool=f.string(cur.at("loadBalancerPool"), value.get("loadBalancerPool", base.loadBalancerPool)),
            blockSize=block,
        )
    node_net = ipaddress.ip_network(plan.nodeNetwork)
    if node_net.num_addresses < 100 + n_clients + 2 and node_net.num_addresses < 10 + n_nodes + n_clients:
        cur.at("nodeNetwork").fail(f"{plan.nodeNetwork} is too small for {n_nodes} nodes and {n_clients} clients")
    pod_net = ipaddress.ip_network(plan.podNetwork)
    if pod_net.prefixlen > 24 - max(0, (n_nodes - 1).bit_length()):
        cur.at("podNetwork").fail(f"{plan.podNetwork} is too small: each node takes a /24 slot for its block")
    try:
        _pool_range(plan.loadBalancerPool)
    except ValueError as exc:
        cur.at("loadBalancerPool").fail(f"'{plan.loadBalancerPool}' is not FIRST-LAST or a CIDR ({exc})")
    return plan


def _pool_range(text: str) -> list[str]:
    if "-" in text:
        first, last = (ipaddress.ip_address(x.strip()) for x in text.split("-", 1))
        if int(last) < int(first):
            raise ValueError("last address before first")
        return [str(ipaddress.ip_address(i)) for i in range(int(first), int(last) + 1)]
    return [str(a) for a in ipaddress.ip_network(text, strict=True)]


# --------------------------------------------------------------------------- tenancy


def _tenancy(cur: Cursor, doc: Mapping[str, Any], cluster: ClusterSpec) -> tuple[tuple[WorkspaceSpec, ...],
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
        whitelist = _whitelist(pcur.at("whitelist"), value.get("whitelist"), cluster)
        if ws is None and (isolation or whitelist):
            field = "isolation" if isolation else "whitelist"
            pcur.at(field).fail(
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


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _whitelist(cur: Cursor, value: Any, cluster: ClusterSpec) -> tuple[WhitelistRule, ...]:
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
            _check_cidr_symbol(pcur.at("cidr"), pvalue, cluster)
        elif kind == "service" and pvalue.count("/") != 1:
            pcur.at("service").fail(f"'{pvalue}' is not PROJECT/SERVICE")
        ports = f.ports(rcur.at("ports"), item.get("ports"))
        default_name = f"{direction}-{kind}-{_slug(pvalue)}"[:50].rstrip("-")
        name = f.dns_name(rcur.at("name"), item.get("name", default_name), "whitelist rule name")
        if any(r.name == name for r in rules):
            name = f"{name}-{i}"
        rules.append(WhitelistRule(name, direction, kind, pvalue, ports))
    return tuple(rules)


def _check_cidr_symbol(cur: Cursor, text: str, cluster: ClusterSpec) -> None:
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
    _check_host_symbol(cur, sym, cluster)


def _check_host_symbol(cur: Cursor, sym: Any, cluster: ClusterSpec) -> None:
    if sym.kind == "client" and sym.name not in cluster.clients:
        cur.fail(f"unknown client '{sym.name}' (clients: {', '.join(cluster.clients)})")
    if sym.kind in ("node", "tunnel") and sym.name != "*" and sym.name not in cluster.nodes:
        cur.fail(f"unknown node '{sym.name}' (nodes: {', '.join(cluster.nodes)})")
    if sym.kind == "tunnel" and cluster.encapsulation == "direct":
        cur.fail(f"'{sym}' names a tunnel address but cluster.encapsulation is direct (no tunnel device); "
                 "use node:NAME or switch to ipip/vxlan")


def _check_whitelist_refs(cur: Cursor, doc: Mapping[str, Any], s: Scenario) -> None:
    """Project/service/pod references of whitelist rules, once every object is known."""
    for p in s.projects:
        pcur = _project_cursor(cur, doc, p.name)
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
                _check_object_symbol(rcur, sym, s)


def _project_cursor(cur: Cursor, doc: Mapping[str, Any], name: str) -> Cursor:
    for i, ws in enumerate(doc.get("workspaces") or []):
        for j, p in enumerate(ws.get("projects") or []):
            if p.get("name") == name:
                return cur.at("workspaces").at(i).at("projects").at(j)
    for i, p in enumerate(doc.get("projects") or []):
        if p.get("name") == name:
            return cur.at("projects").at(i)
    return cur


def _check_object_symbol(cur: Cursor, sym: Any, s: Scenario) -> None:
    if sym.kind == "pod":
        _find_workload(cur, s, sym.project, sym.name, sym.node)
    elif sym.kind == "ingress-controller":
        if not any(i.project == sym.project and i.name == sym.name for i in s.ingresses):
            cur.fail(f"unknown ingress '{sym.project}/{sym.name}' "
                     f"(ingresses: {', '.join(i.project + '/' + i.name for i in s.ingresses) or 'none'})")
    elif sym.kind in ("client", "node", "tunnel"):
        _check_host_symbol(cur, sym, s.cluster)


# --------------------------------------------------------------------------- workloads, services


def _project_ref(cur: Cursor, value: Any, projects: set[str]) -> str:
    name = f.string(cur, value)
    if name not in projects:
        cur.fail(f"unknown project '{name}' (projects: {', '.join(sorted(projects)) or 'none'}); "
                 "declare it under workspaces[].projects or projects")
    return name


def _node_ref(cur: Cursor, value: Any, cluster: ClusterSpec) -> str:
    name = f.string(cur, value)
    if name not in cluster.nodes:
        cur.fail(f"unknown node '{name}' (nodes: {', '.join(cluster.nodes)})")
    return name


def _workloads(cur: Cursor, value: Any, cluster: ClusterSpec, projects: set[str]) -> tuple[WorkloadSpec, ...]:
    out: list[WorkloadSpec] = []
    for i, item in enumerate(f.seq(cur, value)):
        wcur = cur.at(i)
        f.mapping(wcur, item, ("name", "project", "nodes", "labels", "ports"), required=("name", "project", "nodes"))
        name = f.dns_name(wcur.at("name"), item["name"], "workload name")
        project = _project_ref(wcur.at("project"), item["project"], projects)
        if any(w.name == name and w.project == project for w in out):
            wcur.at("name").fail(f"duplicate workload '{project}/{name}'")
        ncur = wcur.at("nodes")
        listed = f.seq(ncur, item["nodes"], allow_empty=False)
        nodes = tuple(_node_ref(ncur.at(j), n, cluster) for j, n in enumerate(listed))
        for j, n in enumerate(nodes):
            if n in nodes[:j]:
                ncur.at(j).fail(f"node '{n}' listed twice (one replica is pinned to each listed node)")
        wlabels = f.labels(wcur.at("labels"), item.get("labels")) if "labels" in item else {"app": name}
        ports = f.ports(wcur.at("ports"), item.get("ports"), DEFAULT_PORTS)
        names = [p.name for p in ports if p.name]
        if len(names) != len(set(names)):
            wcur.at("ports").fail("port names must be unique within a workload")
        out.append(WorkloadSpec(name, project, nodes, wlabels, ports))
    return tuple(out)


def _services(cur: Cursor, value: Any, cluster: ClusterSpec, projects: set[str]) -> tuple[ServiceSpec, ...]:
    out: list[ServiceSpec] = []
    for i, item in enumerate(f.seq(cur, value)):
        scur = cur.at(i)
        f.mapping(scur, item, ("name", "project", "selector", "type", "externalTrafficPolicy", "ports"),
                  required=("name", "project"))
        name = f.dns_name(scur.at("name"), item["name"], "service name")
        project = _project_ref(scur.at("project"), item["project"], projects)
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
        ports = f.ports(scur.at("ports"), item.get("ports"), DEFAULT_PORTS)
        out.append(ServiceSpec(name, project, selector, stype, etp, ports))
    return tuple(out)


def _ingresses(cur: Cursor, value: Any, cluster: ClusterSpec, projects: set[str],
               services: tuple[ServiceSpec, ...]) -> tuple[IngressSpec, ...]:
    out: list[IngressSpec] = []
    for i, item in enumerate(f.seq(cur, value)):
        icur = cur.at(i)
        f.mapping(icur, item, ("name", "project", "host", "service", "port", "controller"),
                  required=("name", "project", "host", "service", "controller"))
        name = f.dns_name(icur.at("name"), item["name"], "ingress name")
        project = _project_ref(icur.at("project"), item["project"], projects)
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
            project=_project_ref(ccur.at("project"), c["project"], projects),
            node=_node_ref(ccur.at("node"), c["node"], cluster),
            exposure=exposure,
            externalTrafficPolicy=f.choice(ccur.at("externalTrafficPolicy"), c.get("externalTrafficPolicy"),
                                           TRAFFIC_POLICIES, "Cluster"),
        )
        if any(x.host == host and x.controller == controller for x in out):
            icur.at("host").fail(f"host '{host}' is already routed by another ingress on the same controller")
        out.append(IngressSpec(name, project, host, svc_name, controller, port))
    return tuple(out)


CONTROLLER_NAME_RE = re.compile(r"^ingress-controller(-[0-9]+)?$")


def _check_controller_names(cur: Cursor, workloads: tuple[WorkloadSpec, ...], services: tuple[ServiceSpec, ...],
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


def _network_policies(cur: Cursor, value: Any, projects: set[str]) -> tuple[Mapping[str, Any], ...]:
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


def _find_workload(cur: Cursor, s: Scenario, project: str, name: str, node: str | None) -> WorkloadSpec:
    w = next((w for w in s.workloads if w.project == project and w.name == name), None)
    if w is None:
        cur.fail(f"unknown workload '{project}/{name}' "
                 f"(workloads: {', '.join(x.project + '/' + x.name for x in s.workloads) or 'none'})")
    if node is not None and node not in w.nodes:
        if node not in s.cluster.nodes:
            cur.fail(f"unknown node '{node}' (nodes: {', '.join(s.cluster.nodes)})")
        cur.fail(f"workload '{project}/{name}' has no replica on '{node}' (it runs on {', '.join(w.nodes)})")
    return w


def _find_service(cur: Cursor, s: Scenario, project: str, name: str) -> ServiceSpec:
    svc = next((x for x in s.services if x.project == project and x.name == name), None)
    if svc is None:
        cur.fail(f"unknown service '{project}/{name}' "
                 f"(services: {', '.join(x.project + '/' + x.name for x in s.services) or 'none'})")
    return svc


def _flows(cur: Cursor, value: Any, s: Scenario) -> tuple[FlowSpec, ...]:
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
            _check_host_symbol(fcur.at("from"), src, s.cluster)
        else:
            _find_workload(fcur.at("from"), s, src.project, src.name, src.node)
        dcur = fcur.at("to")
        svc: ServiceSpec | None = None
        ing: IngressSpec | None = None
        if dst.kind == "client":
            _check_host_symbol(dcur, dst, s.cluster)
        elif dst.kind == "pod":
            _find_workload(dcur, s, dst.project, dst.name, dst.node)
        elif dst.kind in ("clusterip", "nodeport", "loadbalancer"):
            svc = _find_service(dcur, s, dst.project, dst.name)
            if dst.kind == "nodeport":
                if svc.type == "ClusterIP":
                    dcur.fail(f"service '{dst.project}/{dst.name}' is ClusterIP and has no NodePort "
                              "(type NodePort or LoadBalancer has one)")
                _node_ref(dcur, dst.node, s.cluster)
            if dst.kind == "loadbalancer" and svc.type != "LoadBalancer":
                dcur.fail(f"service '{dst.project}/{dst.name}' is {svc.type}, not LoadBalancer")
        elif dst.kind == "ingress":
            ing = next((x for x in s.ingresses if x.project == dst.project and x.name == dst.name), None)
            if ing is None:
                dcur.fail(f"unknown ingress '{dst.project}/{dst.name}' "
                          f"(ingresses: {', '.join(x.project + '/' + x.name for x in s.ingresses) or 'none'})")
            if dst.node is not None:
                _node_ref(dcur, dst.node, s.cluster)
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
        expect = _expect(fcur.at("expect"), item.get("expect"), s, dst.kind == "ingress")
        intent = None
        if item.get("intent") is not None:
            intent = f.choice(fcur.at("intent"), item["intent"], ("wanted", "unwanted"))
        out.append(FlowSpec(src_text, dst_text, port, expect, intent, i))
    return tuple(out)


def _expect(cur: Cursor, value: Any, s: Scenario, is_ingress: bool) -> Expectation | None:
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
            _check_object_symbol(icur, sym, s)
        out[key] = items
    if verdict and verdict != "allowed" and (out["source"] or out["answeredBy"] or out["forwardedFor"]):
        cur.fail(f"verdict {verdict} means nothing answers: source/answeredBy/forwardedFor only apply to allowed flows")
    return Expectation(verdict, out["source"], out["answeredBy"], out["forwardedFor"])
