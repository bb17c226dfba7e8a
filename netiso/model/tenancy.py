"""KubeSphere tenancy compiled to the exact NetworkPolicies KubeSphere v3.4 would generate.

KubeSphere isolates projects with plain Kubernetes NetworkPolicies written by its
``nsnetworkpolicy`` controller (kubesphere/kubesphere release-3.4,
pkg/controller/network/nsnetworkpolicy/nsnetworkpolicy_controller.go). Reproducing that controller
here, instead of hand-writing "equivalent" policies, is the point: the surprises of the real
controller are what a conformance run must show. The surprising parts, all followed on purpose:

* ``syncNs`` only handles namespaces labelled ``kubesphere.io/workspace`` whose Workspace exists;
  any other namespace is ignored (its annotation does nothing, its NSNPs are still converted).
* The project annotation wins over workspace isolation (project mode).
* In workspace mode **and** when neither isolation is on, ``syncNs`` deletes every
  NamespaceNetworkPolicy of the namespace (``DeleteCollection``): whitelists survive only in
  project mode. They are not rendered here; a warning says why.
* DNS egress (169.254.25.10 and the kube-dns Service) is added to ``nsnp-network-isolate``
  only, and only when some NSNP of the namespace has egress rules. No other object carries it:
  a namespace without ``nsnp-network-isolate`` (not managed by syncNs) gets no DNS allowance.
  (In workspace mode the first sync still sees the soon-deleted NSNPs and adds DNS for one
  round; the steady state rendered here has none.)
* For an EGRESS service peer the Service's ports (``port``, not ``targetPort``) replace the
  rule's ports in a separate rule; the NSNP's own ports for that peer are dropped.
* ``policyTypes`` of the generated policy come from which of ``egress``/``ingress`` is set, in
  that order; the NSNP's own ``policyTypes`` is ignored.
* Nothing admits system namespaces or node/tunnel SNAT addresses unless configured
  (``allowed_ingress_namespaces`` / ``snat_node_ips``, both empty by default as upstream).

>>> from netiso.model.types import ClusterSpec, ProjectSpec, Scenario, WorkspaceSpec
>>> s = Scenario("t", "", ClusterSpec(), (WorkspaceSpec("ws", False, ("demo",)),),
...              (ProjectSpec("demo", "ws", isolation=True),), (), (), (), (), ())
>>> pols, warns = compile_tenancy(s, lambda t: t, lambda p, n: None)
>>> pols[0]["metadata"]["name"], pols[0]["spec"]["ingress"][0]["from"]
('nsnp-network-isolate', [{'namespaceSelector': {'matchLabels': {'kubesphere.io/namespace': 'demo'}}}])
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from netiso.model.types import Port, ProjectSpec, Scenario, ServiceSpec, WhitelistRule

METADATA_NAME_LABEL = "kubernetes.io/metadata.name"
NAMESPACE_LABEL = "kubesphere.io/namespace"  # constants.NamespaceLabelKey
WORKSPACE_LABEL = "kubesphere.io/workspace"  # constants.WorkspaceLabelKey
ISOLATE_ANNOTATION = "kubesphere.io/network-isolate"  # NamespaceNPAnnotationKey
ISOLATE_ENABLED = "enabled"
SNAT_NODE_ANNOTATION = "kubesphere.io/snat-node-ips"  # NodeNSNPAnnotationKey (informational)
NSNP_PREFIX = "nsnp-"
ISOLATE_POLICY = NSNP_PREFIX + "network-isolate"
NSNP_API_VERSION = "network.kubesphere.io/v1alpha1"
NSNP_KIND = "NamespaceNetworkPolicy"
NP_API_VERSION = "networking.k8s.io/v1"
DNS_LOCAL_IP = "169.254.25.10"  # nodelocaldns, hard-coded upstream ("TODO: configure it")
DNS_PORT = 53

Mode = Literal["project", "workspace", "open", "unmanaged"]
CidrResolver = Callable[[str], "str | Sequence[str]"]
ServiceLookup = Callable[[str, str], "ServiceSpec | None"]


@dataclass(frozen=True)
class DnsService:
    """The cluster DNS Service KubeSphere looks up (``kube-dns``, fallback ``coredns``, in kube-system).

    >>> KUBE_DNS.selector, [str(p) for p in KUBE_DNS.ports]
    ({'k8s-app': 'kube-dns'}, ['53/UDP', '53/TCP', '9153/TCP'])
    """

    name: str = "kube-dns"
    namespace: str = "kube-system"
    selector: Mapping[str, str] = field(default_factory=lambda: {"k8s-app": "kube-dns"})
    ports: tuple[Port, ...] = (Port(53, "UDP", "dns"), Port(53, "TCP", "dns-tcp"), Port(9153, "TCP", "metrics"))


KUBE_DNS = DnsService()


class _ServiceLike(Protocol):
    """Anything with a name, selector and ports: ``DnsService``, ``ServiceSpec`` or ``ServiceInfo``."""

    name: str
    selector: Mapping[str, str]


class ConversionError(ValueError):
    """convertToK8sNP failed (service missing or without selector): KubeSphere creates no policy."""


# --------------------------------------------------------------------------- namespaces


def namespace_labels(scenario: Scenario) -> dict[str, dict[str, str]]:
    """Labels of every project's Namespace, as Kubernetes + KubeSphere stamp them.

    ``kubernetes.io/metadata.name`` (Kubernetes), ``kubesphere.io/namespace`` (KubeSphere's
    namespace controller, "used for NetworkPolicyPeer.NamespaceSelector") and, for projects in a
    workspace, ``kubesphere.io/workspace``; then the project's own ``labels`` (which cannot
    override the three above: the real controllers would overwrite them).

    >>> from netiso.model.types import ClusterSpec, ProjectSpec, Scenario
    >>> s = Scenario("t", "", ClusterSpec(), (), (ProjectSpec("demo", "ws", labels={"team": "a"}),),
    ...              (), (), (), (), ())
    >>> list(namespace_labels(s)["demo"].items())[2:]
    [('kubesphere.io/workspace', 'ws'), ('team', 'a')]
    """
    out: dict[str, dict[str, str]] = {}
    for project in scenario.projects:
        labels = {METADATA_NAME_LABEL: project.name, NAMESPACE_LABEL: project.name}
        if project.workspace:
            labels[WORKSPACE_LABEL] = project.workspace
        for key, value in project.labels.items():
            labels.setdefault(key, value)
        out[project.name] = labels
    return out


def namespace_annotations(scenario: Scenario) -> dict[str, dict[str, str]]:
    """Annotations of every project's Namespace: the isolation switch for isolated projects.

    >>> from netiso.model.types import ClusterSpec, ProjectSpec, Scenario
    >>> s = Scenario("t", "", ClusterSpec(), (), (ProjectSpec("a", "ws", isolation=True), ProjectSpec("b")),
    ...              (), (), (), (), ())
    >>> namespace_annotations(s)
    {'a': {'kubesphere.io/network-isolate': 'enabled'}, 'b': {}}
    """
    return {
        p.name: ({ISOLATE_ANNOTATION: ISOLATE_ENABLED} if p.isolation else {}) for p in scenario.projects
    }


def project_mode(scenario: Scenario, project: str) -> Mode:
    """How KubeSphere's syncNs treats a project: ``project``, ``workspace``, ``open`` or ``unmanaged``.

    ``unmanaged``: no workspace label or no such Workspace, so syncNs returns early. ``open``: in a
    workspace but neither isolation is on (no default policy, NSNPs deleted).

    >>> from netiso.model.types import ClusterSpec, ProjectSpec, Scenario, WorkspaceSpec
    >>> s = Scenario("t", "", ClusterSpec(), (WorkspaceSpec("ws", True, ("a", "b")),),
    ...              (ProjectSpec("a", "ws", isolation=True), ProjectSpec("b", "ws")), (), (), (), (), ())
    >>> project_mode(s, "a"), project_mode(s, "b")
    ('project', 'workspace')
    """
    spec = scenario.project(project)
    if spec is None:
        raise KeyError(f"unknown project {project!r}")
    return _mode(scenario, spec, namespace_labels(scenario)[project])


def _mode(scenario: Scenario, project: ProjectSpec, labels: Mapping[str, str]) -> Mode:
    ws_name = labels.get(WORKSPACE_LABEL)
    workspace = scenario.workspace(ws_name) if ws_name else None
    if workspace is None:
        return "unmanaged"
    if project.isolation:
        return "project"
    if workspace.isolation:
        return "workspace"
    return "open"


# --------------------------------------------------------------------------- NSNP objects


def namespace_network_policy(project: str, rule: WhitelistRule, resolve_cidr: CidrResolver) -> dict[str, Any]:
    """The NamespaceNetworkPolicy the console would create for one whitelist rule.

    One rule, one direction, one peer kind (as the console's allowlist dialogs post them);
    a ``cidr`` symbol that denotes several addresses becomes several ``ipBlock`` peers.

    >>> r = WhitelistRule("allow-alice", "ingress", "cidr", "198.18.0.100", (Port(8080),))
    >>> namespace_network_policy("demo", r, lambda t: t + "/32")["spec"]
    {'ingress': [{'from': [{'ipBlock': {'cidr': '198.18.0.100/32'}}], 'ports': [{'protocol': 'TCP', 'port': 8080}]}]}
    """
    if rule.direction not in ("ingress", "egress"):
        raise ValueError(f"whitelist rule {rule.name}: direction must be ingress or egress, not {rule.direction!r}")
    if rule.peer_kind == "cidr":
        peers = [{"ipBlock": {"cidr": c}} for c in _cidrs(resolve_cidr(rule.peer_value))]
    elif rule.peer_kind == "project":
        peers = [{"namespace": {"name": rule.peer_value}}]
    elif rule.peer_kind == "service":
        svc_project, _, svc_name = rule.peer_value.partition("/")
        if not svc_project or not svc_name or "/" in svc_name:
            raise ValueError(f"whitelist rule {rule.name}: service peer {rule.peer_value!r} is not PROJECT/SERVICE")
        peers = [{"service": {"name": svc_name, "namespace": svc_project}}]
    else:
        raise ValueError(f"whitelist rule {rule.name}: peer kind {rule.peer_kind!r} is not cidr|project|service")
    entry: dict[str, Any] = {"from" if rule.direction == "ingress" else "to": peers}
    if rule.ports:
        entry["ports"] = [_np_port(p) for p in rule.ports]
    return {
        "apiVersion": NSNP_API_VERSION,
        "kind": NSNP_KIND,
        "metadata": {"name": rule.name, "namespace": project},
        "spec": {rule.direction: [entry]},
    }


def namespace_network_policies(
    scenario: Scenario, resolve_cidr: CidrResolver, *, include_deleted: bool = False
) -> list[dict[str, Any]]:
    """Every NamespaceNetworkPolicy of the scenario that survives KubeSphere's syncNs.

    Rules of projects in workspace mode or without isolation are deleted by KubeSphere; pass
    ``include_deleted=True`` to get them anyway (what the user created before the deletion).
    Rules whose cidr symbol denotes no address are skipped (see ``compile_tenancy``'s warning).

    >>> from netiso.model.types import ClusterSpec, ProjectSpec, Scenario, WorkspaceSpec
    >>> r = WhitelistRule("from-b", "ingress", "project", "b")
    >>> s = Scenario("t", "", ClusterSpec(), (WorkspaceSpec("ws", True, ("a",)),),
    ...              (ProjectSpec("a", "ws", whitelist=(r,)),), (), (), (), (), ())
    >>> namespace_network_policies(s, str), len(namespace_network_policies(s, str, include_deleted=True))
    ([], 1)
    """
    labels = namespace_labels(scenario)
    out: list[dict[str, Any]] = []
    for project in scenario.projects:
        if not include_deleted and _mode(scenario, project, labels[project.name]) in ("workspace", "open"):
            continue
        for rule in project.whitelist:
            if rule.peer_kind == "cidr" and not _cidrs(resolve_cidr(rule.peer_value)):
                continue
            out.append(namespace_network_policy(project.name, rule, resolve_cidr))
    return out


# --------------------------------------------------------------------------- NetworkPolicies


def convert_to_network_policy(nsnp: Mapping[str, Any], service_of: ServiceLookup) -> dict[str, Any]:
    """convertToK8sNP: a NamespaceNetworkPolicy dict to the NetworkPolicy ``nsnp-<name>``.

    Raises :class:`ConversionError` where KubeSphere's conversion fails (then it creates nothing).

    >>> from netiso.model.types import ServiceSpec
    >>> db = ServiceSpec("db", "other", {"app": "db"}, "ClusterIP", "Cluster", (Port(5432),))
    >>> nsnp = {"metadata": {"name": "to-db", "namespace": "demo"},
    ...         "spec": {"egress": [{"to": [{"service": {"name": "db", "namespace": "other"}}],
    ...                              "ports": [{"protocol": "TCP", "port": 1}]}]}}
    >>> np = convert_to_network_policy(nsnp, lambda p, n: db)
    >>> np["spec"]["egress"][0]["ports"], np["spec"]["policyTypes"]   # service ports win
    ([{'protocol': 'TCP', 'port': 5432}], ['Egress'])
    """
    meta = nsnp["metadata"]
    spec = nsnp.get("spec") or {}
    out_spec: dict[str, Any] = {"podSelector": {}, "policyTypes": []}
    ingress: list[dict[str, Any]] = []
    egress: list[dict[str, Any]] = []
    # Go order: Egress is converted (and its policy type appended) before Ingress.
    if spec.get("egress") is not None:
        for rule in spec["egress"]:
            plain: list[dict[str, Any]] = []
            for peer in rule.get("to") or []:
                converted, svc_ports = _convert_peer(peer, service_of, ingress=False)
                if svc_ports is not None:
                    egress.append(_rule("to", [converted], svc_ports))
                    continue
                plain.append(converted)
            if plain:
                egress.append(_rule("to", plain, rule.get("ports")))
        out_spec["policyTypes"].append("Egress")
    if spec.get("ingress") is not None:
        for rule in spec["ingress"]:
            # Ingress service peers never carry ports (handlerPeerService(..., ingress=true)).
            peers = [_convert_peer(peer, service_of, ingress=True)[0] for peer in rule.get("from") or []]
            ingress.append(_rule("from", peers, rule.get("ports")))
        out_spec["policyTypes"].append("Ingress")
    if ingress:
        out_spec["ingress"] = ingress
    if egress:
        out_spec["egress"] = egress
    return _network_policy(NSNP_PREFIX + meta["name"], meta["namespace"], out_spec)


def isolation_policy(
    namespace: str,
    workspace: str,
    mode: Literal["project", "workspace"],
    *,
    allowed_ingress_namespaces: Sequence[str] = (),
    snat_node_ips: Sequence[str] = (),
    dns: object | None = KUBE_DNS,
    add_dns: bool = False,
) -> tuple[dict[str, Any], list[str]]:
    """generateNSNP (+ the DNS and node-SNAT additions of syncNs): ``nsnp-network-isolate``.

    ``dns`` is the kube-dns Service (a :class:`DnsService`, ``ServiceSpec`` or ``ServiceInfo``;
    ``None`` = not found: only the 169.254.25.10 rule is added, with a warning, as upstream).

    >>> p, _ = isolation_policy("demo", "ws", "workspace")
    >>> p["spec"]["policyTypes"], p["spec"]["ingress"][0]["from"][0]["namespaceSelector"]
    (['Ingress'], {'matchLabels': {'kubesphere.io/workspace': 'ws'}})
    """
    warnings: list[str] = []
    selector = {WORKSPACE_LABEL: workspace} if mode == "workspace" else {NAMESPACE_LABEL: namespace}
    peers = [{"namespaceSelector": {"matchLabels": selector}}]
    peers += [{"namespaceSelector": {"matchLabels": {NAMESPACE_LABEL: ns}}} for ns in allowed_ingress_namespaces]
    ingress = [{"from": peers}]
    # generateNodeRule: every node's kubesphere.io/snat-node-ips, sorted as strings, as /32.
    snat = [{"ipBlock": {"cidr": _host_cidr(ip)}} for ip in sorted(snat_node_ips)]
    if snat:
        ingress.append({"from": snat})
    spec: dict[str, Any] = {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": ingress}
    if add_dns:
        egress = [
            _rule("to", [{"ipBlock": {"cidr": _host_cidr(DNS_LOCAL_IP)}}],
                  [{"protocol": "TCP", "port": DNS_PORT}, {"protocol": "UDP", "port": DNS_PORT}])
        ]
        dns_rule = _dns_service_rule(dns)
        if dns_rule is None:
            warnings.append(
                f"{namespace}: cluster DNS Service (kube-dns/coredns in kube-system) not found or without "
                "selector: KubeSphere adds only the 169.254.25.10 DNS egress rule")
        else:
            egress.append(dns_rule)
        spec["egress"] = egress
        spec["policyTypes"].append("Egress")
    return _network_policy(ISOLATE_POLICY, namespace, spec), warnings


def compile_tenancy(
    scenario: Scenario,
    resolve_cidr: CidrResolver,
    service_of: ServiceLookup,
    dns: object | None = KUBE_DNS,
    *,
    allowed_ingress_namespaces: Sequence[str] = (),
    snat_node_ips: Sequence[str] = (),
) -> tuple[list[dict[str, Any]], list[str]]:
    """The NetworkPolicies KubeSphere's controller keeps for the scenario, and warnings.

    Per project (scenario order): ``nsnp-network-isolate`` in project/workspace mode, then
    ``nsnp-<rule>`` for every whitelist rule that survives syncNs and converts. ``resolve_cidr``
    maps a cidr symbol or literal to one CIDR or a list of them; ``service_of(project, name)``
    finds a Service; ``dns`` is the kube-dns Service (``None``: absent).

    >>> from netiso.model.types import ClusterSpec, ProjectSpec, Scenario, WorkspaceSpec
    >>> r = WhitelistRule("from-b", "ingress", "project", "b")
    >>> s = Scenario("t", "", ClusterSpec(), (WorkspaceSpec("ws", True, ("a",)),),
    ...              (ProjectSpec("a", "ws", whitelist=(r,)),), (), (), (), (), ())
    >>> pols, warns = compile_tenancy(s, str, lambda p, n: None)
    >>> [p["metadata"]["name"] for p in pols], warns[0][:40]
    (['nsnp-network-isolate'], 'a: workspace isolation of ws is on and t')
    """
    labels = namespace_labels(scenario)
    policies: list[dict[str, Any]] = []
    warnings: list[str] = []
    for project in scenario.projects:
        mode = _mode(scenario, project, labels[project.name])
        rules = project.whitelist
        names = ", ".join(r.name for r in rules)
        if mode in ("workspace", "open"):
            if mode == "workspace":
                ws = labels[project.name][WORKSPACE_LABEL]
                policy, _ = isolation_policy(project.name, ws, "workspace",
                                             allowed_ingress_namespaces=allowed_ingress_namespaces,
                                             snat_node_ips=snat_node_ips)
                policies.append(policy)
            if rules:
                why = (f"workspace isolation of {labels[project.name][WORKSPACE_LABEL]} is on and the project is "
                       "not annotated" if mode == "workspace" else "the project is not isolated")
                warnings.append(
                    f"{project.name}: {why}: KubeSphere's syncNs deletes every NamespaceNetworkPolicy of the "
                    f"namespace, so whitelist rules {names} are not rendered (only project isolation keeps them)")
            continue
        converted = _convert_rules(project.name, rules, resolve_cidr, service_of, warnings)
        has_egress = any(r.direction == "egress" for r in rules)
        if mode == "project":
            policy, dns_warnings = isolation_policy(
                project.name, labels[project.name][WORKSPACE_LABEL], "project",
                allowed_ingress_namespaces=allowed_ingress_namespaces, snat_node_ips=snat_node_ips,
                dns=dns, add_dns=has_egress)
            policies.append(policy)
            warnings.extend(dns_warnings)
        else:  # unmanaged: syncNs skips the namespace, syncNSNP still converts its NSNPs
            if project.isolation:
                warnings.append(
                    f"{project.name}: isolation has no effect: KubeSphere only isolates namespaces labelled "
                    f"{WORKSPACE_LABEL} with an existing Workspace (syncNs skips this one)")
            if has_egress:
                warnings.append(
                    f"{project.name}: egress whitelist without {ISOLATE_POLICY}: nothing adds the DNS egress "
                    "rules, so DNS from this project is blocked")
        policies.extend(converted)
    return policies, warnings


# --------------------------------------------------------------------------- helpers


def _convert_rules(project: str, rules: Sequence[WhitelistRule], resolve_cidr: CidrResolver,
                   service_of: ServiceLookup, warnings: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for rule in rules:
        if rule.peer_kind == "cidr" and not _cidrs(resolve_cidr(rule.peer_value)):
            # An NSNP rule without peers converts to "from/to anywhere": never render that.
            warnings.append(f"{project}: whitelist rule {rule.name}: {rule.peer_value} denotes no address; skipped")
            continue
        if rule.peer_kind == "service" and rule.direction == "egress" and rule.ports:
            warnings.append(
                f"{project}: whitelist rule {rule.name}: KubeSphere ignores the ports of an egress service "
                f"rule and allows the Service's own ports instead ({', '.join(str(p) for p in rule.ports)} dropped)")
        nsnp = namespace_network_policy(project, rule, resolve_cidr)
        try:
            out.append(convert_to_network_policy(nsnp, service_of))
        except ConversionError as exc:
            warnings.append(f"{project}: whitelist rule {rule.name}: {exc}; KubeSphere creates no NetworkPolicy")
    return out


def _convert_peer(peer: Mapping[str, Any], service_of: ServiceLookup,
                  *, ingress: bool) -> tuple[dict[str, Any], list[dict[str, Any]] | None]:
    """convertPeer: returns the k8s peer and, for egress service peers, the Service ports."""
    if peer.get("service") is not None:
        ref = peer["service"]
        svc = service_of(ref["namespace"], ref["name"])
        if svc is None:
            raise ConversionError(f"service {ref['namespace']}/{ref['name']} not found")
        converted = _service_peer(ref["namespace"], svc)
        return converted, (None if ingress else _service_ports(svc))
    if peer.get("namespace") is not None:
        return {"namespaceSelector": {"matchLabels": {NAMESPACE_LABEL: peer["namespace"]["name"]}}}, None
    if peer.get("ipBlock") is not None:
        return {"ipBlock": dict(peer["ipBlock"])}, None
    raise ConversionError(f"invalid NSNP peer {dict(peer)!r}")


def _service_peer(namespace: str, svc: _ServiceLike) -> dict[str, Any]:
    """handlerPeerService: pod selector = Service selector AND the namespace, in ONE peer."""
    if not svc.selector:
        raise ConversionError(f"service {namespace}/{svc.name} has no selector")
    return {
        "podSelector": {"matchLabels": {k: svc.selector[k] for k in sorted(svc.selector)}},
        "namespaceSelector": {"matchLabels": {NAMESPACE_LABEL: namespace}},
    }


def _service_ports(svc: object) -> list[dict[str, Any]]:
    """The Service's ports as NetworkPolicyPorts (Service ``port``/``protocol``, never targetPort)."""
    out = []
    for p in getattr(svc, "ports", ()):
        port = p.port if isinstance(p.port, Port) else p  # a ServiceInfo wraps each Port
        out.append(_np_port(port))
    return out


def _dns_service_rule(dns: object | None) -> dict[str, Any] | None:
    if dns is None:
        return None
    namespace = getattr(dns, "namespace", None) or getattr(dns, "project", None) or "kube-system"
    try:
        peer = _service_peer(namespace, dns)  # type: ignore[arg-type]
    except ConversionError:
        return None
    return _rule("to", [peer], _service_ports(dns))


def _rule(direction: str, peers: list[dict[str, Any]], ports: Sequence[Mapping[str, Any]] | None) -> dict[str, Any]:
    rule: dict[str, Any] = {}
    if peers:
        rule[direction] = peers
    if ports:
        rule["ports"] = [dict(p) for p in ports]
    return rule


def _network_policy(name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    if not spec.get("policyTypes"):
        spec.pop("policyTypes", None)
    return {"apiVersion": NP_API_VERSION, "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def _np_port(port: Port) -> dict[str, Any]:
    return {"protocol": port.protocol, "port": port.port}


def _host_cidr(ip: str) -> str:
    """stringToCIDR: an address as /32 (IPv4) or /128 (IPv6)."""
    addr = ipaddress.ip_address(ip)
    return f"{ip}/{addr.max_prefixlen}"


def _cidrs(value: str | Sequence[str] | None) -> list[str]:
    """Normalise a resolver result: one CIDR, a list of them, or a bare IP (becomes its host CIDR)."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    return [v if "/" in v else _host_cidr(v) for v in items]
