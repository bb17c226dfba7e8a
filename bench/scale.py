"""Scale curve of ``netiso check`` on generated scenarios: 3 -> 48 nodes, up to ~9,800 flows (needs root).

    python bench/scale.py [--nodes 3,6,12,24,48] [--runs 1] [--keep DIR] [--limit 300]

For each size it writes the scenario of :mod:`tests.support.scale_scenarios` (issue 16's shape:
two isolated projects per worker, every client to every NodePort on every node, pods to
ClusterIPs), runs ``netiso check FILE --json results.json --report DIR`` *in this process* (the
CLI's own ``main``; its per-flow table goes to ``check.txt``, not the terminal), and prints one
row: wall, probe time and probes/s, lab up, peak RSS (this process plus every descendant at one
instant, sampled every 0.2 s: probe agents, forwarders), results.json and index.html sizes,
mismatches, and how many verdicts needed more than one try (``observed.tries``). With
``--runs N`` each size runs N times and the verdicts and sources of the runs are compared; a flow
whose source follows kube-proxy's random endpoint choice (several endpoints, a different source
predicted for each) is counted apart, since its source may differ between runs *as predicted*.

Why in-process: the figures must include what a user pays (report writing, JSON), but the RSS
sampler must see the run's own process. Nothing is asserted: the host is shared and noisy.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.lab import RssSampler
from netiso.cli import main as netiso_main
from tests.support.scale_scenarios import scale_scenario, scale_scenario_yaml

HEADER = (f"{'nodes':>5} {'pods':>5} {'flows':>6} {'wall s':>7} {'probe s':>7} {'probes/s':>8} {'up s':>6} "
          f"{'RSS MB':>7} {'json MB':>7} {'html MB':>7} {'mismatch':>8} {'retried':>7}")


def _signature(doc: dict[str, Any]) -> dict[tuple[str, int], tuple[Any, Any]]:
    """(scenario, flow index) -> (observed verdict, observed source): what must not change between runs."""
    return {(s["name"], i): (f["observed"]["verdict"], f["observed"].get("source"))
            for s in doc["scenarios"] for i, f in enumerate(s["flows"])}


def _random_endpoint(doc: dict[str, Any]) -> set[tuple[str, int]]:
    """Flows whose source may differ run to run *as predicted*: kube-proxy picks one of several
    endpoints at random and the oracle predicts a different source per endpoint (a pod reaching its
    own Service's ClusterIP is masqueraded only when kube-proxy sends it back to itself)."""
    return {(s["name"], i) for s in doc["scenarios"] for i, f in enumerate(s["flows"])
            if len(f["predicted"].get("source") or []) > 1 and len(f["predicted"].get("answeredBy") or []) > 1}


def run_size(nodes: int, out: Path, limit: float) -> tuple[str, dict[str, Any]]:
    """One ``netiso check`` of the ``nodes``-node scenario; the table row and the result document."""
    out.mkdir(parents=True, exist_ok=True)
    scenario = out / f"scale-{nodes}.yaml"
    scenario.write_text(scale_scenario_yaml(nodes))
    pods = len(scale_scenario(nodes)["workloads"])
    sampler = RssSampler()
    sampler.start()
    started = time.perf_counter()
    try:
        with open(out / "check.txt", "w") as table, contextlib.redirect_stdout(table):
            rc = netiso_main(["check", str(scenario), "--json", str(out / "results.json"), "--report", str(out)])
    finally:
        sampler.finish()
    wall = time.perf_counter() - started
    doc = json.loads((out / "results.json").read_text())
    flows = [f for s in doc["scenarios"] for f in s["flows"]]
    lab = doc["scenarios"][0].get("lab", {})
    mismatches = sum(1 for f in flows if not f.get("match"))
    retried = sum(1 for f in flows if (f["observed"].get("tries") or 1) > 1)
    probe_s = lab.get("probe_s", 0.0)
    row = (f"{nodes:>5} {pods:>5} {len(flows):>6} {wall:>7.1f} {probe_s:>7.1f} "
           f"{len(flows) / probe_s if probe_s else 0:>8.0f} {lab.get('up_s', 0.0):>6.2f} {sampler.peak_total:>7.0f} "
           f"{(out / 'results.json').stat().st_size / 1e6:>7.1f} {(out / 'index.html').stat().st_size / 1e6:>7.1f} "
           f"{mismatches:>8} {retried:>7}")
    if rc not in (0, 1):
        row += f"  (exit {rc})"
    if wall > limit:
        row += f"  (over the {limit:.0f} s limit)"
    return row, doc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", default="3,6,12,24,48", help="comma-separated node counts")
    parser.add_argument("--runs", type=int, default=1, help="runs per size (verdicts and sources compared)")
    parser.add_argument("--keep", type=Path, help="keep scenarios, results.json, reports here")
    parser.add_argument("--limit", type=float, default=300.0, help="stop after a size whose run took longer")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench/scale.py needs root (it builds network namespaces)", file=sys.stderr)
        return 2
    sizes = [int(n) for n in args.nodes.split(",") if n.strip()]
    print(f"host: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} (other work on the host skews figures)")
    print(HEADER)
    differing = 0
    with tempfile.TemporaryDirectory(prefix="netiso-scale-") as tmp:
        base = args.keep or Path(tmp)
        for nodes in sizes:
            signatures = []
            random_choice: set[tuple[str, int]] = set()
            over = False
            for k in range(args.runs):
                row, doc = run_size(nodes, base / f"n{nodes}" / f"run{k + 1}", args.limit)
                print(row, flush=True)
                signatures.append(_signature(doc))
                random_choice |= _random_endpoint(doc)
                over = over or "limit" in row
            if args.runs > 1:
                keys = signatures[0].keys()
                varied = [key for key in keys if len({str(s.get(key)) for s in signatures}) > 1]
                verdicts = [key for key in varied if len({s[key][0] for s in signatures}) > 1]
                diff = [key for key in varied if key in verdicts or key not in random_choice]
                differing += len(diff)
                print(f"      {args.runs} runs of {nodes} nodes: identical verdicts: {'yes' if not verdicts else 'NO'}; "
                      f"identical sources: {'yes' if not diff else f'NO, {len(diff)} flows differ'}"
                      + (f" (besides {len(varied) - len(diff)} flows whose source followed kube-proxy's random "
                         "endpoint choice, each source one the oracle predicts for that endpoint)"
                         if len(varied) > len(diff) else ""))
                for key in diff[:10]:
                    print(f"        {key}: {Counter(str(s.get(key)) for s in signatures)}")
            if over:
                print(f"stopping: {nodes} nodes took longer than --limit {args.limit:.0f} s")
                break
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
