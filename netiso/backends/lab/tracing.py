"""Switching tracing on and off for one lab: the TRACE rules and the prober's trace readers.

What the lab realization calls around its probes when tracing is wanted (``LocalProbe.trace``):
:func:`start_tracing` after the rules are loaded and before the probes, :func:`stop_tracing`
before the namespaces go (a trace socket in the prober pins its namespace like a probe
socket). The prober is the probe agent's client (``netiso.probe.agent.ProbeAgent``, or an
adapter with the same two methods): it must offer ``trace_start({netns: node}, dscp)`` and
``trace_stop([netns])``; the lab does not import the probe layer.
"""

from __future__ import annotations

from typing import Any

from netiso.backends.lab.trace import TRACE_DSCP, install_trace_rules


def node_namespaces(lab: Any) -> dict[str, str]:
    """netns -> node name of every node of a lab that is up."""
    return {node.netns: name for name, node in lab.net.nodes.items()}


def start_tracing(lab: Any, prober: Any, dscp: int = TRACE_DSCP) -> list[str]:
    """TRACE rules in every node of ``lab`` (raw table only) and the prober reading their trace events."""
    for netns in node_namespaces(lab):
        install_trace_rules(lab.run, netns, lab.topo, dscp)
    return list(prober.trace_start(node_namespaces(lab), dscp))


def stop_tracing(lab: Any, prober: Any) -> list[str]:
    """Stop the prober's tracing of ``lab``'s nodes (before the namespaces are deleted)."""
    if lab.net is None:
        return []
    return list(prober.trace_stop(list(node_namespaces(lab))))
