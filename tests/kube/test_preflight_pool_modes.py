"""Preflight checks BOTH Calico IPPool fields for every encapsulation (a right ipipMode is not enough)."""

from __future__ import annotations

import pytest

from netiso.backends.base import BackendUnavailable
from netiso.backends.kube.preflight import WANTED_MODES, check_pool
from tests.kube.conftest import topo_of

OTHER = {"Always": "Never", "Never": "Always"}


def _pool(ipip: str, vxlan: str, nat_outgoing: bool | None = True) -> dict:
    spec = {"cidr": "192.168.0.0/16", "ipipMode": ipip, "vxlanMode": vxlan}
    if nat_outgoing is not None:  # calico.yaml's pool has it (CALICO_IPV4POOL_NAT_OUTGOING defaults to true)
        spec["natOutgoing"] = nat_outgoing
    return {"metadata": {"name": "default-ipv4-ippool"}, "spec": spec}


@pytest.mark.parametrize("enc", ["direct", "ipip", "vxlan"])
@pytest.mark.parametrize("wrong", ["ipipMode", "vxlanMode"])
def test_preflight_refuses_a_pool_with_one_right_and_one_wrong_mode_naming_both(enc: str, wrong: str) -> None:
    topo = topo_of(f"name: t\ncluster: {{encapsulation: {enc}}}\nprojects: [{{name: a}}]\n")
    ipip, vxlan = WANTED_MODES[enc]
    assert check_pool([_pool(ipip, vxlan)], topo)["metadata"]["name"] == "default-ipv4-ippool"
    bad = (OTHER[ipip], vxlan) if wrong == "ipipMode" else (ipip, OTHER[vxlan])
    with pytest.raises(BackendUnavailable) as err:
        check_pool([_pool(*bad)], topo)
    message = str(err.value)
    assert f"IPPool default-ipv4-ippool has ipipMode {bad[0]}, vxlanMode {bad[1]}" in message
    assert f"wants encapsulation {enc} (ipipMode {ipip}, vxlanMode {vxlan})" in message


@pytest.mark.parametrize(("scenario", "pool", "message"), [
    ("", False, "says cluster.natOutgoing true, but IPPool default-ipv4-ippool has natOutgoing false"),
    ("", None, "says cluster.natOutgoing true, but IPPool default-ipv4-ippool has natOutgoing false"),
    (", natOutgoing: false", True, "says cluster.natOutgoing false, but IPPool default-ipv4-ippool has natOutgoing true"),
])
def test_preflight_refuses_a_pool_whose_nat_outgoing_differs_from_the_scenario(scenario: str, pool: bool | None,
                                                                               message: str) -> None:
    topo = topo_of(f"name: t\ncluster: {{encapsulation: vxlan{scenario}}}\nprojects: [{{name: a}}]\n")
    with pytest.raises(BackendUnavailable) as err:
        check_pool([_pool("Never", "Always", pool)], topo)
    assert message in str(err.value)
    same = topo_of(f"name: t\ncluster: {{encapsulation: vxlan, natOutgoing: {str(bool(pool)).lower()}}}\n"
                   "projects: [{name: a}]\n")
    assert check_pool([_pool("Never", "Always", pool)], same)["spec"]["vxlanMode"] == "Always"
