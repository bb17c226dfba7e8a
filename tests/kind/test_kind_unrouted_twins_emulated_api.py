"""``cluster.clientsRouteToPods: false`` on kind: unrouted twin client containers, not skipped flows.

Against the stand-in ``kind``/``docker`` executables; the end-to-end tests add the emulated API
server and the emulated network of tests/kind/emulated_kind.py, in which a client container
reaches an address outside the kind network only through a route recorded in it (the stand-in
docker's rule: the docker host does not route pod IPs). So what these tests prove is which
container each scenario's client flows run from, which containers got routes, what the dry run
says and that the twins are removed; not a real agnhost container's routing table.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from netiso.backends.base import Backend, BackendOptions, ClientCommands, Realization
from netiso.backends.kind.backend import KindBackend
from netiso.backends.kind.cluster import ClientContainers, KindCluster
from netiso.backends.kind.configs import render_config
from netiso.backends.kind.plan import write_kind_plans
from netiso.backends.kind.tools import Tools
from netiso.checking import check_many
from netiso.model.addressing import resolve
from netiso.model.loader import loads
from netiso.model.types import Topology
from tests.kind.emulated_kind import RUN, kind_run, run_objects

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = (ROOT / "scenarios" / "client-pod-routes.yaml").read_text()
ROUTED = f"netiso-{RUN}-alice"
TWIN = f"netiso-{RUN}-alice_unrouted"
AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.63.0"


def unrouted() -> Topology:
    """scenarios/client-pod-routes.yaml as bundled (clientsRouteToPods: false)."""
    return resolve(loads(BUNDLED)[0])


def routed() -> Topology:
    """The same scenario on a network that routes pod blocks: alice -> pod is then predicted allowed."""
    text = (BUNDLED.replace("clientsRouteToPods: false", "clientsRouteToPods: true")
            .replace("name: client-pod-routes-none", "name: client-pod-routes-routed")
            .replace("    expect: {verdict: dropped}\n", ""))
    topo = resolve(loads(text)[0])
    assert topo.scenario.cluster.clientsRouteToPods is True
    return topo


def test_emulated_api_kind_probes_a_false_scenarios_client_to_pod_flow_from_a_twin_and_a_true_ones_from_the_routed_client(
        fake_cluster, standins, tmp_path: Path, monkeypatch) -> None:
    none, routes = unrouted(), routed()
    run = kind_run(none, fake_cluster, standins, tmp_path, monkeypatch)
    run.backend.preflight([none, routes])
    try:  # the false scenario first: its twin is up when the true one is realized
        results = check_many([none, routes], backend=run.backend, evidence=False)
    finally:
        run.backend.close()
    by_name = {r.topo.name: r for r in results}
    for result in results:
        verdicts = {f"{r.pred.flow.src} -> {r.pred.flow.dst}": r.obs.verdict for r in result.results}
        assert "skipped" not in verdicts.values(), verdicts
        assert result.mismatches == 0, [r.problems for r in result.results if r.problems]
    to_pod = {name: next(r for r in res.results if r.pred.flow.dst == "pod:shop/web") for name, res in by_name.items()}
    assert to_pod["client-pod-routes-none"].obs.verdict == "dropped"
    assert to_pod["client-pod-routes-routed"].obs.verdict == "allowed"
    assert to_pod["client-pod-routes-routed"].obs.answered_by == "pod:shop/web@worker"

    # one cluster, one kube backend; each realization was handed its own alice
    (kube,) = run.kubes
    handed = {r.topo.name: (r.clients["alice"], r.client_pod_routes["alice"]) for r in kube.realized}
    assert handed == {"client-pod-routes-none": (f"docker exec -i {TWIN}", False),
                      "client-pod-routes-routed": (f"docker exec -i {ROUTED}", True)}
    # the false scenario's topology carries the twin's address, the true one's the routed container's
    ips = {name: res.topo.clients["alice"].ip for name, res in by_name.items()}
    assert ips["client-pod-routes-none"] != ips["client-pod-routes-routed"]

    docker = standins.calls("docker")
    runs = {a[a.index("--name") + 1]: a for a in docker if a[:1] == ["run"]}
    assert set(runs) == {ROUTED, TWIN}
    assert "NET_ADMIN" in runs[ROUTED] and "NET_ADMIN" in runs[TWIN]  # the twin's only for its sink
    assert "netiso.io/pod-routes=false" in runs[TWIN] and "netiso.io/pod-routes=false" not in runs[ROUTED]
    assert runs[TWIN][runs[TWIN].index("--hostname") + 1] == "alice"
    assert f"netiso.io/run={RUN}" in runs[TWIN]
    # routes only in the routed container, one per node block; the twin never got one
    routed_in = [a[1] for a in docker if a[:1] == ["exec"] and "route" in a and "via" in a]
    realized = by_name["client-pod-routes-routed"].topo
    assert routed_in == [ROUTED] * len([n for n in realized.nodes.values() if n.block])
    # the twin's one route: the whole pod subnet into its port-less bridge (a silent drop, nothing leaves
    # the host; without it the docker host would forward the SYN off the machine: the stand-in says refused)
    import ipaddress

    sinks = [a for a in docker if a[:2] == ["exec", TWIN] and "route" in a]
    assert len(sinks) == 1 and sinks[0][-2:] == ["dev", "nx-sink"]
    subnet = ipaddress.ip_network(sinks[0][5])
    assert all(ipaddress.ip_network(n.block).subnet_of(subnet) for n in realized.nodes.values() if n.block)
    batches = {a[2] for a in docker if a[:1] == ["exec"] and "NETISO1" in a[-1]}
    assert batches == {ROUTED, TWIN}

    # everything removed: both containers in the one `docker rm -f`, nothing of the run in the API
    assert standins.world()["containers"] == {} and standins.world()["clusters"] == {}
    assert [a for a in docker if a[:2] == ["rm", "-f"]][-1][2:] == [ROUTED, TWIN]
    assert run_objects(fake_cluster) == []


class ClientsKube(Backend):
    """A stand-in kube backend that asks the options for each scenario's clients, as KubeRealization does."""

    made: list[ClientsKube] = []

    def __init__(self, options: BackendOptions) -> None:
        self.options = options
        self.asked: dict[str, ClientCommands] = {}
        self.fail = False
        ClientsKube.made.append(self)

    def realize(self, topo: Topology) -> Realization:
        self.asked[topo.name] = self.options.clients_of(topo)
        if self.fail:
            raise RuntimeError("pods of shop/web not ready after 120s")
        return _Up(topo)


class _Up(Realization):
    def __init__(self, topo: Topology) -> None:
        self.topo, self.timings = topo, {}

    def serve(self, preds: Sequence[object]) -> None:
        pass

    def probe(self, preds: Sequence[object]) -> list:
        return []

    def down(self) -> None:
        pass


def _backend(standins, tmp_path: Path, options: BackendOptions | None = None) -> KindBackend:
    ClientsKube.made = []
    return KindBackend(options or BackendOptions(), kube_factory=ClientsKube, installer=lambda *_a: None,
                       tools=Tools(env=standins.env), images=lambda _r: [AGNHOST], workdir=tmp_path / "work",
                       logs_dir=tmp_path / "reports" / "kind-logs", run_id=RUN)


def test_standin_scenarios_realized_side_by_side_keep_their_own_clients_and_one_twin_is_started(
        standins, tmp_path) -> None:
    """--jobs > 1: a true and two false scenarios of one cluster realized at once from threads."""
    none, routes = unrouted(), routed()
    kb = _backend(standins, tmp_path)
    kb.preflight([none, routes])
    reals: list[Realization] = []
    threads = [threading.Thread(target=lambda t=t: reals.append(kb.realize(t))) for t in (none, routes, none)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (kube,) = ClientsKube.made
    assert kube.asked["client-pod-routes-none"] == ClientCommands({"alice": f"docker exec -i {TWIN}"}, ("alice",))
    assert kube.asked["client-pod-routes-routed"] == ClientCommands({"alice": f"docker exec -i {ROUTED}"}, ())
    assert [a[a.index("--name") + 1] for a in standins.calls("docker") if a[:1] == ["run"]].count(TWIN) == 1
    assert {a[1] for a in standins.calls("docker") if a[:1] == ["exec"] and "route" in a and "via" in a} == {ROUTED}
    sinks = [a for a in standins.calls("docker") if a[:2] == ["exec", TWIN] and "route" in a]
    assert len(sinks) == 1 and sinks[0][-2:] == ["dev", "nx-sink"]  # once, with the one twin
    for real in reals:
        real.down()
    kb.close()
    assert standins.world()["containers"] == {}


def test_standin_a_users_client_mapping_wins_over_the_twin_and_keeps_its_declared_routes(standins, tmp_path) -> None:
    kb = _backend(standins, tmp_path, BackendOptions(clients={"alice": "ssh alice"}, clients_without_pod_routes=()))
    kb.preflight([unrouted()])
    kb.realize(unrouted()).down()
    (kube,) = ClientsKube.made
    assert kube.asked["client-pod-routes-none"] == ClientCommands({"alice": "ssh alice"}, ())
    assert TWIN not in standins.world()["containers"], "no twin for a client the user mapped"
    kb.close()


def test_standin_twins_are_removed_at_close_after_a_failed_realization_too(standins, tmp_path) -> None:
    kb = _backend(standins, tmp_path)
    kb.preflight([unrouted()])
    ClientsKube.made = []
    original = kb.kube_factory

    def failing(options: BackendOptions) -> Backend:
        kube = original(options)
        kube.fail = True  # type: ignore[attr-defined]
        return kube

    kb.kube_factory = failing
    with pytest.raises(RuntimeError, match="not ready"):
        kb.realize(unrouted())
    assert TWIN in standins.world()["containers"], "the twin was up when the realization failed"
    kb.close()
    assert standins.world()["containers"] == {}
    assert [a for a in standins.calls("docker") if a[:2] == ["rm", "-f"]][-1][2:] == [ROUTED, TWIN]


def test_standin_a_twin_is_never_routed_to_a_node_only_into_its_sink(standins, tmp_path) -> None:
    KindCluster("c", render_config("direct"), tmp_path / "work", Tools(env=standins.env)).ensure()
    clients = ClientContainers(RUN, AGNHOST, Tools(env=standins.env))
    assert clients.start(["alice"], routed=False) == {"alice": "172.18.0.10"}
    assert clients.commands() == {} and clients.unrouted_commands(["alice", "bob"]) == {"alice": f"docker exec -i {TWIN}"}
    clients.route_to_pods(["alice"], [("192.168.1.0/26", "172.18.0.3")])  # twins are never routed
    assert "routes" not in standins.world()["containers"][TWIN]
    clients.sink_pod_subnet(["alice", "bob"], "192.168.0.0/16")  # bob has no twin: nothing for him
    twin = standins.world()["containers"][TWIN]
    assert twin["routes"] == {"192.168.0.0/16": "dev:nx-sink"} and twin["links"] == {"nx-sink": "up"}
    # iproute2 refuses a route into a device that is not there (or not up), as the stand-in does
    res = clients.tools.run(["docker", "exec", TWIN, "ip", "route", "replace", "10.0.0.0/8", "dev", "nx-none"],
                            check=False)
    assert res.returncode == 2 and "Cannot find device" in res.stderr
    clients.stop()
    assert standins.world()["containers"] == {}


def test_kind_dry_run_lists_the_twin_without_routes_and_hands_it_to_the_false_scenario(tmp_path: Path) -> None:
    write_kind_plans([unrouted(), routed()], tmp_path, BackendOptions(), run_id=RUN)
    cell = tmp_path / "kind-direct-metallb"
    text = (cell / "plan.txt").read_text()
    steps = [line for line in text.splitlines() if line[:4].strip().rstrip(".").isdigit()]
    twin_run = next(s for s in steps if f"docker run -d --network kind --name {TWIN} " in s)
    assert "netiso.io/pod-routes=false" in twin_run and "--hostname alice" in twin_run
    routes = [s for s in steps if "ip route replace" in s and " via " in s]
    assert routes and all(f"docker exec {ROUTED} ip route replace" in s for s in routes)
    assert not any(TWIN in s for s in routes)
    sink = [s for s in steps if f"docker exec {TWIN} ip route replace" in s]
    assert len(sink) == 1 and " dev nx-sink" in sink[0]
    assert next(s for s in steps if "docker rm -f" in s).split("docker rm -f ", 1)[1].split() == [ROUTED, TWIN]
    scenario = {name: (cell / "scenarios" / name / "plan.txt").read_text()
                for name in ("client-pod-routes-none", "client-pod-routes-routed")}
    assert f"alice=docker exec -i {TWIN}" in scenario["client-pod-routes-none"]
    assert ROUTED + "'" in scenario["client-pod-routes-routed"] and TWIN not in scenario["client-pod-routes-routed"]


def test_kind_dry_run_of_a_true_only_group_has_no_twin(tmp_path: Path) -> None:
    write_kind_plans([routed()], tmp_path, BackendOptions(), run_id=RUN)
    assert "_unrouted" not in (tmp_path / "kind-direct-metallb" / "plan.txt").read_text()
