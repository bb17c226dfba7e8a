"""Benchmark of early settling (needs root; builds real namespaces).

    python bench/trace.py [--scenarios DIR] [--drops 20] [--burst 50] [--jobs 3] [--settle 2]

Measured in one run, each figure with and without tracing, printed with the ratio:

* the cost of one dropped probe: the same flow (a policy drop on a NodePort) probed ``--drops``
  times one at a time; without tracing it costs the probe timeout, with tracing the moment the
  trace shows the DROP (target from issue 8: < 50 ms);
* a burst of ``--burst`` dropped probes fired together (wall time of the batch);
* the bundled matrix (every scenario of ``--scenarios``): wall time of building, probing and
  tearing down every lab, ``--jobs`` labs side by side (one probe agent per worker), as
  ``netiso check`` does it; traced means every probe is traced and settled early when a rule
  drops it (target: at least 3x faster);
* how many flows the traced run settled by a rule, and whether both runs gave the same verdicts.

Reported, never asserted: a shared 2-core host is noisy. The matrix runs go first traced, then
untraced, then traced again, and the better traced figure is reported with both shown. Each
matrix run starts after ``--settle`` idle seconds: the kernel frees a deleted network namespace
later, in a worker of its own (measured here: a run right after another was up to ~20 % slower), and
that bill belongs to the run before, whichever mode it was.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support

from netiso.backends import BackendOptions, open_backend
from netiso.backends.lab.backend import origin_symbol
from netiso.backends.lab.lab import Lab
from netiso.checking import check_many
from netiso.model.addressing import load_topologies
from netiso.model.types import Topology
from netiso.oracle.predict import predict_all
from netiso.probe.agent import ProbeAgent
from netiso.probe.prober import start_agent_prober
from netiso.probe.results import ProbeRequest
from tests.support.traced_check import serve, start_tracing, stop_tracing

ROOT = Path(__file__).resolve().parents[1]
DROP_FLOW = ("client:bob", "nodeport:shop/web@worker")  # nodeport-cluster-vxlan: isolation drop on worker


def dropped_probe_costs(topo: Topology, drops: int, burst: int) -> dict[str, object]:
    preds = predict_all(topo)
    pred = next(p for p in preds if (p.flow.src, p.flow.dst) == DROP_FLOW)
    out: dict[str, object] = {}
    with ProbeAgent() as agent:
        lab = Lab(topo).up()
        try:
            assert lab.net is not None
            served = serve(lab, agent, preds)
            t = pred.target
            ns = lab.net.ns_of(origin_symbol(pred))
            for traced in (False, True):
                if traced:
                    start_tracing(lab, agent)

                def req(i: int, traced: bool = traced) -> ProbeRequest:
                    return ProbeRequest(f"d{i}", ns, t.dst_ip or "", t.dst_port, t.protocol, timeout=1.0, trace=traced)

                singles = []
                for i in range(drops):
                    t0 = time.perf_counter()
                    r = agent.probe([req(i)])[0]
                    singles.append((time.perf_counter() - t0) * 1000)
                    assert r.verdict == "dropped", r
                t0 = time.perf_counter()
                results = agent.probe([req(i) for i in range(burst)])
                burst_ms = (time.perf_counter() - t0) * 1000
                settled = sum(1 for r in results if r.detail.startswith("dropped by "))
                out["traced" if traced else "plain"] = {
                    "median_ms": statistics.median(singles), "max_ms": max(singles),
                    "burst_ms": burst_ms, "burst_settled": settled}
            stop_tracing(lab, agent)
            for n in {*served, ns}:
                agent.release(n)
        finally:
            lab.down()
    return out


def differences(topos: list[Topology], runs: dict[str, list[list[str]]], limit: int = 5) -> list[str]:
    """The flows whose verdict is not the same in every run: ``scenario#flow run=verdict ...``."""
    out = []
    for s, topo in enumerate(topos):
        for f in range(len(topo.scenario.flows)):
            seen = {name: rows[s][f] for name, rows in runs.items()}
            if len(set(seen.values())) > 1:
                out.append(f"{topo.name}#{f} " + " ".join(f"{k}={v}" for k, v in seen.items()))
    return out[:limit]


def matrix(topos: list[Topology], jobs: int, trace: bool) -> tuple[float, list[list[str]], int]:
    """The bundled matrix as ``netiso check DIR --jobs N`` runs it (the lab backend), tracing on or off."""
    backend = open_backend("lab", BackendOptions(trace=trace), probers=start_agent_prober)
    try:
        t0 = time.perf_counter()
        results = check_many(topos, jobs=jobs, backend=backend)
        wall = time.perf_counter() - t0
    finally:
        backend.close()
    rows = [[f"{r.obs.verdict}|{'settled' if r.obs.detail.startswith('dropped by ') else ''}" for r in res.results]
            for res in results]
    settled = sum(1 for row in rows for cell in row if cell.endswith("settled"))
    return wall, [[c.split("|")[0] for c in row] for row in rows], settled


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenarios", default=str(ROOT / "scenarios"))
    ap.add_argument("--drops", type=int, default=20)
    ap.add_argument("--burst", type=int, default=50)
    ap.add_argument("--jobs", type=int, default=3)
    ap.add_argument("--settle", type=float, default=2.0, help="idle seconds before each matrix run")
    args = ap.parse_args()
    topos = load_topologies([args.scenarios])
    nodeport = next(t for t in topos if t.name == "nodeport-cluster-vxlan")

    costs = dropped_probe_costs(nodeport, args.drops, args.burst)
    plain, traced = costs["plain"], costs["traced"]
    assert isinstance(plain, dict) and isinstance(traced, dict)
    print(f"dropped probe, one at a time ({args.drops}x): plain median {plain['median_ms']:.1f} ms "
          f"(max {plain['max_ms']:.1f}), traced median {traced['median_ms']:.1f} ms (max {traced['max_ms']:.1f}) "
          f"-> {plain['median_ms'] / traced['median_ms']:.1f}x   [target < 50 ms]")
    print(f"burst of {args.burst} dropped probes: plain {plain['burst_ms']:.0f} ms, traced {traced['burst_ms']:.0f} ms "
          f"({traced['burst_settled']}/{args.burst} settled by the rule) "
          f"-> {plain['burst_ms'] / traced['burst_ms']:.1f}x")

    flows = sum(len(t.scenario.flows) for t in topos)
    def settled_matrix(trace: bool) -> tuple[float, list[list[str]], int]:
        time.sleep(args.settle)
        return matrix(topos, args.jobs, trace)

    t1, rows_t1, settled = settled_matrix(True)
    p, rows_p, _ = settled_matrix(False)
    t2, rows_t2, settled2 = settled_matrix(True)
    best = min(t1, t2)
    same = rows_t1 == rows_p == rows_t2
    print(f"bundled matrix ({len(topos)} scenarios, {flows} flows, --jobs {args.jobs}): plain {p:.1f} s, "
          f"traced {t1:.1f} s / {t2:.1f} s -> {p / best:.1f}x   [target >= 3x]")
    print(f"  flows settled by a rule: {settled} / {settled2} of {flows}; same verdicts traced and plain: {same}")
    for line in differences(topos, {"traced1": rows_t1, "plain": rows_p, "traced2": rows_t2}):
        print(f"  differs: {line}")


if __name__ == "__main__":
    main()
