"""``pods/exec`` through ``kubernetes.stream.stream`` over a real websocket to the FAKE API server.

No container runs: a test-supplied handler plays the command. These tests prove the channel
protocol (v5 and v4), the exit Status on channel 3 that ``WSClient.returncode`` parses, and the
apiserver's refusals before the upgrade.
"""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.stream import stream

from tests.support.kubeapi import ExecCall, ExecReply, FakeCluster
from tests.support.kubeapi.exec_ws import V4


@pytest.fixture
def pod(fake_cluster: FakeCluster) -> str:
    fake_cluster.seed(load_balancer="none")
    fake_cluster.add({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "src", "namespace": "nx-a"},
                      "spec": {"containers": [{"name": "agnhost", "image": "agnhost"}, {"name": "side", "image": "x"}]}})
    return "src"


def run(api: client.ApiClient, pod: str, command: list[str], container: str = "agnhost", **kw):
    return stream(client.CoreV1Api(api).connect_get_namespaced_pod_exec, pod, "nx-a", command=command,
                  container=container, stderr=True, stdin=kw.pop("stdin", False), stdout=True, tty=False, **kw)


def test_exec_streams_stdout_stderr_and_a_nonzero_exit_code(fake_cluster: FakeCluster, api, pod: str) -> None:
    calls: list[ExecCall] = []

    def handler(call: ExecCall) -> ExecReply:
        calls.append(call)
        return ExecReply(stdout="out-line\n", stderr="TIMEOUT\n", exit_code=1)

    fake_cluster.exec_handler = handler
    resp = run(api, pod, ["/agnhost", "connect", "192.168.1.4:8080", "--timeout=1s"], _preload_content=False)
    resp.run_forever(timeout=10)
    assert resp.subprotocol == "v5.channel.k8s.io"
    assert (resp.read_stdout(), resp.read_stderr(), resp.returncode) == ("out-line\n", "TIMEOUT\n", 1)
    assert calls == [ExecCall("nx-a", "src", "agnhost", ["/agnhost", "connect", "192.168.1.4:8080", "--timeout=1s"], b"")]
    assert fake_cluster.requests[-1].query["command"] == ["/agnhost", "connect", "192.168.1.4:8080", "--timeout=1s"]


def test_exec_success_is_exit_code_zero(fake_cluster: FakeCluster, api, pod: str) -> None:
    fake_cluster.exec_handler = lambda call: ExecReply(stdout="192.168.2.3:41234")
    resp = run(api, pod, ["curl", "-s", "http://x/clientip"], _preload_content=False)
    resp.run_forever(timeout=10)
    assert resp.returncode == 0 and resp.read_stdout() == "192.168.2.3:41234"


def test_exec_preloaded_form_returns_stdout_and_stderr_together(fake_cluster: FakeCluster, api, pod: str) -> None:
    fake_cluster.exec_handler = lambda call: ExecReply(stdout="a", stderr="b", exit_code=2)
    assert run(api, pod, ["x"]) == "ab"


def test_exec_speaks_v4_when_the_server_offers_only_v4(fake_cluster: FakeCluster, api, pod: str) -> None:
    fake_cluster.server.exec_protocols = (V4,)
    fake_cluster.exec_handler = lambda call: ExecReply(stdout="v4", exit_code=7)
    resp = run(api, pod, ["x"], _preload_content=False)
    resp.run_forever(timeout=10)
    assert resp.subprotocol == V4 and resp.read_stdout() == "v4" and resp.returncode == 7


def test_exit_status_has_the_kubelet_shape(fake_cluster: FakeCluster, api, pod: str) -> None:
    fake_cluster.exec_handler = lambda call: ExecReply(exit_code=3)
    resp = run(api, pod, ["false"], _preload_content=False)
    resp.run_forever(timeout=10)
    status = json.loads(resp.read_channel(3))
    assert status["status"] == "Failure" and status["reason"] == "NonZeroExitCode"
    assert status["details"] == {"causes": [{"reason": "ExitCode", "message": "3"}]}


def test_exec_stdin_reaches_the_handler_with_v5_close(fake_cluster: FakeCluster, api, pod: str) -> None:
    fake_cluster.exec_handler = lambda call: ExecReply(stdout=call.stdin.decode().upper())
    resp = run(api, pod, ["cat"], stdin=True, _preload_content=False)
    resp.write_stdin("hello")
    resp.close_channel(0)
    resp.run_forever(timeout=10)
    assert resp.read_stdout() == "HELLO" and resp.returncode == 0


def test_default_handler_answers_127(fake_cluster: FakeCluster, api, pod: str) -> None:
    resp = run(api, pod, ["nc", "-z"], _preload_content=False)
    resp.run_forever(timeout=10)
    assert resp.returncode == 127 and "no handler" in resp.read_stderr()


def test_exec_refusals_before_upgrade(fake_cluster: FakeCluster, api, pod: str) -> None:
    with pytest.raises(client.ApiException) as err:
        run(api, "ghost", ["x"])
    assert "404" in str(err.value)
    with pytest.raises(client.ApiException) as err:
        run(api, pod, ["x"], container="nope")
    assert "400" in str(err.value)
    fake_cluster.deny("create", "pods/exec")
    with pytest.raises(client.ApiException) as err:
        run(api, pod, ["x"])
    assert "403" in str(err.value)
    assert [r.status for r in fake_cluster.requests if r.path.endswith("/exec")] == [404, 400, 403]


def test_exec_without_a_container_in_a_multi_container_pod_is_400(fake_cluster: FakeCluster, pod: str) -> None:
    # a plain HTTP POST (the client would use a websocket) to see the Status body the apiserver sends
    import urllib.error
    import urllib.request
    req = urllib.request.Request(f"{fake_cluster.url}/api/v1/namespaces/nx-a/pods/src/exec?command=x&stdout=true",
                                 method="POST", headers={"Authorization": f"Bearer {fake_cluster.token}"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req)
    body = json.loads(err.value.read())
    assert err.value.code == 400
    assert body["message"] == "a container name must be specified for pod src, choose one of: [agnhost side]"
