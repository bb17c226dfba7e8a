"""The one interface every backend implements (lab, kube, kind).

``checking`` (netiso check), ``minimizing`` (minimal-config proofs), the lab keeper and the pytest
fixtures speak only to this module, so a new backend never touches them. A run goes:

1. ``backend = open_backend(name, options, probers)`` (``netiso.backends``) and
   ``backend.preflight(topos)``: every reason the backend cannot run these scenarios is found
   here, before anything is created, and raised as :class:`BackendUnavailable` (exit 2);
2. per scenario ``realization = backend.realize(topo)``: builds the scenario and returns a
   handle whose ``topo`` is the topology *as realized* (on the lab the address plan itself; on a
   cluster the addresses, node names and VIPs the cluster assigned), so the oracle predicts
   for what was built and addresses map back to the scenario's symbols through
   ``netiso.model.addressing``;
3. ``realization.serve(preds)`` starts echo endpoints, ``realization.probe(preds)`` fires one
   probe per flow and returns backend-independent :class:`~netiso.oracle.judge.Observation`s
   (verdict, source address seen, answering pod, X-Forwarded-For, elected node), and
   ``realization.evidence_many(...)`` gathers what explains the mismatches, at a bounded cost
   (the first ``EVIDENCE_LIMIT``; by default :meth:`Realization.evidence` for each);
4. ``realization.down()`` tears the scenario down (also on Ctrl-C), ``backend.close()`` ends
   the session.

Why probers are injected: the layer order is model -> oracle -> backends -> probe -> top, and
the lab fires its probes with ``netiso.probe`` (an agent process in the lab's namespaces). The
top layer hands the lab a :class:`ProberFactory` instead of the lab importing the probe layer;
cluster backends probe through the Kubernetes exec API and ignore it.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from netiso.model.types import Topology
from netiso.oracle.judge import Observation
from netiso.oracle.predict import Prediction

BACKEND_NAMES: tuple[str, ...] = ("lab", "kube", "kind")
KUBESPHERE_MODES: tuple[str, ...] = ("controller",)  # --kubesphere MODE (BackendOptions.kubesphere)
EVIDENCE_LIMIT = 50  # mismatches per scenario that get evidence; the rest get EVIDENCE_LEFT_OUT_KEY
EVIDENCE_LEFT_OUT_KEY = "not gathered"


def left_out(total: int, limit: int) -> list[dict[str, str]]:
    """The evidence of the mismatches past ``limit``: one line saying so.

    >>> left_out(3, 2)
    [{'not gathered': '1 more mismatch past the first 2 of this scenario: evidence is gathered for those only'}]
    """
    more = total - limit
    if more <= 0:
        return []
    note = (f"{more} more mismatch{'es' if more > 1 else ''} past the first {limit} of this scenario: "
            "evidence is gathered for those only")
    return [{EVIDENCE_LEFT_OUT_KEY: note} for _ in range(more)]


NODE_TRACE_KEY = "node trace"  # evidence key of a node's rule trace, or of the reason there is none (kube, kind)


class BackendUnavailable(Exception):
    """The backend cannot run (missing tool, unreachable cluster, refused preflight): exit 2.

    Raised before anything is created, or after what was created has been removed again: the
    message is all the user needs (what is wrong, and the fix).
    """


@dataclass(frozen=True)
class LocalProbe:
    """One probe the lab asks its prober to fire from a network namespace (see ProbeRequest)."""

    id: str
    netns: str
    dst_ip: str
    dst_port: int
    protocol: str = "TCP"
    host: str | None = None
    timeout: float = 1.0
    connect_timeout: float | None = None
    trace: bool = False  # trace the first packet (the prober runs monitors in the node namespaces)
    upstreams: tuple[str, ...] = ()  # a proxy's connections this probe causes, "SRC>DST:PORT" (see ProbeRequest)
    retries: int = 0  # tries more after a timeout no rule decided (see ProbeRequest.retries)


@dataclass(frozen=True)
class LocalResult:
    """What one :class:`LocalProbe` saw (the probe layer's ProbeResult, in backend vocabulary)."""

    id: str
    verdict: str
    client_ip: str | None = None
    hostname: str | None = None
    forwarded_for: str | None = None
    ms: float = 0.0
    detail: str = ""
    path: list[dict[str, Any]] = field(default_factory=list)  # trace hops of the first packet
    decided_by: str | None = None  # the deciding rule (netiso.oracle.decided vocabulary)
    tries: int = 1  # probes fired for this verdict (see LocalProbe.retries)
    status: int | None = None  # the HTTP status (TCP)
    local_endpoints: int | None = None  # a kube-proxy health answer's localEndpoints


class Prober(Protocol):
    """Echo servers and probes in local network namespaces (implemented by ``netiso.probe``)."""

    def serve(self, netns: str, port: int, protocol: str, hostname: str,
              health: dict[str, Any] | None = None) -> None: ...  # health: kube-proxy's health answer

    def probe(self, probes: Sequence[LocalProbe]) -> list[LocalResult]: ...

    def release(self, netns: str) -> None: ...

    def trace_start(self, namespaces: dict[str, str], dscp: int | None = None, *,
                    upstream_dscp: int | None = None) -> list[str]: ...

    def trace_stop(self, namespaces: list[str] | None = None) -> list[str]: ...

    def stop(self) -> None: ...


ProberFactory = Callable[[], Prober]


@dataclass(frozen=True)
class ClientCommands:
    """The external clients one scenario's flows run from on a cluster backend.

    ``commands``: client name -> command prefix (``--client NAME=COMMAND``); ``without_pod_routes``:
    those whose host has no route to pod IPs. Per scenario because kind gives a
    ``cluster.clientsRouteToPods: false`` scenario other containers (unrouted twins) than the
    routed ones a ``true`` scenario of the same cluster uses at the same time.
    """

    commands: dict[str, str]
    without_pod_routes: tuple[str, ...] = ()


@dataclass
class BackendOptions:
    """Everything the command line / pytest options say about the backend (one place for both).

    Field names follow the CLI flags (``--kubeconfig`` -> ``kubeconfig``); the lab reads none of
    the cluster fields.
    """

    jobs: int | None = None  # scenarios realized side by side (None: the backend's default)
    evidence: bool = True  # gather evidence for mismatching flows
    trace: bool = True  # lab: trace every probe's first packet (observed.path/decidedBy, drops settled at once)
    kubeconfig: str | None = None
    context: str | None = None
    node_map: dict[str, str] = field(default_factory=dict)  # scenario node -> cluster node
    clients: dict[str, str] = field(default_factory=dict)  # client name -> command prefix
    # --client-no-pod-routes: mapped clients whose host has no route to pod IPs (default: it has)
    clients_without_pod_routes: tuple[str, ...] = ()
    # kind: the clients of each scenario (its unrouted twins for clientsRouteToPods: false); None: the two above
    clients_for: Callable[[Topology], ClientCommands] | None = None
    image_registry: str | None = None
    keep_cluster: bool = False  # kind
    dry_run: bool = False
    out: str | None = None  # --dry-run output directory
    profile: str | None = None
    # kube: --kubesphere controller = create KubeSphere's objects and let its controller write the policies
    # (None: netiso writes them itself and refuses a KubeSphere cluster)
    kubesphere: str | None = None
    progress: Callable[[str], None] | None = None  # one line per milestone (cluster up, installs, waits)

    def clients_of(self, topo: Topology) -> ClientCommands:
        """The clients ``topo``'s flows run from: ``clients_for``'s answer, else the command line's."""
        if self.clients_for is not None:
            return self.clients_for(topo)
        return ClientCommands(dict(self.clients), tuple(self.clients_without_pod_routes))


class Realization(abc.ABC):
    """One scenario built on a backend, until :meth:`down`."""

    topo: Topology  # the topology as realized (predictions are made for this)
    timings: dict[str, float]

    @abc.abstractmethod
    def serve(self, preds: Sequence[Prediction]) -> None:
        """Echo endpoints in every workload pod (its ports) and in clients that egress flows reach."""

    @abc.abstractmethod
    def probe(self, preds: Sequence[Prediction]) -> list[Observation]:
        """One observation per prediction, in order (``skipped`` with the reason when unprobeable)."""

    def evidence(self, pred: Prediction, obs: Observation) -> dict[str, str]:
        """What explains a mismatch of ``pred`` (rules, routes, a capture of a retry...)."""
        return {}

    def evidence_many(self, items: Sequence[tuple[Prediction, Observation]],
                      limit: int = EVIDENCE_LIMIT) -> list[dict[str, str]]:
        """Evidence for many mismatches at a bounded cost, one dict per item in order.

        The first ``limit`` get :meth:`evidence`; the rest say how many were left out (thousands of
        mismatches are one broken thing seen thousands of times, and evidence per flow made a
        48-node run spend six minutes on 82 flows). Backends override it to share per-node work.
        """
        return [self.evidence(p, o) for p, o in items[:limit]] + left_out(len(items), limit)

    def describe(self) -> dict[str, Any]:
        """Where each symbol lives (for ``netiso lab up`` and debugging): JSON-able."""
        return {}

    def findings(self) -> dict[str, Any]:
        """What the backend found about the scenario itself (not a flow), merged into the scenario's
        entry of the result document: JSON-able, keys documented in docs/scenarios.md (e.g. the kube
        backend's ``controllerDiff``). Checked after probing, before :meth:`down`."""
        return {}

    def finding_problems(self) -> list[str]:
        """One line per finding that fails the run (exit 1, like a mismatching flow): a component
        under test did something else than netiso predicts, even where no probed flow shows it."""
        return []

    @abc.abstractmethod
    def down(self) -> None:
        """Remove everything this realization created (idempotent)."""

    def __enter__(self) -> Realization:
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()


class Backend(abc.ABC):
    """A place scenarios run: the lab, an existing cluster, kind clusters."""

    name: str = ""
    default_jobs: int = 1

    def preflight(self, topos: Sequence[Topology]) -> None:  # noqa: B027 - optional hook
        """Raise :class:`BackendUnavailable` if any of ``topos`` cannot run here; creates nothing."""

    @abc.abstractmethod
    def realize(self, topo: Topology) -> Realization:
        """Build ``topo``; on failure remove what was built and raise."""

    def clean(self) -> list[str]:
        """Remove what crashed runs left (the janitor); returns one line per thing removed."""
        return []

    def plan(self, topos: Sequence[Topology], out_dir: Path) -> list[Path]:
        """``--dry-run``: write the ordered objects and steps into ``out_dir``; contacts nothing."""
        raise BackendUnavailable(f"--dry-run is not available for the {self.name} backend")

    def close(self) -> None:  # noqa: B027 - optional hook
        """End the session (probe agents, API connections)."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
