"""A bounded barrier between applying NetworkPolicies and the first probe: are they in force yet?

Why: the API server accepts a NetworkPolicy at once, but the CNI programs it later - Calico's
Felix recomputes its policy chains asynchronously (calico felix/calc: the calculation graph
feeds the dataplane driver, which batches iptables-restore runs; on a busy node that takes
seconds). A flow probed before that is *allowed*, and two such early samples agree, so
``retry_until_consistent`` alone would settle a should-be-dropped flow as ``allowed``. The
upstream netpol e2e meets the same race by retrying its whole truth table
(test/e2e/network/netpol/probe.go); netiso makes the wait explicit and measured instead:

1. **canaries**: flows the oracle predicts *dropped by a NetworkPolicy* (every outcome decided
   by ``isolation <ns> <dir> drop``, netiso.oracle.decided), one per (destination namespace,
   destination node) first, at most :data:`MAX_CANARIES`. They are the witnesses that the
   policies are programmed: before, they pass; after, they are dropped;
2. each round probes the canaries not yet seen dropped, until every one has been dropped once
   or ``timeout_s`` has passed; the time is the realization's ``policy_settle_s``;
3. a timeout is a **finding** (a scenario warning in the report), never a silent continue: the
   flows are probed anyway, and the canaries themselves show as mismatches when still open.
4. canaries that cannot be probed at all (every one answers ``error`` - the exec or the client
   command fails) say nothing about the policies, and waiting the whole ``timeout_s`` for them
   only delays the same errors: after :data:`MAX_ERROR_ROUNDS` such rounds in a row the barrier
   stops early, with a warning that names the canaries' error (one failed round is not enough:
   an exec stream can break once on a busy API server).

No canary (every flow is predicted allowed, or only kube-proxy drops) means nothing on the wire
can tell when the policies are in force; that is said as a warning too, when the scenario has
policies at all. Kept free of the kubernetes client: the caller hands in a ``probe_round``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from netiso.backends.kube.probing import ClusterProbe, ClusterProbeResult
from netiso.oracle.predict import Prediction

MAX_CANARIES = 4
MAX_ERROR_ROUNDS = 3  # rounds in a row where every canary still waited for answered ``error``: stop early
ISOLATION = "isolation "  # netiso.oracle.decided: "isolation <ns> <direction> drop"


def flow_label(pred: Prediction) -> str:
    return f"{pred.flow.src} -> {pred.flow.dst}"


def dropped_by_policy(pred: Prediction) -> bool:
    """True when the oracle predicts ``pred`` dropped, and a NetworkPolicy (isolation) decides every outcome."""
    decided = pred.outcome_decided_by
    return (pred.verdict == "dropped" and bool(decided)
            and all(d is not None and any(part.startswith(ISOLATION) and part.endswith(" drop")
                                          for part in d.split("; ")) for d in decided))


def choose_canaries(preds: Sequence[Prediction], usable: Callable[[Prediction], bool],
                    limit: int = MAX_CANARIES) -> list[int]:
    """Indices of the canary flows: policy-dropped, probe-able, spread over destinations first.

    A policy is programmed per node (Felix on the node of the selected pod), so canaries on
    different destination nodes and namespaces witness more of the cluster than many to one pod.
    """
    candidates = [i for i, p in enumerate(preds) if dropped_by_policy(p) and usable(p)]
    chosen: list[int] = []
    seen: set[tuple[str, str]] = set()
    for i in candidates:
        t = preds[i].target
        pod = t.dst_pod
        key = (pod.project, pod.node) if pod is not None else (str(t.dst_ip), "")
        if key not in seen:
            seen.add(key)
            chosen.append(i)
    chosen += [i for i in candidates if i not in chosen]
    return chosen[:max(0, limit)]


@dataclass
class SettleOutcome:
    """What the barrier saw: which canaries, how long, whether all were dropped, their last verdicts."""

    canaries: list[str]
    seconds: float = 0.0
    rounds: int = 0
    settled: bool = False
    unprobeable: bool = False  # stopped early: the canaries' own probes could not run (MAX_ERROR_ROUNDS)
    last: dict[str, str] = field(default_factory=dict)  # canary -> last verdict seen (``error (detail)`` for errors)

    def warning(self, timeout_s: float) -> str | None:
        """The report's finding when the barrier timed out or stopped early (None when it settled)."""
        if self.settled or not self.canaries:
            return None
        if self.unprobeable:
            errors = "; ".join(f"{c}: {v}" for c, v in self.last.items() if is_error(v))
            return (f"NetworkPolicies in force or not is unknown: the settle barrier stopped after {self.rounds} "
                    f"round(s) ({self.seconds:.1f} s of up to {timeout_s:g} s) because its canary flows could not be "
                    f"probed at all ({errors}); the flows below were probed anyway")
        open_ones = "; ".join(f"{c} was {v}" for c, v in self.last.items() if v != "dropped")
        return (f"NetworkPolicies not seen in force within {timeout_s:g} s ({self.rounds} round(s)): canary "
                f"flow(s) predicted dropped by a policy were still not dropped ({open_ones}); either the CNI has "
                "not programmed the policies yet or it admits these flows - the flows below were probed anyway "
                "and may show the cluster before its policies applied")


NO_CANARY = ("no flow of this scenario is predicted dropped by a NetworkPolicy, so nothing on the wire shows when "
             "the policies are in force; flows were probed without a settle barrier (each still needs two agreeing "
             "samples)")


def is_error(verdict: str) -> bool:
    """Whether a canary's verdict is an error (``error``, or ``error (detail)`` from :func:`canary_round`)."""
    return verdict == "error" or verdict.startswith("error (")


def canary_round(sources: dict[int, str], probes: dict[int, ClusterProbe],
                 run_batch: Callable[[str, list[ClusterProbe]], list[ClusterProbeResult]]
                 ) -> Callable[[list[int]], dict[int, str]]:
    """A ``probe_round`` for :func:`wait_until_dropped`: the given canaries, one batch per source.

    An ``error`` verdict carries its detail, ``error (probe batch from ... failed: ...)``, for the warning.
    """
    def probe_round(indices: list[int]) -> dict[int, str]:
        by_source: dict[str, list[int]] = {}
        for i in indices:
            by_source.setdefault(sources[i], []).append(i)
        verdicts: dict[int, str] = {}
        for source, items in by_source.items():
            for i, result in zip(items, run_batch(source, [probes[i] for i in items]), strict=True):
                verdicts[i] = (f"error ({result.detail})" if result.verdict == "error" and result.detail
                               else result.verdict)
        return verdicts
    return probe_round


def wait_until_dropped(probe_round: Callable[[list[int]], dict[int, str]], canaries: dict[int, str], *,
                       timeout_s: float, poll_s: float, max_error_rounds: int = MAX_ERROR_ROUNDS,
                       clock: Callable[[], float] = time.monotonic,
                       sleep: Callable[[float], None] = time.sleep) -> SettleOutcome:
    """Probe ``canaries`` (index -> label) until each was dropped once, or ``timeout_s`` passed,
    or ``max_error_rounds`` rounds in a row found every canary still waited for unprobeable (``error``).

    ``probe_round(indices)`` probes those flows once and returns ``index -> verdict``. At least
    one round always runs; a round started before the deadline finishes (its probes are
    bounded by their own timeouts).
    """
    outcome = SettleOutcome(canaries=list(canaries.values()))
    start = clock()
    pending = list(canaries)
    error_rounds = 0
    while pending:
        verdicts = probe_round(pending)
        outcome.rounds += 1
        for i in pending:
            outcome.last[canaries[i]] = verdicts.get(i, "error")
        pending = [i for i in pending if verdicts.get(i) != "dropped"]
        if not pending:
            outcome.settled = True
            break
        error_rounds = error_rounds + 1 if all(is_error(verdicts.get(i, "error")) for i in pending) else 0
        if error_rounds >= max_error_rounds:
            outcome.unprobeable = True
            break
        if clock() - start >= timeout_s:
            break
        sleep(poll_s)
    outcome.seconds = clock() - start
    return outcome
