"""The kube backend for kube-proxy's knobs, against the emulated API server.

* preflight reads kube-proxy's own settings (ConfigMap kube-system/kube-proxy, ``config.conf``,
  as kubeadm/kind write it) and refuses, naming the field and both values, a scenario whose
  ``cluster.kubeProxy`` the cluster does not run - before anything is created;
* Services carry ``internalTrafficPolicy`` and ``loadBalancerSourceRanges`` with the client's
  *real* address (asked through its command before the Service is created), not the lab plan's.

What a real kube-proxy does with those objects is the lab's part (tests/lab, scenarios/) and,
on a cluster, the live workflow's.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from netiso.backends.base import BackendUnavailable
from netiso.backends.kube.client import Kube
from tests.kube.conftest import RUN, topo_of
from tests.kube.test_kube_backend import standin_client
from tests.support.kubeapi import seed_cluster
from tests.support.kubeapi.seed import kube_proxy_config

SETTINGS = """
name: proxy-settings
cluster: {encapsulation: vxlan, loadBalancer: none, clients: [alice], kubeProxy: {masqueradeAll: true}}
projects: [{name: shop}]
workloads: [{name: web, project: shop, nodes: [worker]}]
services: [{name: web, project: shop, type: NodePort}]
flows: [{from: client:alice, to: nodeport:shop/web@worker}]
"""

KNOBS = """
name: service-knobs
cluster: {encapsulation: vxlan, loadBalancer: metallb, clients: [alice]}
projects: [{name: shop}]
workloads: [{name: web, project: shop, nodes: [worker]}]
services:
  - {name: web, project: shop, type: LoadBalancer, internalTrafficPolicy: Local,
     loadBalancerSourceRanges: [client:alice, 203.0.113.128/25]}
flows: [{from: client:alice, to: loadbalancer:shop/web}]
"""


def _proxy_config(fake_cluster, edit) -> None:
    """Replace the seeded kube-proxy ConfigMap by one whose config.conf ``edit`` changed."""
    conf = yaml.safe_load(kube_proxy_config("iptables"))
    edit(conf)
    Kube.connect(str(fake_cluster.kubeconfig)).delete("v1", "ConfigMap", "kube-proxy", "kube-system")
    fake_cluster.add({"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": "kube-proxy", "namespace": "kube-system"},
                      "data": {"config.conf": yaml.safe_dump(conf)}})


def _refusal(backend, topo) -> str:
    with pytest.raises(BackendUnavailable) as info:
        backend.preflight([topo])
    return str(info.value)


def test_emulated_api_preflight_refuses_a_scenario_whose_kube_proxy_settings_the_cluster_does_not_run(
        fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster, load_balancer="none")
    message = _refusal(kube_backend(), topo_of(SETTINGS))
    assert "scenario 'proxy-settings'" in message
    assert "iptables.masqueradeAll: the cluster has false, the scenario says true" in message
    assert "ConfigMap kube-system/kube-proxy" in message
    assert not [r for r in fake_cluster.writes() if "selfsubjectaccessreviews" not in r.path]


def test_emulated_api_preflight_accepts_the_settings_the_cluster_runs_and_names_each_difference(
        fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster, load_balancer="none")
    _proxy_config(fake_cluster, lambda c: c["iptables"].update(masqueradeAll=True))
    kube_backend().preflight([topo_of(SETTINGS)])  # no refusal
    other = topo_of(SETTINGS, **{"kubeProxy: {masqueradeAll: true}":
                                 "kubeProxy: {masqueradeAll: true, detectLocalMode: None, "
                                 "nodePortAddresses: [198.18.0.0/24]}"})
    message = _refusal(kube_backend(), other)
    assert "detectLocalMode: the cluster has ClusterCIDR (clusterCIDR set), the scenario says None" in message
    assert "nodePortAddresses: the cluster has all addresses, the scenario says ['198.18.0.0/24']" in message


def test_emulated_api_preflight_refuses_a_detector_netiso_does_not_predict(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster, load_balancer="none")
    _proxy_config(fake_cluster, lambda c: c.update(detectLocalMode="NodeCIDR"))
    assert "detectLocalMode 'NodeCIDR'" in _refusal(kube_backend(), topo_of(SETTINGS))
    # a scenario keeping the defaults predicts the default detector: refused on this cluster too
    defaults = topo_of(SETTINGS, **{", kubeProxy: {masqueradeAll: true}": ""})
    assert "detectLocalMode 'NodeCIDR'" in _refusal(kube_backend(), defaults)


def test_emulated_api_services_carry_the_knobs_and_the_clients_real_address(fake_cluster, kube_backend,
                                                                            tmp_path: Path) -> None:
    seed_cluster(fake_cluster)
    planned = topo_of(KNOBS)
    assert planned.services["shop/web"].source_ranges == ("198.18.0.100/32", "203.0.113.128/25")  # the lab plan
    backend = kube_backend(clients={"alice": standin_client(tmp_path, client_ip="172.18.0.77")})
    real = backend.realize(planned)
    svc = fake_cluster.get("v1", "Service", "web", f"{RUN}-shop")
    assert svc is not None
    assert svc["spec"]["internalTrafficPolicy"] == "Local"
    assert svc["spec"]["loadBalancerSourceRanges"] == ["172.18.0.77/32", "203.0.113.128/25"]
    assert real.topo.services["shop/web"].source_ranges == ("172.18.0.77/32", "203.0.113.128/25")
    real.down()
