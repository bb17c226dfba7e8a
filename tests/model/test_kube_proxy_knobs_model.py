"""kube-proxy's knobs in the scenario: accepted with kubeadm's defaults, bad values refused by field.

``cluster.kubeProxy`` (masqueradeAll, detectLocalMode, nodePortAddresses) and the Service keys
``internalTrafficPolicy`` / ``loadBalancerSourceRanges``: each bad value is one message naming
file, document, field and what is allowed (exit 2, through the real command line).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from netiso.model.addressing import resolve
from netiso.model.loader import loads
from netiso.model.render import service
from netiso.model.types import KubeProxySpec
from tests.model.test_loader_errors import assert_refused

BASE = "name: t\nprojects: [{name: demo}]\nworkloads: [{name: web, project: demo, nodes: [worker]}]\n"

BAD = [
    ("cluster: {kubeProxy: {masqueradAll: true}}\n", "cluster.kubeProxy.masqueradAll",
     ("unknown field", "'masqueradeAll'")),
    ("cluster: {kubeProxy: {detectLocalMode: NodeCIDR}}\n", "cluster.kubeProxy.detectLocalMode",
     ("'NodeCIDR'", "ClusterCIDR, None")),
    ("cluster: {kubeProxy: {nodePortAddresses: [198.18.0.11]}}\n", "cluster.kubeProxy.nodePortAddresses[0]",
     ("not a CIDR", "ADDRESS/PREFIX")),
    ("cluster: {kubeProxy: {nodePortAddresses: []}}\n", "cluster.kubeProxy.nodePortAddresses", ("empty",)),
    ("services: [{name: web, project: demo, internalTrafficPolicy: Node}]\n", "services[0].internalTrafficPolicy",
     ("'Node'", "Cluster, Local")),
    ("services: [{name: web, project: demo, type: NodePort, loadBalancerSourceRanges: [203.0.113.0/24]}]\n",
     "services[0].loadBalancerSourceRanges", ("only a LoadBalancer", "KUBE-FW")),
    ("services: [{name: web, project: demo, type: LoadBalancer, loadBalancerSourceRanges: [pod:demo/web]}]\n",
     "services[0].loadBalancerSourceRanges[0]", ("CIDR, client:NAME or node:NAME",)),
    ("services: [{name: web, project: demo, type: LoadBalancer, loadBalancerSourceRanges: [client:eve]}]\n",
     "services[0].loadBalancerSourceRanges[0]", ("unknown client 'eve'",)),
]


@pytest.mark.parametrize(("extra", "field", "says"), BAD, ids=[b[1] + str(i) for i, b in enumerate(BAD)])
def test_bad_knob_is_one_message_naming_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: str,
                                                  field: str, says: tuple[str, ...]) -> None:
    assert_refused(tmp_path, capsys, BASE + extra, field, says)


def test_defaults_are_kubeadms_and_knobs_reach_the_topology_and_the_rendered_service() -> None:
    plain = resolve(loads(BASE + "services: [{name: web, project: demo}]\n")[0])
    assert plain.scenario.cluster.kubeProxy == KubeProxySpec(False, "ClusterCIDR", ())
    assert plain.services["demo/web"].itp == "Cluster" and plain.services["demo/web"].source_ranges == ()
    assert "internalTrafficPolicy" not in service(plain.services["demo/web"], "metallb")["spec"]
    topo = resolve(loads(BASE + """\
cluster: {clients: [alice], kubeProxy: {masqueradeAll: true, detectLocalMode: None, nodePortAddresses: [198.18.0.0/24]}}
services:
  - {name: web, project: demo, type: LoadBalancer, internalTrafficPolicy: Local,
     loadBalancerSourceRanges: [client:alice, node:worker, 203.0.113.0/25]}
""")[0])
    assert topo.scenario.cluster.kubeProxy == KubeProxySpec(True, "None", ("198.18.0.0/24",))
    svc = topo.services["demo/web"]
    assert svc.itp == "Local"
    assert svc.source_ranges == (f"{topo.clients['alice'].ip}/32", f"{topo.nodes['worker'].ip}/32", "203.0.113.0/25")
    spec = service(svc, "metallb")["spec"]
    assert spec["internalTrafficPolicy"] == "Local"
    assert spec["loadBalancerSourceRanges"] == list(svc.source_ranges)
