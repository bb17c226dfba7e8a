"""Load and validate scenario files (docs: scenarios.md, the public contract).

Every document becomes one :class:`~netiso.model.types.Scenario`. This module reads files and
documents and the ``cluster`` section; :mod:`netiso.model.scenario_objects` and
:mod:`netiso.model.scenario_flows` validate the rest. Validation is complete and
strict before anything is built: unknown fields, unknown names, endpoints that do not fit
their kind, symbols that make no sense in the chosen mode. A problem raises
:class:`~netiso.model.errors.ScenarioError` naming file, document (index and name) and field.

>>> s = loads("name: t\\nworkloads: [{name: web, project: demo, nodes: [worker]}]\\n"
...           "projects: [{name: demo}]\\n")[0]
>>> s.workloads[0].ports, s.cluster.encapsulation
((Port(port=8080, protocol='TCP', name=None, target=None),), 'vxlan')
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from netiso.model import fields as f
from netiso.model.errors import ScenarioError
from netiso.model.fields import Cursor
from netiso.model.kubesphere_settings import read_kubesphere
from netiso.model.scenario_flows import read_flows
from netiso.model.scenario_objects import (
    check_controller_names,
    check_whitelist_refs,
    read_ingresses,
    read_network_policies,
    read_services,
    read_tenancy,
    read_workloads,
)
from netiso.model.types import (
    DEFAULT_NODES,
    DETECT_LOCAL_MODES,
    ENCAPSULATIONS,
    ENDPOINT_TO_HOST_ACTIONS,
    LOAD_BALANCERS,
    ClusterSpec,
    FelixSpec,
    KubeProxySpec,
    NetworkPlan,
    Scenario,
    Source,
)

TOP_KEYS = ("name", "description", "cluster", "workspaces", "projects", "networkPolicies", "workloads",
            "services", "ingresses", "flows")


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


# libyaml's parser when PyYAML was built with it: a 48-node scenario (~50,000 nodes) parses in a
# fraction of the pure-Python parser's 3 s; the constructor (and its duplicate-key check) is Python either way
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _UniqueKeyLoader(_SafeLoader):  # type: ignore[valid-type,misc]
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
    workspaces, projects = read_tenancy(cur, doc, cluster)
    project_names = {p.name for p in projects}
    workloads = read_workloads(cur.at("workloads"), doc.get("workloads"), cluster, project_names)
    services = read_services(cur.at("services"), doc.get("services"), cluster, project_names)
    ingresses = read_ingresses(cur.at("ingresses"), doc.get("ingresses"), cluster, project_names, services)
    check_controller_names(cur, workloads, services, ingresses)
    policies = read_network_policies(cur.at("networkPolicies"), doc.get("networkPolicies"), project_names)
    scenario = Scenario(
        name=name, description=description, cluster=cluster, workspaces=workspaces, projects=projects,
        networkPolicies=policies, workloads=workloads, services=services, ingresses=ingresses,
        flows=(), source=Source(file, index, name),
    )
    check_whitelist_refs(cur, doc, scenario)
    flows = read_flows(cur.at("flows"), doc.get("flows"), scenario)
    return Scenario(**{**scenario.__dict__, "flows": flows})


def _cluster(cur: Cursor, value: Any) -> ClusterSpec:
    if value is None:
        return ClusterSpec()
    f.mapping(cur, value, ("encapsulation", "nodes", "loadBalancer", "clients", "network", "clientsRouteToPods",
                           "kubeProxy", "kubesphere", "felix", "natOutgoing"))
    enc = f.choice(cur.at("encapsulation"), value.get("encapsulation"), ENCAPSULATIONS, "vxlan")
    nodes = _names(cur.at("nodes"), value.get("nodes"), DEFAULT_NODES, "node name")
    lb = f.choice(cur.at("loadBalancer"), value.get("loadBalancer"), LOAD_BALANCERS, "metallb")
    clients = _names(cur.at("clients"), value.get("clients"), ("client",), "client name")
    network = _network(cur.at("network"), value.get("network"), len(nodes), len(clients))
    routes = f.boolean(cur.at("clientsRouteToPods"), value.get("clientsRouteToPods"), True)
    proxy = _kube_proxy(cur.at("kubeProxy"), value.get("kubeProxy"))
    kubesphere = read_kubesphere(cur.at("kubesphere"), value.get("kubesphere"), nodes, enc)
    felix = _felix(cur.at("felix"), value.get("felix"))
    nat_outgoing = f.boolean(cur.at("natOutgoing"), value.get("natOutgoing"), True)
    return ClusterSpec(enc, nodes, lb, clients, network, routes, kubeProxy=proxy, kubesphere=kubesphere,
                       felix=felix, natOutgoing=nat_outgoing)


def _felix(cur: Cursor, value: Any) -> FelixSpec:
    """``cluster.felix``: the FelixConfiguration fields netiso predicts (defaults: calico.yaml's)."""
    if value is None:
        return FelixSpec()
    f.mapping(cur, value, ("defaultEndpointToHostAction",))
    action = f.choice(cur.at("defaultEndpointToHostAction"), value.get("defaultEndpointToHostAction"),
                      ENDPOINT_TO_HOST_ACTIONS, "ACCEPT")
    return FelixSpec(action)


def _kube_proxy(cur: Cursor, value: Any) -> KubeProxySpec:
    """``cluster.kubeProxy``: the KubeProxyConfiguration fields netiso predicts (defaults: kubeadm's)."""
    if value is None:
        return KubeProxySpec()
    f.mapping(cur, value, ("masqueradeAll", "detectLocalMode", "nodePortAddresses"))
    masq = f.boolean(cur.at("masqueradeAll"), value.get("masqueradeAll"), False)
    detect = f.choice(cur.at("detectLocalMode"), value.get("detectLocalMode"), DETECT_LOCAL_MODES, "ClusterCIDR")
    ncur = cur.at("nodePortAddresses")
    listed = f.seq(ncur, value.get("nodePortAddresses"), allow_empty=False) if "nodePortAddresses" in value else []
    for i, v in enumerate(listed):  # kube-proxy takes CIDRs here; a bare address is a likely slip
        if isinstance(v, str) and "/" not in v:
            ncur.at(i).fail(f"'{v}' is not a CIDR: write ADDRESS/PREFIX (e.g. {v}/32)")
    cidrs = tuple(f.cidr(ncur.at(i), v) for i, v in enumerate(listed))
    return KubeProxySpec(masq, detect, cidrs)


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
        pool_range(plan.loadBalancerPool)
    except ValueError as exc:
        cur.at("loadBalancerPool").fail(f"'{plan.loadBalancerPool}' is not FIRST-LAST or a CIDR ({exc})")
    return plan


def pool_range(text: str) -> list[str]:
    if "-" in text:
        first, last = (ipaddress.ip_address(x.strip()) for x in text.split("-", 1))
        if int(last) < int(first):
            raise ValueError("last address before first")
        return [str(ipaddress.ip_address(i)) for i in range(int(first), int(last) + 1)]
    return [str(a) for a in ipaddress.ip_network(text, strict=True)]
