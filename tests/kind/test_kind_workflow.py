"""The kind workflow is a valid GitHub Actions workflow whose run steps are exactly the README's "Run on kind"
commands, whose evidence survives (readable before upload), and whose every cell is estimated to end well
inside its timeout (netiso/backends/kind/estimate.py: planning figures, not a live run's measurements)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from netiso.backends.kind.configs import ENCAPSULATIONS, KIND_VERSION, LOAD_BALANCERS
from netiso.backends.kind.estimate import clusters_of, estimate_cell, proof_topologies

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
    assert set(wf["jobs"]) == {*KIND_JOBS, "lab"}
    for name, job in wf["jobs"].items():
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", name)
        assert job["runs-on"].startswith("ubuntu-") and job["steps"]
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step), step
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", step["uses"]), step["uses"]
        assert job["steps"][0]["uses"].startswith("actions/checkout@")


KIND_JOBS = ("kind", "kind-minimal")
SUITE_FILES = ("test_scenarios.py", "test_founding_matrix.py", "test_minimal_config.py")


def test_kind_jobs_matrix_is_three_modes_by_two_load_balancers_and_together_run_every_suite_once() -> None:
    group = "${{ matrix.encapsulation }}/${{ matrix.loadBalancer }}"
    ran: list[str] = []
    for name in KIND_JOBS:
        job = workflow()["jobs"][name]
        matrix = {k: v for k, v in job["strategy"]["matrix"].items() if k not in ("clusters", "exclude")}
        assert matrix == {"encapsulation": list(ENCAPSULATIONS), "loadBalancer": list(LOAD_BALANCERS)}
        assert job["strategy"]["fail-fast"] is False
        suites = [s["run"] for s in job["steps"] if "bin/conformance" in s.get("run", "")]
        assert len(suites) == 1
        suffix = "/${{ matrix.clusters }}" if "clusters" in job["strategy"]["matrix"] else ""
        assert suites[0].startswith(f"sudo bin/conformance --netiso-backend kind --netiso-group {group}{suffix} ")
        ran += suites_run(suites[0])
    assert sorted(ran) == sorted(SUITE_FILES)


def cells(job: dict) -> list[dict[str, str]]:
    """A job's matrix cells, its ``exclude`` entries removed (GitHub Actions' expansion)."""
    import itertools

    matrix = dict(job["strategy"]["matrix"])
    excluded = matrix.pop("exclude", [])
    keys = list(matrix)
    every = [dict(zip(keys, values, strict=True)) for values in itertools.product(*(matrix[k] for k in keys))]
    return [c for c in every if not any(all(c.get(k) == v for k, v in e.items()) for e in excluded)]


def test_the_kind_job_splits_each_group_into_its_default_cluster_and_its_own_settings_clusters() -> None:
    """Every excluded ``own`` cell has no scenario needing a cluster of its own settings, every kept one has."""
    from netiso.backends.kind.configs import group_of
    from netiso.model.addressing import load_topologies

    job = workflow()["jobs"]["kind"]
    assert job["strategy"]["matrix"]["clusters"] == ["default", "own"]
    own = {group_of(t)[:2] for t in load_topologies([str(ROOT / "scenarios")]) if len(group_of(t)) == 3}
    kept = {(c["encapsulation"], c["loadBalancer"]) for c in cells(job) if c["clusters"] == "own"}
    assert kept == own


def suites_run(command: str) -> list[str]:
    """The suite files a ``bin/conformance`` command runs (``suites/`` less its ``--ignore=`` files)."""
    ignored = set(re.findall(r"--ignore=suites/(\S+)", command))
    assert ignored <= set(SUITE_FILES), ignored
    assert sorted(p.name for p in (ROOT / "suites").glob("test_*.py")) == sorted(SUITE_FILES)
    return [f for f in SUITE_FILES if f not in ignored]


def test_every_job_uploads_reports_even_on_failure() -> None:
    for job in workflow()["jobs"].values():
        upload = [s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact@")]
        assert len(upload) == 1 and upload[0]["if"] == "always()" and upload[0]["with"]["path"] == "reports/"
    names = [s["with"]["name"] for job in workflow()["jobs"].values() for s in job["steps"]
             if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert len(set(names)) == len(names)  # one artifact per job (per cell): none overwrites another


def test_kind_jobs_make_root_owned_evidence_readable_before_the_upload_even_on_failure() -> None:
    for name in KIND_JOBS:
        steps = workflow()["jobs"][name]["steps"]
        upload = next(i for i, s in enumerate(steps) if s.get("uses", "").startswith("actions/upload-artifact@"))
        readable = [i for i, s in enumerate(steps) if re.search(r"\bchmod -R a\+rX reports/?(\s|$)", s.get("run", ""))]
        assert readable and readable[-1] < upload, name
        step = steps[readable[-1]]
        assert step.get("if") == "always()" and step["run"].startswith("sudo "), step
        assert all("bin/conformance" not in s.get("run", "") for s in steps[readable[-1]:]), "chmod after the suites"


def cell_suites(encapsulation: str, load_balancer: str, files: list[str], clusters: str = "") -> dict[str, list]:
    """The realizations a cell runs, by suite: bundled scenarios, the founding matrix, minimal-config proofs."""
    import sys

    sys.path.insert(0, str(ROOT))
    from fixtures.scenarios import in_group
    from netiso.model.addressing import load_topologies
    from suites.founding import matrix

    group = f"{encapsulation}/{load_balancer}" + (f"/{clusters}" if clusters else "")
    bundled = [t for t in load_topologies([str(ROOT / "scenarios")]) if in_group(t, group)]
    out: dict[str, list] = {}
    if "test_scenarios.py" in files:
        out["scenarios"] = bundled
    if "test_founding_matrix.py" in files:
        out["founding matrix"] = [fs.topo for fs in matrix() if in_group(fs.topo, group)]
    if "test_minimal_config.py" in files:
        out["minimal-config proofs"] = proof_topologies(bundled)
    return out


def cell_images(encapsulation: str, load_balancer: str) -> int:
    from netiso.backends.kind.addons import DEFAULT_KIND_SUBNET, install_plan
    from netiso.backends.kube.images import all_images

    plan = install_plan(encapsulation, load_balancer, "192.168.0.0/16", DEFAULT_KIND_SUBNET, "c", "h")
    return len(dict.fromkeys([*plan.images, *all_images()]))


WELL_INSIDE = 0.75  # of timeout-minutes: the estimate's figures are not measurements yet


def test_every_kind_cell_is_estimated_well_inside_its_timeout() -> None:
    seen = 0
    for name in KIND_JOBS:
        job = workflow()["jobs"][name]
        files = suites_run(next(s["run"] for s in job["steps"] if "bin/conformance" in s.get("run", "")))
        for cell in cells(job):
            enc, lb = cell["encapsulation"], cell["loadBalancer"]
            suites = cell_suites(enc, lb, files, cell.get("clusters", ""))
            estimate = estimate_cell(cell_images(enc, lb), suites, clusters_of(suites))
            assert estimate.realizations > 0, cell
            limit = WELL_INSIDE * job["timeout-minutes"] * 60
            assert estimate.total_s <= limit, "\n".join([f"{name} {cell}:", *estimate.lines(job["timeout-minutes"])])
            seen += 1
    assert seen >= 2 * len(ENCAPSULATIONS) * len(LOAD_BALANCERS)


def test_a_cell_building_several_clusters_is_estimated_with_each_clusters_cost() -> None:
    """vxlan/metallb/own builds one cluster per kube-proxy/Calico setting: each costs create + add-ons again."""
    suites = cell_suites("vxlan", "metallb", ["test_scenarios.py"], "own")
    assert clusters_of(suites) > 1
    one = estimate_cell(cell_images("vxlan", "metallb"), suites, 1)
    several = estimate_cell(cell_images("vxlan", "metallb"), suites, clusters_of(suites))
    assert several.total_s > one.total_s + (clusters_of(suites) - 1) * 5 * 60


def test_the_kind_dry_run_plan_prints_each_clusters_estimate(tmp_path: Path) -> None:
    from netiso.backends.base import BackendOptions
    from netiso.backends.kind.plan import write_kind_plans
    from netiso.model.addressing import load_topologies

    write_kind_plans(load_topologies([str(ROOT / "scenarios")]), tmp_path, BackendOptions(), run_id="nx000001")
    text = (tmp_path / "kind-vxlan-metallb" / "plan.txt").read_text()
    assert re.search(r"^# estimated wall time: \d+ min for \d+ realization\(s\)$", text, re.MULTILINE)
    assert re.search(r"min  minimal-config proofs: \d+ realization\(s\)$", text, re.MULTILINE)


def test_kind_is_installed_at_the_pinned_version() -> None:
    runs = run_commands(workflow()["jobs"]["kind"], {})
    assert f"go install sigs.k8s.io/kind@{KIND_VERSION}" in runs


def test_workflow_run_steps_are_exactly_the_readme_commands() -> None:
    assert READMES, "a README has the 'Run on kind' section"
    wf = workflow()
    cell = {"encapsulation": "vxlan", "loadBalancer": "metallb", "clusters": "default"}
    runs = [*(c for job in KIND_JOBS for c in run_commands(wf["jobs"][job], cell)), *run_commands(wf["jobs"]["lab"], {})]
    for readme in READMES:  # every job's commands in job order, each command once
        assert readme_commands(readme) == list(dict.fromkeys(runs)), readme
