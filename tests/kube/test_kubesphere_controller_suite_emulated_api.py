"""The pytest suites with ``--netiso-backend kube --netiso-kubesphere controller``, run in-process
against the EMULATED API server with KubeSphere's nsnetworkpolicy controller emulated
(tests/support/kubeapi/kubesphere.py) and the emulated datapath that answers probes from the
policies stored in the cluster (``ControllerNetwork``). No live KubeSphere is involved.

Why in-process: the emulated cluster, the datapath and the short waits are this process's objects
and monkeypatches, which a pytest subprocess would not see. ``suites/test_scenarios.py`` keeps its
scenario cache in module state (fixtures.backend ``_RESULTS``/``PENDING``/``BUCKET``), shared with
this (outer) session, so each inner run starts from empty caches and this session's are restored.

What it proves: a controller difference no flow of the scenario probes fails that scenario's
``test_kubesphere_controller_agrees`` (naming the policy and what differs) while every flow test
passes, an agreeing controller passes, and the scenario test reads the flow tests' cached run
(one realization per scenario). Which tests are collected at all is tests/test_suite_controller_collection.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import fixtures.backend as suite_state
from netiso.backends.kube.backend import KubeBackend, KubeRealization
from tests.kube.test_kubesphere_controller_run_emulated_api import SHOP, WHITELIST, _wire
from tests.support.kubeapi import seed_cluster
from tests.support.kubeapi.kubesphere import install

ROOT = Path(__file__).resolve().parents[2]
# a second scenario beside ks-shop, with projects of its own (the run id is fixed, so names must not collide)
STORE = (SHOP.replace("ks-shop", "ks-store").replace("shop", "store").replace("frontend", "front")
         .replace("billing", "ledger").replace("ws-a", "ws-b"))
UNPROBED_PEER = {"ipBlock": {"cidr": "192.0.2.7/32"}}  # no flow of either scenario comes from it


class Outcomes:
    """The inner run's call-phase reports: test id -> (outcome, failure text)."""

    def __init__(self) -> None:
        self.calls: dict[str, tuple[str, str]] = {}
        self.errors: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call":
            self.calls[report.nodeid.split("::", 1)[1]] = (report.outcome, report.longreprtext)
        elif report.failed:
            self.errors.append(f"{report.nodeid} ({report.when}): {report.longreprtext}")


def run_suite(fake_cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, Outcomes, list[str]]:
    """suites/test_scenarios.py over ks-shop and ks-store in controller mode; returns the exit code,
    the outcomes and the names of the scenarios realized (in order)."""
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    (scenarios / "shop.yaml").write_text(SHOP)
    (scenarios / "store.yaml").write_text(STORE)
    _wire(fake_cluster, tmp_path, monkeypatch)
    realized: list[str] = []
    learning = KubeBackend.realize

    def counted(self: KubeBackend, topo: Any) -> KubeRealization:
        realized.append(topo.name)
        return learning(self, topo)

    monkeypatch.setattr(KubeBackend, "realize", counted)
    outcomes = Outcomes()
    saved = (dict(suite_state._RESULTS), dict(suite_state.PENDING), dict(suite_state.BUCKET))
    for state in (suite_state._RESULTS, suite_state.PENDING, suite_state.BUCKET):
        state.clear()
    try:
        code = pytest.main([str(ROOT / "suites" / "test_scenarios.py"), "-q", "-p", "no:cacheprovider",
                            "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"),
                            "--netiso-backend", "kube", "--netiso-kubeconfig", str(fake_cluster.kubeconfig),
                            "--netiso-kubesphere", "controller", "--netiso-scenarios", str(scenarios),
                            "--netiso-report", str(tmp_path / "reports")], plugins=[outcomes])
    finally:
        for state, before in zip((suite_state._RESULTS, suite_state.PENDING, suite_state.BUCKET), saved, strict=True):
            state.clear()
            state.update(before)  # type: ignore[attr-defined]
    assert not outcomes.errors, "\n".join(outcomes.errors)
    return int(code), outcomes, realized


def _split(outcomes: Outcomes) -> tuple[dict[str, tuple[str, str]], dict[str, tuple[str, str]]]:
    flows = {k: v for k, v in outcomes.calls.items() if k.startswith("test_flow[")}
    agrees = {k: v for k, v in outcomes.calls.items() if k.startswith("test_kubesphere_controller_agrees[")}
    return flows, agrees


def test_suite_a_controller_difference_no_flow_probes_fails_that_scenarios_test_and_no_flow_emulated_api(
        fake_cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seed_cluster(fake_cluster)
    controller = install(fake_cluster)
    assert controller is not None

    def admit_more(namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        if name == WHITELIST and namespace.endswith("-shop"):  # ks-shop's only; ks-store's controller agrees
            spec["ingress"][0]["from"].append(UNPROBED_PEER)
        return spec

    controller.divergence = admit_more
    code, outcomes, realized = run_suite(fake_cluster, tmp_path, monkeypatch)
    flows, agrees = _split(outcomes)
    assert len(flows) == 8 and all(outcome == "passed" for outcome, _ in flows.values()), flows
    assert {k: v[0] for k, v in agrees.items()} == {"test_kubesphere_controller_agrees[ks-shop]": "failed",
                                                    "test_kubesphere_controller_agrees[ks-store]": "passed"}
    assert code == pytest.ExitCode.TESTS_FAILED
    message = agrees["test_kubesphere_controller_agrees[ks-shop]"][1]
    assert "ks-shop: 1 finding(s) that fail the run (KubeSphere's controller against netiso's compiler)" in message
    assert f"shop/{WHITELIST}: differs from netiso's compiler" in message
    assert "spec.ingress[0].from: only KubeSphere's controller has {ipBlock: {cidr: 192.0.2.7/32}}" in message
    assert "KubeSphere's controller (actual):" in message and "netiso's compiler (expected):" in message
    assert sorted(realized) == ["ks-shop", "ks-store"]  # the scenario test read the flow tests' cached run
    doc = json.loads((tmp_path / "reports" / "results.json").read_text())
    diffs = {s["name"]: [d["policy"] for d in s["controllerDiff"]] for s in doc["scenarios"]}
    assert diffs == {"ks-shop": [WHITELIST], "ks-store": []}


def test_suite_an_agreeing_controller_passes_every_test_emulated_api(
        fake_cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seed_cluster(fake_cluster)
    install(fake_cluster)
    code, outcomes, realized = run_suite(fake_cluster, tmp_path, monkeypatch)
    flows, agrees = _split(outcomes)
    assert len(flows) == 8 and sorted(agrees) == ["test_kubesphere_controller_agrees[ks-shop]",
                                                  "test_kubesphere_controller_agrees[ks-store]"]
    assert all(outcome == "passed" for outcome, _ in outcomes.calls.values()), outcomes.calls
    assert code == pytest.ExitCode.OK
    assert sorted(realized) == ["ks-shop", "ks-store"]
