"""externalIPs and ``externalip:P/S[@NODE]``: loaded, rendered and predicted as their own exposure.

Bad keys and flows are one message naming the field (exit 2); the Service manifest carries the
addresses; the bundled scenarios/external-ips.yaml is predicted as its ``expect`` says, with
each hop naming the external IP; without the Service's externalIPs nothing captures the address.
The lab observes the scenario in tests/lab/test_external_ips_lab.py.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from netiso.model.addressing import load_topologies, resolve
from netiso.model.flows import external_ip_routes
from netiso.model.loader import loads
from netiso.model.render import service
from netiso.oracle.paths import Origin, Packet, PathEngine
from netiso.oracle.predict import predict_all
from netiso.oracle.profile import DEFAULT_PROFILE
from tests.model.test_loader_errors import assert_refused

BUNDLED = Path(__file__).resolve().parents[2] / "scenarios" / "external-ips.yaml"
BASE = ("name: t\ncluster: {clients: [alice]}\nprojects: [{name: demo}]\n"
        "workloads: [{name: web, project: demo, nodes: [worker]}, {name: probe, project: demo, nodes: [worker2]}]\n")
EXT = "services: [{name: web, project: demo, externalIPs: [203.0.113.5]}]\n"

BAD = [
    ("services: [{name: web, project: demo, externalIPs: [203.0.113.500]}]\n", "services[0].externalIPs[0]",
     ("not an IPv4 address",)),
    ("services: [{name: web, project: demo, externalIPs: [198.18.0.11]}]\n", "services[0].externalIPs[0]",
     ("documentation ranges", "203.0.113.0/24")),
    ("services: [{name: web, project: demo, externalIPs: []}]\n", "services[0].externalIPs", ("empty",)),
    ("services: [{name: web, project: demo, externalIPs: [203.0.113.5]}, "
     "{name: api, project: demo, selector: {app: web}, externalIPs: [203.0.113.5]}]\n", "services[1].externalIPs[0]",
     ("already an external IP of demo/web",)),
    ("services: [{name: web, project: demo}]\nflows: [{from: client:alice, to: externalip:demo/web@worker}]\n",
     "flows[0].to", ("has no externalIPs",)),
    (EXT + "flows: [{from: client:alice, to: externalip:demo/web}]\n", "flows[0].to",
     ("name the node", "externalip:demo/web@NODE")),
    (EXT + "flows: [{from: pod:demo/probe, to: externalip:demo/web@worker}]\n", "flows[0].to",
     ("client: sources only", "remove @NODE")),
    (EXT + "flows: [{from: client:alice, to: externalip:demo/web@worker}, "
     "{from: client:alice, to: externalip:demo/web@worker2}]\n", "flows[1].to", ("already routes 203.0.113.5 via worker",)),
    (EXT + "flows: [{from: client:alice, to: externalip:demo/web@nowhere}]\n", "flows[0].to", ("unknown node",)),
]


@pytest.mark.parametrize(("extra", "field", "says"), BAD, ids=[b[1] + str(i) for i, b in enumerate(BAD)])
def test_bad_external_ip_is_one_message_naming_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         extra: str, field: str, says: tuple[str, ...]) -> None:
    assert_refused(tmp_path, capsys, BASE + extra, field, says)


def test_external_ips_reach_the_manifest_and_the_clients_routes() -> None:
    topo = resolve(loads(BASE + EXT + "flows: [{from: client:alice, to: externalip:demo/web@worker2}]\n")[0])
    assert service(topo.services["demo/web"], "metallb")["spec"]["externalIPs"] == ["203.0.113.5"]
    assert external_ip_routes(topo) == {"alice": {"203.0.113.5": "worker2"}}


def test_the_bundled_scenario_is_predicted_as_its_expect_says_and_names_the_external_ip() -> None:
    (topo,) = load_topologies([str(BUNDLED)])
    preds = {f"{p.flow.src} -> {p.flow.dst}": p for p in predict_all(topo)}
    for p in preds.values():
        assert not p.disagreements, f"{p.flow.label}: {p.disagreements}"
    assert preds["client:bob -> externalip:shop/web-local@worker2"].decided_by == \
        "kube-proxy shop/web-local no-local-endpoints drop"
    assert preds["client:alice -> externalip:shop/empty@worker2"].decided_by == "kube-proxy shop/empty no-endpoints reject"
    path = preds["client:alice -> externalip:shop/web@worker2"].path
    assert "routes external IP 203.0.113.50 of shop/web via node:worker2" in path[0]
    assert any("external IP 203.0.113.50 → KUBE-EXT for shop/web" in hop for hop in path)
    # the same packet where no Service has the address: kube-proxy captures nothing, nobody answers
    bare = replace(topo, services={k: replace(v, external_ips=()) for k, v in topo.services.items()})
    walked = PathEngine(bare, DEFAULT_PROFILE).walk(Origin("client", "alice"), Packet("", "203.0.113.50", 8080, "TCP"),
                                                   via="worker2")
    assert [o.verdict for o in walked] == ["dropped"]
