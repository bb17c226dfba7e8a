"""A second emulated network for the kind end-to-end test, one that differs from netiso's oracle on purpose.

Why: the replayed-prediction network (:class:`tests.kind.emulated_kind.EmulatedNetwork`) answers
each probe as the oracle predicted, so a run against it can show that nothing is lost between the
probe and the judge, but never that the judge *catches* a datapath that behaves otherwise. This
module is a network model of its own, not the oracle with a flag:

* :data:`DATAPATH` is written by hand, flow by flow, from the behaviour rules of docs/design.md
  (kube-proxy in iptables mode, Calico VXLAN, KubeSphere isolation) for the scenario of
  tests/kind/test_kind_end_to_end_emulated.py: the verdict, the source the server sees, the pod
  that answers, the X-Forwarded-For an ingress controller sends, in scenario symbols;
  :data:`ANNOUNCER` names the node that announces each LoadBalancer VIP (Local: a node with a ready
  endpoint). Where the datapath leaves a choice (a node-local SNAT address) the table takes one;
* :data:`PERTURBATIONS` then changes ONE field on ONE flow each, every field a flow reports; each
  entry says which real failure it stands for.

What it shares with the rest of the run is only addressing: where each probe is sent (the
prediction's target: the address and port the backend probes, computed from the realized
topology) and the realized addresses the symbols denote (netiso.model.addressing.addresses_of).
No outcome, source or answering pod is taken from netiso.oracle.

How the answers get out: probes are answered like the replayed network's, with the result lines
real curl/nc printed (tests/kube/samples, tests/kube/replay.py), from pods (exec websocket) and
client containers (the stand-in ``docker exec``). The announcer is written where the kube backend
reads it: MetalLB's ``ServiceL2Status`` (the emulated controller's object is replaced by one for the
perturbed node, as MetalLB does when another speaker takes over,
metallb internal/k8s/controllers/layer2_status_controller.go) and, for OpenELB, one more
``[<node>] wins the right to announce the IP address <vip>`` line in every speaker's log (openelb
pkg/speaker/layer2; the backend takes each speaker's latest line). Knowingly differs from a real
network: every answer is fixed per flow (no retries that vary), and the table covers only this
scenario's flows (any other flow is an error, not a guess).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from netiso.backends.kube.realization import KubeRealization
from netiso.model.addressing import addresses_of
from netiso.oracle.predict import Prediction, predict_all
from tests.kind.emulated_kind import Answer, EmulatedNetwork
from tests.support.kubeapi import FakeCluster


@dataclass(frozen=True)
class Reply:
    """What the datapath does with one flow, in scenario symbols."""

    verdict: str  # allowed | dropped | refused
    seen: str | None = None  # the source the server sees
    by: str | None = None  # the pod that answers
    xff: str | None = None  # the X-Forwarded-For an ingress controller sends


# The scenario's datapath (vxlan; isolation on shop admitting client:alice, tunnel:worker2 and the
# gateways project), each line with the rule of docs/design.md it follows.
DATAPATH: dict[str, Reply] = {
    # NodePort, Cluster, entry worker2, endpoint on worker: marked for masquerade, leaves by vxlan.calico,
    # so the server and shop's policy see worker2's tunnel address (whitelisted)
    "pod:tools/probe -> nodeport:shop/web@worker2": Reply("allowed", "tunnel:worker2", "pod:shop/web@worker"),
    # ClusterIP from a pod: DNAT only, shop's policy sees the tools pod's IP: not admitted
    "pod:tools/probe -> clusterip:shop/web": Reply("dropped"),
    # host-originated to a remote pod: leaves by vxlan.calico with worker2's tunnel address (whitelisted);
    # a pod: symbol without @node is the first replica
    "node:worker2 -> pod:shop/web": Reply("allowed", "tunnel:worker2", "pod:shop/web@worker"),
    "node:worker2 -> pod:shop/api": Reply("allowed", "tunnel:worker2", "pod:shop/api@worker"),
    # NodePort, Cluster, endpoint on the entry node: policy sees the client (alice: admitted, bob: not),
    # the pod a node-local address (the node IP here; the tunnel IP would be as right)
    "client:alice -> nodeport:shop/web@worker": Reply("allowed", "node:worker", "pod:shop/web@worker"),
    "client:bob -> nodeport:shop/web@worker": Reply("dropped"),
    # LoadBalancer, Local: no SNAT, the endpoint on the announcing node sees alice
    "client:alice -> loadbalancer:shop/front": Reply("allowed", "client:alice", "pod:shop/front@worker2"),
    # ingress: the controller (NodePort, Local, on its own node) saw alice and says so in the header;
    # the backend pod sees the controller pod (gateways: admitted)
    "client:alice -> ingress:shop/web": Reply("allowed", "ingress-controller:shop/web", "pod:shop/web@worker",
                                              xff="client:alice"),
}
ANNOUNCER: dict[str, str] = {"shop/front": "worker2"}  # Local: worker2 is the only node with a ready endpoint


@dataclass(frozen=True)
class Perturbation:
    """One field of one flow answered otherwise than :data:`DATAPATH` says, and the failure it stands for."""

    flow: str
    field: str  # the Reply field changed (verdict | seen | by | xff)
    value: str
    stands_for: str


PERTURBATIONS: tuple[Perturbation, ...] = (
    Perturbation("node:worker2 -> pod:shop/web", "verdict", "refused",
                 "a reset instead of an answer: the server not listening (crash-looping container) or a reject rule"),
    Perturbation("pod:tools/probe -> nodeport:shop/web@worker2", "seen", "node:worker2",
                 "MASQUERADE picked the node's eth0 address instead of vxlan.calico's, as if the packet left unencapsulated"),
    Perturbation("node:worker2 -> pod:shop/api", "by", "pod:shop/api@worker2",
                 "another replica answers the first replica's IP: a stale route or a reused pod IP"),
    Perturbation("client:alice -> ingress:shop/web", "xff", "node:worker2",
                 "the controller saw its entry node, not the client: its Service SNATs (Cluster) or the header is rewritten"),
)
ANNOUNCER_PERTURBED: dict[str, str] = {"shop/front": "worker"}  # a speaker ignoring Local: worker has no endpoint


def perturbed_datapath() -> dict[str, Reply]:
    """:data:`DATAPATH` with every :data:`PERTURBATIONS` entry applied (each to a different flow)."""
    out = dict(DATAPATH)
    assert len({p.flow for p in PERTURBATIONS}) == len(PERTURBATIONS), "one perturbation per flow"
    for p in PERTURBATIONS:
        out[p.flow] = replace(out[p.flow], **{p.field: p.value})
    return out


class PerturbedNetwork(EmulatedNetwork):
    """Answers the probes from :func:`perturbed_datapath` and announces VIPs per :data:`ANNOUNCER_PERTURBED`."""

    def __init__(self, file: Path, run_id: str, cluster: FakeCluster) -> None:
        super().__init__(file, run_id)
        self.cluster = cluster
        self.replies = perturbed_datapath()

    def learn(self, real: KubeRealization) -> list[Prediction]:
        # the predictions only say where each flow's probe goes (its target); the answer is the table's
        preds = predict_all(real.topo)
        for pred in preds:
            key = self.probe_key(real, pred)
            if key is None:
                continue
            flow = f"{pred.flow.src} -> {pred.flow.dst}"
            if flow not in self.replies:
                raise KeyError(f"the perturbed network has no rule for {flow}")
            self.table[key] = self._answer(real, self.replies[flow], pred.target.protocol)
        self.write()
        for service, node in ANNOUNCER_PERTURBED.items():
            self._announce(real, service, real.node_map[node])
        return preds

    @staticmethod
    def _one(real: KubeRealization, symbol: str | None) -> str | None:
        if symbol is None:
            return None
        (ip,) = addresses_of(real.topo, symbol)
        return ip

    def _answer(self, real: KubeRealization, reply: Reply, protocol: str) -> Answer:
        udp = protocol == "UDP"
        if reply.verdict == "dropped":
            return ("udp-timeout" if udp else "tcp-timeout", None, None)
        if reply.verdict == "refused":
            return ("udp-icmp-refused" if udp else "tcp-refused", None, None)
        assert reply.by is not None, reply
        (pod,) = [p for p in real.topo.pods if p.symbol == reply.by]
        return ("udp-answer" if udp else "tcp-200", self._one(real, reply.seen), real.names.pod_name(pod),
                self._one(real, reply.xff))

    def _announce(self, real: KubeRealization, service: str, node: str) -> None:
        """Make ``node`` (a cluster node name) the announcer of ``service``'s VIP where the backend reads it."""
        project, name = service.split("/")
        namespace = real.names.namespace(project)
        svc = real.topo.services[service]
        if real.topo.load_balancer == "metallb":
            store = self.cluster.store
            res = store.catalogue().by_kind("metallb.io/v1beta1", "ServiceL2Status")
            assert res is not None
            mine = [s for s in store.list(res, "metallb-system")
                    if (s["metadata"].get("labels") or {}).get("metallb.io/service-name") == name
                    and s["metadata"]["labels"].get("metallb.io/service-namespace") == namespace]
            assert mine, f"the emulated MetalLB wrote no ServiceL2Status for {service}"
            for old in mine:
                store.delete(res, "metallb-system", old["metadata"]["name"])
            labels = {**mine[0]["metadata"]["labels"], "metallb.io/node": node}
            store.create(res, "metallb-system",
                         {"apiVersion": "metallb.io/v1beta1", "kind": "ServiceL2Status",
                          "metadata": {"generateName": "l2-", "namespace": "metallb-system", "labels": labels},
                          "spec": {}, "status": {"node": node, "serviceName": name, "serviceNamespace": namespace}},
                         keep_status=True)
        elif real.topo.load_balancer == "openelb":
            logs = self.cluster.server.pod_logs
            speakers = [p["metadata"]["name"] for p in self.cluster.list("v1", "Pod", "openelb-system")
                        if (p["metadata"].get("labels") or {}).get("component") == "speaker"]
            assert speakers, "the emulated OpenELB runs no speaker"
            for pod in speakers:
                logs[("openelb-system", pod)] = (logs.get(("openelb-system", pod), "")
                                                 + f"I0101 00:00:01.000000       1 memberlist.go:110] [{node}] wins "
                                                 f"the right to announce the IP address {svc.lb_ip}\n")
