"""Probing until consistent: flows settle on agreeing samples, flappers are never a silent pass.

Most tests drive ``retry_until_consistent`` with a scripted batch runner (a plain function that
replays given outcomes per flow: the retry logic is pure); the last one runs the real batch
script against a server that only appears after the first round, as a policy being programmed.
"""

from __future__ import annotations

from collections.abc import Iterator

from netiso.backends.kube.probe_running import retry_until_consistent
from netiso.backends.kube.probing import ClusterProbe, ClusterProbeResult, batch_script, parse_batch_output
from tests.support.netexec_standin import closed_port, running_standin
from tests.support.probe_shells import run_script


class Replay:
    """A batch runner replaying scripted verdicts per flow id; counts what it was asked."""

    def __init__(self, outcomes: dict[str, list[str]]) -> None:
        self.outcomes = {k: iter(v) for k, v in outcomes.items()}
        self.asked: list[list[str]] = []

    def __call__(self, probes: list[ClusterProbe]) -> list[ClusterProbeResult]:
        self.asked.append([p.id for p in probes])
        return [ClusterProbeResult(p.id, next(self.outcomes[p.id]), detail=f"sample {len(self.asked)}") for p in probes]  # type: ignore[arg-type]


def probes(*ids: str) -> list[ClusterProbe]:
    return [ClusterProbe(i, "198.18.0.2", 80) for i in ids]


def no_sleep(_: float) -> None:
    return None


def test_flows_settle_on_two_agreeing_samples_and_only_unsettled_ones_are_reprobed() -> None:
    replay = Replay({"a": ["allowed", "allowed"], "b": ["dropped", "allowed", "allowed"]})
    results = retry_until_consistent(replay, probes("a", "b"), sleep=no_sleep)
    assert [(r.id, r.verdict, r.inconsistent) for r in results] == [("a", "allowed", False), ("b", "allowed", False)]
    assert replay.asked == [["a", "b"], ["a", "b"], ["b"]]
    assert results[1].detail == "sample 3"  # the settled flow reports its latest sample


def test_a_flapping_flow_gets_the_majority_verdict_flagged_with_its_distribution() -> None:
    replay = Replay({"f": ["allowed", "dropped", "allowed", "dropped", "allowed"]})
    [result] = retry_until_consistent(replay, probes("f"), max_rounds=5, sleep=no_sleep)
    assert result.verdict == "allowed" and result.inconsistent
    assert result.distribution == {"allowed": 3, "dropped": 2}
    assert "inconsistent over 5 samples: {'allowed': 3, 'dropped': 2}" in result.detail


def test_a_tie_takes_the_most_recent_of_the_tied_verdicts() -> None:
    for outcomes in (["dropped", "allowed", "dropped", "allowed"], ["allowed", "dropped", "allowed", "dropped"]):
        [result] = retry_until_consistent(Replay({"f": outcomes}), probes("f"), max_rounds=4, sleep=no_sleep)
        assert (result.verdict, result.inconsistent) == (outcomes[-1], True)
        assert result.distribution == {"allowed": 2, "dropped": 2}


def test_the_deadline_leaves_a_single_sample_unconfirmed_not_passed() -> None:
    replay = Replay({"a": ["allowed", "allowed"]})
    [result] = retry_until_consistent(replay, probes("a"), deadline_s=0.0, sleep=no_sleep)
    assert len(replay.asked) == 1
    assert result.inconsistent and result.detail.startswith("unconfirmed: 1 sample(s)")


def test_rounds_are_spaced_by_the_wait() -> None:
    slept: list[float] = []
    replay = Replay({"a": ["dropped", "allowed", "allowed"]})
    retry_until_consistent(replay, probes("a"), wait_s=2.5, sleep=slept.append)
    assert slept == [2.5, 2.5]


def test_a_runner_that_loses_a_result_counts_as_an_error_sample() -> None:
    def lossy(batch: list[ClusterProbe]) -> list[ClusterProbeResult]:
        return []

    [result] = retry_until_consistent(lossy, probes("a"), sleep=no_sleep)
    assert (result.verdict, result.detail) == ("error", "no result for this probe")


def test_a_flow_settles_once_its_server_appears_with_the_real_script() -> None:
    with running_standin("pod-late") as server:
        late = ClusterProbe("late", "127.0.0.1", server.http_port)
        rounds: Iterator[int] = iter(range(100))

        def run_batch(batch: list[ClusterProbe]) -> list[ClusterProbeResult]:
            # Round 0 probes a port nothing listens on (the "policy" is not programmed yet).
            real = [p if next(rounds) else ClusterProbe(p.id, p.dst_ip, closed_port()) for p in batch]
            stdout, stderr, _ = run_script(("sh",), batch_script(real))
            return parse_batch_output(stdout, stderr, real)

        [result] = retry_until_consistent(run_batch, [late], wait_s=0.0)
    assert (result.verdict, result.hostname, result.inconsistent) == ("allowed", "pod-late", False)

