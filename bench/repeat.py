"""Repeatability: run the bundled matrix N times (default 20) and demand identical observations.

    python bench/repeat.py [--runs 20] [--scenarios DIR] [--limit 120] [--keep DIR]

Each run is the real command line, ``python -m netiso.cli check DIR --json run-K.json``, in a
subprocess of its own. Per flow (scenario, position, from, to, port) it records the observed
verdict and the observed source symbol, then prints whether all runs agree; every flow that
differed is listed with its value in each run. Exit status: 0 only if every run gave identical
verdicts *and* sources; 1 if any flow differed; 2 if a run failed or exceeded ``--limit``.

Why verdicts and sources both: a suite that reports ``allowed`` every time but sometimes sees
the client and sometimes a node address (e.g. a race in VIP announcement or conntrack state
carried over between flows) would produce flaky whitelist advice. Why a subprocess per run:
each run starts from a fresh process (janitor, agent, imports) exactly as a user would see it,
and a run that hangs can be stopped by its PID without taking this script down.

Bounded: a run that exceeds ``--limit`` seconds gets SIGINT (its ``finally`` blocks tear the
lab down), then SIGKILL after a grace period followed by ``netiso clean``; the script stops there.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

Key = tuple[str, int, str, str, str]  # scenario, position, from, to, port
Value = tuple[str, str]  # observed verdict, observed source symbol ("-" if none)
GRACE_S = 15.0


def observations(doc: dict) -> dict[Key, Value]:  # type: ignore[type-arg]
    out: dict[Key, Value] = {}
    for sc in doc["scenarios"]:
        for i, f in enumerate(sc["flows"]):
            obs = f.get("observed") or {}
            out[(sc["name"], i, f["from"], f["to"], f["port"])] = (str(obs.get("verdict")), str(obs.get("source") or "-"))
    return out


def mismatches(doc: dict) -> int:  # type: ignore[type-arg]
    return sum(1 for sc in doc["scenarios"] for f in sc["flows"] if not f.get("match", False))


def netiso(*args: str) -> list[str]:
    return [sys.executable, "-m", "netiso.cli", *args]


def one_run(k: int, scenarios: Path, out_dir: Path, limit: float) -> tuple[dict | None, float, str]:  # type: ignore[type-arg]
    """Run the matrix once; (document or None, seconds, problem)."""
    out = out_dir / f"run-{k:02d}.json"
    log = out_dir / f"run-{k:02d}.log"
    started = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(netiso("check", str(scenarios), "--json", str(out)), stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            rc = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGINT)  # KeyboardInterrupt: check_scenario's finally tears the lab down
            try:
                proc.wait(timeout=GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            subprocess.run(netiso("clean"), capture_output=True, timeout=120)
            return None, time.perf_counter() - started, f"run {k} exceeded {limit:.0f} s and was stopped (log: {log})"
    elapsed = time.perf_counter() - started
    if rc not in (0, 1) or not out.exists():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        return None, elapsed, f"run {k} failed with exit {rc} (log: {log}):\n{tail}"
    return json.loads(out.read_text()), elapsed, ""


def describe(values: list[Value | None]) -> str:
    """Per-run values, compressed: the majority value, then every run that deviated."""
    shown = ["/".join(v) if v else "(missing)" for v in values]
    common, count = Counter(shown).most_common(1)[0]
    odd = [f"run {i + 1}: {v}" for i, v in enumerate(shown) if v != common]
    return f"{common} x{count}; " + "; ".join(odd) + "\n      all runs: " + " | ".join(shown)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--scenarios", type=Path, default=Path(__file__).resolve().parent.parent / "scenarios")
    parser.add_argument("--limit", type=float, default=120.0, help="seconds one run may take before the script stops")
    parser.add_argument("--keep", type=Path, help="directory for the JSON documents and logs (default: a temp dir)")
    args = parser.parse_args(argv)
    if not args.scenarios.is_dir():
        print(f"{args.scenarios}: no such directory", file=sys.stderr)
        return 2
    out_dir = args.keep or Path(tempfile.mkdtemp(prefix="netiso-repeat-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    runs: list[dict[Key, Value]] = []
    times: list[float] = []
    print(f"{args.runs} runs of `netiso check {args.scenarios}` (limit {args.limit:.0f} s each), output in {out_dir}")
    for k in range(1, args.runs + 1):
        doc, elapsed, problem = one_run(k, args.scenarios, out_dir, args.limit)
        if doc is None:
            print(f"STOPPED: {problem}")
            return 2
        runs.append(observations(doc))
        times.append(elapsed)
        verdicts = Counter(v for v, _ in runs[-1].values())
        print(f"  run {k:2d}: {elapsed:5.1f} s, {len(doc['scenarios'])} scenarios, {len(runs[-1])} flows "
              f"({', '.join(f'{n} {v}' for v, n in sorted(verdicts.items()))}), {mismatches(doc)} mismatched",
              flush=True)

    keys = sorted(set().union(*runs))
    differ_verdict = [k for k in keys if len({(r.get(k) or ("?", "?"))[0] for r in runs}) > 1 or any(k not in r for r in runs)]
    differ_source = [k for k in keys if k not in differ_verdict and len({r[k][1] for r in runs}) > 1]
    print(f"{len(runs)} runs, {len(keys)} flows, wall per run min/median/max "
          f"{min(times):.1f}/{statistics.median(times):.1f}/{max(times):.1f} s")
    same_verdicts = "yes" if not differ_verdict else f"NO ({len(differ_verdict)} flows differ)"
    same_sources = "yes" if not differ_source else f"NO ({len(differ_source)} flows with equal verdicts differ)"
    print(f"identical verdicts in all runs: {same_verdicts}")
    print(f"identical sources in all runs:  {same_sources}{' (flows with differing verdicts aside)' if differ_verdict else ''}")
    for k in differ_verdict + differ_source:
        scenario, pos, src, dst, port = k
        print(f"  {scenario} #{pos + 1}: {src} -> {dst} {port}: {describe([r.get(k) for r in runs])}")
    return 0 if not (differ_verdict or differ_source) else 1


if __name__ == "__main__":
    sys.exit(main())
