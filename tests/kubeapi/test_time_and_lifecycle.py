"""Time in the FAKE API server (tests/support/kubeapi/lifecycle.py), read through the official client.

Each test pins one way a real cluster is not done when a write returns: pods start later, deleted
pods and namespaces linger Terminating, workloads roll out over several reads, exec output comes in
pieces and a process may outlive its client, the apiserver and the kubelet refuse exec into a pod
that has no node or no running container, and an overloaded server answers 429 with Retry-After.
The backend tests that depend on these are in tests/kube/test_strict_time_backend.py.
"""

from __future__ import annotations

import json
import time

import pytest
from kubernetes import client
from kubernetes.stream import stream

from tests.support.kubeapi import ExecReply, FakeCluster
from tests.support.kubeapi.seed import seed_fresh_kind


def pod(name: str, node: str | None = "kind-worker") -> dict:
    spec: dict = {"containers": [{"name": "agnhost", "image": "registry.k8s.io/e2e-test-images/agnhost:2.53"}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


@pytest.fixture
def v1(fake_cluster: FakeCluster, api) -> client.CoreV1Api:
    fake_cluster.seed(load_balancer="none")
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": "nx-a"}})
    return core


def test_a_new_pod_is_pending_for_pod_start_reads_then_running_and_ready(fake_cluster: FakeCluster, v1) -> None:
    fake_cluster.timing.pod_start = 3
    created = v1.create_namespaced_pod("nx-a", pod("p"))
    assert created.status.phase == "Pending" and created.spec.node_name == "kind-worker"
    seen = [v1.read_namespaced_pod("p", "nx-a").status for _ in range(3)]
    assert [s.phase for s in seen] == ["Pending"] * 3
    assert all(s.pod_ip is None and s.container_statuses[0].state.waiting.reason == "ContainerCreating" for s in seen)
    listed = v1.list_namespaced_pod("nx-a").items[0].status  # a LIST observes it too: the 4th read
    assert listed.phase == "Running" and {c.type: c.status for c in listed.conditions}["Ready"] == "True"
    assert listed.pod_ip.startswith("192.168.")
    assert [e["reason"] for e in fake_cluster.events_for("p", "nx-a")] == ["Pulling"]
    assert fake_cluster.get("v1", "Pod", "p", "nx-a")["status"]["phase"] == "Running"


def test_the_tests_own_reads_are_not_observations(fake_cluster: FakeCluster, v1) -> None:
    v1.create_namespaced_pod("nx-a", pod("p"))
    for _ in range(10):
        fake_cluster.get("v1", "Pod", "p", "nx-a")  # the store, not the API: no time passes
    assert v1.read_namespaced_pod("p", "nx-a").status.phase == "Pending"


def test_a_running_pod_failing_its_readiness_probe_is_running_but_not_ready(fake_cluster: FakeCluster, v1) -> None:
    fake_cluster.pod_never_ready("p", "nx-a", reason="Unhealthy",
                                 event="Readiness probe failed: Get \"http://192.168.1.1:8080/\": connection refused")
    v1.create_namespaced_pod("nx-a", pod("p"))
    for _ in range(5):
        status = v1.read_namespaced_pod("p", "nx-a").status
    assert status.phase == "Running" and status.container_statuses[0].state.running is not None
    assert {c.type: c.status for c in status.conditions}["Ready"] == "False"
    assert [(e["type"], e["reason"]) for e in fake_cluster.events_for("p", "nx-a")] == [("Warning", "Unhealthy")]


def test_a_deleted_pod_is_terminating_for_pod_grace_reads_and_a_second_delete_answers_it_again(
        fake_cluster: FakeCluster, v1) -> None:
    fake_cluster.timing.pod_grace = 2
    v1.create_namespaced_pod("nx-a", pod("p"))
    gone = v1.delete_namespaced_pod("p", "nx-a")
    assert gone.metadata.deletion_timestamp is not None and gone.metadata.deletion_grace_period_seconds == 30
    again = v1.delete_namespaced_pod("p", "nx-a")
    assert again.metadata.deletion_timestamp == gone.metadata.deletion_timestamp
    assert v1.read_namespaced_pod("p", "nx-a").metadata.deletion_timestamp is not None
    assert [p.metadata.name for p in v1.list_namespaced_pod("nx-a").items] == ["p"]
    with pytest.raises(client.ApiException) as err:
        v1.read_namespaced_pod("p", "nx-a")
    assert err.value.status == 404


def test_a_deleted_namespace_is_terminating_in_get_and_list_then_gone_and_refuses_content_and_a_second_delete(
        fake_cluster: FakeCluster, v1) -> None:
    fake_cluster.timing.namespace_finalize = 3
    v1.delete_namespace("nx-a")
    got = v1.read_namespace("nx-a")
    assert got.status.phase == "Terminating" and got.metadata.deletion_timestamp is not None
    assert "nx-a" in [n.metadata.name for n in v1.list_namespace().items]
    with pytest.raises(client.ApiException) as err:
        v1.create_namespaced_config_map("nx-a", {"metadata": {"name": "late"}})
    body = json.loads(err.value.body)
    assert (err.value.status, body["reason"]) == (403, "Forbidden")
    assert body["message"] == ('configmaps "late" is forbidden: unable to create new content in namespace nx-a '
                               "because it is being terminated")
    assert body["details"]["causes"] == [{"reason": "NamespaceTerminating", "message": "namespace nx-a is being terminated",
                                          "field": "metadata.namespace"}]
    with pytest.raises(client.ApiException) as err:
        v1.delete_namespace("nx-a")
    body = json.loads(err.value.body)
    assert err.value.status == 409 and body["reason"] == "Conflict"
    assert body["details"] == {"name": "nx-a", "kind": "namespaces"}
    assert body["message"].startswith('Operation cannot be fulfilled on namespaces "nx-a": The system is ensuring all '
                                      "content is removed from this namespace.  Upon completion")
    assert v1.read_namespace("nx-a").status.phase == "Terminating"  # the third read
    with pytest.raises(client.ApiException) as err:
        v1.read_namespace("nx-a")
    assert err.value.status == 404


def test_a_daemonset_rolls_out_over_successive_reads(fake_cluster: FakeCluster, api) -> None:
    seed_fresh_kind(fake_cluster, "c", workers=2)
    apps = client.AppsV1Api(api)
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": "kube-system"},
          "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": {
              "metadata": {"labels": {"app": "agent"}},
              "spec": {"tolerations": [{"operator": "Exists"}], "containers": [{"name": "a", "image": "agent:1"}]}}}}
    apps.create_namespaced_daemon_set("kube-system", ds)
    history = []
    for _ in range(12):
        st = apps.read_namespaced_daemon_set("agent", "kube-system").status or client.V1DaemonSetStatus(
            current_number_scheduled=0, desired_number_scheduled=0, number_misscheduled=0, number_ready=0)
        history.append((st.observed_generation, st.updated_number_scheduled or 0, st.number_ready or 0))
        if st.number_ready == 3 and st.updated_number_scheduled == 3:
            break
    assert history[0] == (None, 0, 0)  # the controller has not synced yet: no status at all
    assert history[1] == (1, 0, 0)  # then it observes the spec, nothing scheduled yet
    assert history[-1] == (1, 3, 3)
    assert len(history) > 4 and [h[1] for h in history] == sorted(h[1] for h in history)  # climbing, not at once
    # a template change: the status still speaks of generation 1 until the controller observes generation 2
    ds["spec"]["template"]["spec"]["containers"][0]["image"] = "agent:2"
    apps.replace_namespaced_daemon_set("agent", "kube-system", ds)
    stale = fake_cluster.get("apps/v1", "DaemonSet", "agent", "kube-system")
    assert (stale["metadata"]["generation"], stale["status"]["observedGeneration"]) == (2, 1)
    assert stale["status"]["numberReady"] == 3  # "ready" - for the previous spec
    first = apps.read_namespaced_daemon_set("agent", "kube-system").status  # read once: still the old status
    assert (first.observed_generation, first.updated_number_scheduled, first.number_ready) == (1, 3, 3)
    second = apps.read_namespaced_daemon_set("agent", "kube-system").status
    assert (second.observed_generation, second.updated_number_scheduled) == (2, 0)


def test_exec_output_arrives_in_several_frames(fake_cluster: FakeCluster, v1, api) -> None:
    fake_cluster.timing.pod_start = 0
    v1.create_namespaced_pod("nx-a", pod("p"))
    fake_cluster.timing.exec_frames = 4
    fake_cluster.exec_handler = lambda call: ExecReply(stdout="line one\nline two\nline three\n")
    resp = stream(v1.connect_get_namespaced_pod_exec, "p", "nx-a", command=["x"], stderr=True, stdin=False,
                  stdout=True, tty=False, _preload_content=False)
    resp.update(timeout=5)
    first = resp.read_stdout()
    resp.run_forever(timeout=5)
    rest = resp.read_stdout()
    assert first and first != "line one\nline two\nline three\n"  # one frame is not the whole output
    assert first + rest == "line one\nline two\nline three\n" and resp.returncode == 0


def test_a_command_outliving_the_clients_timeout_leaves_no_exit_status(fake_cluster: FakeCluster, v1) -> None:
    fake_cluster.timing.pod_start = 0
    v1.create_namespaced_pod("nx-a", pod("p"))
    fake_cluster.exec_handler = lambda call: ExecReply(stdout="partial\n", runs_for=30.0)
    resp = stream(v1.connect_get_namespaced_pod_exec, "p", "nx-a", command=["sleep", "1000"], stderr=True, stdin=False,
                  stdout=True, tty=False, _preload_content=False)
    started = time.monotonic()
    resp.run_forever(timeout=0.3)
    assert resp.is_open() and resp.returncode is None and resp.read_stdout() == "partial\n"
    resp.close()
    assert time.monotonic() - started < 10


def test_exec_into_a_pod_without_node_or_without_running_container_is_refused_as_upstream(
        fake_cluster: FakeCluster, v1) -> None:
    fake_cluster.pod_never_ready("unscheduled", "nx-a", reason="FailedScheduling",
                                 event="0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.")
    v1.create_namespaced_pod("nx-a", pod("unscheduled", node=None))
    v1.create_namespaced_pod("nx-a", pod("starting"))  # scheduled, container not started yet
    with pytest.raises(client.ApiException) as err:
        stream(v1.connect_get_namespaced_pod_exec, "unscheduled", "nx-a", command=["x"], stdout=True, stderr=True,
               stdin=False, tty=False)
    assert "400" in str(err.value) and "pod unscheduled does not have a host assigned" in str(err.value)
    with pytest.raises(client.ApiException) as err:
        stream(v1.connect_get_namespaced_pod_exec, "starting", "nx-a", command=["x"], stdout=True, stderr=True,
               stdin=False, tty=False)
    assert "500" in str(err.value) and 'container not found ("agnhost")' in str(err.value)
    assert [r.status for r in fake_cluster.requests if r.path.endswith("/exec")] == [400, 500]
    events = fake_cluster.events_for("unscheduled", "nx-a")
    assert [(e["reason"], e["source"]["component"]) for e in events] == [("FailedScheduling", "default-scheduler")]


def test_a_throttled_request_answers_429_with_retry_after_in_plain_text(fake_cluster: FakeCluster, v1) -> None:
    fake_cluster.throttle(1, retry_after=2)
    with pytest.raises(client.ApiException) as err:  # a POST: urllib3 retries only idempotent methods by itself
        v1.create_namespace({"metadata": {"name": "nx-b"}})
    assert err.value.status == 429 and err.value.headers["Retry-After"] == "2"
    assert err.value.body.startswith("Too many requests, please try again later.")
    assert fake_cluster.get("v1", "Namespace", "nx-b") is None  # refused before it was served
    assert v1.create_namespace({"metadata": {"name": "nx-b"}})  # served again once the burst is over


def test_instant_timing_is_the_old_everything_at_once(fake_cluster: FakeCluster, v1) -> None:
    fake_cluster.instant()
    assert v1.create_namespaced_pod("nx-a", pod("p")).status.phase == "Running"
    v1.delete_namespace("nx-a")
    with pytest.raises(client.ApiException):
        v1.read_namespace("nx-a")
