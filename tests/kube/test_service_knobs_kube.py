"""sessionAffinity / ``repeat: N`` and externalIPs in the kube backend, against the emulated API server.

Session affinity: the Service is created with ``sessionAffinity: ClientIP`` and its timeout as the API takes them;
a ``repeat: 3`` flow is probed in three rounds (one exec each after the first pass), and the
answers of rounds 2 and 3 reach the judge. The emulated network here answers from a different
pod in the last round, so the judge must flag it: the backend only reports, the judge decides.

Health checks: real curl result lines carrying kube-proxy's health answer (200 and 503) are an
answer with its status and localEndpoints, not a refusal.

External IPs: the Service carries them; a client's flow to one is skipped with the reason (a
cluster's outside network routes the address, not netiso), never probed at an unrouted address.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from netiso.backends.kube.probing import ClusterProbe, parse_batch_output
from netiso.oracle.judge import judge
from netiso.oracle.predict import predict_all
from tests.kube.conftest import RUN
from tests.kube.replay import batch_answer, sample_line, script_probes
from tests.kube.test_kube_backend import realized
from tests.support.kubeapi import ExecCall, ExecReply

STICKY = """
name: sticky
cluster: {encapsulation: vxlan, loadBalancer: none, clients: [alice]}
projects: [{name: shop}, {name: tools}]
workloads:
  - {name: web, project: shop, nodes: [worker, worker2]}
  - {name: probe, project: tools, nodes: [worker]}
services:
  - {name: web, project: shop, sessionAffinity: ClientIP, sessionAffinityConfig: {clientIP: {timeoutSeconds: 600}}}
flows:
  - {from: pod:tools/probe, to: clusterip:shop/web, repeat: 3}
"""


def test_emulated_api_affinity_reaches_the_service_and_repeats_are_probed_in_rounds(
        fake_cluster, kube_backend, tmp_path: Path) -> None:
    real, _ = realized(fake_cluster, kube_backend, tmp_path, STICKY)
    svc = fake_cluster.get("v1", "Service", "web", f"{RUN}-shop")
    assert svc["spec"]["sessionAffinity"] == "ClientIP"
    assert svc["spec"]["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 600}}
    cip = real.topo.services["shop/web"].cluster_ip
    src = real.topo.pods_of("tools", "probe")[0].ip
    calls: list[ExecCall] = []

    def handler(call: ExecCall) -> ExecReply:
        calls.append(call)
        late = sum(1 for c in calls if any(p.dst_ip == cip for p in script_probes(c.command[2]))) > 3
        return ExecReply(stdout=batch_answer(call.command[2],
                                             lambda p: ("tcp-200", src, "web-worker2" if late else "web-worker")))

    fake_cluster.exec_handler = handler
    preds = predict_all(real.topo)
    (obs,) = real.probe(preds)
    assert obs.answered_by == "pod:shop/web@worker"
    assert obs.repeats == [("allowed", "pod:shop/web@worker"), ("allowed", "pod:shop/web@worker2")]
    (problem,) = judge(real.topo, preds[0], obs)
    assert "sessionAffinity ClientIP predicts probe 1's endpoint (pod:shop/web@worker)" in problem
    real.down()


EXTERNAL = """
name: external
cluster: {encapsulation: vxlan, loadBalancer: none, clients: [alice]}
projects: [{name: shop}, {name: tools}]
workloads:
  - {name: web, project: shop, nodes: [worker]}
  - {name: probe, project: tools, nodes: [worker2]}
services:
  - {name: web, project: shop, externalIPs: [203.0.113.50]}
flows:
  - {from: client:alice, to: externalip:shop/web@worker}
  - {from: pod:tools/probe, to: externalip:shop/web}
"""


def test_emulated_api_external_ips_reach_the_service_and_client_flows_are_skipped_with_the_reason(
        fake_cluster, kube_backend, tmp_path: Path) -> None:
    real, _ = realized(fake_cluster, kube_backend, tmp_path, EXTERNAL)
    svc = fake_cluster.get("v1", "Service", "web", f"{RUN}-shop")
    assert svc["spec"]["externalIPs"] == ["203.0.113.50"]
    probed: list[str] = []

    def handler(call: ExecCall) -> ExecReply:
        probed.extend(p.dst_ip for p in script_probes(call.command[2]))
        return ExecReply(stdout=batch_answer(call.command[2], lambda p: ("tcp-200", "100.64.2.1", "web-worker")))

    fake_cluster.exec_handler = handler
    client, pod = real.probe(predict_all(real.topo))
    assert client.verdict == "skipped" and "routes the address to node worker" in client.detail
    assert pod.verdict == "allowed" and pod.answered_by == "pod:shop/web@worker"
    assert set(probed) == {"203.0.113.50"}
    real.down()


def _with_bodies(situation: str, body: str) -> str:
    """A real curl result line of ``situation`` whose two answer bodies are ``body``."""
    line = sample_line(situation)
    encoded = "b" + base64.b64encode(body.encode()).decode()
    return " ".join(f"{w.split('=', 1)[0]}={encoded}" if w.split("=", 1)[0] in ("o1", "o2") else w
                    for w in line.split(" "))


@pytest.mark.parametrize(("situation", "count"), [("tcp-200", 2), ("http-503", 0)])
def test_real_curl_lines_with_kube_proxys_health_answer_are_an_answer_with_status_and_count(
        situation: str, count: int) -> None:
    body = json.dumps({"service": {"namespace": "nx-shop", "name": "web"}, "localEndpoints": count,
                       "serviceProxyHealthy": True})
    probe = ClusterProbe("0", "198.18.0.12", 32000, "TCP")
    words = _with_bodies(situation, body).split(" ")
    words[1], words[2] = "0", "id=b" + base64.b64encode(b"0").decode()  # re-addressed to this probe
    (r,) = parse_batch_output(" ".join(words) + "\nNETISO-END 1\n", "", [probe])
    assert (r.verdict, r.status, r.local_endpoints) == ("allowed", 200 if count else 503, count)
