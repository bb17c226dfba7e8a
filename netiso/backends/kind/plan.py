"""``netiso check --backend kind --dry-run --out DIR``: every cluster's full plan, no tool run.

For each of the six (encapsulation, load balancer) clusters, ``DIR/kind-<enc>-<lb>/`` gets:

* ``kind-config.yaml``: the rendered config ``kind create cluster`` would get;
* ``NN-<kind>-<name>.yaml``: every add-on object in apply order (the vendored manifests after
  their overlays, then the generated MetalLB pool / OpenELB Eip and netiso's marker);
* ``expected-ippool-default-ipv4-ippool.yaml``: the IPPool calico-node will create (what the
  install waits for and the kube backend's preflight checks), not applied;
* ``plan.txt``: every ``kind``/``docker`` command and API step in order, from the same argv
  builders the real run uses (``cluster.py``);
* ``scenarios/<scenario>/``: the kube backend's own dry-run of each scenario of the group
  (``netiso.backends.kube.plan.write_plan``), with this cluster's node names and client commands
  (a ``cluster.clientsRouteToPods: false`` scenario's are its unrouted twins', ``cluster.py``).

What a dry run cannot know is said in ``plan.txt``: the ``kind`` network's subnet (assumed
``172.18.0.0/16``, docker's usual choice; the real run reads ``docker network inspect kind``)
and the addresses the cluster assigns.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Sequence
from pathlib import Path

import yaml

from netiso.backends.base import BackendOptions
from netiso.backends.kind.addons import (
    DEFAULT_KIND_SUBNET,
    FIELD_MANAGER,
    Apply,
    KubeProxySettings,
    dump_documents,
    expected_ippool,
    install_plan,
    lb_range,
    object_file_name,
)
from netiso.backends.kind.backend import DEFAULT_LOGS, DEFAULT_WORKDIR
from netiso.backends.kind.cluster import (
    ClientContainers,
    KindCluster,
    network_inspect_argv,
    pull_argv,
    repo_digests_argv,
    tag_argv,
)
from netiso.backends.kind.configs import (
    Group,
    all_groups,
    cluster_name,
    config_hash,
    group_checksums,
    group_topologies,
    node_map,
    pod_subnet,
    render_config,
)
from netiso.backends.kind.images import load_reference, named_by_digest, preloaded
from netiso.backends.kind.leftovers import PLANNED_OWNER, ps_argv
from netiso.backends.kind.tools import Tools
from netiso.model.types import Topology

_NN_FILE = re.compile(r"^\d{2,}-[a-z0-9]+-.+\.yaml$")


def _cmd(argv: Sequence[str]) -> str:
    return shlex.join(argv)


def plan_groups(topos: Sequence[Topology]) -> list[Group]:
    """All six groups, each carrying the given scenarios that run on it, then one group per
    non-default ``cluster.kubeProxy`` (its own cluster, ``kind-<enc>-<lb>-kp-<hash6>/``)."""
    given = group_topologies(topos)
    by_key = {g.key: g for g in given}
    return [by_key.get(g.key, g) for g in all_groups()] + [g for g in given if len(g.key) > 2]


def write_group_plan(group: Group, out: Path, options: BackendOptions, run_id: str) -> list[Path]:
    """Write one cluster's plan under ``out/kind-<enc>-<lb>/``; returns the files written."""
    suffix = f"-kp-{hashlib.sha256(group.key[2].encode()).hexdigest()[:6]}" if len(group.key) > 2 else ""
    directory = out / f"kind-{group.encapsulation}-{group.load_balancer}{suffix}"
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.iterdir():
        if old.is_file() and _NN_FILE.match(old.name):
            old.unlink()
    registry = options.image_registry
    rendered = render_config(group.encapsulation, group.workers, registry)
    sums = group_checksums(group)
    name = cluster_name(group.encapsulation, group.load_balancer, rendered, sums)
    hash8 = config_hash(rendered, sums)
    subnet = pod_subnet(rendered)
    plan = install_plan(
        group.encapsulation, group.load_balancer, subnet, DEFAULT_KIND_SUBNET, name, hash8, image_registry=registry,
        kube_proxy=group.kube_proxy, endpoint_to_host=group.endpoint_to_host, nat_outgoing=group.nat_outgoing,
    )
    cluster = KindCluster(name, rendered, DEFAULT_WORKDIR, Tools())
    from netiso.backends.kube.images import all_images, image

    clients = ClientContainers(run_id, image("agnhost", registry), Tools(), owner=dict(PLANNED_OWNER))
    written: list[Path] = []

    def write(file: str, text: str) -> None:
        (directory / file).write_text(text)
        written.append(directory / file)

    write("kind-config.yaml", rendered)
    docs = plan.documents()
    width = max(2, len(str(len(docs))))
    files: list[str] = []
    for i, doc in enumerate(docs, start=1):
        files.append(object_file_name(i, doc, width))
        write(files[-1], dump_documents([doc]))
    pool = expected_ippool(group.encapsulation, subnet, group.nat_outgoing)
    write("expected-ippool-default-ipv4-ippool.yaml", yaml.safe_dump(pool, sort_keys=False))

    lines: list[str] = [
        f"# kind plan: group {group.label}, cluster {name} (config hash {hash8})",
        f"# scenarios: {', '.join(t.name for t in group.topos) or 'none given (add-ons only)'}",
        "# dry run: no kind, docker or API server was contacted",
        *(f"# {line}" for line in _estimate_lines(group, len(preloaded(plan.images, all_images(registry))))),
        "",
    ]
    n = 0

    def step(text: str) -> None:
        nonlocal n
        n += 1
        lines.append(f"{n:3d}. {text}")

    step(f"{_cmd(['docker', 'version', '--format', '{{.Server.Version}}'])}    # the Docker daemon answers")
    step(f"{_cmd(['kind', 'version'])}")
    step(f"{_cmd(ps_argv())}    # the janitor: client containers of runs killed hard (owner gone, same boot id and "
         "PID namespace) removed together, never a live run's, never a cluster")
    step(f"{_cmd(['kind', 'get', 'clusters'])}    # {name} listed: reuse it (same name = same config hash)")
    step(f"{_cmd(cluster.create_argv())}    # kind-config.yaml, when not listed")
    step(f"{_cmd(cluster.export_kubeconfig_argv())}    # instead, when reused")
    step(
        f"{_cmd(network_inspect_argv())}    # IPv4 subnet; the dry run assumes {DEFAULT_KIND_SUBNET} "
        f"-> load-balancer range {lb_range(DEFAULT_KIND_SUBNET)}"
    )
    for ref in preloaded(plan.images, all_images(registry)):
        target = load_reference(ref)
        pull = _cmd(pull_argv(ref))
        tag = f"; {_cmd(tag_argv(ref, target))}" if target != ref else ""
        inspect = _cmd(repo_digests_argv(ref))
        step(f"{pull}{tag}; {_cmd(cluster.load_argv(target))}; {inspect}    # new cluster only")
    lines.append(f"     (the pulled digests are recorded in {DEFAULT_LOGS.parent / f'kind-images-{name}.json'})")
    lines.append(f"     (netiso's own pods name {', '.join(r for r in all_images(registry) if named_by_digest(r))} by "
                 "digest: each node's containerd pulls and verifies them itself, never from a loaded copy (kind "
                 "#2734), so they are not loaded for those pods)")
    lines.append(
        "     (a `content digest ... not found` from kind load: docker image save --platform linux/<arch> -o ARCHIVE "
        f"TAG; kind load image-archive ARCHIVE --name {name})"
    )
    index = 0
    for s in plan.steps:
        if isinstance(s, Apply):
            first, last = files[index], files[index + len(s.documents) - 1]
            index += len(s.documents)
            retry = f", retried while its admission webhook refuses (at most {s.until_admitted:.0f}s)" if s.until_admitted else ""
            step(
                f"API: server-side apply (field manager {FIELD_MANAGER}) {first} .. {last}: {s.name} [{s.source}]{retry}"
                "    # skipped when the marker ConfigMap kube-system/netiso-kind carries hash " + hash8
            )
        else:
            step(f"API: {'' if isinstance(s, KubeProxySettings) else 'wait for '}{s.describe()} "
                 f"(at most {s.timeout:.0f}s)")
    for note in plan.notes:
        lines.append(f"     note: {note}")
    if group.clients or unrouted_twins(group, options):
        lines.append(f"     (client containers carry their owner for the janitor: {', '.join(PLANNED_OWNER)} = this "
                     "process's pid, its start time, the host's boot id and its PID namespace)")
    for client in group.clients:
        step(f"{_cmd(clients.run_argv(client))}    # external client:{client}")
        step(_cmd(clients.inspect_argv(client)))
    twins = unrouted_twins(group, options)
    for client, users in twins.items():
        step(f"{_cmd(clients.run_argv(client, routed=False))}    # unrouted twin of client:{client} for the "
             f"clientsRouteToPods: false scenario(s) {', '.join(users)}: started when the first is realized, "
             "never routed to a pod")
        step(_cmd(clients.inspect_argv(client, routed=False)))
        for argv in clients.sink_argvs(client, subnet):
            step(f"{_cmd(argv)}    # the pod subnet into a port-less bridge: probes to pods time out, nothing "
                 "leaves the host")
    routed_users = [t.name for t in group.topos if t.scenario.cluster.clientsRouteToPods and t.clients]
    for client in dict.fromkeys(c for t in group.topos if t.scenario.cluster.clientsRouteToPods for c in t.clients):
        step(f"{_cmd(clients.route_argv(client, 'BLOCK', 'NODE_IP'))}    # per node: its discovered pod block via "
             f"its InternalIP, when {', '.join(routed_users)} (clientsRouteToPods: true) is realized")
    mapping = options.node_map or node_map(group.scenario_nodes, name, group.workers)
    commands = {**{c: clients.command(c) for c in group.clients}, **options.clients}
    unrouted = {**commands, **{c: clients.command(c, routed=False) for c in twins}}
    step(
        f"kube backend on context {cluster.context} (kubeconfig {cluster.kubeconfig}), node map "
        f"{', '.join(f'{k}={v}' for k, v in mapping.items())}; clients "
        f"{', '.join(f'{k}={v!r}' for k, v in commands.items()) or 'none'}"
        + (f"; for clientsRouteToPods: false scenarios {', '.join(f'{k}={v!r}' for k, v in unrouted.items())}"
           if twins else "")
    )
    scenario_dirs = _scenario_plans(group, directory / "scenarios", mapping, commands, options, run_id, unrouted)
    for d in scenario_dirs:
        lines.append(f"     scenario {d.name}: {d.relative_to(directory)}/plan.txt")
        written.extend(sorted(p for p in d.iterdir() if p.is_file()))
    step(f"on any failure first: {_cmd(cluster.export_logs_argv(DEFAULT_LOGS / name))}")
    if group.clients:
        step(_cmd(["docker", "rm", "-f", *(clients.container(c) for c in group.clients),
                   *(clients.container(c, routed=False) for c in twins)]))
    step(f"{_cmd(cluster.delete_argv())}    # unless --keep-cluster; also on Ctrl-C")
    write("plan.txt", "\n".join(lines) + "\n")
    return written


def unrouted_twins(group: Group, options: BackendOptions) -> dict[str, list[str]]:
    """Client -> the ``clientsRouteToPods: false`` scenarios of ``group`` that run it from its unrouted
    twin (the backend's ``_start_twins``: a ``--client`` of the user's gets none)."""
    out: dict[str, list[str]] = {}
    for topo in group.topos:
        if not topo.scenario.cluster.clientsRouteToPods:
            for client in topo.clients:
                if client not in options.clients:
                    out.setdefault(client, []).append(topo.name)
    return out


def _estimate_lines(group: Group, images: int) -> list[str]:
    """The cell's estimated wall time for this plan's scenarios and their minimal-config proofs (estimate.py)."""
    from netiso.backends.kind.estimate import estimate_cell, proof_topologies

    topos = list(group.topos)
    est = estimate_cell(images, {"scenarios": topos, "minimal-config proofs": proof_topologies(topos)})
    return [*est.lines(), "(planning figures, not measurements: netiso/backends/kind/estimate.py says what each "
                          "step is assumed to cost; the workflow runs the proofs in a job of their own)"]


def _scenario_plans(
    group: Group,
    out: Path,
    mapping: dict[str, str],
    commands: dict[str, str],
    options: BackendOptions,
    run_id: str,
    unrouted: dict[str, str],
) -> list[Path]:
    """The kube backend's per-scenario dry-run; ``clientsRouteToPods: false`` scenarios with the
    ``unrouted`` client commands (their twins).

    No pool or Eip is named: the group's cluster has exactly one (MetalLB's ``netiso-pool``, the
    default Eip ``netiso-eip``), as on the live run. Its range is known (the dry run assumes
    docker's usual kind subnet), and so are the node names, so each LoadBalancer Service's VIP is
    chosen here as the run chooses it; kubeadm labels the control-plane of a multi-node cluster
    ``exclude-from-external-load-balancers``.
    """
    if not group.topos:
        return []
    from netiso.backends.kube.naming import RunNames
    from netiso.backends.kube.plan import write_plan

    names = RunNames(run=run_id)
    written: dict[int, Path] = {}  # by id(topo): the group's order, duplicates of a name kept
    for routes in (True, False):
        topos = [t for t in group.topos if t.scenario.cluster.clientsRouteToPods is routes]
        if not topos:
            continue
        dirs = write_plan(
            topos,
            out,
            lambda _t: names,
            mapping,
            registry=options.image_registry,
            clients=commands if routes else unrouted,
            lb_pool=[lb_range(DEFAULT_KIND_SUBNET)],
            lb_excluded={n: c.endswith("-control-plane") and group.workers > 0 for n, c in mapping.items()},
        )
        written.update(zip((id(t) for t in topos), dirs, strict=True))
    return [written[id(t)] for t in group.topos]


def write_kind_plans(topos: Sequence[Topology], out: Path, options: BackendOptions, run_id: str) -> list[Path]:
    """The plans of all six clusters (scenarios in their groups); returns every file written."""
    out = Path(out)
    written: list[Path] = []
    for group in plan_groups(topos):
        written.extend(write_group_plan(group, out, options, run_id))
    return written
