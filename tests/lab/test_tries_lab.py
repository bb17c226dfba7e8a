"""``observed.tries`` on the kernel lab (issue 16): a timeout no rule decided is probed once more
before it is reported ``dropped``; answered flows and rule-decided drops take one try.

The bundled scenario client-pod-routes-none has all three kinds: alice's packet to the pod IP is
lost at a router without the route (no rule decides it: two tries), the NodePort answers, and bob
is not there, so a second document adds a flow a policy drops (settled by the trace: one try).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from netiso.cli import main

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]


def test_undecided_timeouts_take_two_tries_everything_else_one(tmp_path: Path) -> None:
    docs = list(yaml.safe_load_all((ROOT / "scenarios" / "client-pod-routes.yaml").read_text()))
    scenario = next(d for d in docs if d["name"] == "client-pod-routes-none")
    scenario["cluster"]["clients"] = ["alice", "bob"]
    scenario["flows"].append({"from": "client:bob", "to": "nodeport:shop/web@worker", "expect": {"verdict": "dropped"}})
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(scenario, sort_keys=False))
    out = tmp_path / "out.json"
    assert main(["check", str(path), "--json", str(out)]) == 0
    flows = {(f["from"], f["to"]): f["observed"] for f in json.loads(out.read_text())["scenarios"][0]["flows"]}
    lost = flows[("client:alice", "pod:shop/web")]
    assert (lost["verdict"], lost["tries"]) == ("dropped", 2) and "no answer to SYN" in lost["detail"]
    assert lost["ms"] >= 2 * 1000 * 0.95  # both tries waited their timeout
    assert flows[("client:alice", "nodeport:shop/web@worker")]["tries"] == 1
    decided = flows[("client:bob", "nodeport:shop/web@worker")]
    assert (decided["verdict"], decided["tries"]) == ("dropped", 1) and decided["decidedBy"]
    assert flows[("pod:shop/web", "client:alice")]["tries"] == 1
