"""The policy settle barrier: no flow is probed before the NetworkPolicies are seen in force.

The emulated API server's exec handler plays a slow Felix: for the first rounds after the
policies exist, every probe from a source passes (the policies are not programmed yet), then
the emulated datapath drops what a policy drops. Without the barrier, two early agreeing
samples would settle a should-be-dropped flow as ``allowed``. What only a live cluster shows:
how long real Felix takes (``timings.policy_settle_s`` measures it there).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

from netiso.backends.kube.probe_running import retry_until_consistent
from netiso.backends.kube.probing import ClusterProbe
from netiso.backends.kube.settling import (
    MAX_ERROR_ROUNDS,
    NO_CANARY,
    choose_canaries,
    dropped_by_policy,
    wait_until_dropped,
)
from netiso.oracle.predict import predict_all
from tests.kube.conftest import FAST, NODEPORT, topo_of
from tests.kube.replay import batch_answer
from tests.kube.test_kube_backend import realized, standin_client
from tests.kube.test_probing_retry import Replay, no_sleep
from tests.support.kubeapi import ExecCall, ExecReply, seed_cluster


class SlowFelix:
    """An exec handler: each source pod's first ``lag`` execs after the policies exist see them unprogrammed."""

    def __init__(self, cluster, real, lag: int | None) -> None:  # type: ignore[no-untyped-def]
        self.cluster = cluster
        self.lag = lag  # None: the policies never take effect
        self.execs: Counter[str] = Counter()
        topo = real.topo
        self.worker2 = topo.nodes["worker2"]
        self.cluster_ip = topo.services["shop/web"].cluster_ip

    def programmed(self, pod: str) -> bool:
        if not self.cluster.list("networking.k8s.io/v1", "NetworkPolicy"):
            return False
        self.execs[pod] += 1
        return self.lag is not None and self.execs[pod] > self.lag

    def __call__(self, call: ExecCall) -> ExecReply:
        enforced = self.programmed(call.pod)

        def network(p):  # type: ignore[no-untyped-def]
            if p.dst_ip == self.cluster_ip and enforced:
                return "tcp-timeout", None, None  # shop's isolation drops tools' pod
            return "tcp-200", self.worker2.tunnel_ip, "web-worker"
        return ExecReply(stdout=batch_answer(call.command[2], network))


def test_canaries_are_the_flows_a_policy_drops() -> None:
    preds = predict_all(topo_of(NODEPORT))
    assert [i for i, p in enumerate(preds) if dropped_by_policy(p)] == [1]  # pod:tools/probe -> clusterip:shop/web
    assert choose_canaries(preds, lambda p: True) == [1]
    assert choose_canaries(preds, lambda p: p.flow.src != "pod:tools/probe") == []


def test_the_barrier_settles_once_every_canary_dropped_and_times_out_otherwise() -> None:
    now = [0.0]
    answers = iter(["allowed", "allowed", "dropped"])
    outcome = wait_until_dropped(lambda idx: {i: next(answers) for i in idx}, {1: "a -> b"}, timeout_s=10.0,
                                 poll_s=1.0, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert (outcome.settled, outcome.rounds, outcome.seconds) == (True, 3, 2.0)
    assert outcome.warning(10.0) is None

    now[0] = 0.0
    outcome = wait_until_dropped(lambda idx: {i: "allowed" for i in idx}, {1: "a -> b"}, timeout_s=3.0,
                                 poll_s=1.0, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert not outcome.settled and outcome.rounds == 4
    assert "not seen in force within 3 s" in (outcome.warning(3.0) or "") and "a -> b was allowed" in outcome.warning(3.0)


def test_one_round_alone_never_settles_a_flow_even_when_one_sample_is_asked_for() -> None:
    replay = Replay({"a": ["allowed", "dropped", "dropped"]})
    [result] = retry_until_consistent(replay, [ClusterProbe("a", "198.18.0.2", 80)], samples=1, sleep=no_sleep)
    assert len(replay.asked) == 3 and (result.verdict, result.inconsistent) == ("dropped", False)


def test_emulated_api_a_slow_policy_is_waited_for_before_the_first_probe(fake_cluster, kube_backend,  # type: ignore[no-untyped-def]
                                                                          tmp_path: Path) -> None:
    # a bound far above what three rounds take, even on a loaded machine (the first exec of a process
    # alone can take most of FAST's 0.5 s): only the canary's drop may end this barrier
    real, preds = realized(fake_cluster, kube_backend, tmp_path, timeouts=replace(FAST, policy_settle=30.0))
    felix = SlowFelix(fake_cluster, real, lag=2)  # two rounds from the pod still pass after the policies exist
    fake_cluster.exec_handler = felix
    obs = real.probe(preds)
    assert preds[1].verdict == "dropped"
    assert obs[1].verdict == "dropped"
    assert "policy_settle_s" in real.timings
    assert not [w for w in real.topo.warnings if "in force" in w]
    assert felix.execs["probe-worker2"] == 3 + 2  # barrier: allowed, allowed, dropped; then two agreeing rounds
    real.down()


def test_emulated_api_policies_never_in_force_is_a_warning_not_a_silent_pass(fake_cluster, kube_backend,  # type: ignore[no-untyped-def]
                                                                             tmp_path: Path) -> None:
    real, preds = realized(fake_cluster, kube_backend, tmp_path)
    fake_cluster.exec_handler = SlowFelix(fake_cluster, real, lag=None)
    obs = real.probe(preds)
    [warning] = [w for w in real.topo.warnings if "in force" in w]
    assert "within 0.5 s" in warning and "pod:tools/probe -> clusterip:shop/web was allowed" in warning
    assert obs[1].verdict == "allowed"  # probed anyway: the judge shows it as the mismatch it is
    assert real.timings["policy_settle_s"] >= 0.5
    real.down()


def test_emulated_api_a_scenario_without_canary_says_so(fake_cluster, kube_backend, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    text = NODEPORT.replace("  - {from: pod:tools/probe, to: clusterip:shop/web}\n", "")
    real, preds = realized(fake_cluster, kube_backend, tmp_path, text=text)
    fake_cluster.exec_handler = lambda call: ExecReply(stdout=batch_answer(call.command[2],
                                                                           lambda p: ("tcp-200", None, "web-worker")))
    real.probe(preds)
    assert NO_CANARY in real.topo.warnings and "policy_settle_s" not in real.timings
    real.down()


def test_the_barrier_stops_early_when_no_canary_can_be_probed() -> None:
    now = [0.0]
    clock, sleep = (lambda: now[0]), (lambda s: now.__setitem__(0, now[0] + s))
    failing = "error (probe batch from pod:a failed: exit code 127 (sh: curl: not found))"
    outcome = wait_until_dropped(lambda idx: {i: failing for i in idx}, {1: "a -> b", 2: "a -> c"}, timeout_s=60.0,
                                 poll_s=1.0, clock=clock, sleep=sleep)
    assert (outcome.settled, outcome.unprobeable, outcome.rounds) == (False, True, MAX_ERROR_ROUNDS)
    warning = outcome.warning(60.0) or ""
    assert f"stopped after {MAX_ERROR_ROUNDS} round(s)" in warning and "of up to 60 s" in warning
    assert "a -> b: " + failing in warning and "a -> c: " + failing in warning

    # one canary that answers (allowed: its policy is not in force yet) keeps the barrier waiting
    now[0] = 0.0
    outcome = wait_until_dropped(lambda idx: {i: failing if i == 1 else "allowed" for i in idx}, {1: "a -> b", 2: "a -> c"},
                                 timeout_s=10.0, poll_s=1.0, clock=clock, sleep=sleep)
    assert (outcome.unprobeable, outcome.rounds) == (False, 11)
    assert "not seen in force within 10 s" in (outcome.warning(10.0) or "")

    # errors that are not in a row (an exec stream that broke once) do not stop it either
    now[0] = 0.0
    answers = iter(["error", "error", "allowed", "error", "error", "dropped"])
    outcome = wait_until_dropped(lambda idx: {i: next(answers) for i in idx}, {1: "a -> b"}, timeout_s=60.0,
                                 poll_s=1.0, clock=clock, sleep=sleep)
    assert (outcome.settled, outcome.rounds) == (True, 6)


def test_emulated_api_canaries_whose_exec_fails_end_the_barrier_early_with_a_warning(  # type: ignore[no-untyped-def]
        fake_cluster, kube_backend, tmp_path: Path) -> None:
    seed_cluster(fake_cluster)
    backend = kube_backend(clients={"alice": standin_client(tmp_path)}, timeouts=replace(FAST, policy_settle=20.0))
    real = backend.realize(topo_of(NODEPORT))
    preds = predict_all(real.topo)
    fake_cluster.exec_handler = lambda call: ExecReply(stderr="sh: curl: not found\n", exit_code=127)
    obs = real.probe(preds)
    [warning] = [w for w in real.topo.warnings if "settle barrier" in w]
    assert f"stopped after {MAX_ERROR_ROUNDS} round(s)" in warning and "of up to 20 s" in warning
    assert ("pod:tools/probe -> clusterip:shop/web: error (probe batch from pod:tools/probe@worker2 failed: "
            "exit code 127 (sh: curl: not found))") in warning
    assert obs[1].verdict == "error"  # probed anyway, and the probe's own error is the mismatch
    real.down()
