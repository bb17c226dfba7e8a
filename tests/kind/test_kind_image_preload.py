"""What ``kind load`` is run for, said truthfully: the add-ons' tag-named images, never digest-named pod images.

Why: containerd keeps no repo digest for an image ``kind load`` imported, so a pod naming
``REPO:TAG@DIGEST`` is pulled from the registry whatever was loaded (kubernetes-sigs/kind #2734);
netiso's own pods name their images by digest (the pin stays real: containerd verifies it), so
loading them would be work that helps nothing. Against the stand-in ``kind``/``docker``
executables (tests/kind/standins), which record every command; a live node is not involved.
"""

from __future__ import annotations

from pathlib import Path

from netiso.backends.base import BackendOptions
from netiso.backends.kind.backend import KindBackend, default_images
from netiso.backends.kind.tools import Tools
from netiso.backends.kube.images import all_images
from tests.kind.test_kind_backend_lifecycle import StandInKube, topo


def test_standin_kind_loads_the_addon_images_and_not_the_digest_named_pod_images(standins, tmp_path: Path) -> None:
    kb = KindBackend(BackendOptions(), kube_factory=lambda o: StandInKube(o, False),
                     installer=lambda *a: None, tools=Tools(env=standins.env), images=default_images,
                     workdir=tmp_path / "work", logs_dir=tmp_path / "reports" / "kind-logs", run_id="nx0a1b2c")
    a = topo("vxlan", "metallb")
    kb.preflight([a])
    kb.realize(a).down()
    loaded = [x[2] for x in standins.calls("kind") if x[:2] == ["load", "docker-image"]]
    assert "quay.io/calico/node:v3.32.1" in loaded  # named by tag in the Calico manifest: the loaded copy is used
    for ref in all_images():  # named by digest in netiso's pods: each node pulls (and verifies) it
        assert "@sha256:" in ref
        assert not [x for x in standins.calls("docker") if x[:1] == ["pull"] and x[1] == ref], ref
    pulled_by_digest = [x[1] for x in standins.calls("docker") if x[:1] == ["pull"]]
    assert pulled_by_digest and all("@sha256:" in r or "openelb" in r for r in pulled_by_digest)
    kb.close()


def test_the_kind_plan_says_which_images_nodes_pull_themselves(tmp_path: Path) -> None:
    from netiso.backends.kind.plan import write_kind_plans

    write_kind_plans([topo("vxlan", "metallb")], tmp_path, BackendOptions(), run_id="nx000001")
    text = (tmp_path / "kind-vxlan-metallb" / "plan.txt").read_text()
    agnhost = next(r for r in all_images() if "agnhost" in r)
    assert f"docker pull {agnhost}" not in text
    assert f"netiso's own pods name {agnhost}" in text and "kind #2734" in text
