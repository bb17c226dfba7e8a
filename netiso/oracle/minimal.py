"""The smallest ingress whitelist per isolated project: the founding question, computed.

Given the flows a scenario marks ``intent: wanted`` / ``intent: unwanted``, which KubeSphere
whitelist entries must an isolated project carry so that every wanted flow passes, and what
do those entries open for the unwanted ones? The answer is derived, never looked up: the
scenario's own ingress whitelists of the isolated projects involved are dropped, every wanted
flow is predicted, and each outcome dropped by a pod's ingress policy names the source address
that policy saw. That address becomes the natural KubeSphere entry:

* a pod (the ingress controller, another project's pod) -> ``{project: <its namespace>}``:
  pod sources are matched by namespace, and an ipBlock of a pod IP would break on restart;
* a client, node or tunnel address -> ``{cidr: client:X | node:X | tunnel:X}`` (symbols, so
  the same answer holds on any backend that resolves them).

Entries carry ports: the destination ports the policy saw (the pod's port after kube-proxy's
DNAT, not the NodePort). KubeSphere's external allowlist takes protocol/port, and a port-less
entry would open every port of the project to the SNAT addresses that the whole cluster
shares, which is exactly the exposure the founding question is about.

The loop adds entries and re-predicts (kube-proxy may pick any endpoint, so a wanted flow must
pass for every outcome) until the flow passes, or until an outcome fails for a reason no
ingress whitelist can change (no local endpoint under ETP Local, a VIP nobody announces, the
egress policy of the source, workspace-mode isolation whose NamespaceNetworkPolicies KubeSphere
deletes): that flow is ``unsatisfiable`` with the reason taken from its path. Then greedy
removal drops every entry (and port) the wanted flows do not need, and each survivor gets
``neededBy`` (the wanted flows that fail without it) and a ``reason`` built from the path.
Finally ``forcedOpen`` lists the unwanted flows the minimal whitelist lets through, naming the
entry that admits them and why their source is shared (SNAT to the entry node's address, the
controller pod every request comes from, the entry naming the source itself).

Only the scenario's *ingress* whitelist rules are ignored; egress rules stay as written (they
decide what the project's pods may send and are not what this computes).

Which policy admitted or dropped an outcome, and what source it saw, is read from the hops
themselves: the path engine's hop for every ingress decision is a :class:`~netiso.oracle.paths.Hop`
carrying that :class:`~netiso.oracle.paths.PolicyCheck`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from netiso.model.addressing import resolve
from netiso.model.errors import InputError
from netiso.model.symbols import parse_endpoint
from netiso.model.tenancy import project_mode
from netiso.model.types import FlowSpec, Port, Scenario, Topology, WhitelistRule
from netiso.oracle.minimal_reasons import denial_text, entry_reason, fatal_text, forced_because, peer_of
from netiso.oracle.paths import Outcome, PathEngine, PolicyCheck
from netiso.oracle.predict import Prediction, predict
from netiso.oracle.profile import DEFAULT_PROFILE, Profile

RULE_PREFIX = "minimal-"  # whitelist rules built from a result: minimal-1, minimal-2, ... per project
WHITELISTABLE_MODES = ("project", "unmanaged")  # syncNs keeps (or never sees) the project's NSNPs
ISOLATED_MODES = ("project", "workspace")
MAX_ROUNDS = 32  # entries added for one flow before giving up (each round adds at least one)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Entry:
    """One ingress whitelist entry of a project (peer kind ``cidr`` or ``project``)."""

    project: str
    peer_kind: str
    peer_value: str
    ports: tuple[Port, ...] = ()
    reason: str = ""
    needed_by: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.project, self.peer_kind, self.peer_value)

    @property
    def peer(self) -> str:
        return f"{self.peer_kind}: {self.peer_value}"

    def json(self) -> dict[str, Any]:
        return {"peer": {self.peer_kind: self.peer_value}, "ports": [str(p) for p in self.ports],
                "reason": self.reason, "neededBy": list(self.needed_by)}


@dataclass(frozen=True)
class FlowNote:
    """A flow with an explanation: forcedOpen, unsatisfiable, or uncovered."""

    flow: FlowSpec
    because: str

    def json(self) -> dict[str, str]:
        return {"from": self.flow.src, "to": self.flow.dst, "because": self.because}


@dataclass
class ProjectResult:
    project: str
    mode: str  # KubeSphere's view of the project: project | workspace | open | unmanaged
    ignored: tuple[str, ...] = ()  # the scenario's own ingress rules left out
    whitelist: list[Entry] = field(default_factory=list)
    forced_open: list[FlowNote] = field(default_factory=list)
    unsatisfiable: list[FlowNote] = field(default_factory=list)
    verified: bool | None = None  # set by a backend's proof
    proof: list[str] = field(default_factory=list)  # what a failed proof found

    def json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"project": self.project, "whitelist": [e.json() for e in self.whitelist],
                               "forcedOpen": [n.json() for n in self.forced_open],
                               "unsatisfiable": [n.json() for n in self.unsatisfiable]}
        if self.verified is not None:
            out["verified"] = self.verified
            if self.proof:
                out["proof"] = list(self.proof)
        return out


@dataclass
class MinimalConfig:
    """The answer for one scenario; ``base`` is the scenario without the ignored rules."""

    scenario: Scenario
    base: Scenario
    projects: list[ProjectResult]
    uncovered: list[FlowNote]  # unwanted flows that pass without touching a project reported here
    profile: Profile = DEFAULT_PROFILE
    proof: list[str] = field(default_factory=list)  # proof failures no reported project owns
    # netiso.oracle.minimal_cluster.ClusterAlternative: KubeSphere settings, where they are smaller
    alternative: Any = None

    @property
    def entries(self) -> list[Entry]:
        return [e for p in self.projects for e in p.whitelist]

    def project(self, name: str) -> ProjectResult | None:
        return next((p for p in self.projects if p.project == name), None)

    def scenario_with(self, entries: Sequence[Entry] | None = None) -> Scenario:
        """``base`` plus ``entries`` (default: the minimal whitelist) as ``minimal-<n>`` rules."""
        return with_whitelist(self.base, self.entries if entries is None else entries)[0]

    def json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.scenario.name, "projects": [p.json() for p in self.projects]}
        if self.uncovered:
            out["uncovered"] = [n.json() for n in self.uncovered]
        if self.proof:
            out["proof"] = list(self.proof)
        if self.alternative is not None:
            out["clusterSettings"] = self.alternative.json()
        return out


def minimal_json(results: Iterable[MinimalConfig]) -> dict[str, Any]:
    """The ``minimal-config --json`` document of the contract (docs/scenarios.md)."""
    return {"scenarios": [r.json() for r in results]}


# --------------------------------------------------------------------------- scenario editing


def strip_ingress_whitelists(scenario: Scenario, projects: Iterable[str]) -> tuple[Scenario, dict[str, tuple[str, ...]]]:
    """``scenario`` without the ingress whitelist rules of ``projects``; returns the names dropped.

    >>> from netiso.model.types import ClusterSpec, ProjectSpec
    >>> r = WhitelistRule("a", "ingress", "cidr", "client:alice")
    >>> s = Scenario("t", "", ClusterSpec(), (), (ProjectSpec("shop", "ws", True, (r,)),), (), (), (), (), ())
    >>> strip_ingress_whitelists(s, ["shop"])[0].projects[0].whitelist, strip_ingress_whitelists(s, ["shop"])[1]
    ((), {'shop': ('a',)})
    """
    names = set(projects)
    dropped: dict[str, tuple[str, ...]] = {}
    specs = []
    for p in scenario.projects:
        if p.name in names:
            dropped[p.name] = tuple(r.name for r in p.whitelist if r.direction == "ingress")
            p = replace(p, whitelist=tuple(r for r in p.whitelist if r.direction != "ingress"))
        specs.append(p)
    return replace(scenario, projects=tuple(specs)), dropped


def with_whitelist(base: Scenario, entries: Sequence[Entry]) -> tuple[Scenario, dict[str, Entry]]:
    """``base`` plus one ingress rule ``minimal-<n>`` per entry (numbered per project, in order).

    Also returns ``"<project>/nsnp-<rule>" -> entry``, the name a policy Decision's
    ``admitted_by`` starts with, to map an admission back to its entry.
    """
    by_project: dict[str, list[Entry]] = {}
    for e in entries:
        by_project.setdefault(e.project, []).append(e)
    names: dict[str, Entry] = {}
    specs = []
    for p in base.projects:
        rules = list(p.whitelist)
        taken = {r.name for r in rules}
        for n, e in enumerate(by_project.pop(p.name, ()), 1):
            name = f"{RULE_PREFIX}{n}"
            while name in taken:
                name += "-x"
            rules.append(WhitelistRule(name, "ingress", e.peer_kind, e.peer_value, e.ports))
            names[f"{p.name}/nsnp-{name}"] = e
        specs.append(replace(p, whitelist=tuple(rules)))
    if by_project:
        raise ValueError(f"whitelist entries for unknown projects: {', '.join(sorted(by_project))}")
    return replace(base, projects=tuple(specs)), names


def rule_name(result: MinimalConfig, entry: Entry) -> str:
    """The ``minimal-<n>`` name ``entry`` gets in ``result.scenario_with()``."""
    _, names = with_whitelist(result.base, result.entries)
    return next(k.split("/nsnp-", 1)[1] for k, e in names.items() if e == entry)


# --------------------------------------------------------------------------- observing the oracle


@dataclass
class _View:
    outcome: Outcome
    denial: PolicyCheck | None  # the ingress policy that dropped it
    denial_hop: int  # index of that hop
    admissions: list[tuple[int, PolicyCheck]]  # isolating policies that admitted it, with hop index


@dataclass
class _Eval:
    pred: Prediction
    views: list[_View]

    @property
    def passes(self) -> bool:
        return bool(self.views) and all(v.outcome.verdict == "allowed" for v in self.views)

    @property
    def blocked(self) -> list[_View]:
        return [v for v in self.views if v.outcome.verdict != "allowed"]


class _Predictor:
    """Predict single flows under a given whitelist, caching one topology per whitelist."""

    def __init__(self, base: Scenario, profile: Profile) -> None:
        self.base = base
        self.profile = profile
        self._engines: dict[tuple[Entry, ...], tuple[PathEngine, dict[str, Entry]]] = {}
        self._evals: dict[tuple[tuple[Entry, ...], FlowSpec], _Eval] = {}

    def engine(self, entries: Sequence[Entry]) -> tuple[PathEngine, dict[str, Entry]]:
        key = tuple(entries)
        if key not in self._engines:
            scenario, names = with_whitelist(self.base, key)
            self._engines[key] = (PathEngine(resolve(scenario), self.profile), names)
        return self._engines[key]

    def evaluate(self, entries: Sequence[Entry], flow: FlowSpec) -> _Eval:
        key = (tuple(entries), flow)
        if key not in self._evals:
            engine, _ = self.engine(entries)
            pred = predict(engine, flow)
            self._evals[key] = _Eval(pred, [_view(o) for o in pred.outcomes])
        return self._evals[key]

    def all_pass(self, entries: Sequence[Entry], flows: Iterable[FlowSpec]) -> bool:
        return all(self.evaluate(entries, f).passes for f in flows)


def _view(outcome: Outcome) -> _View:
    denial, denial_hop = None, -1
    admissions: list[tuple[int, PolicyCheck]] = []
    for i, hop in enumerate(outcome.hops):
        c = getattr(hop, "check", None)
        if c is None:
            continue
        if not c.decision.allowed and denial is None:
            denial, denial_hop = c, i
        elif c.decision.allowed and c.decision.isolated:
            admissions.append((i, c))
    if outcome.verdict == "allowed":
        denial = None
    return _View(outcome, denial, denial_hop, admissions)


# --------------------------------------------------------------------------- the computation


def minimal_config(scenario: Scenario, profile: Profile = DEFAULT_PROFILE) -> MinimalConfig:
    """The minimal ingress whitelist per isolated project for ``scenario``'s wanted flows.

    Raises :class:`InputError` when no flow is marked ``intent: wanted``.
    """
    wanted = [f for f in scenario.flows if f.intent == "wanted"]
    unwanted = [f for f in scenario.flows if f.intent == "unwanted"]
    if not wanted:
        src = scenario.source
        raise InputError("no flow has intent: wanted, so there is nothing to keep working; mark the flows that "
                         "must pass with 'intent: wanted' (and those that should not with 'intent: unwanted')",
                         file=src.file, document=src.index, name=src.name or scenario.name, field="flows")
    topo0 = resolve(scenario)
    involved = _involved_projects(topo0, wanted)
    modes = {p.name: project_mode(scenario, p.name) for p in scenario.projects}
    base, ignored = strip_ingress_whitelists(scenario, [p for p in involved if modes[p] == "project"])
    oracle = _Predictor(base, profile)
    projects: dict[str, ProjectResult] = {}

    def project(name: str) -> ProjectResult:
        if name not in projects:
            projects[name] = ProjectResult(name, modes.get(name, "unmanaged"), ignored.get(name, ()))
        return projects[name]

    for name in involved:
        if modes[name] in ISOLATED_MODES:
            project(name)

    # 1. add entries until every wanted flow passes, or cannot
    ports: dict[tuple[str, str, str], list[Port]] = {}
    unsat: dict[FlowSpec, tuple[str, str]] = {}
    for flow in wanted:
        for _ in range(MAX_ROUNDS):
            ev = oracle.evaluate(_entries(ports), flow)
            if ev.passes:
                break
            added, fatal = False, None
            for v in ev.blocked:
                need = _need(ev, v, modes)
                if isinstance(need, _Blocked):
                    fatal = (need.project, need.reason)
                    break
                if need.port not in ports.setdefault(need.key, []):
                    ports[need.key].append(need.port)
                    added = True
            if fatal is None and not added:
                fatal = (_home(ev.pred), "the entries added do not admit it: " + denial_text(ev.blocked[0]))
            if fatal is not None:
                unsat[flow] = _share(fatal, ev)
                break
        else:
            unsat[flow] = (_home(ev.pred), f"still blocked after {MAX_ROUNDS} whitelist entries")
    satisfiable = [f for f in wanted if f not in unsat]

    # 2. greedy removal: entries, then single ports of multi-port entries
    entries = _entries(ports)
    for e in list(entries):
        trial = [x for x in entries if x != e]
        if oracle.all_pass(trial, satisfiable):
            entries = trial
    for i, e in enumerate(list(entries)):
        for p in e.ports:
            current = entries[i]
            if len(current.ports) < 2:
                break
            smaller = replace(current, ports=tuple(x for x in current.ports if x != p))
            trial = entries[:i] + [smaller] + entries[i + 1:]
            if oracle.all_pass(trial, satisfiable):
                entries = trial

    # 3. neededBy and reason of every survivor
    final = []
    for e in entries:
        without = [x for x in entries if x != e]
        failing = [f for f in satisfiable if not oracle.evaluate(without, f).passes]
        reason = next((r for f in failing if (r := entry_reason(e, oracle.evaluate(without, f)))), "")
        final.append(replace(e, reason=reason or "needed by the flows listed", needed_by=tuple(f.label for f in failing)))
    for e in final:
        project(e.project).whitelist.append(e)
    for flow in wanted:
        if flow in unsat:
            where, why = unsat[flow]
            project(where).unsatisfiable.append(FlowNote(flow, why))

    # 4. what the minimal whitelist lets through of the unwanted flows
    uncovered: list[FlowNote] = []
    _, names = oracle.engine(final)
    for flow in unwanted:
        ev = oracle.evaluate(final, flow)
        allowed = [v for v in ev.views if v.outcome.verdict == "allowed"]
        if not allowed:
            continue
        share = "" if len(allowed) == len(ev.views) else f"for {len(allowed)} of {len(ev.views)} endpoints: "
        view = allowed[0]
        admissions = [(i, c) for i, c in view.admissions if c.pod.project in projects]
        if admissions:
            hop, call = admissions[-1]
            project(call.pod.project).forced_open.append(
                FlowNote(flow, share + forced_because(ev, view, hop, call, names)))
        else:
            receiver = view.outcome.receiver or "the destination"
            uncovered.append(FlowNote(flow, share + f"reaches {receiver} without an isolating ingress policy of "
                                      "a project reported here admitting it: no whitelist entry decides it"))
    ordered = [projects[n] for n in projects]
    return MinimalConfig(scenario, base, ordered, uncovered, profile)


def _entries(ports: Mapping[tuple[str, str, str], list[Port]]) -> list[Entry]:
    return [Entry(p, kind, value, tuple(sorted(ps))) for (p, kind, value), ps in ports.items()]


def _involved_projects(topo: Topology, flows: Iterable[FlowSpec]) -> list[str]:
    """Projects whose pods the flows must reach: the destination's, and an ingress controller's."""
    from netiso.model.flows import resolve_flow

    out: list[str] = []
    for flow in flows:
        t = resolve_flow(topo, flow)
        names = [_dst_project(flow)]
        if t.ingress is not None:
            names.append(t.ingress.controller.pod.project)
        if t.service is not None:
            names.extend(p.project for p in t.service.endpoints)
        out.extend(n for n in names if n and n not in out)
    return out


def _dst_project(flow: FlowSpec) -> str | None:
    return parse_endpoint(flow.dst).project


def _home(pred: Prediction) -> str:
    """The project a flow's verdict is reported under: its destination's (else its origin's)."""
    pod = pred.target.origin_pod
    return _dst_project(pred.flow) or (pod.project if pod else "-")


@dataclass(frozen=True)
class _Needed:
    key: tuple[str, str, str]  # (project, peer kind, peer value)
    port: Port


@dataclass(frozen=True)
class _Blocked:
    project: str
    reason: str


def _need(ev: _Eval, v: _View, modes: Mapping[str, str]) -> _Needed | _Blocked:
    """What would let outcome ``v`` pass: an entry (key and port), or why nothing can."""
    c = v.denial
    if c is None:
        return _Blocked(_home(ev.pred), fatal_text(v.outcome))
    mode = modes.get(c.pod.project, "unmanaged")
    if mode not in WHITELISTABLE_MODES:
        return _Blocked(c.pod.project, denial_text(v) + "; " + _mode_text(c, mode))
    kind, value = peer_of(ev.pred.topo, c)
    return _Needed((c.pod.project, kind, value), Port(c.port, c.protocol))


def _share(fatal: tuple[str, str], ev: _Eval) -> tuple[str, str]:
    n = len(ev.views)
    bad = len(ev.blocked)
    return fatal if n < 2 else (fatal[0], f"for {bad} of {n} endpoints: {fatal[1]}")


def _mode_text(c: PolicyCheck, mode: str) -> str:
    if mode == "workspace":
        return (f"{c.pod.project} is isolated by its workspace (workspace mode): KubeSphere's syncNs deletes every "
                f"NamespaceNetworkPolicy there, so no whitelist entry survives; enable project isolation on "
                f"{c.pod.project} to whitelist")
    return (f"{c.pod.project} is not isolated by KubeSphere ({', '.join(c.decision.policies)} isolate it), and "
            "syncNs deletes the NamespaceNetworkPolicies of a project without isolation")
