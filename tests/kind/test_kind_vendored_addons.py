"""The vendored add-ons are the upstream files SOURCE.md says they are, and the kind configs are what Calico needs."""

from __future__ import annotations

import hashlib
import re

import pytest
import yaml

from netiso.backends.kind import configs
from netiso.backends.kind.addons import ADDON_DIR, ADDONS, calico_manifest

SOURCES = sorted(ADDON_DIR.glob("*/*/SOURCE.md"))


def test_every_addon_directory_has_a_source_md() -> None:
    dirs = sorted(p for p in ADDON_DIR.glob("*/*") if p.is_dir())
    assert dirs and [d / "SOURCE.md" for d in dirs] == SOURCES
    assert {(a.name, a.version) for a in ADDONS} == {(d.parent.name, d.name) for d in dirs}


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: f"{p.parent.parent.name}-{p.parent.name}")
def test_source_md_checksums_match_the_vendored_files(source) -> None:
    text = source.read_text()
    rows = re.findall(r"^\|\s*`([^`]+)`\s*\|\s*`([0-9a-f]{64})`\s*\|$", text, re.MULTILINE)
    vendored = sorted(p.name for p in source.parent.iterdir() if p.name != "SOURCE.md")
    assert sorted(f for f, _ in rows) == vendored, "every vendored file has exactly one checksum row"
    for file, digest in rows:
        assert hashlib.sha256((source.parent / file).read_bytes()).hexdigest() == digest, file


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: f"{p.parent.parent.name}-{p.parent.name}")
def test_source_md_names_repository_tag_commit_and_url(source) -> None:
    text = source.read_text()
    version = source.parent.name
    assert re.search(r"\| repository \| https://github\.com/[\w.-]+/[\w.-]+ \|", text)
    assert f"| tag | `{version}` |" in text
    assert re.search(r"\| commit \| `[0-9a-f]{40}` \|", text)
    assert re.search(rf"\| url \| https://raw\.githubusercontent\.com/\S+/{re.escape(version)}/\S+ \|", text)


@pytest.mark.parametrize("enc", configs.ENCAPSULATIONS)
def test_kind_config_disables_kindnet_uses_iptables_and_pins_the_node_image(enc: str) -> None:
    data = configs.load_config(enc)
    assert data["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    net = data["networking"]
    assert net["disableDefaultCNI"] is True and net["kubeProxyMode"] == "iptables"
    roles = [n["role"] for n in data["nodes"]]
    assert roles == ["control-plane", "worker", "worker"]
    assert {n["image"] for n in data["nodes"]} == {configs.NODE_IMAGE}
    assert re.fullmatch(r"kindest/node:v[\d.]+@sha256:[0-9a-f]{64}", configs.NODE_IMAGE)
    assert {n["labels"][configs.ENCAPSULATION_LABEL] for n in data["nodes"]} == {enc}


@pytest.mark.parametrize("enc", configs.ENCAPSULATIONS)
def test_kind_pod_subnet_is_the_calico_pool_cidr(enc: str) -> None:
    subnet = configs.pod_subnet(configs.render_config(enc))
    node = next(d for d in calico_manifest(enc, subnet) if d["kind"] == "DaemonSet")
    env = {e["name"]: e.get("value") for e in node["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["CALICO_IPV4POOL_CIDR"] == subnet == yaml.safe_load((configs.KIND_CONFIG_DIR / f"{enc}.yaml").read_text())[
        "networking"
    ]["podSubnet"]


def test_every_addon_image_is_pinned_by_digest_or_listed_as_unpinned_with_the_reason() -> None:
    """Images the upstream manifests name by tag get a locked digest (pulled by digest, loaded by tag);
    the ones no public source gives a digest for are named, with why, so nothing is silently unpinned."""
    from netiso.backends.kind import addons
    from netiso.backends.kind.images import images_in_manifest

    lock = yaml.safe_load(addons.IMAGE_DIGESTS.read_text(encoding="utf-8"))
    unpinned = set(lock.get("unpinned") or {})
    for ref, entry in lock["images"].items():
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", entry["digest"]), ref
        assert entry["source"], f"{ref}: say where the digest was read"
    for addon in (addons.CALICO, addons.METALLB, addons.OPENELB, addons.INGRESS_NGINX):
        for ref in images_in_manifest(addon.path().read_text(encoding="utf-8")):
            assert "@sha256:" in addons.pinned(ref) or ref in unpinned, f"{addon.name}: {ref} is neither pinned nor listed"
    plan = addons.install_plan("vxlan", "metallb", "100.64.0.0/16", "172.18.0.0/16")
    assert all("@sha256:" in i for i in plan.images), plan.images
