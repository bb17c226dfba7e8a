"""Authorisation on the FAKE API server: ``deny`` answers SelfSubjectAccessReview and real requests alike.

The server is an emulation; these tests prove its 403 bodies carry the RBAC authorizer's wording,
so a backend's "name the missing verb/resource" message is tested against what users will see.
"""

from __future__ import annotations

import json

import pytest
from kubernetes import client

from tests.support.kubeapi import FakeCluster


def review(api: client.ApiClient, verb: str, resource: str, group: str = "", namespace: str | None = None,
           subresource: str | None = None) -> client.V1SubjectAccessReviewStatus:
    attrs = client.V1ResourceAttributes(verb=verb, resource=resource, group=group, namespace=namespace,
                                        subresource=subresource)
    body = client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=attrs))
    return client.AuthorizationV1Api(api).create_self_subject_access_review(body).status


def test_self_subject_access_review_allows_by_default_and_denies_what_was_denied(fake_cluster: FakeCluster, api) -> None:
    assert review(api, "create", "namespaces").allowed is True
    fake_cluster.deny("create", "namespaces")
    fake_cluster.deny("create", "pods/exec")
    assert review(api, "create", "namespaces").allowed is False
    assert review(api, "delete", "namespaces").allowed is True
    assert review(api, "create", "pods", namespace="x", subresource="exec").allowed is False
    assert review(api, "create", "pods", namespace="x").allowed is True


def test_denied_cluster_scoped_create_is_403_worded_like_rbac(fake_cluster: FakeCluster, api) -> None:
    fake_cluster.deny("create", "namespaces")
    with pytest.raises(client.ApiException) as err:
        client.CoreV1Api(api).create_namespace({"metadata": {"name": "nx-a"}})
    body = json.loads(err.value.body)
    assert err.value.status == 403 and body["reason"] == "Forbidden"
    assert body["message"] == ('namespaces is forbidden: User "netiso-tester" cannot create resource "namespaces" '
                               'in API group "" at the cluster scope')


def test_denied_namespaced_group_read_names_the_object_group_and_namespace(fake_cluster: FakeCluster, api) -> None:
    fake_cluster.seed(load_balancer="none")
    fake_cluster.deny("get", "networkpolicies", "networking.k8s.io")
    with pytest.raises(client.ApiException) as err:
        client.NetworkingV1Api(api).read_namespaced_network_policy("p", "default")
    assert json.loads(err.value.body)["message"] == (
        'networkpolicies.networking.k8s.io "p" is forbidden: User "netiso-tester" cannot get resource '
        '"networkpolicies" in API group "networking.k8s.io" in the namespace "default"')
    client.NetworkingV1Api(api).list_namespaced_network_policy("default")  # list was not denied


def test_wildcard_denial_covers_every_verb_of_a_custom_resource(fake_cluster: FakeCluster, api) -> None:
    fake_cluster.seed(load_balancer="metallb")
    fake_cluster.deny("*", "ipaddresspools", "metallb.io")
    assert review(api, "list", "ipaddresspools", "metallb.io").allowed is False
    with pytest.raises(client.ApiException) as err:
        client.CustomObjectsApi(api).list_cluster_custom_object("metallb.io", "v1beta1", "ipaddresspools")
    assert err.value.status == 403
    assert "cannot list resource \"ipaddresspools\" in API group \"metallb.io\" at the cluster scope" in json.loads(
        err.value.body)["message"]
