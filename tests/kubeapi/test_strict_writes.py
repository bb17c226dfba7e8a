"""The EMULATED API server refuses writes the way kube-apiserver does: validation, Pod Security, apply, RBAC.

Each test pins one real-server behaviour of tests/support/kubeapi (validation.py, admission.py,
apply.py, rbac.py) over real HTTP with the official client, with the status code, reason and
message text a cluster answers (sources named in those modules).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client

from tests.support.kubeapi import FakeCluster


def error(call: Any) -> tuple[int, dict[str, Any], Any]:
    with pytest.raises(client.ApiException) as info:
        call()
    return info.value.status, json.loads(info.value.body), info.value.headers


def raw(api: client.ApiClient, method: str, path: str, body: Any, query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json") -> Any:
    """One request as written (the typed APIs would validate and re-serialize the body first)."""
    resp = api.call_api(*api.param_serialize(method, path, query_params=query or [], body=body,
                                             header_params={"Content-Type": content_type, "Accept": "application/json"},
                                             auth_settings=["BearerToken"]))
    resp.read()
    return api.response_deserialize(resp, {"2XX": "object"}).data


def ns(fake_cluster: FakeCluster, name: str, labels: dict[str, str] | None = None) -> None:
    fake_cluster.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}})


def pod(name: str, **spec: Any) -> dict[str, Any]:
    container = {"name": "c", "image": "registry.k8s.io/pause:3.10", **spec.pop("container", {})}
    return {"metadata": {"name": name}, "spec": {"containers": [container], **spec}}


# --------------------------------------------------------------------------- validation


def test_emulated_api_invalid_pod_is_422_with_the_real_status_shape(fake_cluster: FakeCluster, api) -> None:
    ns(fake_cluster, "a")
    body = pod("p", container={"ports": [{"containerPort": 70000, "protocol": "XTP"}]})
    code, status, _ = error(lambda: client.CoreV1Api(api).create_namespaced_pod("a", body))
    assert code == 422 and status["kind"] == "Status" and status["status"] == "Failure" and status["reason"] == "Invalid"
    assert status["message"] == (
        'Pod "p" is invalid: [spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and '
        '65535, inclusive, spec.containers[0].ports[0].protocol: Unsupported value: "XTP": supported values: "SCTP", '
        '"TCP", "UDP"]')
    assert status["details"]["name"] == "p" and status["details"]["kind"] == "Pod"
    assert [c["reason"] for c in status["details"]["causes"]] == ["FieldValueInvalid", "FieldValueNotSupported"]
    assert status["details"]["causes"][0]["field"] == "spec.containers[0].ports[0].containerPort"


def test_emulated_api_a_missing_required_field_is_field_value_required(fake_cluster: FakeCluster, api) -> None:
    ns(fake_cluster, "a")
    body = {"metadata": {"name": "p"}, "spec": {"containers": [{"image": "x"}]}}
    code, status, _ = error(lambda: raw(api, "POST", "/api/v1/namespaces/a/pods", body))
    assert code == 422
    assert status["details"]["causes"][0] == {"reason": "FieldValueRequired", "message": "Required value",
                                              "field": "spec.containers[0].name"}


def test_emulated_api_a_wrong_json_type_is_400_worded_as_go_decoding(fake_cluster: FakeCluster, api) -> None:
    ns(fake_cluster, "a")
    body = pod("p", container={"ports": [{"containerPort": "8080"}]})
    code, status, _ = error(lambda: raw(api, "POST", "/api/v1/namespaces/a/pods", body))
    assert code == 400 and status["reason"] == "BadRequest"
    assert status["message"] == ('Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal string into Go '
                                 "struct field ContainerPort.spec.containers.ports.containerPort of type int32")


@pytest.mark.parametrize("stamp", ["2026-01-01T00:00:00Z", "2026-01-01T00:00:00.123Z", "2026-01-01 00:00:00.000000Z"])
def test_emulated_api_lease_micro_time_needs_exactly_six_fraction_digits(fake_cluster: FakeCluster, api, stamp) -> None:
    ns(fake_cluster, "a")
    lease = {"metadata": {"name": "l"}, "spec": {"holderIdentity": "h", "renewTime": stamp}}
    path = "/apis/coordination.k8s.io/v1/namespaces/a/leases"
    code, status, _ = error(lambda: raw(api, "POST", path, lease))
    assert code == 400
    assert status["message"].startswith(f'Lease in version "v1" cannot be handled as a Lease: parsing time "{stamp}" as '
                                        '"2006-01-02T15:04:05.000000Z07:00": cannot parse ')
    lease["spec"]["renewTime"] = "2026-01-01T00:00:00.000000Z"
    raw(api, "POST", path, lease)


def test_emulated_api_unknown_fields_warn_by_default_and_fail_when_strict(fake_cluster: FakeCluster, api) -> None:
    ns(fake_cluster, "a")
    cm = {"metadata": {"name": "c"}, "data": {"k": "v"}, "spec": {"x": 1}}
    raw(api, "POST", "/api/v1/namespaces/a/configmaps", cm)
    assert fake_cluster.server.writes.warnings == ['unknown field "spec"']
    assert "spec" not in fake_cluster.get("v1", "ConfigMap", "c", "a")  # dropped, as a real server drops it
    code, status, _ = error(lambda: raw(api, "POST", "/api/v1/namespaces/a/configmaps",
                                        {**cm, "metadata": {"name": "d"}}, [("fieldValidation", "Strict")]))
    assert code == 400 and status["message"] == 'strict decoding error: unknown field "spec"'


@pytest.mark.parametrize(("kind", "name", "ok"), [("Namespace", "a.b", False), ("Namespace", "x" * 64, False),
                                                  ("ConfigMap", "a.b", True), ("ConfigMap", "A", False)])
def test_emulated_api_names_follow_the_rule_of_their_kind(fake_cluster: FakeCluster, api, kind, name, ok) -> None:
    ns(fake_cluster, "a")
    kube = client.CoreV1Api(api)
    body = {"metadata": {"name": name}}
    call = (lambda: kube.create_namespace(body)) if kind == "Namespace" else \
        (lambda: kube.create_namespaced_config_map("a", body))
    if ok:
        call()
        return
    code, status, _ = error(call)
    assert code == 422 and status["details"]["causes"][0]["field"] == "metadata.name"


def test_emulated_api_label_keys_are_qualified_names(fake_cluster: FakeCluster, api) -> None:
    code, status, _ = error(lambda: client.CoreV1Api(api).create_namespace(
        {"metadata": {"name": "n", "labels": {"bad key!": "v"}}}))
    assert code == 422 and status["message"].startswith('Namespace "n" is invalid: metadata.labels: Invalid value: '
                                                        '"bad key!": name part must consist of alphanumeric')


# --------------------------------------------------------------------------- Pod Security


def test_emulated_api_restricted_namespace_refuses_a_host_network_pod_with_upstreams_message(
        fake_cluster: FakeCluster, api) -> None:
    ns(fake_cluster, "r", {"pod-security.kubernetes.io/enforce": "restricted"})
    body = pod("x", hostNetwork=True, container={"securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}})
    code, status, _ = error(lambda: client.CoreV1Api(api).create_namespaced_pod("r", body))
    assert code == 403 and status["reason"] == "Forbidden"
    assert status["message"] == (
        'pods "x" is forbidden: violates PodSecurity "restricted:latest": host namespaces (hostNetwork=true), '
        'allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), '
        'unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]; container "c" '
        'must not include "NET_ADMIN" in securityContext.capabilities.add), runAsNonRoot != true (pod or container '
        '"c" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "c" must set '
        'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")')


def test_emulated_api_baseline_admits_net_raw_but_not_net_admin_host_ports_or_host_path(
        fake_cluster: FakeCluster, api) -> None:
    ns(fake_cluster, "b", {"pod-security.kubernetes.io/enforce": "baseline"})
    kube = client.CoreV1Api(api)
    kube.create_namespaced_pod("b", pod("ok", container={"securityContext": {"capabilities": {"add": ["NET_RAW"]}}}))
    body = pod("no", volumes=[{"name": "h", "hostPath": {"path": "/"}}],
               container={"ports": [{"containerPort": 80, "hostPort": 80}],
                          "securityContext": {"privileged": True, "capabilities": {"add": ["NET_ADMIN"]}}})
    code, status, _ = error(lambda: kube.create_namespaced_pod("b", body))
    assert code == 403 and status["message"] == (
        'pods "no" is forbidden: violates PodSecurity "baseline:latest": hostPort (container "c" uses hostPort 80), '
        'privileged (container "c" must not set securityContext.privileged=true), non-default capabilities '
        '(container "c" must not include "NET_ADMIN" in securityContext.capabilities.add), hostPath volumes '
        '(volume "h")')


def test_emulated_api_the_cluster_default_level_applies_to_unlabelled_namespaces(fake_cluster: FakeCluster, api) -> None:
    ns(fake_cluster, "plain")
    ns(fake_cluster, "labelled", {"pod-security.kubernetes.io/enforce": "privileged"})
    kube = client.CoreV1Api(api)
    kube.create_namespaced_pod("plain", pod("h1", hostNetwork=True))  # kind's default: privileged
    fake_cluster.strict.pod_security_default = "baseline"
    assert error(lambda: kube.create_namespaced_pod("plain", pod("h2", hostNetwork=True)))[0] == 403
    kube.create_namespaced_pod("labelled", pod("h3", hostNetwork=True))  # the label wins over the default


# --------------------------------------------------------------------------- server-side apply


def apply_cm(api, data: dict[str, str], manager: str | None, force: bool = False,
             extra: dict[str, Any] | None = None) -> Any:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "a"}, "data": data,
            **(extra or {})}
    query = [("fieldManager", manager)] if manager else []
    if force:
        query.append(("force", "true"))
    return raw(api, "PATCH", "/api/v1/namespaces/a/configmaps/c", body, query, "application/apply-patch+yaml")


def test_emulated_api_apply_requires_a_field_manager(fake_cluster: FakeCluster, api) -> None:
    ns(fake_cluster, "a")
    code, status, _ = error(lambda: apply_cm(api, {"k": "v"}, None))
    assert code == 422 and status["message"] == ('PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required '
                                                 "value: is required for apply patch")


def test_emulated_api_apply_records_ownership_and_conflicts_unless_forced(fake_cluster: FakeCluster, api) -> None:
    ns(fake_cluster, "a")
    first = apply_cm(api, {"k": "v", "j": "1"}, "alpha")
    assert [(m["manager"], m["operation"], m["fieldsV1"]) for m in first["metadata"]["managedFields"]] == [
        ("alpha", "Apply", {"f:data": {"f:j": {}, "f:k": {}}})]
    apply_cm(api, {"k": "v"}, "beta")  # same value: shared, no conflict
    code, status, _ = error(lambda: apply_cm(api, {"k": "other"}, "beta"))
    assert code == 409 and status["reason"] == "Conflict"
    assert status["message"] == 'Apply failed with 1 conflict: conflict with "alpha": .data.k'
    assert status["details"]["causes"] == [{"reason": "FieldManagerConflict", "message": 'conflict with "alpha"',
                                            "field": ".data.k"}]
    forced = apply_cm(api, {"k": "other"}, "beta", force=True)
    assert forced["data"] == {"k": "other", "j": "1"}
    owners = {m["manager"]: m["fieldsV1"] for m in forced["metadata"]["managedFields"]}
    assert owners == {"alpha": {"f:data": {"f:j": {}}}, "beta": {"f:data": {"f:k": {}}}}


def test_emulated_api_a_field_dropped_from_the_applied_config_is_removed(fake_cluster: FakeCluster, api) -> None:
    ns(fake_cluster, "a")
    apply_cm(api, {"k": "v", "gone": "x"}, "alpha")
    assert apply_cm(api, {"k": "v"}, "alpha")["data"] == {"k": "v"}


def test_emulated_api_apply_merges_containers_and_ports_by_key(fake_cluster: FakeCluster, api) -> None:
    ns(fake_cluster, "a")
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "d", "namespace": "a"},
          "spec": {"selector": {"matchLabels": {"app": "d"}}, "template": {
              "metadata": {"labels": {"app": "d"}},
              "spec": {"containers": [{"name": "one", "image": "i:1", "ports": [{"containerPort": 80}]}]}}}}

    def send(body: dict[str, Any], manager: str) -> dict[str, Any]:
        return raw(api, "PATCH", "/apis/apps/v1/namespaces/a/daemonsets/d", body, [("fieldManager", manager)],
                   "application/apply-patch+yaml")

    send(ds, "alpha")
    other = json.loads(json.dumps(ds))
    other["spec"]["template"]["spec"]["containers"] = [{"name": "two", "image": "i:2"}]
    merged = send(other, "beta")
    assert [c["name"] for c in merged["spec"]["template"]["spec"]["containers"]] == ["one", "two"]
    fields = {m["manager"]: m["fieldsV1"] for m in merged["metadata"]["managedFields"]}
    containers = fields["alpha"]["f:spec"]["f:template"]["f:spec"]["f:containers"]
    assert containers['k:{"name":"one"}']["."] == {} and "f:image" in containers['k:{"name":"one"}']


# --------------------------------------------------------------------------- RBAC


def bind(fake_cluster: FakeCluster, rules: list[dict[str, Any]], namespace: str | None = None) -> None:
    """The caller becomes ServiceAccount netiso-system/netiso holding ``rules`` (in ``namespace`` only, if given)."""
    rbac = "rbac.authorization.k8s.io/v1"
    scope = {"namespace": namespace} if namespace else {}
    docs: list[dict[str, Any]] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "netiso-system"}},
                                  {"apiVersion": rbac, "kind": "Role" if namespace else "ClusterRole",
                                   "metadata": {"name": "r", **scope}, "rules": rules},
                                  {"apiVersion": rbac, "kind": "RoleBinding" if namespace else "ClusterRoleBinding",
                                   "metadata": {"name": "b", **scope},
                                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                               "kind": "Role" if namespace else "ClusterRole", "name": "r"},
                                   "subjects": [{"kind": "ServiceAccount", "name": "netiso",
                                                 "namespace": "netiso-system"}]}]
    fake_cluster.bind_rbac(docs)


def test_emulated_api_a_role_grants_only_in_its_namespace(fake_cluster: FakeCluster, api) -> None:
    ns(fake_cluster, "a")
    ns(fake_cluster, "b")
    bind(fake_cluster, [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"]}], namespace="a")
    kube = client.CoreV1Api(api)
    kube.create_namespaced_config_map("a", {"metadata": {"name": "c"}})
    code, status, _ = error(lambda: kube.create_namespaced_config_map("b", {"metadata": {"name": "c"}}))
    assert code == 403 and status["message"] == (
        'configmaps is forbidden: User "system:serviceaccount:netiso-system:netiso" cannot create resource '
        '"configmaps" in API group "" in the namespace "b"')


def test_emulated_api_resource_names_and_subresources_are_honoured(fake_cluster: FakeCluster, api) -> None:
    ns(fake_cluster, "a")
    fake_cluster.add({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mine", "namespace": "a"}})
    fake_cluster.add({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "other", "namespace": "a"}})
    bind(fake_cluster, [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["mine"], "verbs": ["get"]},
                        {"apiGroups": ["*"], "resources": ["*/exec"], "verbs": ["create"]}])
    kube = client.CoreV1Api(api)
    kube.read_namespaced_config_map("mine", "a")
    assert error(lambda: kube.read_namespaced_config_map("other", "a"))[0] == 403
    assert error(lambda: kube.list_namespaced_config_map("a"))[0] == 403  # a list names no object
    review = client.AuthorizationV1Api(api).create_self_subject_access_review(client.V1SelfSubjectAccessReview(
        spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=client.V1ResourceAttributes(
            verb="create", resource="pods", subresource="exec", namespace="a")))).status
    assert review.allowed is True and review.reason.startswith('RBAC: allowed by ClusterRoleBinding "b" of ClusterRole '
                                                               '"r" to ServiceAccount "netiso/netiso-system"')


def test_emulated_api_a_role_granting_more_than_its_creator_holds_is_refused(fake_cluster: FakeCluster, api) -> None:
    bind(fake_cluster, [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "verbs": ["create"]},
                        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}])
    rbac = client.RbacAuthorizationV1Api(api)
    rbac.create_cluster_role({"metadata": {"name": "ok"}, "rules": [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]})
    code, status, _ = error(lambda: rbac.create_cluster_role({"metadata": {"name": "more"}, "rules": [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]}))
    assert code == 403 and status["message"] == (
        'clusterroles.rbac.authorization.k8s.io "more" is forbidden: user "system:serviceaccount:netiso-system:netiso" '
        '(groups=["system:serviceaccounts" "system:serviceaccounts:netiso-system" "system:authenticated"]) is '
        'attempting to grant RBAC permissions not currently held:\n{APIGroups:[""], Resources:["pods"], Verbs:["list"]}')
