"""kube-proxy's own packet-flow expectations, re-expressed as netiso scenarios and flows.

Source: kubernetes/kubernetes ``pkg/proxy/iptables/proxier_test.go``, the ``runPacketFlowTests``
tables (source, destination, expected endpoints / DROP / REJECT, masquerade), read at commit
4177b600d4b97a67b765a18ddeeb295ef757b212 of the fork aroradaman/kubernetes (the stored copy of
the upstream file, identical in these tables to kubernetes/kubernetes master of that time).
Every :class:`Case` names its upstream test function and case; the expectation is the upstream
one, written here as a fact (never computed by netiso).

How the upstream world maps onto a netiso scenario:

* the node whose rules the upstream tracer walks (``testNodeIP`` / ``testHostname``) is the
  node where the flow first meets kube-proxy: the source pod's or node's own node (``worker``),
  the NodePort's node, or for an external client to a VIP the node that announces it;
* an endpoint with ``NodeName: testHostname`` is ``local`` (a pod on that node), any other
  endpoint ``remote``; expected endpoints are written as those roles;
* ``10.0.0.2`` is a pod on ``worker`` that is no endpoint (``pod:ns1/probe``), the node itself is
  ``node:worker``, ``testExternalClient`` is ``client:alice`` and ``testExternalClientBlocked``
  ``client:bob``;
* ``masq`` is "kube-proxy's masquerade mark led to a SNAT": ``masquerade kube-proxy`` in the
  deciding rules, predicted by the oracle and read from the kernel's trace on the lab. The
  scenarios use ``encapsulation: direct`` so that no Felix tunnel rule masquerades host traffic
  first (that would be Calico's SNAT, not kube-proxy's mark).

Cases that the scenario format cannot express are listed in :data:`NOT_EXPRESSIBLE` with the
reason (run by nobody, counted in the README).
"""

from __future__ import annotations

from dataclasses import dataclass

UPSTREAM = ("kubernetes/kubernetes pkg/proxy/iptables/proxier_test.go "
            "(read at aroradaman/kubernetes@4177b600d4b97a67b765a18ddeeb295ef757b212)")


@dataclass(frozen=True)
class Case:
    test: str  # upstream Go test function
    name: str  # upstream packetFlowTest name (with the variant, for table-driven variants)
    scenario: str  # netiso scenario (below)
    src: str
    dst: str
    output: tuple[str, ...] | str  # endpoint roles ("local", "remote", "local2"), or "DROP" / "REJECT" / "ACCEPT"
    masq: bool = False
    port: str | None = None
    # set when Calico (not kube-proxy) decides first on netiso's datapath: the verdict is upstream's,
    # the deciding rule is Calico's; the reason is the value
    calico_first: str = ""

    @property
    def id(self) -> str:
        return f"{self.test}/{self.name}"


def _masq_doc(name: str, kube_proxy: str) -> str:
    return f"""\
name: {name}
description: proxier_test.go TestInternalExternalMasquerade (+ TestExternalTrafficPolicyLocal/Cluster, TestLoadBalancer)
cluster: {{encapsulation: direct, loadBalancer: metallb, clients: [alice, bob]{kube_proxy}}}
projects: [{{name: ns1}}]
workloads:
  - {{name: ep1, project: ns1, nodes: [worker, worker2], ports: [80/TCP]}}
  - {{name: ep2, project: ns1, nodes: [worker, worker2], ports: [80/TCP]}}
  - {{name: ep3, project: ns1, nodes: [worker, worker2], ports: [80/TCP]}}
  - {{name: epfw, project: ns1, nodes: [control-plane], ports: [80/TCP]}}
  - {{name: probe, project: ns1, nodes: [worker]}}
services:
  - {{name: svc1, project: ns1, selector: {{app: ep1}}, type: LoadBalancer, ports: [80/TCP], externalIPs: [203.0.113.11]}}
  - {{name: svc2, project: ns1, selector: {{app: ep2}}, type: LoadBalancer, externalTrafficPolicy: Local, ports: [80/TCP],
     externalIPs: [203.0.113.12]}}
  - {{name: svc3, project: ns1, selector: {{app: ep3}}, type: LoadBalancer, internalTrafficPolicy: Local, ports: [80/TCP]}}
  - {{name: svcfw, project: ns1, selector: {{app: epfw}}, type: LoadBalancer, ports: [80/TCP],
     loadBalancerSourceRanges: [node:*, client:alice]}}
flows: []
"""


MASQ_VARIANTS = {  # TestInternalExternalMasquerade's testCases: scenario -> (name, cluster.kubeProxy)
    "up-masq-base": ("base", ""),
    "up-masq-no-detector": ("no LocalTrafficDetector", ", kubeProxy: {detectLocalMode: None}"),
    "up-masq-all": ("masqueradeAll", ", kubeProxy: {masqueradeAll: true}"),
    "up-masq-all-no-detector": ("masqueradeAll, no LocalTrafficDetector",
                                ", kubeProxy: {masqueradeAll: true, detectLocalMode: None}"),
}

ITP_DOC = """\
name: up-itp
description: kube-proxy proxier_test.go TestInternalTrafficPolicy, TestNoEndpointsReject, TestClusterIPGeneral
cluster: {encapsulation: direct, loadBalancer: openelb, clients: [alice]}
projects: [{name: ns1}]
workloads:
  - {name: all3, project: ns1, nodes: [worker, worker2, control-plane], ports: [80/TCP]}
  - {name: multi1, project: ns1, nodes: [worker, worker2], labels: {grp: multi}, ports: [80/TCP]}
  - {name: multi2, project: ns1, nodes: [worker], labels: {grp: multi}, ports: [80/TCP]}
  - {name: far, project: ns1, nodes: [control-plane, worker2], ports: [80/TCP]}
  - {name: one, project: ns1, nodes: [worker], ports: [80/TCP]}
  - {name: two, project: ns1, nodes: [worker, worker2], ports: [80/TCP, 8443/TCP, 53/UDP, 5353/TCP]}
  - {name: probe, project: ns1, nodes: [worker]}
services:
  - {name: itp-cluster, project: ns1, selector: {app: all3}, ports: [80/TCP]}
  - {name: itp-local-one, project: ns1, selector: {app: all3}, internalTrafficPolicy: Local, ports: [80/TCP]}
  - {name: itp-local-multi, project: ns1, selector: {grp: multi}, internalTrafficPolicy: Local, ports: [80/TCP]}
  - {name: itp-local-none, project: ns1, selector: {app: far}, internalTrafficPolicy: Local, ports: [80/TCP]}
  - {name: empty, project: ns1, selector: {app: nothing}, type: LoadBalancer, ports: [80/TCP], externalIPs: [203.0.113.13]}
  - {name: svc1, project: ns1, selector: {app: one}, ports: [80/TCP]}
  - name: svc2
    project: ns1
    selector: {app: two}
    ports: [{port: 80, name: http}, {port: 443, targetPort: 8443, name: https},
            {port: 53, protocol: UDP, name: dns-udp}, {port: 53, targetPort: 5353, name: dns-tcp}]
flows: []
"""

NODEPORTS_DOC = """\
name: up-nodeports
description: kube-proxy proxier_test.go TestNodePorts with nodePortAddresses (ipv4)
cluster: {encapsulation: direct, loadBalancer: none, clients: [alice],
          kubeProxy: {nodePortAddresses: [198.18.0.11/32]}}
projects: [{name: ns1}]
workloads:
  - {name: ep, project: ns1, nodes: [worker, worker2], ports: [80/TCP]}
  - {name: probe, project: ns1, nodes: [worker]}
services:
  - {name: svc1, project: ns1, selector: {app: ep}, type: NodePort, ports: [80/TCP]}
flows: []
"""

# TestTerminatingEndpointsTrafficPolicyLocal/Cluster: one Service per upstream test case, its
# EndpointSlice written as replicas in endpoint states (netiso.model.endpoint_states): "ready"
# (Ready/Serving true), "terminating" (Ready false, Serving true, Terminating true) and
# "terminating-not-ready" (all but Terminating false). testHostname is worker, "host-1" /
# "another-host" worker2. Upstream's "external to LB" enters the node the tracer walks; a VIP is
# announced only from a node with a usable endpoint (MetalLB), so the client reaches that node through
# an external IP of the same Service routed to worker: LB IPs and external IPs both jump to the
# Service's KUBE-EXT chain and meet the same KUBE-EXTERNAL-SERVICES rule (proxier.go syncProxyRules).
_TERM_SETS = {  # suffix -> (ETP, [(workload, node, state)], external IP)
    "local-ready": ("Local", [("a", "worker", "ready"), ("b", "worker", "ready"), ("c", "worker", "terminating"),
                              ("d", "worker", "terminating-not-ready"), ("e", "worker2", "ready")], "203.0.113.21"),
    "local-terminating": ("Local", [("b", "worker", "terminating"), ("c", "worker", "terminating"),
                                    ("d", "worker", "terminating-not-ready"), ("e", "worker2", "ready")], "203.0.113.22"),
    "local-remote": ("Local", [("e", "worker2", "terminating")], "203.0.113.23"),
    "local-none": ("Local", [("e", "worker", "terminating-not-ready"), ("f", "worker2", "terminating-not-ready")],
                   "203.0.113.24"),
    "local-deleted": ("Local", [], "203.0.113.25"),
    "cluster-ready": ("Cluster", [("a", "worker", "ready"), ("b", "worker", "ready"), ("c", "worker2", "terminating"),
                                  ("d", "worker2", "terminating-not-ready"), ("e", "worker2", "ready")], "203.0.113.26"),
    "cluster-terminating": ("Cluster", [("b", "worker", "terminating"), ("c", "worker", "terminating"),
                                        ("d", "worker2", "terminating-not-ready"), ("e", "worker2", "terminating")],
                            "203.0.113.27"),
    "cluster-remote": ("Cluster", [("e", "worker2", "terminating")], "203.0.113.28"),
    "cluster-none": ("Cluster", [("e", "worker", "terminating-not-ready"), ("f", "worker2", "terminating-not-ready")],
                     "203.0.113.29"),
    "cluster-deleted": ("Cluster", [], "203.0.113.30"),
}


def _terminating_doc() -> str:
    workloads, services = [], []
    for suffix, (etp, eps, ext_ip) in _TERM_SETS.items():
        for name, node, state in eps:
            states = "" if state == "ready" else f", state: {{{node}: {state}}}"
            workloads.append(f"  - {{name: {suffix}-{name}, project: ns1, nodes: [{node}], labels: {{grp: {suffix}}},"
                             f" ports: [80/TCP]{states}}}")
        services.append(f"  - {{name: t-{suffix}, project: ns1, selector: {{grp: {suffix}}}, type: LoadBalancer, "
                        f"externalTrafficPolicy: {etp}, ports: [80/TCP], externalIPs: [{ext_ip}]}}")
    return ("name: up-terminating\n"
            "description: kube-proxy proxier_test.go TestTerminatingEndpointsTrafficPolicyLocal/Cluster\n"
            "cluster: {encapsulation: direct, loadBalancer: metallb, clients: [alice]}\n"
            "projects: [{name: ns1}]\nworkloads:\n" + "\n".join(workloads)
            + "\n  - {name: probe, project: ns1, nodes: [worker]}\nservices:\n" + "\n".join(services)
            + "\nflows: []\n")


LR = ("local", "remote")
IEM = "TestInternalExternalMasquerade"


def _iem_cases() -> list[Case]:
    """TestInternalExternalMasquerade: its flowTests (base values) with each variant's overrides."""
    svc = {"": "svc1", " with eTP:Local": "svc2", " with iTP:Local": "svc3"}
    out: list[Case] = []
    for scenario, (variant, _settings) in MASQ_VARIANTS.items():
        masq_all = variant.startswith("masqueradeAll")
        detector = "no LocalTrafficDetector" not in variant
        for suffix, name in svc.items():
            itp, etp = suffix == " with iTP:Local", suffix == " with eTP:Local"
            base = [  # (upstream name, src, dst, output, masq) as the base case writes them
                ("pod to ClusterIP", "pod:ns1/probe", f"clusterip:ns1/{name}", ("local",) if itp else LR, False),
                ("pod to NodePort", "pod:ns1/probe", f"nodeport:ns1/{name}@worker", LR, not etp),
                ("pod to LB", "pod:ns1/probe", f"loadbalancer:ns1/{name}", LR, not etp),
                ("node to ClusterIP", "node:worker", f"clusterip:ns1/{name}", ("local",) if itp else LR, True),
                # upstream's "node to NodePort with eTP:Local" case sends to port 3001 (svc1's NodePort)
                ("node to NodePort", "node:worker", f"nodeport:ns1/{'svc1' if etp else name}@worker", LR, True),
                ("node to LB", "node:worker", f"loadbalancer:ns1/{name}", LR, True),
                ("external to NodePort", "client:alice", f"nodeport:ns1/{name}@worker",
                 ("local",) if etp else LR, not etp),
                ("external to LB", "client:alice", f"loadbalancer:ns1/{name}", ("local",) if etp else LR, not etp),
            ]
            for upstream, src, dst, output, masq in base:
                case_name = upstream + suffix
                if masq_all and upstream == "pod to ClusterIP":
                    masq = True  # override: all "to ClusterIP" traffic is masqueraded with --masquerade-all
                if not detector and not masq_all and upstream == "node to ClusterIP":
                    masq = False  # override: without a detector all ClusterIP traffic is taken for pod traffic
                if not detector and etp and upstream in ("pod to NodePort", "pod to LB"):
                    output = ("local",)  # override: no eTP:Local short-circuit for pods
                out.append(Case(IEM, f"{variant}: {case_name}", scenario, src, dst, output, masq))
    return out


def _etp_cases() -> list[Case]:
    """TestExternalTrafficPolicyLocal / TestExternalTrafficPolicyCluster: epIP2 local, epIP1 remote."""
    out = []
    for test, name, local in (("TestExternalTrafficPolicyLocal", "svc2", True),
                              ("TestExternalTrafficPolicyCluster", "svc1", False)):
        masqueraded = "unmasqueraded" if local else "masqueraded"
        rows = [
            ("pod to cluster IP hits both endpoints, unmasqueraded", "pod:ns1/probe", f"clusterip:ns1/{name}", LR, False),
            (f"pod to LB IP hits {'only ' if local else ''}both endpoints, {masqueraded}", "pod:ns1/probe",
             f"loadbalancer:ns1/{name}", LR, not local),
            (f"external to LB IP hits {'only local endpoint' if local else 'both endpoints'}, {masqueraded}",
             "client:alice", f"loadbalancer:ns1/{name}", ("local",) if local else LR, not local),
            (f"pod to NodePort hits both endpoints, {masqueraded}", "pod:ns1/probe", f"nodeport:ns1/{name}@worker",
             LR, not local),
            (f"external to NodePort hits {'only local endpoint' if local else 'both endpoints'}, {masqueraded}",
             "client:alice", f"nodeport:ns1/{name}@worker", ("local",) if local else LR, not local),
            # upstream's svcExternalIPs (192.168.99.11) is 203.0.113.1x here; the outside network routes it to worker
            (f"pod to external IP hits both endpoints, {masqueraded}", "pod:ns1/probe", f"externalip:ns1/{name}",
             LR, not local),
            (f"external to external IP hits {'only local endpoint' if local else 'both endpoints'}, {masqueraded}",
             "client:alice", f"externalip:ns1/{name}@worker", ("local",) if local else LR, not local),
        ]
        out += [Case(test, n, "up-masq-base", s, d, o, m) for n, s, d, o, m in rows]
    return out


def _lb_cases() -> list[Case]:
    """TestLoadBalancer: one (remote) endpoint, source ranges = the nodes and the accepted client."""
    t, ep = "TestLoadBalancer", ("remote",)
    return [
        Case(t, "pod to cluster IP", "up-masq-base", "pod:ns1/probe", "clusterip:ns1/svcfw", ep, False),
        Case(t, "external to nodePort", "up-masq-base", "client:alice", "nodeport:ns1/svcfw@worker", ep, True),
        Case(t, "nodePort bypasses LoadBalancerSourceRanges", "up-masq-base", "client:bob",
             "nodeport:ns1/svcfw@worker", ep, True),
        Case(t, "accepted external to LB1", "up-masq-base", "client:alice", "loadbalancer:ns1/svcfw", ep, True),
        Case(t, "blocked external to LB1", "up-masq-base", "client:bob", "loadbalancer:ns1/svcfw", "DROP"),
        Case(t, "pod to LB1 (blocked by LoadBalancerSourceRanges)", "up-masq-base", "pod:ns1/probe",
             "loadbalancer:ns1/svcfw", "DROP"),
        Case(t, "node to LB1 (allowed by LoadBalancerSourceRanges)", "up-masq-base", "node:worker",
             "loadbalancer:ns1/svcfw", ep, True),
    ]


def _itp_cases() -> list[Case]:
    t = "TestInternalTrafficPolicy"
    probe = "pod:ns1/probe"
    return [
        Case(t, "internalTrafficPolicy is cluster: pod to ClusterIP hits all endpoints", "up-itp", probe,
             "clusterip:ns1/itp-cluster", ("local", "remote", "remote2")),
        Case(t, "internalTrafficPolicy is local and there is one local endpoint: pod to ClusterIP hits only "
             "local endpoint", "up-itp", probe, "clusterip:ns1/itp-local-one", ("local",)),
        Case(t, "internalTrafficPolicy is local and there are multiple local endpoints: pod to ClusterIP hits all "
             "local endpoints", "up-itp", probe, "clusterip:ns1/itp-local-multi", ("local", "local2")),
        Case(t, "internalTrafficPolicy is local and there are no local endpoints: no endpoints", "up-itp", probe,
             "clusterip:ns1/itp-local-none", "DROP"),
        Case(t, "endpoints deleted", "up-itp", probe, "clusterip:ns1/empty", "REJECT"),
    ]


def _no_endpoints_cases() -> list[Case]:
    t = "TestNoEndpointsReject"
    return [
        Case(t, "pod to cluster IP with no endpoints", "up-itp", "pod:ns1/probe", "clusterip:ns1/empty", "REJECT"),
        Case(t, "pod to NodePort with no endpoints", "up-itp", "pod:ns1/probe", "nodeport:ns1/empty@worker", "REJECT",
             calico_first="Felix's cali-INPUT (defaultEndpointToHostAction ACCEPT) accepts pod-to-host traffic "
                          "before kube-proxy's KUBE-EXTERNAL-SERVICES REJECT: the node's own stack refuses it"),
        Case(t, "external to NodePort with no endpoints", "up-itp", "client:alice", "nodeport:ns1/empty@worker",
             "REJECT"),
        Case(t, "pod to LoadBalancer IP with no endpoints", "up-itp", "pod:ns1/probe", "loadbalancer:ns1/empty",
             "REJECT"),
        Case(t, "external to LoadBalancer IP with no endpoints", "up-itp", "client:alice", "loadbalancer:ns1/empty",
             "REJECT"),
        Case(t, "external to external IP with no endpoints", "up-itp", "client:alice", "externalip:ns1/empty@worker",
             "REJECT"),
    ]


def _cluster_ip_cases() -> list[Case]:
    t, two = "TestClusterIPGeneral", ("local", "remote")
    return [
        Case(t, "simple clusterIP", "up-itp", "pod:ns1/probe", "clusterip:ns1/svc1", ("local",)),
        Case(t, "hairpin to cluster IP", "up-itp", "pod:ns1/one", "clusterip:ns1/svc1", ("local",), True),
        Case(t, "clusterIP with multiple endpoints", "up-itp", "pod:ns1/probe", "clusterip:ns1/svc2", two,
             port="80/TCP"),
        Case(t, "clusterIP with TargetPort", "up-itp", "pod:ns1/probe", "clusterip:ns1/svc2", two, port="443/TCP"),
        Case(t, "clusterIP with TCP, UDP, and SCTP on same port (TCP)", "up-itp", "pod:ns1/probe",
             "clusterip:ns1/svc2", two, port="53/TCP"),
        Case(t, "clusterIP with TCP, UDP, and SCTP on same port (UDP)", "up-itp", "pod:ns1/probe",
             "clusterip:ns1/svc2", two, port="53/UDP"),
    ]


def _nodeport_cases() -> list[Case]:
    t = "TestNodePorts"
    v = "ipv4, localhost-nodeports disabled, localhost in nodeport-addresses"
    return [
        Case(t, f"{v}: pod to cluster IP", "up-nodeports", "pod:ns1/probe", "clusterip:ns1/svc1", LR),
        Case(t, f"{v}: external to nodePort", "up-nodeports", "client:alice", "nodeport:ns1/svc1@worker", LR, True),
        Case(t, f"{v}: node to nodePort", "up-nodeports", "node:worker", "nodeport:ns1/svc1@worker", LR, True),
    ]


def _health_check_cases() -> list[Case]:
    """TestHealthCheckNodePort: the filter ACCEPTs the health check node port (for the node itself)."""
    return [Case("TestHealthCheckNodePort", "firewall accepts HealthCheckNodePort", "up-masq-base", "client:alice",
                 "healthcheck:ns1/svc2@worker", "ACCEPT")]


def _terminating_cases() -> list[Case]:
    """TestTerminatingEndpointsTrafficPolicyLocal/Cluster (proxier_test.go at the commit above): each
    test case's two flows, and the two flows every case runs again after deleting its EndpointSlice."""
    out: list[Case] = []
    pod, ext = "pod:ns1/probe", "client:alice"
    tables = {
        "TestTerminatingEndpointsTrafficPolicyLocal": [
            ("ready endpoints exist", "local-ready", ("local", "local2", "remote"), ("local", "local2"), False),
            ("only terminating endpoints exist", "local-terminating", ("remote",), ("local", "local2"), False),
            ("terminating endpoints on remote node", "local-remote", ("remote",), "DROP", False),
            ("no usable endpoints on any node", "local-none", "REJECT", "REJECT", False),
        ],
        "TestTerminatingEndpointsTrafficPolicyCluster": [
            ("ready endpoints exist", "cluster-ready", ("local", "local2", "remote"), ("local", "local2", "remote"), True),
            ("only terminating endpoints exist", "cluster-terminating", ("local", "local2", "remote"),
             ("local", "local2", "remote"), True),
            ("terminating endpoints on remote node", "cluster-remote", ("remote",), ("remote",), True),
            ("no usable endpoints on any node", "cluster-none", "REJECT", "REJECT", False),
        ],
    }
    for test, rows in tables.items():
        deleted = "local-deleted" if test.endswith("Local") else "cluster-deleted"
        for case, suffix, to_cluster_ip, to_lb, masq in rows:
            external = "external to LB, no locally-usable endpoints" if to_lb == "DROP" else (
                "external to LB, no usable endpoints" if to_lb == "REJECT" and test.endswith("Local") else "external to LB")
            internal = "pod to clusterIP, no usable endpoints" if (
                to_cluster_ip == "REJECT" and test.endswith("Local")) else "pod to clusterIP"
            out += [
                Case(test, f"{case}: {internal}", "up-terminating", pod, f"clusterip:ns1/t-{suffix}", to_cluster_ip),
                Case(test, f"{case}: {external}", "up-terminating", ext, f"externalip:ns1/t-{suffix}@worker", to_lb,
                     masq and to_lb != "REJECT"),
                Case(test, f"{case}: pod to clusterIP after endpoints deleted", "up-terminating", pod,
                     f"clusterip:ns1/t-{deleted}", "REJECT"),
                Case(test, f"{case}: external to LB after endpoints deleted", "up-terminating", ext,
                     f"externalip:ns1/t-{deleted}@worker", "REJECT"),
            ]
    return out


CASES: list[Case] = [*_iem_cases(), *_etp_cases(), *_lb_cases(), *_itp_cases(), *_no_endpoints_cases(),
                     *_cluster_ip_cases(), *_nodeport_cases(), *_health_check_cases(), *_terminating_cases()]

# Upstream packet-flow cases of the same tests that the scenario format cannot express, and why.
NOT_EXPRESSIBLE: dict[str, str] = {
    "TestInternalExternalMasquerade: localhost to NodePort (x3 services x4 variants)":
        "no flow source at 127.0.0.1 (a node: source sends from its own address)",
    "TestInternalExternalMasquerade: external to ClusterIP (x3 services x4 variants)":
        "clients outside the cluster have no route to cluster IPs (flows refuse client: -> clusterip:)",
    "TestLoadBalancer: accepted/blocked external to LB2, pod/node to LB2":
        "one VIP per Service (a second status.loadBalancer.ingress IP is not modelled)",
    "TestLoadBalancer: same node to LB1/LB2, SNATted to LB1/LB2": "no flow source at the VIP address",
    "TestClusterIPGeneral: clusterIP with TCP, UDP, and SCTP on same port (SCTP)": "the lab cannot probe SCTP",
    "TestClusterIPGeneral: TCP-only port does not match UDP traffic, svc1 does not accept svc2's ports":
        "a flow's port must be one of the Service's ports",
    "TestNodePorts: localhost to nodePort (gets masqueraded / is ignored)": "no flow source at 127.0.0.1",
    "TestNodePorts: external to nodePort on secondary IP / secondary nodeIP ignores NodePorts":
        "a node has one address in the model (no secondary node IP); the bundled kube-proxy-masquerade-all "
        "scenario shows another node's address outside nodePortAddresses refused instead",
    "TestNodePorts: ipv6 cases": "IPv6 is not modelled",
    "TestOverallIPTablesRules/TestTracePacket: health-check cases":
        "rule-dump comparisons, not packet flows (the bundled health-check-node-port scenario probes the port)",
}


def scenario_yaml() -> str:
    """Every scenario the cases run in, as one multi-document YAML text with each case's flow."""
    docs = {name: _masq_doc(name, settings) for name, (_v, settings) in MASQ_VARIANTS.items()}
    docs["up-itp"] = ITP_DOC
    docs["up-nodeports"] = NODEPORTS_DOC
    docs["up-terminating"] = _terminating_doc()
    flows: dict[str, list[str]] = {name: [] for name in docs}
    seen: set[tuple[str, str, str, str | None]] = set()
    for c in CASES:
        key = (c.scenario, c.src, c.dst, c.port)
        if key in seen:
            continue
        seen.add(key)
        port = f", port: {c.port}" if c.port else ""
        flows[c.scenario].append(f"  - {{from: {c.src}, to: {c.dst}{port}}}")
    return "---\n".join(text.replace("flows: []\n", "flows:\n" + "\n".join(flows[name]) + "\n")
                        for name, text in docs.items())
