"""Switching tracing on and off for one lab: the TRACE rules and the prober's trace readers.

What the lab realization calls around its probes when tracing is wanted (``LocalProbe.trace``):
:func:`start_tracing` after the rules are loaded and before the probes, :func:`stop_tracing`
before the namespaces go (a trace socket in the prober pins its namespace like a probe
socket). The prober is the probe agent's client (``netiso.probe.agent.ProbeAgent``, or an
adapter with the same two methods): it must offer ``trace_start({netns: node}, dscp,
upstream_dscp=...)`` and ``trace_stop([netns])``; the lab does not import the probe layer.

A lab built with ``Lab(trace_rules=True)`` already has the TRACE rules (loaded with the node
rules, one ``iptables-restore`` per node instead of two) and the upstream marks; any other lab
gets them here: each ingress controller pod gets the mangle rule that marks nginx's upstream SYNs
(:func:`netiso.backends.lab.trace.upstream_mark_rules`), so that a probe whose backend leg a
rule drops is settled as soon as the trace shows it (``netiso.probe.tracer``).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from netiso.backends.lab.trace import TRACE_DSCP, UPSTREAM_DSCP, install_trace_rules, install_upstream_marks


def node_namespaces(lab: Any) -> dict[str, str]:
    """netns -> node name of every node of a lab that is up."""
    return {node.netns: name for name, node in lab.net.nodes.items()}


def controller_namespaces(lab: Any) -> list[str]:
    """The namespaces of the lab's running ingress controllers (their own pod namespaces, never a node's)."""
    nodes = set(node_namespaces(lab))
    return [c.netns for c in getattr(lab, "controllers", []) if c.netns and c.netns not in nodes]


def start_tracing(lab: Any, prober: Any, dscp: int = TRACE_DSCP, upstream_dscp: int = UPSTREAM_DSCP) -> list[str]:
    """TRACE rules in every node of ``lab`` (raw table only), the upstream-SYN mark in each running ingress
    controller's namespace (mangle table only), and the prober reading the nodes' trace events.

    A lab built with ``trace_rules`` and the default marks has both already: only the prober is started.
    """
    installs: list[tuple[Any, str]] = []
    if not (getattr(lab, "trace_rules", False) and dscp == TRACE_DSCP and upstream_dscp == UPSTREAM_DSCP):
        installs += [(lambda ns: install_trace_rules(lab.run, ns, lab.topo, dscp, upstream_dscp), ns)
                     for ns in node_namespaces(lab)]
        installs += [(lambda ns: install_upstream_marks(lab.run, ns, upstream_dscp), ns)
                     for ns in controller_namespaces(lab)]
    if len(installs) == 1:
        installs[0][0](installs[0][1])
    elif installs:
        with ThreadPoolExecutor(max_workers=4) as pool:
            for fut in [pool.submit(fn, ns) for fn, ns in installs]:
                fut.result()
    return list(prober.trace_start(node_namespaces(lab), dscp, upstream_dscp=upstream_dscp))


def stop_tracing(lab: Any, prober: Any) -> list[str]:
    """Stop the prober's tracing of ``lab``'s nodes (before the namespaces are deleted)."""
    if lab.net is None:
        return []
    return list(prober.trace_stop(list(node_namespaces(lab))))
