"""The lab datapath (topology.py) and LoadBalancer VIP announcement (announce.py) with real traffic.

A 3-node topology (nodes 198.18.0.10-12, blocks 100.64.{0,1,2}.0/26, tunnel IPs 100.64.i.0,
pods 100.64.i.1..) plus two external clients is built in direct, VXLAN and IPIP modes. TCP
connections go through the kernel datapath; the server answers with the source address it
saw, and tcpdump on the switch bridge shows what crosses the node network.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from netiso.backends.lab import announce, topology
from netiso.backends.lab.netns import call_in, list_namespaces, read_sysctls
from netiso.backends.lab.runs import Run
from netiso.backends.lab.topology import LabNet, lab_mac, parse_lab_mac, plan
from netiso.model.types import ClientInfo, ClusterSpec, NodeInfo, PodInfo, Port, Scenario, Topology

NODES = ("control-plane", "worker", "worker2")
PODS_PER_NODE = {"control-plane": ("web", "api", "db"), "worker": ("web", "api", "db"), "worker2": ("web", "api")}
PORT = 8080
VIP = "198.18.0.200"

needs_lab = [
    pytest.mark.lab,
    pytest.mark.skipif(
        os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "bridge", "nsenter", "tcpdump", "iptables")),
        reason="needs root, iproute2, nsenter, tcpdump and iptables",
    ),
]


def make_topology(encapsulation: str, clients: tuple[str, ...] = ("alice", "bob")) -> Topology:
    """3 nodes, 8 pods, 2 clients; addresses as a real address plan would give them."""
    scenario = Scenario(
        name="lab-topology-test",
        description="",
        cluster=ClusterSpec(encapsulation=encapsulation, nodes=NODES, clients=clients),
        workspaces=(),
        projects=(),
        networkPolicies=(),
        workloads=(),
        services=(),
        ingresses=(),
        flows=(),
    )
    nodes = {
        name: NodeInfo(
            name=name,
            index=i,
            ip=f"198.18.0.{10 + i}",
            block=f"100.64.{i}.0/26",
            tunnel_ip=None if encapsulation == "direct" else f"100.64.{i}.0",
            lb_excluded=(i == 0),
        )
        for i, name in enumerate(NODES)
    }
    pods = [
        PodInfo("demo", wl, name, f"100.64.{i}.{k + 1}", {"app": wl}, (Port(PORT),))
        for i, name in enumerate(NODES)
        for k, wl in enumerate(PODS_PER_NODE[name])
    ]
    return Topology(
        scenario=scenario,
        encapsulation=encapsulation,
        load_balancer="metallb",
        node_network="198.18.0.0/24",
        pod_network="100.64.0.0/16",
        service_network="198.19.0.0/16",
        nodes=nodes,
        clients={c: ClientInfo(c, f"198.18.0.{100 + i}") for i, c in enumerate(clients)},
        pods=pods,
        services={},
        ingresses={},
        namespaces={},
        namespace_annotations={},
        policies=[],
    )


def new_run(state_dir: Path) -> Run:
    return Run.create("nxh3" + secrets.token_hex(2), state_dir=state_dir)


# --------------------------------------------------------------------------- traffic helpers


@contextmanager
def tcp_server(ns: str, port: int = PORT, tag: str = "-") -> Iterator[None]:
    """A server in ``ns`` that answers every connection with the source IP it saw and ``tag``."""
    srv = call_in(ns, socket.create_server, ("0.0.0.0", port))
    srv.settimeout(0.1)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, peer = srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.sendall(f"{peer[0]} {tag}\n".encode())

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=2)
        srv.close()


def answer(ns: str, ip: str, port: int = PORT, timeout: float = 3.0) -> tuple[str, str]:
    """Connect from ``ns`` to ip:port; return (source address the server saw, server tag)."""

    def ask() -> tuple[str, str]:
        with socket.create_connection((ip, port), timeout=timeout) as s:
            seen, tag = s.makefile().readline().split()
            return seen, tag

    return call_in(ns, ask)


def seen_source(ns: str, ip: str, port: int = PORT, timeout: float = 3.0) -> str:
    """Connect from ``ns`` to ip:port; return the source address the server saw."""
    return answer(ns, ip, port, timeout)[0]


@contextmanager
def capture(labnet: LabNet, bpf: str, count: int) -> Iterator[list[str]]:
    """tcpdump ``count`` packets on the switch bridge br0; the list fills in when the block ends."""
    assert labnet.run is not None
    proc = labnet.run.start(
        ["tcpdump", "-i", labnet.bridge, "-nn", "-l", "-c", str(count), bpf],
        netns=labnet.switch_ns,
        what="tcpdump",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    killer = threading.Timer(5, proc.kill)  # never hang on a tcpdump that does not start
    killer.start()
    try:
        while "listening on" not in (line := proc.stderr.readline()):
            assert line, "tcpdump exited before capturing"
    finally:
        killer.cancel()
    lines: list[str] = []
    try:
        yield lines
        out, _ = proc.communicate(timeout=5)
        lines += out.splitlines()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


PACKET_RE = re.compile(r"^\d\d:\d\d:\d\d\.\d+ IP (\S+)\.(\d+) > (\S+)\.(\d+): (.*)$")


def packets(lines: list[str]) -> list[tuple[str, str, str]]:
    """(src, dst, rest) of each captured packet (outer header; inner lines are skipped)."""
    return [(m[1], m[3], m[5]) for line in lines if (m := PACKET_RE.match(line))]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runs")


def _lab(encapsulation: str, state_dir: Path) -> Iterator[LabNet]:
    run = new_run(state_dir)
    labnet = topology.build(make_topology(encapsulation), run)
    try:
        yield labnet
    finally:
        t0 = time.monotonic()
        report = labnet.teardown()
        print(
            f"\n[lab {encapsulation}] up {labnet.up_seconds * 1000:.0f} ms, "
            f"down {(time.monotonic() - t0) * 1000:.0f} ms ({len(report.namespaces)} namespaces)"
        )
        assert not [n for n in list_namespaces() if n.startswith(run.prefix)]


@pytest.fixture(scope="module")
def direct_lab(state_dir: Path) -> Iterator[LabNet]:
    yield from _lab("direct", state_dir)


@pytest.fixture(scope="module")
def vxlan_lab(state_dir: Path) -> Iterator[LabNet]:
    yield from _lab("vxlan", state_dir)


def pod(labnet: LabNet, workload: str, node: str) -> topology.PodNet:
    return labnet.pods[f"pod:demo/{workload}@{node}"]


# --------------------------------------------------------------------------- plan (no root)


def test_lab_macs_map_back_to_kind_and_index() -> None:
    for kind in (topology.MAC_NODE, topology.MAC_VTEP):
        for index in (0, 1, 300):
            assert parse_lab_mac(lab_mac(kind, index)) == (kind, index)
    assert parse_lab_mac("ee:ee:ee:ee:ee:ee") is None


def test_plan_follows_calico_per_mode() -> None:
    vx = plan(make_topology("vxlan"), "nxh3beef")
    worker = "\n".join(next(b for ns, tool, b in vx.stages[1].batches if ns == "nxh3beef-n-worker"))
    assert (
        "link add vxlan.calico address 02:6e:78:03:00:01 mtu 1450 type vxlan id 4096"
        " local 198.18.0.11 dev eth0 dstport 4789 nolearning"
    ) in worker
    assert "neigh add 100.64.0.0 lladdr 02:6e:78:03:00:00 dev vxlan.calico nud permanent" in worker
    assert "route add 100.64.2.0/26 via 100.64.2.0 dev vxlan.calico onlink" in worker
    assert "route add blackhole 100.64.1.0/26 proto 80" in worker
    assert "default" not in worker
    fdb = [b for ns, tool, b in vx.stages[2].batches if tool == "bridge" and ns == "nxh3beef-n-worker"]
    assert fdb == [
        [
            "fdb add 02:6e:78:03:00:00 dev vxlan.calico dst 198.18.0.10 self permanent",
            "fdb add 02:6e:78:03:00:02 dev vxlan.calico dst 198.18.0.12 self permanent",
        ]
    ]
    direct = plan(make_topology("direct"), "nxh3beef")
    worker = "\n".join(next(b for ns, tool, b in direct.stages[1].batches if ns == "nxh3beef-n-worker"))
    assert "route add 100.64.0.0/26 via 198.18.0.10 dev eth0 proto 12" in worker
    assert "vxlan" not in worker and "tunl0" not in worker
    assert {p.mtu for p in direct.net.pods.values()} == {1500}
    assert {p.mtu for p in plan(make_topology("ipip"), "nxh3beef").net.pods.values()} == {1480}


def test_plan_rejects_addresses_that_cannot_route() -> None:
    topo = make_topology("direct")
    bad = PodInfo("demo", "stray", "worker", "100.64.2.9", {}, ())
    topo.pods.append(bad)
    with pytest.raises(ValueError, match=r"outside its node's block 100\.64\.1\.0/26"):
        plan(topo, "nxh3beef")
    topo = make_topology("direct")
    topo.clients["far"] = ClientInfo("far", "203.0.113.5")
    with pytest.raises(ValueError, match="outside the node network"):
        plan(topo, "nxh3beef")
    topo = make_topology("direct")
    topo.encapsulation = "vxlan"  # tunnel IPs are missing
    with pytest.raises(ValueError, match="needs a tunnel IP"):
        plan(topo, "nxh3beef")


def test_ns_of_resolves_symbols_and_names_the_known_ones() -> None:
    net = plan(make_topology("direct"), "nxh3beef").net
    assert net.ns_of("node:worker") == "nxh3beef-n-worker"
    assert net.ns_of("client:alice") == "nxh3beef-c-alice"
    assert net.ns_of("pod:demo/web@worker2") == "nxh3beef-p-demo-web-worker2"
    with pytest.raises(KeyError, match="client:bob"):
        net.ns_of("client:carol")


# --------------------------------------------------------------------------- direct mode


class TestDirect:
    pytestmark = needs_lab

    def test_pod_to_pod_across_nodes_server_sees_pod_ip(self, direct_lab: LabNet) -> None:
        src, dst = pod(direct_lab, "web", "control-plane"), pod(direct_lab, "web", "worker")
        with tcp_server(dst.netns):
            assert seen_source(src.netns, dst.ip) == src.ip

    def test_client_to_pod_server_sees_client_ip(self, direct_lab: LabNet) -> None:
        dst = pod(direct_lab, "api", "worker2")
        with tcp_server(dst.netns):
            assert seen_source(direct_lab.ns_of("client:alice"), dst.ip) == "198.18.0.100"

    def test_node_to_remote_pod_server_sees_node_ip(self, direct_lab: LabNet) -> None:
        dst = pod(direct_lab, "db", "worker")
        with tcp_server(dst.netns):
            assert seen_source(direct_lab.ns_of("node:control-plane"), dst.ip) == "198.18.0.10"

    def test_node_network_carries_plain_pod_ips(self, direct_lab: LabNet) -> None:
        src, dst = pod(direct_lab, "api", "control-plane"), pod(direct_lab, "api", "worker2")
        with tcp_server(dst.netns), capture(direct_lab, "ip", 6) as lines:
            assert seen_source(src.netns, dst.ip) == src.ip
        seen = packets(lines)
        assert len(seen) == 6, lines
        assert {(s, d) for s, d, _ in seen} == {(src.ip, dst.ip), (dst.ip, src.ip)}
        assert not any("VXLAN" in rest for _, _, rest in seen)

    def test_nodes_are_wired_like_calico_and_have_no_default_route(self, direct_lab: LabNet) -> None:
        assert topology.verify_no_default_route(direct_lab) == []
        run = direct_lab.run
        assert run is not None
        p = pod(direct_lab, "web", "worker")
        node_ns = direct_lab.ns_of("node:worker")
        cali = run.run(["ip", "-4", "-o", "addr", "show", "dev", p.host_iface], netns=node_ns).stdout
        assert cali.strip() == ""  # the host side of a pod veth has no IPv4 address
        routes = run.run(["ip", "route"], netns=node_ns).stdout
        assert f"{p.ip} dev {p.host_iface} scope link" in routes
        assert "blackhole 100.64.1.0/26 proto bird" in routes
        pod_routes = run.run(["ip", "route"], netns=p.netns).stdout
        assert "default via 169.254.1.1 dev eth0" in pod_routes
        assert "169.254.1.1 dev eth0 scope link" in pod_routes
        sysctls = read_sysctls(
            node_ns,
            [
                "net/ipv4/ip_forward",
                f"net/ipv4/conf/{p.host_iface}/proxy_arp",
                f"net/ipv4/neigh/{p.host_iface}/proxy_delay",
                "net/ipv4/neigh/eth0/proxy_delay",
                "net/ipv4/conf/all/rp_filter",
            ],
        )
        assert sysctls["net/ipv4/ip_forward"] == "1"
        assert sysctls[f"net/ipv4/conf/{p.host_iface}/proxy_arp"] == "1"
        assert sysctls["net/ipv4/conf/all/rp_filter"] == "0"
        # (not /sys/class/net: sysfs shows the devices of the netns that mounted it, the host's)
        mac = json.loads(run.run(["ip", "-j", "link", "show", "eth0"], netns=node_ns).stdout)[0]["address"]
        assert direct_lab.node_of_mac(mac) == "worker"


# --------------------------------------------------------------------------- VXLAN mode


class TestVxlan:
    pytestmark = needs_lab

    def test_pod_to_pod_across_nodes_server_sees_pod_ip(self, vxlan_lab: LabNet) -> None:
        src, dst = pod(vxlan_lab, "web", "worker2"), pod(vxlan_lab, "db", "control-plane")
        with tcp_server(dst.netns):
            assert seen_source(src.netns, dst.ip) == src.ip

    def test_client_to_pod_server_sees_client_ip(self, vxlan_lab: LabNet) -> None:
        dst = pod(vxlan_lab, "web", "worker")
        with tcp_server(dst.netns):
            assert seen_source(vxlan_lab.ns_of("client:bob"), dst.ip) == "198.18.0.101"

    def test_node_to_remote_pod_server_sees_tunnel_ip(self, vxlan_lab: LabNet) -> None:
        dst = pod(vxlan_lab, "api", "worker2")
        with tcp_server(dst.netns):
            assert seen_source(vxlan_lab.ns_of("node:worker"), dst.ip) == "100.64.1.0"

    def test_node_network_carries_vxlan_vni_4096_between_node_ips(self, vxlan_lab: LabNet) -> None:
        src, dst = pod(vxlan_lab, "api", "control-plane"), pod(vxlan_lab, "web", "worker")
        with tcp_server(dst.netns), capture(vxlan_lab, "ip", 6) as lines:
            assert seen_source(src.netns, dst.ip) == src.ip
        seen = packets(lines)
        assert len(seen) == 6, lines
        for s, d, rest in seen:  # every IP packet on the wire is VXLAN between the two nodes
            assert {s, d} == {"198.18.0.10", "198.18.0.11"}, lines
            assert rest.startswith("VXLAN, flags [I] (0x08), vni 4096"), lines
        inner = [line for line in lines if line.startswith("IP ")]
        assert any(line.startswith(f"IP {src.ip}.") and f"> {dst.ip}.{PORT}" in line for line in inner), lines
        assert any(f"mss {1450 - 40}" in line for line in inner), lines  # pod MTU 1450

    def test_vtep_has_static_neighbours_and_fdb(self, vxlan_lab: LabNet) -> None:
        run = vxlan_lab.run
        assert run is not None
        ns = vxlan_lab.ns_of("node:control-plane")
        details = run.run(["ip", "-d", "link", "show", "vxlan.calico"], netns=ns).stdout
        assert "vxlan id 4096" in details and "dstport 4789" in details and "nolearning" in details
        assert "mtu 1450" in details
        fdb = run.run(["bridge", "fdb", "show", "dev", "vxlan.calico"], netns=ns).stdout
        assert "02:6e:78:03:00:01 dst 198.18.0.11 self permanent" in fdb
        neigh = run.run(["ip", "neigh", "show", "dev", "vxlan.calico"], netns=ns).stdout
        assert "100.64.2.0 lladdr 02:6e:78:03:00:02 PERMANENT" in neigh


# --------------------------------------------------------------------------- IPIP mode (structure)


@pytest.mark.lab
@pytest.mark.skipif(os.geteuid() != 0 or not Path("/dev/net/tun").exists(), reason="needs root and /dev/net/tun")
def test_ipip_mode_builds_tunl0_as_tun_with_onlink_routes_via_node_ips(state_dir: Path) -> None:
    run = new_run(state_dir)
    labnet = topology.build(make_topology("ipip"), run)
    try:
        ns = labnet.ns_of("node:worker")
        details = run.run(["ip", "-d", "link", "show", "tunl0"], netns=ns).stdout
        assert "tun type tun pi off" in details and "mtu 1480" in details
        assert "100.64.1.0/32" in run.run(["ip", "-4", "addr", "show", "tunl0"], netns=ns).stdout
        routes = run.run(["ip", "route"], netns=ns).stdout
        assert re.search(r"100\.64\.0\.0/26 via 198\.18\.0\.10 dev tunl0 proto bird onlink", routes)
        assert re.search(r"100\.64\.2\.0/26 via 198\.18\.0\.12 dev tunl0 proto bird onlink", routes)
    finally:
        labnet.teardown()


# --------------------------------------------------------------------------- timing


@pytest.mark.lab
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
@pytest.mark.parametrize("encapsulation", ["direct", "vxlan", "ipip"])
def test_lab_up_under_3s_and_down_under_2s(encapsulation: str, state_dir: Path) -> None:
    topo = make_topology(encapsulation)
    run = new_run(state_dir)
    labnet = topology.build(topo, run)
    t0 = time.monotonic()
    report = labnet.teardown()
    down = time.monotonic() - t0
    print(
        f"\n[timing {encapsulation}] {len(topo.nodes)} nodes + {len(topo.clients)} clients + "
        f"{len(topo.pods)} pods: up {labnet.up_seconds * 1000:.0f} ms, down {down * 1000:.0f} ms, "
        f"{len(report.namespaces)} namespaces, {len(run.replay)} replay lines"
    )
    assert len(report.namespaces) == 1 + 3 + 2 + 8  # timings are printed; bench/lab.py measures them


# --------------------------------------------------------------------------- LB VIP announcement


class TestAnnounce:
    pytestmark = needs_lab

    @pytest.fixture
    def dnat_vip(self, direct_lab: LabNet) -> Iterator[None]:
        """On every node, DNAT VIP:80 to that node's web pod, which answers with its node's name.

        A stand-in for kube-proxy's ``KUBE-SERVICES -d <lbIP>`` with a node-local endpoint
        (no SNAT needed for the reply to come back through the same node), so the answer tells
        which node the client's packets entered.
        """
        run = direct_lab.run
        assert run is not None
        rules = {
            n.netns: ["-d", VIP, "-p", "tcp", "--dport", "80", "-j", "DNAT", "--to-destination",
                      f"{pod(direct_lab, 'web', n.name).ip}:{PORT}"]
            for n in direct_lab.nodes.values()
        }
        for ns, rule in rules.items():
            run.run(["iptables", "-t", "nat", "-A", "PREROUTING", *rule], netns=ns)
        try:
            with ExitStack() as servers:
                for n in direct_lab.nodes.values():
                    servers.enter_context(tcp_server(pod(direct_lab, "web", n.name).netns, tag=n.name))
                yield
        finally:
            for vip, owner in list(direct_lab.announced.items()):
                announce.withdraw(direct_lab, owner, vip)
            for ns, rule in rules.items():
                run.run(["iptables", "-t", "nat", "-D", "PREROUTING", *rule], netns=ns)
            for c in direct_lab.clients.values():
                run.run(["ip", "neigh", "flush", "to", VIP, "dev", "eth0"], netns=c.netns)

    @pytest.mark.usefixtures("dnat_vip")
    def test_client_resolves_vip_to_elected_node_and_enters_there(self, direct_lab: LabNet) -> None:
        announce.announce(direct_lab, "worker", VIP)
        alice = direct_lab.ns_of("client:alice")
        assert answer(alice, VIP, 80) == ("198.18.0.100", "worker")
        assert announce.who_has(direct_lab, "alice", VIP) == "worker"
        assert announce.who_has(direct_lab, "bob", VIP) is None  # bob never talked to the VIP
        run = direct_lab.run
        assert run is not None
        worker = direct_lab.ns_of("node:worker")
        # the VIP never becomes a local address of the announcer (kube-proxy iptables mode)
        assert VIP not in run.run(["ip", "-4", "addr"], netns=worker).stdout
        assert not run.run(["ip", "route", "get", VIP], netns=worker).stdout.startswith("local")

    @pytest.mark.usefixtures("dnat_vip")
    def test_reelection_moves_clients_with_gratuitous_arp(self, direct_lab: LabNet) -> None:
        announce.announce(direct_lab, "worker", VIP)
        alice = direct_lab.ns_of("client:alice")
        assert answer(alice, VIP, 80) == ("198.18.0.100", "worker")
        announce.announce(direct_lab, "worker2", VIP)  # failover: worker withdraws, worker2 sends GARP
        assert direct_lab.announced == {VIP: "worker2"}
        # alice's cached entry moved without a flush, and her packets now enter worker2
        assert announce.who_has(direct_lab, "alice", VIP) == "worker2"
        assert answer(alice, VIP, 80) == ("198.18.0.100", "worker2")

    @pytest.mark.usefixtures("dnat_vip")
    def test_withdrawn_vip_is_answered_by_nobody(self, direct_lab: LabNet) -> None:
        announce.announce(direct_lab, "worker", VIP)
        announce.withdraw(direct_lab, "worker", VIP)
        bob = direct_lab.ns_of("client:bob")
        with pytest.raises(OSError):
            seen_source(bob, VIP, 80, timeout=1.5)
        assert announce.who_has(direct_lab, "bob", VIP) is None

    def test_vip_outside_node_network_is_refused(self, direct_lab: LabNet) -> None:
        with pytest.raises(ValueError, match="outside the node network"):
            announce.announce(direct_lab, "worker", "203.0.113.7")
