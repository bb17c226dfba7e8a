"""The kind/docker boundary, against stand-in ``kind`` and ``docker`` executables (real subprocesses on PATH).

The stand-ins record their argv and answer with the real tools' output shapes (see
``tests/kind/standins/``); what these tests prove is the command lines netiso runs and how it
reads the answers and failures, not the behaviour of a real kind or Docker.
"""

from __future__ import annotations

import os

import pytest

from netiso.backends.base import BackendUnavailable
from netiso.backends.kind.cluster import ClientContainers, KindCluster, kind_subnet
from netiso.backends.kind.configs import render_config
from netiso.backends.kind.leftovers import Owner
from netiso.backends.kind.tools import ToolError, Tools

AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.63.0@sha256:a62f40481e05709988fe44e5035b2e0f553cd52bf0ae4e83614928255b00e8c1"


def cluster(standins, tmp_path, name: str = "netiso-vxlan-metallb-0a1b2c3d") -> KindCluster:
    return KindCluster(name, render_config("vxlan"), tmp_path / "work", Tools(env=standins.env))


def test_standin_kind_create_gets_config_name_kubeconfig_and_no_wait(standins, tmp_path) -> None:
    c = cluster(standins, tmp_path)
    assert c.ensure() is True
    assert standins.calls("kind") == [
        ["get", "clusters"],
        ["create", "cluster", "--name", c.name, "--config", str(c.config_path), "--kubeconfig", str(c.kubeconfig),
         "--wait", "0s"],
    ]
    assert c.config_path.read_text() == render_config("vxlan")
    assert standins.world()["clusters"][c.name]["workers"] == 2
    assert f"kind-{c.name}" in c.kubeconfig.read_text() and c.context == f"kind-{c.name}"


def test_standin_existing_cluster_of_the_same_name_is_reused_not_recreated(standins, tmp_path) -> None:
    cluster(standins, tmp_path).ensure()
    again = cluster(standins, tmp_path / "second")
    assert again.ensure() is False
    assert not again.created
    creates = [a for a in standins.calls("kind") if a[:2] == ["create", "cluster"]]
    assert len(creates) == 1
    assert standins.calls("kind")[-1] == ["export", "kubeconfig", "--name", again.name, "--kubeconfig", str(again.kubeconfig)]


def test_standin_kind_create_failure_quotes_kinds_error(standins, tmp_path) -> None:
    standins.fail("create")
    with pytest.raises(ToolError, match="failed to init node with kubeadm") as info:
        cluster(standins, tmp_path).ensure()
    assert "kind could not create cluster" in str(info.value) and info.value.result.returncode == 1


def test_standin_kind_network_ipv4_subnet_is_read_from_docker_network_inspect(standins, tmp_path) -> None:
    tools = Tools(env=standins.env)
    with pytest.raises(ToolError, match="No such network: kind"):
        kind_subnet(tools)
    cluster(standins, tmp_path).ensure()
    assert kind_subnet(tools) == "172.18.0.0/16"  # the IPv6 ULA subnet listed first is skipped
    assert standins.calls("docker")[-1] == ["network", "inspect", "kind"]


def test_standin_digest_images_are_pulled_by_digest_tagged_and_loaded_by_tag(standins, tmp_path) -> None:
    c = cluster(standins, tmp_path)
    c.ensure()
    digests = c.load_images([AGNHOST, "quay.io/calico/node:v3.32.1"])
    tag = "registry.k8s.io/e2e-test-images/agnhost:2.63.0"
    assert list(digests) == [AGNHOST, "quay.io/calico/node:v3.32.1"]
    assert digests["quay.io/calico/node:v3.32.1"][0].startswith("quay.io/calico/node@sha256:")
    assert [a for a in standins.calls() if a[0] in ("pull", "tag", "load")] == [
        ["pull", AGNHOST],
        ["tag", AGNHOST, tag],
        ["load", "docker-image", tag, "--name", c.name],
        ["pull", "quay.io/calico/node:v3.32.1"],
        ["load", "docker-image", "quay.io/calico/node:v3.32.1", "--name", c.name],
    ]
    assert standins.world()["loaded"][c.name] == [tag, "quay.io/calico/node:v3.32.1"]


def test_standin_content_digest_load_failure_falls_back_to_a_single_platform_archive(standins, tmp_path) -> None:
    c = cluster(standins, tmp_path)
    c.ensure()
    standins.fail("load-digest")
    c.load_images(["quay.io/metallb/speaker:v0.16.1"])
    calls = standins.calls()
    save = next(a for a in calls if a[:2] == ["image", "save"])
    assert save[2] == "--platform" and save[3].startswith("linux/") and save[-1] == "quay.io/metallb/speaker:v0.16.1"
    archive = save[save.index("-o") + 1]
    assert calls[calls.index(save) + 1] == ["load", "image-archive", archive, "--name", c.name]
    assert standins.world()["loaded"][c.name] == [f"archive-of quay.io/metallb/speaker:v0.16.1 for {save[3]}"]


def test_standin_export_logs_writes_into_the_cluster_directory(standins, tmp_path) -> None:
    c = cluster(standins, tmp_path)
    c.ensure()
    target = c.export_logs(tmp_path / "reports" / "kind-logs")
    assert target == tmp_path / "reports" / "kind-logs" / c.name
    assert (target / f"{c.name}-control-plane" / "kubelet.log").exists()
    assert standins.calls("kind")[-1] == ["export", "logs", str(target), "--name", c.name]


def test_standin_export_logs_failure_is_reported_not_raised(standins, tmp_path) -> None:
    lines: list[str] = []
    c = KindCluster("netiso-never-created-00000000", "", tmp_path, Tools(env=standins.env, progress=lines.append))
    assert c.export_logs(tmp_path / "logs") is None
    assert any("could not export logs" in line and "unknown cluster" in line for line in lines)


def test_standin_delete_names_the_cluster(standins, tmp_path) -> None:
    c = cluster(standins, tmp_path)
    c.ensure()
    c.delete()
    assert standins.calls("kind")[-1] == ["delete", "cluster", "--name", c.name]
    assert standins.world()["clusters"] == {}


def test_standin_clients_run_on_the_kind_network_with_netexec_and_get_their_address(standins, tmp_path) -> None:
    cluster(standins, tmp_path).ensure()
    clients = ClientContainers("nx0a1b2c", AGNHOST, Tools(env=standins.env))
    addresses = clients.start(["alice", "bob"])
    assert addresses == {"alice": "172.18.0.10", "bob": "172.18.0.11"}
    runs = [a for a in standins.calls("docker") if a[0] == "run"]
    me = Owner.this_process()
    assert runs[0] == ["run", "-d", "--network", "kind", "--name", "netiso-nx0a1b2c-alice", "--hostname", "alice",
                       "--label", "netiso.io/run=nx0a1b2c", "--label", f"netiso.io/owner-pid={os.getpid()}",
                       "--label", f"netiso.io/owner-start-time={me.start_time}",
                       "--label", f"netiso.io/owner-boot-id={me.boot_id}",
                       "--label", f"netiso.io/owner-pid-ns={me.pid_ns}",
                       "--cap-add", "NET_ADMIN", AGNHOST, "netexec", "--http-port=8080", "--udp-port=8080"]
    assert clients.commands() == {"alice": "docker exec -i netiso-nx0a1b2c-alice", "bob": "docker exec -i netiso-nx0a1b2c-bob"}
    clients.start(["alice"])  # already running: not started twice
    assert len([a for a in standins.calls("docker") if a[0] == "run"]) == 2
    clients.stop()
    assert standins.calls("docker")[-1] == ["rm", "-f", "netiso-nx0a1b2c-alice", "netiso-nx0a1b2c-bob"]
    assert standins.world()["containers"] == {}


def test_standin_client_name_in_use_is_a_clear_error(standins, tmp_path) -> None:
    cluster(standins, tmp_path).ensure()
    ClientContainers("nx0a1b2c", AGNHOST, Tools(env=standins.env)).start(["alice"])
    with pytest.raises(ToolError, match=r"(?s)external client 'alice'.*is already in use"):
        ClientContainers("nx0a1b2c", AGNHOST, Tools(env=standins.env)).start(["alice"])


def test_standin_require_passes_with_both_tools_and_a_daemon(standins) -> None:
    assert Tools(env=standins.env).require() == "28.5.1"
    assert standins.calls() == [["version", "--format", "{{.Server.Version}}"], ["version"]]


@pytest.mark.parametrize(("missing", "words"), [("kind", "kind is not installed"), ("docker", "Docker is not installed")])
def test_missing_tool_is_backend_unavailable_with_the_install_hint(standins_without, missing: str, words: str) -> None:
    env = standins_without(missing).env
    with pytest.raises(BackendUnavailable) as info:
        Tools(env=env).require()
    assert words in str(info.value) and "install" in str(info.value) and "--backend lab" in str(info.value)


def test_standin_docker_daemon_down_has_its_own_message(standins) -> None:
    standins.fail("daemon-down")
    with pytest.raises(BackendUnavailable) as info:
        Tools(env=standins.env).require()
    text = str(info.value)
    assert text.startswith("the Docker daemon is not running") and "Is the docker daemon running?" in text
    assert "not installed" not in text


def test_standin_docker_permission_denied_points_at_the_docker_group(standins) -> None:
    standins.fail("daemon-denied")
    with pytest.raises(BackendUnavailable, match="add the user to the `docker` group"):
        Tools(env=standins.env).require()
