"""Traced and untraced checks on the lab for tests and benchmarks, through the product's own path.

``check_scenario_traced`` runs one scenario exactly as ``netiso check`` does (the lab backend behind
``netiso.backends``), with ``BackendOptions.trace`` on or off, so a comparison of the two measures
the product. ``serve`` is kept for tests that drive a bare :class:`~netiso.backends.lab.lab.Lab` and
a probe agent directly (one probe with a long timeout).
"""

from __future__ import annotations

import atexit
from typing import Any

from netiso.backends import Backend, BackendOptions, open_backend
from netiso.backends.lab.backend import LabRealization
from netiso.backends.lab.tracing import start_tracing, stop_tracing
from netiso.checking import ScenarioResult, check_many
from netiso.model.types import Topology
from netiso.oracle.predict import Prediction
from netiso.probe.prober import start_agent_prober

__all__ = ["check_scenario_traced", "lab_backend", "serve", "start_tracing", "stop_tracing"]

_BACKENDS: dict[bool, Backend] = {}


def lab_backend(trace: bool) -> Backend:
    """One lab backend per tracing choice for the whole process (its probe agents are reused)."""
    if trace not in _BACKENDS:
        _BACKENDS[trace] = open_backend("lab", BackendOptions(trace=trace), probers=start_agent_prober)
        atexit.register(_BACKENDS[trace].close)
    return _BACKENDS[trace]


def check_scenario_traced(topo: Topology, *, trace: bool = True) -> ScenarioResult:
    """Build ``topo`` on the lab, probe every flow (traced or not), judge, tear down."""
    (result,) = check_many([topo], jobs=1, backend=lab_backend(trace))
    return result


def serve(lab: Any, server: Any, preds: list[Prediction]) -> list[str]:
    """Echo servers in every workload pod (its ports) and in clients that flows send to, as the lab
    backend serves them (:meth:`~netiso.backends.lab.backend.LabRealization.serve`); returns the namespaces served."""
    realization = LabRealization(lab, server, server, trace=False)
    realization.serve(preds)
    return realization.served
