"""``netiso check --backend kube`` end to end through the command line, against the emulated API server.

Issue 6's "done when": exit 2 with one clear, specific message for no kubeconfig, an unreachable
server, a 403, a CNI/encapsulation mismatch and a foreign namespace in the way — and nothing
created. The server is tests/support/kubeapi (real HTTP on 127.0.0.1, the official client
unpatched); what only a live cluster shows is listed in the README.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from netiso.backends.kube.naming import RunNames
from netiso.cli import main
from tests.kube.conftest import NODEPORT, closed_port_kubeconfig
from tests.support.kubeapi import seed_cluster

RUN = "nx0c11aa"


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    path = tmp_path / "np.yaml"
    path.write_text(NODEPORT)
    return path


@pytest.fixture
def fixed_run(monkeypatch: pytest.MonkeyPatch) -> str:
    """The run id the CLI will draw (random in real runs) so a test can put a namespace in its way."""
    monkeypatch.setattr(RunNames, "new", classmethod(lambda cls: cls(run=RUN)))
    return RUN


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["check", *argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def created(cluster) -> list[str]:  # type: ignore[no-untyped-def]
    return [f"{r.method} {r.path}" for r in cluster.writes() if "selfsubjectaccessreviews" not in r.path]


def test_cli_without_any_kubeconfig_exits_2_naming_the_flag(scenario: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    code, err = run_cli(capsys, str(scenario), "--backend", "kube")
    assert code == 2
    assert "no kubeconfig" in err and "--kubeconfig" in err


def test_cli_unreachable_server_exits_2_saying_connection_refused(scenario: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    kubeconfig, port = closed_port_kubeconfig(tmp_path)
    code, err = run_cli(capsys, str(scenario), "--backend", "kube", "--kubeconfig", str(kubeconfig))
    assert code == 2
    assert f"http://127.0.0.1:{port}" in err and "connection refused" in err


def test_emulated_api_cli_403_exits_2_naming_verb_and_resource(scenario: Path, fake_cluster,  # type: ignore[no-untyped-def]
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    seed_cluster(fake_cluster)
    fake_cluster.deny("create", "networkpolicies", "networking.k8s.io")
    code, err = run_cli(capsys, str(scenario), "--backend", "kube", "--kubeconfig", str(fake_cluster.kubeconfig))
    assert code == 2
    assert "create networkpolicies" in err
    assert created(fake_cluster) == []


def test_emulated_api_cli_encapsulation_mismatch_exits_2_naming_pool_and_both_values(
        scenario: Path, fake_cluster, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    seed_cluster(fake_cluster, encapsulation="ipip")  # the scenario says vxlan
    code, err = run_cli(capsys, str(scenario), "--backend", "kube", "--kubeconfig", str(fake_cluster.kubeconfig))
    assert code == 2
    assert "default-ipv4-ippool" in err and "vxlan" in err and "ipipMode" in err
    assert created(fake_cluster) == []


def test_emulated_api_cli_foreign_namespace_in_the_way_exits_2_and_is_left_alone(
        scenario: Path, fake_cluster, fixed_run: str, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    seed_cluster(fake_cluster)
    fake_cluster.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"{fixed_run}-shop"}})
    code, err = run_cli(capsys, str(scenario), "--backend", "kube", "--kubeconfig", str(fake_cluster.kubeconfig))
    assert code == 2
    assert f"{fixed_run}-shop" in err
    assert fake_cluster.get("v1", "Namespace", f"{fixed_run}-shop") is not None  # never deleted, never adopted
    assert not [w for w in created(fake_cluster) if w.startswith("DELETE") and f"{fixed_run}-shop" in w]


def test_cli_dry_run_writes_a_plan_without_any_cluster(scenario: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no kubeconfig anywhere: a dry run must not need one
    out = tmp_path / "plan"
    assert main(["check", str(scenario), "--backend", "kube", "--dry-run", "--out", str(out)]) == 0
    files = sorted(p.name for p in (out / "np-vxlan").iterdir())
    assert "plan.txt" in files and any(f.startswith("01-namespace-") for f in files)
    assert "no cluster contacted" in capsys.readouterr().out
