"""External client commands and client addresses, run for real with stand-in prefixes.

No ssh server or docker here: stand-in prefixes stand for them. ``env`` and ``sh -c '"$@"' x``
pass argv through unchanged (like ``docker exec -i c1``); ``sh -c 'exec sh -c "$*"' joiner``
joins its arguments with spaces and hands the string to a shell, which is exactly what ssh does
with its command words on the remote side.
"""

from __future__ import annotations

import shlex
import subprocess

import pytest

from netiso.backends.kube.probe_running import (
    ClientCommandError,
    client_address_script,
    client_argv,
    exec_command,
    parse_client_address,
    run_client,
)
from netiso.backends.kube.probing import ClusterProbe, batch_script, parse_batch_output
from tests.support.netexec_standin import running_standin

SSH_LIKE = "sh -c 'exec sh -c \"$*\"' joiner"  # stand-in for ssh: joins argv, a shell re-parses it


def test_exec_api_argv_is_sh_dash_c_script() -> None:
    assert exec_command("echo 'a b'") == ["sh", "-c", "echo 'a b'"]


@pytest.mark.parametrize("prefix", ["env", "sh -c '\"$@\"' x"], ids=["env", "sh-passthrough"])
def test_a_passthrough_prefix_runs_the_batch_unchanged(prefix: str) -> None:
    with running_standin("pod-a") as server:
        probes = [ClusterProbe("it's \"quoted\"", "127.0.0.1", server.http_port)]
        stdout, stderr, rc = run_client(prefix, batch_script(probes), timeout=30, name="alice")
        [result] = parse_batch_output(stdout, stderr, probes)
    assert rc == 0
    assert (result.verdict, result.hostname) == ("allowed", "pod-a")


def test_the_placeholder_passes_the_script_quoted_once_more_for_a_joining_shell() -> None:
    with running_standin("pod-a") as server:
        probes = [ClusterProbe("p", "127.0.0.1", server.http_port)]
        stdout, stderr, _ = run_client(SSH_LIKE + " {}", batch_script(probes), timeout=30)
        [result] = parse_batch_output(stdout, stderr, probes)
    assert result.verdict == "allowed", result.detail


def test_without_the_placeholder_a_joining_shell_garbles_the_command() -> None:
    """Why ssh needs the extra quoting: joined with spaces, ``sh -c echo 'a  b'`` loses its words."""
    script = "echo 'a  b'"
    garbled, _, _ = run_client(SSH_LIKE, script, timeout=10)
    intact, _, _ = run_client(SSH_LIKE + " {}", script, timeout=10)
    assert (garbled, intact) == ("\n", "a  b\n")


@pytest.mark.parametrize("ssh", ["ssh", "/usr/bin/ssh"])
def test_an_ssh_prefix_gets_one_remote_command_string_a_shell_parses_back(ssh: str) -> None:
    with running_standin("pod-a") as server:
        probes = [ClusterProbe("p", "127.0.0.1", server.http_port)]
        script = batch_script(probes)
        argv = client_argv(f"{ssh} -o BatchMode=yes bob@host", script)
        assert argv[:4] == [ssh, "-o", "BatchMode=yes", "bob@host"] and len(argv) == 5
        assert shlex.split(argv[4]) == ["sh", "-c", script]
        # What sshd does with it: hand the string to the login shell.
        proc = subprocess.run(["sh", "-c", argv[4]], capture_output=True, text=True, timeout=30, check=False)
        [result] = parse_batch_output(proc.stdout, proc.stderr, probes)
    assert result.verdict == "allowed", result.detail


def test_a_missing_client_command_names_the_mapping_and_the_command() -> None:
    with pytest.raises(ClientCommandError) as info:
        run_client("netiso-no-such-docker exec -i c1", "true", timeout=5, name="alice")
    assert str(info.value) == "--client alice=netiso-no-such-docker exec -i c1: command 'netiso-no-such-docker' not found"


def test_a_hanging_client_command_is_killed_at_the_timeout() -> None:
    with pytest.raises(ClientCommandError, match=r"--client bob=.*no answer within 0.5 s"):
        run_client("sh -c 'sleep 30; \"$@\"' x", "true", timeout=0.5, name="bob")


def test_the_client_commands_exit_status_and_streams_come_back() -> None:
    out, err, rc = run_client("env", "echo out; echo err >&2; exit 3", timeout=10)
    assert (out, err, rc) == ("out\n", "err\n", 3)


def test_an_empty_client_command_is_rejected() -> None:
    with pytest.raises(ValueError):
        client_argv("  ", "true")


def test_client_address_script_finds_the_source_for_loopback_here() -> None:
    """Real ``ip route get`` on this host: towards loopback the source is 127.0.0.1."""
    out, _, rc = run_client("env", client_address_script("127.0.0.1"), timeout=10)
    assert rc == 0
    assert "src 127.0.0.1" in out
    assert parse_client_address(out) == "127.0.0.1"


@pytest.mark.lab
def test_client_address_is_the_route_source_towards_a_node() -> None:
    """In a throwaway netns holding a lab address, the source towards a node is that address."""
    inner = "ip link add v0 type veth peer name v1 && ip addr add 198.18.0.9/24 dev v0 && "
    inner += "ip link set v0 up && ip link set v1 up && "
    inner += client_address_script("198.18.0.2")
    proc = subprocess.run(["unshare", "-n", "--", "sh", "-c", inner], capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr
    assert parse_client_address(proc.stdout) == "198.18.0.9"


@pytest.mark.parametrize(
    ("out", "address"),
    [
        ("route: 198.18.0.2 dev eth0 src 198.18.0.9 uid 0     cache  \nhostname-i: 172.17.0.2 \n", "198.18.0.9"),
        ("route: 198.18.0.2 via 203.0.113.1 dev ens3 src 203.0.113.50 uid 1000 \nhostname-i: 127.0.1.1 \n", "203.0.113.50"),
        ("route: sh: ip: not found \nhostname-i: 127.0.1.1 ::1 203.0.113.7 \n", "203.0.113.7"),
        ("route: RTNETLINK answers: Network is unreachable \nhostname-i: 198.18.1.4 \n", "198.18.1.4"),
    ],
)
def test_client_address_parsing_prefers_the_route_source(out: str, address: str) -> None:
    assert parse_client_address(out) == address


def test_client_address_without_any_usable_address_is_an_error() -> None:
    with pytest.raises(ValueError, match="cannot tell the client's address"):
        parse_client_address("route: sh: ip: not found \nhostname-i: 127.0.1.1 \n")
    with pytest.raises(ValueError):
        client_address_script("198.18.0.2; rm -rf /")
