"""How long one kind workflow cell takes, estimated from its plan: cluster, images, add-ons, scenarios.

Why: a GitHub Actions job that hits its ``timeout-minutes`` is cancelled and uploads nothing
useful (reports are written at the end of the session), so each cell of
``.github/workflows/kind-conformance.yml`` must stay well inside its limit, and the only way to
know before the first live run is to add up what the run does. ``netiso check --backend kind
--dry-run`` prints the estimate per cluster (plan.py); tests/kind/test_kind_workflow.py checks
every cell of the workflow against its timeout.

What is added (one cell = one cluster, its realizations one after another: the kind and kube
backends' ``default_jobs`` is 1):

* per cell: the runner's setup (go install kind, bin/bootstrap), ``kind create cluster``, pulling
  and ``kind load``-ing each image, installing the add-ons and waiting for them
  (:data:`FIXED_S`, :data:`PER_IMAGE_S`);
* per realization (a bundled or founding-matrix scenario, or one minimal-config proof variant):
  creating its objects, pods Ready (more for each ingress-nginx controller), LoadBalancer
  addresses, discovery, the policy settle barrier's expected time, the probe rounds, and deleting
  its namespaces;
* probes, from the code's own bounds (kube/realization.py, probing.py): every source is one batch
  per round (at most 4 sources at once, 32 probes at once in a batch); a flow predicted
  ``dropped`` costs its whole timeout (TCP 2 s, UDP 1 s, ingress 4.5 s), an answered one well
  under a second; the barrier's one round over its canaries, then two agreeing rounds.

The per-step figures are planning figures, not measurements: no live kind run exists yet (the
README says so). They are deliberately on the slow side of what kind on a 4-vCPU GitHub runner
is reported to take (kind create ~1-2 min, Calico ready ~1-2 min), and the first live run's
``timings`` (``ready_s``, ``policy_settle_s``, ``probe_s``, ``down_s`` per scenario) are what to
correct them with. Not counted: mismatch evidence (node traces run only for mismatching flows).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from netiso.backends.kube.probing import MAX_CONCURRENT
from netiso.backends.kube.realization import CONNECT_TIMEOUT_S, INGRESS_TIMEOUT_S, PROBE_TIMEOUT_S, UDP_TIMEOUT_S
from netiso.model.types import Topology
from netiso.oracle.predict import Prediction, predict_all

FIXED_S = {
    "runner setup (go install kind, bin/bootstrap, dry-run plan)": 240.0,
    "kind create cluster (3 nodes)": 150.0,
    "add-ons installed and ready (Calico, load balancer)": 240.0,
    "external client containers": 20.0,
    "kind delete cluster, reports": 60.0,
}
PER_CLUSTER = ("kind create cluster (3 nodes)", "add-ons installed and ready (Calico, load balancer)",
               "external client containers", "kind delete cluster, reports")  # paid again by every further cluster
PER_IMAGE_S = 30.0  # docker pull by digest + kind load into 3 nodes
CREATE_S = 5.0  # namespaces, Lease, pods, Services, policies, ingresses: one POST each
PODS_READY_S = 30.0  # pinned images already on the nodes: scheduling, sandbox, netexec up
CONTROLLER_READY_S = 45.0  # each ingress-nginx controller (its own admission of the IngressClass, nginx reload)
LB_IP_S = 10.0
DISCOVERY_S = 3.0
POLICY_SETTLE_S = 10.0  # Felix programming the run's policies (bounded by Timeouts.policy_settle)
DOWN_S = 30.0  # namespace deletion: pods' graceful termination, finalizers
EXEC_OVERHEAD_S = 1.5  # one exec websocket: connect, sh start, result lines
ANSWERED_S = 0.3  # a probe that got its answer
ROUNDS = 2  # two agreeing rounds settle a flow (probe_running.MIN_SAMPLES)
PARALLEL_SOURCES = 4  # realization.probe's thread pool


@dataclass
class Estimate:
    """Seconds per part; ``total_s`` is what the cell is expected to take."""

    parts: dict[str, float]
    realizations: int

    @property
    def total_s(self) -> float:
        return sum(self.parts.values())

    def lines(self, timeout_minutes: float | None = None) -> list[str]:
        head = f"estimated wall time: {self.total_s / 60:.0f} min for {self.realizations} realization(s)"
        if timeout_minutes is not None:
            head += f" (workflow cell timeout {timeout_minutes:g} min)"
        return [head, *(f"  {s / 60:5.1f} min  {part}" for part, s in self.parts.items())]


def probe_cost(pred: Prediction) -> float:
    """What one probe of ``pred`` costs when the cluster behaves as predicted."""
    t = pred.target
    timeout = INGRESS_TIMEOUT_S if t.ingress is not None else UDP_TIMEOUT_S if t.protocol == "UDP" else PROBE_TIMEOUT_S
    if pred.verdict == "dropped":
        return max(timeout, CONNECT_TIMEOUT_S)
    if pred.verdict == "mixed":
        return timeout  # some connections land on an endpoint that drops
    return ANSWERED_S


def _round_s(by_source: dict[str, list[float]]) -> float:
    """One round: each source's batch in groups of MAX_CONCURRENT, sources PARALLEL_SOURCES at a time."""
    batches = []
    for costs in by_source.values():
        groups = [costs[i:i + MAX_CONCURRENT] for i in range(0, len(costs), MAX_CONCURRENT)]
        batches.append(EXEC_OVERHEAD_S + sum(max(g) for g in groups))
    if not batches:
        return 0.0
    return max(max(batches), sum(batches) / PARALLEL_SOURCES)


def realization_s(topo: Topology) -> float:
    """One scenario realized, probed and deleted on the cell's cluster."""
    from netiso.backends.kube.settling import choose_canaries

    preds = predict_all(topo)
    by_source: dict[str, list[float]] = {}
    for pred in preds:
        t = pred.target
        source = t.origin_name if t.origin_kind == "pod" else f"{t.origin_kind}:{t.origin_name}"
        by_source.setdefault(source, []).append(probe_cost(pred))
    canaries = choose_canaries(preds, lambda p: True)
    barrier = POLICY_SETTLE_S + (max((probe_cost(preds[i]) for i in canaries), default=0.0) + EXEC_OVERHEAD_S
                                 if canaries else 0.0)
    has_lb = any(s.type == "LoadBalancer" for s in topo.services.values())
    return (CREATE_S + PODS_READY_S + CONTROLLER_READY_S * len(topo.ingresses) + (LB_IP_S if has_lb else 0.0)
            + DISCOVERY_S + barrier + ROUNDS * _round_s(by_source) + DOWN_S)


def estimate_cell(images: int, suites: dict[str, Sequence[Topology]], clusters: int = 1) -> Estimate:
    """A cell: the fixed costs, ``images`` pre-loaded, and each suite's realizations (label -> topologies).

    ``clusters`` is how many kind clusters the cell builds one after another: a scenario whose
    kube-proxy or Calico settings differ from the defaults gets a cluster of its own
    (configs.group_of), and each such cluster costs its creation, image loads, add-ons and
    deletion again (:func:`clusters_of` counts them).
    """
    parts = dict(FIXED_S)
    parts[f"pull and kind load {images} image(s)"] = images * PER_IMAGE_S
    if clusters > 1:
        per_cluster = sum(s for part, s in FIXED_S.items() if part in PER_CLUSTER) + images * PER_IMAGE_S
        parts[f"{clusters - 1} more cluster(s) for scenarios with their own kube-proxy/Calico settings"] = (
            (clusters - 1) * per_cluster)
    count = 0
    for label, topos in suites.items():
        if topos:
            parts[f"{label}: {len(topos)} realization(s)"] = sum(realization_s(t) for t in topos)
            count += len(topos)
    return Estimate(parts, count)


def clusters_of(suites: dict[str, Sequence[Topology]]) -> int:
    """How many kind clusters the realizations of ``suites`` need (one per configs.group_of key)."""
    from netiso.backends.kind.configs import group_of

    return len({group_of(t) for topos in suites.values() for t in topos}) or 1


def proof_topologies(topos: Sequence[Topology]) -> list[Topology]:
    """The realizations the minimal-config proofs of ``topos`` take: one with the minimal whitelist
    and one per entry without it (netiso.minimizing.proof_labs), each counted here with the
    whitelisted scenario's intent flows (the per-entry variants probe only the flows needing the
    entry: an overestimate, on the safe side)."""
    from dataclasses import replace

    from netiso.model.addressing import resolve
    from netiso.oracle.minimal import minimal_config

    out: list[Topology] = []
    for topo in topos:
        if not any(f.intent == "wanted" for f in topo.scenario.flows):
            continue
        result = minimal_config(topo.scenario)
        proof = result.scenario_with()
        proof = replace(proof, flows=tuple(f for f in proof.flows if f.intent in ("wanted", "unwanted")))
        out += [resolve(proof)] * (1 + len(result.entries))
    return out


def minutes(seconds: float) -> int:
    return math.ceil(seconds / 60)
