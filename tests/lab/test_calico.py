"""Calico-like policy rules for a lab node: rule text and ip sets, then real traffic in namespaces.

The unit tests pin what each NetworkPolicy feature compiles to (selector ip sets evaluated
against the topology's pods, ipBlock ``nomatch`` entries, per-pod named ports, port ranges,
chain and set name limits, NAT rules). The lab tests load the rules into a node namespace with
three pod namespaces and an external namespace and let the kernel decide each verdict.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from netiso.backends.lab.calico import (
    ALL_POOLS_SET,
    MASQ_POOLS_SET,
    endpoint_chain_name,
    length_limited_id,
    policy_chain_name,
    render_calico,
    render_forward_tail,
)
from netiso.backends.lab.iptables import merge, render_restore
from netiso.backends.lab.kubeproxy import render_kube_proxy
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
NODE_IPS = {"n1": "198.18.0.1", "n2": "198.18.0.2"}
EXT_IP, EXT_OK, EXT_EXCEPT = "198.18.0.100", "203.0.113.10", "203.0.113.20"

WEB_A = PodInfo("alpha", "web", "n1", "100.64.1.2", {"app": "web"}, (Port(8080, name="http"), Port(5353, "UDP", "dns")))
DB_A = PodInfo("alpha", "db", "n1", "100.64.1.3", {"app": "db"}, (Port(9090, name="http"),))
WEB_B = PodInfo("beta", "web", "n1", "100.64.1.4", {"app": "web"}, (Port(8080, name="http"),))
REMOTE_B = PodInfo("beta", "api", "n2", "100.64.2.2", {"app": "api"}, (Port(7000, name="http"),))
PODS = [WEB_A, DB_A, WEB_B, REMOTE_B]
NAMESPACES = {"alpha": {"team": "a"}, "beta": {"team": "b"}}
SVC_WEB_B = ServiceInfo("beta", "web", "ClusterIP", "Cluster", {"app": "web"}, (ServicePortInfo(Port(8080), None),),
                        "198.19.0.10", (WEB_B,))
SVC_EMPTY = ServiceInfo("beta", "empty", "ClusterIP", "Cluster", {"app": "none"}, (ServicePortInfo(Port(8080), None),),
                        "198.19.0.11", ())


def netpol(ns: str, name: str, selector: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    body = {"podSelector": selector or {}, **spec}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns}, "spec": body}


def topology(*policies: dict[str, Any], encapsulation: str = "vxlan") -> Topology:
    scenario = Scenario("cali", "calico rules", ClusterSpec(nodes=tuple(NODE_IPS)), (), (), (), (), (), (), ())
    nodes = {n: NodeInfo(n, i, ip, f"100.64.{i + 1}.0/26", None, False) for i, (n, ip) in enumerate(NODE_IPS.items())}
    return Topology(scenario, encapsulation, "metallb", "198.18.0.0/24", POD_CIDR, "198.19.0.0/16", nodes, {},
                    list(PODS), {s.key: s for s in (SVC_WEB_B, SVC_EMPTY)}, {}, dict(NAMESPACES), {}, list(policies))


@dataclass
class Rendered:
    rules: list[str]
    ipsets: str
    hooks: dict[str, list[str]] = field(default_factory=dict)

    def chain(self, name: str) -> list[str]:
        return [r.removeprefix(f"-A {name} ") for r in self.rules if r.startswith(f"-A {name} ")]

    def set_entries(self, name: str) -> list[str]:
        """Entries added to set ``name`` (filled under its temporary name, then swapped in)."""
        tmp = "cali4t" + name[len("cali40"):]
        return [line.split(" ", 2)[2] for line in self.ipsets.splitlines() if line.startswith(f"add {tmp} ")]

    def set_of(self, spec: str, side: str) -> str:
        """The set named in ``--match-set X side`` of a rule."""
        words = spec.split()
        for i, w in enumerate(words[:-2]):
            if w == "--match-set" and words[i + 2] == side:
                return words[i + 1]
        raise AssertionError(f"no {side} set in {spec!r}")


def render(*policies: dict[str, Any], encapsulation: str = "vxlan", table: str = "filter") -> Rendered:
    rs, ipsets = render_calico(topology(*policies, encapsulation=encapsulation), "n1")
    t = rs.table(table)
    return Rendered(t.rules, ipsets, t.hooks)


def tw(pod: PodInfo) -> str:
    return endpoint_chain_name("cali-tw-", cali_iface(pod))


def fw(pod: PodInfo) -> str:
    return endpoint_chain_name("cali-fw-", cali_iface(pod))


def allow_rules(r: Rendered, chain: str) -> list[str]:
    return [s for s in r.chain(chain) if s.endswith("-j MARK --set-xmark 0x10000/0x10000")]


# --------------------------------------------------------------------------- rule text


def test_no_policy_leaves_every_endpoint_to_its_allow_all_profile() -> None:
    r = render()
    assert r.hooks == {"INPUT": ["-j cali-INPUT"], "FORWARD": ["-j cali-FORWARD"], "OUTPUT": ["-j cali-OUTPUT"]}
    assert r.chain("cali-FORWARD")[1:] == ["-i cali+ -j cali-from-wl-dispatch", "-o cali+ -j cali-to-wl-dispatch"]
    local = sorted((WEB_A, DB_A, WEB_B), key=cali_iface)
    assert r.chain("cali-to-wl-dispatch")[:-1] == [f"-o {cali_iface(p)} -g {tw(p)}" for p in local]
    assert r.chain("cali-from-wl-dispatch")[-1].endswith('"netiso:calico=unknown-interface drop; Unknown interface" -j DROP')
    for pod in local:
        for chain in (tw(pod), fw(pod)):
            rules = r.chain(chain)
            assert rules[:2] == ["-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                                 '-m conntrack --ctstate INVALID -m comment --comment '
                                 '"netiso:calico=conntrack-invalid drop; conntrack INVALID" -j DROP']
            assert not any("tier" in x for x in rules) and any(x.startswith("-j cali-pr") for x in rules)
    assert not [x for x in r.rules if x.startswith(("-A cali-pi-", "-A cali-po-"))]
    assert REMOTE_B.ip not in r.ipsets  # no selector sets without policies


def test_default_deny_ingress_isolates_only_ingress_of_selected_pods() -> None:
    deny = netpol("beta", "deny-all")
    r = render(deny)
    rules = r.chain(tw(WEB_B))
    pi = policy_chain_name("Ingress", deny)
    assert f"-m mark --mark 0x0/0x20000 -j {pi}" in rules
    drop = next(x for x in rules if "Drop if no policies passed packet" in x)
    assert "beta/deny-all" in drop and "tier default" in drop and drop.endswith("-j DROP")
    assert rules.index(f"-m mark --mark 0x0/0x20000 -j {pi}") < rules.index(drop)
    assert allow_rules(r, pi) == []  # no rule: nothing is admitted
    assert not any("tier" in x for x in r.chain(fw(WEB_B)))  # egress of the same pod is not isolated
    assert not any("tier" in x for x in r.chain(tw(WEB_A)))  # alpha is not selected


def test_namespace_selector_becomes_a_set_of_the_matching_namespaces_pods_cluster_wide() -> None:
    pol = netpol("alpha", "from-b", {"matchLabels": {"app": "db"}},
                 ingress=[{"from": [{"namespaceSelector": {"matchLabels": {"team": "b"}}}]}])
    r = render(pol)
    [rule] = allow_rules(r, policy_chain_name("Ingress", pol))
    name = r.set_of(rule, "src")
    assert name.startswith("cali40s:") and len(name) <= 31
    assert sorted(r.set_entries(name)) == sorted([WEB_B.ip, REMOTE_B.ip])  # the remote node's pod too
    assert "alpha/from-b ingress[0] from[0]" in rule
    assert any(policy_chain_name("Ingress", pol) in x for x in r.chain(tw(DB_A)))
    assert not any("tier" in x for x in r.chain(tw(WEB_A)))  # app=web is not selected


def test_metadata_name_label_is_always_there_for_namespace_selectors() -> None:
    pol = netpol("alpha", "by-name", ingress=[{"from": [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "beta"}}}]}])
    r = render(pol)
    [rule] = allow_rules(r, policy_chain_name("Ingress", pol))
    assert sorted(r.set_entries(r.set_of(rule, "src"))) == sorted([WEB_B.ip, REMOTE_B.ip])


def test_pod_and_namespace_selector_in_one_peer_is_and_in_two_peers_is_or() -> None:
    both = {"namespaceSelector": {"matchLabels": {"team": "a"}}, "podSelector": {"matchLabels": {"app": "web"}}}
    and_pol = netpol("beta", "and", ingress=[{"from": [both]}])
    or_pol = netpol("beta", "or", ingress=[{"from": [{"namespaceSelector": both["namespaceSelector"]},
                                                     {"podSelector": both["podSelector"]}]}])
    r = render(and_pol, or_pol)
    [rule] = allow_rules(r, policy_chain_name("Ingress", and_pol))
    assert r.set_entries(r.set_of(rule, "src")) == [WEB_A.ip]
    ns_rule, pod_rule = allow_rules(r, policy_chain_name("Ingress", or_pol))
    assert sorted(r.set_entries(r.set_of(ns_rule, "src"))) == sorted([WEB_A.ip, DB_A.ip])
    assert r.set_entries(r.set_of(pod_rule, "src")) == [WEB_B.ip]  # podSelector alone: the policy's namespace


def test_ip_block_is_a_hash_net_set_with_except_entries_as_nomatch() -> None:
    pol = netpol("beta", "ext", ingress=[{"from": [{"ipBlock": {"cidr": "203.0.113.0/24", "except": [f"{EXT_EXCEPT}/32"]}},
                                                   {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["100.64.0.0/10"]}}]}])
    r = render(pol)
    first, everything = allow_rules(r, policy_chain_name("Ingress", pol))
    name = r.set_of(first, "src")
    assert f"create {name} hash:net family inet -exist" in r.ipsets
    assert r.set_entries(name) == ["203.0.113.0/24", f"{EXT_EXCEPT}/32 nomatch"]
    assert r.set_entries(r.set_of(everything, "src")) == ["0.0.0.0/1", "128.0.0.0/1", "100.64.0.0/10 nomatch"]


def test_named_port_resolves_per_destination_pod() -> None:
    pol = netpol("alpha", "http", ingress=[{"ports": [{"port": "http"}]}])
    r = render(pol)
    rules = allow_rules(r, policy_chain_name("Ingress", pol))
    by_port = {x.split("--dports ")[1].split()[0]: r.set_entries(r.set_of(x, "dst")) for x in rules}
    assert by_port == {"7000": [REMOTE_B.ip], "8080": sorted([WEB_A.ip, WEB_B.ip]), "9090": [DB_A.ip]}
    assert all(x.startswith("-p tcp -m multiport --dports ") for x in rules)
    udp = netpol("alpha", "dns", ingress=[{"ports": [{"port": "dns", "protocol": "UDP"}]}])
    [dns] = allow_rules(render(udp), policy_chain_name("Ingress", udp))
    assert dns.startswith("-p udp -m multiport --dports 5353 ") and "http" not in dns
    missing = netpol("alpha", "none", ingress=[{"ports": [{"port": "metrics"}]}])
    assert allow_rules(render(missing), policy_chain_name("Ingress", missing)) == []  # matches nothing


def test_egress_named_port_to_selected_pods_needs_both_sets() -> None:
    pol = netpol("alpha", "to-b", {"matchLabels": {"app": "web"}}, policyTypes=["Egress"],
                 egress=[{"to": [{"namespaceSelector": {"matchLabels": {"team": "b"}}}], "ports": [{"port": "http"}]}])
    r = render(pol)
    rules = allow_rules(r, policy_chain_name("Egress", pol))
    assert len(rules) == 3  # one per number any pod gives the name 'http'
    for rule in rules:
        assert rule.count("--match-set") == 2 and r.set_entries(r.set_of(rule, "dst"))
    assert any(policy_chain_name("Egress", pol) in x for x in r.chain(fw(WEB_A)))
    assert not any("tier" in x for x in r.chain(tw(WEB_A)))  # only Egress in policyTypes


def test_end_port_is_a_multiport_range_and_long_lists_are_split_at_15_slots() -> None:
    ranges = [{"port": 8000, "endPort": 8100}, {"port": 9000}, {"port": 7000, "protocol": "UDP", "endPort": 7010}]
    pol = netpol("alpha", "ranges", ingress=[{"ports": ranges}])
    rules = allow_rules(render(pol), policy_chain_name("Ingress", pol))
    assert [x.split(" -m comment")[0] for x in rules] == [
        "-p tcp -m multiport --dports 8000:8100,9000", "-p udp -m multiport --dports 7000:7010"]
    many = netpol("alpha", "many", ingress=[{"ports": [{"port": 1000 + i, "endPort": 1000 + i + 1} for i in range(0, 20, 2)]}])
    split = allow_rules(render(many), policy_chain_name("Ingress", many))
    assert [x.split("--dports ")[1].split()[0].count(",") + 1 for x in split] == [7, 3]


def test_egress_deny_with_allow_to_cidr_and_udp_and_protocol_only_ports() -> None:
    pol = netpol("alpha", "egress", {"matchLabels": {"app": "web"}}, policyTypes=["Egress"],
                 egress=[{"to": [{"ipBlock": {"cidr": "203.0.113.0/24"}}]},
                         {"ports": [{"port": 53, "protocol": "UDP"}, {"protocol": "SCTP"}]}])
    r = render(pol)
    po = policy_chain_name("Egress", pol)
    cidr, sctp, dns = allow_rules(r, po)
    assert r.set_entries(r.set_of(cidr, "dst")) == ["203.0.113.0/24"]
    assert dns.startswith("-p udp -m multiport --dports 53 ") and "--match-set" not in dns
    assert sctp.startswith("-p sctp -m comment")
    fwr = r.chain(fw(WEB_A))
    assert any("Drop if no policies passed packet" in x and "egress" in x for x in fwr)
    assert any("Drop VXLAN encapped packets" in x for x in fwr)
    assert not any("tier" in x for x in r.chain(fw(DB_A)))


def test_policy_types_default_from_the_spec() -> None:
    implied = netpol("alpha", "implied", egress=[{"to": [{"ipBlock": {"cidr": "198.18.0.0/24"}}]}])
    empty = netpol("beta", "empty-egress", egress=[])
    r = render(implied, empty)
    assert any("tier" in x for x in r.chain(fw(WEB_A))) and any("tier" in x for x in r.chain(tw(WEB_A)))
    assert not any("tier" in x for x in r.chain(fw(WEB_B))) and any("tier" in x for x in r.chain(tw(WEB_B)))


def test_chain_and_set_names_fit_the_kernel_limits_and_comments_keep_the_full_name() -> None:
    long = netpol("alpha", "allow-from-the-ingress-controller-namespace", ingress=[{"from": [
        {"namespaceSelector": {"matchLabels": {"kubesphere.io/namespace": "kubesphere-controls-system"}}}]}])
    r = render(long)
    chains = {x.split()[1] for x in r.rules}
    assert chains and max(len(c) for c in chains) <= 28
    pi = policy_chain_name("Ingress", long)
    assert pi.startswith("cali-pi-_") and len(pi) == 28
    assert '"Policy alpha/allow-from-the-ingress-controller-namespace ingress"' in r.chain(pi)[0]
    sets = [line.split()[1] for line in r.ipsets.splitlines() if line.startswith("create ")]
    assert sets and max(len(s) for s in sets) <= 31
    assert length_limited_id("cali-tw-", "_" + "x" * 19) != "cali-tw-_" + "x" * 19  # a "_" suffix is always hashed
    assert length_limited_id("cali-pi-", "a" * 20) == "cali-pi-" + "a" * 20


def test_nat_outgoing_and_tunnel_masquerade_per_encapsulation() -> None:
    for encap, device in (("vxlan", "vxlan.calico"), ("ipip", "tunl0"), ("direct", None)):
        r = render(encapsulation=encap, table="nat")
        assert r.hooks == {"POSTROUTING": ["-j cali-POSTROUTING"]}
        assert r.chain("cali-nat-outgoing") == [
            f"-m set --match-set {MASQ_POOLS_SET} src -m set ! --match-set {ALL_POOLS_SET} dst "
            '-m comment --comment "netiso:masquerade=nat-outgoing; natOutgoing" -j MASQUERADE --random-fully']
        tunnel = [x for x in r.chain("cali-POSTROUTING") if x.startswith("-o ")]
        if device is None:
            assert tunnel == []
        else:
            assert tunnel == [f"-o {device} -m addrtype ! --src-type LOCAL --limit-iface-out "
                              '-m addrtype --src-type LOCAL -m comment --comment "netiso:masquerade=tunnel; '
                              'tunnel source" -j MASQUERADE']
        assert r.set_entries(MASQ_POOLS_SET) == [POD_CIDR] == r.set_entries(ALL_POOLS_SET)
        inp = render(encapsulation=encap).chain("cali-INPUT")
        assert inp[-1] == "-i cali+ -g cali-wl-to-host"
        assert len(inp) == (1 if device is None else 3)


def test_forward_tail_comes_after_kube_proxy_hooks() -> None:
    topo = topology()
    calico, _ = render_calico(topo, "n1")
    forward = merge(calico, render_kube_proxy(topo, "n1"), render_forward_tail()).table("filter").hooks["FORWARD"]
    assert forward[0] == "-j cali-FORWARD"
    assert forward[-1] == '-m mark --mark 0x10000/0x10000 -m comment --comment "Policy explicitly accepted packet." -j ACCEPT'
    assert len(forward) > 2  # kube-proxy's jumps in between


def test_bad_input_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown node"):
        render_calico(topology(), "n9")
    with pytest.raises(ValueError, match="duplicate NetworkPolicy: beta/x"):
        render(netpol("beta", "x"), netpol("beta", "x"))
    with pytest.raises(ValueError, match="unknown policyType"):
        render(netpol("beta", "x", policyTypes=["Both"]))


# --------------------------------------------------------------------------- real kernel

SERVER = r"""
import socket, sys, threading
def tcp(s):
    while True:
        c, peer = s.accept()
        with c:
            c.sendall(peer[0].encode() + b"\n")
def udp(s):
    while True:
        _, peer = s.recvfrom(100)
        s.sendto(peer[0].encode() + b"\n", peer)
for spec in sys.argv[1:]:
    proto, port = spec.split(":")
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(port)))
    if proto == "tcp":
        s.listen(64)
    threading.Thread(target=tcp if proto == "tcp" else udp, args=(s,), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""

PROBE = r"""
import socket, sys
proto, host, port, timeout, src = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
s.settimeout(timeout)
if src:
    s.bind((src, 0))
try:
    s.connect((host, port))
    if proto == "udp":
        s.send(b"hi")
    print("OK", s.recv(100).decode().strip())
except socket.timeout:
    print("TIMEOUT")
except ConnectionRefusedError:
    print("REFUSED")
except OSError as e:
    print("ERR", e)
"""

DENIED = "TIMEOUT"


def sh(*args: str, stdin: str | None = None) -> str:
    res = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=30)
    if res.returncode:
        raise RuntimeError(f"{' '.join(args)}: rc={res.returncode} {res.stderr.strip()}")
    return res.stdout


@dataclass
class Lab:
    node: str
    ext: str
    pods: dict[str, str]  # pod ip -> namespace
    loaded: str = ""

    def ns(self, who: PodInfo | str) -> str:
        if isinstance(who, PodInfo):
            return self.pods[who.ip]
        return {"node": self.node, "ext": self.ext}[who]

    def probe(self, src: PodInfo | str, dst: str, port: int, proto: str = "tcp", bind: str = "",
              timeout: float = 1.0) -> str:
        return sh("nsenter", f"--net=/run/netns/{self.ns(src)}", sys.executable, "-c", PROBE,
                  proto, dst, str(port), str(timeout), bind).strip()

    def load(self, *policies: dict[str, Any], with_kube_proxy: bool = False) -> None:
        """Rules of node n1 for these policies (ip sets first), then a clean conntrack table."""
        topo = topology(*policies)
        calico, ipsets = render_calico(topo, "n1")
        parts = [calico, render_kube_proxy(topo, "n1")] if with_kube_proxy else [calico]
        doc = render_restore(merge(*parts, render_forward_tail()))
        sh("nsenter", f"--net=/run/netns/{self.node}", "ipset", "restore", stdin=ipsets)
        sh("nsenter", f"--net=/run/netns/{self.node}", "iptables-restore", stdin=doc)
        subprocess.run(["nsenter", f"--net=/run/netns/{self.node}", "conntrack", "-F"], capture_output=True)
        self.loaded = doc


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    """ext --veth-- node n1 --cali veths-- web_a, db_a (alpha), web_b (beta); Calico-style /32 + proxy ARP."""
    if os.geteuid() != 0 or not all(shutil.which(t) for t in ("iptables-restore", "ipset", "nsenter")):
        pytest.skip("needs root, iptables, ipset and nsenter")
    tag = f"nxh5-{uuid.uuid4().hex[:6]}"
    node, ext = f"{tag}-n", f"{tag}-x"
    lab = Lab(node, ext, {p.ip: f"{tag}-p{i}" for i, p in enumerate((WEB_A, DB_A, WEB_B))})
    created: list[str] = []
    servers: list[subprocess.Popen[str]] = []
    try:
        for ns in (node, ext, *lab.pods.values()):
            sh("ip", "netns", "add", ns)
            created.append(ns)
        sh("ip", "-n", ext, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", node)
        for ns, dev in ((ext, "eth0"), (node, "eth0"), (ext, "lo"), (node, "lo")):
            sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", node, "addr", "add", f"{NODE_IPS['n1']}/24", "dev", "eth0")
        sh("ip", "-n", ext, "addr", "add", f"{EXT_IP}/24", "dev", "eth0")
        for extra in (EXT_OK, EXT_EXCEPT):
            sh("ip", "-n", ext, "addr", "add", f"{extra}/32", "dev", "eth0")
        sh("ip", "-n", ext, "route", "add", POD_CIDR, "via", NODE_IPS["n1"])
        sh("ip", "-n", node, "route", "add", "default", "via", EXT_IP)  # the node's upstream router
        sh("ip", "-n", node, "route", "add", "203.0.113.0/24", "via", EXT_IP)
        sysctls = ["net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0"]
        for pod in (WEB_A, DB_A, WEB_B):
            ns, cali = lab.pods[pod.ip], cali_iface(pod)
            sh("ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", cali, "netns", node)
            for where, dev in ((ns, "eth0"), (ns, "lo"), (node, cali)):
                sh("ip", "-n", where, "link", "set", dev, "up")
            sh("ip", "-n", ns, "addr", "add", f"{pod.ip}/32", "dev", "eth0")
            sh("ip", "-n", ns, "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link")
            sh("ip", "-n", ns, "route", "add", "default", "via", "169.254.1.1", "dev", "eth0")
            sh("ip", "-n", node, "route", "add", f"{pod.ip}/32", "dev", cali, "scope", "link")
            sysctls += [f"net.ipv4.conf.{cali}.proxy_arp=1", f"net.ipv4.neigh.{cali}.proxy_delay=0",
                        f"net.ipv4.conf.{cali}.rp_filter=0"]
        sh("ip", "netns", "exec", node, "sysctl", "-qw", *sysctls)
        ports = {lab.pods[p.ip]: ("tcp:8080", "tcp:9090", "udp:5353") for p in (WEB_A, DB_A, WEB_B)}
        ports.update({ext: ("tcp:8080",), node: ("tcp:8080",)})
        for ns, specs in ports.items():
            proc = subprocess.Popen(["nsenter", f"--net=/run/netns/{ns}", sys.executable, "-c", SERVER, *specs],
                                    stdout=subprocess.PIPE, text=True)
            servers.append(proc)
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield lab
    finally:
        try:
            for proc in servers:
                proc.kill()
                proc.wait(timeout=10)
        finally:
            for ns in created:
                subprocess.run(["ip", "netns", "delete", ns], check=False)


@pytest.mark.lab
def test_lab_kernel_accepts_the_documents_of_every_encapsulation(lab: Lab) -> None:
    deny = netpol("beta", "deny")
    for encap in ("direct", "ipip", "vxlan"):
        calico, ipsets = render_calico(topology(deny, encapsulation=encap), "n1")
        sh("nsenter", f"--net=/run/netns/{lab.node}", "ipset", "restore", stdin=ipsets)
        sh("nsenter", f"--net=/run/netns/{lab.node}", "ipset", "restore", stdin=ipsets)  # reloadable
        sh("nsenter", f"--net=/run/netns/{lab.node}", "iptables-restore", stdin=render_restore(calico))
    saved = sh("nsenter", f"--net=/run/netns/{lab.node}", "iptables-save", "-t", "filter")
    saved += sh("nsenter", f"--net=/run/netns/{lab.node}", "iptables-save", "-t", "nat")
    assert f"-A cali-to-wl-dispatch -o {cali_iface(WEB_B)} -g {tw(WEB_B)}" in saved
    assert sum(line.startswith("-A ") for line in saved.splitlines()) == sum(
        line.startswith("-A ") for line in render_restore(calico).splitlines())


@pytest.mark.lab
def test_lab_without_policy_everything_passes_and_pods_are_masqueraded_to_the_node(lab: Lab) -> None:
    lab.load()
    assert lab.probe(WEB_A, WEB_B.ip, 8080) == f"OK {WEB_A.ip}"
    assert lab.probe("ext", WEB_A.ip, 9090) == f"OK {EXT_IP}"  # inbound: no NAT
    assert lab.probe(WEB_A, EXT_IP, 8080) == f"OK {NODE_IPS['n1']}"  # natOutgoing
    assert lab.probe(WEB_A, NODE_IPS["n1"], 8080) == f"OK {WEB_A.ip}"  # to the node: no NAT


@pytest.mark.lab
def test_lab_default_deny_ingress_blocks_but_replies_and_the_host_pass(lab: Lab) -> None:
    lab.load(netpol("beta", "deny-all"))
    assert lab.probe(WEB_A, WEB_B.ip, 8080) == DENIED
    assert lab.probe("ext", WEB_B.ip, 8080) == DENIED
    assert lab.probe("node", WEB_B.ip, 8080) == f"OK {NODE_IPS['n1']}"  # host -> pod is not policed
    assert lab.probe(WEB_B, WEB_A.ip, 8080) == f"OK {WEB_B.ip}"  # the reply re-enters web_b: conntrack


@pytest.mark.lab
def test_lab_namespace_selector_admits_only_the_matching_namespace(lab: Lab) -> None:
    lab.load(netpol("alpha", "db-from-b", {"matchLabels": {"app": "db"}},
                    ingress=[{"from": [{"namespaceSelector": {"matchLabels": {"team": "b"}}}]}]))
    assert lab.probe(WEB_B, DB_A.ip, 9090) == f"OK {WEB_B.ip}"
    assert lab.probe(WEB_A, DB_A.ip, 9090) == DENIED
    assert lab.probe(WEB_B, WEB_A.ip, 9090) == f"OK {WEB_B.ip}"  # web_a is not selected


@pytest.mark.lab
def test_lab_pod_and_namespace_selector_in_one_peer_must_both_match(lab: Lab) -> None:
    lab.load(netpol("beta", "from-alpha-db", ingress=[{"from": [
        {"namespaceSelector": {"matchLabels": {"team": "a"}}, "podSelector": {"matchLabels": {"app": "db"}}}]}]))
    assert lab.probe(DB_A, WEB_B.ip, 8080) == f"OK {DB_A.ip}"
    assert lab.probe(WEB_A, WEB_B.ip, 8080) == DENIED


@pytest.mark.lab
def test_lab_ip_block_except_excludes_the_excepted_source(lab: Lab) -> None:
    lab.load(netpol("beta", "from-ext", ingress=[{"from": [
        {"ipBlock": {"cidr": "203.0.113.0/24", "except": [f"{EXT_EXCEPT}/32"]}}]}]))
    assert lab.probe("ext", WEB_B.ip, 8080, bind=EXT_OK) == f"OK {EXT_OK}"
    assert lab.probe("ext", WEB_B.ip, 8080, bind=EXT_EXCEPT) == DENIED
    assert lab.probe("ext", WEB_B.ip, 8080, bind=EXT_IP) == DENIED


@pytest.mark.lab
def test_lab_named_port_opens_each_pods_own_number(lab: Lab) -> None:
    lab.load(netpol("alpha", "http-only", ingress=[{"ports": [{"port": "http"}]}]))
    assert lab.probe(WEB_B, WEB_A.ip, 8080) == f"OK {WEB_B.ip}"
    assert lab.probe(WEB_B, WEB_A.ip, 9090) == DENIED
    assert lab.probe(WEB_B, DB_A.ip, 9090) == f"OK {WEB_B.ip}"
    assert lab.probe(WEB_B, DB_A.ip, 8080) == DENIED


@pytest.mark.lab
def test_lab_egress_deny_with_allow_to_cidr_polices_forward_and_input(lab: Lab) -> None:
    lab.load(netpol("alpha", "web-egress", {"matchLabels": {"app": "web"}}, policyTypes=["Egress"],
                    egress=[{"to": [{"ipBlock": {"cidr": "203.0.113.0/24"}}]}]))
    assert lab.probe(WEB_A, EXT_OK, 8080) == f"OK {NODE_IPS['n1']}"
    assert lab.probe(WEB_A, EXT_IP, 8080) == DENIED
    assert lab.probe(WEB_A, DB_A.ip, 8080) == DENIED
    assert lab.probe(WEB_A, NODE_IPS["n1"], 8080) == DENIED  # pod -> own node: INPUT, egress policy
    assert lab.probe(WEB_B, WEB_A.ip, 8080) == f"OK {WEB_B.ip}"  # ingress of web_a is not isolated


@pytest.mark.lab
def test_lab_same_node_pod_to_pod_needs_both_egress_and_ingress(lab: Lab) -> None:
    ingress_from_alpha = netpol("beta", "from-alpha", ingress=[{"from": [
        {"namespaceSelector": {"matchLabels": {"team": "a"}}}]}])
    egress_deny = netpol("alpha", "web-no-egress", {"matchLabels": {"app": "web"}}, policyTypes=["Egress"])
    egress_to_beta = netpol("alpha", "web-to-beta", {"matchLabels": {"app": "web"}}, policyTypes=["Egress"],
                            egress=[{"to": [{"namespaceSelector": {"matchLabels": {"team": "b"}}}]}])
    ingress_deny = netpol("beta", "deny-all")

    lab.load(ingress_from_alpha, egress_deny)
    assert lab.probe(WEB_A, WEB_B.ip, 8080) == DENIED
    assert lab.probe(DB_A, WEB_B.ip, 8080) == f"OK {DB_A.ip}"  # the ingress side admits alpha
    lab.load(egress_to_beta, ingress_deny)
    assert lab.probe(WEB_A, WEB_B.ip, 8080) == DENIED
    lab.load(egress_to_beta, ingress_from_alpha)
    assert lab.probe(WEB_A, WEB_B.ip, 8080) == f"OK {WEB_A.ip}"


@pytest.mark.lab
def test_lab_udp_port_is_opened_alone(lab: Lab) -> None:
    lab.load(netpol("alpha", "dns-only", {"matchLabels": {"app": "web"}},
                    ingress=[{"ports": [{"port": 5353, "protocol": "UDP"}]}]))
    assert lab.probe(WEB_B, WEB_A.ip, 5353, proto="udp") == f"OK {WEB_B.ip}"
    assert lab.probe(WEB_B, WEB_A.ip, 8080) == DENIED
    assert lab.probe(WEB_B, DB_A.ip, 5353, proto="udp") == f"OK {WEB_B.ip}"  # db is not selected


@pytest.mark.lab
def test_lab_with_kube_proxy_policy_sees_the_dnat_target_and_the_reject_still_runs(lab: Lab) -> None:
    allow_egress = netpol("alpha", "web-egress-all", {"matchLabels": {"app": "web"}}, policyTypes=["Egress"],
                          egress=[{}])
    lab.load(allow_egress, netpol("beta", "deny-all"), with_kube_proxy=True)
    assert lab.probe(WEB_A, SVC_WEB_B.cluster_ip, 8080) == DENIED  # ingress of the DNAT target applies
    assert lab.probe(WEB_A, SVC_EMPTY.cluster_ip, 8080) == "REFUSED"  # kube-proxy's REJECT before the accept
    lab.load(allow_egress, netpol("beta", "from-alpha", ingress=[{"from": [
        {"namespaceSelector": {"matchLabels": {"team": "a"}}}]}]), with_kube_proxy=True)
    assert lab.probe(WEB_A, SVC_WEB_B.cluster_ip, 8080) == f"OK {WEB_A.ip}"
