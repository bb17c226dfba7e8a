"""Path diagrams drawn from the oracle's structured hops of the bundled scenarios (``netiso explain``
in-process): what each box and arrow says, where a drop is marked, and which flows share one."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from netiso.cli import main
from netiso.report.diagram import SOURCE, DiagramIndex, flow_diagram, mermaid, svg
from netiso.report.markdown import render_markdown

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("explain") / "results.json"
    assert main(["explain", str(ROOT / "scenarios"), "--json", str(out)]) == 0
    return json.loads(out.read_text(encoding="utf-8"))


def _flow(doc: dict[str, Any], scenario: str, src: str, dst: str) -> dict[str, Any]:
    s = next(s for s in doc["scenarios"] if s["name"] == scenario)
    return next(f for f in s["flows"] if f["from"] == src and f["to"] == dst)


def _key(doc: dict[str, Any], scenario: str, src: str, dst: str) -> tuple[int, int]:
    si = next(i for i, s in enumerate(doc["scenarios"]) if s["name"] == scenario)
    fi = next(i for i, f in enumerate(doc["scenarios"][si]["flows"]) if f["from"] == src and f["to"] == dst)
    return si, fi


@pytest.mark.parametrize(("mode", "wire", "snat"), [("vxlan", "VXLAN (vxlan.calico)", "tunnel:worker2"),
                                                     ("ipip", "IP-in-IP (tunl0)", "tunnel:worker2"),
                                                     ("direct", "node network (eth0)", "node:worker2")])
def test_cross_node_cluster_nodeport_shows_dnat_snat_to_the_out_device_address_the_wire_and_the_receiving_policy(
        doc: dict[str, Any], mode: str, wire: str, snat: str) -> None:
    flow = _flow(doc, f"nodeport-cluster-{mode}", "client:alice", "nodeport:shop/web@worker2")
    snat_ip = next(h["src"]["ip"] for h in flow["predicted"]["hops"] if h["step"] == "snat")
    d = flow_diagram(flow)
    assert d is not None
    assert [b.place for b in d.boxes] == [SOURCE, "node:worker2", "node:worker", "pod:shop/web@worker"]
    entry, receiver, pod = d.boxes[1], d.boxes[2], d.boxes[3]
    assert any(line.startswith("DNAT → pod:shop/web@worker (") for line in entry.lines)
    assert f"SNAT KUBE-POSTROUTING → {snat} ({snat_ip})" in entry.lines
    across = next(e for e in d.edges if (e.src, e.dst) == (entry.id, receiver.id))
    assert across.lines[0] == wire and f"src {snat} ({snat_ip})" in across.lines
    assert any(line.startswith("ingress policy admits: shop/") for line in receiver.lines)
    assert f"policy saw {snat} ({snat_ip})" in receiver.lines  # the policy sees the SNAT address, not alice
    assert pod.end == "allowed" and entry.end is None and receiver.end is None
    text = mermaid(d)
    assert text.startswith("flowchart LR\n") and wire in text and f"policy saw {snat}" in text


def test_a_dropped_flow_ends_at_the_hop_that_dropped_it_marked_in_words(doc: dict[str, Any]) -> None:
    flow = _flow(doc, "nodeport-cluster-vxlan", "client:bob", "nodeport:shop/web@worker")
    assert flow["predicted"]["verdict"] == "dropped"
    d = flow_diagram(flow)
    assert d is not None
    last = d.boxes[-1]
    assert last.place == "node:worker" and last.end == "dropped"
    assert [b.end for b in d.boxes[:-1]] == [None]
    assert any("ingress policy DROPS" in line for line in last.lines)
    assert "policy saw the source" in last.lines  # bob's own address reached the policy
    assert not any(b.role == "pod" for b in d.boxes)  # no pod box: the packet never got there
    assert re.search(rf"class {last.id} dropped$", mermaid(d), re.M)
    drawn = svg(d)
    assert "end-dropped" in drawn and "✗ dropped here" in drawn


def test_flows_with_the_same_path_share_one_diagram_and_one_mermaid_block(doc: dict[str, Any]) -> None:
    index = DiagramIndex.of(doc)
    alice = _key(doc, "nodeport-cluster-vxlan", "client:alice", "nodeport:shop/web@worker2")
    bob = _key(doc, "nodeport-cluster-vxlan", "client:bob", "nodeport:shop/web@worker2")
    other = _key(doc, "nodeport-cluster-vxlan", "client:alice", "nodeport:shop/web@worker")
    shared = index.by_flow[alice]
    assert index.by_flow[bob] == shared != index.by_flow[other]
    assert index.sources[shared] == ["client:alice (198.18.0.100)", "client:bob (198.18.0.101)"]
    assert len(index.diagrams) < len(index.by_flow) == sum(len(s["flows"]) for s in doc["scenarios"])
    md = render_markdown(doc)
    assert md.count(f"### Path {shared}\n") == 1
    rows = [line for line in md.splitlines() if line.startswith("| client:") and "nodeport:shop/web@worker2" in line
            and f"[{shared}](#path-{shared.lower()})" in line]
    assert len(rows) == 2
    assert md.count("```mermaid\nflowchart LR") == len(index.diagrams)


def test_a_flow_balanced_over_two_endpoints_draws_one_lane_per_endpoint_from_a_shared_source(
        doc: dict[str, Any]) -> None:
    flow = _flow(doc, "internal-whitelist-service", "pod:shop/api", "clusterip:billing/reporter")
    assert len(flow["predicted"]["outcomes"]) == 2
    d = flow_diagram(flow)
    assert d is not None
    ends = [b for b in d.boxes if b.end]
    assert len(ends) == 2 and {b.place for b in ends} == {a for a in flow["predicted"]["answeredBy"]}
    assert [b.place for b in d.boxes].count(SOURCE) == 1
    assert sum(1 for e in d.edges if e.src == d.boxes[0].id) == 2


def test_decided_by_is_drawn_only_when_the_document_carries_it(doc: dict[str, Any]) -> None:
    flow = copy.deepcopy(_flow(doc, "nodeport-cluster-vxlan", "client:bob", "nodeport:shop/web@worker"))
    flow["predicted"].pop("decidedBy", None)  # as in a document written before issue 8's key existed
    plain = flow_diagram(flow)
    assert plain is not None and plain.notes == () and "decided by" not in mermaid(plain) + svg(plain)
    flow["predicted"]["decidedBy"] = "filter:FORWARD cali-tw-web DROP"
    flow["observed"] = {"verdict": "dropped", "decidedBy": {"table": "filter", "chain": "cali-tw-web",
                                                            "verdict": "DROP", "comment": "nsnp-network-isolate"}}
    d = flow_diagram(flow)
    assert d is not None
    assert d.notes == ("decided by (predicted): filter:FORWARD cali-tw-web DROP",
                       "decided by (observed): filter cali-tw-web DROP nsnp-network-isolate")
    assert "decided by (observed)" in mermaid(d) and "decided by (predicted)" in svg(d)
    assert d.key != plain.key


def test_mermaid_and_svg_escape_what_the_hop_text_carries() -> None:
    flow = {"from": "client:x", "to": "pod:a/b", "port": "80/TCP", "predicted": {"verdict": "dropped", "hops": [
        {"at": "client:x", "step": "drop", "detail": 'no route to "pod" <script>alert(1)</script> | #1 & co',
         "verdict": "dropped"}]}}
    d = flow_diagram(flow)
    assert d is not None
    text = mermaid(d)
    label = re.search(r'b0\["(.*)"\]', text)
    assert label is not None and '"' not in label.group(1) and "<script>" not in text and "|" not in label.group(1)
    assert "#quot;pod#quot;" in text and "#60;script#62;" in text and "#35;1 #38; co" in text
    drawn = svg(d)
    assert "<script>" not in drawn and "&lt;script&gt;" in drawn


def test_every_predicted_hop_of_the_bundled_scenarios_carries_a_structured_step(doc: dict[str, Any]) -> None:
    for s in doc["scenarios"]:
        for f in s["flows"]:
            pred = f["predicted"]
            hops = pred["hops"]
            assert all(h["at"] for h in hops), f  # hops_json gives at=None only to a hop without a Step
            assert [h["detail"] for h in hops] == [p for p in pred["path"] if not p.startswith("── outcome")]
            ends = [h for h in hops if h.get("verdict")]
            assert len(ends) >= len(pred.get("outcomes", [None]))
