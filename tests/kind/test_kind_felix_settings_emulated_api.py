"""kind's calico-node carries the Felix action a scenario asks for, and the kube preflight reads it back.

``addons.calico_manifest`` writes ``FELIX_DEFAULTENDPOINTTOHOSTACTION`` into the vendored calico.yaml's
calico-node DaemonSet; here that DaemonSet is stored in the EMULATED API server in place of the seeded
one and read by ``felix_settings.env_setting``, as the kube preflight does after kind's install. No kind
cluster and no Felix are involved: what a live Felix does with the variable is the lab's part.
"""

from __future__ import annotations

import pytest

from netiso.backends.kind.addons import calico_manifest
from netiso.backends.kube.client import Kube
from netiso.backends.kube.felix_settings import env_setting
from netiso.model.types import ENDPOINT_TO_HOST_ACTIONS
from tests.support.kubeapi import seed_cluster


@pytest.mark.parametrize("action", ENDPOINT_TO_HOST_ACTIONS)
def test_emulated_api_kinds_calico_node_environment_reads_back_as_the_scenarios_action(fake_cluster,
                                                                                        action: str) -> None:
    seed_cluster(fake_cluster, load_balancer="none")
    kube = Kube.connect(str(fake_cluster.kubeconfig))
    kube.delete("apps/v1", "DaemonSet", "calico-node", "kube-system")
    ds = next(d for d in calico_manifest("vxlan", "100.64.0.0/16", action)
              if d.get("kind") == "DaemonSet" and d["metadata"]["name"] == "calico-node")
    fake_cluster.add(ds)
    setting = env_setting(kube)
    assert setting is not None and setting.value == action
    assert "DaemonSet kube-system/calico-node container calico-node, env FELIX_DEFAULTENDPOINTTOHOSTACTION" in setting.source
