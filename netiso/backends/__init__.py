"""Backends realize a resolved Topology and let probes run through it (lab, kube, kind).

The layers above speak to one interface (:mod:`netiso.backends.base`) and get a backend from
:func:`open_backend`; they never import a backend's own modules (tests/test_layers.py checks it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from netiso.backends.base import Backend, BackendOptions, ProberFactory

_BASE_NAMES = ("BACKEND_NAMES", "Backend", "BackendOptions", "BackendUnavailable", "ProberFactory", "Realization")


def __getattr__(name: str) -> Any:
    """The interface's names, imported on first use: the probe agent imports netiso.backends.trace_parse
    and must not pay for the oracle that netiso.backends.base brings along."""
    if name in _BASE_NAMES:
        from netiso.backends import base

        return getattr(base, name)
    raise AttributeError(f"module 'netiso.backends' has no attribute {name!r}")


def open_backend(name: str, options: BackendOptions | None = None, *, probers: ProberFactory | None = None) -> Backend:
    """The backend called ``name`` (``lab``, ``kube`` or ``kind``), not yet preflighted.

    ``probers`` makes local probers for the lab (the top layer passes ``netiso.probe``'s); the
    cluster backends probe through the Kubernetes API and ignore it.
    """
    from netiso.backends.base import BACKEND_NAMES, BackendOptions, BackendUnavailable

    options = options or BackendOptions()
    if name == "lab":
        from netiso.backends.lab.backend import LabBackend

        return LabBackend(options, probers)
    if name == "kube":
        from netiso.backends.kube.backend import KubeBackend

        return KubeBackend(options)
    if name == "kind":
        from netiso.backends.kind.backend import KindBackend

        return KindBackend(options)
    raise BackendUnavailable(f"unknown backend {name!r} (choose one of: {', '.join(BACKEND_NAMES)})")


__all__ = ["BACKEND_NAMES", "Backend", "BackendOptions", "BackendUnavailable", "Realization", "open_backend"]
