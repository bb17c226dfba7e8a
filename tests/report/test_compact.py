"""Shared paths (``paths`` table, docs/scenarios.md "Shared paths"): complete, compact, and readable back.

Built from a real ``explain`` document of the generated 12-node scale scenario (704 flows), made
check-like: every flow observed as predicted with a kernel-trace-like path per node it crosses
(the same rule on a node is the same hop in every flow, as in a real trace), and two mismatches.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from netiso.cli import main
from netiso.report import compact
from netiso.report.markdown import render_markdown
from tests.support.scale_scenarios import explained_lab_doc


def _trace(flow: dict[str, Any]) -> list[dict[str, Any]]:
    nodes = [h["at"].split(":", 1)[1] for h in flow["predicted"]["hops"] if (h.get("at") or "").startswith("node:")]
    return [{"node": n, "table": t, "chain": c, "handle": k, "verdict": v, "rule": "", "comment": f"{c} rule {k}",
             "decision": None}
            for n in dict.fromkeys(nodes)
            for k, (t, c, v) in enumerate([("raw", "PREROUTING", "CONTINUE"), ("nat", "KUBE-SERVICES", "JUMP"),
                                           ("filter", "FORWARD", "ACCEPT")])]


@pytest.fixture(scope="module")
def check_doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    doc = explained_lab_doc(tmp_path_factory.mktemp("scale"), 12)
    for f in doc["scenarios"][0]["flows"]:
        p = f["predicted"]
        f["observed"] = {"verdict": p["verdict"], "source": (p["source"] or [None])[0], "tries": 1,
                         "decidedBy": p.get("decidedBy"), "path": _trace(f)}
        f["match"] = True
    for i in (300, 500):
        f = doc["scenarios"][0]["flows"][i]
        f["match"], f["problems"] = False, ["observed dropped, predicted allowed"]
    return doc


def test_a_shared_document_expands_back_to_the_inline_one(check_doc: dict[str, Any]) -> None:
    shared = compact.share_paths(copy.deepcopy(check_doc))
    back = compact.expand(json.loads(compact.dumps(shared)))
    assert "paths" not in back and len(back["scenarios"][0]["flows"]) == 704
    for before, after in zip(check_doc["scenarios"][0]["flows"], back["scenarios"][0]["flows"], strict=True):
        before = copy.deepcopy(before)
        if "hops" not in after["predicted"]:
            del before["predicted"]["hops"]  # omitted for matched flows past the sample: explain gives them
        assert after == before


def test_mismatches_and_a_sample_keep_their_paths_inline(check_doc: dict[str, Any]) -> None:
    flows = compact.share_paths(copy.deepcopy(check_doc))["scenarios"][0]["flows"]
    inline = [i for i, f in enumerate(flows) if "path" in f["observed"]]
    assert inline == [*range(compact.SAMPLE), 300, 500]
    assert all("hops" in flows[i]["predicted"] and "path" in flows[i]["predicted"] for i in inline)
    assert all("pathRef" in f["observed"] and "pathRef" in f["predicted"] for f in flows)  # every flow by reference
    assert not any("hops" in f["predicted"] or "path" in f["predicted"] for i, f in enumerate(flows) if i not in inline)


def test_shared_paths_store_each_rule_once_and_the_document_shrinks(check_doc: dict[str, Any]) -> None:
    shared = compact.share_paths(copy.deepcopy(check_doc))
    rules = shared["paths"]["rules"]
    assert len(rules) == len({json.dumps(r, sort_keys=True) for r in rules}) == 3  # node-free: 3 rules in all
    assert shared["paths"]["version"] == compact.PATHS_VERSION
    assert len(compact.dumps(shared)) * 3 < len(compact.dumps(check_doc))


def test_auto_shares_only_large_documents(check_doc: dict[str, Any]) -> None:
    small = {"scenarios": [{"flows": [{}] * 300}]}  # the bundled conformance run has ~260 flows
    assert not compact.wants_sharing(small, "auto") and compact.wants_sharing(small, "shared")
    assert compact.wants_sharing(check_doc, "auto")  # 704 flows
    assert compact.wants_sharing({"scenarios": [{"flows": [{}] * compact.SHARE_FROM_FLOWS}]}, "auto")
    assert not compact.wants_sharing({"scenarios": [{"flows": [{}] * 10**5}]}, "inline")


def test_the_markdown_report_reads_predicted_paths_from_the_table(check_doc: dict[str, Any]) -> None:
    shared = compact.share_paths(copy.deepcopy(check_doc))

    def hop_lines(doc: dict[str, Any]) -> list[str]:  # diagrams need hops: only the kept flows have them
        return [line for line in render_markdown(doc).splitlines() if line.startswith("- ")]

    assert hop_lines(shared) == hop_lines(check_doc) and len(hop_lines(shared)) > 704


def test_bad_json_paths_value_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["check", str(tmp_path), "--json-paths", "tiny"])
    assert exc.value.code == 2 and "--json-paths" in capsys.readouterr().err
