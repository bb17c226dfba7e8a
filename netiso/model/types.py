"""Typed model of a scenario: what the user wrote (``*Spec``) and its resolved topology.

The spec classes mirror the scenario YAML of the public contract (docs: scenarios.md) one to
one, with defaults applied. The resolved classes (``Topology`` and friends) carry concrete
addresses from the address plan, so the oracle and every backend reason about the very same
IPs, node ports and endpoint placements: backends never re-derive any of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from netiso.model.endpoint_states import EndpointConditions, announcing_counts
from netiso.model.endpoint_states import conditions as endpoint_conditions

Encapsulation = Literal["direct", "ipip", "vxlan"]
LoadBalancerImpl = Literal["metallb", "openelb", "none"]
ServiceType = Literal["ClusterIP", "NodePort", "LoadBalancer"]
TrafficPolicy = Literal["Cluster", "Local"]
Verdict = Literal["allowed", "dropped", "refused"]

ENCAPSULATIONS: tuple[str, ...] = ("direct", "ipip", "vxlan")
LOAD_BALANCERS: tuple[str, ...] = ("metallb", "openelb", "none")
SERVICE_TYPES: tuple[str, ...] = ("ClusterIP", "NodePort", "LoadBalancer")
TRAFFIC_POLICIES: tuple[str, ...] = ("Cluster", "Local")
VERDICTS: tuple[str, ...] = ("allowed", "dropped", "refused")
PROTOCOLS: tuple[str, ...] = ("TCP", "UDP", "SCTP")
DEFAULT_NODES: tuple[str, ...] = ("control-plane", "worker", "worker2")


@dataclass(frozen=True, order=True)
class Port:
    """A port with protocol and optional name; ``str(Port(8080))`` is ``"8080/TCP"``.

    ``target`` is a Service port's ``targetPort``: a number, or the name of a container port that
    each endpoint pod resolves for itself; ``None`` (the default, and always for workload, flow
    and whitelist ports) means the Service port's own number, as Kubernetes defaults it.

    >>> str(Port(80, target=8080)), Port(80, target=8080).target_text
    ('80/TCP', '80:8080/TCP')
    """

    port: int
    protocol: str = "TCP"
    name: str | None = None
    target: int | str | None = None

    def __str__(self) -> str:
        return f"{self.port}/{self.protocol}"

    @property
    def target_text(self) -> str:
        """The short form a scenario writes: ``80/TCP``, or ``80:8080/TCP`` when a targetPort differs."""
        if self.target is None or self.target == self.port:
            return str(self)
        return f"{self.port}:{self.target}/{self.protocol}"


@dataclass(frozen=True)
class Source:
    """Where a spec object came from, so that every error can name file and document."""

    file: str = "<memory>"
    index: int = 0
    name: str | None = None

    def where(self) -> str:
        doc = f"document {self.index}"
        if self.name:
            doc += f" ({self.name})"
        return f"{self.file}: {doc}"


# --------------------------------------------------------------------------- spec (as written)


@dataclass(frozen=True)
class NetworkPlan:
    """Address ranges of the lab address plan; every field can be overridden per scenario."""

    nodeNetwork: str = "198.18.0.0/24"
    podNetwork: str = "100.64.0.0/16"
    serviceNetwork: str = "198.19.0.0/16"
    loadBalancerPool: str = "198.18.0.200-198.18.0.250"
    blockSize: int = 26


@dataclass(frozen=True)
class KubeSphereSettings:
    """KubeSphere's cluster-wide settings that change every generated isolation policy.

    ``allowed_ingress_namespaces``: the network options' ``nsnpOptions.allowedIngressNamespaces``;
    ``snat_node_ips``: the addresses of the nodes' ``kubesphere.io/snat-node-ips`` annotations, as
    address symbols (``node:worker``, ``tunnel:*``) or literal IPs. Both empty: upstream's default.
    """

    allowed_ingress_namespaces: tuple[str, ...] = ()
    snat_node_ips: tuple[str, ...] = ()


DETECT_LOCAL_MODES: tuple[str, ...] = ("ClusterCIDR", "None")


@dataclass(frozen=True)
class KubeProxySpec:
    """kube-proxy's settings that change verdicts or sources (``cluster.kubeProxy``); defaults are kubeadm's.

    ``detectLocalMode`` ``ClusterCIDR`` is kube-proxy's local-traffic detector over the pod
    network; ``None`` is a kube-proxy without one (ClusterCIDR mode with no ``clusterCIDR``):
    no "! -s podCIDR" masquerade rule for cluster IPs and no pod short-circuit in KUBE-EXT.
    ``nodePortAddresses`` () means every local address accepts node ports (``--dst-type LOCAL``).
    """

    masqueradeAll: bool = False
    detectLocalMode: str = "ClusterCIDR"
    nodePortAddresses: tuple[str, ...] = ()

    @property
    def detects_local(self) -> bool:
        return self.detectLocalMode != "None"


ENDPOINT_TO_HOST_ACTIONS: tuple[str, ...] = ("ACCEPT", "RETURN", "DROP")


@dataclass(frozen=True)
class FelixSpec:
    """``cluster.felix``: the FelixConfiguration fields netiso predicts.

    ``defaultEndpointToHostAction``: what Felix does with pod -> own node traffic once the pod's
    egress policy admitted it (``cali-wl-to-host``). ACCEPT (calico.yaml's
    FELIX_DEFAULTENDPOINTTOHOSTACTION, the default here): the host stack answers, kube-proxy's
    INPUT rules never see it; RETURN: back to INPUT (kube-proxy's filter rules run); DROP:
    dropped (Felix's own built-in default).
    """

    defaultEndpointToHostAction: str = "ACCEPT"


@dataclass(frozen=True)
class ClusterSpec:
    encapsulation: str = "vxlan"
    nodes: tuple[str, ...] = DEFAULT_NODES
    loadBalancer: str = "metallb"
    clients: tuple[str, ...] = ("client",)
    network: NetworkPlan = field(default_factory=NetworkPlan)
    # Whether the network outside the cluster routes the clients to pod IPs (an external router
    # that knows every node's pod block, as with BGP/direct Calico). False: client -> pod IP is
    # dropped on the way (no route), which the oracle predicts and the lab builds.
    clientsRouteToPods: bool = True
    kubeProxy: KubeProxySpec = field(default_factory=KubeProxySpec)
    kubesphere: KubeSphereSettings = field(default_factory=KubeSphereSettings)
    felix: FelixSpec = field(default_factory=FelixSpec)
    # The IP pool's natOutgoing: pod -> outside the pools is masqueraded to the node (Calico's
    # cali-nat-outgoing). False: the pod IP leaves the cluster as it is.
    natOutgoing: bool = True


@dataclass(frozen=True)
class WhitelistRule:
    """One NamespaceNetworkPolicy of a project (KubeSphere "allowlist" entry)."""

    name: str
    direction: str  # ingress | egress
    peer_kind: str  # cidr | project | service
    peer_value: str  # symbol/CIDR, project name, or PROJECT/SERVICE
    ports: tuple[Port, ...] = ()


@dataclass(frozen=True)
class ProjectSpec:
    name: str
    workspace: str | None = None
    isolation: bool = False
    whitelist: tuple[WhitelistRule, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class WorkspaceSpec:
    name: str
    isolation: bool = False
    projects: tuple[str, ...] = ()


@dataclass(frozen=True)
class WorkloadSpec:
    name: str
    project: str
    nodes: tuple[str, ...]
    labels: Mapping[str, str]
    ports: tuple[Port, ...]
    # (hostPort, container port): the node ports the CNI portmap plugin DNATs to each replica
    host_ports: tuple[tuple[int, Port], ...] = ()
    # node -> the replica's endpoint state (netiso.model.endpoint_states.STATES); unlisted: "ready"
    states: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    project: str
    selector: Mapping[str, str]
    type: str
    externalTrafficPolicy: str
    ports: tuple[Port, ...]
    internalTrafficPolicy: str = "Cluster"
    loadBalancerSourceRanges: tuple[str, ...] = ()  # CIDRs (symbols resolved by the loader)
    sessionAffinityTimeout: int | None = None  # sessionAffinity ClientIP: timeoutSeconds; None: no affinity
    externalIPs: tuple[str, ...] = ()  # addresses kube-proxy captures for the Service (documentation ranges)
    publishNotReadyAddresses: bool = False  # the EndpointSlice controller marks every endpoint ready


@dataclass(frozen=True)
class ControllerSpec:
    project: str
    node: str
    exposure: str = "NodePort"  # NodePort | LoadBalancer
    externalTrafficPolicy: str = "Cluster"


@dataclass(frozen=True)
class IngressSpec:
    name: str
    project: str
    host: str
    service: str
    controller: ControllerSpec
    port: Port | None = None  # backend service port; default: the service's first


@dataclass(frozen=True)
class Expectation:
    verdict: str | None = None
    source: tuple[str, ...] = ()
    answeredBy: tuple[str, ...] = ()
    forwardedFor: tuple[str, ...] = ()
    status: int | None = None  # healthcheck: flows: the HTTP status kube-proxy's health server answers


@dataclass(frozen=True)
class FlowSpec:
    src: str
    dst: str
    port: Port | None = None
    expect: Expectation | None = None
    intent: str | None = None  # wanted | unwanted
    index: int = 0
    repeat: int = 1  # probes fired one after another from the same source (session affinity is judged on them)

    @property
    def label(self) -> str:
        return f"{self.src} -> {self.dst}"


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    cluster: ClusterSpec
    workspaces: tuple[WorkspaceSpec, ...]
    projects: tuple[ProjectSpec, ...]  # all projects, in and outside workspaces
    networkPolicies: tuple[Mapping[str, Any], ...]
    workloads: tuple[WorkloadSpec, ...]
    services: tuple[ServiceSpec, ...]
    ingresses: tuple[IngressSpec, ...]
    flows: tuple[FlowSpec, ...]
    source: Source = field(default_factory=Source)

    def project(self, name: str) -> ProjectSpec | None:
        return next((p for p in self.projects if p.name == name), None)

    def workspace(self, name: str) -> WorkspaceSpec | None:
        return next((w for w in self.workspaces if w.name == name), None)


@dataclass(frozen=True)
class ClusterFacts:
    """What a real cluster assigned, overriding the address plan (kube and kind backends).

    The oracle predicts a cluster run for the topology *as realized*: real node, tunnel, pod,
    client and service addresses, real node ports and VIPs, and the LoadBalancer election hashed
    over the cluster's node names (MetalLB/OpenELB hash ``node#ip``), so a prediction is for that
    cluster, not for the lab's defaults. Keys are scenario names and symbols, so reports keep
    speaking the scenario's language. Anything missing keeps the address plan's value.
    """

    node_names: Mapping[str, str] = field(default_factory=dict)  # scenario node -> cluster node name
    node_ips: Mapping[str, str] = field(default_factory=dict)  # scenario node -> InternalIP
    tunnel_ips: Mapping[str, str | None] = field(default_factory=dict)  # scenario node -> Calico tunnel IP
    lb_excluded: Mapping[str, bool] = field(default_factory=dict)  # scenario node -> exclusion label present
    blocks: Mapping[str, str] = field(default_factory=dict)  # scenario node -> its affine pod block (CIDR)
    client_ips: Mapping[str, str] = field(default_factory=dict)  # client name -> its address
    pod_ips: Mapping[str, str] = field(default_factory=dict)  # pod symbol (pod:P/W@N) -> IP
    cluster_ips: Mapping[str, str] = field(default_factory=dict)  # service key P/S -> ClusterIP
    node_ports: Mapping[str, int] = field(default_factory=dict)  # "P/S 8080/TCP" -> nodePort
    health_check_node_ports: Mapping[str, int] = field(default_factory=dict)  # service key -> port
    lb_ips: Mapping[str, str] = field(default_factory=dict)  # service key -> VIP
    dns_ip: str | None = None  # kube-dns ClusterIP
    node_network: str | None = None
    pod_network: str | None = None
    service_network: str | None = None


# --------------------------------------------------------------------------- resolved topology


@dataclass(frozen=True)
class NodeInfo:
    name: str
    index: int
    ip: str
    block: str  # the node's affine pod block (CIDR)
    tunnel_ip: str | None  # first address of the block in ipip/vxlan mode, None in direct
    lb_excluded: bool  # carries node.kubernetes.io/exclude-from-external-load-balancers
    cluster_name: str = ""  # the name a real cluster knows this node by ("" on the lab: the scenario name)

    @property
    def symbol(self) -> str:
        return f"node:{self.name}"

    @property
    def host_name(self) -> str:
        """The node's name in the cluster (what MetalLB/OpenELB hash, what ``nodeName`` pins to)."""
        return self.cluster_name or self.name


@dataclass(frozen=True)
class ClientInfo:
    name: str
    ip: str

    @property
    def symbol(self) -> str:
        return f"client:{self.name}"


@dataclass(frozen=True)
class PodInfo:
    project: str
    workload: str
    node: str
    ip: str
    labels: Mapping[str, str]
    ports: tuple[Port, ...]
    role: str = "workload"  # workload | ingress-controller
    host_ports: tuple[tuple[int, Port], ...] = ()  # (hostPort, container port), as on the workload
    # ready | not-ready | terminating | terminating-not-ready (netiso.model.endpoint_states): the pod
    # runs and listens in every state; only what controllers and kube-proxy make of it differs
    state: str = "ready"

    def host_port_for(self, port: int, protocol: str) -> Port | None:
        """The container port that ``port``/``protocol`` on this pod's node is DNATed to (portmap)."""
        return next((p for h, p in self.host_ports if h == port and p.protocol == protocol), None)

    @property
    def name(self) -> str:
        return f"{self.workload}-{self.node}"

    @property
    def symbol(self) -> str:
        return f"pod:{self.project}/{self.workload}@{self.node}"

    def named_port(self, name: str) -> Port | None:
        return next((p for p in self.ports if p.name == name), None)


@dataclass(frozen=True)
class ServicePortInfo:
    """One Service port: what clients address (``port``), its NodePort, and where kube-proxy DNATs.

    The DNAT target is resolved per endpoint pod, as the EndpointSlice controller does
    (kubernetes pkg/api/v1/pod FindPort): a numeric targetPort is used as is, a named one is the
    pod's container port of that name and protocol, and a pod without it is no endpoint of this
    port.

    >>> sp = ServicePortInfo(Port(80, target="http"), None)
    >>> pod = PodInfo("demo", "web", "worker", "100.64.1.1", {}, (Port(9376, name="http"),))
    >>> sp.target_for(pod), ServicePortInfo(Port(80), None).target_for(pod)
    (9376, 80)
    """

    port: Port  # the Service port; port.target is its targetPort (None: the same number)
    node_port: int | None

    @property
    def target(self) -> int | str:
        """The targetPort as written: a number, or a container port name."""
        return self.port.port if self.port.target is None else self.port.target

    @property
    def target_port(self) -> int:
        """The numeric targetPort; a named one has no single number (use :meth:`target_for`)."""
        if isinstance(self.target, str):
            raise ValueError(f"service port {self.port} targets the named port '{self.target}': "
                             "resolve it per endpoint with target_for(pod)")
        return self.target

    def target_for(self, pod: PodInfo) -> int | None:
        """The pod port this Service port reaches on ``pod`` (None: ``pod`` is no endpoint of it)."""
        if isinstance(self.target, int):
            return self.target
        named = pod.named_port(self.target)
        return named.port if named is not None and named.protocol == self.port.protocol else None


@dataclass(frozen=True)
class ServiceInfo:
    project: str
    name: str
    type: str
    etp: str
    selector: Mapping[str, str]
    ports: tuple[ServicePortInfo, ...]
    cluster_ip: str
    endpoints: tuple[PodInfo, ...]
    lb_ip: str | None = None
    health_check_node_port: int | None = None
    lb_candidates: tuple[str, ...] = ()  # nodes eligible to announce the VIP
    lb_node: str | None = None  # the elected announcer (None: VIP not announced)
    role: str = "workload"  # workload | ingress-controller
    itp: str = "Cluster"  # internalTrafficPolicy
    source_ranges: tuple[str, ...] = ()  # loadBalancerSourceRanges (CIDRs)
    affinity_timeout: int | None = None  # sessionAffinity ClientIP: timeoutSeconds (None: no affinity)
    external_ips: tuple[str, ...] = ()  # spec.externalIPs
    publish_not_ready: bool = False  # spec.publishNotReadyAddresses

    @property
    def key(self) -> str:
        return f"{self.project}/{self.name}"

    def port_for(self, port: Port | None) -> ServicePortInfo | None:
        if port is None:
            return self.ports[0] if self.ports else None
        return next(
            (p for p in self.ports if p.port.port == port.port and p.port.protocol == port.protocol), None
        )

    def endpoint_nodes(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p.node for p in self.endpoints))

    def conditions(self, pod: PodInfo) -> EndpointConditions:
        """The EndpointSlice conditions of ``pod`` as an endpoint of this Service."""
        return endpoint_conditions(pod.state, self.publish_not_ready)

    def ready_endpoints_for(self, sp: ServicePortInfo) -> tuple[PodInfo, ...]:
        """The endpoints whose ``ready`` condition is true (what ingress-nginx proxies to)."""
        return tuple(p for p in self.endpoints_for(sp) if self.conditions(p).ready)

    def announcing_nodes(self, impl: str) -> tuple[str, ...]:
        """Nodes whose endpoints count for ``impl``'s VIP election (MetalLB / OpenELB read them differently)."""
        return tuple(dict.fromkeys(p.node for p in self.endpoints
                                   if announcing_counts(impl, p.state, self.publish_not_ready)))

    def endpoints_for(self, sp: ServicePortInfo) -> tuple[PodInfo, ...]:
        """The endpoints of one Service port: the selected pods that resolve its targetPort.

        Every such pod is in the EndpointSlice whatever its state; what each consumer makes of
        its conditions (ready / serving / terminating) is :mod:`netiso.model.endpoint_states`.
        """
        return tuple(p for p in self.endpoints if sp.target_for(p) is not None)


@dataclass(frozen=True)
class ControllerInfo:
    """An ingress controller: one nginx pod plus the Service that exposes it."""

    pod: PodInfo
    service: ServiceInfo
    exposure: str
    etp: str


@dataclass(frozen=True)
class IngressInfo:
    project: str
    name: str
    host: str
    service: ServiceInfo
    port: ServicePortInfo
    controller: ControllerInfo

    @property
    def key(self) -> str:
        return f"{self.project}/{self.name}"


@dataclass
class Topology:
    """A scenario with every address resolved: what the oracle reasons about and backends build."""

    scenario: Scenario
    encapsulation: str
    load_balancer: str
    node_network: str
    pod_network: str
    service_network: str
    nodes: dict[str, NodeInfo]
    clients: dict[str, ClientInfo]
    pods: list[PodInfo]
    services: dict[str, ServiceInfo]  # key PROJECT/NAME
    ingresses: dict[str, IngressInfo]  # key PROJECT/NAME
    namespaces: dict[str, Mapping[str, str]]  # project -> labels
    namespace_annotations: dict[str, Mapping[str, str]]
    policies: list[dict[str, Any]]  # every NetworkPolicy manifest (generated + raw)
    dns_service: ServiceInfo | None = None
    warnings: list[str] = field(default_factory=list)  # e.g. whitelist rules KubeSphere would delete

    @property
    def name(self) -> str:
        return self.scenario.name

    def pods_of(self, project: str, workload: str) -> list[PodInfo]:
        return [p for p in self.pods if p.project == project and p.workload == workload]

    def pod_by_ip(self, ip: str) -> PodInfo | None:
        return next((p for p in self.pods if p.ip == ip), None)
