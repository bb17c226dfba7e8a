"""Every malformed kubeconfig a new user can write: exit 2 and one message naming the file and the fault.

Through the real command line (``netiso check --backend kube``); no API server is needed, since
each fault is found before anything is contacted (the valid base names a closed local port, so
a kubeconfig that passes validation ends in "connection refused", also exit 2, never a traceback).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from netiso.cli import main
from tests.kube.conftest import NODEPORT

Config = dict[str, Any]
PEM = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").decode()


def base() -> Config:
    return {"apiVersion": "v1", "kind": "Config", "current-context": "lab",
            "clusters": [{"name": "lab", "cluster": {"server": "http://127.0.0.1:9"}}],
            "users": [{"name": "me", "user": {"token": "t"}}],
            "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "me"}}]}


def edit(change: Callable[[Config, Path], None]) -> Callable[[Path], str]:
    """A kubeconfig writer: the valid base with ``change`` applied (``change`` may create files beside it)."""
    def write(directory: Path) -> str:
        config = base()
        change(config, directory)
        return yaml.safe_dump(config)
    return write


def raw(text: str) -> Callable[[Path], str]:
    return lambda _d: text


def _cluster(c: Config) -> dict:
    return c["clusters"][0]["cluster"]


def _user(c: Config) -> dict:
    return c["users"][0]["user"]


# (id, kubeconfig writer, extra CLI args, what the message must say)
CASES: list[tuple[str, Callable[[Path], str], list[str], str]] = [
    ("not-yaml", raw("clusters:\n  - name: lab\n   cluster: {server: x\n"), [], "not valid YAML at line"),
    ("empty", raw(""), [], "the file is empty"),
    ("not-a-mapping", raw("- lab\n- prod\n"), [], "not a kubeconfig: the top level is a list"),
    ("clusters-not-a-list", edit(lambda c, d: c.update(clusters={"lab": {}})), [], "clusters is a dict, expected a list"),
    ("entry-without-name", edit(lambda c, d: c["users"].append({"user": {}})), [], "users[1] has no name"),
    ("no-clusters", edit(lambda c, d: c.update(clusters=[])), [], "it defines no clusters"),
    ("cluster-without-server", edit(lambda c, d: _cluster(c).pop("server")), [], "cluster 'lab' has no server"),
    ("context-names-unknown-cluster", edit(lambda c, d: c["contexts"][0]["context"].update(cluster="ghost")), [],
     "context 'lab' names cluster 'ghost', which is not defined (clusters: lab)"),
    ("context-names-unknown-user", edit(lambda c, d: c["contexts"][0]["context"].update(user="ghost")), [],
     "context 'lab' names user 'ghost', which is not defined (users: me)"),
    ("unknown-context-flag", edit(lambda c, d: None), ["--context", "prod"],
     "no context 'prod' (--context prod; it has: lab)"),
    ("no-current-context", edit(lambda c, d: c.pop("current-context")), [],
     "it has no current-context; pass --context NAME (one of: lab)"),
    ("current-context-names-nothing", edit(lambda c, d: c.update({"current-context": "old"})), [],
     "current-context 'old' names no context"),
    ("no-contexts", edit(lambda c, d: (c.update(contexts=[]), c.pop("current-context"))), [], "it defines no contexts"),
    ("missing-certificate-authority", edit(lambda c, d: _cluster(c).update({"certificate-authority": "ca.crt"})), [],
     "cluster 'lab': certificate-authority {dir}/ca.crt: No such file or directory"),
    ("unreadable-client-certificate",  # a directory: unreadable as a file even for root
     edit(lambda c, d: ((d / "cert.d").mkdir(), _user(c).update({"client-certificate": "cert.d",
                                                                  "client-key-data": PEM}))), [],
     "user 'me': client-certificate {dir}/cert.d: Is a directory"),
    ("missing-client-key", edit(lambda c, d: ((d / "me.crt").write_text("x"),
                                              _user(c).update({"client-certificate": str(d / "me.crt"),
                                                               "client-key": str(d / "gone.key")}))), [],
     "user 'me': client-key {dir}/gone.key: No such file or directory"),
    ("certificate-without-key", edit(lambda c, d: _user(c).update({"client-certificate-data": PEM})), [],
     "user 'me' has a client certificate without its client-key"),
    ("bad-base64-ca", edit(lambda c, d: _cluster(c).update({"certificate-authority-data": "not base64!"})), [],
     "cluster 'lab': certificate-authority-data is not valid base64"),
    ("bad-base64-client-key", edit(lambda c, d: _user(c).update({"client-certificate-data": PEM,
                                                                  "client-key-data": "%%%"})), [],
     "user 'me': client-key-data is not valid base64"),
]


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    path = tmp_path / "np.yaml"
    path.write_text(NODEPORT)
    return path


def check(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["check", *argv, "--backend", "kube"])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


@pytest.mark.parametrize(("writer", "args", "says"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_cli_malformed_kubeconfig_exits_2_naming_the_file_and_the_fault(
        writer: Callable[[Path], str], args: list[str], says: str, scenario: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(writer(tmp_path))
    code, err = check(capsys, str(scenario), "--kubeconfig", str(kubeconfig), *args)
    assert code == 2, err
    assert f"kubeconfig {kubeconfig}" in err
    assert says.format(dir=tmp_path) in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1, err


def test_cli_kubeconfig_path_list_names_the_file_at_fault(scenario: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    config = base()
    first.write_text(yaml.safe_dump({**config, "users": []}))  # the user comes from the second file
    second.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "current-context": "other",
                                      "users": [{"name": "me", "user": {"client-certificate-data": PEM,
                                                                        "client-key-data": "!!"}}]}))
    monkeypatch.setenv("KUBECONFIG", f"{first}:{tmp_path / 'missing.yaml'}:{second}")  # missing entries are skipped
    code, err = check(capsys, str(scenario))
    assert code == 2
    assert f"kubeconfig {second}: user 'me': client-key-data is not valid base64" in err


def test_cli_kubeconfig_path_list_uses_the_first_current_context_as_kubectl(scenario: Path, tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch,
                                                                            capsys: pytest.CaptureFixture[str]) -> None:
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text(yaml.safe_dump(base()))
    second.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "current-context": "other",
                                      "contexts": [{"name": "other", "context": {"cluster": "nowhere"}}]}))
    monkeypatch.setenv("KUBECONFIG", f"{first}:{second}")
    code, err = check(capsys, str(scenario))
    assert code == 2
    assert "context 'lab'" in err and "http://127.0.0.1:9" in err and "connection refused" in err  # lab, not other


def test_cli_unknown_context_in_a_path_list_names_every_file(scenario: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text(yaml.safe_dump(base()))
    second.write_text(yaml.safe_dump({**base(), "contexts": [{"name": "stage", "context": {"cluster": "lab"}}]}))
    monkeypatch.setenv("KUBECONFIG", f"{first}:{second}")
    code, err = check(capsys, str(scenario), "--context", "prod")
    assert code == 2
    assert f"kubeconfig {first}:{second}: no context 'prod' (--context prod; it has: lab, stage)" in err
