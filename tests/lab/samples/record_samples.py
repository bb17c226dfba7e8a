"""Record real trace samples from a lab run (root): what tests/lab/test_trace_parse.py reads.

    sudo .venv/bin/python tests/lab/samples/record_samples.py [OUT_DIR]

Builds the small scenario below on the lab (VXLAN, three nodes), loads the TRACE rules, and
while ``xtables-monitor --trace`` runs in every node namespace (started with the run, ended by
PID) and a netlink trace socket records the same events raw, fires one marked probe per flow,
one at a time (xtables-monitor loses events under a burst). Writes, per node:
``<node>.xtables-monitor.txt`` (its output, verbatim), ``<node>.netlink.hex`` (one trace
datagram per line) and ``<node>.rules.hex`` (the nf_tables rule dump); and ``probes.json``:
each probe's 4-tuple, what the socket saw, and the oracle's verdict and decidedBy for the flow.
"""

from __future__ import annotations

import json
import socket
import sys
import tempfile
import time
from pathlib import Path

from netiso.backends.lab.lab import Lab
from netiso.backends.lab.trace import install_trace_rules, start_file_monitors, stop_monitors
from netiso.backends.trace_parse import tos_for
from netiso.model.addressing import load_topologies
from netiso.oracle.predict import predict_all
from netiso.probe import nftrace
from netiso.probe.agent import ProbeAgent
from netiso.probe.netns import NetnsThreads

SCENARIO = """\
name: trace-samples
description: isolation, a whitelist, NodePort across VXLAN, ETP Local without a local endpoint, no endpoints
cluster:
  encapsulation: vxlan
  clients: [alice, bob]
workspaces:
  - name: ws
    projects:
      - name: shop
        isolation: true
        whitelist:
          - {direction: ingress, peer: {cidr: client:alice}}
      - name: tools
workloads:
  - {name: web, project: shop, nodes: [worker]}
  - {name: probe, project: tools, nodes: [worker2]}
services:
  - {name: web, project: shop, type: NodePort}
  - {name: web-local, project: shop, type: NodePort, externalTrafficPolicy: Local, selector: {app: web}}
  - {name: ghost, project: tools, selector: {app: nothing}}
flows:
  - {from: client:alice, to: "nodeport:shop/web@worker2"}
  - {from: client:bob, to: "nodeport:shop/web@worker"}
  - {from: client:alice, to: "pod:shop/web"}
  - {from: client:alice, to: "nodeport:shop/web-local@worker2"}
  - {from: "pod:tools/probe", to: "clusterip:tools/ghost"}
  - {from: "pod:tools/probe", to: "pod:shop/web"}
"""


def _probe(netns_threads: NetnsThreads, netns: str, dst: str, port: int, proto: str) -> dict[str, object]:
    def run() -> dict[str, object]:
        kind = socket.SOCK_STREAM if proto == "TCP" else socket.SOCK_DGRAM
        with socket.socket(socket.AF_INET, kind) as s:
            s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos_for())
            s.settimeout(0.5)
            outcome = "connected"
            try:
                s.connect((dst, port))
            except OSError as exc:
                outcome = type(exc).__name__
            src, sport = s.getsockname()[:2]
            return {"tuple5": [proto, src, sport, dst, port], "socket": outcome}
    return netns_threads.run_in(netns, run)


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "samples.yaml"
        path.write_text(SCENARIO)
        topo = load_topologies([str(path)])[0]
    preds = predict_all(topo)
    threads = NetnsThreads()
    lab = Lab(topo).up()
    monitors = {}
    sockets: dict[str, socket.socket] = {}
    raw: dict[str, list[str]] = {}
    try:
        assert lab.net is not None and lab.run is not None
        nodes = {n.netns: name for name, n in lab.net.nodes.items()}
        for netns in nodes:
            install_trace_rules(lab.run, netns, topo)
        with ProbeAgent() as agent:
            for pod in topo.pods:
                if pod.role == "workload":
                    for port in pod.ports:
                        agent.serve(lab.net.ns_of(pod.symbol), port.port, port.protocol, hostname=pod.symbol)
            monitors = start_file_monitors(lab.run, nodes, out / ".raw")
            for netns, node in nodes.items():
                sockets[node] = threads.run_in(netns, nftrace.open_trace_socket)
                rules = threads.run_in(netns, _rule_dump_raw)
                (out / f"{node}.rules.hex").write_text("\n".join(rules) + "\n")
                raw[node] = []
            time.sleep(0.5)
            probes = []
            for p in preds:
                t = p.target
                origin = t.origin_name if t.origin_kind == "pod" else f"{t.origin_kind}:{t.origin_name}"
                rec = _probe(threads, lab.net.ns_of(origin), t.dst_ip or "", t.dst_port, t.protocol)
                rec.update({"flow": f"{p.flow.src} -> {p.flow.dst}", "verdict": p.verdict,
                            "decidedBy": p.decided_by})
                probes.append(rec)
                time.sleep(0.3)
                for node, sock in sockets.items():
                    raw[node] += _drain(sock)
            time.sleep(0.5)
            for node, sock in sockets.items():
                raw[node] += _drain(sock)
            for ns in {lab.net.ns_of(pod.symbol) for pod in topo.pods} | set(lab.net.clients[c].netns for c in lab.net.clients):
                agent.release(ns)
        stop_monitors(monitors)
        for node in nodes.values():
            (out / f"{node}.xtables-monitor.txt").write_text((out / ".raw" / f"trace-{node}.log").read_text())
            (out / f"{node}.netlink.hex").write_text("\n".join(raw[node]) + "\n")
        (out / "probes.json").write_text(json.dumps(probes, indent=1) + "\n")
    finally:
        for sock in sockets.values():
            sock.close()
        threads.close()
        stop_monitors(monitors)
        lab.down()
        for f in (out / ".raw").glob("*"):
            f.unlink()
        if (out / ".raw").exists():
            (out / ".raw").rmdir()


def _drain(sock: socket.socket) -> list[str]:
    lines = []
    while True:
        try:
            lines.append(sock.recv(1 << 20).hex())
        except BlockingIOError:
            return lines


def _rule_dump_raw() -> list[str]:
    """The raw answer datagrams of an nf_tables rule dump (AF_INET), hex."""
    import struct

    out = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, nftrace.NETLINK_NETFILTER) as sock:
        sock.bind((0, 0))
        sock.settimeout(5)
        body = struct.pack("BBH", socket.AF_INET, 0, 0)
        kind = (nftrace.NFNL_SUBSYS_NFTABLES << 8) | nftrace.NFT_MSG_GETRULE
        sock.send(struct.pack("IHHII", 16 + len(body), kind, nftrace.NLM_F_REQUEST | nftrace.NLM_F_DUMP, 1, 0) + body)
        while True:
            data = sock.recv(1 << 20)
            out.append(data.hex())
            if any(k in (nftrace.NLMSG_DONE, nftrace.NLMSG_ERROR) for k, _f, _p in nftrace.messages(data)):
                return out


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "trace")
