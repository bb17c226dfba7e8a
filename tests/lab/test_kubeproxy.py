"""kube-proxy rules for a lab node: rule text against proxier.go, then real traffic in namespaces.

The unit tests pin the rules a real node shows (chain hashes checked against ``iptables-save``
of real clusters). The lab tests load the document into a node namespace and let the kernel
decide: SNAT for ETP Cluster, client IP for ETP Local, DROP (timeout) without a local endpoint,
REJECT (refused) without endpoints, hairpin masquerade.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from netiso.backends.lab.iptables import render_restore
from netiso.backends.lab.kubeproxy import (
    KubeProxyConfig,
    describe_chains,
    endpoint_chain,
    port_name_string,
    port_proto_hash,
    render_kube_proxy,
    service_chains,
)
from netiso.backends.lab.naming import cali_iface
from netiso.model.types import (
    ClusterSpec,
    NodeInfo,
    PodInfo,
    Port,
    Scenario,
    ServiceInfo,
    ServicePortInfo,
    Topology,
)

POD_CIDR = "100.64.0.0/16"
NODE_IP = {"worker": "198.18.0.11", "worker2": "198.18.0.12"}
CLIENT_IP = "198.18.0.100"
POD2_IP = "100.64.1.3"
TARGET = 8080


def pod(ip: str, node: str = "worker", workload: str = "web") -> PodInfo:
    return PodInfo("demo", workload, node, ip, {"app": workload}, (Port(TARGET, name="http"),))


def service(
    name: str,
    type_: str = "ClusterIP",
    etp: str = "Cluster",
    endpoints: tuple[PodInfo, ...] = (),
    node_port: int | None = None,
    cluster_ip: str = "198.19.0.10",
    lb_ip: str | None = None,
    hc: int | None = None,
    port_name: str | None = "http",
) -> ServiceInfo:
    sp = ServicePortInfo(Port(TARGET, name=port_name), node_port)
    return ServiceInfo("demo", name, type_, etp, {"app": "web"}, (sp,), cluster_ip, endpoints,
                       lb_ip=lb_ip, health_check_node_port=hc)


def topology(*services: ServiceInfo) -> Topology:
    scenario = Scenario("kp", "kube-proxy rules", ClusterSpec(nodes=tuple(NODE_IP)), (), (), (), (), (), (), ())
    nodes = {
        n: NodeInfo(n, i, ip, f"100.64.{i + 1}.0/26", None, False) for i, (n, ip) in enumerate(NODE_IP.items())
    }
    pods = list({p.ip: p for s in services for p in s.endpoints}.values())
    return Topology(scenario, "direct", "metallb", "198.18.0.0/24", POD_CIDR, "198.19.0.0/16", nodes, {},
                    pods, {s.key: s for s in services}, {}, {}, {}, [])


def rules(topo: Topology, node: str = "worker", table: str = "nat", cfg: KubeProxyConfig | None = None) -> list[str]:
    return render_kube_proxy(topo, node, cfg).table(table).rules


def chain(lines: list[str], name: str) -> list[str]:
    return [r.removeprefix(f"-A {name} ") for r in lines if r.startswith(f"-A {name} ")]


# --------------------------------------------------------------------------- naming and hashing


def test_chain_hash_matches_real_nodes() -> None:
    """Vectors from iptables-save of real clusters (kind v1.31, kubeadm)."""
    assert port_proto_hash("default/kubernetes:https", "tcp") == "NPX46M4PTMTKRN6Y"
    assert port_proto_hash("default/nginx", "tcp") == "2CMXP7HKUVJN7L6M"
    assert port_proto_hash("kube-system/kube-dns:dns", "udp") == "TCOU7JCQXEZGVUNU"
    nginx = ServiceInfo("default", "nginx", "ClusterIP", "Cluster", {}, (), "10.96.175.117", ())
    sp = ServicePortInfo(Port(80), None)  # unnamed port, targetPort 80
    assert service_chains(nginx, sp).svc == "KUBE-SVC-2CMXP7HKUVJN7L6M"
    assert endpoint_chain(nginx, sp, "10.244.0.20") == "KUBE-SEP-BRZDTZFF2SFWJV4H"
    assert endpoint_chain(nginx, sp, "10.244.1.5") == "KUBE-SEP-IZW656N5ZXYN5BEC"


def test_unnamed_port_has_no_colon_and_prefixes_share_the_hash() -> None:
    svc = service("web", port_name=None)
    assert port_name_string(svc, svc.ports[0]) == "demo/web"
    named = service("web")
    assert port_name_string(named, named.ports[0]) == "demo/web:http"
    ch = service_chains(named, named.ports[0])
    assert {c[9:] for c in (ch.svc, ch.svl, ch.ext)} == {ch.fw[8:]}
    assert ch.svc != service_chains(svc, svc.ports[0]).svc


# --------------------------------------------------------------------------- rule text


def test_cluster_ip_service_dnats_with_hairpin_and_off_cluster_masquerade() -> None:
    svc = service("web", endpoints=(pod("100.64.1.2"),))
    ch, sep = service_chains(svc, svc.ports[0]), endpoint_chain(svc, svc.ports[0], "100.64.1.2")
    nat = rules(topology(svc))
    assert chain(nat, "KUBE-SERVICES")[0] == (
        f'-m comment --comment "demo/web:http cluster IP" -m tcp -p tcp -d 198.19.0.10 --dport 8080 -j {ch.svc}')
    assert chain(nat, ch.svc) == [
        f'-m comment --comment "demo/web:http cluster IP" -m tcp -p tcp -d 198.19.0.10 --dport 8080 '
        f"! -s {POD_CIDR} -j KUBE-MARK-MASQ",
        f'-m comment --comment "demo/web:http -> 100.64.1.2:8080" -j {sep}',
    ]
    assert chain(nat, sep) == [
        "-m comment --comment demo/web:http -s 100.64.1.2 -j KUBE-MARK-MASQ",
        "-m comment --comment demo/web:http -m tcp -p tcp -j DNAT --to-destination 100.64.1.2:8080",
    ]
    assert not chain(nat, "KUBE-NODEPORTS") and ch.ext not in render_kube_proxy(topology(svc), "worker").table(
        "nat").chains


def test_nodeport_cluster_always_marks_for_masquerade() -> None:
    svc = service("web", "NodePort", "Cluster", (pod("100.64.2.2", "worker2"),), node_port=30080)
    ch = service_chains(svc, svc.ports[0])
    nat = rules(topology(svc))
    assert chain(nat, "KUBE-NODEPORTS") == [
        f"-m comment --comment demo/web:http -m tcp -p tcp --dport 30080 -j {ch.ext}"]
    assert chain(nat, ch.ext) == [
        '-m comment --comment "masquerade traffic for demo/web:http external destinations" -j KUBE-MARK-MASQ',
        f"-j {ch.svc}",
    ]
    assert chain(nat, "KUBE-SERVICES")[-1].endswith("-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS")
    assert not chain(rules(topology(svc), table="filter"), "KUBE-EXTERNAL-SERVICES")


def test_nodeport_local_with_local_endpoint_balances_over_this_node_only() -> None:
    eps = (pod("100.64.1.2"), pod("100.64.2.2", "worker2"))
    svc = service("web", "NodePort", "Local", eps, node_port=30081)
    ch = service_chains(svc, svc.ports[0])
    nat = rules(topology(svc), "worker")
    assert chain(nat, ch.ext) == [
        f'-m comment --comment "pod traffic for demo/web:http external destinations" -s {POD_CIDR} -j {ch.svc}',
        '-m comment --comment "masquerade LOCAL traffic for demo/web:http external destinations" '
        "-m addrtype --src-type LOCAL -j KUBE-MARK-MASQ",
        '-m comment --comment "route LOCAL traffic for demo/web:http external destinations" '
        f"-m addrtype --src-type LOCAL -j {ch.svc}",
        f"-j {ch.svl}",
    ]
    local_sep = endpoint_chain(svc, svc.ports[0], "100.64.1.2")
    assert chain(nat, ch.svl) == [f'-m comment --comment "demo/web:http -> 100.64.1.2:8080" -j {local_sep}']
    assert len(chain(nat, ch.svc)) == 3  # masquerade rule + both endpoints
    assert not chain(rules(topology(svc), "worker", "filter"), "KUBE-EXTERNAL-SERVICES")


def test_nodeport_local_without_local_endpoint_falls_through_to_filter_drop() -> None:
    svc = service("web", "NodePort", "Local", (pod("100.64.2.2", "worker2"),), node_port=30082)
    ch = service_chains(svc, svc.ports[0])
    rs = render_kube_proxy(topology(svc), "worker")
    nat = rs.table("nat").rules
    assert ch.svl not in rs.table("nat").chains
    assert len(chain(nat, ch.ext)) == 3 and all(ch.svl not in r for r in nat)
    assert chain(nat, "KUBE-NODEPORTS") == [
        f"-m comment --comment demo/web:http -m tcp -p tcp --dport 30082 -j {ch.ext}"]
    assert chain(rs.table("filter").rules, "KUBE-EXTERNAL-SERVICES") == [
        '-m comment --comment "netiso:kube-proxy=demo/web:http no-local-endpoints drop; '
        'demo/web:http has no local endpoints" -m addrtype --dst-type LOCAL '
        "-m tcp -p tcp --dport 30082 -j DROP"]
    # The remote endpoint stays reachable through the cluster IP and for pod sources.
    assert endpoint_chain(svc, svc.ports[0], "100.64.2.2") in rs.table("nat").chains
    # ... and worker2, which has the endpoint, does not drop.
    assert not chain(rules(topology(svc), "worker2", "filter"), "KUBE-EXTERNAL-SERVICES")


def test_loadbalancer_local_captures_vip_and_accepts_health_check() -> None:
    eps = (pod("100.64.1.2"),)
    svc = service("lb", "LoadBalancer", "Local", eps, node_port=30084, lb_ip="198.18.0.201", hc=32000)
    ch = service_chains(svc, svc.ports[0])
    assert (f'-m comment --comment "demo/lb:http loadbalancer IP" -m tcp -p tcp -d 198.18.0.201 --dport 8080 '
            f"-j {ch.ext}") in chain(rules(topology(svc)), "KUBE-SERVICES")
    hc_rule = '-m comment --comment "demo/lb:http health check node port" -m tcp -p tcp --dport 32000 -j ACCEPT'
    for node in NODE_IP:  # with or without local endpoints
        assert chain(rules(topology(svc), node, "filter"), "KUBE-NODEPORTS") == [hc_rule]
    ext_filter = chain(rules(topology(svc), "worker2", "filter"), "KUBE-EXTERNAL-SERVICES")
    assert ext_filter == [
        '-m comment --comment "netiso:kube-proxy=demo/lb:http no-local-endpoints drop; '
        'demo/lb:http has no local endpoints" -m tcp -p tcp -d 198.18.0.201 --dport 8080 '
        "-j DROP",
        '-m comment --comment "netiso:kube-proxy=demo/lb:http no-local-endpoints drop; '
        'demo/lb:http has no local endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp '
        "--dport 30084 -j DROP",
    ]


def test_loadbalancer_cluster_masquerades_and_has_no_health_check() -> None:
    svc = service("lb", "LoadBalancer", "Cluster", (pod("100.64.1.2"),), node_port=30085, lb_ip="198.18.0.202")
    ch = service_chains(svc, svc.ports[0])
    assert chain(rules(topology(svc), "worker2"), ch.ext)[0].endswith("-j KUBE-MARK-MASQ")
    assert not chain(rules(topology(svc), "worker2", "filter"), "KUBE-NODEPORTS")


def test_service_without_endpoints_is_rejected_everywhere_and_has_no_nat_chains() -> None:
    svc = service("empty", "LoadBalancer", "Cluster", (), node_port=30083, lb_ip="198.18.0.203")
    rs = render_kube_proxy(topology(svc), "worker")
    flt = rs.table("filter").rules
    assert chain(flt, "KUBE-SERVICES") == [
        '-m comment --comment "netiso:kube-proxy=demo/empty:http no-endpoints reject; demo/empty:http has no '
        'endpoints" -m tcp -p tcp -d 198.19.0.10 --dport 8080 -j REJECT']
    assert [r.split(" -j ")[-1] for r in chain(flt, "KUBE-EXTERNAL-SERVICES")] == ["REJECT", "REJECT"]
    assert any("--dport 30083" in r for r in chain(flt, "KUBE-EXTERNAL-SERVICES"))
    nat = rs.table("nat")
    assert not [c for c in nat.chains if c.startswith(("KUBE-SVC-", "KUBE-EXT-", "KUBE-SEP-"))]
    assert chain(nat.rules, "KUBE-SERVICES") == [chain(nat.rules, "KUBE-SERVICES")[-1]]  # only the nodeports tail


def test_three_endpoints_ladder_is_one_third_one_half_then_unconditional() -> None:
    eps = (pod("100.64.1.3"), pod("100.64.1.10"), pod("100.64.2.2", "worker2"))
    svc = service("web", endpoints=eps)
    svc_chain = service_chains(svc, svc.ports[0]).svc
    ladder = chain(rules(topology(svc)), svc_chain)[1:]
    # kube-proxy sorts endpoints as "ip:port" strings: 100.64.1.10 before 100.64.1.3.
    assert [r.split('"')[1] for r in ladder] == [
        "demo/web:http -> 100.64.1.10:8080", "demo/web:http -> 100.64.1.3:8080", "demo/web:http -> 100.64.2.2:8080"]
    assert "--probability 0.3333333333 " in ladder[0]
    assert "--probability 0.5000000000 " in ladder[1]
    assert "statistic" not in ladder[2]


def test_hooks_in_the_order_of_a_kubeadm_node() -> None:
    rs = render_kube_proxy(topology(service("web")), "worker")
    targets = {b: [s.split("-j ")[-1] for s in specs] for b, specs in rs.table("filter").hooks.items()}
    assert targets == {
        "INPUT": ["KUBE-PROXY-FIREWALL", "KUBE-NODEPORTS", "KUBE-EXTERNAL-SERVICES", "KUBE-FIREWALL"],
        "FORWARD": ["KUBE-PROXY-FIREWALL", "KUBE-FORWARD", "KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES"],
        "OUTPUT": ["KUBE-PROXY-FIREWALL", "KUBE-SERVICES", "KUBE-FIREWALL"],
    }
    assert rs.table("filter").hooks["INPUT"][2] == (
        '-m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" '
        "-j KUBE-EXTERNAL-SERVICES")
    assert rs.table("nat").hooks == {
        "OUTPUT": ['-m comment --comment "kubernetes service portals" -j KUBE-SERVICES'],
        "PREROUTING": ['-m comment --comment "kubernetes service portals" -j KUBE-SERVICES'],
        "POSTROUTING": ['-m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING'],
    }
    # Without the kubelet, kube-proxy's own prepends put KUBE-FIREWALL first.
    bare = render_kube_proxy(topology(service("web")), "worker", KubeProxyConfig(kubelet=False))
    assert bare.table("filter").hooks["INPUT"][0] == "-j KUBE-FIREWALL"
    assert "KUBE-IPTABLES-HINT" not in bare.table("mangle").chains


def test_fixed_chains_masquerade_mark_and_forward_rules() -> None:
    rs = render_kube_proxy(topology(service("web")), "worker")
    nat, flt = rs.table("nat").rules, rs.table("filter").rules
    assert chain(nat, "KUBE-MARK-MASQ") == ["-j MARK --or-mark 0x4000"]
    assert chain(nat, "KUBE-POSTROUTING") == [
        "-m mark ! --mark 0x4000/0x4000 -j RETURN",
        "-j MARK --xor-mark 0x4000",
        '-m comment --comment "netiso:masquerade=kube-proxy; kubernetes service traffic requiring SNAT" '
        '-j MASQUERADE --random-fully',
    ]
    assert [r.split(" -j ")[-1] for r in chain(flt, "KUBE-FORWARD")] == ["DROP", "ACCEPT", "ACCEPT"]
    assert "--ctstate INVALID" in chain(flt, "KUBE-FORWARD")[0]
    assert chain(flt, "KUBE-FIREWALL")[0].startswith(
        '-m comment --comment "netiso:kubelet=localnet drop; block incoming localnet connections"')
    liberal = rules(topology(service("web")), table="filter", cfg=KubeProxyConfig(conntrack_tcp_be_liberal=True))
    assert "INVALID" not in " ".join(chain(liberal, "KUBE-FORWARD"))


def test_localhost_nodeports_setting_changes_the_tail_rule_and_nfacct_adds_loopback_rule() -> None:
    svc = service("web", "NodePort", "Cluster", (pod("100.64.1.2"),), node_port=30080)
    on = chain(rules(topology(svc)), "KUBE-SERVICES")[-1]
    off = chain(rules(topology(svc), cfg=KubeProxyConfig(localhost_nodeports=False)), "KUBE-SERVICES")[-1]
    assert "127.0.0.0/8" not in on and "-m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS" in off
    acct = chain(rules(topology(svc), cfg=KubeProxyConfig(nfacct=True)), "KUBE-NODEPORTS")
    assert len(acct) == 2 and "-d 127.0.0.0/8" in acct[0] and "localhost_nps_accepted_pkts" in acct[0]


def test_unknown_node_is_an_error_and_describe_tells_the_flow() -> None:
    svc = service("web", "NodePort", "Local", (pod("100.64.2.2", "worker2"),), node_port=30082)
    with pytest.raises(KeyError):
        render_kube_proxy(topology(svc), "nowhere")
    [line] = describe_chains(topology(svc), "worker")
    assert "NodePort 30082 ETP Local" in line and "no local endpoints -> DROP" in line
    [line2] = describe_chains(topology(svc), "worker2")
    assert "KUBE-SVL-" in line2 and "100.64.2.2:8080" in line2


# --------------------------------------------------------------------------- real kernel

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("iptables-restore"), reason="needs root and iptables"
)

ECHO_SERVER = r"""
import socket, sys, threading
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", int(sys.argv[1]))); srv.listen(64)
print("ready", flush=True)
def serve(c, peer):
    with c:
        c.sendall(peer[0].encode() + b"\n")
while True:
    c, peer = srv.accept()
    threading.Thread(target=serve, args=(c, peer), daemon=True).start()
"""

PROBE = r"""
import socket, sys
s = socket.socket(); s.settimeout(float(sys.argv[3]))
try:
    s.connect((sys.argv[1], int(sys.argv[2]))); print("OK", s.recv(100).decode().strip())
except socket.timeout:
    print("TIMEOUT")
except ConnectionRefusedError:
    print("REFUSED")
except OSError as e:
    print("ERR", e)
"""

LAB_SERVICES = {  # name -> (service, what the client sees at nodeIP:nodePort / LB IP)
    "np-cluster": service("np-cluster", "NodePort", "Cluster", (pod("100.64.1.2"),), 30080, "198.19.0.10"),
    "np-local": service("np-local", "NodePort", "Local", (pod("100.64.1.2"),), 30081, "198.19.0.11"),
    "np-local-remote": service("np-local-remote", "NodePort", "Local", (pod("100.64.2.2", "worker2"),), 30082,
                               "198.19.0.12"),
    "np-empty": service("np-empty", "NodePort", "Cluster", (), 30083, "198.19.0.13"),
    "lb-local": service("lb-local", "LoadBalancer", "Local", (pod("100.64.1.2"),), 30084, "198.19.0.14",
                        lb_ip="198.18.0.201", hc=32000),
    "lb-cluster": service("lb-cluster", "LoadBalancer", "Cluster", (pod("100.64.1.2"),), 30085, "198.19.0.15",
                          lb_ip="198.18.0.202"),
}


def sh(*args: str, stdin: str | None = None) -> str:
    res = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=30)
    if res.returncode:
        raise RuntimeError(f"{' '.join(args)}: rc={res.returncode} {res.stderr.strip()}")
    return res.stdout


@dataclass
class Lab:
    client: str
    node: str
    pod: str
    pod2: str
    document: str = ""

    def probe(self, ns: str, host: str, port: int, timeout: float = 1.5) -> str:
        return sh("ip", "netns", "exec", ns, sys.executable, "-c", PROBE, host, str(port), str(timeout)).strip()


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    """client --veth-- node --cali veths-- pod, pod2 (Calico style /32 + proxy ARP), rules loaded."""
    if os.geteuid() != 0 or not shutil.which("iptables-restore"):
        pytest.skip("needs root and iptables")
    tag = f"nxh4-{uuid.uuid4().hex[:6]}"
    names = Lab(f"{tag}-c", f"{tag}-n", f"{tag}-p", f"{tag}-q")
    server: subprocess.Popen[str] | None = None
    created: list[str] = []
    try:
        for ns in (names.client, names.node, names.pod, names.pod2):
            sh("ip", "netns", "add", ns)
            created.append(ns)
        c, n, p = names.client, names.node, names.pod
        sh("ip", "-n", c, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", n)
        for ns, dev in ((c, "eth0"), (n, "eth0"), (c, "lo"), (n, "lo")):
            sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", c, "addr", "add", f"{CLIENT_IP}/24", "dev", "eth0")
        sh("ip", "-n", n, "addr", "add", f"{NODE_IP['worker']}/24", "dev", "eth0")
        cali_devs = []
        for ns, ep in ((p, pod("100.64.1.2")), (names.pod2, pod(POD2_IP, workload="client"))):
            cali = cali_iface(ep)
            cali_devs.append(cali)
            sh("ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", cali, "netns", n)
            for where, dev in ((ns, "eth0"), (ns, "lo"), (n, cali)):
                sh("ip", "-n", where, "link", "set", dev, "up")
            sh("ip", "-n", ns, "addr", "add", f"{ep.ip}/32", "dev", "eth0")
            sh("ip", "-n", ns, "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link")
            sh("ip", "-n", ns, "route", "add", "default", "via", "169.254.1.1", "dev", "eth0")
            sh("ip", "-n", n, "route", "add", f"{ep.ip}/32", "dev", cali)
        sh("ip", "-n", n, "route", "add", "default", "via", CLIENT_IP)  # the node's upstream router
        for lb in ("198.18.0.201", "198.18.0.202"):  # the announcer's job: the VIP reaches this node
            sh("ip", "-n", c, "route", "add", f"{lb}/32", "via", NODE_IP["worker"])
        sh("ip", "netns", "exec", n, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.route_localnet=1",
           *(f"net.ipv4.conf.{d}.proxy_arp=1" for d in cali_devs))
        doc = render_restore(render_kube_proxy(topology(*LAB_SERVICES.values()), "worker"))
        sh("ip", "netns", "exec", n, "iptables-restore", stdin=doc)
        names.document = doc
        server = subprocess.Popen(["nsenter", f"--net=/run/netns/{p}", sys.executable, "-c", ECHO_SERVER, str(TARGET)],
                                  stdout=subprocess.PIPE, text=True)
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        yield names
    finally:
        if server is not None:
            server.kill()
            server.wait(timeout=10)
        for ns in created:
            subprocess.run(["ip", "netns", "delete", ns], check=False)


@pytest.mark.lab
@needs_root
def test_restore_test_accepts_the_whole_document() -> None:
    scratch = f"nxh4-{uuid.uuid4().hex[:6]}-t"
    sh("ip", "netns", "add", scratch)
    try:
        doc = render_restore(render_kube_proxy(topology(*LAB_SERVICES.values()), "worker",
                                               KubeProxyConfig(localhost_nodeports=False)))
        sh("ip", "netns", "exec", scratch, "iptables-restore", "--test", stdin=doc)
        with pytest.raises(RuntimeError):  # --test really parses: a broken option fails
            sh("ip", "netns", "exec", scratch, "iptables-restore", "--test",
               stdin=doc.replace("--xor-mark", "--xor-markk", 1))
        # iptables-nft's --test does not resolve jump targets; a real load does.
        sh("ip", "netns", "exec", scratch, "iptables-restore", stdin=doc)
        with pytest.raises(RuntimeError):
            sh("ip", "netns", "exec", scratch, "iptables-restore",
               stdin=doc.replace("-j KUBE-MARK-MASQ", "-j KUBE-NO-SUCH-CHAIN", 1))
    finally:
        subprocess.run(["ip", "netns", "delete", scratch], check=False)


@pytest.mark.lab
def test_iptables_save_shows_every_chain_and_rule_as_a_real_node(lab: Lab) -> None:
    saved = sh("ip", "netns", "exec", lab.node, "iptables-save")
    declared = {line.split()[0][1:] for line in lab.document.splitlines() if line.startswith(":")}
    assert declared <= {line.split()[0][1:] for line in saved.splitlines() if line.startswith(":")}
    rule_count = sum(line.startswith("-A ") for line in lab.document.splitlines())
    assert sum(line.startswith("-A ") for line in saved.splitlines()) == rule_count
    # the kernel's normal form, exactly as on real nodes
    assert "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000" in saved
    ch = service_chains(LAB_SERVICES["np-cluster"], LAB_SERVICES["np-cluster"].ports[0])
    assert (f'-A KUBE-SERVICES -d 198.19.0.10/32 -p tcp -m comment --comment "demo/np-cluster:http cluster IP" '
            f"-m tcp --dport 8080 -j {ch.svc}") in saved


@pytest.mark.lab
def test_nodeport_cluster_pod_sees_the_node_address(lab: Lab) -> None:
    assert lab.probe(lab.client, NODE_IP["worker"], 30080) == f"OK {NODE_IP['worker']}"


@pytest.mark.lab
def test_nodeport_local_with_local_endpoint_pod_sees_the_client(lab: Lab) -> None:
    assert lab.probe(lab.client, NODE_IP["worker"], 30081) == f"OK {CLIENT_IP}"


@pytest.mark.lab
def test_nodeport_local_without_local_endpoint_times_out(lab: Lab) -> None:
    assert lab.probe(lab.client, NODE_IP["worker"], 30082) == "TIMEOUT"


@pytest.mark.lab
def test_service_without_endpoints_is_refused(lab: Lab) -> None:
    assert lab.probe(lab.client, NODE_IP["worker"], 30083) == "REFUSED"
    assert lab.probe(lab.node, "198.19.0.13", TARGET) == "REFUSED"


@pytest.mark.lab
def test_loadbalancer_vip_local_keeps_client_ip_and_cluster_masquerades(lab: Lab) -> None:
    assert lab.probe(lab.client, "198.18.0.201", TARGET) == f"OK {CLIENT_IP}"
    assert lab.probe(lab.client, "198.18.0.202", TARGET) == f"OK {NODE_IP['worker']}"


@pytest.mark.lab
def test_cluster_ip_from_the_node_is_masqueraded_to_the_node_address(lab: Lab) -> None:
    assert lab.probe(lab.node, "198.19.0.10", TARGET) == f"OK {NODE_IP['worker']}"


@pytest.mark.lab
def test_pod_reaching_itself_through_its_service_is_hairpin_masqueraded(lab: Lab) -> None:
    # Without KUBE-SEP's "-s epIP -j KUBE-MARK-MASQ" the reply would short-circuit in the pod.
    assert lab.probe(lab.pod, "198.19.0.11", TARGET) == f"OK {NODE_IP['worker']}"


@pytest.mark.lab
def test_other_pod_keeps_its_address_for_cluster_ip_and_etp_local_node_port(lab: Lab) -> None:
    assert lab.probe(lab.pod2, "198.19.0.10", TARGET) == f"OK {POD2_IP}"
    # "pod traffic for ... external destinations": Cluster semantics, no SNAT.
    assert lab.probe(lab.pod2, NODE_IP["worker"], 30081) == f"OK {POD2_IP}"
    # ETP Cluster marks every external-destination packet, pods included.
    assert lab.probe(lab.pod2, NODE_IP["worker"], 30080) == f"OK {NODE_IP['worker']}"
