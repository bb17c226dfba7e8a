"""cluster-configs/kube/rbac.yaml grants exactly what netiso uses, proven on recorded API traffic.

A whole run (preflight, realize with an ingress controller and a LoadBalancer, serve, probe
through exec, evidence, down, then the janitor collecting an expired run; and one with
``--kubesphere controller`` against the emulated KubeSphere controller) goes against the
emulated API server, which records every request; each request is turned into the RBAC
attributes the apiserver would authorize (verb, API group, resource/subresource) and must be
allowed by the ``netiso`` ClusterRole. The authorizer here is a plain rule match (no
aggregation, no resourceNames), which is all rbac.yaml uses.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from netiso.backends.kube import ingress_nginx
from netiso.backends.kube.access import ACCESS, CALICO_ACCESS, KUBESPHERE_ACCESS, LB_ACCESS
from netiso.oracle.predict import predict_all
from tests.kube.conftest import INGRESS, NODEPORT, topo_of
from tests.kube.replay import batch_answer
from tests.kube.test_cleanup import leave_run
from tests.support.kubeapi import ExecReply, seed_cluster
from tests.support.kubeapi.kubesphere import install

RBAC = Path(__file__).resolve().parents[2] / "cluster-configs" / "kube" / "rbac.yaml"


def roles() -> dict[str, list[dict]]:
    docs = [d for d in yaml.safe_load_all(RBAC.read_text()) if d]
    return {d["metadata"]["name"]: d["rules"] for d in docs if d["kind"] == "ClusterRole"}


def allows(rules: list[dict], verb: str, group: str, resource: str) -> bool:
    return any(verb in r["verbs"] and group in r["apiGroups"] and resource in r["resources"] for r in rules)


def attributes(method: str, path: str, query: dict) -> list[tuple[str, str, str]] | None:
    """RBAC (verb, group, resource[/sub]) of one request, as the apiserver's RequestInfoFactory derives them.

    None for non-resource URLs (/version, discovery)."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 2:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, rest = parts[1], parts[3:]
    else:
        return None
    if not rest:
        return None
    if rest[0] == "namespaces" and len(rest) >= 3:
        rest = rest[2:]  # a namespaced resource
    resource, name, sub = rest[0], rest[1] if len(rest) > 1 else None, rest[2] if len(rest) > 2 else None
    full = f"{resource}/{sub}" if sub else resource
    if sub == "exec":  # websocket exec: GET checked as get (before 1.30) and as create (after)
        return [("get", group, full), ("create", group, full)]
    verb = {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method)
    if method == "GET":
        verb = "get" if name else ("watch" if query.get("watch") in ("true", "1") else "list")
    if method == "DELETE":
        verb = "delete" if name else "deletecollection"
    return [(verb, group, full)]


@pytest.mark.parametrize("calico_api", ["crd.projectcalico.org/v1", "projectcalico.org/v3"])
def test_emulated_api_every_request_of_a_whole_run_is_allowed_by_the_netiso_clusterrole(fake_cluster, kube_backend,
                                                                                        tmp_path: Path,
                                                                                        calico_api: str) -> None:
    seed_cluster(fake_cluster, calico_api=calico_api)
    leave_run(fake_cluster, "nx777777", renewed=datetime.now(UTC) - timedelta(hours=1))
    # from here on the emulator authenticates the caller as ServiceAccount netiso-system/netiso and decides every
    # request (and preflight's reviews, and the escalation check on the ingress controllers' roles) by rbac.yaml
    fake_cluster.bind_rbac([d for d in yaml.safe_load_all(RBAC.read_text()) if d])
    backend = kube_backend(clients={})
    real = backend.realize(topo_of(INGRESS.replace("flows:\n", "flows:\n  - {from: pod:shop/web, to: ingress:shop/web}\n")))
    preds = predict_all(real.topo)
    fake_cluster.exec_handler = lambda call: ExecReply(stdout=batch_answer(call.command[2],
                                                                           lambda p: ("tcp-timeout", None, None)))
    real.serve(preds)
    obs = real.probe(preds)
    for pred, ob in zip(preds, obs, strict=True):
        real.evidence(pred, ob)
    real.elected("gateways", "ingress-controller")
    real.down()
    backend.clean()

    refused = [f"{r.method} {r.path}: {r.status}" for r in fake_cluster.requests if r.status in (401, 403)]
    assert refused == []
    rules = roles()["netiso"]
    seen: set[tuple[str, str, str]] = set()
    for req in fake_cluster.requests:
        for attrs in attributes(req.method, req.path, req.query) or []:
            seen.add(attrs)
            assert allows(rules, *attrs), f"{req.method} {req.path} needs {attrs}, which rbac.yaml does not grant"
    assert ("create", "", "pods/exec") in seen and ("delete", "", "namespaces") in seen
    assert ("list", "metallb.io", "servicel2statuses") in seen
    assert ("list", calico_api.split("/")[0], "blockaffinities") in seen


def test_the_netiso_clusterrole_is_exactly_what_preflight_checks() -> None:
    granted = {(v, g, res) for r in roles()["netiso"] for v in r["verbs"] for g in r["apiGroups"] for res in r["resources"]}
    checked = {(a.verb, a.group, f"{a.resource}/{a.sub}" if a.sub else a.resource)
               for a in [*ACCESS, *(x for xs in [*CALICO_ACCESS.values(), *LB_ACCESS.values()] for x in xs)]}
    checked.add(("create", "authorization.k8s.io", "selfsubjectaccessreviews"))  # the check itself
    assert granted == checked


def test_the_grants_role_covers_every_rule_netiso_gives_its_ingress_controllers() -> None:
    grants = roles()["netiso-ingress-nginx-grants"]
    for rule in [*ingress_nginx.INGRESS_NGINX_ROLE_RULES, *ingress_nginx.INGRESS_NGINX_CLUSTER_ROLE_RULES]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    assert allows(grants, verb, group, resource), (verb, group, resource)


def test_emulated_api_every_request_of_a_kubesphere_controller_run_is_allowed_by_rbac_yaml(fake_cluster, kube_backend,
                                                                                           tmp_path: Path) -> None:
    """``--kubesphere controller``: a whole run (preflight, realize, probe, down, janitor) with rbac.yaml bound and
    KubeSphere's controller emulated; its extra calls are exactly what ``netiso-kubesphere-controller`` grants."""
    seed_cluster(fake_cluster)
    install(fake_cluster)
    leave_run(fake_cluster, "nx777777", renewed=datetime.now(UTC) - timedelta(hours=1))
    fake_cluster.add({"apiVersion": "tenant.kubesphere.io/v1alpha1", "kind": "Workspace",  # a crashed run's
                      "metadata": {"name": "nx777777-ws", "labels": {"netiso.io/run": "nx777777"}},
                      "spec": {"networkIsolation": True}})
    fake_cluster.bind_rbac([d for d in yaml.safe_load_all(RBAC.read_text()) if d])
    backend = kube_backend(clients={}, kubesphere="controller")
    real = backend.realize(topo_of(NODEPORT))
    assert real.findings() == {"controllerDiff": []}
    preds = predict_all(real.topo)
    fake_cluster.exec_handler = lambda call: ExecReply(stdout=batch_answer(call.command[2],
                                                                           lambda p: ("tcp-timeout", None, None)))
    real.serve(preds)
    real.probe(preds)
    real.down()
    backend.clean()

    refused = [f"{r.method} {r.path}: {r.status}" for r in fake_cluster.requests if r.status in (401, 403)]
    assert refused == []
    rules = roles()["netiso"] + roles()["netiso-kubesphere-controller"]
    seen: set[tuple[str, str, str]] = set()
    for req in fake_cluster.requests:
        for attrs in attributes(req.method, req.path, req.query) or []:
            seen.add(attrs)
            assert allows(rules, *attrs), f"{req.method} {req.path} needs {attrs}, which rbac.yaml does not grant"
    assert {("create", "tenant.kubesphere.io", "workspaces"), ("delete", "tenant.kubesphere.io", "workspaces"),
            ("create", "network.kubesphere.io", "namespacenetworkpolicies"),
            ("get", "installer.kubesphere.io", "clusterconfigurations")} <= seen
    assert fake_cluster.list("tenant.kubesphere.io/v1alpha1", "Workspace") == []  # the janitor took the old one too


def test_the_kubesphere_controller_clusterrole_is_exactly_what_controller_mode_checks() -> None:
    granted = {(v, g, res) for r in roles()["netiso-kubesphere-controller"] for v in r["verbs"]
               for g in r["apiGroups"] for res in r["resources"]}
    assert granted == {(a.verb, a.group, a.resource) for a in KUBESPHERE_ACCESS}
