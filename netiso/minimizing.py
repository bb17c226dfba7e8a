"""``netiso minimal-config``: the minimal whitelist from the oracle, proved on a backend.

Top layer: :mod:`netiso.oracle.minimal` computes the answer without root; this module prints
it, writes the contract JSON and, with ``--backend lab|kube|kind``, proves it on that backend's
datapath (through the backend interface, like ``netiso check``).
A proof is only worth something if it could fail, so it checks both directions:

* the scenario with the minimal whitelist (rules ``minimal-<n>``): every wanted flow allowed,
  every ``forcedOpen`` flow allowed (the SNAT caveat, measured), every other unwanted flow
  not allowed, and the ``unsatisfiable`` wanted flows indeed not allowed;
* per entry, the scenario without that entry: at least one of its ``neededBy`` flows is no
  longer allowed (otherwise the entry is not needed on the real datapath and the whitelist
  is not minimal).

Flows the oracle predicts as ``mixed`` (some endpoints pass, some do not) get no claim: one
probe lands on one endpoint. All labs of all scenarios run side by side through
:func:`netiso.checking.check_many`; each lab carries only the flows marked with an intent
(the others say nothing about the whitelist), without their ``expect`` (written for the
scenario's own whitelist).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from netiso.model.addressing import resolve
from netiso.model.errors import InputError
from netiso.model.symbols import parse_endpoint
from netiso.model.types import FlowSpec, Scenario, Topology
from netiso.oracle.minimal import Entry, MinimalConfig, minimal_config, minimal_json, rule_name
from netiso.oracle.minimal_cluster import alternative_table, cluster_alternative, kept_entries, with_settings
from netiso.oracle.predict import predict_all


@dataclass(frozen=True)
class Claim:
    """What one probed flow must show on the lab."""

    flow: FlowSpec
    allowed: bool  # expected: allowed, or anything but allowed
    project: str | None  # whose ``verified`` it decides (None: every project of the scenario)
    role: str  # wanted | unsatisfiable | forcedOpen | uncovered | unwanted | neededBy


@dataclass
class ProofLab:
    """One lab of a proof: the minimal whitelist (``entry`` None) or the whitelist without ``entry``."""

    result: MinimalConfig
    topo: Topology
    claims: list[Claim]
    entry: Entry | None = None
    rule: str = ""
    alternative: bool = False  # the cluster-wide settings instead of the entries they replace
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return "minimal whitelist" if self.entry is None else f"without {self.rule} ({self.entry.peer})"


def _owner(result: MinimalConfig, flow: FlowSpec) -> str | None:
    """The project whose result speaks about ``flow`` (its entries, notes or destination)."""
    for p in result.projects:
        if (any(flow.label in e.needed_by for e in p.whitelist)
                or any(n.flow.index == flow.index for n in (*p.unsatisfiable, *p.forced_open))):
            return p.project
    dst = parse_endpoint(flow.dst).project
    return dst if dst is not None and result.project(dst) is not None else None


def main_claims(result: MinimalConfig, topo: Topology) -> list[Claim]:
    """Claims about every intent flow in the lab that carries the minimal whitelist."""
    verdicts = {p.flow.index: p.verdict for p in predict_all(topo, result.profile)}
    unsat = {n.flow.index for p in result.projects for n in p.unsatisfiable}
    forced = {n.flow.index for p in result.projects for n in p.forced_open}
    uncovered = {n.flow.index for n in result.uncovered}
    claims = []
    for flow in topo.scenario.flows:  # flow.index is the position in the scenario as written
        i = flow.index
        if verdicts.get(i) == "mixed":
            continue
        if flow.intent == "wanted":
            claims.append(Claim(flow, i not in unsat, _owner(result, flow), "unsatisfiable" if i in unsat else "wanted"))
        elif i in forced or i in uncovered:
            claims.append(Claim(flow, True, _owner(result, flow), "uncovered" if i in uncovered else "forcedOpen"))
        else:
            claims.append(Claim(flow, False, _owner(result, flow), "unwanted"))
    return claims


def _probe_scenario(scenario: Scenario, flows: Sequence[FlowSpec], suffix: str) -> Scenario:
    return replace(scenario, name=f"{scenario.name} ({suffix})", flows=tuple(replace(f, expect=None) for f in flows))


def proof_labs(result: MinimalConfig) -> list[ProofLab]:
    """The labs that prove ``result``: one with the minimal whitelist, one per entry without it."""
    intent = [f for f in result.base.flows if f.intent in ("wanted", "unwanted")]
    main = resolve(_probe_scenario(result.scenario_with(), intent, "minimal whitelist"))
    labs = [ProofLab(result, main, main_claims(result, main))]
    wanted = [f for f in result.base.flows if f.intent == "wanted"]
    for entry in result.entries:
        others = [e for e in result.entries if e != entry]
        needed = [f for f in wanted if f.label in entry.needed_by]
        rule = rule_name(result, entry)
        topo = resolve(_probe_scenario(result.scenario_with(others), needed, f"without {rule}"))
        claims = [Claim(f, False, entry.project, "neededBy") for f in topo.scenario.flows]
        labs.append(ProofLab(result, topo, claims, entry, rule))
    alt = result.alternative
    if alt is not None:
        # the settings must keep every satisfied wanted flow working and open nothing unwanted
        # beyond the minimal whitelist's forcedOpen and the alternative's own `opens`
        settings = replace(result.base.cluster.kubesphere, allowed_ingress_namespaces=alt.allowed_ingress_namespaces,
                           snat_node_ips=alt.snat_node_ips)
        scenario = with_whitelist_of(result, kept_entries(result, alt), settings)
        topo = resolve(_probe_scenario(scenario, intent, "cluster-wide settings"))
        opened = {n.flow.index for n in alt.opens}
        claims = [replace(c, allowed=c.allowed or c.flow.index in opened) for c in main_claims(result, topo)]
        labs.append(ProofLab(result, topo, claims, alternative=True))
    return labs


def with_whitelist_of(result: MinimalConfig, entries: Sequence[Entry], settings: Any) -> Scenario:
    """``result.base`` with ``entries`` as ``minimal-<n>`` rules and ``cluster.kubesphere`` = ``settings``."""
    return with_settings(result.scenario_with(entries), settings)


def attach_alternatives(results: Sequence[MinimalConfig]) -> None:
    """Compute, per result, the smaller cluster-wide KubeSphere settings answer (if there is one)."""
    for r in results:
        r.alternative = cluster_alternative(r)


def judge_lab(lab: ProofLab, observed: Sequence[str]) -> list[tuple[str | None, str]]:
    """Failures of one lab as ``(project or None, message)``; ``observed`` = verdict per scenario flow."""
    verdict = dict(zip(lab.topo.scenario.flows, observed, strict=True))
    if lab.entry is not None:
        if not lab.claims:
            return [(lab.entry.project, f"{lab.title}: the entry names no neededBy flow, so nothing shows it is needed")]
        if all(verdict[c.flow] == "allowed" for c in lab.claims):
            flows = "; ".join(c.flow.label for c in lab.claims)
            return [(lab.entry.project, f"{lab.title}: every flow that needs it still passed on the lab ({flows}): "
                     "the entry is not needed")]
        return []
    out: list[tuple[str | None, str]] = []
    for c in lab.claims:
        got = verdict[c.flow]
        if (got == "allowed") != c.allowed:
            want = "allowed" if c.allowed else "not allowed"
            out.append((c.project, f"{lab.title}: {c.role} flow {c.flow.label} was {got} on the lab, expected {want}"))
    return out


Runner = Callable[[list[Topology]], list[Any]]


def _backend_runner(jobs: int | None, backend: Any = None) -> Runner:
    def run(topos: list[Topology]) -> list[Any]:
        from netiso.checking import check_many

        return check_many(topos, jobs=jobs, backend=backend)

    return run


def prove(results: Sequence[MinimalConfig], *, jobs: int | None = None, runner: Runner | None = None,
          backend: Any = None) -> list[ProofLab]:
    """Run every proof lab (``jobs`` side by side, default: the backend's) and set ``verified``/``proof``
    on each project. ``backend`` (from ``netiso.backends.open_backend``) defaults to the lab.
    """
    labs = [lab for r in results for lab in proof_labs(r)]
    outcomes = (runner or _backend_runner(jobs, backend))([lab.topo for lab in labs])
    failures: dict[int, list[tuple[str | None, str]]] = {}
    for lab, res in zip(labs, outcomes, strict=True):
        lab.timings = dict(getattr(res, "timings", {}) or {})
        observed = [r.obs.verdict for r in res.results]  # skipped flows are never "allowed": no false proof
        if lab.alternative:
            found = [msg for _, msg in judge_lab(lab, observed)]
            lab.result.alternative.proof = found
            lab.result.alternative.verified = not found
            continue
        failures.setdefault(id(lab.result), []).extend(judge_lab(lab, observed))
    for r in results:
        found = failures.get(id(r), [])
        for p in r.projects:
            p.proof = [msg for project, msg in found if project in (None, p.project)]
            p.verified = not p.proof
        known = {p.project for p in r.projects}
        r.proof = [msg for project, msg in found if project is None or project not in known]
    return labs


# --------------------------------------------------------------------------- output


def minimal_table(result: MinimalConfig, where: str = "lab") -> str:
    """The answer for one scenario, for people: entries with reason and neededBy, then the caveats."""
    from netiso.report.table import render_table

    s = result.scenario
    lines = [f"== {s.name}  ({s.source.file})"]
    if not result.projects:
        lines.append("   no isolated project is involved in the wanted flows: nothing to whitelist")
    for p in result.projects:
        head = f"project {p.project} [{p.mode} isolation]" if p.mode in ("project", "workspace") else \
            f"project {p.project} [{p.mode}]"
        if p.ignored:
            head += f" - its own ingress whitelist ignored: {', '.join(p.ignored)}"
        lines.append(head)
        if p.whitelist:
            rows = [[str(i), e.peer, ", ".join(str(x) for x in e.ports) or "any", "; ".join(e.needed_by)]
                    for i, e in enumerate(p.whitelist, 1)]
            lines.extend("  " + ln for ln in render_table(["#", "PEER", "PORTS", "NEEDED BY"], rows).splitlines())
            lines.extend(f"  why {i}: {e.reason}" for i, e in enumerate(p.whitelist, 1))
        else:
            lines.append("  whitelist: none needed")
        for title, notes in (("forced open (unwanted, admitted anyway)", p.forced_open),
                             ("unsatisfiable (wanted, no ingress whitelist opens it)", p.unsatisfiable)):
            if notes:
                lines.append(f"  {title}:")
                lines.extend(f"    {n.flow.label}: {n.because}" for n in notes)
        if p.verified is not None:
            lines.append(f"  verified on the {where}: " + ("yes" if p.verified else "NO"))
            lines.extend(f"    ✗ {msg}" for msg in p.proof)
    for n in result.uncovered:
        lines.append(f"unwanted but outside this whitelist: {n.flow.label}: {n.because}")
    if result.alternative is not None:
        lines.extend(alternative_table(result.alternative, where))
    lines.extend(f"✗ not verified on the {where}: {msg}" for msg in result.proof)
    return "\n".join(lines)


def load_wanted(paths: Sequence[str]) -> tuple[list[Scenario], list[str]]:
    """Scenarios with wanted flows, and the names skipped.

    A FILE named on the command line must have wanted flows in every document (else exit 2,
    naming the document); documents found by walking a DIR without any are skipped, so that
    ``minimal-config scenarios/`` answers for the files that ask the question.
    """
    from netiso.model.addressing import load_topologies

    files = {Path(p).resolve() for p in paths if Path(p).is_file()}
    keep, skipped = [], []
    for topo in load_topologies(list(paths)):
        s = topo.scenario
        if any(f.intent == "wanted" for f in s.flows):
            keep.append(s)
        elif Path(s.source.file).resolve() in files:
            minimal_config(s)  # raises the InputError that names the file and document
        else:
            skipped.append(s.name)
    if not keep:
        raise InputError(f"no scenario in {', '.join(paths)} has a flow with intent: wanted; minimal-config needs "
                         "the flows that must keep working marked 'intent: wanted'")
    return keep, skipped


def run_minimal_config(args: argparse.Namespace) -> int:
    """The command: 0 computed (and proved, with a backend), 1 a backend did not confirm it, 2 bad input."""
    backend = getattr(args, "backend", None)
    started = time.perf_counter()
    scenarios, skipped = load_wanted(args.paths)
    results = [minimal_config(s) for s in scenarios]
    attach_alternatives(results)
    computed = time.perf_counter() - started
    labs: list[ProofLab] = []
    if backend is not None:
        from netiso.backends import BackendUnavailable
        from netiso.checking import backend_options, open_for
        from netiso.probe.agent import AgentError

        options = backend_options(args)
        if options.dry_run:
            raise InputError("minimal-config has no --dry-run; use `netiso check --dry-run` on the scenario")
        session = open_for(backend, options)
        try:
            session.preflight([proof.topo for r in results for proof in proof_labs(r)])
            session.clean()
            labs = prove(results, jobs=options.jobs, backend=session)
        except BackendUnavailable as exc:
            raise InputError(str(exc)) from None
        except AgentError as exc:
            raise InputError(f"the {backend} backend could not start: {exc}") from None
        finally:
            session.close()
    for r in results:
        print(minimal_table(r, backend or "lab"))
        print()
    if skipped:
        print(f"skipped {len(skipped)} scenarios without intent: wanted flows: {', '.join(skipped)}")
    entries = sum(len(r.entries) for r in results)
    print(f"{len(results)} scenarios, {entries} whitelist entries computed in {computed:.2f}s", end="")
    if labs:
        bad = sum(1 for r in results for p in r.projects if p.verified is False)
        probes = sum(len(lab.topo.scenario.flows) for lab in labs)
        print(f"; proved on the {backend} with {len(labs)} {'labs' if backend == 'lab' else 'scenarios'}, {probes} probes in "
              f"{time.perf_counter() - started - computed:.1f}s: {bad} projects NOT verified", end="")
    print()
    if args.json:
        Path(args.json).write_text(json.dumps(minimal_json(results), indent=2, ensure_ascii=False) + "\n",
                                   encoding="utf-8")
    sys.stdout.flush()
    unproved = (any(p.verified is False for r in results for p in r.projects) or any(r.proof for r in results)
                or any(r.alternative is not None and r.alternative.verified is False for r in results))
    return 1 if unproved else 0
