"""``netiso check``: realize each scenario on a backend, probe every flow, judge, report.

Top layer: it speaks only to the backend interface (``netiso.backends``), never to a backend's
own modules. Per scenario: realize it (the lab builds namespaces; a cluster backend applies
objects and discovers the addresses the cluster assigned), predict with the oracle *for the
topology as realized*, serve echo endpoints, probe every flow, judge, gather evidence for
mismatches, tear down. A session holds what scenarios share (the lab's probe agents, a cluster
connection); ``jobs`` scenarios run side by side.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netiso.backends import Backend, BackendOptions, BackendUnavailable, open_backend
from netiso.model.errors import InputError
from netiso.model.types import Topology
from netiso.oracle.judge import Observation, judge
from netiso.oracle.predict import Prediction, predict_all
from netiso.oracle.profile import DEFAULT_PROFILE
from netiso.progress import Progress

log = logging.getLogger("netiso.check")


@dataclass
class FlowResult:
    pred: Prediction
    obs: Observation
    problems: list[str]

    @property
    def skipped(self) -> bool:
        return self.obs.verdict == "skipped"

    @property
    def match(self) -> bool:
        return not self.problems and not self.pred.disagreements and not self.skipped


@dataclass
class ScenarioResult:
    topo: Topology  # as realized: the addresses the backend built with
    results: list[FlowResult]
    timings: dict[str, float] = field(default_factory=dict)
    backend: str = "lab"
    findings: dict[str, Any] = field(default_factory=dict)  # Realization.findings(): merged into the JSON entry
    finding_problems: list[str] = field(default_factory=list)  # Realization.finding_problems(): exit 1

    @property
    def mismatches(self) -> int:
        return sum(1 for r in self.results if not r.match and not r.skipped)

    @property
    def skipped(self) -> int:
        return sum(1 for r in self.results if r.skipped)


def check_scenario(topo: Topology, backend: Backend, *, evidence: bool = True,
                   progress: Progress | None = None) -> ScenarioResult:
    """Realize ``topo`` on ``backend``, probe every flow, judge, tear down.

    The oracle predicts while the backend builds (a thread: building is mostly waiting for
    ``ip``/``iptables-restore`` or an API server; at 48 nodes the prediction is ~3 s of a 25 s run).
    The predictions are used when the realization kept ``topo`` as it is (the lab); a backend
    that resolves a topology of its own (kube: the cluster's addresses) is predicted on that one.
    """
    started = time.perf_counter()
    if progress is not None:
        progress.started(topo.name)
    early = ThreadPoolExecutor(max_workers=1, thread_name_prefix="netiso-predict")
    early_preds = early.submit(predict_all, topo, DEFAULT_PROFILE)
    early.shutdown(wait=False)
    realization = backend.realize(topo)
    probe_s = 0.0
    findings: dict[str, Any] = {}
    finding_problems: list[str] = []
    try:
        realized = realization.topo
        preds = early_preds.result() if realized is topo else predict_all(realized, DEFAULT_PROFILE)
        realization.serve(preds)
        t0 = time.perf_counter()
        observations = realization.probe(preds)
        probe_s = time.perf_counter() - t0
        results = [FlowResult(pred, obs, judge(realized, pred, obs))
                   for pred, obs in zip(preds, observations, strict=True)]
        bad = [r for r in results if r.problems and r.obs.verdict != "skipped"]
        if evidence and bad:  # bounded: per node once, a cap with "N more" (Realization.evidence_many)
            for r, found in zip(bad, realization.evidence_many([(r.pred, r.obs) for r in bad]), strict=True):
                r.obs.evidence = found
        findings, finding_problems = realization.findings(), realization.finding_problems()
    finally:
        realization.down()
    timings = dict(realization.timings)
    timings["probe_s"] = probe_s
    timings["total_s"] = time.perf_counter() - started
    result = ScenarioResult(realized, results, timings, backend.name, findings, finding_problems)
    if progress is not None:
        progress.done(topo.name, flows=len(results), bad=result.mismatches, skipped=result.skipped)
    return result


def check_many(topos: list[Topology], *, jobs: int | None = None, on_result: Callable[[ScenarioResult], None] | None = None,
               backend: Backend | None = None, evidence: bool = True, progress: Progress | None = None) -> list[ScenarioResult]:
    """Run scenarios, ``jobs`` at a time; results come back, and ``on_result`` is called, in input order.

    Without ``backend`` the lab is used (and closed at the end). Scenarios are independent (own
    namespaces, own prefix), so running a few side by side overlaps the seconds a dropped probe
    waits. On Ctrl-C or a backend that cannot start, scenarios not yet begun are dropped and the
    running ones finish their own teardown (each realization is torn down in a finally block).
    """
    from concurrent.futures import ThreadPoolExecutor

    own = backend is None
    if backend is None:
        from netiso.probe.prober import start_agent_prober

        backend = open_backend("lab", BackendOptions(), probers=start_agent_prober)
    workers = max(1, jobs or backend.default_jobs)
    results: list[ScenarioResult] = []
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        futures = [pool.submit(check_scenario, topo, backend, evidence=evidence, progress=progress) for topo in topos]
        for future in futures:
            res = future.result()
            results.append(res)
            if on_result is not None:
                on_result(res)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)
        if own:
            backend.close()
    return results


def backend_options(args: Any, flag_prefix: str = "--") -> BackendOptions:
    """The backend part of the command line (check, minimal-config, clean, and the pytest plugin's
    ``--netiso-*`` options with ``flag_prefix="--netiso-"``): bad pairs name the flag as the user spelt it."""
    from netiso.cli_options import parse_names, parse_pairs

    clients = parse_pairs(getattr(args, "client", None) or [], f"{flag_prefix}client", "NAME=COMMAND",
                          split_commas=False)
    kubesphere = getattr(args, "kubesphere", None)
    backend = getattr(args, "backend", None)
    if kubesphere and backend not in (None, "kube"):
        raise InputError(f"{flag_prefix}kubesphere {kubesphere}: drives KubeSphere's controller on an existing cluster "
                         f"(needs {flag_prefix}backend kube); the {backend} backend has no KubeSphere: drop the flag")
    return BackendOptions(
        jobs=getattr(args, "jobs", None),
        kubeconfig=getattr(args, "kubeconfig", None),
        context=getattr(args, "context", None),
        node_map=parse_pairs(getattr(args, "node_map", None) or [], f"{flag_prefix}node-map",
                             "SCENARIO_NODE=CLUSTER_NODE"),
        clients=clients,
        clients_without_pod_routes=parse_names(getattr(args, "client_no_pod_routes", None) or [],
                                               f"{flag_prefix}client-no-pod-routes", known=clients,
                                               known_flag=f"{flag_prefix}client"),
        image_registry=getattr(args, "image_registry", None),
        keep_cluster=bool(getattr(args, "keep_cluster", False)),
        dry_run=bool(getattr(args, "dry_run", False)),
        out=getattr(args, "out", None),
        profile=getattr(args, "profile", None),
        kubesphere=kubesphere,
    )


def open_for(name: str, options: BackendOptions) -> Backend:
    """Open backend ``name`` with netiso's own probers; unknown names are bad input."""
    from netiso.probe.prober import start_agent_prober

    try:
        return open_backend(name, options, probers=start_agent_prober)
    except BackendUnavailable as exc:
        raise InputError(str(exc)) from None


def select_group(topos: Sequence[Topology], group: str | None) -> list[Topology]:
    """Scenarios of one ``ENCAPSULATION/LOADBALANCER[/default|own]`` group (configs.parse_group)."""
    if not group:
        return list(topos)
    from netiso.model.cluster_groups import in_cluster_group, parse_group

    try:
        parsed = parse_group(group)
    except ValueError as exc:
        raise InputError(f"--group {group}: {exc}") from None
    chosen = [t for t in topos if in_cluster_group(t.scenario.cluster, parsed)]
    if not chosen:
        raise InputError(f"--group {group}: no scenario of the given files is in that group")
    return chosen


def scenario_json(res: ScenarioResult) -> dict[str, Any]:
    from netiso.report.document import flow_json

    timings = {k: round(v, 3) for k, v in res.timings.items()}
    out = {"name": res.topo.name, "description": res.topo.scenario.description,
           "encapsulation": res.topo.encapsulation, "loadBalancer": res.topo.load_balancer,
           "warnings": res.topo.warnings}
    out["lab" if res.backend == "lab" else "timings"] = timings
    out.update(res.findings)
    out["flows"] = [flow_json(r.pred, r.obs, r.problems) for r in res.results]
    return out


def _dry_run(args: argparse.Namespace, options: BackendOptions, topos: list[Topology]) -> int:
    if args.backend == "lab":
        raise InputError("--dry-run writes the plan of a cluster backend (--backend kube or kind); "
                         "the lab has nothing to plan: run `netiso check` or `netiso render`")
    if not args.out:
        raise InputError("--dry-run needs --out DIR (where the ordered objects and plan.txt go)")
    backend = open_for(args.backend, options)
    try:
        written = backend.plan(topos, Path(args.out))
    except BackendUnavailable as exc:
        raise InputError(str(exc)) from None
    files = {f for d in written for f in (d.rglob("*") if d.is_dir() else [d]) if f.is_file()}
    print(f"dry run: {len(files)} files written under {args.out} for {len(topos)} scenarios; no cluster contacted")
    return 0


def run_check(args: argparse.Namespace) -> int:
    from netiso.model.addressing import load_topologies
    from netiso.probe.agent import AgentError
    from netiso.report.document import document
    from netiso.report.table import check_table

    if args.report:
        Path(args.report).mkdir(parents=True, exist_ok=True)
    options = backend_options(args)
    topos = select_group(load_topologies(list(args.paths)), getattr(args, "group", None))
    if options.dry_run:
        return _dry_run(args, options, topos)
    progress = Progress(len(topos), sum(len(t.scenario.flows) for t in topos), backend=args.backend)
    options.progress = progress.say
    backend = open_for(args.backend, options)
    started = time.perf_counter()

    def show(res: ScenarioResult) -> None:
        print(check_table(res.topo, [(r.pred, r.obs, r.problems) for r in res.results],
                          paths=getattr(args, "show_paths", False)))
        for line in res.finding_problems:
            print(f"   {line}")
        if res.backend == "lab":
            print(f"   lab up {res.timings.get('up_s', 0):.2f}s, probes {res.timings.get('probe_s', 0):.2f}s, "
                  f"down {res.timings.get('down_s', 0):.2f}s")
        else:
            print(f"   {res.backend}: realized, probed and removed in {res.timings.get('total_s', 0):.1f}s")
        print()
        sys.stdout.flush()

    try:
        backend.preflight(topos)
        for line in backend.clean():  # janitor: whatever a crashed run left
            log.info("janitor: %s", line)
        scenarios = check_many(topos, jobs=options.jobs, on_result=show, backend=backend, progress=progress)
    except BackendUnavailable as exc:
        # the backend removed what it had built before the error got here: nothing is left half-built
        raise InputError(str(exc)) from None
    except AgentError as exc:
        raise InputError(f"the {args.backend} backend could not start: {exc}") from None
    finally:
        backend.close()
        progress.close()
    flows = sum(len(s.results) for s in scenarios)
    bad = sum(s.mismatches for s in scenarios)
    skipped = sum(s.skipped for s in scenarios)
    found = sum(len(s.finding_problems) for s in scenarios)
    where = "on the lab" if args.backend == "lab" else f"on {args.backend}"
    summary = f"{len(scenarios)} scenarios, {flows} flows {where} in {time.perf_counter() - started:.1f}s: " \
              f"{flows - bad - skipped} matched, {bad} mismatched"
    if skipped:
        summary += f", {skipped} skipped (not probed: never counted as matched)"
    if found:
        summary += f"; {found} scenario finding{'s' if found > 1 else ''} (e.g. controller differences: see the report)"
    print(summary)
    doc = document(args.backend, DEFAULT_PROFILE, [scenario_json(s) for s in scenarios])
    del scenarios  # the document is what is left to write: keep the peak memory of a large run down
    from netiso.report.compact import dumps, share_paths, wants_sharing

    if wants_sharing(doc, getattr(args, "json_paths", None) or "auto"):
        share_paths(doc)
    if getattr(args, "baseline", None):
        from netiso.report.baseline import format_changes, load_baseline

        print(format_changes(load_baseline(args.baseline), doc, args.baseline))
    if args.json:
        Path(args.json).write_text(dumps(doc), encoding="utf-8")
    if args.report:
        from netiso.report.markdown import write_reports

        write_reports(Path(args.report), doc)
    return 1 if bad or skipped or found else 0


def clean_command(args: argparse.Namespace) -> int:
    backend = open_for(getattr(args, "backend", None) or "lab", backend_options(args))
    try:
        lines = backend.clean()
    except BackendUnavailable as exc:
        raise InputError(str(exc)) from None
    finally:
        backend.close()
    for line in lines:
        print(line)
    return 0
