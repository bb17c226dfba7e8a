"""The kube backend's objects: schema-valid, run-labelled, consistently renamed, pinned and placed.

Every object of every bundled scenario is validated against the Kubernetes OpenAPI schemas with
kubernetes-validate (strict: unknown fields are errors) for a pinned Kubernetes version.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from netiso.backends.kube import images
from netiso.backends.kube.manifests import (
    PHASES,
    KubeTarget,
    all_objects,
    namespace_objects,
    phases,
    policy_objects,
    service_objects,
    workload_objects,
)
from netiso.backends.kube.naming import RUN_LABEL, RunNames
from netiso.model.addressing import load_topologies, resolve
from netiso.model.loader import loads
from netiso.model.selectors import matches
from netiso.model.types import Topology

K8S_VERSION = "1.35.0"  # shipped by kubernetes-validate 1.37.0
SCENARIOS = sorted(str(p) for p in (Path(__file__).parents[2] / "scenarios").glob("*.yaml"))
TOPOLOGIES = load_topologies(SCENARIOS)
BY_NAME = {t.name: t for t in TOPOLOGIES}
NAMES = RunNames(run="nx0a1b2c")
WHEN = "2026-01-01T00:00:00.000000Z"


def target_for(topo: Topology, **kw: Any) -> KubeTarget:
    return KubeTarget(NAMES, {n: f"kind-{n}" for n in topo.nodes}, **kw)


def objects_of(topo: Topology, **kw: Any) -> list[dict[str, Any]]:
    return all_objects(topo, target_for(topo, **kw), holder="netiso@test/1", renew_time=WHEN)


def one(text: str) -> Topology:
    return resolve(loads(text)[0])


def validation_error(obj: dict[str, Any]) -> str | None:
    try:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return str(exc).splitlines()[0]
    return None


# --------------------------------------------------------------------------- schemas


@pytest.mark.parametrize("topo", TOPOLOGIES, ids=lambda t: t.name)
def test_every_object_of_every_bundled_scenario_validates_strictly(topo: Topology) -> None:
    errors = [f"{o['kind']} {o['metadata'].get('namespace', '')}/{o['metadata']['name']}: {err}"
              for o in objects_of(topo, openelb_eip="eip-a", metallb_pool="pool-a")
              if (err := validation_error(o)) is not None]
    assert errors == []


def test_strict_validation_rejects_an_unknown_field_and_a_wrong_type() -> None:
    obj = copy.deepcopy(objects_of(BY_NAME["ingress-loadbalancer-ipip"])[1])  # the Lease
    assert validation_error(obj) is None
    obj["spec"]["leaseDurationSecs"] = 30
    assert "leaseDurationSecs" in (validation_error(obj) or "")
    obj = copy.deepcopy(objects_of(BY_NAME["ingress-loadbalancer-ipip"])[1])
    obj["spec"]["leaseDurationSeconds"] = "300"
    assert validation_error(obj) is not None


def test_bundled_scenarios_exercise_lease_rbac_ingress_class_policies_and_ingresses() -> None:
    kinds = {o["kind"] for t in TOPOLOGIES for o in objects_of(t)}
    assert kinds >= {"Namespace", "Lease", "Pod", "Service", "NetworkPolicy", "Ingress", "IngressClass",
                     "ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}
    assert "NamespaceNetworkPolicy" not in kinds  # applied as the NetworkPolicies KubeSphere generates


# --------------------------------------------------------------------------- labels and names


@pytest.mark.parametrize("topo", TOPOLOGIES, ids=lambda t: t.name)
def test_no_object_lacks_the_run_label(topo: Topology) -> None:
    unlabelled = [f"{o['kind']}/{o['metadata']['name']}" for o in objects_of(topo)
                  if o["metadata"].get("labels", {}).get(RUN_LABEL) != NAMES.run]
    assert unlabelled == []


@pytest.mark.parametrize("topo", TOPOLOGIES, ids=lambda t: t.name)
def test_names_and_label_values_stay_within_kubernetes_limits(topo: Topology) -> None:
    label63 = {"Namespace", "Pod", "Service"}  # DNS-1123 / DNS-1035 labels; the rest are subdomains (253)
    problems = []
    for o in objects_of(topo):
        meta = o["metadata"]
        limit = 63 if o["kind"] in label63 else 253
        if len(meta["name"]) > limit or not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", meta["name"]):
            problems.append(f"{o['kind']} name {meta['name']}")
        if len(meta.get("namespace", "")) > 63:
            problems.append(f"namespace {meta['namespace']}")
        problems += [f"label {k}={v}" for k, v in meta.get("labels", {}).items() if len(v) > 63]
    assert problems == []


def test_every_namespace_is_prefixed_with_the_run() -> None:
    for topo in TOPOLOGIES:
        for o in objects_of(topo):
            ns = o["metadata"]["name"] if o["kind"] == "Namespace" else o["metadata"].get("namespace")
            assert ns is None or ns.startswith(f"{NAMES.run}-"), (topo.name, o["kind"], ns)


def test_too_long_project_name_fails_planning_with_the_project_named() -> None:
    project = "a" * 56
    topo = one(f"name: t\nprojects: [{{name: {project}}}]\n")
    with pytest.raises(ValueError, match=f"project '{project}'"):
        objects_of(topo)


def test_objects_are_deterministic() -> None:
    topo = BY_NAME["ingress-loadbalancer-ipip"]
    assert objects_of(topo) == objects_of(topo)


def test_phases_come_in_apply_order() -> None:
    topo = BY_NAME["ingress-loadbalancer-ipip"]
    staged = phases(topo, target_for(topo), holder="h", renew_time=WHEN)
    assert tuple(name for name, _ in staged) == PHASES
    assert [o["kind"] for o in staged[0][1]] == ["Namespace", "Lease"]
    workloads = [o["kind"] for o in staged[2][1]]
    # ServiceAccounts (and RBAC) exist before the pods that name them.
    assert workloads.index("ServiceAccount") < workloads.index("Pod")


# --------------------------------------------------------------------------- run record


def test_lease_is_the_run_record_in_the_system_namespace() -> None:
    ns, lease = objects_of(BY_NAME["nodeport-cluster-vxlan"])[:2]
    assert ns["metadata"]["name"] == "nx0a1b2c-netiso"
    assert lease["apiVersion"] == "coordination.k8s.io/v1"
    assert lease["metadata"]["name"] == "netiso-run" and lease["metadata"]["namespace"] == "nx0a1b2c-netiso"
    assert lease["spec"]["holderIdentity"] == "netiso@test/1"
    assert lease["spec"]["renewTime"] == WHEN and lease["spec"]["leaseDurationSeconds"] > 0


# --------------------------------------------------------------------------- tenancy rewriting


def namespace_labels(topo: Topology) -> dict[str, dict[str, str]]:
    return {o["metadata"]["name"]: o["metadata"]["labels"] for o in namespace_objects(topo, target_for(topo))}


def test_namespace_tenancy_labels_are_rewritten_consistently() -> None:
    labels = namespace_labels(BY_NAME["raw-netpol-union-with-isolation"])["nx0a1b2c-shop"]
    assert labels["kubernetes.io/metadata.name"] == "nx0a1b2c-shop"
    assert labels["kubesphere.io/namespace"] == "nx0a1b2c-shop"
    assert labels["kubesphere.io/workspace"] == "nx0a1b2c-ws-a"
    blue = namespace_labels(BY_NAME["raw-netpol-selectors"])["nx0a1b2c-blue"]
    assert blue["team"] == "blue"  # extra project labels as written


def test_project_isolation_policy_selects_the_prefixed_project_namespace() -> None:
    topo = one("name: t\nworkspaces: [{name: ws, projects: [{name: demo, isolation: true}]}]\n")
    (policy,) = policy_objects(topo, target_for(topo))
    assert policy["metadata"] == {"name": "nsnp-network-isolate", "namespace": "nx0a1b2c-demo",
                                  "labels": NAMES.labels}
    peer = policy["spec"]["ingress"][0]["from"][0]
    assert peer == {"namespaceSelector": {"matchLabels": {"kubesphere.io/namespace": "nx0a1b2c-demo"}}}


RAW = """
name: raw
projects: [{name: app}, {name: other}]
networkPolicies:
  - apiVersion: networking.k8s.io/v1
    kind: NetworkPolicy
    metadata: {name: from-other, namespace: app}
    spec:
      podSelector: {}
      ingress:
        - from:
            - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: other}}
            - namespaceSelector:
                matchExpressions: [{key: kubernetes.io/metadata.name, operator: In, values: [other, ingress-nginx]}]
            - namespaceSelector: {matchLabels: {team: red}}
"""


def test_raw_policy_naming_another_project_by_metadata_name_is_rewritten() -> None:
    topo = one(RAW)
    (policy,) = policy_objects(topo, target_for(topo))
    assert policy["metadata"]["namespace"] == "nx0a1b2c-app"
    peers = policy["spec"]["ingress"][0]["from"]
    assert peers[0]["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "nx0a1b2c-other"}}
    # A namespace that is not a scenario project is the cluster's own: kept as written.
    assert peers[1]["namespaceSelector"]["matchExpressions"][0]["values"] == ["nx0a1b2c-other", "ingress-nginx"]
    assert peers[2]["namespaceSelector"] == {"matchLabels": {"team": "red"}}
    assert topo.policies[0]["metadata"]["namespace"] == "app"  # the topology itself is untouched


def test_kubesphere_dns_rule_selects_kube_system_by_metadata_name() -> None:
    topo = BY_NAME["egress-whitelist-cidr"]
    isolate = next(p for p in policy_objects(topo, target_for(topo))
                   if p["metadata"] == {"name": "nsnp-network-isolate", "namespace": "nx0a1b2c-shop",
                                        "labels": NAMES.labels})
    dns = [peer for rule in isolate["spec"]["egress"] for peer in rule.get("to", []) if "podSelector" in peer]
    assert dns == [{"podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}]


@pytest.mark.parametrize("topo", TOPOLOGIES, ids=lambda t: t.name)
def test_rewritten_namespace_selectors_select_the_same_projects(topo: Topology) -> None:
    """Each peer's namespaceSelector matches, among the run's namespaces, exactly the projects it did."""
    before = dict(topo.namespaces)
    after = namespace_labels(topo)
    for original, rewritten in zip(topo.policies, policy_objects(topo, target_for(topo)), strict=True):
        for direction, key in (("ingress", "from"), ("egress", "to")):
            pairs = zip(original["spec"].get(direction) or [], rewritten["spec"].get(direction) or [], strict=True)
            for rule_a, rule_b in pairs:
                for peer_a, peer_b in zip(rule_a.get(key) or [], rule_b.get(key) or [], strict=True):
                    if "namespaceSelector" not in peer_a:
                        continue
                    was = {p for p, labels in before.items() if matches(peer_a["namespaceSelector"], labels)}
                    now = {NAMES.project_of(ns) for ns, labels in after.items()
                           if matches(peer_b["namespaceSelector"], labels)}
                    assert now == was, (original["metadata"], peer_a, peer_b)


def test_workspace_isolation_selects_the_prefixed_workspace() -> None:
    topo = BY_NAME["workspace-isolation"]
    selectors = [peer["namespaceSelector"]["matchLabels"] for p in policy_objects(topo, target_for(topo))
                 for rule in p["spec"].get("ingress", []) for peer in rule.get("from", [])
                 if "kubesphere.io/workspace" in peer.get("namespaceSelector", {}).get("matchLabels", {})]
    assert selectors and all(s["kubesphere.io/workspace"].startswith("nx0a1b2c-ws-") for s in selectors)


def test_policies_come_from_the_realized_topology() -> None:
    topo = BY_NAME["egress-whitelist-cidr"]
    realized = copy.deepcopy(topo)
    for policy in realized.policies:
        for rule in policy["spec"].get("egress", []):
            for peer in rule.get("to", []):
                if peer.get("ipBlock", {}).get("cidr") == "198.18.0.100/32":
                    peer["ipBlock"]["cidr"] = "172.18.0.50/32"
    objs = all_objects(topo, target_for(topo), holder="h", renew_time=WHEN, realized=realized)
    cidrs = {peer["ipBlock"]["cidr"] for o in objs if o["kind"] == "NetworkPolicy"
             for rule in o["spec"].get("egress", []) for peer in rule.get("to", []) if "ipBlock" in peer}
    assert "172.18.0.50/32" in cidrs and "198.18.0.100/32" not in cidrs


# --------------------------------------------------------------------------- services


def test_services_leave_cluster_ip_and_node_ports_to_the_cluster() -> None:
    for topo in TOPOLOGIES:
        for svc in service_objects(topo, target_for(topo)):
            assert "clusterIP" not in svc["spec"] and "healthCheckNodePort" not in svc["spec"]
            assert all("nodePort" not in p for p in svc["spec"]["ports"])


def test_external_traffic_policy_is_kept_as_written() -> None:
    topo = BY_NAME["nodeport-local-vxlan"]
    etps = {s["metadata"]["name"]: s["spec"]["externalTrafficPolicy"] for s in service_objects(topo, target_for(topo))}
    assert etps == {svc.name: svc.etp for svc in topo.services.values()}


def lb_annotations(topo: Topology, **kw: Any) -> list[dict[str, str]]:
    return [s["metadata"].get("annotations", {}) for s in service_objects(topo, target_for(topo, **kw))
            if s["spec"]["type"] == "LoadBalancer"]


def test_metallb_services_carry_no_ip_and_a_pool_only_when_named() -> None:
    topo = BY_NAME["lb-metallb-cluster-vxlan"]
    assert lb_annotations(topo) and all(a == {} for a in lb_annotations(topo))
    assert all(a == {"metallb.io/address-pool": "mirror-pool"} for a in lb_annotations(topo, metallb_pool="mirror-pool"))


def test_openelb_services_carry_the_openelb_annotations() -> None:
    topo = BY_NAME["lb-openelb-cluster-vxlan"]
    assert all(a == {"lb.kubesphere.io/v1alpha1": "openelb", "eip.openelb.kubesphere.io/v1alpha2": "eip-kind"}
               for a in lb_annotations(topo, openelb_eip="eip-kind"))
    assert all("eip.openelb.kubesphere.io/v1alpha1" not in a for a in lb_annotations(topo))


# --------------------------------------------------------------------------- pods, images, placement


def containers(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for o in objs if o["kind"] == "Pod" for c in o["spec"]["containers"]]


def test_every_image_is_pinned_by_digest() -> None:
    for topo in TOPOLOGIES:
        for c in containers(objects_of(topo)):
            assert re.fullmatch(r"registry\.k8s\.io/[a-z0-9/_-]+:[\w.-]+@sha256:[0-9a-f]{64}", c["image"]), c["image"]


def test_image_registry_override_rewrites_every_container_image() -> None:
    topo = BY_NAME["ingress-loadbalancer-ipip"]
    imgs = {c["image"] for c in containers(objects_of(topo, registry="mirror.local:5000/k8s"))}
    assert imgs == {images.image("agnhost", "mirror.local:5000/k8s"),
                    images.image("ingress-nginx-controller", "mirror.local:5000/k8s")}
    assert all(i.startswith("mirror.local:5000/k8s/") and "@sha256:" in i for i in imgs)
    assert images.image("agnhost", "mirror.local").split("/", 1)[1] == images.image("agnhost").split("/", 1)[1]


def test_image_registry_that_is_not_a_host_is_refused() -> None:
    with pytest.raises(ValueError, match="--image-registry 'https://mirror'"):
        images.image("agnhost", "https://mirror")


def test_node_map_is_applied_to_node_name() -> None:
    topo = BY_NAME["raw-netpol-selectors"]
    target = KubeTarget(NAMES, {"control-plane": "cp-0", "worker": "w-a", "worker2": "w-b"})
    pods = {o["metadata"]["name"]: o["spec"]["nodeName"] for o in workload_objects(topo, target)}
    assert pods == {p.name: {"control-plane": "cp-0", "worker": "w-a", "worker2": "w-b"}[p.node] for p in topo.pods}


def test_an_unmapped_scenario_node_is_a_clear_error() -> None:
    topo = BY_NAME["raw-netpol-selectors"]
    with pytest.raises(ValueError, match="scenario node 'worker2' is not mapped"):
        workload_objects(topo, KubeTarget(NAMES, {"control-plane": "a", "worker": "b"}))


def test_workload_pods_are_netexec_with_readiness_and_tolerate_the_control_plane() -> None:
    topo = BY_NAME["udp-nodeport-vxlan"]
    pods = [o for o in workload_objects(topo, target_for(topo)) if o["kind"] == "Pod"]
    assert pods
    for pod in pods:
        assert any(t["key"] == "node-role.kubernetes.io/control-plane" for t in pod["spec"]["tolerations"])
        for c in pod["spec"]["containers"]:
            assert c["args"][0] == "netexec" and c["readinessProbe"]["httpGet"]["path"] == "/hostname"
    protocols = {p["protocol"] for c in containers(pods) for p in c["ports"]}
    assert "UDP" in protocols


def test_node_sources_get_host_network_pods_that_bind_no_port() -> None:
    topo = BY_NAME["raw-netpol-ipblock-ports"]  # flows from node:control-plane and node:worker
    node_pods = [o for o in workload_objects(topo, target_for(topo)) if o["spec"].get("hostNetwork")]
    assert {(o["metadata"]["namespace"], o["metadata"]["name"], o["spec"]["nodeName"]) for o in node_pods} == {
        ("nx0a1b2c-netiso", "node-control-plane", "kind-control-plane"),
        ("nx0a1b2c-netiso", "node-worker", "kind-worker")}
    for pod in node_pods:
        (c,) = pod["spec"]["containers"]
        assert c["args"] == ["pause"] and "ports" not in c


def test_ingress_controllers_watch_only_the_run_class_without_webhook() -> None:
    topo = BY_NAME["ingress-loadbalancer-ipip"]
    objs = workload_objects(topo, target_for(topo))
    controllers = [o for o in objs if o["kind"] == "Pod" and o["spec"].get("serviceAccountName")]
    assert {o["metadata"]["name"] for o in controllers} == {"ingress-controller-worker2", "ingress-controller-1-worker2"}
    for pod in controllers:
        assert pod["metadata"]["namespace"] == "nx0a1b2c-kubesphere-controls-system"
        assert pod["spec"]["nodeName"] == "kind-worker2"
        args = pod["spec"]["containers"][0]["args"]
        assert "--ingress-class=netiso-nx0a1b2c" in args
        assert "--controller-class=netiso.io/nx0a1b2c" in args
        assert "--watch-ingress-without-class=false" in args
        assert not any("webhook" in a for a in args)
    (cls,) = [o for o in objs if o["kind"] == "IngressClass"]
    assert cls["metadata"]["name"] == "netiso-nx0a1b2c" and cls["spec"] == {"controller": "netiso.io/nx0a1b2c"}


def test_controller_rbac_is_upstream_v1_15_1_plus_its_election_leases() -> None:
    topo = BY_NAME["ingress-loadbalancer-ipip"]
    objs = {o["kind"]: o for o in workload_objects(topo, target_for(topo))}
    role_rules = objs["Role"]["rules"]
    lease_rule = next(r for r in role_rules if r.get("resourceNames"))
    assert lease_rule == {"apiGroups": ["coordination.k8s.io"],
                          "resourceNames": ["ingress-controller-1-leader", "ingress-controller-leader"],
                          "resources": ["leases"], "verbs": ["get", "update"]}
    cluster = {(tuple(r["apiGroups"]), tuple(r["resources"])) for r in objs["ClusterRole"]["rules"]}
    assert (("networking.k8s.io",), ("ingresses/status",)) in cluster
    assert (("discovery.k8s.io",), ("endpointslices",)) in cluster
    binding = objs["ClusterRoleBinding"]
    assert binding["roleRef"]["name"] == objs["ClusterRole"]["metadata"]["name"] == "netiso-nx0a1b2c-ingress-nginx"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "netiso-nx0a1b2c-ingress-nginx",
                                    "namespace": "nx0a1b2c-kubesphere-controls-system"}]


def test_ingresses_use_the_run_ingress_class_in_prefixed_namespaces() -> None:
    topo = BY_NAME["ingress-nodeport-local-vxlan"]
    ings = [o for o in objects_of(topo) if o["kind"] == "Ingress"]
    assert {(o["metadata"]["namespace"], o["spec"]["ingressClassName"]) for o in ings} == {
        ("nx0a1b2c-shop", "netiso-nx0a1b2c"), ("nx0a1b2c-shop2", "netiso-nx0a1b2c")}
