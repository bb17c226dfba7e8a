"""The kind dry-run plan's content, cell by cell: what calico-node and the IPPool will say, and the VIPs.

For every (encapsulation, load balancer) cluster of ``netiso check scenarios/ --backend kind
--dry-run``: the IPPool calico-node will create has the ipipMode/vxlanMode the encapsulation
needs, the calico-node DaemonSet's CALICO_IPV4POOL_IPIP / CALICO_IPV4POOL_VXLAN env say the same,
and every LoadBalancer Service of every scenario requests a VIP from the kind pool that elects,
over the kind node names, the node the scenario's plan elects. The election here is the test's
own sha256(node#ip) and eligibility rule, not netiso.model.election.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from pathlib import Path

import pytest
import yaml

from netiso.backends.base import BackendOptions
from netiso.backends.kind.plan import write_kind_plans
from netiso.model.addressing import load_topologies

ROOT = Path(__file__).resolve().parents[2]
MODES = {"direct": ("Never", "Never"), "ipip": ("Always", "Never"), "vxlan": ("Never", "Always")}
KIND_POOL = (ipaddress.ip_address("172.18.255.200"), ipaddress.ip_address("172.18.255.250"))
IP_ANNOTATION = {"metallb": "metallb.io/loadBalancerIPs", "openelb": "eip.openelb.kubesphere.io/v1alpha1"}


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("kind-plan")
    write_kind_plans(load_topologies([str(ROOT / "scenarios")]), out, BackendOptions(), run_id="nx0a1b2c")
    return out


def _elect(nodes: list[str], ip: str) -> str | None:
    return min(nodes, key=lambda n: hashlib.sha256(f"{n}#{ip}".encode()).digest()) if nodes else None


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize("enc", ["direct", "ipip", "vxlan"])
@pytest.mark.parametrize("lb", ["metallb", "openelb"])
def test_kind_dry_run_cell_pool_modes_calico_env_and_each_vip_elects_the_planned_kind_node(
        plan: Path, enc: str, lb: str) -> None:
    cell = plan / f"kind-{enc}-{lb}"
    ipip, vxlan = MODES[enc]
    pool = _load(cell / "expected-ippool-default-ipv4-ippool.yaml")
    assert (pool["spec"]["ipipMode"], pool["spec"]["vxlanMode"]) == (ipip, vxlan)
    (ds_file,) = cell.glob("*-daemonset-calico-node.yaml")
    env = {e["name"]: e.get("value") for c in _load(ds_file)["spec"]["template"]["spec"]["containers"]
           if c["name"] == "calico-node" for e in c.get("env", [])}
    assert (env["CALICO_IPV4POOL_IPIP"], env["CALICO_IPV4POOL_VXLAN"]) == (ipip, vxlan)
    # calico.yaml's defaults in a cell without Calico settings of its own
    assert (env["FELIX_DEFAULTENDPOINTTOHOSTACTION"], env["CALICO_IPV4POOL_NAT_OUTGOING"]) == ("ACCEPT", "true")
    assert pool["spec"]["natOutgoing"] is True

    topos = {t.name: t for t in load_topologies([str(ROOT / "scenarios")])
             if t.encapsulation == enc and t.load_balancer == lb}
    checked = 0
    for scenario_dir in sorted((cell / "scenarios").iterdir()):
        topo = topos[scenario_dir.name]
        header = (scenario_dir / "plan.txt").read_text().splitlines()[1]
        kind = dict(re.findall(r"([\w-]+)->([\w.-]+)", header))  # scenario node -> kind node
        assert set(kind) == set(topo.nodes) and all(v.startswith(f"netiso-{enc}-{lb}-") for v in kind.values())
        for svc in (s for s in topo.services.values() if s.type == "LoadBalancer"):
            (svc_file,) = [f for f in scenario_dir.glob(f"*-service-{svc.name}.yaml")
                           if _load(f)["metadata"]["namespace"].endswith(f"-{svc.project}")]
            vip = _load(svc_file)["metadata"]["annotations"][IP_ANNOTATION[lb]]
            assert KIND_POOL[0] <= ipaddress.ip_address(vip) <= KIND_POOL[1]
            endpoint_nodes = {kind[p.node] for p in svc.endpoints}
            eligible = [k for k in kind.values()
                        if (lb == "openelb" or not k.endswith("-control-plane"))
                        and (svc.etp == "Cluster" or k in endpoint_nodes)]
            if not endpoint_nodes and (lb == "metallb" or svc.etp == "Local"):
                eligible = []
            assert _elect(eligible, vip) == (kind[svc.lb_node] if svc.lb_node else None), (scenario_dir.name, svc.key)
            assert f"{svc.key}: requests VIP {vip}" in (scenario_dir / "plan.txt").read_text()
            checked += 1
    assert checked > 0, f"no LoadBalancer Service in the {enc}/{lb} cell"


def _calico_cells(plan: Path) -> dict[str, tuple[dict, dict, str]]:
    """Every tagged cell (``kind-*-kp-*``): its calico-node env, its expected pool and its plan text."""
    cells = {}
    for cell in sorted(plan.glob("kind-*-kp-*")):
        (ds_file,) = cell.glob("*-daemonset-calico-node.yaml")
        env = {e["name"]: e.get("value") for c in _load(ds_file)["spec"]["template"]["spec"]["containers"]
               if c["name"] == "calico-node" for e in c.get("env", [])}
        pool = _load(cell / "expected-ippool-default-ipv4-ippool.yaml")
        text = (cell / "plan.txt").read_text()
        scenarios = {d.name for d in (cell / "scenarios").iterdir()}
        cells[",".join(sorted(scenarios))] = (env, pool, text)
    return cells


def test_kind_dry_run_builds_felix_and_nat_outgoing_scenarios_a_cluster_with_their_calico_settings(plan: Path) -> None:
    """felix-settings.yaml's scenarios run on clusters whose calico-node env and IPPool say what
    they ask: FELIX_DEFAULTENDPOINTTOHOSTACTION per action, natOutgoing false for both pool scenarios."""
    cells = _calico_cells(plan)
    (env, pool, _), = [v for k, v in cells.items() if "nat-outgoing-off-no-pod-routes" in k.split(",")]
    assert env["CALICO_IPV4POOL_NAT_OUTGOING"] == "false" and pool["spec"]["natOutgoing"] is False
    assert env["FELIX_DEFAULTENDPOINTTOHOSTACTION"] == "ACCEPT"
    for action in ("DROP", "RETURN"):
        (env, pool, _), = [v for k, v in cells.items() if f"felix-endpoint-to-host-{action.lower()}" in k.split(",")]
        assert env["FELIX_DEFAULTENDPOINTTOHOSTACTION"] == action
        assert env["CALICO_IPV4POOL_NAT_OUTGOING"] == "true" and pool["spec"]["natOutgoing"] is True
