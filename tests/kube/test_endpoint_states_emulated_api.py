"""Not-ready and terminating replicas, and publishNotReadyAddresses, in the kube backend, against the emulated API server.

What a cluster does is emulated (tests/support/kubeapi): a readiness probe on a port netexec does
not listen on keeps the pod Running and not Ready; a graceful DELETE of a pod whose containers
carry a ``preStop`` sleep keeps it Terminating (still Ready, so its EndpointSlice endpoint
``serving``) for the sleep, in the emulator's virtual time; a second DELETE with a shorter grace cuts
the sleep short, ``gracePeriodSeconds: 0`` deletes it at once. The backend must wait for each state
as it is meant to be, time out with a message a person can act on when the cluster does not get
there, and never leave clean-up waiting for a grace period.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from netiso.backends.base import BackendUnavailable
from netiso.backends.kube import pod_states
from netiso.backends.kube.client import Kube
from tests.kube.conftest import RUN
from tests.kube.test_kube_backend import realized
from tests.support.kubeapi import seed_cluster

STATES = """
name: states
cluster: {encapsulation: vxlan, loadBalancer: none, clients: [alice]}
projects: [{name: shop}, {name: tools}]
workloads:
  - {name: web, project: shop, nodes: [worker, worker2], state: {worker: not-ready, worker2: terminating}}
  - {name: old, project: shop, nodes: [worker], state: {worker: terminating-not-ready}}
  - {name: probe, project: tools, nodes: [worker]}
services:
  - {name: web, project: shop}
  - {name: web-published, project: shop, selector: {app: web}, publishNotReadyAddresses: true}
  - {name: old, project: shop}
flows:
  - {from: pod:tools/probe, to: clusterip:shop/web}
"""


def _endpoints(fake_cluster, service: str) -> dict[str, dict]:
    """pod name -> the conditions of its endpoint in ``service``'s EndpointSlice."""
    slices = fake_cluster.list("discovery.k8s.io/v1", "EndpointSlice", f"{RUN}-shop")
    return {ep["targetRef"]["name"]: ep["conditions"] for s in slices
            if s["metadata"]["labels"]["kubernetes.io/service-name"] == service for ep in s["endpoints"]}


def test_emulated_api_replicas_reach_their_endpoint_states_and_clean_up_does_not_wait_for_grace(
        fake_cluster, kube_backend, tmp_path: Path) -> None:
    real, _ = realized(fake_cluster, kube_backend, tmp_path, STATES)
    ns = f"{RUN}-shop"
    pods = {p["metadata"]["name"]: p for p in fake_cluster.list("v1", "Pod", ns)}
    by_state = {pod_states.state_of(p): name for name, p in pods.items()}
    unready = pods[by_state["not-ready"]]
    assert unready["status"]["phase"] == "Running" and not unready["metadata"].get("deletionTimestamp")
    assert {c["type"]: c["status"] for c in unready["status"]["conditions"]}["Ready"] == "False"
    leaving = pods[by_state["terminating"]]
    assert leaving["metadata"]["deletionTimestamp"] and leaving["metadata"]["deletionGracePeriodSeconds"] == 1800
    assert leaving["spec"]["containers"][0]["lifecycle"] == {"preStop": {"sleep": {"seconds": 1800}}}
    assert pods[by_state["terminating-not-ready"]]["metadata"]["deletionTimestamp"]

    web = _endpoints(fake_cluster, "web")
    assert web[by_state["not-ready"]] == {"ready": False, "serving": False, "terminating": False}
    assert web[by_state["terminating"]] == {"ready": False, "serving": True, "terminating": True}
    published = _endpoints(fake_cluster, "web-published")
    assert published[by_state["not-ready"]]["ready"] and published[by_state["terminating"]]["ready"]
    assert _endpoints(fake_cluster, "old")[by_state["terminating-not-ready"]] == {
        "ready": False, "serving": False, "terminating": True}
    svc = fake_cluster.get("v1", "Service", "web-published", ns)
    assert svc["spec"]["publishNotReadyAddresses"] is True

    # a graceful DELETE answered the pod, the slice was polled until it said so; no exec was needed
    deletes = [r for r in fake_cluster.writes() if r.method == "DELETE" and "/pods/" in r.path]
    assert {r.path.rsplit("/", 1)[1] for r in deletes} == {by_state["terminating"], by_state["terminating-not-ready"]}
    assert all("gracePeriodSeconds" not in (r.body or {}) for r in deletes)

    # the run goes on for a while (virtual seconds: reads through the API); the preStop sleep holds the pod
    kube = Kube.connect(str(fake_cluster.kubeconfig))
    for _ in range(20):
        held = kube.get("v1", "Pod", by_state["terminating"], ns)
        assert held is not None and held["metadata"]["deletionTimestamp"]
    assert _endpoints(fake_cluster, "web")[by_state["terminating"]]["serving"]

    real.down()  # must not wait 1800 s: the held pods' grace is cut to 1 s first (never a force deletion)
    forced = [r for r in fake_cluster.writes() if r.method == "DELETE" and "/pods/" in r.path and r.body
              and r.body.get("gracePeriodSeconds") == 1]
    assert not [r for r in fake_cluster.writes() if r.method == "DELETE" and "/pods/" in r.path and r.body
                and r.body.get("gracePeriodSeconds") == 0]
    assert {r.path.rsplit("/", 1)[1] for r in forced} == {by_state["terminating"], by_state["terminating-not-ready"]}
    assert not fake_cluster.list("v1", "Pod", ns)
    assert not [n for n in fake_cluster.list("v1", "Namespace") if n["metadata"]["name"].startswith(RUN)]


def test_emulated_api_a_not_ready_replica_that_becomes_ready_is_a_clear_timeout(
        fake_cluster, kube_backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the readiness probe asks the port netexec serves: the pod becomes Ready, which the scenario did not want
    monkeypatch.setattr(pod_states, "unused_port", lambda pod: pod.ports[0].port)
    with pytest.raises(BackendUnavailable) as err:
        realized(fake_cluster, kube_backend, tmp_path, STATES)
    assert "is not Running with its readiness probe failing (the scenario's not-ready replica)" in str(err.value)
    assert "phase Running" in str(err.value)
    assert not [n for n in fake_cluster.list("v1", "Namespace") if n["metadata"]["name"].startswith(RUN)]


def test_emulated_api_an_api_server_without_the_sleep_hook_is_refused_before_anything_is_deleted(
        fake_cluster, kube_backend, tmp_path: Path) -> None:
    # a 1.29 API server (PodLifecycleSleepAction off) drops the preStop sleep: the pod would go at once
    fake_cluster.controllers.sleep_action = False
    with pytest.raises(BackendUnavailable) as err:
        realized(fake_cluster, kube_backend, tmp_path, STATES)
    message = str(err.value)
    assert "came back without its preStop sleep hook" in message and "PodLifecycleSleepAction" in message
    assert not [r for r in fake_cluster.writes() if r.method == "DELETE" and "/pods/" in r.path
                and (r.body or {}).get("gracePeriodSeconds") is None]  # no graceful delete before the refusal
    assert not [n for n in fake_cluster.list("v1", "Namespace") if n["metadata"]["name"].startswith(RUN)]


def test_emulated_api_a_terminating_pod_outlives_its_slice_polls_and_goes_when_its_sleep_ends(fake_cluster) -> None:
    """The emulator itself: a preStop sleep of S seconds holds a deleted pod for S more reads (virtual
    seconds) on top of the plain grace; a second DELETE with grace 1 cuts it to one second, and
    gracePeriodSeconds 0 ends it at once."""
    seed_cluster(fake_cluster)
    kube = Kube.connect(str(fake_cluster.kubeconfig))
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "t"}})
    for name, sleep in (("short", 3), ("long", 1800), ("cut", 1800)):
        kube.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "t"},
                     "spec": {"nodeName": "kind-worker", "terminationGracePeriodSeconds": 1800, "containers": [
                         {"name": "c", "image": "agnhost", "args": ["pause"],
                          "lifecycle": {"preStop": {"sleep": {"seconds": sleep}}}}]}})
    for _ in range(4):  # started
        kube.list("v1", "Pod", "t")
    for name in ("short", "long", "cut"):
        kube.delete("v1", "Pod", name, "t")
    reads = 0
    while kube.get("v1", "Pod", "short", "t") is not None:
        reads += 1
        assert reads < 50
    assert reads == fake_cluster.timing.pod_grace + 3 * fake_cluster.timing.prestop_second
    held = kube.get("v1", "Pod", "long", "t")
    assert held["metadata"]["deletionTimestamp"] and held["metadata"]["deletionGracePeriodSeconds"] == 1800
    kube.delete("v1", "Pod", "long", "t", grace_period_seconds=0)
    assert kube.get("v1", "Pod", "long", "t") is None
    kube.delete("v1", "Pod", "cut", "t", grace_period_seconds=1)
    cut = kube.get("v1", "Pod", "cut", "t")
    assert cut is not None and cut["metadata"]["deletionGracePeriodSeconds"] == 1
    reads = 1
    while kube.get("v1", "Pod", "cut", "t") is not None:
        reads += 1
        assert reads < 50
    assert reads <= fake_cluster.timing.pod_grace + 1 * fake_cluster.timing.prestop_second + 1
