"""The kube backend against an emulated API server that takes time and streams exec like a real one.

The server (tests/support/kubeapi, lifecycle.py) lets pods start only over later reads, streams exec
output in frames, lets a command outlive its client, refuses exec into a pod whose container is not
running, reports exit codes on channel 3 and throttles with 429 + Retry-After. Each test fails
when the backend ignores that behaviour (each was checked by breaking the backend on purpose):
waits that read once, an exec that reads one frame or trusts output without an exit status, an
error body lost in translation, a 429 taken as fatal, an answering pod taken from the prediction.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from netiso.backends.base import BackendUnavailable
from netiso.oracle.predict import predict_all
from tests.kube.conftest import FAST, NODEPORT, RUN, topo_of
from tests.kube.replay import batch_answer
from tests.kube.test_kube_backend import realized, standin_client
from tests.support.kubeapi import ExecCall, ExecReply, seed_cluster


def answered(call: ExecCall, hostname: str = "web-worker") -> ExecReply:
    """Every probe of the batch: HTTP 200 from ``hostname``, seen from 192.168.2.2."""
    return ExecReply(stdout=batch_answer(call.command[2], lambda p: ("tcp-200", "192.168.2.2", hostname)))


def test_emulated_api_readiness_is_polled_until_every_pod_is_ready(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster)
    fake_cluster.timing.pod_start = 6  # Pending for six reads of each pod
    real = kube_backend().realize(topo_of(NODEPORT))
    try:
        pods = fake_cluster.list("v1", "Pod", f"{RUN}-shop") + fake_cluster.list("v1", "Pod", f"{RUN}-tools")
        assert pods and all(p["status"]["phase"] == "Running" for p in pods)
        lists = [r for r in fake_cluster.requests if r.method == "GET" and r.path == f"/api/v1/namespaces/{RUN}-shop/pods"]
        assert len(lists) >= 7  # polled: one read is never enough on a cluster
        assert real.topo.pods_of("shop", "web")[0].ip == pods[0]["status"]["podIP"]
    finally:
        real.down()


def test_emulated_api_a_running_pod_whose_readiness_probe_fails_is_not_ready(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster)
    fake_cluster.pod_never_ready("web-worker", f"{RUN}-shop", reason="Unhealthy",
                                 event='Readiness probe failed: Get "http://192.168.1.1:8080/": connection refused')
    with pytest.raises(BackendUnavailable) as info:
        kube_backend().realize(topo_of(NODEPORT))
    message = str(info.value)
    assert message.startswith(f"pod {RUN}-shop/web-worker is not Ready after 2 s (phase Running")
    assert "last event: Unhealthy: Readiness probe failed" in message


def test_emulated_api_exec_output_streamed_in_frames_is_read_whole(fake_cluster, kube_backend, tmp_path: Path) -> None:
    real, preds = realized(fake_cluster, kube_backend, tmp_path)
    fake_cluster.timing.exec_frames = 7  # every batch answer arrives in seven pieces, cut mid-line
    fake_cluster.exec_handler = answered
    obs = real.probe(preds)
    assert [o.verdict for o in obs[:3]] == ["allowed", "allowed", "allowed"]
    assert all(o.answered_by == "pod:shop/web@worker" for o in obs[:3])
    real.down()


def test_emulated_api_a_batch_that_outlives_its_exec_budget_is_a_failed_batch_not_a_hang(
        fake_cluster, kube_backend, tmp_path: Path) -> None:
    """The handler prints every result line (an ``allowed`` each) but the command never ends within the
    budget: without an exit status the output is not trusted, and probing returns within its bounds."""
    real, preds = realized(fake_cluster, kube_backend, tmp_path, timeouts=replace(FAST, exec_budget=0.4))
    fake_cluster.exec_handler = lambda call: replace(answered(call), runs_for=30.0)
    started = time.monotonic()
    obs = real.probe(preds)
    assert time.monotonic() - started < 20
    assert [o.verdict for o in obs[:3]] == ["error", "error", "error"]
    assert all("did not finish within 0.4 s" in o.detail for o in obs[:3])
    real.down()


def test_emulated_api_a_non_zero_exit_code_fails_the_batch_whatever_it_printed(fake_cluster, kube_backend,
                                                                                tmp_path: Path) -> None:
    real, preds = realized(fake_cluster, kube_backend, tmp_path)
    fake_cluster.exec_handler = lambda call: replace(answered(call), stderr="Killed\n", exit_code=137)
    obs = real.probe(preds)
    assert [o.verdict for o in obs[:3]] == ["error", "error", "error"]
    assert all("failed: exit code 137 (Killed)" in o.detail for o in obs[:3])
    real.down()


def test_emulated_api_a_runtime_failure_status_without_exit_code_is_an_error_not_a_crash(
        fake_cluster, kube_backend, tmp_path: Path) -> None:
    """A Failure Status on channel 3 with no ExitCode cause (the runtime could not run the command) makes
    the official client's ``returncode`` raise; the backend reads the Status itself."""
    real, preds = realized(fake_cluster, kube_backend, tmp_path)

    def broken(call: ExecCall) -> ExecReply:
        raise RuntimeError('OCI runtime exec failed: exec: "sh": executable file not found in $PATH')

    fake_cluster.exec_handler = broken
    obs = real.probe(preds)
    assert [o.verdict for o in obs[:3]] == ["error", "error", "error"]
    assert all('executable file not found in $PATH' in o.detail and "(HTTP 500)" in o.detail for o in obs[:3])
    real.down()


def test_emulated_api_exec_into_a_pod_whose_container_is_not_running_names_the_kubelets_refusal(
        fake_cluster, kube_backend, tmp_path: Path) -> None:
    real, preds = realized(fake_cluster, kube_backend, tmp_path)
    fake_cluster.exec_handler = answered
    fake_cluster.pod_never_ready("probe-worker2", f"{RUN}-tools")  # its container is gone (image pull failing)
    obs = real.probe(preds)
    assert obs[0].verdict == "error" and obs[1].verdict == "error"
    assert 'container not found ("netexec")' in obs[0].detail and "(HTTP 500)" in obs[0].detail
    assert obs[2].verdict == "allowed"  # the node pod still runs
    real.down()


TWO_REPLICAS = NODEPORT.replace("{name: web, project: shop, nodes: [worker]}",
                                "{name: web, project: shop, nodes: [worker, worker2]}")


def test_emulated_api_the_answering_pod_is_the_one_that_answered_not_the_predicted_one(
        fake_cluster, kube_backend, tmp_path: Path) -> None:
    """``node:worker2 -> pod:shop/web`` is predicted to reach the first replica (web@worker); here the
    other replica answers (its hostname): the observation must name web@worker2, so the judge sees it."""
    real, preds = realized(fake_cluster, kube_backend, tmp_path, TWO_REPLICAS)
    index = next(i for i, p in enumerate(preds) if (p.flow.src, p.flow.dst) == ("node:worker2", "pod:shop/web"))
    assert list(preds[index].answered_by) == ["pod:shop/web@worker"]
    fake_cluster.exec_handler = lambda call: answered(call, "web-worker2")
    obs = real.probe(preds)
    assert obs[index].answered_by == "pod:shop/web@worker2"
    real.down()


def test_emulated_api_a_throttled_api_is_retried_after_retry_after_not_fatal(fake_cluster, kube_backend,
                                                                            tmp_path: Path) -> None:
    """429 with Retry-After (API Priority and Fairness) on creates: sent again after the wait, as client-go does."""
    seed_cluster(fake_cluster)
    backend = kube_backend(clients={"alice": standin_client(tmp_path)})
    topo = topo_of(NODEPORT)
    backend.preflight([topo])
    # creates (POST: urllib3 never retries them by itself): a 0 s and a 1 s wait, the test waits ~1 s
    fake_cluster.throttle(1, code=429, retry_after=0, method="POST")
    fake_cluster.throttle(1, code=503, retry_after=1, method="POST")
    real = backend.realize(topo)
    try:
        refused = [(r.method, r.status) for r in fake_cluster.requests if r.status in (429, 503)]
        assert refused == [("POST", 429), ("POST", 503)]
        assert fake_cluster.get("v1", "Namespace", f"{RUN}-shop") is not None
        assert predict_all(real.topo)
    finally:
        real.down()


def test_emulated_api_a_create_whose_answer_was_lost_is_sent_again_and_its_409_is_the_first_attempts_object(
        fake_cluster, kube_backend, tmp_path: Path) -> None:
    """The connection closes after the apiserver created the object and before its answer: the create is
    sent again, answers 409 AlreadyExists, and the object (carrying this run's labels) is taken as created."""
    seed_cluster(fake_cluster)
    backend = kube_backend(clients={"alice": standin_client(tmp_path)})
    topo = topo_of(NODEPORT)
    backend.preflight([topo])
    fake_cluster.drop_answers(1)  # the first POST of the run: its -netiso namespace
    real = backend.realize(topo)
    try:
        posts = [r.status for r in fake_cluster.requests if r.method == "POST" and r.path == "/api/v1/namespaces"]
        assert posts[:2] == [-201, 409]  # served but unanswered, then AlreadyExists
        assert fake_cluster.get("v1", "Namespace", f"{RUN}-netiso")["metadata"]["labels"]["netiso.io/run"] == RUN
    finally:
        real.down()
