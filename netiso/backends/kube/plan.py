"""``netiso check --backend kube --dry-run --out DIR``: the whole run written down, no cluster contacted.

A person about to point netiso at a shared cluster wants to read first what it will do there:
every object, in the order it is created, and every API call before and after. So the dry-run
writes, per scenario, ``DIR/<scenario>/NN-<kind>-<name>.yaml`` (NN = apply order) and
``plan.txt`` with the ordered steps: preflight reads (each with the API path it reads),
creations (POST paths), waits and discovery, the policies (whose ipBlocks a real run fills from
discovered addresses; the dry-run shows the lab address plan's), the ingresses, the probe batches
(per source: which exec target - a pod, a node-probe pod, or the ``--client`` command - and which
flows), and cleanup.

This module imports no Kubernetes client (a test checks it): what it writes comes from
``netiso.backends.kube.manifests`` alone. The exact probe shell command belongs to the probing
module; ``write_plan(batch_command=...)`` is the hook through which it shows up in ``plan.txt``.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from netiso.backends.kube.access import access_for
from netiso.backends.kube.kubesphere_objects import controller_objects, expected_policies, raw_policies
from netiso.backends.kube.manifests import (
    LEASE_SECONDS,
    NODE_PROBE_CONTAINER,
    KubeTarget,
    api_path,
    phases,
)
from netiso.backends.kube.naming import RUN_LABEL, RunNames
from netiso.backends.kube.pod_states import NOT_READY_STATES, TERMINATING_STATES, state_of
from netiso.backends.kube.vips import REQUEST_ANNOTATIONS, VipChoice, choose_vips, lb_services
from netiso.model.flows import resolve_flow
from netiso.model.render import to_yaml, workload_pod
from netiso.model.types import Topology

POOL_MODES: dict[str, tuple[str, str]] = {  # encapsulation -> (ipipMode, vxlanMode) of the Calico IPPool
    "direct": ("Never", "Never"),
    "ipip": ("Always", "Never"),
    "vxlan": ("Never", "Always"),
}
LB_READS: dict[str, str] = {
    "metallb": "GET /apis/metallb.io/v1beta1/ipaddresspools (at least one pool; --metallb-pool must exist)",
    "openelb": "GET /apis/network.kubesphere.io/v1alpha2/eips (a layer2 Eip, the one named or the default)",
}


@dataclass(frozen=True)
class PlannedProbe:
    """One flow as the probe of a batch sends it (addresses from the plan's topology)."""

    index: int  # the flow's position in the scenario
    src: str
    dst: str
    dst_kind: str
    address: str | None  # None: nothing to send to (a VIP not allocated)
    port: int
    protocol: str
    host: str | None = None

    def describe(self) -> str:
        to = f"{self.address}:{self.port}/{self.protocol}" if self.address else "no address (not allocated)"
        host = f" Host: {self.host}" if self.host else ""
        return f"flow {self.index}: {self.src} -> {self.dst}  [{self.dst_kind} {to}{host}]"


@dataclass(frozen=True)
class ProbeBatch:
    """The probes fired together from one source: through one exec, or skipped with a reason."""

    source: str  # resolved source symbol: pod:P/W@N, node:N, client:C
    exec_target: str | None  # "pod NS/NAME container C" or "--client C=COMMAND"; None when skipped
    skipped: str | None
    probes: tuple[PlannedProbe, ...]


BatchCommand = Callable[[str, Sequence[PlannedProbe]], "str | None"]
NodeMap = Mapping[str, str] | Callable[[Topology], Mapping[str, str]] | None


def probe_batches(topo: Topology, names: RunNames, clients: Mapping[str, str] | None = None) -> list[ProbeBatch]:
    """The scenario's flows grouped by source, in first-appearance order, with their exec targets.

    >>> from netiso.model.addressing import resolve
    >>> from netiso.model.loader import loads
    >>> topo = resolve(loads('''name: t
    ... projects: [{name: a}]
    ... workloads: [{name: web, project: a, nodes: [worker]}]
    ... flows: [{from: client:client, to: pod:a/web}, {from: node:worker, to: pod:a/web}]
    ... ''')[0])
    >>> [(b.source, b.exec_target, b.skipped is not None) for b in probe_batches(topo, RunNames("nx0a1b2c"))]
    [('client:client', None, True), ('node:worker', 'pod nx0a1b2c-netiso/node-worker container probe', False)]
    """
    clients = clients or {}
    grouped: dict[str, list[PlannedProbe]] = {}
    for i, flow in enumerate(topo.scenario.flows):
        target = resolve_flow(topo, flow)
        source = target.origin_name if target.origin_kind == "pod" else f"{target.origin_kind}:{target.origin_name}"
        grouped.setdefault(source, []).append(PlannedProbe(
            index=i, src=flow.src, dst=flow.dst, dst_kind=target.dst_kind, address=target.dst_ip,
            port=target.dst_port, protocol=target.protocol, host=target.host))
    batches = []
    for source, probes in grouped.items():
        kind, _, rest = source.partition(":")
        exec_target: str | None
        skipped = None
        if kind == "pod":
            pod = next(p for p in topo.pods if p.symbol == source)
            # Any container shares the pod's network namespace; exec into the first one.
            container = workload_pod(pod)["spec"]["containers"][0]["name"]
            exec_target = f"pod {names.namespace(pod.project)}/{names.pod_name(pod)} container {container}"
        elif kind == "node":
            exec_target = f"pod {names.system_namespace}/{names.node_pod(rest)} container {NODE_PROBE_CONTAINER}"
        elif rest in clients:
            exec_target = f"--client {shlex.quote(f'{rest}={clients[rest]}')}"
        else:
            exec_target = None
            skipped = (f"client:{rest} is not mapped (--client {rest}=COMMAND): its {len(probes)} flow(s) are "
                       "reported skipped, never passed")
        batches.append(ProbeBatch(source, exec_target, skipped, tuple(probes)))
    return batches


def object_file_names(objects: Sequence[Mapping[str, Any]]) -> list[str]:
    """``NN-<kind>-<name>.yaml`` per object, NN its 1-based apply position (at least 2 digits).

    >>> object_file_names([{"kind": "Namespace", "metadata": {"name": "nx0a1b2c-a"}}])
    ['01-namespace-nx0a1b2c-a.yaml']
    """
    width = max(2, len(str(len(objects))))
    return [f"{i:0{width}d}-{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"
            for i, obj in enumerate(objects, start=1)]


def write_plan(
    topos: Sequence[Topology],
    out_dir: str | Path,
    names_for: Callable[[Topology], RunNames],
    node_map: NodeMap = None,
    *,
    registry: str | None = None,
    metallb_pool: str | None = None,
    openelb_eip: str | None = None,
    clients: Mapping[str, str] | None = None,
    batch_command: BatchCommand | None = None,
    holder: str = "netiso --dry-run",
    renew_time: datetime | None = None,
    lb_pool: Sequence[str] | None = None,
    lb_excluded: Mapping[str, bool] | None = None,
    kubesphere: str | None = None,
) -> list[Path]:
    """Write each scenario's objects and ``plan.txt`` under ``out_dir/<scenario>/``; return those dirs.

    ``names_for(topo)`` gives the run names of a scenario; ``node_map`` maps scenario nodes to
    cluster nodes (a mapping, a function of the topology, or None for the scenario's own names);
    ``clients`` are the ``--client NAME=COMMAND`` mappings; ``batch_command(source, probes)``
    returns the exact shell command of a probe batch (None: shown as decided at run time).
    ``lb_pool`` (the address ranges the cluster's load balancer will hand out, when known, as on
    kind) and ``lb_excluded`` (scenario node -> carries the exclusion label; default: the plan's)
    let the plan pick each LoadBalancer Service's VIP as a run would (vips.choose_vips); without a
    pool the VIP is said to be chosen at run time. ``kubesphere="controller"`` (``--kubesphere
    controller``): phase ``kubesphere`` (Workspaces, NamespaceNetworkPolicies, the raw policies)
    replaces phase ``policies``, followed by the wait for KubeSphere's controller and the diff.
    Earlier ``NN-*.yaml`` files of a scenario directory are replaced.
    """
    out = Path(out_dir)
    when = renew_time or datetime.now(UTC)
    written = []
    for topo in topos:
        names = names_for(topo)
        mapping = node_map(topo) if callable(node_map) else (node_map or {n: n for n in topo.nodes})
        choices = None
        if lb_pool is not None:
            excluded = lb_excluded if lb_excluded is not None else {n: i.lb_excluded for n, i in topo.nodes.items()}
            choices = choose_vips(topo, mapping, excluded, lb_pool, pool_label=f"the pool {', '.join(lb_pool)}")
        target = KubeTarget(names, dict(mapping), registry=registry, metallb_pool=metallb_pool,
                            openelb_eip=openelb_eip, vips={k: c.vip for k, c in (choices or {}).items() if c.vip})
        staged = phases(topo, target, holder=holder, renew_time=when)
        if kubesphere == "controller":
            staged = [("kubesphere", [*controller_objects(topo, names), *raw_policies(topo, objs)])
                      if phase == "policies" else (phase, objs) for phase, objs in staged]
        objects = [obj for _, objs in staged for obj in objs]
        files = object_file_names(objects)
        scenario_dir = out / topo.name
        scenario_dir.mkdir(parents=True, exist_ok=True)
        for old in scenario_dir.iterdir():
            if old.is_file() and re.match(r"^\d{2,}-[a-z]+-.+\.yaml$", old.name):
                old.unlink()
        for name, obj in zip(files, objects, strict=True):
            (scenario_dir / name).write_text(to_yaml([obj]))
        batches = probe_batches(topo, names, clients)
        text = plan_text(topo, target, staged, files, batches, batch_command=batch_command, clients=clients,
                         vips=choices, kubesphere=kubesphere)
        (scenario_dir / "plan.txt").write_text(text)
        written.append(scenario_dir)
    return written


# --------------------------------------------------------------------------- plan.txt


def plan_text(topo: Topology, target: KubeTarget, staged: Sequence[tuple[str, list[dict[str, Any]]]],
              files: Sequence[str], batches: Sequence[ProbeBatch], *,
              batch_command: BatchCommand | None = None, clients: Mapping[str, str] | None = None,
              vips: Mapping[str, VipChoice] | None = None, kubesphere: str | None = None) -> str:
    """The ordered steps of one scenario's run, as ``plan.txt`` reads."""
    names = target.names
    objects = [obj for _, objs in staged for obj in objs]
    file_of = {id(obj): f for obj, f in zip(objects, files, strict=True)}
    project_namespaces = [names.namespace(p) for p in topo.namespaces]
    lines: list[str] = []
    w = lines.append
    w(f"netiso kube plan - scenario {topo.name}, run {names.run}")
    w(f"encapsulation {topo.encapsulation}, load balancer {topo.load_balancer}, "
      f"nodes {', '.join(f'{n}->{target.cluster_node(n)}' for n in topo.nodes)}")
    w(f"images from {target.registry or 'their upstream registries'}; every object carries {RUN_LABEL}={names.run}")
    w("This plan was written without contacting a cluster; addresses are the lab address plan's.")
    step = _Steps(w)

    step("preflight (reads only; any failure exits 2 and creates nothing)")
    ipip, vxlan = POOL_MODES[topo.encapsulation]
    checks = [
        ("kubeconfig", "--kubeconfig / KUBECONFIG / ~/.kube/config, --context (default: current-context)"),
        ("API reachable", "GET /version"),
        ("authorised", "POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews, one per verb/resource:"),
    ]
    for label, read in checks:
        w(f"   - {label}: {read}")
    for access in access_for(topo.load_balancer, kubesphere=kubesphere):
        w(f"       {access}")
    w("     (creating the controller Role/ClusterRole also needs every permission they grant, or the")
    w("      'escalate' verb on roles/clusterroles: the API refuses privilege escalation)")
    for label, read in [
        ("kube-proxy mode", "GET /api/v1/namespaces/kube-system/configmaps/kube-proxy "
                            "(config.conf mode: iptables is the profile predicted)"),
        ("CNI is Calico, pool matches encapsulation",
         f"GET /apis/projectcalico.org/v3/ippools when discovery serves it (native v3 CRDs), else "
         f"/apis/crd.projectcalico.org/v1/ippools (expected ipipMode={ipip}, vxlanMode={vxlan})"),
        _kubesphere_check(kubesphere),
        ("load balancer installed", LB_READS.get(topo.load_balancer, "none needed")),
        ("nodes", f"GET /api/v1/nodes ({len(topo.nodes)} Ready nodes: "
                  f"{', '.join(target.cluster_node(n) for n in topo.nodes)})"),
        ("namespaces free", "GET /api/v1/namespaces/<name> for "
                            f"{', '.join([names.system_namespace, *project_namespaces])}: absent, or labelled "
                            f"{RUN_LABEL}={names.run}; an unlabelled namespace is a refusal, never adopted"),
    ]:
        w(f"   - {label}: {read}")

    step("janitor (runs of earlier crashed sessions)")
    w(f"   GET /apis/coordination.k8s.io/v1/leases?labelSelector={RUN_LABEL}: a run whose Lease renewTime + "
      "leaseDurationSeconds has passed is finished;")
    w(f"   DELETE its namespaces and cluster-scoped objects labelled {RUN_LABEL}=<that run>; nothing unlabelled")

    for phase, objs in staged:
        if phase == "policies":
            step("policies (after discovery)")
            w("   ipBlocks are filled from discovered addresses (nodes, tunnels, pods, clients); this dry-run")
            w("   shows the lab address plan's. Namespace selectors name the run's namespaces.")
        elif phase == "kubesphere":
            step("kubesphere: what a KubeSphere user creates (after discovery; --kubesphere controller)")
            w("   Workspaces and NamespaceNetworkPolicies (ipBlocks from discovered addresses; this dry-run shows the")
            w("   lab address plan's), and the scenario's own networkPolicies; the nsnp-* NetworkPolicies are")
            w("   KubeSphere's controller's to write.")
        else:
            step(f"create: {phase}")
        if phase == "services":
            _vip_lines(w, topo, target, vips)
        for obj in objs:
            meta = obj["metadata"]
            where = f"{meta['namespace']}/" if meta.get("namespace") else ""
            w(f"   POST {api_path(obj)}  {obj['kind']} {where}{meta['name']}  ({file_of[id(obj)]})")
        if phase == "run":
            w(f"   (the run renews its Lease while it runs: PUT {api_path(objs[1], item=True)}; "
              f"leaseDurationSeconds {LEASE_SECONDS})")
        if phase == "namespaces":
            step("wait: default ServiceAccounts")
            for ns in project_namespaces + [names.system_namespace]:
                w(f"   GET /api/v1/namespaces/{ns}/serviceaccounts/default (pods are refused until it exists)")
        if phase == "services":
            step("wait: pods Ready")
            for ns in dict.fromkeys(o["metadata"]["namespace"] for o in objects if o["kind"] == "Pod"):
                w(f"   GET /api/v1/namespaces/{ns}/pods?labelSelector={RUN_LABEL}%3D{names.run} until every pod is "
                  "Ready")
            w("   on timeout: GET /api/v1/namespaces/<ns>/events?fieldSelector=involvedObject.name=<pod> "
              "(the message names the pod and its last event)")
            _endpoint_state_steps(w, step, objects)
            balanced = [o for o in objs if o["spec"].get("type") == "LoadBalancer"]
            if balanced:
                step("wait: LoadBalancer addresses")
                for obj in balanced:
                    w(f"   GET {api_path(obj, item=True)} until status.loadBalancer.ingress[0].ip is set")
            _discovery(w, step, topo, names, objs)
        if phase == "kubesphere":
            _controller_wait(w, step, topo, names)
        if phase == "ingresses" and objs:
            step("wait: ingresses admitted")
            for obj in objs:
                w(f"   GET {api_path(obj, item=True)} until status.loadBalancer.ingress is set")

    echo = {(p.dst, p.port, p.protocol) for b in batches for p in b.probes if p.dst_kind == "client"}
    if echo:
        step("echo endpoints on external clients (egress flows)")
        for dst, port, protocol in sorted(echo):
            client = dst.partition(":")[2]
            how = (f"through --client {client}" if client in (clients or {}) else
                   "not mapped: flows to it are reported skipped")
            w(f"   {dst} serves echo on {port}/{protocol} ({how})")

    step("probe batches (one exec per batch; every flow repeated until consistent)")
    for batch in batches:
        if batch.exec_target is None:
            w(f"   {batch.source}: SKIPPED - {batch.skipped}")
        else:
            w(f"   {batch.source}: exec {batch.exec_target}")
            command = batch_command(batch.source, batch.probes) if batch_command else None
            if not command:
                w("     command: decided at run time by the probing module")
            elif "\n" in command.strip():
                w("     command (a script, run through the exec above):")
                lines.extend(f"       | {line}" for line in command.strip("\n").splitlines())
            else:
                w(f"     command: {command}")
        for probe in batch.probes:
            w(f"     {probe.describe()}")

    step("cleanup (at exit, on Ctrl-C; the janitor removes what a crash leaves)")
    for ns in project_namespaces:
        w(f"   DELETE /api/v1/namespaces/{ns}")
    for obj in objects:
        if not obj["metadata"].get("namespace") and obj["kind"] != "Namespace":
            w(f"   DELETE {api_path(obj, item=True)}")
    w(f"   DELETE /api/v1/namespaces/{names.system_namespace}  (last: the Lease goes with it)")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- helpers


def _kubesphere_check(kubesphere: str | None) -> tuple[str, str]:
    """Preflight's KubeSphere line: refused without the mode, required with it."""
    if kubesphere == "controller":
        return ("KubeSphere 3.3/3.4, network isolation on (--kubesphere controller)",
                "GET /apis/installer.kubesphere.io/v1alpha1/namespaces/kubesphere-system/clusterconfigurations/"
                "ks-installer (label version v3.3/v3.4), GET /api/v1/namespaces/kubesphere-system/configmaps/"
                "kubesphere-config (kubesphere.yaml network.enableNetworkPolicy: true, nsnpOptions)")
    return ("not KubeSphere", "GET /apis (no tenant.kubesphere.io, no network.kubesphere.io namespacenetworkpolicies), "
                              "GET /api/v1/namespaces/kubesphere-system (absent): its controller owns nsnp-* policies")


def _endpoint_state_steps(w: Callable[[str], None], step: _Steps, objects: list[dict[str, Any]]) -> None:
    """The scenario's not-ready and terminating replicas (pod_states.py): what the run waits for and deletes."""
    pods = [o for o in objects if o["kind"] == "Pod" and state_of(o) != "ready"]
    for obj in pods:
        if state_of(obj) in NOT_READY_STATES:
            w(f"   ({obj['metadata']['namespace']}/{obj['metadata']['name']} is {state_of(obj)}: waited for as Running "
              "and not Ready, its readiness probe on a port nothing listens on)")
    doomed = [o for o in pods if state_of(o) in TERMINATING_STATES]
    if doomed:
        step("terminating replicas: graceful DELETE (preStop sleep holds them), then their EndpointSlices")
        for obj in doomed:
            w(f"   GET {api_path(obj, item=True)} (the preStop sleep hook must have survived: PodLifecycleSleepAction)")
            w(f"   DELETE {api_path(obj, item=True)}")
        w("   GET /apis/discovery.k8s.io/v1/namespaces/<ns>/endpointslices?labelSelector=kubernetes.io/service-name=<svc> "
          "until each deleted pod's endpoint is terminating")
        w("   (clean-up deletes them again with gracePeriodSeconds 1, cutting the sleep short, before their namespaces)")


def _controller_wait(w: Callable[[str], None], step: _Steps, topo: Topology, names: RunNames) -> None:
    """The wait for KubeSphere's controller and the diff against netiso's compiler."""
    expected = expected_policies(topo, names)
    step("wait: KubeSphere's controller writes its NetworkPolicies, then diff")
    for ns in dict.fromkeys(p["metadata"]["namespace"] for p in expected):
        wanted = ", ".join(p["metadata"]["name"] for p in expected if p["metadata"]["namespace"] == ns)
        w(f"   GET /apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies until {wanted} exist and two reads agree")
    w("   (bounded; not settling is a scenario warning) then every nsnp-* spec is compared with netiso's compiler,")
    w("   order-insensitive: differs / missing / unexpected go to the scenario's controllerDiff and fail the run.")
    w("   Probes measure what the controller wrote; the oracle predicts from netiso's compiler.")


def _vip_lines(w: Callable[[str], None], topo: Topology, target: KubeTarget,
               vips: Mapping[str, VipChoice] | None) -> None:
    """Per LoadBalancer Service: the VIP it requests and the node that VIP elects (or when it is chosen)."""
    services = lb_services(topo)
    if not services or topo.load_balancer not in REQUEST_ANNOTATIONS:
        return
    annotation = REQUEST_ANNOTATIONS[topo.load_balancer]
    w(f"   LoadBalancer VIPs ({annotation}): each elects the node the scenario's plan elects")
    for svc in services:
        planned = (f"node:{svc.lb_node} ({target.cluster_node(svc.lb_node)})" if svc.lb_node
                   else "no node (nothing announces it)")
        if vips is None:
            w(f"     {svc.key}: VIP chosen at run time: the first free address of the pool preflight finds that "
              f"{topo.load_balancer} elects {planned} for; if none does, its client flows are skipped")
        else:
            w(f"     {vips[svc.key].describe()}")


class _Steps:
    """Numbered step headings."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self.write = write
        self.n = 0

    def __call__(self, title: str) -> None:
        self.n += 1
        self.write("")
        self.write(f"{self.n}. {title}")


def _discovery(w: Callable[[str], None], step: _Steps, topo: Topology, names: RunNames,
               services: Sequence[Mapping[str, Any]]) -> None:
    step("discover: map what the cluster assigned back to the scenario's symbols")
    w("   GET /api/v1/nodes: InternalIP (node:NAME), annotations projectcalico.org/IPv4IPIPTunnelAddr / "
      "projectcalico.org/IPv4VXLANTunnelAddr (tunnel:NAME)")
    for ns in dict.fromkeys([names.system_namespace, *(names.namespace(p) for p in topo.namespaces)]):
        w(f"   GET /api/v1/namespaces/{ns}/pods: status.podIP (pod:, ingress-controller:), status.hostIP")
    for ns in dict.fromkeys(s["metadata"]["namespace"] for s in services):
        w(f"   GET /api/v1/namespaces/{ns}/services: spec.clusterIP, ports[].nodePort, healthCheckNodePort, "
          "status.loadBalancer.ingress[].ip")
    if any(s["spec"].get("type") == "LoadBalancer" for s in services):
        if topo.load_balancer == "metallb":
            w("   GET /apis/metallb.io/v1beta1/namespaces/metallb-system/servicel2statuses: the node announcing "
              "each VIP (observed.elected)")
        elif topo.load_balancer == "openelb":
            w("   OpenELB keeps no per-Service status object: the announcing node comes from ARP seen by a "
              "client (observed.elected), else it is not reported")
    w("   the oracle then predicts on the topology as realized (cluster node names, VIPs, addresses)")
