"""Benchmark of the embedded lab end to end (needs root; builds real namespaces).

    python bench/lab.py [--scenarios DIR] [--builds 5] [--probes 3000] [--rounds 3] [--jobs 3]

Prints, each next to its target (reported, never asserted: a shared 2-core host is noisy):

* lab up / down time per mode (median and max over ``--builds`` builds) of a typical scenario:
  3 nodes, 2 clients, 6 pods, an nginx ingress controller           (up < 3 s, down < 2 s)
* allowed probes/s through the probe agent inside one lab: clients and pods probing pod IPs
  and NodePorts on every node, the agent on pod -> pod IP only, and a baseline of the same
  pod -> pod probes fired by an engine in this process (no agent IPC); the ratios (>= 1000/s)
* the cost of one dropped probe at the default timeout and of one refused probe
* wall time and flows/s of the bundled matrix as ``netiso check DIR`` runs it (check_many),
  one lab at a time and ``--jobs`` side by side                               (< 60 s)
* peak memory: ru_maxrss of this process, sampled VmHWM of the agent, forwarder and nginx,
  and the largest instantaneous sum over this process and all its descendants (< 300 MB)

Why in-process rather than timing the CLI: the figures must separate build, probe and teardown
costs, which the command line only prints per scenario.
Everything is created through ``Lab``/``ProbeAgent`` and torn down in ``finally`` blocks.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from netiso.backends.lab.backend import DEFAULT_JOBS, PROBE_TIMEOUT_S
from netiso.backends.lab.lab import Lab
from netiso.checking import check_many
from netiso.model.addressing import load_topologies
from netiso.model.types import Topology
from netiso.probe.agent import ProbeAgent
from netiso.probe.results import ProbeRequest, ProbeResult

MODES = ("direct", "ipip", "vxlan")
BASELINE_PORT = 18080  # the in-process echo servers; the agent's own servers use 8080
CLOSED_PORT = 9999  # nobody listens there: the pod's kernel answers RST

TYPICAL = """\
name: bench-typical-{mode}
description: 3 nodes, 2 clients, 6 pods (one of them an nginx ingress controller)
cluster:
  encapsulation: {mode}
  clients: [alice, bob]
workspaces:
  - name: ws-a
    projects:
      - name: open
      - name: shop
        isolation: true
        whitelist:
          - {{direction: ingress, peer: {{cidr: client:alice}}}}
          - {{direction: ingress, peer: {{project: kubesphere-controls-system}}}}
      - name: vault
        isolation: true
projects:
  - name: kubesphere-controls-system
workloads:
  - {{name: api, project: open, nodes: [worker, worker2]}}
  - {{name: web, project: shop, nodes: [worker, worker2]}}
  - {{name: safe, project: vault, nodes: [worker]}}
services:
  - {{name: api, project: open, type: NodePort}}
  - {{name: web, project: shop, type: NodePort}}
  - {{name: safe, project: vault}}
ingresses:
  - name: web
    project: shop
    host: web.example
    service: web
    controller: {{project: kubesphere-controls-system, node: worker2, exposure: NodePort}}
flows:
  - {{from: client:alice, to: ingress:shop/web}}
  - {{from: client:alice, to: 'nodeport:open/api@control-plane'}}
  - {{from: client:bob, to: pod:vault/safe}}
"""


def typical(mode: str) -> Topology:
    with tempfile.TemporaryDirectory(prefix="netiso-bench-") as d:
        path = Path(d) / f"typical-{mode}.yaml"
        path.write_text(TYPICAL.format(mode=mode))
        (topo,) = load_topologies([str(path)])
    return topo


def listing(rates: list[float]) -> str:
    return ", ".join(f"{r:.0f}" for r in rates)


def verdict_line(label: str, value: str, target: str, ok: bool | None) -> str:
    mark = "" if ok is None else ("  [meets target]" if ok else "  [MISSES target]")
    return f"  {label:<44} {value:<34} target {target}{mark}"


@contextmanager
def lab_up(topo: Topology) -> Iterator[Lab]:
    lab = Lab(topo)
    lab.up()
    try:
        yield lab
    finally:
        lab.down()


def _status_kb(pid: int, *keys: str) -> dict[str, int]:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key = line.split(":", 1)[0]
            if key in keys:
                out[key] = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return out


def _kind(pid: int) -> str:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
    for needle, kind in (("netiso.probe.agent", "probe agent"), ("netiso.backends.lab.ipip", "ipip forwarder"),
                         ("nginx", "nginx")):
        if needle in cmd:
            return kind
    return ""


class RssSampler(threading.Thread):
    """Samples this process's descendants every ``interval`` s for their memory.

    ``ru_maxrss`` of children is useless here: Linux carries a child's pre-exec high-water
    mark (the forked copy of this Python process) over exec, and it only counts children
    already waited for. Sampling VmHWM (the kernel's own per-process peak) of live
    descendants catches the agent, forwarder and nginx (master and workers) while they run;
    the sum of VmRSS of self and all descendants at one instant is the footprint that
    matters on a small host.
    """

    def __init__(self, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.peak_by_kind: dict[str, float] = {}  # MB, VmHWM of the largest process of that kind
        self.peak_total = 0.0  # MB, max over samples of self + descendants' VmRSS
        self.stopping = threading.Event()

    def sample(self) -> None:
        parents: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    data = Path(f"/proc/{entry}/stat").read_text()
                    parents[int(entry)] = int(data[data.rindex(")") + 2 :].split()[1])
                except (OSError, ValueError):
                    continue
        family, frontier = set(), {os.getpid()}
        while frontier:
            frontier = {pid for pid, ppid in parents.items() if ppid in frontier and pid not in family}
            family |= frontier
        total = _status_kb(os.getpid(), "VmRSS").get("VmRSS", 0)
        for pid in family:
            kb = _status_kb(pid, "VmRSS", "VmHWM")
            total += kb.get("VmRSS", 0)
            kind = _kind(pid)
            if kind and "VmHWM" in kb:
                self.peak_by_kind[kind] = max(self.peak_by_kind.get(kind, 0.0), kb["VmHWM"] / 1024)
        self.peak_total = max(self.peak_total, total / 1024)

    def run(self) -> None:
        while not self.stopping.is_set():
            self.sample()
            self.stopping.wait(self.interval)

    def finish(self) -> None:
        self.stopping.set()
        self.join(timeout=5)


# --------------------------------------------------------------------------- 1. up/down


def bench_up_down(builds: int) -> None:
    print(f"lab up/down of a typical scenario (3 nodes, 2 clients, 6 pods, ingress), {builds} builds per mode:")
    for mode in MODES:
        topo = typical(mode)
        ups, downs = [], []
        for _ in range(builds):
            lab = Lab(topo)
            started = time.perf_counter()
            try:
                lab.up()
                ups.append(time.perf_counter() - started)
            finally:
                t0 = time.perf_counter()
                lab.down()
                downs.append(time.perf_counter() - t0)
        up_med, down_med = statistics.median(ups), statistics.median(downs)
        print(verdict_line(f"{mode}: up median / max", f"{up_med:.2f} s / {max(ups):.2f} s", "< 3 s", max(ups) < 3))
        print(verdict_line(f"{mode}: down median / max", f"{down_med:.2f} s / {max(downs):.2f} s", "< 2 s",
                           max(downs) < 2))


# --------------------------------------------------------------------------- 2. probe rates


@dataclass
class ProbeSet:
    """Who probes what inside one lab (all allowed: project ``open`` is not isolated)."""

    sources: list[str]  # namespaces
    pod_sources: list[str]
    targets: list[tuple[str, int]]  # (ip, port): pod IPs and NodePorts
    pod_ips: list[str]  # the NodePort's endpoints
    pod_namespaces: list[str]  # their namespaces, same order


def probe_set(lab: Lab) -> ProbeSet:
    topo, net = lab.topo, lab.net
    assert net is not None
    api = topo.services["open/api"]
    node_port = api.ports[0].node_port
    assert node_port is not None
    pod_ips = [p.ip for p in api.endpoints]
    targets = [(ip, 8080) for ip in pod_ips] + [(n.ip, node_port) for n in topo.nodes.values()]
    pod_sources = [net.ns_of(p.symbol) for p in topo.pods if p.project == "shop"]
    sources = [net.ns_of(f"client:{c}") for c in topo.clients] + pod_sources
    pod_namespaces = [net.ns_of(p.symbol) for p in api.endpoints]
    return ProbeSet(sources, pod_sources, targets, pod_ips, pod_namespaces)


Pairs = list[tuple[str, str, int]]  # (source namespace, destination IP, port)


def mixed_pairs(ps: ProbeSet) -> Pairs:
    """Clients and pods to pod IPs and to the NodePort on every node."""
    return [(src, ip, port) for src in ps.sources for ip, port in ps.targets]


def pod_pairs(ps: ProbeSet, port: int) -> Pairs:
    """Pods to pod IPs only: the baseline's probe set."""
    return [(src, ip, port) for src in ps.pod_sources for ip in ps.pod_ips]


def requests(pairs: Pairs, n: int, tag: str) -> list[ProbeRequest]:
    return [ProbeRequest(f"{tag}{i}", *pairs[i % len(pairs)]) for i in range(n)]


def agent_rate(agent: ProbeAgent, pairs: Pairs, n: int, rounds: int) -> list[float]:
    agent.probe(requests(pairs, len(pairs), "warm"))  # ARP, conntrack, sockets
    rates = []
    for r in range(rounds):
        reqs = requests(pairs, n, f"r{r}-")
        started = time.perf_counter()
        results = agent.probe(reqs)
        elapsed = time.perf_counter() - started
        verdicts = Counter(x.verdict for x in results)
        if verdicts != {"allowed": n}:
            raise SystemExit(f"agent round {r}: expected {n} allowed, got {dict(verdicts)}")
        rates.append(n / elapsed)
    return rates


def baseline_rate(ps: ProbeSet, n: int, rounds: int) -> list[float]:
    """The same number of probes pod -> pod IP, servers and prober in this process's loop."""
    from netiso.probe.echo import make_listener, start_echo
    from netiso.probe.engine import ProbeEngine

    pairs = pod_pairs(ps, BASELINE_PORT)

    def reqs(tag: str, count: int) -> list[ProbeRequest]:
        return requests(pairs, count, tag)

    async def main() -> list[float]:
        engine = ProbeEngine()
        servers = []
        try:
            for ns, ip in zip(ps.pod_namespaces, ps.pod_ips, strict=True):
                sock = await engine.threads.arun_in(ns, make_listener, "TCP", "0.0.0.0", BASELINE_PORT)
                servers.append(await start_echo(sock, netns=ns, protocol="TCP", hostname=ip))
            await engine.run_probes(reqs("warm", len(pairs)))
            rates = []
            for r in range(rounds):
                started = time.perf_counter()
                results = await engine.run_probes(reqs(f"b{r}-", n))
                elapsed = time.perf_counter() - started
                verdicts = Counter(x.verdict for x in results)
                if verdicts != {"allowed": n}:
                    raise SystemExit(f"baseline round {r}: expected {n} allowed, got {dict(verdicts)}")
                rates.append(n / elapsed)
            return rates
        finally:
            for s in servers:
                s.close()
            engine.close()

    return asyncio.run(main())


def timed(agent: ProbeAgent, reqs: list[ProbeRequest], want: str) -> tuple[list[ProbeResult], float]:
    started = time.perf_counter()
    res = agent.probe(reqs)
    wall = time.perf_counter() - started
    got = Counter(x.verdict for x in res)
    if got != {want: len(reqs)}:
        raise SystemExit(f"expected {len(reqs)} {want}, got {dict(got)}")
    return res, wall


def bench_probes(mode: str, n: int, rounds: int) -> None:
    topo = typical(mode)
    # as netiso check runs it: echo servers in one agent process, probes from another
    with lab_up(topo) as lab, ProbeAgent() as server, ProbeAgent() as agent:
        served = []
        try:
            for pod in topo.pods:
                if pod.role == "workload":
                    ns = lab.net.ns_of(pod.symbol)  # type: ignore[union-attr]
                    server.serve(ns, 8080, "TCP", hostname=pod.symbol)
                    served.append(ns)
            ps = probe_set(lab)
            print(f"probe rates in one {mode} lab: {len(ps.sources)} sources (clients + pods) x {len(ps.targets)} "
                  f"targets (2 pod IPs, NodePort on 3 nodes), {n} probes per round, {rounds} rounds:")
            rates = agent_rate(agent, mixed_pairs(ps), n, rounds)
            med = statistics.median(rates)
            print(verdict_line("allowed probes/s, servers and probes in two agents (median)",
                               f"{med:.0f}  ({listing(rates)})", ">= 1000/s", med >= 1000))
            for ns in served:  # move the servers into the probing agent: the one-process baseline
                server.unserve(ns, 8080, "TCP")
                agent.serve(ns, 8080, "TCP", hostname="same-process")
            one = agent_rate(agent, mixed_pairs(ps), n, rounds)
            for ns in served:
                agent.unserve(ns, 8080, "TCP")
                server.serve(ns, 8080, "TCP", hostname="back")
            omed = statistics.median(one)
            print(verdict_line("  same, servers and probes in ONE agent (median)", f"{omed:.0f}  ({listing(one)})",
                               "-", None))
            print(verdict_line("  ratio two agents / one agent", f"{med / omed:.2f}", "-", None))
            pods = agent_rate(agent, pod_pairs(ps, 8080), n, rounds)
            pmed = statistics.median(pods)
            print(verdict_line("  same, pod -> pod IP only (median)", f"{pmed:.0f}  ({listing(pods)})", "-", None))
            base = baseline_rate(ps, n, rounds)
            bmed = statistics.median(base)
            print(verdict_line("baseline pod -> pod IP in-process (median)", f"{bmed:.0f}  ({listing(base)})", "-", None))
            print(verdict_line("ratio agent (all) / baseline", f"{med / bmed:.2f}", "-", None))
            print(verdict_line("ratio agent (pod -> pod) / baseline", f"{pmed / bmed:.2f}", "-", None))

            bob, safe = lab.net.ns_of("client:bob"), topo.pods_of("vault", "safe")[0].ip  # type: ignore[union-attr]
            singles = [timed(agent, [ProbeRequest(f"d{i}", bob, safe, 8080, timeout=PROBE_TIMEOUT_S)], "dropped")
                       for i in range(3)]
            ms = statistics.median(r[0][0].ms for r in singles)
            wall = statistics.median(r[1] for r in singles) * 1000
            print(verdict_line(f"dropped probe at timeout {PROBE_TIMEOUT_S:.1f} s (one)", f"{ms:.0f} ms (wall {wall:.0f} ms)",
                               "-", None))
            batch, bwall = timed(agent, [ProbeRequest(f"db{i}", src, safe, 8080, timeout=PROBE_TIMEOUT_S)
                                         for i, src in enumerate(ps.sources * 16)], "dropped")
            print(verdict_line(f"dropped probes x{len(batch)} to one pod, concurrently",
                               f"wall {bwall * 1000:.0f} ms (pair-first: 2 waves)", "-", None))
            alice, api_ip = lab.net.ns_of("client:alice"), ps.pod_ips[0]  # type: ignore[union-attr]
            refused, rwall = timed(agent, [ProbeRequest(f"rf{i}", alice, api_ip, CLOSED_PORT) for i in range(50)], "refused")
            rms = statistics.median(x.ms for x in refused)
            print(verdict_line("refused probe (RST), median of 50", f"{rms:.1f} ms (x50 wall {rwall * 1000:.0f} ms)",
                               "-", None))
            stats = agent.stats()
            print(verdict_line("probe agent RSS after the probes", f"{stats['rss_kb'] / 1024:.1f} MB", "-", None))
        finally:
            for ns in served:
                server.release(ns)
                agent.release(ns)


# --------------------------------------------------------------------------- 3. the matrix


def bench_matrix(scenarios: Path, jobs: int) -> None:
    """The bundled matrix as ``netiso check DIR --jobs N`` runs it (check_many), minus printing."""
    topos = load_topologies([str(scenarios)])
    started = time.perf_counter()
    results = check_many(topos, jobs=jobs)
    wall = time.perf_counter() - started
    flows = sum(len(r.results) for r in results)
    ups = [r.timings.get("up_s", 0.0) for r in results]
    print(f"bundled matrix {scenarios} (in-process check_many, --jobs {jobs}):")
    print(verdict_line("wall time", f"{wall:.1f} s ({len(topos)} scenarios, {flows} flows)", "< 60 s", wall < 60))
    print(verdict_line("flows per second", f"{flows / wall:.1f}", "-", None))
    print(verdict_line("lab up per scenario median / max", f"{statistics.median(ups):.2f} s / {max(ups):.2f} s",
                       "< 3 s", max(ups) < 3))
    print(verdict_line("mismatches (observed vs oracle)", str(sum(r.mismatches for r in results)), "-", None))


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenarios", type=Path, default=Path(__file__).resolve().parent.parent / "scenarios")
    parser.add_argument("--builds", type=int, default=5, help="lab builds per mode for up/down times")
    parser.add_argument("--probes", type=int, default=3000, help="allowed probes per round (>= 3000)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mode", choices=MODES, default="vxlan", help="the lab the probe rates are measured in")
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS, help="labs side by side for the matrix (also run at 1)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench/lab.py needs root (it builds network namespaces)", file=sys.stderr)
        return 2
    print(f"host: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} (other work on the host skews figures)")
    sampler = RssSampler()
    sampler.start()
    try:
        bench_up_down(args.builds)
        bench_probes(args.mode, args.probes, args.rounds)
        if args.scenarios.is_dir() and any(args.scenarios.glob("*.yaml")):
            for jobs in dict.fromkeys((1, args.jobs)):
                bench_matrix(args.scenarios, jobs)
        else:
            print(f"bundled matrix: {args.scenarios} has no scenarios, skipped")
    finally:
        sampler.finish()
    self_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("peak RSS (sampled every 0.2 s):")
    print(verdict_line("this process (ru_maxrss)", f"{self_mb:.1f} MB", "-", None))
    for kind, mb in sorted(sampler.peak_by_kind.items()):
        print(verdict_line(f"largest {kind} (VmHWM)", f"{mb:.1f} MB", "-", None))
    print(verdict_line("self + all descendants at once (VmRSS)", f"{sampler.peak_total:.1f} MB", "< 300 MB",
                       sampler.peak_total < 300))
    return 0


if __name__ == "__main__":
    sys.exit(main())
