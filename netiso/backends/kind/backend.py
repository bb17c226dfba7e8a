"""``--backend kind``: a kind cluster per (encapsulation, load balancer), then exactly the kube backend.

What it does per group of scenarios (``configs.group_topologies``): render the group's kind
config, name the cluster by its config hash, reuse it if it exists or create it
(``cluster.py``), pre-load the add-ons' images (pulled by digest, named by tag in their manifests;
netiso's own pods name theirs by digest, which nodes pull themselves: ``images.preloaded``), install
the add-ons and wait for them
(``addons.py`` + ``install.py``; a reused cluster whose marker ConfigMap carries the same hash
only re-checks the waits), start one agnhost container per ``client:`` symbol on the ``kind``
network, and hand the cluster to a kube backend built with that cluster's kubeconfig, context,
node map (scenario node -> ``<cluster>-worker`` ...) and client command prefixes
(``docker exec -i netiso-<run>-<client>``). Preflight and realization are the kube backend's.

Clients and ``cluster.clientsRouteToPods``: the client containers are routed to every node's pod
block (``cluster.py``), the premise of a ``true`` scenario. A ``false`` scenario is handed, through
``BackendOptions.clients_for``, unrouted twins of its clients (started the first time such a
scenario of the group is realized, removed with the others), so its client -> pod flows are probed
instead of skipped, while ``true`` scenarios of the same cluster, side by side with ``--jobs``, keep
the routed containers. A ``--client NAME=COMMAND`` of the user's wins over both, with its
``--client-no-pod-routes``.

Why a factory seam (``kube_factory``): the kube backend is the part that speaks the Kubernetes
API; the kind backend's own job ends at the ``kind``/``docker`` processes and the add-on
install, and its tests run against stand-in executables with a stand-in kube backend.

Lifecycle guarantees: on any failure while a cluster is being prepared or a scenario realized,
``kind export logs`` writes ``reports/kind-logs/<cluster>/`` first; clusters are deleted at
:meth:`close` unless ``--keep-cluster``, and also when Ctrl-C (KeyboardInterrupt) interrupts the
preparation. Clients are removed in every case. A group whose scenarios have all been realized
and taken down is retired (its cluster deleted) as soon as another group needs a cluster, so
a full run holds one cluster at a time when scenarios come group by group.

A run killed hard (SIGKILL, OOM, a cancelled CI job) runs none of that: its client containers
are removed by the janitor (:meth:`KindBackend.clean`, ``leftovers.py``) at the start of the next
``netiso check --backend kind``, the suites' session, or ``netiso clean --backend kind``, when their
owner labels show the owning process gone. Clusters are never the janitor's (``leftovers.py`` says
what to do with one a killed run was creating).
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from netiso.backends.base import (
    NODE_TRACE_KEY,
    Backend,
    BackendOptions,
    BackendUnavailable,
    ClientCommands,
    Realization,
)
from netiso.backends.kind.addons import InstallPlan, install_plan
from netiso.backends.kind.cluster import ClientContainers, KindCluster, kind_subnet
from netiso.backends.kind.configs import (
    Group,
    cluster_name,
    config_hash,
    group_checksums,
    group_of,
    group_topologies,
    node_map,
    pod_subnet,
    render_config,
)
from netiso.backends.kind.images import preloaded
from netiso.backends.kind.leftovers import clean_clients
from netiso.backends.kind.tools import ToolError, Tools
from netiso.backends.kind.trace import NodeTracer
from netiso.model.types import Topology

KubeFactory = Callable[[BackendOptions], Backend]
Installer = Callable[[KindCluster, InstallPlan, str, Callable[[str], None]], None]

DEFAULT_WORKDIR = Path(".netiso") / "kind"
DEFAULT_LOGS = Path("reports") / "kind-logs"


def default_kube_factory(options: BackendOptions) -> Backend:
    from netiso.backends.kube.backend import KubeBackend

    return KubeBackend(options)


def default_installer(cluster: KindCluster, plan: InstallPlan, hash8: str, progress: Callable[[str], None], *,
                      interval: float = 2.0) -> None:
    """Install (or, on a marked kept cluster, only wait for) the add-ons; waits poll every ``interval`` s."""
    from netiso.backends.kind.install import DynamicApi, installed, run_plan

    api = DynamicApi(str(cluster.kubeconfig), cluster.context)
    skip = installed(api, hash8)
    if skip:
        progress(f"install: {cluster.name} already carries these add-ons (marker hash {hash8}): only waiting")
    run_plan(api, plan, progress, skip_apply=skip, interval=interval)


def default_images(registry: str | None) -> list[str]:
    """The kube backend's own images (agnhost workloads, ingress-nginx controller)."""
    from netiso.backends.kube.images import all_images

    return all_images(registry)


@dataclass
class _Session:
    group: Group
    cluster: KindCluster
    clients: ClientContainers
    kube: Backend | None = None
    nodes: dict[str, str] = field(default_factory=dict)  # scenario node -> kind node, as handed to the kube backend
    live: int = 0  # realizations not yet down
    realized: set[str] = field(default_factory=set)
    pod_subnet: str = ""  # the cluster's podSubnet (kind config): what unrouted twins sink


class _KindRealization(Realization):
    """The kube backend's realization, counted so an exhausted group can be retired.

    Its evidence is the kube backend's plus, with a ``tracer``, the kernel's rule trace of a
    re-probe read from the kind nodes the flow crosses (``trace.py``), which replaces the kube
    backend's "needs node access" reason.
    """

    def __init__(self, inner: Realization, on_down: Callable[[], None], on_failure: Callable[[], None],
                 tracer: NodeTracer | None = None) -> None:
        self.inner = inner
        self.tracer = tracer
        self.topo = inner.topo
        self.timings = inner.timings
        self._on_down = on_down
        self._on_failure = on_failure
        self._down = False

    def serve(self, preds: Sequence[Any]) -> None:
        try:
            self.inner.serve(preds)
        except Exception:
            self._on_failure()
            raise

    def probe(self, preds: Sequence[Any]) -> list[Any]:
        try:
            return self.inner.probe(preds)
        except Exception:
            self._on_failure()
            raise

    def evidence(self, pred: Any, obs: Any) -> dict[str, str]:
        out = dict(self.inner.evidence(pred, obs))
        if self.tracer is not None:
            out.pop(NODE_TRACE_KEY, None)
            try:
                out.update(self.tracer.trace(pred, lambda p: self.inner.probe([p])))
            except Exception as exc:  # evidence explains a mismatch; it never fails the run
                out[NODE_TRACE_KEY] = f"not traced: {exc}"
        return out

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    def down(self) -> None:
        try:
            self.inner.down()
        finally:
            if not self._down:
                self._down = True
                self._on_down()


class KindBackend(Backend):
    name = "kind"
    default_jobs = 1

    def __init__(
        self,
        options: BackendOptions | None = None,
        *,
        kube_factory: KubeFactory | None = None,
        installer: Installer | None = None,
        tools: Tools | None = None,
        images: Callable[[str | None], list[str]] | None = None,
        workdir: Path | None = None,
        logs_dir: Path | None = None,
        run_id: str | None = None,
    ) -> None:
        self.options = options or BackendOptions()
        self.tools = tools or Tools(progress=self.options.progress)
        if self.tools.progress is None:
            self.tools.progress = self.options.progress
        self.kube_factory = kube_factory or default_kube_factory
        self.installer = installer or default_installer
        self.images = images or default_images
        self.workdir = workdir or DEFAULT_WORKDIR
        self.logs_dir = logs_dir or DEFAULT_LOGS
        self.run_id = run_id or "nx" + secrets.token_hex(3)
        self._groups: dict[tuple[str, ...], Group] = {}
        self._sessions: dict[tuple[str, ...], _Session] = {}
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ Backend

    def preflight(self, topos: Sequence[Topology]) -> None:
        """kind and a running Docker daemon; the scenarios grouped by cluster. Creates nothing."""
        self.tools.require()
        try:
            for group in group_topologies(topos):
                self._groups[group.key] = group
        except ValueError as exc:
            raise BackendUnavailable(f"kind: {exc}") from None

    def realize(self, topo: Topology) -> Realization:
        key = group_of(topo)
        with self._lock:
            self._retire_finished(keep=key)
            session = self._sessions.get(key) or self._open(key, topo)
            session.live += 1
            session.realized.add(topo.name)
        try:
            assert session.kube is not None
            self._start_twins(session, topo)
            inner = session.kube.realize(topo)
            self._route_clients(session, inner)
        except Exception:
            session.cluster.export_logs(self.logs_dir)
            self._release(session)
            raise
        except BaseException:
            self._release(session)
            raise
        return _KindRealization(
            inner, lambda: self._release(session), lambda: session.cluster.export_logs(self.logs_dir),
            NodeTracer(self.tools, self._node_names(session, inner)),
        )

    def _start_twins(self, session: _Session, topo: Topology) -> None:
        """A ``clientsRouteToPods: false`` scenario's unrouted twins (clients the user did not map),
        started once per session; a failure is the environment's (exit 2)."""
        if topo.scenario.cluster.clientsRouteToPods:
            return
        wanted = [c for c in topo.clients if c not in self.options.clients]
        with self._lock:  # one docker run per twin even when scenarios are realized side by side
            missing = [c for c in wanted if c not in session.clients.unrouted]
            if not missing:
                return
            try:
                self.tools.timed(f"clients: unrouted twins of {', '.join(missing)}",
                                 lambda: session.clients.start(missing, routed=False))
                session.clients.sink_pod_subnet(missing, session.pod_subnet)
            except ToolError as exc:
                raise BackendUnavailable(str(exc)) from None

    def _clients_of(self, session: _Session, topo: Topology) -> ClientCommands:
        """What the kube backend runs ``topo``'s client flows from (``BackendOptions.clients_for``):
        the routed containers, or for ``clientsRouteToPods: false`` the twins; ``--client`` wins."""
        user = self.options.clients
        routed = {**session.clients.commands(), **user}
        declared = tuple(self.options.clients_without_pod_routes)
        if topo.scenario.cluster.clientsRouteToPods:
            return ClientCommands(routed, declared)
        with self._lock:
            twins = {c: cmd for c, cmd in session.clients.unrouted_commands(list(topo.clients)).items() if c not in user}
        return ClientCommands({**routed, **twins}, tuple(dict.fromkeys([*twins, *declared])))

    def _route_clients(self, session: _Session, inner: Realization) -> None:
        """The clients' routes to each node's discovered pod block (ClientContainers.route_to_pods),
        for a scenario whose clients route to pods (a ``false`` one runs from twins, never routed);
        a failure takes the realization down and is the environment's (exit 2)."""
        if not inner.topo.scenario.cluster.clientsRouteToPods:
            return
        routes = [(n.block, n.ip) for n in inner.topo.nodes.values() if n.block]
        try:
            session.clients.route_to_pods(list(inner.topo.clients), routes)
        except ToolError as exc:
            inner.down()
            raise BackendUnavailable(str(exc)) from None

    def _node_names(self, session: _Session, inner: Realization) -> dict[str, str]:
        """Scenario node -> kind node container (what the kube backend was handed; its own map wins)."""
        names = dict(session.nodes)
        names.update(getattr(inner, "node_map", None) or {})
        return names

    def clean(self) -> list[str]:
        """Remove the client containers of runs killed before they could (``leftovers.clean_clients``):
        owner gone on this boot and PID namespace; never a live run's, never an unlabelled container,
        never a cluster. One line per container removed; a docker failure is BackendUnavailable (exit 2)."""
        return clean_clients(self.tools)

    def plan(self, topos: Sequence[Topology], out: Path) -> list[Path]:
        """``--dry-run``: the ordered plan of all six clusters (see ``plan.py``); no tool is run."""
        from netiso.backends.kind.plan import write_kind_plans

        return write_kind_plans(topos, out, self.options, run_id=self.run_id)

    def close(self) -> None:
        with self._lock:
            for key in list(self._sessions):
                self._end(self._sessions.pop(key))

    # ------------------------------------------------------------------ sessions

    def _group_for(self, key: tuple[str, ...], topo: Topology) -> Group:
        group = self._groups.get(key)
        if group is None or topo.name not in {t.name for t in group.topos}:
            known = group.topos if group else ()
            group = Group(key[0], key[1], (*known, topo), topo.scenario.cluster.kubeProxy)
            self._groups[key] = group
        return group

    def _open(self, key: tuple[str, ...], topo: Topology) -> _Session:
        group = self._group_for(key, topo)
        say = self.tools.say
        rendered = render_config(group.encapsulation, group.workers, self.options.image_registry)
        sums = group_checksums(group)
        name = cluster_name(group.encapsulation, group.load_balancer, rendered, sums)
        hash8 = config_hash(rendered, sums)
        cluster = KindCluster(name, rendered, self.workdir, self.tools)
        from netiso.backends.kube.images import image

        clients = ClientContainers(self.run_id, image("agnhost", self.options.image_registry), self.tools)
        session = _Session(group, cluster, clients, pod_subnet=pod_subnet(rendered))
        say(f"kind: group {group.label}: cluster {name} for {len(group.topos)} scenario(s)")
        try:
            created = cluster.ensure()
            subnet = kind_subnet(self.tools)
            plan = install_plan(
                group.encapsulation,
                group.load_balancer,
                pod_subnet(rendered),
                subnet,
                cluster=name,
                config_hash=hash8,
                image_registry=self.options.image_registry,
                kube_proxy=group.kube_proxy,
                endpoint_to_host=group.endpoint_to_host,
                nat_outgoing=group.nat_outgoing,
            )
            if created:
                refs = preloaded(plan.images, self.images(self.options.image_registry))
                self._record_images(name, cluster.load_images(refs))
            self.tools.timed(f"install: add-ons of {name}", lambda: self.installer(cluster, plan, hash8, say))
            self.tools.timed(f"clients: {', '.join(group.clients) or 'none'}", lambda: clients.start(group.clients))
            session.nodes = dict(self.options.node_map or node_map(group.scenario_nodes, name, group.workers))
            kube_options = replace(
                self.options,
                kubeconfig=str(cluster.kubeconfig),
                context=cluster.context,
                node_map=session.nodes,
                clients={**clients.commands(), **self.options.clients},
                clients_for=lambda topo: self._clients_of(session, topo),
            )
            session.kube = self.kube_factory(kube_options)
            session.kube.preflight(group.topos)
        except KeyboardInterrupt:
            say(f"kind: interrupted while preparing {name}")
            self._end(session)
            raise
        except Exception as exc:
            if cluster.created or self._cluster_listed(cluster):
                cluster.export_logs(self.logs_dir)
            self._end(session)
            if isinstance(exc, ToolError):
                raise BackendUnavailable(str(exc)) from None
            raise
        self._sessions[key] = session
        return session

    def _record_images(self, name: str, digests: dict[str, list[str]]) -> None:
        """``reports/kind-images-<cluster>.json``: every pre-loaded image and the digests docker pulled."""
        path = self.logs_dir.parent / f"kind-images-{name}.json"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"cluster": name, "images": digests}, indent=2) + "\n")
        except OSError as exc:
            self.tools.say(f"images: could not record digests in {path}: {exc}")

    def _cluster_listed(self, cluster: KindCluster) -> bool:
        try:
            return cluster.exists()
        except Exception:  # the tool itself failing: nothing to export from
            return False

    def _release(self, session: _Session) -> None:
        with self._lock:
            session.live = max(0, session.live - 1)

    def _retire_finished(self, keep: tuple[str, ...]) -> None:
        """End the sessions of other groups whose scenarios were all realized and are all down."""
        for key, session in list(self._sessions.items()):
            if key == keep or session.live:
                continue
            wanted = {t.name for t in self._groups.get(key, session.group).topos}
            if wanted <= session.realized:
                self._end(self._sessions.pop(key))

    def _end(self, session: _Session) -> None:
        """Close the kube backend, remove the clients, delete the cluster unless kept."""
        errors: list[str] = []
        if session.kube is not None:
            try:
                session.kube.close()
            except Exception as exc:
                errors.append(f"kube backend: {exc}")
        try:
            session.clients.stop()
        except Exception as exc:
            errors.append(f"clients: {exc}")
        if self.options.keep_cluster:
            self.tools.say(
                f"kind: keeping cluster {session.cluster.name} (--keep-cluster); "
                f"kubeconfig {session.cluster.kubeconfig}, context {session.cluster.context}"
            )
        elif session.cluster.created or self._cluster_listed(session.cluster):
            try:
                session.cluster.delete()
            except Exception as exc:
                errors.append(f"delete: {exc}")
        for line in errors:
            self.tools.say(f"kind: cleanup of {session.cluster.name}: {line}")
