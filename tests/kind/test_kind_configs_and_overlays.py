"""Cluster names follow the config, scenarios group by cluster, and the add-on overlays change only what they claim."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from netiso.backends.kind import addons, configs
from netiso.backends.kind.addons import Apply, Wait
from netiso.model.addressing import load_topologies

SUMS = addons.addon_checksums("metallb")


def test_cluster_name_is_stable_for_the_same_config_and_addons() -> None:
    rendered = configs.render_config("vxlan")
    a = configs.cluster_name("vxlan", "metallb", rendered, SUMS)
    assert a == configs.cluster_name("vxlan", "metallb", configs.render_config("vxlan"), dict(SUMS))
    assert a.startswith("netiso-vxlan-metallb-") and len(a.rsplit("-", 1)[1]) == 8


def test_cluster_name_changes_with_the_config_the_workers_the_mirror_or_an_addon_byte() -> None:
    base = configs.cluster_name("vxlan", "metallb", configs.render_config("vxlan"), SUMS)
    more_workers = configs.cluster_name("vxlan", "metallb", configs.render_config("vxlan", workers=3), SUMS)
    mirrored = configs.cluster_name("vxlan", "metallb", configs.render_config("vxlan", image_registry="mirror.local"), SUMS)
    other_manifest = configs.cluster_name(
        "vxlan", "metallb", configs.render_config("vxlan"), {**SUMS, "calico/v3.32.1/calico.yaml": "0" * 64}
    )
    assert len({base, more_workers, mirrored, other_manifest}) == 4


def test_each_encapsulation_gets_its_own_cluster_even_with_equal_networking() -> None:
    names = {configs.cluster_name(e, "metallb", configs.render_config(e), SUMS) for e in configs.ENCAPSULATIONS}
    assert len(names) == 3


def test_load_balancer_none_rides_with_metallb_and_unknown_values_are_refused() -> None:
    assert configs.group_key_of("direct", "none") == ("direct", "metallb")
    assert configs.parse_group("vxlan/openelb") == ("vxlan", "openelb", "")
    with pytest.raises(ValueError, match="encapsulation 'geneve'"):
        configs.group_key_of("geneve", "metallb")
    for bad in ("vxlan", "vxlan/none", "vxlan/metallb/mine", "vxlan/metallb/own/x"):
        with pytest.raises(ValueError, match="ENCAPSULATION/LOADBALANCER"):
            configs.parse_group(bad)


def test_a_group_with_default_or_own_splits_its_scenarios_by_their_cluster_settings() -> None:
    """``ENC/LB/default`` + ``ENC/LB/own`` = ``ENC/LB``: the kind workflow runs each in a job of its own."""
    from netiso.checking import select_group
    from netiso.model.addressing import load_topologies

    topos = load_topologies([str(Path(__file__).resolve().parents[2] / "scenarios")])
    every = {t.name for t in select_group(topos, "vxlan/metallb")}
    default = {t.name for t in select_group(topos, "vxlan/metallb/default")}
    own = {t.name for t in select_group(topos, "vxlan/metallb/own")}
    assert default and own and not default & own and default | own == every
    assert all(len(configs.group_of(t)) == 3 for t in topos if t.name in own)
    assert all(len(configs.group_of(t)) == 2 for t in topos if t.name in default)


def test_bundled_scenarios_group_into_six_clusters_plus_one_per_kube_proxy_or_calico_setting_in_fixed_order() -> None:
    topos = load_topologies(["scenarios"])
    groups = configs.group_topologies(topos)
    base = [g for g in groups if len(g.key) == 2]
    assert 1 <= len(base) <= 6
    assert [g.key[:2] for g in groups] == sorted((g.key[:2] for g in groups), key=configs.GROUPS.index)
    assert [g.key for g in base] == [k for k in configs.GROUPS if k in {g.key for g in base}]
    assert sum(len(g.topos) for g in groups) == len(topos)
    for g in groups:
        assert all(configs.group_of(t) == g.key for t in g.topos)
    # a scenario with its own kube-proxy or Calico settings gets a cluster of its own, named apart
    tagged = {g.key[2]: g for g in groups if len(g.key) > 2}
    assert set(tagged) == {"masqueradeAll,nodePortAddresses=198.18.0.11/32", "detectLocalMode=None",
                           "defaultEndpointToHostAction=RETURN", "defaultEndpointToHostAction=DROP",
                           "natOutgoing=false"}
    assert tagged["natOutgoing=false"].nat_outgoing is False
    assert tagged["defaultEndpointToHostAction=DROP"].endpoint_to_host == "DROP"
    assert {"nat-outgoing-off", "nat-outgoing-off-no-pod-routes"} <= {t.name for t in tagged["natOutgoing=false"].topos}
    vxlan = next(g for g in base if g.key == ("vxlan", "metallb"))
    assert all(t.scenario.cluster.natOutgoing and t.scenario.cluster.felix.defaultEndpointToHostAction == "ACCEPT"
               for t in vxlan.topos)
    rendered = configs.render_config("vxlan")
    names = {configs.cluster_name("vxlan", "metallb", rendered, configs.group_checksums(g))
             for g in (vxlan, *tagged.values())}
    assert len(names) == 1 + len(tagged)


def test_render_adds_workers_from_the_template_and_mirrors_the_node_image() -> None:
    data = yaml.safe_load(configs.render_config("ipip", workers=3, image_registry="mirror.local:5000/hub"))
    assert [n["role"] for n in data["nodes"]] == ["control-plane", "worker", "worker", "worker"]
    assert {n["image"] for n in data["nodes"]} == {
        "mirror.local:5000/hub/kindest/node:v1.36.1@sha256:3489c7674813ba5d8b1a9977baea8a6e553784dab7b84759d1014dbd78f7ebd5"
    }


def test_node_map_follows_kind_node_names() -> None:
    assert configs.node_map(["control-plane", "worker", "worker2"], "netiso-x", 2) == {
        "control-plane": "netiso-x-control-plane",
        "worker": "netiso-x-worker",
        "worker2": "netiso-x-worker2",
    }


def _node_container(docs: list[dict]) -> dict:
    ds = next(d for d in docs if d["kind"] == "DaemonSet" and d["metadata"]["name"] == "calico-node")
    return next(c for c in ds["spec"]["template"]["spec"]["containers"] if c["name"] == "calico-node")


@pytest.mark.parametrize(
    ("enc", "backend", "ipip", "vxlan", "bird_probes"),
    [
        ("direct", "bird", "Never", "Never", True),
        ("ipip", "bird", "Always", "Never", True),
        ("vxlan", "vxlan", "Never", "Always", False),
    ],
)
def test_calico_overlay_sets_backend_pool_modes_and_bird_probes_per_mode(enc, backend, ipip, vxlan, bird_probes) -> None:
    docs = addons.calico_manifest(enc, "100.64.0.0/16")
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "calico-config")
    assert config["data"]["calico_backend"] == backend
    node = _node_container(docs)
    env = {e["name"]: e.get("value") for e in node["env"]}
    assert (env["CALICO_IPV4POOL_IPIP"], env["CALICO_IPV4POOL_VXLAN"]) == (ipip, vxlan)
    probes = node["livenessProbe"]["exec"]["command"] + node["readinessProbe"]["exec"]["command"]
    assert ("-bird-live" in probes and "-bird-ready" in probes) is bird_probes
    assert "-felix-live" in probes and "-felix-ready" in probes


def test_calico_overlay_changes_nothing_but_the_configmap_and_calico_node() -> None:
    vendored = addons.vendored_documents(addons.CALICO)
    patched = addons.calico_manifest("vxlan", "100.64.0.0/16")
    assert len(vendored) == len(patched)
    changed = [(a["kind"], a["metadata"]["name"]) for a, b in zip(vendored, patched, strict=True) if a != b]
    assert changed == [("ConfigMap", "calico-config"), ("DaemonSet", "calico-node")]


def test_openelb_overlay_turns_layer2_on_and_nothing_else() -> None:
    vendored = addons.vendored_documents(addons.OPENELB)
    patched = addons.openelb_manifest()
    changed = [(a, b) for a, b in zip(vendored, patched, strict=True) if a != b]
    assert [b["metadata"]["name"] for _, b in changed] == ["openelb-speaker"]
    args = changed[0][1]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--enable-layer2=true" in args and "--enable-layer2=false" not in args


@pytest.mark.parametrize(
    ("subnet", "expected"),
    [("172.18.0.0/16", "172.18.255.200-172.18.255.250"), ("172.19.0.0/16", "172.19.255.200-172.19.255.250"),
     ("10.89.0.0/24", "10.89.0.200-10.89.0.250"), ("192.168.32.0/20", "192.168.47.200-192.168.47.250")],
)
def test_lb_range_is_cut_from_the_top_of_the_kind_subnet(subnet: str, expected: str) -> None:
    assert addons.lb_range(subnet) == expected


def test_lb_range_refuses_a_subnet_too_small_or_ipv6() -> None:
    for bad in ("172.18.0.0/25", "fc00:f853:ccd:e793::/64"):
        with pytest.raises(ValueError, match="no room for a VIP range"):
            addons.lb_range(bad)


def test_openelb_eip_is_layer2_on_eth0_default_and_inside_the_kind_subnet() -> None:
    (eip,) = addons.openelb_objects("172.18.0.0/16")
    assert eip["spec"] == {"address": "172.18.255.200-172.18.255.250", "protocol": "layer2", "interface": "eth0"}
    assert eip["metadata"]["annotations"]["eip.openelb.kubesphere.io/is-default-eip"] == "true"


def test_metallb_pool_and_l2advertisement_point_at_each_other() -> None:
    pool, l2 = addons.metallb_objects("172.18.0.0/16")
    assert pool["spec"]["addresses"] == ["172.18.255.200-172.18.255.250"]
    assert l2["spec"]["ipAddressPools"] == [pool["metadata"]["name"]]


@pytest.mark.parametrize("enc", configs.ENCAPSULATIONS)
@pytest.mark.parametrize("lb", configs.LOAD_BALANCERS)
def test_install_plan_waits_for_calico_before_the_load_balancer_and_applies_webhooked_objects_last(enc, lb) -> None:
    plan = addons.install_plan(enc, lb, "100.64.0.0/16", "172.18.0.0/16", "c", "h")
    names = [s.name if isinstance(s, Apply) else f"wait:{s.check}:{s.name}" for s in plan.steps]
    assert names[0].startswith("calico")
    lb_apply = next(i for i, s in enumerate(plan.steps) if isinstance(s, Apply) and s.name.startswith(lb))
    assert "wait:daemonset:calico-node" in names[:lb_apply] and "wait:nodes-ready:nodes" in names[:lb_apply]
    tunnel = [s for s in plan.steps if isinstance(s, Wait) and s.check == "node-annotation"]
    assert [s.name for s in tunnel] == ([addons.TUNNEL_ANNOTATION[enc]] if enc != "direct" else [])
    webhooked = [i for i, s in enumerate(plan.steps) if isinstance(s, Apply) and s.until_admitted]
    speaker_wait = max(i for i, s in enumerate(plan.steps) if isinstance(s, Wait) and s.namespace == f"{lb}-system")
    assert webhooked and min(webhooked) > speaker_wait
    assert plan.steps[-1].documents[0]["metadata"]["name"] == addons.MARKER_NAME
    assert not any(d.get("metadata", {}).get("namespace") == "ingress-nginx" for d in plan.documents())


def test_install_plan_preloads_every_addon_image_and_mirrors_them() -> None:
    plan = addons.install_plan("ipip", "openelb", "100.64.0.0/16", "172.18.0.0/16", image_registry="mirror.local")
    assert any(i.startswith("mirror.local/calico/node:v3.32.1@sha256:") for i in plan.images)  # locked digest, mirrored
    assert "mirror.local/kubesphere/openelb-speaker:v0.6.0" in plan.images
    containers = [
        c["image"]
        for d in plan.documents()
        for c in ((d.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers", [])
    ]
    assert containers and all(i.startswith("mirror.local/") for i in containers)
