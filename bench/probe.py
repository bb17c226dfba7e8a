"""Benchmark of the probe agent on a real datapath (needs root; namespaces prefixed ``nxh2-b``).

Prints: agent start-up time, allowed TCP and UDP probes/s through the agent (and in-process),
the cost of a dropped and of a refused probe, the agent's RSS, and the cost of creating a
socket in a namespace with one thread per namespace vs one hopping thread.

    python bench/probe.py [--tcp 3000] [--udp 3000] [--rounds 3] [--timeout 1.0]

Everything it creates (namespaces, the agent process) is removed on exit, also on errors.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable

from netiso.probe.agent import ProbeAgent
from netiso.probe.engine import ProbeEngine
from netiso.probe.netns import HoppingThread, NetnsThreads, make_socket, make_sockets
from netiso.probe.results import ProbeRequest

PREFIX = f"nxh2-b{os.getpid()}"
SRV_IP, CLI_IP = "198.18.10.1", "198.18.10.2"
HTTP, UDP, TCP_DROP, CLOSED = 8080, 8081, 8090, 9999


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=30)


def build(names: list[str]) -> tuple[str, str, list[str]]:
    srv, cli = f"{PREFIX}-srv", f"{PREFIX}-cli"
    extra = [f"{PREFIX}-x{i}" for i in range(4)]
    for ns in (srv, cli, *extra):
        sh("ip", "netns", "add", ns)
        names.append(ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.icmp_ratemask=0")
    sh("ip", "-n", srv, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", cli)
    for ns, ip in ((srv, SRV_IP), (cli, CLI_IP)):
        sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
    sh("ip", "netns", "exec", srv, "iptables", "-w", "-A", "INPUT", "-p", "tcp", "--dport", str(TCP_DROP), "-j", "DROP")
    return srv, cli, extra


def rate(agent: ProbeAgent, cli: str, port: int, proto: str, n: int, rounds: int) -> list[float]:
    rates = []
    for r in range(rounds):
        reqs = [ProbeRequest(f"{r}-{i}", cli, SRV_IP, port, proto) for i in range(n)]
        start = time.perf_counter()
        results = agent.probe(reqs)
        elapsed = time.perf_counter() - start
        verdicts = Counter(x.verdict for x in results)
        if verdicts != {"allowed": n}:
            raise SystemExit(f"unexpected verdicts {dict(verdicts)}")
        rates.append(n / elapsed)
    return rates


def in_process_rate(srv: str, cli: str, n: int) -> float:
    """Server and prober in this process's loop (no JSON, no second process)."""
    from netiso.probe.echo import make_listener, start_echo

    async def main() -> float:
        engine = ProbeEngine()
        sock = await engine.threads.arun_in(srv, make_listener, "TCP", "0.0.0.0", 8180)
        server = await start_echo(sock, netns=srv, protocol="TCP", hostname="bench")
        try:
            await engine.run_probes([ProbeRequest("w", cli, SRV_IP, 8180)])
            start = time.perf_counter()
            results = await engine.run_probes([ProbeRequest(str(i), cli, SRV_IP, 8180) for i in range(n)])
            assert {x.verdict for x in results} == {"allowed"}
            return n / (time.perf_counter() - start)
        finally:
            server.close()
            engine.close()

    return asyncio.run(main())


def socket_creation(names: list[str], n: int) -> dict[str, float]:
    """Microseconds per socket created in a namespace, round-robin over ``names``."""

    def timed(run: Callable[[str], object], count: int) -> float:
        start = time.perf_counter()
        for i in range(count):
            run(names[i % len(names)])
        return (time.perf_counter() - start) / count * 1e6

    out: dict[str, float] = {}
    threads = NetnsThreads()
    try:
        for ns in names:
            threads.run_in(ns, int)  # start the threads outside the measurement
        out["thread-per-netns, 1 socket per hop"] = timed(
            lambda ns: threads.socket_in(ns, socket.AF_INET, socket.SOCK_STREAM).close(), n
        )
        out["thread-per-netns, 32 sockets per hop"] = (
            timed(
                lambda ns: [s.close() for s in threads.run_in(ns, make_sockets, socket.AF_INET, socket.SOCK_STREAM, 32)],
                n // 32,
            )
            / 32
        )
    finally:
        threads.close()
    hopper = HoppingThread()
    try:
        out["hopping thread, 1 socket per hop (ns changes)"] = timed(
            lambda ns: hopper.socket_in(ns, socket.AF_INET, socket.SOCK_STREAM).close(), n
        )
        out["hopping thread, 1 socket per hop (same ns)"] = timed(
            lambda ns: hopper.run_in(names[0], make_socket, socket.AF_INET, socket.SOCK_STREAM).close(), n
        )
    finally:
        hopper.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tcp", type=int, default=3000)
    parser.add_argument("--udp", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=1.0)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root")
    names: list[str] = []
    agent = ProbeAgent()
    try:
        srv, cli, extra = build(names)
        start = time.perf_counter()
        agent.start()
        print(f"agent start-up (spawn + first answer): {(time.perf_counter() - start) * 1000:.0f} ms, pid {agent.pid}")
        print(f"agent RSS idle: {agent.stats()['rss_kb'] / 1024:.1f} MiB")
        agent.serve(srv, HTTP, "TCP", hostname="bench")
        agent.serve(srv, UDP, "UDP", hostname="bench")
        agent.serve(srv, TCP_DROP, "TCP", hostname="bench")
        agent.probe([ProbeRequest("warm", cli, SRV_IP, HTTP)])

        tcp = rate(agent, cli, HTTP, "TCP", args.tcp, args.rounds)
        print(f"allowed TCP probes/s via agent ({args.tcp} per round): " + ", ".join(f"{r:.0f}" for r in tcp)
              + f"  (median {statistics.median(tcp):.0f})")  # fmt: skip
        udp = rate(agent, cli, UDP, "UDP", args.udp, args.rounds)
        print(f"allowed UDP probes/s via agent ({args.udp} per round): " + ", ".join(f"{r:.0f}" for r in udp)
              + f"  (median {statistics.median(udp):.0f})")  # fmt: skip
        print(f"allowed TCP probes/s in-process (server+prober one loop): {in_process_rate(srv, cli, args.tcp):.0f}")

        for n in (1, 64, 256):
            reqs = [ProbeRequest(f"d{i}", cli, SRV_IP, TCP_DROP, timeout=args.timeout) for i in range(n)]
            start = time.perf_counter()
            res = agent.probe(reqs)
            wall = time.perf_counter() - start
            assert {x.verdict for x in res} == {"dropped"}
            print(f"dropped TCP x{n} at timeout {args.timeout}s: wall {wall:.2f} s, "
                  f"per-probe ms mean {statistics.mean(x.ms for x in res):.0f}")  # fmt: skip
        reqs = [ProbeRequest(f"r{i}", cli, SRV_IP, CLOSED, proto) for i in range(500) for proto in ("TCP", "UDP")]
        start = time.perf_counter()
        res = agent.probe(reqs)
        wall = time.perf_counter() - start
        print(f"refused TCP+UDP x{len(reqs)}: wall {wall:.2f} s, verdicts {dict(Counter(x.verdict for x in res))}")
        stats = agent.stats()
        print(f"agent RSS after: {stats['rss_kb'] / 1024:.1f} MiB, threads {stats['threads']}, "
              f"probes {stats['probes']}")  # fmt: skip

        print("socket creation in a namespace (us per socket):")
        for what, us in socket_creation([srv, cli, *extra], 4000).items():
            print(f"  {what}: {us:.1f}")
    finally:
        agent.stop()
        for ns in reversed(names):
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True, timeout=30)


if __name__ == "__main__":
    sys.exit(main())
