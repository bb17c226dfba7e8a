"""Driving KubeSphere's own isolation controller (issue #14 item 6, a working subset).

Without this mode the kube backend writes the NetworkPolicies KubeSphere would generate and
refuses a KubeSphere cluster (preflight.check_not_kubesphere). On a cluster running KubeSphere
3.3/3.4 with network isolation enabled, the honest measurement is the other way round: create
what a KubeSphere user creates and let ks-controller-manager's nsnetworkpolicy controller
(kubesphere/kubesphere release-3.4, pkg/controller/network/nsnetworkpolicy/nsnetworkpolicy_controller.go)
write the policies, then compare them with netiso's compiler before probing. This module holds
the pieces that need no realization state:

* :func:`detect` / :func:`refusal` / :func:`check` (preflight): the KubeSphere version (ks-installer's
  ClusterConfiguration ``kubesphere-system/ks-installer``, label ``version``) and whether network
  isolation is on (the ``kubesphere-system/kubesphere-config`` ConfigMap, ``kubesphere.yaml`` key
  ``network.enableNetworkPolicy``, what ks-controller-manager reads via
  pkg/simple/client/network/options.go; else the ClusterConfiguration's
  ``spec.network.networkpolicy.enabled``), and the controller's ``allowedIngressNamespaces``;
* :func:`controller_objects` / :func:`expected_policies` (kubesphere_objects.py, re-exported):
  the Workspaces and NamespaceNetworkPolicies a KubeSphere user creates, under the run's names,
  and what netiso's compiler says the controller will write for them;
* :func:`wait_for_policies`: a bounded wait for the controller's ``nsnp-*`` NetworkPolicies;
* :func:`diff_policies`: an order-insensitive comparison of specs, one finding per policy that
  differs, is missing or is unexpected, with both specs.

The realization (realization.py, ``--kubesphere controller``) creates these objects instead of
phase ``policies``, waits, diffs, and hands the findings to the result document
(``controllerDiff``); the probes then measure what the controller wrote while the oracle keeps
predicting from netiso's compiler, so a difference that changes a flow is also a mismatch.

``cluster.kubesphere.snatNodeIPs`` is a cluster admin's node annotation: netiso does not write it
(it never changes what it did not create); :func:`snat_ips_note` warns, with the ``kubectl
annotate`` commands, when the nodes' annotations are not the scenario's, and the diff shows the
node rule that then differs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from netiso.backends.base import BackendUnavailable
from netiso.backends.kube.client import Kube, KubeApiError
from netiso.backends.kube.kubesphere_objects import (
    WORKSPACE_API,
    controller_objects,
    expected_policies,
    prefixed_scenario,
    raw_policies,
)
from netiso.backends.kube.naming import RunNames
from netiso.model import tenancy
from netiso.model.addressing import snat_node_ips
from netiso.model.types import Topology

KUBESPHERE_NAMESPACE = "kubesphere-system"
CONFIG_MAP = "kubesphere-config"
INSTALLER_API = "installer.kubesphere.io/v1alpha1"
INSTALLER_NAME = "ks-installer"
SUPPORTED = ("v3.3", "v3.4")


@dataclass(frozen=True)
class KubeSphereInfo:
    """What preflight learnt about the cluster's KubeSphere."""

    version: str | None
    isolation: bool | None  # network.enableNetworkPolicy; None: not found anywhere
    allowed_ingress_namespaces: tuple[str, ...] = ()
    source: str = ""  # where isolation was read


def detect(kube: Kube) -> KubeSphereInfo | None:
    """The cluster's KubeSphere, or ``None`` when neither its config nor its installer is there."""
    config = _get(kube, "v1", "ConfigMap", CONFIG_MAP, KUBESPHERE_NAMESPACE)
    installer = _get(kube, INSTALLER_API, "ClusterConfiguration", INSTALLER_NAME, KUBESPHERE_NAMESPACE)
    if config is None and installer is None:
        return None
    version = ((installer or {}).get("metadata") or {}).get("labels", {}).get("version") if installer else None
    isolation: bool | None = None
    allowed: tuple[str, ...] = ()
    source = ""
    if config is not None:
        try:
            doc = yaml.safe_load(((config.get("data") or {}).get("kubesphere.yaml")) or "") or {}
        except yaml.YAMLError:
            doc = {}
        network = doc.get("network") if isinstance(doc, Mapping) else None
        if isinstance(network, Mapping):
            isolation = bool(network.get("enableNetworkPolicy", False))
            nsnp = network.get("nsnpOptions") or {}
            allowed = tuple(str(n) for n in (nsnp.get("allowedIngressNamespaces") or []))
            source = f"ConfigMap {KUBESPHERE_NAMESPACE}/{CONFIG_MAP} network.enableNetworkPolicy"
    if isolation is None and installer is not None:
        policy = (((installer.get("spec") or {}).get("network") or {}).get("networkpolicy") or {})
        if "enabled" in policy:
            isolation = bool(policy["enabled"])
            source = f"ClusterConfiguration {KUBESPHERE_NAMESPACE}/{INSTALLER_NAME} spec.network.networkpolicy.enabled"
    return KubeSphereInfo(version, isolation, allowed, source)


def refusal(info: KubeSphereInfo | None) -> str | None:
    """Why the controller mode cannot run on this cluster (``None``: it can)."""
    if info is None:
        return (f"--kubesphere controller needs KubeSphere 3.3/3.4, but the cluster has neither the {CONFIG_MAP} "
                f"ConfigMap nor the {INSTALLER_NAME} ClusterConfiguration in {KUBESPHERE_NAMESPACE}; run without it")
    if info.version is None or not info.version.startswith(SUPPORTED):
        return (f"KubeSphere version {info.version or 'unknown'} (label version of ClusterConfiguration "
                f"{INSTALLER_NAME}): the controller mode follows the nsnetworkpolicy controller of 3.3/3.4 "
                "(4.x moved network isolation out of core)")
    if not info.isolation:
        where = info.source or f"{CONFIG_MAP} / {INSTALLER_NAME}"
        return (f"KubeSphere network isolation is not enabled ({where} is false or missing): enable "
                "network.networkpolicy in ks-installer's ClusterConfiguration, or run without --kubesphere controller")
    return None


def check(kube: Kube) -> KubeSphereInfo:
    """Preflight of ``--kubesphere controller``: the cluster's KubeSphere, or BackendUnavailable (exit 2)."""
    info = detect(kube)
    reason = refusal(info)
    if reason is not None:
        raise BackendUnavailable(reason)
    assert info is not None
    return info


def allowed_namespaces_note(info: KubeSphereInfo | None, topo: Topology, names: RunNames) -> str | None:
    """A warning when the cluster's allowedIngressNamespaces are not the scenario's.

    The oracle and the diff follow the scenario's ``cluster.kubesphere.allowedIngressNamespaces``
    (so a difference shows in ``nsnp-network-isolate``); this says which setting to write there.
    """
    if info is None:
        return None
    wanted = sorted(prefixed_scenario(topo.scenario, names).cluster.kubesphere.allowed_ingress_namespaces)
    have = sorted(info.allowed_ingress_namespaces)
    if wanted == have:
        return None
    return (f"the cluster's KubeSphere admits ingress from {', '.join(have) or 'no namespace'} into every isolated "
            f"project (kubesphere-config network.nsnpOptions.allowedIngressNamespaces), the scenario says "
            f"{', '.join(wanted) or 'none'}: set cluster.kubesphere.allowedIngressNamespaces in the scenario to "
            "predict this cluster")


SNAT_ANNOTATION = "kubesphere.io/snat-node-ips"


def cluster_snat_ips(nodes: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Each node's ``kubesphere.io/snat-node-ips`` addresses, as generateNodeRule reads them
    (release-3.4 nsnetworkpolicy_controller.go: every node's annotation, split on ``;``).

    >>> cluster_snat_ips([{"metadata": {"name": "w1", "annotations": {SNAT_ANNOTATION: "10.0.0.1;10.0.0.2"}}},
    ...                   {"metadata": {"name": "w2"}}])
    {'w1': ['10.0.0.1', '10.0.0.2']}
    """
    out: dict[str, list[str]] = {}
    for node in nodes:
        meta = node.get("metadata") or {}
        value = (meta.get("annotations") or {}).get(SNAT_ANNOTATION) or ""
        ips = [ip.strip() for ip in value.split(";") if ip.strip()]
        if ips:
            out[str(meta.get("name"))] = ips
    return out


def snat_ips_note(annotated: Mapping[str, Sequence[str]], topo: Topology, node_map: Mapping[str, str]) -> str | None:
    """A warning when the cluster's snat-node-ips annotations are not the scenario's ``snatNodeIPs``.

    The controller builds the isolation policy's node rule from every node's annotation; netiso
    does not write annotations on nodes it did not create (a cluster admin's setting), so a
    difference shows in ``nsnp-network-isolate`` and this names the command that would make the
    cluster match the scenario (``topo``: as realized, with the cluster's node addresses).

    >>> from types import SimpleNamespace as NS
    >>> topo = NS(scenario=NS(cluster=NS(kubesphere=NS(snat_node_ips=("node:worker",)))),
    ...           nodes={"worker": NS(name="worker", ip="172.18.0.3", tunnel_ip=None)}, clients={}, pods=[],
    ...           ingresses={})
    >>> note = snat_ips_note({}, topo, {"worker": "kind-worker"})
    >>> "kubectl annotate node kind-worker kubesphere.io/snat-node-ips='172.18.0.3' --overwrite" in note
    True
    >>> snat_ips_note({"kind-worker": ["172.18.0.3"]}, topo, {"worker": "kind-worker"}) is None
    True
    """
    wanted = snat_node_ips(topo)
    have = sorted({ip for ips in annotated.values() for ip in ips})
    if sorted(set(wanted)) == have:
        return None
    per_node: dict[str, list[str]] = {}
    for ip in wanted:  # each address on the node that owns it, literal addresses on the first node
        owner = next((n.name for n in topo.nodes.values() if ip in (n.ip, n.tunnel_ip)), None)
        cluster_node = node_map.get(owner or "") or next(iter(node_map.values()), "NODE")
        per_node.setdefault(cluster_node, []).append(ip)
    commands = "; ".join(f"kubectl annotate node {node} {SNAT_ANNOTATION}='{';'.join(ips)}' --overwrite"
                         for node, ips in per_node.items())
    where = ", ".join(f"{node}: {';'.join(ips)}" for node, ips in sorted(annotated.items())) or "no node"
    return (f"the cluster's nodes carry {SNAT_ANNOTATION} on {where}; the scenario's cluster.kubesphere.snatNodeIPs "
            f"says {', '.join(wanted) or 'none'}: "
            + (f"{commands} (and remove it from other nodes), " if wanted else
               f"remove the annotation (kubectl annotate node NODE {SNAT_ANNOTATION}-), ")
            + "or change the scenario; KubeSphere's controller writes the node rule of nsnp-network-isolate from "
            "every node's annotation, netiso does not annotate nodes it did not create")


# --------------------------------------------------------------------------- wait and compare


@dataclass(frozen=True)
class PolicyFinding:
    """One generated policy where the controller and netiso's compiler disagree."""

    project: str  # the scenario project
    name: str  # nsnp-...
    problem: str  # differs | missing | unexpected
    expected: dict[str, Any] | None  # the compiler's spec
    observed: dict[str, Any] | None  # the controller's spec

    def json(self) -> dict[str, Any]:
        """The result document's ``controllerDiff`` entry (docs/scenarios.md)."""
        return {"project": self.project, "policy": self.name, "status": self.problem,
                "expected": self.expected, "actual": self.observed}

    def line(self) -> str:
        """One line for the terminal and the exit code."""
        what = {"differs": "differs from netiso's compiler", "missing": "was not written by the controller",
                "unexpected": "was written by the controller, netiso's compiler predicts none"}[self.problem]
        return f"KubeSphere controller: {self.project}/{self.name} {what}"


def canonical(value: Any) -> Any:
    """A NetworkPolicy spec in an order-free form: lists sorted, empty selectors and defaults folded.

    Rules, peers, ports and policy types are unions in Kubernetes' semantics, so their order
    carries no meaning; ``podSelector: {}`` equals ``{matchLabels: {}}``; a port without protocol
    is TCP.

    >>> canonical({"ingress": [{"from": [{"b": 1}, {"a": 1}]}]}) == canonical({"ingress": [{"from": [{"a": 1}, {"b": 1}]}]})
    True
    """
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            item = canonical(item)
            if item in ({}, [], None) and key in ("matchLabels", "matchExpressions", "except", "ports", "from", "to"):
                continue
            out[key] = item
        if "port" in out and "protocol" not in out:
            out["protocol"] = "TCP"
        return out
    if isinstance(value, list):
        return sorted((canonical(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    return value


def diff_policies(expected: Iterable[Mapping[str, Any]], observed: Iterable[Mapping[str, Any]],
                  names: RunNames) -> list[PolicyFinding]:
    """Every ``nsnp-*`` policy whose spec differs between compiler and controller, or exists in one only."""
    def index(items: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
        out = {}
        for p in items:
            meta = p.get("metadata") or {}
            if str(meta.get("name", "")).startswith(tenancy.NSNP_PREFIX):
                out[(meta.get("namespace", ""), meta["name"])] = dict(p.get("spec") or {})
        return out

    want, got = index(expected), index(observed)
    findings = []
    for key in sorted(set(want) | set(got)):
        ns, name = key
        project = names.project_of(ns) or ns
        a, b = want.get(key), got.get(key)
        if a is None:
            findings.append(PolicyFinding(project, name, "unexpected", None, b))
        elif b is None:
            findings.append(PolicyFinding(project, name, "missing", a, None))
        elif canonical(a) != canonical(b):
            findings.append(PolicyFinding(project, name, "differs", a, b))
    return findings


def observed_policies(kube: Kube, namespaces: Iterable[str]) -> list[dict[str, Any]]:
    """The ``nsnp-*`` NetworkPolicies in ``namespaces`` (the controller's output)."""
    out = []
    for ns in namespaces:
        for p in kube.list("networking.k8s.io/v1", "NetworkPolicy", ns):
            if str((p.get("metadata") or {}).get("name", "")).startswith(tenancy.NSNP_PREFIX):
                out.append(p)
    return out


def wait_for_policies(kube: Kube, expected: Sequence[Mapping[str, Any]], namespaces: Iterable[str], *,
                      timeout_s: float, poll_s: float,
                      clock: Callable[[], float] = time.monotonic,
                      sleep: Callable[[float], None] = time.sleep) -> tuple[list[dict[str, Any]], float, bool]:
    """Poll until every expected ``nsnp-*`` name exists and none of them changes between two reads.

    Returns (observed policies, seconds waited, settled). Not settling is not fatal: the diff
    then names what is missing, which is the finding.
    """
    namespaces = list(namespaces)
    wanted = {((p.get("metadata") or {}).get("namespace"), (p.get("metadata") or {}).get("name")) for p in expected}
    start = clock()
    last: list[dict[str, Any]] | None = None
    while True:
        try:
            current = observed_policies(kube, namespaces)
        except KubeApiError:
            current = []
        have = {(p["metadata"].get("namespace"), p["metadata"]["name"]) for p in current}
        stable = last is not None and _specs(last) == _specs(current)
        if wanted <= have and stable:
            return current, clock() - start, True
        if clock() - start >= timeout_s:
            return current, clock() - start, False
        last = current
        sleep(poll_s)


def _specs(policies: Sequence[Mapping[str, Any]]) -> list[str]:
    return sorted(json.dumps([p["metadata"].get("namespace"), p["metadata"]["name"], p.get("spec")], sort_keys=True)
                  for p in policies)


def _get(kube: Kube, api_version: str, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
    try:
        return kube.get(api_version, kind, name, namespace)
    except KubeApiError as exc:
        if exc.status in (403, 404):
            return None
        raise


__all__ = ["SNAT_ANNOTATION", "WORKSPACE_API", "KubeSphereInfo", "PolicyFinding", "allowed_namespaces_note",
           "canonical", "check", "cluster_snat_ips", "controller_objects", "detect", "diff_policies",
           "expected_policies", "observed_policies", "prefixed_scenario", "raw_policies", "refusal", "snat_ips_note",
           "wait_for_policies"]
