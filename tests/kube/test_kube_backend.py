"""Probing through the emulated API server's exec websocket and through a stand-in client command.

What is real here: the batch scripts netiso generates, the exec API conversation (websocket,
v4/v5 channel protocol, exit status) with the official client, the client command run as a
subprocess, and the parsing of result lines that real curl/nc printed (tests/kube/samples,
re-addressed to each probe's index, id, source and hostname). What is emulated: the cluster's
network - the exec handler and the stand-in client decide each probe's outcome by its
destination; only a live cluster runs the scripts in agnhost pods.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from netiso.backends.base import BackendOptions
from netiso.backends.kube.backend import KubeBackend
from netiso.backends.kube.client import Kube
from netiso.oracle.predict import predict_all
from tests.kube.conftest import NODEPORT, RUN, topo_of
from tests.kube.replay import batch_answer, script_probes
from tests.support.kubeapi import ExecCall, ExecReply, seed_cluster

REPO = Path(__file__).resolve().parents[2]


def standin_client(tmp_path: Path, *, agnhost: bool = True, client_ip: str = "203.0.113.9") -> str:
    """A client command prefix running a stand-in "client host" (a Python script, not a real host).

    It answers the address script like ``ip -4 route get``, answers probe batches with real
    sample lines (every probe: HTTP 200 from web-worker, seen from ``client_ip``), plays agnhost
    for serve(), and logs every script it was given to ``calls.log``.
    """
    script = tmp_path / "client_standin.py"
    log = tmp_path / "calls.log"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        from tests.kube.replay import batch_answer
        body = sys.argv[-1]
        with open({str(log)!r}, "a") as f:
            f.write(body.replace("\\n", " ") + "\\n")
        if "ip -4 route get" in body:
            print("route: 172.18.0.2 dev eth0 src {client_ip} uid 0 ")
        elif "netexec" in body:
            print("PID 4242" if {agnhost!r} else "NO-AGNHOST")
        elif "NETISO1" in body:
            sys.stdout.write(batch_answer(body, lambda p: ("tcp-200", {client_ip!r}, "web-worker")))
    """))
    return f"{sys.executable} {script}"


def realized(fake_cluster, kube_backend, tmp_path: Path, text: str = NODEPORT, **options):
    seed_cluster(fake_cluster)
    if "clients" not in options:
        options["clients"] = {"alice": standin_client(tmp_path)}
    real = kube_backend(**options).realize(topo_of(text))
    return real, predict_all(real.topo)


def test_emulated_api_probe_execs_one_batch_per_source_and_maps_real_samples_to_observations(
        fake_cluster, kube_backend, tmp_path: Path) -> None:
    real, preds = realized(fake_cluster, kube_backend, tmp_path)
    topo = real.topo
    worker2 = topo.nodes["worker2"]
    web = topo.services["shop/web"]
    calls: list[ExecCall] = []

    def handler(call: ExecCall) -> ExecReply:
        calls.append(call)
        script = call.command[2]

        def network(p):  # the emulated datapath: outcome by destination
            if p.dst_ip == worker2.ip:
                return "tcp-200", worker2.tunnel_ip, "web-worker"
            if p.dst_ip == web.cluster_ip:
                return "tcp-timeout", None, None
            return "tcp-refused", None, None
        return ExecReply(stdout=batch_answer(script, network))

    fake_cluster.exec_handler = handler
    obs = real.probe(preds)

    barrier, calls = calls[:1], calls[1:]  # the policy settle barrier's round: its one canary, dropped at once
    assert [(p.dst_ip, p.dst_port) for p in script_probes(barrier[0].command[2])] == [(web.cluster_ip, 8080)]
    by_pod = {(c.namespace, c.pod, c.container) for c in calls}
    assert by_pod == {(f"{RUN}-tools", "probe-worker2", "netexec"), (f"{RUN}-netiso", "node-worker2", "probe")}
    for call in calls:
        assert call.command[:2] == ["sh", "-c"]
        dsts = {(p.dst_ip, p.dst_port) for p in script_probes(call.command[2])}
        if call.pod == "probe-worker2":  # both flows of pod:tools/probe in one exec
            assert dsts == {(worker2.ip, web.ports[0].node_port), (web.cluster_ip, 8080)}
        else:
            assert dsts == {(topo.pods_of("shop", "web")[0].ip, 8080)}
    assert len(calls) == 4  # two rounds per source: every flow is probed until two samples agree

    assert [o.verdict for o in obs] == ["allowed", "dropped", "refused", "allowed", "skipped"]
    assert real.timings["policy_settle_s"] >= 0 and not real.topo.warnings
    assert (obs[0].source_ip, obs[0].answered_by) == (worker2.tunnel_ip, "pod:shop/web@worker")
    assert (obs[3].source_ip, obs[3].answered_by) == ("203.0.113.9", "pod:shop/web@worker")
    assert obs[4].detail.startswith("client:bob has no --client mapping")
    real.down()


def test_emulated_api_client_probes_run_through_the_stand_in_client_command(fake_cluster, kube_backend,
                                                                           tmp_path: Path) -> None:
    real, preds = realized(fake_cluster, kube_backend, tmp_path)
    fake_cluster.exec_handler = lambda call: ExecReply(stdout=batch_answer(call.command[2],
                                                                           lambda p: ("tcp-timeout", None, None)))
    obs = real.probe(preds)
    assert real.topo.clients["alice"].ip == "203.0.113.9"  # asked through the command, not the address plan
    log = (tmp_path / "calls.log").read_text().splitlines()
    batches = [line for line in log if "NETISO1" in line]
    assert batches and all(f"http://{real.topo.nodes['worker'].ip}:" in line for line in batches)
    assert obs[3].verdict == "allowed" and obs[3].source_ip == "203.0.113.9"
    real.down()


def test_emulated_api_unmapped_client_flows_are_skipped_never_passed(fake_cluster, kube_backend,
                                                                    tmp_path: Path) -> None:
    real, preds = realized(fake_cluster, kube_backend, tmp_path, clients={})
    fake_cluster.exec_handler = lambda call: ExecReply(stdout=batch_answer(call.command[2],
                                                                           lambda p: ("tcp-timeout", None, None)))
    obs = real.probe(preds)
    skipped = [(p.flow.src, o.detail) for p, o in zip(preds, obs, strict=True) if o.verdict == "skipped"]
    assert [s for s, _ in skipped] == ["client:alice", "client:bob"]
    assert all("has no --client mapping" in d for _, d in skipped)
    real.down()


def test_emulated_api_an_unsettled_flow_is_an_error_showing_its_distribution(fake_cluster, kube_backend,
                                                                            tmp_path: Path) -> None:
    real, preds = realized(fake_cluster, kube_backend, tmp_path)
    flips = {"n": 0}
    cluster_ip = real.topo.services["shop/web"].cluster_ip

    def handler(call: ExecCall) -> ExecReply:
        def network(p):
            if p.dst_ip == cluster_ip:
                flips["n"] += 1
                return ("tcp-200", "192.168.2.2", "web-worker") if flips["n"] % 2 else ("tcp-timeout", None, None)
            return "tcp-timeout", None, None
        return ExecReply(stdout=batch_answer(call.command[2], network))

    fake_cluster.exec_handler = handler
    obs = real.probe(preds)
    assert preds[1].verdict == "dropped"
    assert obs[1].verdict == "error"
    assert "inconsistent over 4 samples: {'allowed': 2, 'dropped': 2}" in obs[1].detail
    real.down()


def test_emulated_api_a_failing_exec_is_an_error_per_flow_never_a_pass(fake_cluster, kube_backend, tmp_path: Path) -> None:
    real, preds = realized(fake_cluster, kube_backend, tmp_path)
    fake_cluster.exec_handler = lambda call: ExecReply(stderr="sh: curl: not found\n", exit_code=127)
    obs = real.probe(preds)
    assert [o.verdict for o in obs[:3]] == ["error", "error", "error"]
    # the exit code on channel 3 decides, and names what failed
    assert all("failed: exit code 127 (sh: curl: not found)" in o.detail for o in obs[:3])
    real.down()


LB = """
name: lb-vxlan
cluster: {encapsulation: vxlan, loadBalancer: metallb, clients: [alice]}
projects:
  - name: shop
workloads:
  - {name: web, project: shop, nodes: [worker, worker2]}
services:
  - {name: web, project: shop, type: LoadBalancer, externalTrafficPolicy: Local}
flows:
  - {from: client:alice, to: loadbalancer:shop/web}
  - {from: pod:shop/web@worker, to: client:alice}
"""


def test_emulated_api_vip_flows_report_the_announcing_node_from_servicel2status(fake_cluster, kube_backend,
                                                                               tmp_path: Path) -> None:
    real, preds = realized(fake_cluster, kube_backend, tmp_path, LB)
    alice = real.topo.clients["alice"].ip

    def network(p):
        return ("tcp-200", "192.168.1.1", "alice-host") if p.dst_ip == alice else ("tcp-timeout", None, None)
    fake_cluster.exec_handler = lambda call: ExecReply(stdout=batch_answer(call.command[2], network))
    real.serve(preds)
    obs = real.probe(preds)
    status = fake_cluster.list("metallb.io/v1beta1", "ServiceL2Status", "metallb-system")
    announcer = next(s["status"]["node"] for s in status if s["status"]["serviceName"] == "web")
    assert obs[0].elected == real.back_map[announcer] == real.topo.services["shop/web"].lb_node
    assert obs[1].elected is None  # not a VIP flow
    assert obs[1].answered_by == "client:alice"  # the client's netexec answered the egress flow
    real.down()
    assert any(line.startswith("kill 4242") for line in (tmp_path / "calls.log").read_text().splitlines())


def test_emulated_api_egress_to_a_client_without_agnhost_is_skipped_with_the_reason(fake_cluster, kube_backend,
                                                                                  tmp_path: Path) -> None:
    real, preds = realized(fake_cluster, kube_backend, tmp_path, LB,
                           clients={"alice": standin_client(tmp_path, agnhost=False)})
    fake_cluster.exec_handler = lambda call: ExecReply(stdout=batch_answer(call.command[2],
                                                                           lambda p: ("tcp-200", "192.168.1.1", "x")))
    real.serve(preds)
    obs = real.probe(preds)
    assert obs[1].verdict == "skipped" and "client:alice has no agnhost" in obs[1].detail
    real.down()


def test_emulated_api_evidence_holds_pod_state_policies_and_service_objects(fake_cluster, kube_backend,
                                                                           tmp_path: Path) -> None:
    real, preds = realized(fake_cluster, kube_backend, tmp_path)
    fake_cluster.exec_handler = lambda call: ExecReply(stdout=batch_answer(call.command[2],
                                                                           lambda p: ("tcp-timeout", None, None)))
    obs = real.probe(preds)
    evidence = real.evidence(preds[1], obs[1])
    assert f"pod pod:shop/web@worker ({RUN}-shop/web-worker)" in evidence
    assert "phase Running" in evidence[f"pod pod:shop/web@worker ({RUN}-shop/web-worker)"]
    policies = evidence[f"networkpolicies {RUN}-shop"]
    assert "kind: NetworkPolicy" in policies and f"namespace: {RUN}-shop" in policies
    assert "kind: Service" in evidence[f"service {RUN}-shop/web"]
    real.down()


@pytest.mark.parametrize("sample", ["udp-answer", "udp-timeout"])
def test_emulated_api_udp_probe_lines_from_real_nc_output_map_to_observations(fake_cluster, kube_backend,
                                                                              tmp_path: Path, sample: str) -> None:
    text = NODEPORT.replace("{name: web, project: shop, nodes: [worker]}",
                            "{name: web, project: shop, nodes: [worker], ports: [{port: 5353, protocol: UDP}]}")
    text = text.replace("type: NodePort, externalTrafficPolicy: Cluster", "type: NodePort, externalTrafficPolicy: Cluster, "
                        "ports: [{port: 5353, protocol: UDP}]")
    real, preds = realized(fake_cluster, kube_backend, tmp_path, text)
    fake_cluster.exec_handler = lambda call: ExecReply(stdout=batch_answer(
        call.command[2], lambda p: (sample, "192.168.2.0", "web-worker") if p.protocol == "UDP" else ("tcp-timeout", None, None)))
    obs = real.probe(preds)
    assert preds[0].target.protocol == "UDP"
    if sample == "udp-answer":
        assert (obs[0].verdict, obs[0].source_ip, obs[0].answered_by) == ("allowed", "192.168.2.0", "pod:shop/web@worker")
    else:
        assert obs[0].verdict == "dropped"
    real.down()


def test_emulated_api_exec_into_a_missing_pod_is_an_error_naming_the_pod(fake_cluster, kube_backend, tmp_path: Path) -> None:
    real, preds = realized(fake_cluster, kube_backend, tmp_path)
    fake_cluster.exec_handler = lambda call: ExecReply(stdout=batch_answer(call.command[2],
                                                                           lambda p: ("tcp-timeout", None, None)))
    kube = Kube.connect(str(fake_cluster.kubeconfig))
    kube.delete("v1", "Pod", "probe-worker2", f"{RUN}-tools")
    for _ in range(20):  # graceful deletion: Terminating (exec still works) for a few reads, then gone
        if kube.get("v1", "Pod", "probe-worker2", f"{RUN}-tools") is None:
            break
    obs = real.probe(preds)
    assert obs[0].verdict == "error" and obs[1].verdict == "error"
    assert f"probe batch from pod:tools/probe@worker2 could not run: exec in pod {RUN}-tools/probe-worker2" in obs[0].detail
    real.down()


def test_emulated_api_openelb_vip_announcer_is_read_from_the_speakers_election_log(fake_cluster, kube_backend,
                                                                                  tmp_path: Path) -> None:
    """Speaker logs are written by the test in the klog format of openelb pkg/speaker/layer2/memberlist.go."""
    text = LB.replace("loadBalancer: metallb", "loadBalancer: openelb")
    seed_cluster(fake_cluster, load_balancer="openelb")
    real = kube_backend(clients={"alice": standin_client(tmp_path)}).realize(topo_of(text))
    preds = predict_all(real.topo)
    vip = real.topo.services["shop/web"].lb_ip
    speakers = fake_cluster.list("v1", "Pod", "openelb-system", labels={"component": "speaker"})
    assert speakers
    for pod in speakers:  # an older election, then the current one (the latest line wins)
        fake_cluster.server.pod_logs[("openelb-system", pod["metadata"]["name"])] = (
            f"I1201 10:00:00.000001       1 memberlist.go:120] [kind-control-plane] wins the right to announce "
            f"the IP address {vip}\n"
            f"I1201 10:05:00.000001       1 memberlist.go:120] [kind-worker2] wins the right to announce "
            f"the IP address {vip}\n")
    fake_cluster.exec_handler = lambda call: ExecReply(stdout=batch_answer(call.command[2],
                                                                           lambda p: ("tcp-timeout", None, None)))
    obs = real.probe(preds)
    assert obs[0].elected == real.back_map["kind-worker2"]
    real.down()


def test_dry_run_plan_shows_each_pod_batch_script_and_needs_no_cluster(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no kubeconfig anywhere
    backend = KubeBackend(BackendOptions(node_map={"worker": "node-a"}))
    written = backend.plan([topo_of(NODEPORT)], tmp_path / "plan")
    plan = (written[0] / "plan.txt").read_text()
    assert "pod:tools/probe@worker2: exec" in plan
    assert "command (a script, run through the exec above):" in plan and "| echo NETISO-END 2" in plan
    pod = yaml.safe_load(next(written[0].glob("*-pod-web-worker.yaml")).read_text())
    assert pod["spec"]["nodeName"] == "node-a"  # --node-map applied; unmapped nodes keep their scenario names
