"""Differential fuzzing: many random scenarios, oracle against the kernel lab (needs root).

    python bench/fuzz.py [--start 0] [--count 100] [--jobs 3]

Prints flows per second and every disagreement (scenario, flow, what differed); exit 1 if
any. The seeds are the scenario names (``random-<seed>``), so a failure reproduces with
``python -c 'from tests.support.random_scenarios import random_scenarios_yaml as r; print(r(range(S, S + 1)))'``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from netiso.checking import check_many
from netiso.model.addressing import load_topologies
from tests.support.random_scenarios import random_scenarios_yaml


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "random.yaml"
        path.write_text(random_scenarios_yaml(range(args.start, args.start + args.count)))
        topos = load_topologies([str(path)])
    started = time.perf_counter()
    results = check_many(topos, jobs=args.jobs)
    wall = time.perf_counter() - started
    flows = [(res, r) for res in results for r in res.results]
    bad = [(res, r) for res, r in flows if not r.match]
    print(f"{len(results)} random scenarios, {len(flows)} flows in {wall:.1f} s "
          f"({len(flows) / wall:.1f} flows/s): {len(flows) - len(bad)} matched, {len(bad)} disagreed")
    for res, r in bad:
        print(f"  {res.topo.name}: {r.pred.flow.label} ({r.pred.target.port}): {'; '.join(r.problems)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
