"""What ``--kubesphere controller`` creates and what it expects back, without a Kubernetes client.

A KubeSphere user isolates projects by creating Workspaces (``tenant.kubesphere.io/v1alpha1``,
``spec.networkIsolation``; ks-controller-manager's nsnetworkpolicy controller reads Workspaces,
not WorkspaceTemplates: kubesphere/kubesphere release-3.4,
pkg/controller/network/nsnetworkpolicy/nsnetworkpolicy_controller.go) and NamespaceNetworkPolicies
(``network.kubesphere.io/v1alpha1``); the Namespaces carry ``kubesphere.io/workspace`` /
``kubesphere.io/namespace`` labels and the ``kubesphere.io/network-isolate`` annotation
(manifests.namespace_objects already writes them). This module builds those objects under the
run's names (:func:`controller_objects`) and the ``nsnp-*`` NetworkPolicies netiso's compiler
predicts the controller writes for them (:func:`expected_policies`).

Kept free of the kubernetes client so that the dry-run plan (plan.py) can write the same objects;
kubesphere_controller.py, which talks to the cluster, re-exports these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from netiso.backends.kube.naming import RunNames
from netiso.model import tenancy
from netiso.model.addressing import resolve_cidr, snat_node_ips
from netiso.model.types import KubeSphereSettings, Scenario, Topology, WhitelistRule, WorkspaceSpec

WORKSPACE_API = "tenant.kubesphere.io/v1alpha1"


def prefixed_scenario(scenario: Scenario, names: RunNames) -> Scenario:
    """``scenario`` with projects, workspaces and their references under the run's names.

    The controller derives every selector from namespace and workspace *names*
    (``kubesphere.io/namespace: <ns>``, ``kubesphere.io/workspace: <ws>``), so the policies it
    writes for the run's objects are the compiler's for this renamed scenario.
    """
    project = {p.name: names.namespace(p.name) for p in scenario.projects}
    workspace = {w.name: names.workspace(w.name) for w in scenario.workspaces}

    def rule(r: WhitelistRule) -> WhitelistRule:
        if r.peer_kind == "project":
            return replace(r, peer_value=project.get(r.peer_value, r.peer_value))
        if r.peer_kind == "service":
            ns, _, svc = r.peer_value.partition("/")
            return replace(r, peer_value=f"{project.get(ns, ns)}/{svc}")
        return r

    projects = tuple(replace(p, name=project[p.name], workspace=workspace.get(p.workspace or "", p.workspace),
                             whitelist=tuple(rule(r) for r in p.whitelist)) for p in scenario.projects)
    workspaces = tuple(WorkspaceSpec(workspace[w.name], w.isolation, tuple(project[n] for n in w.projects))
                       for w in scenario.workspaces)
    services = tuple(replace(s, project=project.get(s.project, s.project)) for s in scenario.services)
    ks = scenario.cluster.kubesphere
    settings = KubeSphereSettings(tuple(project.get(n, n) for n in ks.allowed_ingress_namespaces), ks.snat_node_ips)
    cluster = replace(scenario.cluster, kubesphere=settings)
    return replace(scenario, projects=projects, workspaces=workspaces, services=services, cluster=cluster)


def controller_objects(topo: Topology, names: RunNames) -> list[dict[str, Any]]:
    """Workspaces, then every NamespaceNetworkPolicy, as a KubeSphere user creates them (run-labelled)."""
    renamed = prefixed_scenario(topo.scenario, names)
    out: list[dict[str, Any]] = []
    for ws in renamed.workspaces:
        out.append({"apiVersion": WORKSPACE_API, "kind": "Workspace",
                    "metadata": {"name": ws.name, "labels": names.labels},
                    "spec": {"networkIsolation": ws.isolation}})
    for nsnp in tenancy.namespace_network_policies(renamed, lambda text: resolve_cidr(topo, text),
                                                   include_deleted=True):
        nsnp["metadata"]["labels"] = names.labels
        out.append(nsnp)
    return out


def expected_policies(topo: Topology, names: RunNames, *,
                      allowed_ingress_namespaces: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The ``nsnp-*`` NetworkPolicies netiso's compiler predicts for the run's objects.

    ``allowed_ingress_namespaces``: the cluster's real setting (``detect``) when known; the
    scenario's ``cluster.kubesphere`` otherwise. Node SNAT addresses are the scenario's.
    """
    renamed = prefixed_scenario(topo.scenario, names)
    settings = renamed.cluster.kubesphere
    allowed = tuple(settings.allowed_ingress_namespaces if allowed_ingress_namespaces is None
                    else allowed_ingress_namespaces)

    def service_of(project: str, name: str) -> Any:
        return next((s for s in renamed.services if s.project == project and s.name == name), None)

    policies, _ = tenancy.compile_tenancy(renamed, lambda text: resolve_cidr(topo, text), service_of,
                                          dns=topo.dns_service or tenancy.KUBE_DNS,
                                          allowed_ingress_namespaces=allowed, snat_node_ips=snat_node_ips(topo))
    return policies


def raw_policies(topo: Topology, objects: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The scenario's own ``networkPolicies`` among manifests.policy_objects(topo)'s output.

    The generated ``nsnp-*`` policies are the controller's to write in this mode; the raw ones are
    the user's, so netiso still creates them. ``topo.policies`` is the compiler's output followed
    by the raw policies (addressing.resolve), and policy_objects keeps that order.
    """
    raw = len(topo.scenario.networkPolicies)
    return list(objects[len(objects) - raw:]) if raw else []


__all__ = ["WORKSPACE_API", "controller_objects", "expected_policies", "prefixed_scenario", "raw_policies"]
