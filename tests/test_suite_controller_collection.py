"""Which scenario tests ``suites/test_scenarios.py`` collects: ``test_kubesphere_controller_agrees``
once per scenario with ``--netiso-kubesphere controller`` and never otherwise (deselected, so a lab
run neither runs nor skips a test that cannot fail there), narrowed by ``--netiso-group``, and put
in the same xdist group as its scenario's flow tests (one worker realizes the scenario once).

Collection only (``--collect-only`` in a subprocess, nothing is realized); what the test asserts
when it runs is tests/kube/test_kubesphere_controller_suite_emulated_api.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from fixtures.scenarios import in_group
from netiso.model.addressing import load_topologies

ROOT = Path(__file__).resolve().parent.parent
CONTROLLER = ("--netiso-backend", "kube", "--netiso-kubesphere", "controller")
TEST = "test_kubesphere_controller_agrees"
# a stand-in xdist worker: the collection hook's worker branch writes the test id -> group map
FAKE_WORKER = 'def pytest_configure(config):\n    config.workerinput = {"workerid": "gw0", "workercount": 2}\n'


def collect(*options: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> tuple[list[str], str]:
    """Test ids (relative to suites/test_scenarios.py) and the summary line of a --collect-only run."""
    proc = subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "suites" / "test_scenarios.py"), "--collect-only",
                           "-q", "-p", "no:cacheprovider", "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"),
                           *options], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    ids = [line.split("::", 1)[1] for line in lines if line.startswith("suites/test_scenarios.py::")]
    return ids, next(line for line in reversed(lines) if "collected" in line)


def _scenario_names(group: str | None = None) -> list[str]:
    return [t.name for t in load_topologies([str(ROOT / "scenarios")]) if in_group(t, group)]


def test_without_the_controller_option_no_controller_test_is_collected_and_every_flow_test_is() -> None:
    ids, summary = collect()
    assert not [i for i in ids if i.startswith(TEST)]
    flows = sum(len(t.scenario.flows) for t in load_topologies([str(ROOT / "scenarios")]))
    assert len(ids) == flows and all(i.startswith("test_flow[") for i in ids)
    assert f"({len(_scenario_names())} deselected)" in summary  # deselected, never skipped


def test_with_the_controller_option_one_controller_test_per_scenario() -> None:
    ids, _ = collect(*CONTROLLER)
    assert [i for i in ids if i.startswith(TEST)] == [f"{TEST}[{n}]" for n in _scenario_names()]
    assert len([i for i in ids if i.startswith("test_flow[")]) == sum(
        len(t.scenario.flows) for t in load_topologies([str(ROOT / "scenarios")]))


def test_netiso_group_keeps_the_controller_tests_of_that_groups_scenarios_only() -> None:
    ids, _ = collect(*CONTROLLER, "--netiso-group", "ipip/openelb")
    wanted = _scenario_names("ipip/openelb")
    assert 0 < len(wanted) < len(_scenario_names())
    assert [i for i in ids if i.startswith(TEST)] == [f"{TEST}[{n}]" for n in wanted]


def test_under_xdist_a_controller_test_shares_its_scenarios_group_with_the_flow_tests(tmp_path: Path) -> None:
    import os

    (tmp_path / "fake_worker.py").write_text(FAKE_WORKER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    report = tmp_path / "reports"
    collect(*CONTROLLER, "-p", "fake_worker", "--netiso-report", str(report), env=env)
    groups = json.loads((report / ".netiso-parts" / "groups.json").read_text())
    prefix = "suites/test_scenarios.py::"
    for name in _scenario_names():
        flow_groups = {g for k, g in groups.items() if k.startswith(f"{prefix}test_flow[{name}::")}
        assert len(flow_groups) == 1, name
        assert groups[f"{prefix}{TEST}[{name}]"] == flow_groups.pop(), name
    assert len(set(groups.values())) == 2  # two workers' groups
