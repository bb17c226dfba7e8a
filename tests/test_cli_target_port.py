"""The CLI with Service ``targetPort`` (scenarios/service-target-port.yaml): ``explain`` shows the
DNAT to the pod port and the whitelist warning, ``render`` and the kube ``--dry-run`` write the
Service's targetPort and pods that listen on it, ``check`` on the lab matches every flow.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from netiso.cli import main

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "scenarios" / "service-target-port.yaml"
WARNING = ("shop: whitelist rule egress-service-billing-db allows Service billing/db port 80/TCP (KubeSphere "
           "writes the Service's port, not its targetPort), but the policy sees the pod port 9376")


def test_explain_shows_the_dnat_to_the_target_port_and_the_warning(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.json"
    assert main(["explain", str(BUNDLED), "--paths", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "KUBE-SEP DNAT → pod:shop/web@worker (100.64.1.1:9376)" in text
    assert "nginx routes Host web.example to endpoint pod:shop/web@worker (100.64.1.1:9376)" in text
    assert f"warning: {WARNING}" in text
    doc = json.loads(out.read_text())
    (egress,) = [s for s in doc["scenarios"] if s["name"] == "egress-whitelist-target-port"]
    assert any(w.startswith(WARNING) for w in egress["warnings"])
    (flow,) = [f for f in egress["flows"] if f["to"] == "clusterip:billing/db"]
    assert flow["predicted"]["verdict"] == "dropped" and flow["port"] == "80/TCP"


def test_render_writes_target_ports_and_pods_listening_on_them(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", str(BUNDLED)]) == 0
    objs = [o for o in yaml.safe_load_all(capsys.readouterr().out) if o]
    svcs = {(o["metadata"]["namespace"], o["metadata"]["name"]): o["spec"]["ports"] for o in objs
            if o["kind"] == "Service"}
    assert [(p["port"], p["targetPort"]) for p in svcs[("shop", "web")]] == [(80, 9376)]
    assert [(p["port"], p["targetPort"]) for p in svcs[("shop", "front")]] == [(80, "http")]
    assert [(p["port"], p["targetPort"]) for p in svcs[("billing", "db")]] == [(80, 9376)]
    (web,) = [o for o in objs if o["kind"] == "Pod" and o["metadata"]["name"] == "web-worker"]
    container = web["spec"]["containers"][0]
    assert "--http-port=9376" in container["args"]
    assert container["ports"] == [{"name": "http", "containerPort": 9376, "protocol": "TCP"}]


def test_kube_dry_run_plans_the_target_ports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(BUNDLED), "--backend", "kube", "--dry-run", "--out", str(tmp_path)]) == 0
    web = yaml.safe_load((tmp_path / "service-target-port" / "15-service-web.yaml").read_text())
    assert web["spec"]["ports"] == [{"protocol": "TCP", "port": 80, "targetPort": 9376}]
    front = yaml.safe_load((tmp_path / "service-target-port" / "16-service-front.yaml").read_text())
    assert front["spec"]["ports"][0]["targetPort"] == "http"
    pod = yaml.safe_load((tmp_path / "service-target-port" / "11-pod-web-worker.yaml").read_text())
    assert "--http-port=9376" in pod["spec"]["containers"][0]["args"]
    ingress = yaml.safe_load((tmp_path / "service-target-port" / "22-ingress-web.yaml").read_text())
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "web", "port": {"number": 80}}  # an Ingress names the Service port


@pytest.mark.lab
def test_check_on_the_lab_matches_every_target_port_flow(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.json"
    assert main(["check", str(BUNDLED), "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    flows = [f for s in doc["scenarios"] for f in s["flows"]]
    assert len(flows) == 12
    assert all(f["observed"]["verdict"] == f["predicted"]["verdict"] for f in flows)
    assert "12 matched, 0 mismatched" in capsys.readouterr().out
