"""The kernel's rule trace of a mismatching flow, read from kind nodes, against a stand-in ``docker``.

What is real here: the node script netiso generates runs in the machine's own ``sh`` (with its
``timeout``, ``head``, ``sleep``, ``kill``, ``stdbuf``), started through the stand-in ``docker exec
-i`` as a real subprocess whose stdin netiso closes; the monitor text is REAL ``xtables-monitor
--trace`` output recorded on the lab's nodes (tests/lab/samples/trace/, iptables-nft 1.8.9), and
the predictions come from the oracle for the scenario those samples were recorded on, on the same
addresses. What stands in: ``iptables`` (keeps the raw table's rules in a file, answers ``-V``
as 1.8.9 does for nf_tables or legacy) and ``xtables-monitor`` (prints the sample) on the
script's PATH, in ``tests/kind/standins/kind_node.py``. So these tests prove the script's
sequence (check, insert, monitor, always remove), the selection, the parsing into evidence and
the skip reasons; only a live kind cluster proves what a real node's kernel traces. The kube
backend's reason is checked on the emulated API server (tests/support/kubeapi).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from netiso.backends.base import NODE_TRACE_KEY, Backend, BackendOptions, Realization
from netiso.backends.kind.backend import KindBackend, _KindRealization
from netiso.backends.kind.tools import Tools
from netiso.backends.kind.trace import COMMENT_PREFIX, NodeTracer, TraceLimits, selectors_for
from netiso.backends.kube.evidence import NODE_TRACE_SKIP
from netiso.model.addressing import resolve
from netiso.model.loader import loads
from netiso.model.types import Topology
from netiso.oracle.judge import Observation
from netiso.oracle.predict import Prediction, predict_all
from tests.kind.conftest import StandIns
from tests.kube.conftest import kube_backend  # noqa: F401 - a fixture
from tests.kube.replay import batch_answer
from tests.kube.test_kube_backend import realized
from tests.lab.samples.record_samples import SCENARIO
from tests.support.kubeapi import ExecReply
from tests.support.kubeapi.fixture import fake_cluster  # noqa: F401 - a fixture

SAMPLES = Path(__file__).resolve().parents[1] / "lab" / "samples" / "trace"
NODES = {"control-plane": "nx-control-plane", "worker": "nx-worker", "worker2": "nx-worker2"}
FAST = TraceLimits(ready_s=10.0, monitor_s=30.0, settle_s=0.2, finish_s=10.0, removal_s=10.0)
TOPO: Topology = resolve(loads(SCENARIO)[0])  # the samples' scenario, on the samples' addresses
PREDS = {f"{p.flow.src} -> {p.flow.dst}": p for p in predict_all(TOPO)}
NODEPORT_VIA_WORKER2 = PREDS["client:alice -> nodeport:shop/web@worker2"]  # DNAT+SNAT on worker2, dropped on worker


def configure_nodes(standins: StandIns, **nodes: dict[str, Any]) -> None:
    """The stand-in kind nodes: ``worker={"iptables": "nf_tables", "trace": <sample>}`` ..."""
    world = json.loads(standins.state.read_text()) if standins.state.exists() else {}
    world.setdefault("nodes", {}).update({NODES.get(n, n): cfg for n, cfg in nodes.items()})
    standins.state.write_text(json.dumps(world))


def nft(node: str) -> dict[str, Any]:
    return {"iptables": "nf_tables", "trace": str(SAMPLES / f"{node}.xtables-monitor.txt")}


def iptables_calls(standins: StandIns, container: str) -> list[list[str]]:
    return standins.calls(f"iptables@{container}")


def raw_rules_left(standins: StandIns, container: str) -> list[str]:
    path = standins.state.parent / f"node-{container}-raw.json"
    return json.loads(path.read_text()) if path.exists() else []


class Reprobes:
    """The realization's probe path, recorded: what the tracer re-probed while tracing."""

    def __init__(self, verdict: str = "dropped", fail: Exception | None = None) -> None:
        self.calls: list[Prediction] = []
        self.verdict, self.fail = verdict, fail

    def __call__(self, pred: Prediction) -> list[Observation]:
        self.calls.append(pred)
        if self.fail is not None:
            raise self.fail
        return [Observation(verdict=self.verdict, detail="timeout")]


def tracer(standins: StandIns) -> NodeTracer:
    return NodeTracer(Tools(env=standins.env), NODES, FAST, token=lambda: "t0k3n")


def inserted(calls: list[list[str]]) -> list[list[str]]:
    return [c for c in calls if "-I" in c]


def removed(calls: list[list[str]]) -> list[list[str]]:
    return [c for c in calls if "-D" in c]


# --------------------------------------------------------------------------- selection


def test_selection_per_node_is_the_packet_as_it_arrives_there_after_the_previous_nodes_nat() -> None:
    got = {n: [(s.protocol, s.src, s.dst, s.dport) for s in sels] for n, sels in selectors_for(NODEPORT_VIA_WORKER2).items()}
    alice, worker2, web = TOPO.clients["alice"].ip, TOPO.nodes["worker2"], TOPO.pods_of("shop", "web")[0]
    node_port = NODEPORT_VIA_WORKER2.target.dst_port
    assert got["worker2"] == [("TCP", alice, worker2.ip, node_port)]  # the client's packet, before any NAT
    # on worker the packet comes out of worker2's tunnel: SNAT-ed to worker2's tunnel address, DNAT-ed to web
    assert {(src, dst) for _p, src, dst, _port in got["worker"]} == {(worker2.tunnel_ip, web.ip)}
    assert 8080 in {port for *_x, port in got["worker"]}
    assert "control-plane" not in got  # the prediction does not cross it


# --------------------------------------------------------------------------- the node script


def test_standin_docker_node_script_inserts_only_the_flows_trace_rules_then_removes_each(standins: StandIns) -> None:
    configure_nodes(standins, worker=nft("worker"), worker2=nft("worker2"))
    reprobes = Reprobes()
    tracer(standins).trace(NODEPORT_VIA_WORKER2, reprobes)
    assert reprobes.calls == [NODEPORT_VIA_WORKER2]  # one re-probe, while the monitors ran
    for node, sels in selectors_for(NODEPORT_VIA_WORKER2).items():
        container = NODES[node]
        calls = iptables_calls(standins, container)
        assert calls[0] == ["-V"]
        ins = inserted(calls)
        assert len(ins) == 2 * len(sels)  # PREROUTING and OUTPUT, one per selection
        for call in ins:
            assert call[:4] == ["-w", "5", "-t", "raw"] and call[4:7] in (["-I", "PREROUTING", "1"], ["-I", "OUTPUT", "1"])
            rule = " ".join(call)
            assert "-j TRACE" in rule and f"--comment {COMMENT_PREFIX}t0k3n" in rule
            assert "--syn" in rule and "-p tcp" in rule  # a connection's first packet only
            assert any(f"-s {s.src}/32 -d {s.dst}/32" in rule and f"--dport {s.dport} " in rule for s in sels)
        assert sorted(" ".join(c[5:]) for c in removed(calls)) == sorted(" ".join(c[5:6] + c[7:]) for c in ins)
        assert raw_rules_left(standins, container) == []
    assert iptables_calls(standins, NODES["control-plane"]) == []  # not on the flow's path: not touched


def test_standin_docker_trace_rules_are_removed_even_when_the_reprobe_fails(standins: StandIns) -> None:
    configure_nodes(standins, worker=nft("worker"), worker2=nft("worker2"))
    out = tracer(standins).trace(NODEPORT_VIA_WORKER2, Reprobes(fail=RuntimeError("exec into pod failed: 500")))
    assert out["trace re-probe"] == "error: the traced re-probe failed: exec into pod failed: 500"
    for container in ("nx-worker", "nx-worker2"):
        calls = iptables_calls(standins, container)
        assert inserted(calls) and len(removed(calls)) == len(inserted(calls))
        assert raw_rules_left(standins, container) == []
    assert "filter:cali-tw-cali47ec9bce1d1" in out["trace node:worker"]  # the trace is still read


def test_standin_docker_removal_exec_is_issued_when_the_node_script_dies_before_removing(standins: StandIns) -> None:
    configure_nodes(standins, worker=nft("worker"), worker2=nft("worker2"))
    standins.fail("exec-dies")  # the exec ends right after "ready": no trap ran in the node
    tracer(standins).trace(NODEPORT_VIA_WORKER2, Reprobes())
    execs = [c for c in standins.calls("docker") if c[:1] == ["exec"]]
    removals = [c for c in execs if "-i" not in c]  # the separate removal exec (no stdin to hold)
    assert sorted(c[1] for c in removals) == ["nx-worker", "nx-worker2"]
    for container in ("nx-worker", "nx-worker2"):
        assert inserted(iptables_calls(standins, container))
        assert raw_rules_left(standins, container) == []


# --------------------------------------------------------------------------- evidence


def test_standin_docker_parsed_hops_of_only_this_flow_reach_the_evidence(standins: StandIns) -> None:
    configure_nodes(standins, worker=nft("worker"), worker2=nft("worker2"))
    out = tracer(standins).trace(NODEPORT_VIA_WORKER2, Reprobes())
    worker2, worker = out["trace node:worker2"], out["trace node:worker"]
    assert worker2.startswith("kind node nx-worker2 (iptables v1.8.9 (nf_tables))")
    # worker2 (the sample of all six probes): the client's SYN to the NodePort, DNAT-ed by kube-proxy's real chain
    assert "packet 1: TCP 198.18.0.100:50612 -> 198.18.0.12:30000 in eth0" in worker2
    assert "nat:KUBE-SEP-" in worker2 and "ACCEPT" in worker2
    assert ":30001" not in worker2 and "198.19.0.102" not in worker2  # other flows' packets are not this flow's
    assert "packet 2" not in worker2
    # worker: the packet from worker2's tunnel, dropped by Calico's real to-workload chain; the rule that decided
    assert "packet 1: TCP 100.64.2.0:43998 -> 100.64.1.1:8080 in vxlan.calico" in worker
    decides = [line for line in worker.splitlines() if line.endswith("<- decides")]
    assert len(decides) == 1 and decides[0].startswith("  filter:cali-tw-cali47ec9bce1d1 #60 DROP")
    assert "198.18.0.100:37554" not in worker and "100.64.2.1:50336" not in worker  # two other flows on worker
    assert out["trace re-probe"] == "dropped; detail timeout"


def test_standin_docker_legacy_node_is_skipped_with_the_reason_and_left_untouched(standins: StandIns) -> None:
    configure_nodes(standins, worker={"iptables": "legacy"}, worker2=nft("worker2"))
    out = tracer(standins).trace(NODEPORT_VIA_WORKER2, Reprobes())
    assert out["trace node:worker"] == ("skipped: node nx-worker: iptables legacy backend cannot be traced with "
                                        "xtables-monitor (iptables -V: iptables v1.8.9 (legacy))")
    assert iptables_calls(standins, "nx-worker") == [["-V"]]  # asked, nothing inserted
    assert "packet 1: TCP 198.18.0.100:50612" in out["trace node:worker2"]  # the other node is still traced


def test_standin_docker_node_without_xtables_monitor_is_skipped_before_any_rule(standins: StandIns) -> None:
    configure_nodes(standins, worker={"iptables": "nf_tables", "monitor": False}, worker2={"iptables": "legacy"})
    reprobes = Reprobes()
    out = tracer(standins).trace(NODEPORT_VIA_WORKER2, reprobes)
    assert out["trace node:worker"] == "skipped: node nx-worker: no xtables-monitor on this node"
    assert inserted(iptables_calls(standins, "nx-worker")) == []
    assert reprobes.calls == [] and "trace re-probe" not in out  # no node can trace: no re-probe


def test_non_tcp_udp_flow_is_not_traced_and_says_why(standins: StandIns) -> None:
    pred = NODEPORT_VIA_WORKER2
    sctp = Prediction(pred.flow, type(pred.target)(**{**pred.target.__dict__, "protocol": "SCTP"}), pred.verdict,
                      pred.source, pred.answered_by, pred.forwarded_for, pred.path, pred.outcomes, pred.topo)
    out = tracer(standins).trace(sctp, Reprobes())
    assert out == {"node trace": "skipped: netiso traces TCP and UDP flows only (SCTP)"}
    assert standins.calls("docker") == []


# --------------------------------------------------------------------------- wiring: kind and kube


class InnerRealization(Realization):
    """Stands in for the kube realization inside the kind one: its evidence, its probe path, recorded."""

    def __init__(self, topo: Topology) -> None:
        self.topo, self.timings, self.probed = topo, {}, []

    def serve(self, preds: Sequence[Any]) -> None:
        pass

    def probe(self, preds: Sequence[Any]) -> list[Observation]:
        self.probed.append(list(preds))
        return [Observation(verdict="dropped") for _ in preds]

    def evidence(self, pred: Any, obs: Any) -> dict[str, str]:
        return {NODE_TRACE_KEY: NODE_TRACE_SKIP, "networkpolicies nx-shop": "(none)"}

    def down(self) -> None:
        pass


def test_standin_docker_kind_realization_adds_node_traces_to_the_kube_evidence(standins: StandIns) -> None:
    configure_nodes(standins, worker=nft("worker"), worker2=nft("worker2"))
    inner = InnerRealization(TOPO)
    nothing: Callable[[], None] = lambda: None  # noqa: E731
    real = _KindRealization(inner, nothing, nothing, tracer(standins))
    evidence = real.evidence(NODEPORT_VIA_WORKER2, Observation(verdict="allowed"))
    assert evidence["networkpolicies nx-shop"] == "(none)"  # the kube backend's evidence is kept
    assert NODE_TRACE_KEY not in evidence  # its "needs node access" reason does not apply on kind
    assert "<- decides" in evidence["trace node:worker"]
    assert inner.probed == [[NODEPORT_VIA_WORKER2]]  # the re-probe went through the inner probe path


def test_standin_kind_backend_traces_on_its_own_cluster_nodes(standins: StandIns, tmp_path: Path) -> None:
    class Kube(Backend):
        def __init__(self, options: BackendOptions) -> None:
            self.options = options

        def preflight(self, topos: Sequence[Topology]) -> None:
            pass

        def realize(self, topo: Topology) -> Realization:
            return InnerRealization(TOPO)

        def close(self) -> None:
            pass

    kb = KindBackend(BackendOptions(), kube_factory=Kube, installer=lambda *a: None,
                     tools=Tools(env=standins.env), images=lambda r: [], workdir=tmp_path / "w",
                     logs_dir=tmp_path / "reports" / "kind-logs", run_id="nx0a1b2c")
    kb.preflight([TOPO])
    with kb.realize(TOPO) as real:
        cluster = next(a[a.index("--name") + 1] for a in standins.calls("kind") if a[:2] == ["create", "cluster"])
        configure_nodes(standins, **{f"{cluster}-worker": nft("worker"), f"{cluster}-worker2": nft("worker2")})
        evidence = real.evidence(NODEPORT_VIA_WORKER2, Observation(verdict="allowed"))
    kb.close()
    assert evidence["trace node:worker"].startswith(f"kind node {cluster}-worker (iptables v1.8.9 (nf_tables))")
    assert "<- decides" in evidence["trace node:worker"]
    execs = [c for c in standins.calls("docker") if c[:2] == ["exec", "-i"]]
    assert sorted(c[2] for c in execs) == [f"{cluster}-worker", f"{cluster}-worker2"]


def test_emulated_api_kube_evidence_says_once_that_node_traces_need_node_access(fake_cluster, kube_backend,  # noqa: F811
                                                                              tmp_path: Path) -> None:
    real, preds = realized(fake_cluster, kube_backend, tmp_path)
    fake_cluster.exec_handler = lambda call: ExecReply(stdout=batch_answer(call.command[2],
                                                                           lambda p: ("tcp-timeout", None, None)))
    obs = real.probe(preds)
    evidence = real.evidence(preds[1], obs[1])
    mentions = [k for k, v in evidence.items() if "node access" in v or "xtables-monitor" in v]
    assert mentions == [NODE_TRACE_KEY]
    assert evidence[NODE_TRACE_KEY].startswith("skipped: ") and "--backend kind" in evidence[NODE_TRACE_KEY]
    real.down()

