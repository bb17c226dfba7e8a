"""The official ``kubernetes`` client (unpatched) against the FAKE API server: CRUD, selectors, errors.

Every test here talks real HTTP to ``tests/support/kubeapi`` (an emulation of kube-apiserver, not a
cluster). They prove the emulation answers the client's calls with the shapes and failures a real
apiserver gives, so the kube backend's tests built on it mean something.
"""

from __future__ import annotations

import json
import threading

import pytest
from kubernetes import client, config, watch

from tests.support.kubeapi import FakeCluster


def ns_body(name: str, **labels: str) -> client.V1Namespace:
    return client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels or None))


def pod_body(name: str, labels: dict[str, str] | None = None, node: str | None = None) -> dict:
    spec: dict = {"containers": [{"name": "c", "image": "agnhost", "ports": [{"name": "http", "containerPort": 8080}]}]}
    if node:
        spec["nodeSelector"] = {"kubernetes.io/hostname": node}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}}, "spec": spec}


def test_load_kube_config_selects_the_netiso_test_context_and_reaches_the_fake_server(fake_cluster: FakeCluster) -> None:
    contexts, current = config.list_kube_config_contexts(config_file=str(fake_cluster.kubeconfig))
    assert current["name"] == "netiso-test" and [c["name"] for c in contexts] == ["netiso-test"]
    config.load_kube_config(config_file=str(fake_cluster.kubeconfig))
    assert client.Configuration.get_default_copy().host == fake_cluster.url
    assert client.CoreV1Api().list_namespace().items == []
    assert fake_cluster.requests[-1].path == "/api/v1/namespaces"


def test_wrong_token_is_401_unauthorized(fake_cluster: FakeCluster) -> None:
    cfg = client.Configuration(host=fake_cluster.url, api_key={"authorization": "Bearer nope"})
    with pytest.raises(client.ApiException) as err:
        client.CoreV1Api(client.ApiClient(cfg)).list_namespace()
    assert err.value.status == 401 and json.loads(err.value.body)["reason"] == "Unauthorized"


def test_namespace_create_read_list_by_label_and_server_set_metadata(fake_cluster: FakeCluster, api) -> None:
    v1 = client.CoreV1Api(api)
    made = v1.create_namespace(ns_body("nx-a", **{"netiso.io/run": "r1"}))
    v1.create_namespace(ns_body("other"))
    assert made.metadata.uid and made.metadata.resource_version and made.metadata.creation_timestamp
    assert made.status.phase == "Active"
    assert made.metadata.labels["kubernetes.io/metadata.name"] == "nx-a"
    assert [n.metadata.name for n in v1.list_namespace(label_selector="netiso.io/run=r1").items] == ["nx-a"]
    assert [n.metadata.name for n in v1.list_namespace(label_selector="!netiso.io/run").items] == ["other"]
    assert [n.metadata.name for n in v1.list_namespace(label_selector="netiso.io/run in (r2,r1)").items] == ["nx-a"]
    assert v1.read_namespace("nx-a").metadata.uid == made.metadata.uid


def test_creating_an_existing_name_is_409_already_exists_with_the_apiserver_wording(fake_cluster: FakeCluster, api) -> None:
    v1 = client.CoreV1Api(api)
    v1.create_namespace(ns_body("nx-a"))
    with pytest.raises(client.ApiException) as err:
        v1.create_namespace(ns_body("nx-a"))
    body = json.loads(err.value.body)
    assert err.value.status == 409
    assert body["reason"] == "AlreadyExists" and body["message"] == 'namespaces "nx-a" already exists'
    assert body["details"] == {"name": "nx-a", "kind": "namespaces"}


def test_reading_or_deleting_a_missing_object_is_404_not_found(fake_cluster: FakeCluster, api) -> None:
    v1 = client.CoreV1Api(api)
    v1.create_namespace(ns_body("nx-a"))
    for call in (lambda: v1.read_namespaced_pod("ghost", "nx-a"), lambda: v1.delete_namespaced_config_map("ghost", "nx-a")):
        with pytest.raises(client.ApiException) as err:
            call()
        assert err.value.status == 404 and json.loads(err.value.body)["reason"] == "NotFound"
    with pytest.raises(client.ApiException) as err:
        client.NetworkingV1Api(api).read_namespaced_ingress("ghost", "nx-a")
    assert json.loads(err.value.body)["message"] == 'ingresses.networking.k8s.io "ghost" not found'


def test_creating_in_a_missing_namespace_is_404_and_bad_names_are_422_invalid(fake_cluster: FakeCluster, api) -> None:
    v1 = client.CoreV1Api(api)
    with pytest.raises(client.ApiException) as err:
        v1.create_namespaced_config_map("nowhere", {"metadata": {"name": "x"}})
    assert err.value.status == 404 and json.loads(err.value.body)["message"] == 'namespaces "nowhere" not found'
    with pytest.raises(client.ApiException) as err:
        v1.create_namespace(ns_body("Not_A_Label"))
    body = json.loads(err.value.body)
    assert err.value.status == 422 and body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "metadata.name"
    with pytest.raises(client.ApiException) as err:
        v1.create_namespace(ns_body("x" * 64))
    assert err.value.status == 422


def test_configmap_update_bumps_resource_version_and_a_stale_one_is_409_conflict(fake_cluster: FakeCluster, api) -> None:
    v1 = client.CoreV1Api(api)
    v1.create_namespace(ns_body("nx-a"))
    cm = v1.create_namespaced_config_map("nx-a", {"metadata": {"name": "c"}, "data": {"k": "1"}})
    cm.data["k"] = "2"
    new = v1.replace_namespaced_config_map("c", "nx-a", cm)
    assert int(new.metadata.resource_version) > int(cm.metadata.resource_version) and new.data == {"k": "2"}
    with pytest.raises(client.ApiException) as err:
        v1.replace_namespaced_config_map("c", "nx-a", cm)  # still carries the old resourceVersion
    assert err.value.status == 409 and json.loads(err.value.body)["reason"] == "Conflict"


def test_patches_strategic_merge_json_merge_and_json_patch(fake_cluster: FakeCluster, api) -> None:
    v1 = client.CoreV1Api(api)
    v1.create_namespace(ns_body("nx-a"))
    v1.create_namespaced_config_map("nx-a", {"metadata": {"name": "c", "labels": {"a": "1"}}, "data": {"k": "1", "j": "x"}})
    v1.patch_namespaced_config_map("c", "nx-a", {"metadata": {"labels": {"b": "2"}}, "data": {"j": None}})
    got = v1.read_namespaced_config_map("c", "nx-a")
    assert got.metadata.labels == {"a": "1", "b": "2"} and got.data == {"k": "1"}
    v1.patch_namespaced_config_map("c", "nx-a", [{"op": "replace", "path": "/data/k", "value": "9"}])
    v1.patch_namespaced_config_map("c", "nx-a", {"data": {"m": "3"}}, _content_type="application/merge-patch+json")
    assert v1.read_namespaced_config_map("c", "nx-a").data == {"k": "9", "m": "3"}
    kinds = [r.content_type for r in fake_cluster.requests if r.method == "PATCH"]
    assert kinds == ["application/strategic-merge-patch+json", "application/json-patch+json", "application/merge-patch+json"]


def test_events_are_found_by_field_selector_on_involved_object(fake_cluster: FakeCluster, api) -> None:
    v1 = client.CoreV1Api(api)
    v1.create_namespace(ns_body("nx-a"))
    for i, pod in enumerate(["p1", "p2", "p1"]):
        v1.create_namespaced_event("nx-a", {"metadata": {"name": f"e{i}"}, "involvedObject": {"kind": "Pod", "name": pod},
                                            "reason": "Test", "message": f"m{i}", "type": "Normal"})
    found = v1.list_namespaced_event("nx-a", field_selector="involvedObject.name=p1,involvedObject.kind=Pod")
    assert sorted(e.message for e in found.items) == ["m0", "m2"]
    assert [e.message for e in v1.list_namespaced_event("nx-a", field_selector="involvedObject.name!=p1").items] == ["m1"]


def test_apps_networking_rbac_and_lease_apis_round_trip(fake_cluster: FakeCluster, api) -> None:
    client.CoreV1Api(api).create_namespace(ns_body("nx-a"))
    apps, net, rbac, coord = (client.AppsV1Api(api), client.NetworkingV1Api(api), client.RbacAuthorizationV1Api(api),
                              client.CoordinationV1Api(api))
    apps.create_namespaced_deployment("nx-a", {"metadata": {"name": "d"}, "spec": {
        "selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}},
                                                              "spec": {"containers": [{"name": "c", "image": "i"}]}}}})
    assert apps.read_namespaced_deployment("d", "nx-a").metadata.generation == 1
    net.create_namespaced_network_policy("nx-a", {"metadata": {"name": "deny"}, "spec": {"podSelector": {},
                                                                                         "policyTypes": ["Ingress"]}})
    net.create_ingress_class({"metadata": {"name": "nginx"}, "spec": {"controller": "k8s.io/ingress-nginx"}})
    net.create_namespaced_ingress("nx-a", {"metadata": {"name": "ing"}, "spec": {"ingressClassName": "nginx", "rules": [
        {"http": {"paths": [{"path": "/", "pathType": "Prefix",
                             "backend": {"service": {"name": "s", "port": {"number": 80}}}}]}}]}})
    assert [p.metadata.name for p in net.list_namespaced_network_policy("nx-a").items] == ["deny"]
    assert net.read_namespaced_ingress("ing", "nx-a").spec.ingress_class_name == "nginx"
    assert [c.metadata.name for c in net.list_ingress_class().items] == ["nginx"]
    rbac.create_cluster_role({"metadata": {"name": "r"}, "rules": [{"apiGroups": [""], "resources": ["pods"],
                                                                     "verbs": ["get"]}]})
    rbac.create_namespaced_role_binding("nx-a", {"metadata": {"name": "rb"}, "roleRef": {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "r"},
        "subjects": [{"kind": "User", "name": "u", "apiGroup": "rbac.authorization.k8s.io"}]})
    assert rbac.read_cluster_role("r").rules[0].verbs == ["get"]
    lease = coord.create_namespaced_lease("nx-a", {"metadata": {"name": "netiso-run"}, "spec": {"holderIdentity": "me"}})
    lease.spec.lease_duration_seconds = 30
    coord.replace_namespaced_lease("netiso-run", "nx-a", lease)
    coord.patch_namespaced_lease("netiso-run", "nx-a", {"spec": {"holderIdentity": "you"}})
    got = coord.read_namespaced_lease("netiso-run", "nx-a")
    assert (got.spec.holder_identity, got.spec.lease_duration_seconds) == ("you", 30)


def test_namespace_delete_removes_everything_in_it_and_may_linger_terminating(fake_cluster: FakeCluster, api) -> None:
    v1 = client.CoreV1Api(api)
    fake_cluster.seed(load_balancer="none")
    v1.create_namespace(ns_body("nx-a"))
    v1.create_namespace(ns_body("nx-b"))
    v1.create_namespaced_pod("nx-a", pod_body("p"))
    v1.create_namespaced_config_map("nx-a", {"metadata": {"name": "c"}})
    v1.create_namespaced_config_map("nx-b", {"metadata": {"name": "c"}})
    fake_cluster.set_namespace_linger(1)
    gone = v1.delete_namespace("nx-a")
    # the apiserver answers with the Namespace (not the Status the OpenAPI spec names), so the
    # client hands back the plain dict it could not fit into V1Status
    assert isinstance(gone, dict) and gone["kind"] == "Namespace" and gone["status"]["phase"] == "Terminating"
    assert v1.read_namespace("nx-a").status.phase == "Terminating"  # the one lingering read
    with pytest.raises(client.ApiException) as err:
        v1.create_namespaced_config_map("nx-a", {"metadata": {"name": "late"}})
    assert err.value.status in (403, 404)
    with pytest.raises(client.ApiException):
        v1.read_namespace("nx-a")
    assert v1.list_namespaced_pod("nx-a").items == [] and v1.list_namespaced_config_map("nx-a").items == []
    assert [c.metadata.name for c in v1.list_namespaced_config_map("nx-b").items] == ["c"]


def test_creating_into_a_terminating_namespace_is_403_like_the_namespace_lifecycle_admission(fake_cluster: FakeCluster,
                                                                                            api) -> None:
    v1 = client.CoreV1Api(api)
    v1.create_namespace(ns_body("nx-a"))
    fake_cluster.set_namespace_linger(5)
    v1.delete_namespace("nx-a")
    with pytest.raises(client.ApiException) as err:
        v1.create_namespaced_config_map("nx-a", {"metadata": {"name": "late"}})
    body = json.loads(err.value.body)
    assert err.value.status == 403 and "because it is being terminated" in body["message"]


def test_watch_streams_existing_objects_then_changes_until_timeout(fake_cluster: FakeCluster, api) -> None:
    v1 = client.CoreV1Api(api)
    v1.create_namespace(ns_body("nx-a"))
    v1.create_namespaced_config_map("nx-a", {"metadata": {"name": "first", "labels": {"w": "y"}}})
    seen: list[tuple[str, str]] = []
    started = threading.Event()

    def writer() -> None:
        started.wait()
        v1.create_namespaced_config_map("nx-a", {"metadata": {"name": "other"}})  # filtered out by the selector
        v1.create_namespaced_config_map("nx-a", {"metadata": {"name": "second", "labels": {"w": "y"}}})
        v1.delete_namespaced_config_map("first", "nx-a")

    t = threading.Thread(target=writer)
    t.start()
    w = watch.Watch()
    for event in w.stream(v1.list_namespaced_config_map, "nx-a", label_selector="w=y", timeout_seconds=5):
        seen.append((event["type"], event["object"].metadata.name))
        started.set()
        if len(seen) == 3:
            w.stop()
    t.join()
    assert seen == [("ADDED", "first"), ("ADDED", "second"), ("DELETED", "first")]


def test_requests_are_recorded_in_order_with_parsed_bodies(fake_cluster: FakeCluster, api) -> None:
    v1 = client.CoreV1Api(api)
    v1.create_namespace(ns_body("nx-a"))
    v1.create_namespaced_config_map("nx-a", {"metadata": {"name": "c"}})
    v1.delete_namespace("nx-a")
    writes = [(r.method, r.path, r.verb, r.status) for r in fake_cluster.writes()]
    assert writes == [("POST", "/api/v1/namespaces", "create", 201),
                      ("POST", "/api/v1/namespaces/nx-a/configmaps", "create", 201),
                      ("DELETE", "/api/v1/namespaces/nx-a", "delete", 200)]
    assert fake_cluster.writes()[1].body["metadata"]["name"] == "c"


def test_server_side_apply_creates_then_merges_and_pod_logs_are_text(fake_cluster: FakeCluster, api, tmp_path) -> None:
    from kubernetes.dynamic import DynamicClient

    client.CoreV1Api(api).create_namespace(ns_body("nx-a"))
    cms = DynamicClient(api, cache_file=str(tmp_path / "d.json")).resources.get(api_version="v1", kind="ConfigMap")
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "nx-a"}, "data": {"a": "1"}}
    cms.server_side_apply(body=body, name="c", namespace="nx-a", field_manager="netiso")
    body["data"] = {"a": "1", "b": "2"}
    cms.server_side_apply(body=body, name="c", namespace="nx-a", field_manager="netiso")
    assert fake_cluster.get("v1", "ConfigMap", "c", "nx-a")["data"] == {"a": "1", "b": "2"}
    assert [r.content_type for r in fake_cluster.writes()][-2:] == ["application/apply-patch+yaml"] * 2
    fake_cluster.add({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "nx-a"},
                      "spec": {"containers": [{"name": "c", "image": "i"}]}})
    fake_cluster.server.pod_logs[("nx-a", "p")] = "started netexec\n"
    assert client.CoreV1Api(api).read_namespaced_pod_log("p", "nx-a") == "started netexec\n"
