"""The user-space tunl0 (netiso.backends.lab.ipip) against a real two-node namespace lab.

Topology (all namespaces prefixed ``nxh3b-``)::

    p1 (100.64.0.1) --cali1-- n1 (eth0 198.18.0.10, tunl0 100.64.0.0/32)
                                 | veth = the node network, where captures are taken
    p2 (100.64.1.1) --cali2-- n2 (eth0 198.18.0.11, tunl0 100.64.1.0/32)

Routes as BIRD programs them in IPIP mode (``block via remoteNodeIP dev tunl0 onlink``) and pods
wired as Calico's CNI does (/32 address, default via 169.254.1.1, host route to the pod on the
cali veth, MTU 1480). n1 has one extra tunl0 route (100.64.7.0/26) that the forwarder does not
know, to exercise the "no tunnel route" drop.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from netiso.backends.lab import ipip

PREFIX = "nxh3b"
N1, N2, P1, P2 = (f"{PREFIX}-{n}" for n in ("n1", "n2", "p1", "p2"))
NODE_IP = {N1: "198.18.0.10", N2: "198.18.0.11"}
TUNNEL_IP = {N1: "100.64.0.0", N2: "100.64.1.0"}
BLOCK = {N1: "100.64.0.0/26", N2: "100.64.1.0/26"}
POD_IP = {P1: "100.64.0.1", P2: "100.64.1.1"}
UNCONFIGURED_BLOCK = "100.64.7.0/26"  # routed into n1's tunl0, unknown to the forwarder
ECHO_PORT = 18080
UDP_PORT = 18081

lab = pytest.mark.lab
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)")


# --------------------------------------------------------------------------- helpers


def run(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def in_ns(ns: str, *argv: str) -> list[str]:
    return ["nsenter", f"--net=/run/netns/{ns}", *argv]


def ns_python(ns: str, code: str, *args: str, timeout: float = 120.0) -> str:
    """Run a Python snippet inside namespace ``ns`` and return its stdout."""
    proc = subprocess.run(
        in_ns(ns, sys.executable, "-c", code, *args), capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def wait_line(proc: subprocess.Popen[str], stream: Any, needle: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([stream], [], [], 0.2)[0]:
            line = stream.readline()
            if needle in line:
                return
            if not line:
                break
    raise AssertionError(f"{proc.args!r} never printed {needle!r}")


def end(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM) -> None:
    """End a process we started, by its PID."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


ECHO_SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(1024)
print("listening", flush=True)
while True:
    c, peer = s.accept()
    try:
        c.sendall(peer[0].encode())
    except OSError:
        pass
    c.close()
"""

# Connects COUNT times (WORKERS at a time) and reports what the server saw as our source.
TCP_CLIENT = """
import json, socket, sys, time
from concurrent.futures import ThreadPoolExecutor
dst, port, count, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def one(_):
    try:
        s = socket.create_connection((dst, port), timeout=5)
        data = b""
        while chunk := s.recv(64):
            data += chunk
        s.close()
        return data.decode()
    except OSError as exc:
        return "error:" + repr(exc)
t0 = time.monotonic()
with ThreadPoolExecutor(workers) as pool:
    results = list(pool.map(one, range(count)))
elapsed = time.monotonic() - t0
errors = [r for r in results if r.startswith("error:")]
print(json.dumps({"ok": len(results) - len(errors), "errors": errors[:5], "failed": len(errors),
                  "seen": sorted({r for r in results if not r.startswith("error:")}),
                  "elapsed": elapsed}))
"""

UDP_LISTENER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.settimeout(float(sys.argv[2]))
print("listening", flush=True)
got = []
try:
    while True:
        got.append(s.recv(100).decode())
except socket.timeout:
    pass
print(",".join(got), flush=True)
"""

# Sends one IPIP packet with a chosen outer source (IP_HDRINCL), inner UDP to DST:PORT.
CRAFT_IPIP = """
import socket, struct, sys
outer_src, outer_dst, inner_src, inner_dst, port, payload = sys.argv[1:7]
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF); s += s >> 16
    return ~s & 0xFFFF
def ip(src, dst, proto, body):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 1, 0, 64, proto, 0,
                    socket.inet_aton(src), socket.inet_aton(dst))
    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + body
data = payload.encode()
udp = struct.pack("!HHHH", 40000, int(port), 8 + len(data), 0) + data
pkt = ip(outer_src, outer_dst, 4, ip(inner_src, inner_dst, 17, udp))
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s.sendto(pkt, (outer_dst, 0))
"""

UDP_SEND = """
import socket, sys
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", (sys.argv[1], int(sys.argv[2])))
"""


@contextmanager
def capture(ns: str, iface: str, path: Path) -> Iterator[None]:
    """tcpdump in ``ns`` for the block.

    --immediate-mode: otherwise libpcap hands packets over per ring block (1 s timeout) and
    SIGINT discards what is pending; -Z root keeps write access to the 0700 tmp dir.
    """
    proc = subprocess.Popen(
        in_ns(ns, "tcpdump", "-i", iface, "-n", "-U", "--immediate-mode", "-Z", "root", "-w", str(path)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_line(proc, proc.stderr, "listening on")
        yield
        time.sleep(0.3)  # let the last packets reach the file
    finally:
        end(proc, signal.SIGINT)
        if proc.stderr:
            proc.stderr.close()


def read_pcap(path: Path) -> list[Any]:
    from scapy.layers.inet import IP
    from scapy.utils import rdpcap

    return [p[IP] for p in rdpcap(str(path)) if IP in p]


@dataclass
class Lab:
    namespaces: list[str] = field(default_factory=list)
    processes: list[subprocess.Popen[Any]] = field(default_factory=list)

    def ip(self, ns: str, *args: str) -> None:
        run("ip", "-n", ns, *args)

    def netns(self, name: str) -> None:
        if name in run("ip", "netns", "list").split():
            run("ip", "netns", "delete", name)  # our own leftover from an aborted run
        run("ip", "netns", "add", name)
        self.namespaces.append(name)
        self.ip(name, "link", "set", "lo", "up")

    def teardown(self) -> None:
        for proc in reversed(self.processes):
            end(proc)
        for name in reversed(self.namespaces):
            with suppress(subprocess.CalledProcessError):
                run("ip", "netns", "delete", name)


def build(lab_: Lab) -> None:
    for name in (N1, N2, P1, P2):
        lab_.netns(name)
    lab_.ip(N1, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", N2)
    for node, pod, cali, remote in ((N1, P1, "cali1", N2), (N2, P2, "cali2", N1)):
        run(*in_ns(node, "sysctl", "-qw", "net.ipv4.ip_forward=1"))
        lab_.ip(node, "addr", "add", f"{NODE_IP[node]}/24", "dev", "eth0")
        lab_.ip(node, "link", "set", "eth0", "up")
        lab_.ip(node, "tuntap", "add", "mode", "tun", "name", "tunl0")
        lab_.ip(node, "link", "set", "tunl0", "mtu", "1480", "up")
        lab_.ip(node, "addr", "add", f"{TUNNEL_IP[node]}/32", "dev", "tunl0")
        lab_.ip(node, "route", "add", BLOCK[remote], "via", NODE_IP[remote], "dev", "tunl0", "onlink")
        # the pod, wired like Calico's CNI plugin
        lab_.ip(node, "link", "add", cali, "mtu", "1480", "type", "veth", "peer", "name", "eth0", "netns", pod)
        run(*in_ns(node, "sysctl", "-qw", f"net.ipv4.conf.{cali}.proxy_arp=1"))
        lab_.ip(node, "link", "set", cali, "up")
        lab_.ip(node, "route", "add", POD_IP[pod], "dev", cali, "scope", "link")
        mac = json.loads(run("ip", "-n", node, "-j", "link", "show", cali))[0]["address"]
        lab_.ip(pod, "addr", "add", f"{POD_IP[pod]}/32", "dev", "eth0")
        lab_.ip(pod, "link", "set", "eth0", "mtu", "1480", "up")
        lab_.ip(pod, "neigh", "add", "169.254.1.1", "lladdr", mac, "dev", "eth0", "nud", "permanent")
        lab_.ip(pod, "route", "add", "default", "via", "169.254.1.1", "dev", "eth0", "onlink")
    lab_.ip(N1, "route", "add", UNCONFIGURED_BLOCK, "via", NODE_IP[N2], "dev", "tunl0", "onlink")


def forwarder_config(stats_path: Path) -> dict[str, Any]:
    return {
        "stats_path": str(stats_path),
        "nodes": [
            {"netns": N1, "node_ip": NODE_IP[N1], "routes": [{"block": BLOCK[N2], "remote_ip": NODE_IP[N2]}]},
            {"netns": N2, "node_ip": NODE_IP[N2], "routes": [{"block": BLOCK[N1], "remote_ip": NODE_IP[N1]}]},
        ],
    }


@dataclass
class Tunnel:
    lab: Lab
    proc: subprocess.Popen[bytes]
    stats_path: Path
    tmp: Path

    def stats(self, ns: str) -> dict[str, int]:
        return ipip.request_stats(self.proc, str(self.stats_path))["nodes"][ns]

    def connect(self, src_ns: str, dst: str, count: int = 1, workers: int = 1) -> dict[str, Any]:
        return json.loads(ns_python(src_ns, TCP_CLIENT, dst, str(ECHO_PORT), str(count), str(workers)))


@pytest.fixture(scope="module")
def tunnel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tunnel]:
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    tmp = tmp_path_factory.mktemp("ipip")
    lab_ = Lab()
    try:
        build(lab_)
        proc = ipip.start_forwarder(forwarder_config(tmp / "stats.json"), log_path=str(tmp / "forwarder.log"))
        lab_.processes.append(proc)
        server = subprocess.Popen(
            in_ns(P2, sys.executable, "-c", ECHO_SERVER, str(ECHO_PORT)), stdout=subprocess.PIPE, text=True
        )
        lab_.processes.append(server)
        wait_line(server, server.stdout, "listening")
        tun = Tunnel(lab_, proc, tmp / "stats.json", tmp)
        warm = tun.connect(P1, POD_IP[P2])  # resolves every neighbour entry on the path
        assert warm["ok"] == 1, warm
        yield tun
    finally:
        lab_.teardown()


# --------------------------------------------------------------------------- lab tests


@lab
@needs_root
def test_pod_to_remote_pod_tcp_crosses_tunnel_without_snat(tunnel: Tunnel) -> None:
    before = {ns: tunnel.stats(ns) for ns in (N1, N2)}
    result = tunnel.connect(P1, POD_IP[P2], count=5)
    after = {ns: tunnel.stats(ns) for ns in (N1, N2)}

    assert result["ok"] == 5 and result["seen"] == [POD_IP[P1]], result
    for ns in (N1, N2):  # both directions of every connection went through the forwarder
        assert after[ns]["encap_packets"] - before[ns]["encap_packets"] >= 5 * 2
        assert after[ns]["decap_packets"] - before[ns]["decap_packets"] >= 5 * 2
        assert after[ns]["drop_unknown_source"] == 0


@lab
@needs_root
def test_node_link_carries_ipip_with_node_outer_and_pod_inner(tunnel: Tunnel) -> None:
    from scapy.layers.inet import ICMP, IP, TCP

    pcap = tunnel.tmp / "pod-to-pod.pcap"
    with capture(N1, "eth0", pcap):
        result = tunnel.connect(P1, POD_IP[P2], count=3)
    assert result["ok"] == 3, result
    packets = read_pcap(pcap)

    request = [p for p in packets if p.proto == 4 and IP in p.payload and TCP in p.payload
               and p.payload[TCP].dport == ECHO_PORT]
    reply = [p for p in packets if p.proto == 4 and IP in p.payload and TCP in p.payload
             and p.payload[TCP].sport == ECHO_PORT]
    assert request and reply, [p.summary() for p in packets]
    assert {(p.src, p.dst, p.payload.src, p.payload.dst) for p in request} == {
        (NODE_IP[N1], NODE_IP[N2], POD_IP[P1], POD_IP[P2])
    }
    assert {(p.src, p.dst, p.payload.src, p.payload.dst) for p in reply} == {
        (NODE_IP[N2], NODE_IP[N1], POD_IP[P2], POD_IP[P1])
    }
    # no pod address ever travels un-encapsulated, and the kernel never answers the IPIP
    # packets with ICMP (protocol unreachable) because the raw socket took them
    assert not [p for p in packets if p.src.startswith("100.64.") or p.dst.startswith("100.64.")]
    assert not [p for p in packets if ICMP in p], [p.summary() for p in packets if ICMP in p]


@lab
@needs_root
def test_node_originated_connection_to_remote_pod_uses_tunl0_address(tunnel: Tunnel) -> None:
    route = run("ip", "-n", N1, "route", "get", POD_IP[P2])
    result = tunnel.connect(N1, POD_IP[P2])

    assert f"dev tunl0 src {TUNNEL_IP[N1]}" in route, route
    assert result["ok"] == 1 and result["seen"] == [TUNNEL_IP[N1]], result


@lab
@needs_root
def test_ipip_from_a_host_that_is_not_a_node_is_dropped(tunnel: Tunnel) -> None:
    listener = subprocess.Popen(
        in_ns(P2, sys.executable, "-c", UDP_LISTENER, str(UDP_PORT), "1.5"), stdout=subprocess.PIPE, text=True
    )
    tunnel.lab.processes.append(listener)
    wait_line(listener, listener.stdout, "listening")
    before = tunnel.stats(N2)
    for outer_src, payload in (("198.18.0.99", "spoofed"), (NODE_IP[N1], "genuine")):
        ns_python(N1, CRAFT_IPIP, outer_src, NODE_IP[N2], POD_IP[P1], POD_IP[P2], str(UDP_PORT), payload)
    out, _ = listener.communicate(timeout=10)
    after = tunnel.stats(N2)

    assert out.split() == ["genuine"], out
    assert after["drop_unknown_source"] - before["drop_unknown_source"] == 1
    assert after["decap_packets"] - before["decap_packets"] == 1


@lab
@needs_root
def test_inner_destination_without_tunnel_route_is_counted_and_dropped(tunnel: Tunnel) -> None:
    before = tunnel.stats(N1)
    ns_python(P1, UDP_SEND, "100.64.7.5", str(UDP_PORT))
    deadline = time.monotonic() + 3
    while (after := tunnel.stats(N1))["drop_no_route"] == before["drop_no_route"] and time.monotonic() < deadline:
        time.sleep(0.05)

    assert after["drop_no_route"] - before["drop_no_route"] == 1
    assert after["encap_packets"] == before["encap_packets"]


@lab
@needs_root
def test_tunnel_connection_rate(tunnel: Tunnel, record_property: Any) -> None:
    """2000 connections, sequential then 16 in flight; every one must succeed, rate is reported."""
    figures = {}
    for workers in (1, 16):
        result = tunnel.connect(P1, POD_IP[P2], count=2000, workers=workers)
        assert result["ok"] == 2000 and result["seen"] == [POD_IP[P1]], result
        figures[workers] = 2000 / result["elapsed"]
        record_property(f"ipip_conn_per_s_workers_{workers}", round(figures[workers]))
    print(f"\nIPIP tunnel TCP connections/s: sequential {figures[1]:.0f}, 16 in flight {figures[16]:.0f}")
    stats = {ns: tunnel.stats(ns) for ns in (N1, N2)}
    print(f"forwarder counters: {json.dumps(stats)}")
    assert all(s["send_errors"] == 0 and s["write_errors"] == 0 for s in stats.values()), stats


@lab
@needs_root
def test_second_forwarder_cannot_attach_to_a_tunl0_in_use(tunnel: Tunnel) -> None:
    with pytest.raises(ipip.ForwarderError, match="attach to TUN 'tunl0'"):
        ipip.start_forwarder(forwarder_config(tunnel.tmp / "second.json"), timeout=5)
    assert tunnel.connect(P1, POD_IP[P2])["ok"] == 1  # the running forwarder is unaffected


@lab
@needs_root
def test_forwarder_writes_final_counters_on_sigterm(tunnel: Tunnel) -> None:
    # last in the module on purpose: stops the shared forwarder
    code = ipip.stop_forwarder(tunnel.proc)
    final = json.loads(tunnel.stats_path.read_text())

    assert code == 0
    assert final["pid"] == tunnel.proc.pid
    assert final["nodes"][N1]["encap_packets"] > 0 and final["nodes"][N2]["decap_packets"] > 0


@lab
@needs_root
def test_raw_ipip_socket_suppresses_protocol_unreachable(tmp_path: Path) -> None:
    """Kernel fact the forwarder relies on: a raw IPPROTO_IPIP socket silences ICMP 3/2.

    With-socket first, so ICMP rate limiting (per peer, 1/s) cannot hide the control case.
    """
    from scapy.layers.inet import ICMP

    a, b = f"{PREFIX}-k1", f"{PREFIX}-k2"
    lab_ = Lab()
    try:
        lab_.netns(a)
        lab_.netns(b)
        lab_.ip(a, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", b)
        for ns, addr in ((a, "198.18.1.1/24"), (b, "198.18.1.2/24")):
            lab_.ip(ns, "addr", "add", addr, "dev", "eth0")
            lab_.ip(ns, "link", "set", "eth0", "up")
        holder = subprocess.Popen(
            in_ns(b, sys.executable, "-c",
                  "import socket,time; s=socket.socket(2,3,4); print('listening',flush=True); time.sleep(30)"),
            stdout=subprocess.PIPE, text=True,
        )
        lab_.processes.append(holder)
        wait_line(holder, holder.stdout, "listening")
        send = ("198.18.1.1", "198.18.1.2", "100.64.9.1", "100.64.9.2", "9", "x")
        ns_python(a, UDP_SEND, "198.18.1.2", "9")  # resolves ARP outside the captures
        with capture(a, "eth0", tmp_path / "with-socket.pcap"):
            ns_python(a, CRAFT_IPIP, *send)
        end(holder)
        with capture(a, "eth0", tmp_path / "without-socket.pcap"):
            for _ in range(3):
                ns_python(a, CRAFT_IPIP, *send)
    finally:
        lab_.teardown()

    def unreachable(path: Path) -> list[Any]:
        return [p for p in read_pcap(path) if ICMP in p and p[ICMP].type == 3 and p[ICMP].code == 2]

    sent = [p for p in read_pcap(tmp_path / "with-socket.pcap") if p.proto == 4]
    assert len(sent) == 1
    assert unreachable(tmp_path / "with-socket.pcap") == []
    assert unreachable(tmp_path / "without-socket.pcap"), "control: the kernel should answer 3/2"


# --------------------------------------------------------------------------- no-root tests


def test_config_rejects_bad_addresses_naming_the_node() -> None:
    with pytest.raises(ValueError, match=r"nodes\[0\]"):
        ipip.ForwarderConfig.from_dict({"nodes": [{"netns": "x", "node_ip": "198.18.0.300"}]})
    with pytest.raises(ValueError, match=r"nodes\[1\]"):
        ipip.ForwarderConfig.from_dict({"nodes": [
            {"netns": "x", "node_ip": "198.18.0.1"},
            {"netns": "y", "node_ip": "198.18.0.2", "routes": [{"block": "100.64.1.1/26", "remote_ip": "x"}]},
        ]})
    with pytest.raises(ValueError, match="no nodes"):
        ipip.ForwarderConfig.from_dict({"nodes": []})


def test_config_round_trips_through_json() -> None:
    cfg = ipip.ForwarderConfig.from_dict(forwarder_config(Path("/tmp/s.json")))
    assert ipip.ForwarderConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_lookup_prefers_the_longest_prefix() -> None:
    routes = (
        ipip.TunnelRoute("100.64.0.0/16", "198.18.0.1"),
        ipip.TunnelRoute("100.64.1.0/26", "198.18.0.2"),
        ipip.TunnelRoute("100.64.1.64/26", "198.18.0.3"),
    )
    node = ipip._Node(ipip.NodeTunnel("x", "198.18.0.9", routes), -1, None, ipip._build_table(routes))  # type: ignore[arg-type]

    def ip(s: str) -> int:
        return struct.unpack("!I", socket.inet_aton(s))[0]

    assert node.lookup(ip("100.64.1.5")) == "198.18.0.2"
    assert node.lookup(ip("100.64.1.70")) == "198.18.0.3"
    assert node.lookup(ip("100.64.9.9")) == "198.18.0.1"
    assert node.lookup(ip("100.65.0.1")) is None


def test_config_for_topology_routes_every_other_nodes_block() -> None:
    nodes = {
        name: SimpleNamespace(name=name, ip=f"198.18.0.{10 + i}", block=f"100.64.{i}.0/26")
        for i, name in enumerate(("cp", "w1", "w2"))
    }
    cfg = ipip.config_for_topology(SimpleNamespace(nodes=nodes), "lab")  # type: ignore[arg-type]

    by_ns = {n.netns: n for n in cfg.nodes}
    assert by_ns["lab-n-w1"].node_ip == "198.18.0.11"
    assert {(r.block, r.remote_ip) for r in by_ns["lab-n-w1"].routes} == {
        ("100.64.0.0/26", "198.18.0.10"), ("100.64.2.0/26", "198.18.0.12")
    }
