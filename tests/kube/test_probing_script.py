"""The kube backend's batch script, run for real under dash, busybox sh and bash.

Servers are the netexec stand-in (``tests/support/netexec_standin.py``: Python ``http.server``
speaking HTTP/1.1 keep-alive, and a UDP responder) on 127.0.0.1; the tools are the real curl and
netcat-openbsd installed here. "Dropped" needs a namespace whose loopback DROPs packets: those
tests are ``lab`` tests (root).
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

from netiso.backends.kube.probing import ClusterProbe, batch_script, parse_batch_output
from tests.support.netexec_standin import closed_port, running_standin
from tests.support.probe_shells import run_in_dropping_netns, run_script, shell_params

SHELLS = shell_params()


def probe_all(shell: tuple[str, ...], probes: list[ClusterProbe], env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    stdout, stderr, _ = run_script(shell, batch_script(probes), env=env)
    return parse_batch_output(stdout, stderr, probes)


@pytest.mark.parametrize("shell", SHELLS)
def test_tcp_probe_reads_source_and_pod_from_one_keepalive_connection(shell: tuple[str, ...]) -> None:
    with running_standin("pod-a") as server:
        [result] = probe_all(shell, [ClusterProbe("f1", "127.0.0.1", server.http_port)])
        assert result.verdict == "allowed", result.detail
        assert result.hostname == "pod-a"
        assert len(server.connections) == 1  # both URLs went over one connection
        assert (result.client_ip, result.client_port) == server.connections[0]
        assert result.detail == ""


@pytest.mark.parametrize("shell", SHELLS)
def test_tcp_probe_sends_the_host_header_and_reads_forwarded_for(shell: tuple[str, ...]) -> None:
    """Stand-in for an ingress: it answers X-Forwarded-For as if a proxy had added it."""
    with running_standin("pod-a", forwarded_for="203.0.113.7") as server:
        probe = ClusterProbe("f1", "127.0.0.1", server.http_port, host="web.example", want_forwarded_for=True)
        [result] = probe_all(shell, [probe])
        assert result.verdict == "allowed", result.detail
        assert result.forwarded_for == "203.0.113.7"
        assert set(server.hosts) == {"web.example"} and len(server.hosts) == 3


@pytest.mark.parametrize("shell", SHELLS)
def test_a_second_connection_is_flagged_as_identity_from_another_connection(shell: tuple[str, ...]) -> None:
    with running_standin("pod-b", close_each=True) as server:
        [result] = probe_all(shell, [ClusterProbe("f1", "127.0.0.1", server.http_port)])
        assert len(server.connections) == 2
        assert result.verdict == "allowed"
        assert "identity from another connection" in result.detail


@pytest.mark.parametrize("shell", SHELLS)
def test_closed_ports_are_refused_for_tcp_and_udp(shell: tuple[str, ...]) -> None:
    probes = [
        ClusterProbe("tcp", "127.0.0.1", closed_port()),
        ClusterProbe("udp", "127.0.0.1", closed_port(socket.SOCK_DGRAM), "UDP", timeout=1),
    ]
    results = probe_all(shell, probes)
    assert [r.verdict for r in results] == ["refused", "refused"], [r.detail for r in results]
    assert "Connection refused" in results[0].detail
    assert "ICMP" in results[1].detail


@pytest.mark.parametrize("shell", SHELLS)
def test_udp_probe_gets_clientip_and_hostname_on_one_socket(shell: tuple[str, ...]) -> None:
    with running_standin("pod-u") as server:
        [result] = probe_all(shell, [ClusterProbe("u", "127.0.0.1", server.udp_port, "UDP", timeout=1)])
        assert result.verdict == "allowed", result.detail
        assert result.client_ip == "127.0.0.1" and result.client_port is not None
        assert result.hostname == "pod-u"


@pytest.mark.parametrize(("status", "verdict"), [(502, "refused"), (503, "refused"), (504, "dropped"), (404, "error")])
def test_gateway_statuses_follow_the_lab_convention(status: int, verdict: str) -> None:
    with running_standin("gw", force_status=status) as server:
        [result] = probe_all(("sh",), [ClusterProbe("g", "127.0.0.1", server.http_port, host="web.example")])
        assert result.verdict == verdict
        assert str(status) in result.detail


def test_answers_that_disagree_within_one_probe_are_an_error() -> None:
    """nginx may send one client's requests to different backends; one failing is not a pass."""
    with running_standin("pod-c", later_status=504) as server:
        [result] = probe_all(("sh",), [ClusterProbe("m", "127.0.0.1", server.http_port)])
        assert result.verdict == "error"
        assert "200,504" in result.detail


@pytest.mark.parametrize("shell", SHELLS)
def test_more_probes_than_the_concurrency_cap_all_report(shell: tuple[str, ...]) -> None:
    with running_standin("pod-a") as server:
        probes = [ClusterProbe(f"flow {i} 'quoted' $(x)", "127.0.0.1", server.http_port) for i in range(12)]
        script = batch_script(probes, max_concurrent=5)
        assert script.count("\nwait\n") == 3
        stdout, stderr, _ = run_script(shell, script)
        results = parse_batch_output(stdout, stderr, probes)
        assert [r.id for r in results] == [p.id for p in probes]
        assert {r.verdict for r in results} == {"allowed"}
        assert len(server.connections) == 12


def _path_with(tmp_path: Path, tools: list[str]) -> dict[str, str]:
    """A PATH holding only the named tools (symlinks to the real ones)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in tools:
        real = shutil.which(tool)
        assert real, tool
        (bin_dir / tool).symlink_to(real)
    return {**os.environ, "PATH": str(bin_dir)}


DASH = (shutil.which("dash") or "/bin/sh",)  # absolute: the restricted PATH below has no shell
BASE_TOOLS = ["mktemp", "rm", "cat", "tr", "od", "grep", "tail", "head", "sleep", "mkdir", "date"]


def test_a_source_without_curl_reports_an_error_not_a_verdict(tmp_path: Path) -> None:
    env = _path_with(tmp_path, [*BASE_TOOLS, "base64", "nc"])
    with running_standin("pod-a") as server:
        [result] = probe_all(DASH, [ClusterProbe("t", "127.0.0.1", server.http_port)], env=env)
    assert result.verdict == "error"
    assert "curl not found" in result.detail


@pytest.mark.skipif(not shutil.which("busybox"), reason="busybox is not installed")
def test_a_source_whose_nc_is_not_netcat_openbsd_reports_an_error(tmp_path: Path) -> None:
    env = _path_with(tmp_path, [*BASE_TOOLS, "base64"])
    (tmp_path / "bin" / "nc").symlink_to(shutil.which("busybox") or "")
    with running_standin("pod-a") as server:
        [result] = probe_all(DASH, [ClusterProbe("u", "127.0.0.1", server.udp_port, "UDP", timeout=1)], env=env)
    assert result.verdict == "error"
    assert "not netcat-openbsd" in result.detail


def test_without_base64_the_script_falls_back_to_hex(tmp_path: Path) -> None:
    env = _path_with(tmp_path, [*BASE_TOOLS, "curl", "nc"])
    with running_standin("pod-a") as server:
        probes = [ClusterProbe("t", "127.0.0.1", server.http_port), ClusterProbe("u", "127.0.0.1", server.udp_port, "UDP")]
        stdout, stderr, _ = run_script(DASH, batch_script(probes), env=env)
    assert " o1=h" in stdout and " o1=b" not in stdout
    results = parse_batch_output(stdout, stderr, probes)
    assert [(r.verdict, r.hostname) for r in results] == [("allowed", "pod-a"), ("allowed", "pod-a")]


def test_a_source_without_a_writable_temp_dir_reports_why(tmp_path: Path) -> None:
    env = {**_path_with(tmp_path, [*BASE_TOOLS, "curl", "base64", "nc"]), "TMPDIR": "/proc/netiso-no-such-dir"}
    (tmp_path / "bin" / "mktemp").unlink()  # and /tmp/netiso-probe.$$ is unwritable below /proc
    script = batch_script([ClusterProbe("t", "127.0.0.1", 9)]).replace("/tmp/netiso-probe.$$", "/proc/netiso-probe.$$")
    stdout, stderr, _ = run_script(DASH, script, env=env)
    [result] = parse_batch_output(stdout, stderr, [ClusterProbe("t", "127.0.0.1", 9)])
    assert result.verdict == "error"
    assert result.detail == "no result line (the batch script did not finish): no temp dir"


def test_addresses_are_validated_before_they_reach_the_script() -> None:
    with pytest.raises(ValueError):
        batch_script([ClusterProbe("x", "127.0.0.1; reboot", 80)])
    with pytest.raises(ValueError):
        batch_script([ClusterProbe("x", "127.0.0.1", 80, host="a\r\nX-Evil: 1")])


@pytest.mark.lab
@pytest.mark.parametrize("shell", SHELLS)
def test_silently_dropped_tcp_and_udp_are_dropped_and_refusal_still_refused(shell: tuple[str, ...]) -> None:
    probes = [
        ClusterProbe("tcp-drop", "127.0.0.1", 9, timeout=2, connect_timeout=1),
        ClusterProbe("udp-drop", "127.0.0.1", 9, "UDP", timeout=1),
        ClusterProbe("tcp-closed", "127.0.0.1", 10),
        ClusterProbe("udp-closed", "127.0.0.1", 10, "UDP", timeout=1),
    ]
    stdout, stderr, _ = run_in_dropping_netns(shell, batch_script(probes), tcp_drop=[9], udp_drop=[9])
    results = parse_batch_output(stdout, stderr, probes)
    assert [r.verdict for r in results] == ["dropped", "dropped", "refused", "refused"], [r.detail for r in results]
