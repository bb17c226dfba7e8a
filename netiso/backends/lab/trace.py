"""Tracing the lab's probes through the real kernel: TRACE rules, and monitors for the record.

Why: a verdict can be right for the wrong reason, and a dropped probe otherwise costs its whole
timeout. iptables' ``TRACE`` target makes the kernel report every rule a packet meets
(reference-facts §H). The probe agent reads those reports from each node namespace over
netlink (``netiso.probe.tracer``), correlates them with its sockets and settles a probe the
moment a rule drops its first packet. ``xtables-monitor --trace`` prints the same reports as
text; :func:`start_file_monitors` runs it per node (registered with the run, ended by PID) for
evidence and recorded samples, read by ``netiso.backends.trace_parse``. It is not the agent's
reader because it looks every rule up again per event and, under a burst of probes, loses
events and exits ("No buffer space available"; measured here with 50 concurrent SYNs).

Only the probes' own packets are traced, and tracing changes no verdict and no source:

* probe sockets set a DSCP value (``IP_TOS``) that no other rule of the lab matches on (no
  Calico/kube-proxy rule, no routing rule looks at TOS); the echo servers, nginx and the ipip
  forwarder never set it;
* only a connection's first packet is selected (a TCP SYN; UDP datagrams, of which a probe
  sends at most two): conntrack runs *after* the raw table, so ``--ctstate NEW`` cannot be used
  there, and ``--syn`` is the equivalent for TCP;
* the rules live in the ``raw`` table, which neither kube-proxy nor the lab's Calico rules use,
  in ``PREROUTING`` (forwarded and delivered packets) and ``OUTPUT`` (host-network probes).
  TRACE is a non-terminal target: the packet continues exactly as without it.

Either merge :func:`trace_rules` into the node's restore document (``merge(calico, kube_proxy,
forward_tail, trace_rules(topo))``) or load it on its own with :func:`install_trace_rules` (a
restore document with only ``*raw`` replaces only the raw table).

The ingress controller's own connection to its backend is nginx's, not the probe's: its packets
carry no probe mark, so an ingress flow's observed path stays the client -> controller leg. Only
to settle early a probe whose *backend leg* a rule drops, :func:`upstream_mark_rules` sets a
second DSCP (:data:`UPSTREAM_DSCP`) on the SYNs nginx sends from the controller pod (a mangle
rule in the pod's own namespace, where no other rule lives; no lab rule matches on TOS either),
and the nodes trace SYNs with that mark too. The probe agent keeps those traces apart from the
probes' own (``netiso.probe.tracer``): they never enter a probe's path or ``decidedBy``.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from netiso.backends.lab.iptables import RuleSet, render_restore
from netiso.backends.trace_parse import TRACE_DSCP, tos_for
from netiso.model.types import Topology

__all__ = ["TRACE_DSCP", "UPSTREAM_DSCP", "install_trace_rules", "install_upstream_marks", "start_file_monitors",
           "stop_monitors", "tos_for", "trace_rules", "upstream_mark_rules"]

UPSTREAM_DSCP = TRACE_DSCP + 1  # 46 (EF): set on ingress controllers' upstream SYNs only, matched by no lab rule

MONITOR_TOOL = "xtables-monitor"
MONITOR_ARGV = ("stdbuf", "-oL", MONITOR_TOOL, "--trace")  # line-buffered: its stdout is a file or pipe


def trace_rules(topo: Topology | None = None, dscp: int = TRACE_DSCP,
                upstream_dscp: int | None = UPSTREAM_DSCP) -> RuleSet:
    """The raw-table TRACE rules for one node (the same for every node of ``topo``).

    With ``upstream_dscp``, also the SYNs that ingress controllers' upstream connections carry
    (:func:`upstream_mark_rules`; without that mark in a controller pod, the rule matches nothing).
    """
    rs = RuleSet()
    raw = rs.table("raw")
    mark = f"-m dscp --dscp {dscp:#x}"
    for hook in ("PREROUTING", "OUTPUT"):
        raw.hook(hook, f'-p tcp {mark} -m tcp --syn -m comment --comment "netiso: trace probe SYN" -j TRACE')
        raw.hook(hook, f'-p udp {mark} -m comment --comment "netiso: trace probe datagram" -j TRACE')
    if upstream_dscp is not None:
        raw.hook("PREROUTING", f"-p tcp -m dscp --dscp {upstream_dscp:#x} -m tcp --syn "
                               '-m comment --comment "netiso: trace ingress upstream SYN" -j TRACE')
    return rs


def upstream_mark_rules(dscp: int = UPSTREAM_DSCP) -> RuleSet:
    """The mangle rule of an ingress controller pod's namespace: its outgoing SYNs carry ``dscp``.

    A controller pod only opens connections to its upstreams (nginx answers clients on accepted
    connections, whose packets are no SYN without ACK), so exactly nginx's upstream connection
    attempts are marked. DSCP rewrites six TOS bits of the first packet and nothing else.
    """
    rs = RuleSet()
    rs.table("mangle").hook("OUTPUT", f"-p tcp -m tcp --syn -m comment --comment "
                                      f'"netiso: mark ingress upstream SYN" -j DSCP --set-dscp {dscp:#x}')
    return rs


def install_upstream_marks(run: Any, netns: str, dscp: int = UPSTREAM_DSCP) -> None:
    """Load :func:`upstream_mark_rules` into a controller pod's namespace (replaces its mangle table only)."""
    run.run(["iptables-restore", "-w"], netns=netns, input=render_restore(upstream_mark_rules(dscp)))


def install_trace_rules(run: Any, netns: str, topo: Topology | None = None, dscp: int = TRACE_DSCP,
                        upstream_dscp: int | None = UPSTREAM_DSCP) -> None:
    """Load the TRACE rules into ``netns`` (a node of ``run``) without touching other tables."""
    run.run(["iptables-restore", "-w"], netns=netns, input=render_restore(trace_rules(topo, dscp, upstream_dscp)))


def start_file_monitors(run: Any, namespaces: Mapping[str, str], directory: Path) -> dict[str, subprocess.Popen[Any]]:
    """One monitor per node namespace writing to ``directory/trace-<node>.log``, registered with ``run``.

    For evidence and for recording samples (the probe agent does not use them: it reads the
    kernel's trace events over netlink itself, ``netiso.probe.tracer``).
    ``namespaces`` maps netns -> node name. Stop them with :func:`stop_monitors` (or ``run.down()``).
    """
    directory.mkdir(parents=True, exist_ok=True)
    procs: dict[str, subprocess.Popen[Any]] = {}
    for netns, node in namespaces.items():
        out: IO[bytes] = open(directory / f"trace-{node}.log", "wb")  # noqa: SIM115 - handed to the child
        try:
            procs[node] = run.start(MONITOR_ARGV, what=f"xtables-monitor {node}",
                                    netns=netns, stdout=out, stderr=subprocess.STDOUT)
        finally:
            out.close()
    return procs


def stop_monitors(procs: Mapping[str, subprocess.Popen[Any]], grace: float = 2.0) -> None:
    """End monitors by their PIDs (terminate, then kill)."""
    for proc in procs.values():
        if proc.poll() is None:
            proc.terminate()
    for proc in procs.values():
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout=grace)
