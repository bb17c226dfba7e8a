"""Discovery, /version and custom resources through the official client, against the FAKE API server.

The server is an emulation (tests/support/kubeapi); these tests prove that the client's discovery
paths (``ApisApi``, ``VersionApi``, ``DynamicClient``) and ``CustomObjectsApi`` work on it, and that
CRD groups appear in discovery the moment their CRD exists, as on a real apiserver.
"""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ResourceNotFoundError

from tests.support.kubeapi import FakeCluster
from tests.support.kubeapi.seed import crd


def test_version_api_reports_a_kubernetes_version(fake_cluster: FakeCluster, api) -> None:
    info = client.VersionApi(api).get_code()
    assert (info.major, info.minor) == ("1", "33") and info.git_version.startswith("v1.33")


def test_core_and_group_discovery_documents(fake_cluster: FakeCluster, api) -> None:
    assert client.CoreApi(api).get_api_versions().versions == ["v1"]
    groups = {g.name: g for g in client.ApisApi(api).get_api_versions().groups}
    assert {"apps", "networking.k8s.io", "coordination.k8s.io", "authorization.k8s.io"} <= set(groups)
    assert "crd.projectcalico.org" not in groups
    assert groups["apps"].preferred_version.group_version == "apps/v1"
    core = client.CoreV1Api(api).get_api_resources()
    pods = next(r for r in core.resources if r.name == "pods")
    assert (pods.kind, pods.namespaced, pods.singular_name) == ("Pod", True, "pod") and "watch" in pods.verbs
    assert any(r.name == "pods/exec" for r in core.resources)
    nodes = next(r for r in core.resources if r.name == "nodes")
    assert nodes.namespaced is False
    netpols = next(r for r in client.NetworkingV1Api(api).get_api_resources().resources if r.name == "networkpolicies")
    assert netpols.kind == "NetworkPolicy"


def test_seeded_crd_groups_are_discoverable(fake_cluster: FakeCluster, api) -> None:
    fake_cluster.seed(encapsulation="ipip", load_balancer="metallb")
    groups = {g.name: g for g in client.ApisApi(api).get_api_versions().groups}
    assert {"crd.projectcalico.org", "metallb.io", "apiextensions.k8s.io"} <= set(groups)
    calico = client.CustomObjectsApi(api).get_api_resources("crd.projectcalico.org", "v1")
    ippools = next(r for r in calico.resources if r.name == "ippools")
    assert (ippools.kind, ippools.namespaced) == ("IPPool", False)
    crds = client.ApiextensionsV1Api(api).list_custom_resource_definition().items
    assert "ippools.crd.projectcalico.org" in {c.metadata.name for c in crds}


def test_unknown_group_version_is_404(fake_cluster: FakeCluster, api) -> None:
    with pytest.raises(client.ApiException) as err:
        client.CustomObjectsApi(api).list_cluster_custom_object("metallb.io", "v1beta1", "ipaddresspools")
    assert err.value.status == 404


def test_custom_objects_cluster_and_namespaced_crud(fake_cluster: FakeCluster, api) -> None:
    fake_cluster.seed(encapsulation="vxlan", load_balancer="metallb")
    co = client.CustomObjectsApi(api)
    pool = co.get_cluster_custom_object("crd.projectcalico.org", "v1", "ippools", "default-ipv4-ippool")
    assert (pool["spec"]["vxlanMode"], pool["spec"]["ipipMode"]) == ("Always", "Never")
    body = {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": "extra"},
            "spec": {"addresses": ["172.18.255.100/30"]}}
    made = co.create_namespaced_custom_object("metallb.io", "v1beta1", "metallb-system", "ipaddresspools", body)
    assert made["metadata"]["namespace"] == "metallb-system" and made["metadata"]["uid"]
    co.patch_namespaced_custom_object("metallb.io", "v1beta1", "metallb-system", "ipaddresspools", "extra",
                                      {"spec": {"autoAssign": False}})
    got = co.get_namespaced_custom_object("metallb.io", "v1beta1", "metallb-system", "ipaddresspools", "extra")
    assert got["spec"] == {"addresses": ["172.18.255.100/30"], "autoAssign": False}
    listed = co.list_namespaced_custom_object("metallb.io", "v1beta1", "metallb-system", "ipaddresspools")
    assert {i["metadata"]["name"] for i in listed["items"]} == {"kind-pool", "extra"}
    assert all(i["kind"] == "IPAddressPool" for i in listed["items"])  # CR lists keep kind, as the real server
    co.delete_namespaced_custom_object("metallb.io", "v1beta1", "metallb-system", "ipaddresspools", "extra")
    with pytest.raises(client.ApiException) as err:
        co.get_namespaced_custom_object("metallb.io", "v1beta1", "metallb-system", "ipaddresspools", "extra")
    assert json.loads(err.value.body)["message"] == 'ipaddresspools.metallb.io "extra" not found'


def test_strategic_merge_patch_on_a_custom_resource_is_415_as_on_a_real_server(fake_cluster: FakeCluster, api) -> None:
    fake_cluster.seed(load_balancer="metallb")
    co = client.CustomObjectsApi(api)
    with pytest.raises(client.ApiException) as err:
        co.patch_namespaced_custom_object("metallb.io", "v1beta1", "metallb-system", "ipaddresspools", "kind-pool",
                                          {"spec": {"autoAssign": False}},
                                          _content_type="application/strategic-merge-patch+json")
    assert err.value.status == 415 and json.loads(err.value.body)["reason"] == "UnsupportedMediaType"


def test_dynamic_client_discovers_creates_reads_and_deletes(fake_cluster: FakeCluster, api, tmp_path) -> None:
    fake_cluster.seed(load_balancer="openelb")
    dyn = DynamicClient(api, cache_file=str(tmp_path / "discovery.json"))
    eips = dyn.resources.get(api_version="network.kubesphere.io/v1alpha2", kind="Eip")
    default = eips.get(name="eip-pool")
    assert default.metadata.annotations["eip.openelb.kubesphere.io/is-default-eip"] == "true"
    assert default.spec.protocol == "layer2"
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    cms.create(body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "b"}},
               namespace="default")
    assert cms.get(name="c", namespace="default").data.a == "b"
    cms.delete(name="c", namespace="default")
    assert [i.metadata.name for i in cms.get(namespace="default").items] == []
    with pytest.raises(ResourceNotFoundError):
        dyn.resources.get(api_version="example.com/v1", kind="Widget")


def test_a_crd_created_through_the_api_is_served_only_once_established(fake_cluster: FakeCluster, api, tmp_path) -> None:
    """As apiextensions-apiserver: NamesAccepted at once, Established a little later (here: after two
    reads of it); until then its kind answers 404 and discovery does not list it."""
    ext = client.ApiextensionsV1Api(api)
    created = ext.create_custom_resource_definition(crd("example.com", "Widget", "widgets", ["v1"], namespaced=True))
    conditions = {c.type: c.status for c in created.status.conditions}
    assert conditions == {"NamesAccepted": "True", "Established": "False"}
    client.CoreV1Api(api).create_namespace({"metadata": {"name": "w"}})
    co = client.CustomObjectsApi(api)
    body = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "x"}, "spec": {"n": 1}}
    with pytest.raises(client.ApiException) as err:
        co.create_namespaced_custom_object("example.com", "v1", "w", "widgets", body)
    assert err.value.status == 404
    assert json.loads(err.value.body)["message"] == "the server could not find the requested resource"
    assert "example.com" not in [g.name for g in client.ApisApi(api).get_api_versions().groups]  # nor discovered
    reads = 0
    while {c.type: c.status for c in ext.read_custom_resource_definition("widgets.example.com").status.conditions}[
            "Established"] != "True":
        reads += 1
        assert reads < 10
    assert reads >= 1  # not at once: a client that does not wait for Established gets the 404 above
    assert "example.com" in [g.name for g in client.ApisApi(api).get_api_versions().groups]
    dyn = DynamicClient(api, cache_file=str(tmp_path / "discovery.json"))
    widgets = dyn.resources.get(api_version="example.com/v1", kind="Widget")
    widgets.create(body=body, namespace="w")
    assert fake_cluster.get("example.com/v1", "Widget", "x", "w")["spec"] == {"n": 1}


def test_seeded_crds_are_the_vendored_ones_and_custom_resources_are_schema_checked(fake_cluster: FakeCluster, api) -> None:
    fake_cluster.seed(load_balancer="metallb")
    ippools = client.ApiextensionsV1Api(api).read_custom_resource_definition("ippools.crd.projectcalico.org")
    schema = ippools.spec.versions[0].var_schema.open_apiv3_schema
    assert "ipipMode" in schema.properties["spec"].properties  # the real schema, not a permissive stand-in
    co = client.CustomObjectsApi(api)
    bad = {"apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool", "metadata": {"name": "bad"},
           "spec": {"cidr": "10.0.0.0/16", "ipipMode": "Sometimes"}}
    with pytest.raises(client.ApiException) as err:
        co.create_cluster_custom_object("crd.projectcalico.org", "v1", "ippools", bad)
    body = json.loads(err.value.body)
    assert err.value.status == 422 and body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "spec.ipipMode"
    assert body["message"].startswith('IPPool.crd.projectcalico.org "bad" is invalid: spec.ipipMode: Unsupported value: '
                                      '"Sometimes"')
    bad["spec"]["ipipMode"] = "Never"
    co.create_cluster_custom_object("crd.projectcalico.org", "v1", "ippools", bad)


def test_preferred_version_follows_kube_version_priority(fake_cluster: FakeCluster, api) -> None:
    fake_cluster.seed(load_balancer="metallb")
    groups = {g.name: g for g in client.ApisApi(api).get_api_versions().groups}
    assert groups["metallb.io"].preferred_version.version == "v1beta2"
    assert [v.version for v in groups["metallb.io"].versions] == ["v1beta2", "v1beta1"]
