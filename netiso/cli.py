"""The ``netiso`` command line (contract: docs/scenarios.md "Command line").

Exit codes: 0 every flow matched, 1 at least one mismatch (for ``explain``: the oracle disagrees
with a scenario's explicit ``expect``), 2 bad input or a backend that cannot start — always
one message naming file, document and field, never a traceback, nothing left behind.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from netiso.backends.base import KUBESPHERE_MODES
from netiso.model.errors import InputError
from netiso.report.baseline import format_changes, load_baseline

EXIT_OK, EXIT_MISMATCH, EXIT_INPUT = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="netiso", description="Kubernetes network isolation conformance suite.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    e = sub.add_parser("explain", help="predict every flow with the oracle (no root, no cluster)")
    e.add_argument("paths", nargs="+", metavar="FILE|DIR")
    e.add_argument("--json", metavar="OUT", help="write the result document (contract JSON)")
    e.add_argument("--report", metavar="DIR", help="write results.json + matrix.md into DIR")
    e.add_argument("--paths", dest="show_paths", action="store_true", help="print every flow's hop path")
    e.add_argument("--baseline", metavar="OLD.json", help="list flows whose predicted outcome differs from OLD.json")

    r = sub.add_parser("render", help="print the Kubernetes objects of scenarios as multi-document YAML")
    r.add_argument("paths", nargs="+", metavar="FILE")
    r.add_argument("--backend", choices=("lab", "kind", "kube"), default="lab")

    c = sub.add_parser("check", help="build the scenario on a backend, probe every flow, compare")
    c.add_argument("paths", nargs="+", metavar="FILE|DIR")
    c.add_argument("--backend", choices=("lab", "kind", "kube"), default="lab")
    c.add_argument("--json", metavar="OUT")
    c.add_argument("--report", metavar="DIR", help="write JSON + Markdown reports into DIR")
    c.add_argument("--paths", dest="show_paths", action="store_true", help="print every flow's hop path")
    c.add_argument("--jobs", type=int, default=None, metavar="N", help="scenarios run side by side (lab default 3)")
    c.add_argument("--baseline", metavar="OLD.json", help="list flows whose observed outcome differs from OLD.json")
    c.add_argument("--json-paths", choices=("inline", "shared", "auto"), default="auto",
                   help="kernel traces and predicted paths inline in every flow, or shared by reference in a "
                        "top-level 'paths' table (auto: shared from 500 flows; docs/scenarios.md)")
    _cluster_options(c)

    m = sub.add_parser("minimal-config", help="smallest ingress whitelist per isolated project for the flows marked "
                       "intent: wanted (--backend proves it)")
    m.add_argument("paths", nargs="+", metavar="FILE|DIR")
    m.add_argument("--backend", choices=("lab", "kind", "kube"))
    m.add_argument("--json", metavar="OUT")
    m.add_argument("--jobs", type=int, default=None, metavar="N", help="proof scenarios run side by side (lab default 3)")
    _cluster_options(m)

    lab = sub.add_parser("lab", help="keep a lab up for manual inspection")
    labsub = lab.add_subparsers(dest="lab_command", required=True, metavar="up|down|status")
    up = labsub.add_parser("up", help="build FILE's (first) scenario and leave it running")
    up.add_argument("path", metavar="FILE")
    up.add_argument("--scenario", help="name of the scenario in FILE (default: the first)")
    labsub.add_parser("down", help="tear down the kept lab")
    labsub.add_parser("status", help="show the kept lab")

    cl = sub.add_parser("clean", help="remove everything a crashed run left behind")
    cl.add_argument("--backend", choices=("lab", "kind", "kube"), default="lab",
                    help="whose leftovers: lab namespaces (default) or a cluster's netiso-labelled objects")
    cl.add_argument("--kubeconfig", metavar="PATH")
    cl.add_argument("--context", metavar="NAME")
    cl.add_argument("--kubesphere", choices=KUBESPHERE_MODES, default=None,
                    help="kube: also collect the Workspaces of finished --kubesphere controller runs")
    return p


def _cluster_options(p: argparse.ArgumentParser) -> None:
    """Options of the kube and kind backends (docs/scenarios.md "Additions for real clusters")."""
    g = p.add_argument_group("kube / kind backends")
    g.add_argument("--kubeconfig", metavar="PATH", help="kubeconfig (default: $KUBECONFIG, then ~/.kube/config)")
    g.add_argument("--context", metavar="NAME", help="kubeconfig context (default: its current-context)")
    g.add_argument("--node-map", action="append", metavar="SCENARIO_NODE=CLUSTER_NODE,...",
                   help="which cluster node plays each scenario node (default: control-plane first, workers by name)")
    g.add_argument("--client", action="append", metavar="NAME=COMMAND",
                   help="command prefix that runs a probe on external host NAME (repeatable), e.g. "
                        "alice='docker exec -i c1'; flows from unmapped clients are reported skipped")
    g.add_argument("--client-no-pod-routes", action="append", metavar="NAME[,NAME...]",
                   help="these --client hosts have no route to pod IPs (default: they route to each node's pod "
                        "block); their client -> pod IP flows are skipped where the scenario says clientsRouteToPods: "
                        "true (and routed ones where it says false)")
    g.add_argument("--image-registry", metavar="HOST[/PATH]", help="pull every image from this mirror (air-gapped clusters)")
    g.add_argument("--profile", metavar="NAME", help="assert the behaviour profile when the cluster cannot show it")
    g.add_argument("--kubesphere", choices=KUBESPHERE_MODES, default=None,
                   help="kube: 'controller' = on a KubeSphere 3.3/3.4 cluster with network isolation on, create "
                        "Workspaces and NamespaceNetworkPolicies and let KubeSphere's controller write the policies, "
                        "diffed against netiso's compiler before probing (default: netiso writes them itself and "
                        "refuses KubeSphere clusters)")
    g.add_argument("--keep-cluster", action="store_true", help="kind: keep (and reuse) the clusters after the run")
    g.add_argument("--group", metavar="ENC/LB[/default|own]",
                   help="only the scenarios of one cluster group, e.g. vxlan/metallb; /default or /own: only those on "
                        "the group's default cluster, or only those whose kube-proxy/Calico settings need their own")
    g.add_argument("--dry-run", action="store_true", help="write the ordered plan to --out DIR; contact no cluster")
    g.add_argument("--out", metavar="DIR", help="where --dry-run writes NN-<kind>-<name>.yaml and plan.txt")


def _check_out_path(path: str | None, what: str) -> None:
    if path is None:
        return
    parent = Path(path).resolve().parent
    if not parent.is_dir():
        raise InputError(f"{what} {path}: directory {parent} does not exist; create it or choose another path")


def _write_json(path: str, doc: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _load(paths: Sequence[str]) -> list[Any]:
    from netiso.model.addressing import load_topologies

    return load_topologies(list(paths))


def cmd_explain(args: argparse.Namespace) -> int:
    from netiso.oracle.predict import predict_all
    from netiso.oracle.profile import DEFAULT_PROFILE
    from netiso.report.document import document, flow_json
    from netiso.report.table import explain_table

    _check_out_path(args.json, "--json")
    baseline = load_baseline(args.baseline) if args.baseline else None
    started = time.perf_counter()
    scenarios = []
    disagreements = 0
    for topo in _load(args.paths):
        preds = predict_all(topo)
        disagreements += sum(1 for p in preds if p.disagreements)
        print(explain_table(topo, preds, paths=args.show_paths))
        print()
        scenarios.append({"name": topo.name, "description": topo.scenario.description,
                          "encapsulation": topo.encapsulation, "loadBalancer": topo.load_balancer,
                          "warnings": topo.warnings, "flows": [flow_json(p) for p in preds]})
    flows = sum(len(s["flows"]) for s in scenarios)
    print(f"{len(scenarios)} scenarios, {flows} flows predicted ({DEFAULT_PROFILE.name}) "
          f"in {time.perf_counter() - started:.2f}s; {disagreements} disagree with the scenario's expect")
    doc = document("oracle", DEFAULT_PROFILE, scenarios)
    if baseline is not None:
        print(format_changes(baseline, doc, args.baseline))
    if args.json:
        _write_json(args.json, doc)
    if args.report:
        from netiso.report.markdown import write_reports

        write_reports(Path(args.report), doc)
    return EXIT_MISMATCH if disagreements else EXIT_OK


def cmd_render(args: argparse.Namespace) -> int:
    from netiso.model.render import render_objects, to_yaml

    docs = []
    for topo in _load(args.paths):
        docs.extend(render_objects(topo, backend=args.backend))
    sys.stdout.write(to_yaml(docs))
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from netiso.checking import run_check

    _check_out_path(args.json, "--json")
    if args.baseline:
        load_baseline(args.baseline)  # bad input is reported before any lab is built
    if args.jobs is not None and args.jobs < 1:
        raise InputError(f"--jobs {args.jobs}: must be at least 1")
    return run_check(args)


def cmd_minimal_config(args: argparse.Namespace) -> int:
    from netiso.minimizing import run_minimal_config

    _check_out_path(args.json, "--json")
    return run_minimal_config(args)


def cmd_lab(args: argparse.Namespace) -> int:
    from netiso.labkeeper import lab_command

    return lab_command(args)


def cmd_clean(args: argparse.Namespace) -> int:
    from netiso.checking import clean_command

    return clean_command(args)


COMMANDS = {"explain": cmd_explain, "render": cmd_render, "check": cmd_check,
            "minimal-config": cmd_minimal_config, "lab": cmd_lab, "clean": cmd_clean}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except InputError as exc:
        print(f"netiso: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except BrokenPipeError:
        return EXIT_OK
    except KeyboardInterrupt:
        # running labs have torn themselves down by now (finally blocks); say so, no traceback
        print("netiso: interrupted; labs and cluster objects that were being used have been torn down", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
