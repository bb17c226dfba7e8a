"""The kernel's rule trace of a mismatching flow, read from the kind nodes it crosses (evidence).

Why: on the lab every probe is traced (``netiso.backends.lab.trace``); on a real cluster the
verdict is all we observe, and a mismatch is easier to explain when the kernel itself says
which rule took the packet. kind nodes are Docker containers, so netiso can reach each node's
network namespace with ``docker exec`` and run iptables' ``TRACE`` target there with
``xtables-monitor --trace`` (both from the iptables package the kind base image installs,
kubernetes-sigs/kind ``images/base/Dockerfile``). The trace is *evidence only*: it is attached
to the mismatch as readable hop lines, never judged, because the real Calico and kube-proxy
chain names (``cali-tw-cali…``, ``KUBE-SEP-…``) are not the lab's and are shown as they are.

What it does for one flow (:meth:`NodeTracer.trace`), on every node the prediction crosses, in
parallel, each with one ``docker exec -i <node> sh -c SCRIPT`` (:func:`node_script`):

a. checks the node can trace: ``iptables -V`` must say ``nf_tables`` (xtables-monitor reads
   nf_tables trace events; the legacy backend has none) and ``xtables-monitor`` must exist;
   otherwise the node is skipped with the reason. kind's entrypoint picks the node's backend
   at boot (``select_iptables``: legacy when the host has at least as many legacy rules as nft
   ones, kind ``images/base/files/usr/local/bin/entrypoint``), so a legacy host gives legacy
   nodes;
b. inserts narrowly selected ``TRACE`` rules at the top of the raw table's ``PREROUTING``
   (forwarded and delivered packets) and ``OUTPUT`` (host-network sources): only the packets
   the prediction says this node sees (source -> destination and port, taken from the
   predicted steps at that node, so after DNAT and SNAT), a TCP connection's first packet only
   (``--syn``: conntrack runs after the raw table, so ``--ctstate NEW`` cannot be matched
   there), each with the comment ``netiso-trace-<token>`` so it can be found and removed;
c. runs ``timeout N xtables-monitor --trace`` (line-buffered with ``stdbuf -oL`` where the node
   has it) and says ``ready``; netiso then re-probes the flow once through the realization's
   own probe path, and closes the exec's stdin when done, which ends the monitor;
d. removes the rules in an ``EXIT`` trap (also on TERM/INT/HUP), and prints the monitor's text.

Bounded everywhere: readiness (:attr:`TraceLimits.ready_s`), the monitor inside the node
(``timeout``), the wait for the scripts to end, and a separate removal ``docker exec``
(:func:`removal_script`) that netiso issues for every node whose script did not confirm the
removal (its exec died, or timed out). Killing a ``docker exec`` client does not stop the
process in the container, which is why the node script bounds itself and removes its own rules.

Knowingly different from the lab's tracing: the lab marks its probe sockets with a DSCP value
and traces that mark; a cluster's probes run in agnhost pods netiso does not control at socket
level, so the selection is by addresses and ports instead. Two probes of the same flow at the
same time would both be traced (only this re-probe runs while the rules exist). Traces are
filtered to packets whose first appearance matches one of the node's selectors, so another
tracer's rules on the same node add nothing. Only TCP and UDP flows are traced.
"""

from __future__ import annotations

import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from netiso.backends.base import NODE_TRACE_KEY
from netiso.backends.kind.tools import Result, Tools
from netiso.backends.trace_parse import PacketTrace, read_traces
from netiso.oracle.predict import Prediction

COMMENT_PREFIX = "netiso-trace-"
MARK = "netiso-trace:"  # the node script's own lines start with this; everything else is the monitor's
EVIDENCE_PREFIX = "trace node:"
REPROBE_KEY = "trace re-probe"
HOOKS = ("PREROUTING", "OUTPUT")
MAX_PAIRS_PER_NODE = 8
MAX_PACKETS_SHOWN = 4
MAX_RULE_CHARS = 160


@dataclass(frozen=True)
class TraceLimits:
    """Every wait of a traced re-probe (seconds); tests shorten them."""

    ready_s: float = 20.0  # all node scripts said ready (or why not)
    monitor_s: float = 180.0  # the monitor's own bound inside the node (> the probe's own deadline)
    settle_s: float = 0.5  # the monitor subscribes; the last events arrive after the probe
    finish_s: float = 20.0  # scripts end after stdin closes
    removal_s: float = 20.0  # the separate removal exec


@dataclass(frozen=True, order=True)
class Selector:
    """Packets one TRACE rule selects: protocol, source -> destination:port."""

    protocol: str  # TCP | UDP
    src: str
    dst: str
    dport: int

    def spec(self, comment: str) -> str:
        """The rule as ``iptables -I/-D CHAIN`` takes it.

        >>> Selector("TCP", "1.2.3.4", "5.6.7.8", 80).spec("netiso-trace-ab")
        '-s 1.2.3.4/32 -d 5.6.7.8/32 -p tcp -m tcp --dport 80 --syn -m comment --comment netiso-trace-ab -j TRACE'
        """
        proto = self.protocol.lower()
        first = " --syn" if proto == "tcp" else ""
        return (f"-s {self.src}/32 -d {self.dst}/32 -p {proto} -m {proto} --dport {self.dport}{first} "
                f"-m comment --comment {comment} -j TRACE")

    def selects(self, trace: PacketTrace) -> bool:
        first = trace.first
        return (first is not None and first.src == self.src and first.dst == self.dst and first.dport == self.dport
                and (first.proto or self.protocol) == self.protocol)


# --------------------------------------------------------------------------- what to trace where


def _node_of(symbol: str | None) -> str | None:
    """The scenario node of a place symbol: ``node:w1`` and ``pod:ns/x@w1`` -> ``w1``; clients -> None."""
    if not symbol:
        return None
    if symbol.startswith("node:"):
        return symbol.split(":", 1)[1]
    if symbol.startswith("pod:") and "@" in symbol:
        return symbol.rsplit("@", 1)[1]
    return None


def _origin_ip(pred: Prediction) -> str | None:
    t, topo = pred.target, pred.topo
    if t.origin_pod is not None:
        return t.origin_pod.ip
    if t.origin_kind == "client" and t.origin_name in topo.clients:
        return topo.clients[t.origin_name].ip
    if t.origin_kind == "node" and t.origin_name in topo.nodes:
        return topo.nodes[t.origin_name].ip
    return None


def selectors_for(pred: Prediction) -> dict[str, list[Selector]]:
    """Scenario node -> the TRACE selections there: the packets the prediction says it sees.

    The raw table sees a packet before any NAT of its node, so a node is given the packet as it
    arrives there: the (source, destination) of each predicted step that sends it to that node
    (``to``: the client's packet at the entry node, the DNAT-ed and SNAT-ed one at the
    endpoint's node after a tunnel) and of a send from the node itself (host-network sources).
    A node the prediction does not reach is not traced (a flow that really went elsewhere shows
    as "no packet traced" on the predicted nodes). The port is the flow's
    destination port for its own destination address, and the declared (target) port as well
    for any other address (after DNAT). Without structured steps: the flow's source and
    destination on every node of the scenario.
    """
    t = pred.target
    if t.protocol not in ("TCP", "UDP") or t.dst_ip is None:
        return {}
    pairs: dict[str, set[tuple[str, str]]] = {}
    for outcome in pred.outcomes:
        for hop in outcome.hops:
            step = getattr(hop, "step", None)
            if step is None or not step.dst:
                continue
            sources = [s for s in (step.src, *step.alts) if s]
            arrives = _node_of(step.to) if (step.to or "").startswith("node:") else None  # not a DNAT's pod
            for node in (_node_of(step.at) if step.kind == "send" else None, arrives):
                if node is not None:
                    pairs.setdefault(node, set()).update((src, step.dst) for src in sources)
    if not pairs:
        src = _origin_ip(pred)
        if src is None:
            return {}
        pairs = {node: {(src, t.dst_ip)} for node in pred.topo.nodes}
    out: dict[str, list[Selector]] = {}
    for node, found in pairs.items():
        if node not in pred.topo.nodes:
            continue
        chosen: set[Selector] = set()
        for src, dst in sorted(found)[:MAX_PAIRS_PER_NODE]:
            ports = {t.dst_port} if dst == t.dst_ip else {t.dst_port, t.port.port}
            chosen.update(Selector(t.protocol, src, dst, p) for p in ports)
        out[node] = sorted(chosen)
    return out


# --------------------------------------------------------------------------- node scripts


def _rules(selectors: Sequence[Selector], comment: str, action: str) -> list[str]:
    """One ``iptables`` command per (hook, selector); ``action`` is ``-I {hook} 1`` or ``-D {hook}``."""
    return [f"iptables -w 5 -t raw {action.format(hook=hook)} {sel.spec(comment)}"
            for hook in HOOKS for sel in selectors]


def node_script(token: str, selectors: Sequence[Selector], limits: TraceLimits = TraceLimits()) -> str:
    """The ``sh -c`` script of one node: check, insert, monitor until stdin closes, always remove.

    Lines it prints itself start with ``netiso-trace:`` (``iptables <version>``, ``skip: <why>``,
    ``error: <why>``, ``ready``, ``done``, ``removed``); every other line is the monitor's.
    """
    comment = COMMENT_PREFIX + token
    inserts = "\n".join(f'{cmd} || {{ echo "{MARK} error: cannot insert the TRACE rule ($?)"; exit 0; }}'
                        for cmd in _rules(selectors, comment, "-I {hook} 1"))
    removes = "\n".join(f"  {cmd} 2>/dev/null" for cmd in _rules(selectors, comment, "-D {hook}"))
    bound = max(1, int(limits.monitor_s))
    return f"""\
V=$(iptables -V 2>&1) || {{ echo "{MARK} skip: no usable iptables on this node ($V)"; exit 0; }}
echo "{MARK} iptables $V"
case "$V" in
  *nf_tables*) ;;
  *) echo "{MARK} skip: iptables legacy backend cannot be traced with xtables-monitor (iptables -V: $V)"; exit 0 ;;
esac
command -v xtables-monitor >/dev/null 2>&1 || {{ echo "{MARK} skip: no xtables-monitor on this node"; exit 0; }}
B=""
command -v stdbuf >/dev/null 2>&1 && B="stdbuf -oL"
M=""
undo() {{
  [ -n "$M" ] && kill "$M" 2>/dev/null
{removes}
  echo "{MARK} removed"
}}
trap undo EXIT
trap 'exit 143' HUP INT TERM
{inserts}
timeout {bound} $B xtables-monitor --trace &
M=$!
sleep {limits.settle_s:g}
echo "{MARK} ready"
timeout {bound} head -n 1 >/dev/null
sleep {limits.settle_s:g}
kill "$M" 2>/dev/null
wait "$M" 2>/dev/null
M=""
echo "{MARK} done"
"""


def removal_script(token: str, selectors: Sequence[Selector]) -> str:
    """The separate removal (the node script's exec died or timed out before it said ``removed``)."""
    comment = COMMENT_PREFIX + token
    lines = [f"{cmd} 2>/dev/null" for cmd in _rules(selectors, comment, "-D {hook}")]
    return "\n".join([*lines, f'echo "{MARK} removed"']) + "\n"


# --------------------------------------------------------------------------- reading the answer


@dataclass
class NodeTrace:
    """What one node's script said."""

    node: str  # scenario node
    container: str  # kind node container
    selectors: list[Selector]
    lines: list[str] = field(default_factory=list)  # the monitor's lines
    marks: list[str] = field(default_factory=list)  # the script's own lines, without the prefix
    returncode: int | None = None
    stderr: str = ""

    @property
    def version(self) -> str | None:
        return next((m.split(" ", 1)[1] for m in self.marks if m.startswith("iptables ")), None)

    @property
    def skip(self) -> str | None:
        return next((m.split(":", 1)[1].strip() for m in self.marks if m.startswith("skip:")), None)

    @property
    def error(self) -> str | None:
        return next((m.split(":", 1)[1].strip() for m in self.marks if m.startswith("error:")), None)

    @property
    def ready(self) -> bool:
        return "ready" in self.marks

    @property
    def removed(self) -> bool:
        return "removed" in self.marks

    def traces(self) -> list[PacketTrace]:
        """The packets the node traced that this flow's selectors chose."""
        return [t for t in read_traces(self.lines, self.node) if any(s.selects(t) for s in self.selectors)]


def _hop_line(hop: Any) -> str:
    where = f"{hop.table}:{hop.chain} " + (f"#{hop.handle}" if hop.handle is not None else "policy")
    said = f'"{hop.comment}"' if hop.comment else hop.rule
    if len(said) > MAX_RULE_CHARS:
        said = said[: MAX_RULE_CHARS - 3] + "..."
    return f"  {where} {hop.verdict}" + (f"  {said}" if said else "")


def render(node: NodeTrace) -> str:
    """Readable evidence of one node: its packets and, per packet, the rules it met in order."""
    if node.skip:
        return f"skipped: node {node.container}: {node.skip}"
    if node.error:
        return f"not traced: node {node.container}: {node.error}"
    head = (f"kind node {node.container} ({node.version or 'iptables version unknown'}); "
            "the node's own rule names (Calico, kube-proxy), not the lab's")
    traces = node.traces()
    if not traces:
        why = "" if node.ready else f" (the trace did not start: exit {node.returncode}; {node.stderr.strip()[-200:]})"
        return f"{head}\nno packet of this flow was traced on this node{why}"
    lines = [head]
    shown: dict[tuple[tuple[str, str, str], ...], int] = {}
    for n, trace in enumerate(traces, 1):
        first = trace.first
        assert first is not None
        signature = tuple((h.table, h.chain, h.verdict) for h in trace.interesting_hops())
        packet = (f"packet {n}: {first.proto} {first.src}:{first.sport} -> {first.dst}:{first.dport}"
                  + (f" in {first.iface_in}" if first.iface_in else ""))
        if signature in shown:
            lines.append(f"{packet}: same rules as packet {shown[signature]}")
            continue
        if len(shown) >= MAX_PACKETS_SHOWN:
            lines.append(f"{packet}: (not shown)")
            continue
        shown[signature] = n
        lines.append(packet)
        stop = trace.stop
        for hop in trace.interesting_hops():
            lines.append(_hop_line(hop) + ("   <- decides" if hop is stop else ""))
        if stop is None:
            lines.append("  (no rule dropped or rejected it on this node)")
    return "\n".join(lines)


# --------------------------------------------------------------------------- running it


class _NodeExec:
    """One running ``docker exec -i <node> sh -c SCRIPT``; its output read by two threads."""

    def __init__(self, exe: str, argv: list[str], env: Mapping[str, str] | None, trace: NodeTrace) -> None:
        self.argv = argv
        self.trace = trace
        self.answered = threading.Event()  # ready, skip, error, or the end of its output
        self._out: list[str] = []
        self._err: list[str] = []
        self.proc = subprocess.Popen([exe, *argv[1:]], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=dict(env) if env is not None else None)
        self._threads = [threading.Thread(target=self._read_out, daemon=True),
                         threading.Thread(target=self._read_err, daemon=True)]
        for t in self._threads:
            t.start()

    def _read_out(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.rstrip("\n")
            self._out.append(line)
            if line.startswith(MARK):
                mark = line[len(MARK):].strip()
                self.trace.marks.append(mark)
                if mark == "ready" or mark.startswith(("skip:", "error:")):
                    self.answered.set()
            else:
                self.trace.lines.append(line)
        self.answered.set()

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self._err.append(raw)

    def finish(self, timeout: float) -> Result:
        """Close stdin (the node script stops its monitor), wait, kill the client past ``timeout``."""
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=max(0.1, timeout))
        except subprocess.TimeoutExpired:
            self.proc.kill()  # the client only: the node script bounds itself and removes its rules
            self.proc.wait()
        for t in self._threads:
            t.join(timeout=5)
        self.trace.returncode = self.proc.returncode
        self.trace.stderr = "".join(self._err)
        return Result(tuple(self.argv), self.proc.returncode, "\n".join(self._out), self.trace.stderr)


class NodeTracer:
    """Traces one flow on the kind nodes its prediction crosses while ``reprobe`` probes it once more."""

    def __init__(self, tools: Tools, node_names: Mapping[str, str], limits: TraceLimits | None = None,
                 token: Callable[[], str] | None = None) -> None:
        self.tools = tools
        self.node_names = dict(node_names)  # scenario node -> kind node container
        self.limits = limits or TraceLimits()
        self.token = token or (lambda: secrets.token_hex(4))

    def trace(self, pred: Prediction, reprobe: Callable[[Prediction], Sequence[Any]]) -> dict[str, str]:
        """``{"trace node:<node>": hop lines or the skip reason, "trace re-probe": its verdict}``."""
        wanted = selectors_for(pred)
        if not wanted:
            why = (f"netiso traces TCP and UDP flows only ({pred.target.protocol})"
                   if pred.target.protocol not in ("TCP", "UDP") else "no address or node to trace on")
            return {NODE_TRACE_KEY: f"skipped: {why}"}
        exe = self.tools.which("docker")
        if exe is None:
            return {NODE_TRACE_KEY: "skipped: no docker on PATH to reach the kind nodes"}
        token = self.token()
        runs: dict[str, _NodeExec] = {}
        out: dict[str, str] = {}
        try:
            for node, selectors in wanted.items():
                container = self.node_names.get(node) or pred.topo.nodes[node].host_name
                trace = NodeTrace(node, container, selectors)
                argv = ["docker", "exec", "-i", container, "sh", "-c", node_script(token, selectors, self.limits)]
                try:
                    runs[node] = _NodeExec(exe, argv, self.tools.env, trace)
                except OSError as exc:
                    out[EVIDENCE_PREFIX + node] = f"not traced: node {container}: cannot run docker: {exc}"
            deadline = time.monotonic() + self.limits.ready_s
            for run in runs.values():
                run.answered.wait(max(0.0, deadline - time.monotonic()))
            if any(run.trace.ready for run in runs.values()):
                out[REPROBE_KEY] = self._reprobe(pred, reprobe)
        finally:
            deadline = time.monotonic() + self.limits.finish_s
            for run in runs.values():
                self.tools.history.append(run.finish(deadline - time.monotonic()))
            self._remove_leftovers(token, runs)
        for node, run in runs.items():
            out[EVIDENCE_PREFIX + node] = render(run.trace)
        return out

    def _reprobe(self, pred: Prediction, reprobe: Callable[[Prediction], Sequence[Any]]) -> str:
        try:
            observations = list(reprobe(pred))
        except Exception as exc:  # the trace is still read and the rules removed
            return f"error: the traced re-probe failed: {exc}"
        if not observations:
            return "error: the traced re-probe returned nothing"
        obs = observations[0]
        parts = [str(getattr(obs, "verdict", obs))]
        for label, attr in (("source", "source_ip"), ("answered by", "answered_by"), ("detail", "detail")):
            value = getattr(obs, attr, None)
            if value:
                parts.append(f"{label} {value}")
        return "; ".join(parts)

    def _remove_leftovers(self, token: str, runs: Mapping[str, _NodeExec]) -> None:
        """A removal exec for every node that may hold rules and did not confirm their removal."""
        for run in runs.values():
            trace = run.trace
            if trace.removed or trace.skip is not None:
                continue
            argv = ["docker", "exec", trace.container, "sh", "-c", removal_script(token, trace.selectors)]
            result = _run_bounded(self.tools, argv, self.limits.removal_s)
            if MARK + " removed" not in result.stdout:
                trace.marks.append(f"error: the TRACE rules ({COMMENT_PREFIX}{token}) may still be on the node: "
                                   f"removal exited {result.returncode}: {result.stderr.strip()[-200:]}")
            else:
                trace.marks.append("removed")


def _run_bounded(tools: Tools, argv: list[str], timeout: float) -> Result:
    exe = tools.which(argv[0])
    if exe is None:
        return Result(tuple(argv), 127, "", f"{argv[0]} not on PATH")
    try:
        proc = subprocess.run([exe, *argv[1:]], capture_output=True, text=True, env=tools.env,
                              timeout=timeout, check=False)
        result = Result(tuple(argv), proc.returncode, proc.stdout, proc.stderr)
    except subprocess.TimeoutExpired as exc:
        result = Result(tuple(argv), -9, str(exc.stdout or ""), f"timed out after {timeout:g} s")
    tools.history.append(result)
    return result

