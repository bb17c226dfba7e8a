"""kind builds the kube-proxy a scenario's ``cluster.kubeProxy`` asks for, and preflight reads it back.

The install step (``addons.KubeProxySettings``, run by ``install.configure_kube_proxy``) is driven
through the in-memory ClusterApi stand-in of test_kind_install_waits.py, starting from the
``config.conf`` kubeadm writes on kind (tests/support/kubeapi/seed.py). No kind cluster is
involved: what a live kube-proxy does with the rewritten file is exercised only by the kind
workflow. What is proved here: the file it writes is the one the kube preflight accepts for that
scenario (the round trip), every other field survives, and the DaemonSet's pods are rolled.
"""

from __future__ import annotations

import pytest
import yaml

from netiso.backends.kind import install
from netiso.backends.kind.addons import KubeProxySettings, Wait, install_plan
from netiso.backends.kube.proxy_settings import differences, effective_settings
from netiso.model.types import KubeProxySpec
from tests.kind.test_kind_install_waits import MemoryApi
from tests.support.kubeapi.seed import kube_proxy_config

SPECS = [KubeProxySpec(masqueradeAll=True), KubeProxySpec(detectLocalMode="None"),
         KubeProxySpec(nodePortAddresses=("198.18.0.11/32",)),
         KubeProxySpec(True, "None", ("198.18.0.0/24", "100.64.0.0/16"))]


def _kind_api() -> MemoryApi:
    api = MemoryApi()
    api.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kube-proxy", "namespace": "kube-system"},
               "data": {"config.conf": kube_proxy_config("iptables"), "kubeconfig.conf": "apiVersion: v1\n"}})
    return api


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: repr(s))
def test_install_step_writes_what_preflight_reads_back_as_the_scenarios_settings(spec: KubeProxySpec) -> None:
    plan = install_plan("vxlan", "metallb", "100.64.0.0/16", "172.18.0.0/16", "c", "h", kube_proxy=spec)
    step = plan.steps[0]
    assert isinstance(step, KubeProxySettings)
    assert plan.steps[1] == Wait("daemonset", "kube-proxy", "kube-system", step.timeout)
    api = _kind_api()
    before = yaml.safe_load(kube_proxy_config("iptables"))
    assert differences(spec, effective_settings(before))  # kind's default kube-proxy is not this one
    install.configure_kube_proxy(api, step)
    cm = api.get("v1", "ConfigMap", "kube-proxy", "kube-system")
    assert cm is not None
    after = yaml.safe_load(cm["data"]["config.conf"])
    assert effective_settings(after) == spec
    assert cm["data"]["kubeconfig.conf"] == "apiVersion: v1\n"  # the other key is kept
    untouched = {k: v for k, v in before.items() if k not in ("iptables", "clusterCIDR", "detectLocalMode",
                                                              "nodePortAddresses")}
    assert {k: after[k] for k in untouched} == untouched
    assert after["iptables"]["minSyncPeriod"] == before["iptables"]["minSyncPeriod"]
    ds = api.get("apps/v1", "DaemonSet", "kube-proxy", "kube-system")
    assert ds is not None
    assert ds["spec"]["template"]["metadata"]["annotations"][install.PROXY_SETTINGS_ANNOTATION] == step.tag


def test_default_settings_add_no_step_and_a_missing_configmap_is_named() -> None:
    plan = install_plan("vxlan", "metallb", "100.64.0.0/16", "172.18.0.0/16", "c", "h")
    assert not any(isinstance(s, KubeProxySettings) for s in plan.steps)
    step = install_plan("vxlan", "metallb", "100.64.0.0/16", "172.18.0.0/16", "c", "h",
                        kube_proxy=SPECS[0]).steps[0]
    assert isinstance(step, KubeProxySettings)
    with pytest.raises(install.AddonNotReady, match="ConfigMap kube-system/kube-proxy does not exist"):
        install.configure_kube_proxy(MemoryApi(), step)
