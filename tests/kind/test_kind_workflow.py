"""The kind workflow is a valid GitHub Actions workflow whose run steps are exactly the README's "Run on kind" commands."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from netiso.backends.kind.configs import ENCAPSULATIONS, KIND_VERSION, LOAD_BALANCERS

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "kind-conformance.yml"
READMES = [p for p in (ROOT / "cluster-configs" / "README.md", ROOT / "README.md") if "## Run on kind" in p.read_text()]


def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def readme_commands(path: Path) -> list[str]:
    section = path.read_text().split("## Run on kind", 1)[1]
    block = re.search(r"```(?:sh|bash|console)?\n(.*?)```", section, re.DOTALL)
    assert block, f"{path}: no command block under 'Run on kind'"
    return [line.strip() for line in block.group(1).splitlines() if line.strip() and not line.strip().startswith("#")]


def run_commands(job: dict, matrix: dict[str, str]) -> list[str]:
    out = []
    for step in job["steps"]:
        if "run" in step:
            cmd = step["run"].strip()
            for key, value in matrix.items():
                cmd = cmd.replace("${{ matrix." + key + " }}", value)
            out.append(cmd)
    return out


def test_workflow_has_the_structure_github_actions_requires() -> None:
    wf = workflow()
    triggers = wf.get("on", wf.get(True))  # YAML 1.1 reads a bare `on` key as True
    assert triggers and {"push", "pull_request"} <= set(triggers)
    assert set(wf["jobs"]) == {"kind", "lab"}
    for name, job in wf["jobs"].items():
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", name)
        assert job["runs-on"].startswith("ubuntu-") and job["steps"]
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step), step
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", step["uses"]), step["uses"]
        assert job["steps"][0]["uses"].startswith("actions/checkout@")


def test_kind_job_matrix_is_three_modes_by_two_load_balancers() -> None:
    job = workflow()["jobs"]["kind"]
    matrix = job["strategy"]["matrix"]
    assert matrix == {"encapsulation": list(ENCAPSULATIONS), "loadBalancer": list(LOAD_BALANCERS)}
    assert job["strategy"]["fail-fast"] is False
    suites = [s["run"] for s in job["steps"] if "bin/conformance" in s.get("run", "")]
    group = "${{ matrix.encapsulation }}/${{ matrix.loadBalancer }}"
    assert suites == [f"sudo bin/conformance --netiso-backend kind --netiso-group {group}"]


def test_both_jobs_upload_reports_even_on_failure() -> None:
    for job in workflow()["jobs"].values():
        upload = [s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact@")]
        assert len(upload) == 1 and upload[0]["if"] == "always()" and upload[0]["with"]["path"] == "reports/"


def test_kind_is_installed_at_the_pinned_version() -> None:
    runs = run_commands(workflow()["jobs"]["kind"], {})
    assert f"go install sigs.k8s.io/kind@{KIND_VERSION}" in runs


def test_workflow_run_steps_are_exactly_the_readme_commands() -> None:
    assert READMES, "a README has the 'Run on kind' section"
    wf = workflow()
    kind_runs = run_commands(wf["jobs"]["kind"], {"encapsulation": "vxlan", "loadBalancer": "metallb"})
    lab_runs = run_commands(wf["jobs"]["lab"], {})
    for readme in READMES:
        assert readme_commands(readme) == kind_runs + lab_runs, readme
