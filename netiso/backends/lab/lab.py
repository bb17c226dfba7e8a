"""The lab backend: build a Topology on the real kernel, keep it, tear it down.

``Lab.up()`` runs, in order: namespaces, links and routes (topology.py, the service-network
route on nodes included); per node one ``ipset restore`` and one ``iptables-restore`` of
Calico's chains merged with kube-proxy's (Calico's hooks first, Felix's accept-mark rule last,
as on a real node) and, when the lab is to be traced (``trace_rules``), the raw table's TRACE
rules (trace.py) in the same document, with the upstream-SYN mark of each ingress controller
pod loaded alongside; the IP-in-IP forwarder (ipip mode: its interpreter starts while the rules
load, and is waited for right after them); the VIP announcements (announce.py) and the nginx
ingress controllers (ingress.py). Any failure tears the run down before the error propagates,
so bad input or a missing tool leaves nothing behind.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from netiso.backends.lab import announce, calico, ingress, ipip, kubeproxy, portmap, topology, trace
from netiso.backends.lab.iptables import merge, render_restore
from netiso.backends.lab.netns import RUN_FILES_DIR, LabUnavailable, require_root_and_tools
from netiso.backends.lab.runs import Run
from netiso.model.types import Topology

log = logging.getLogger("netiso.lab")

LAB_TOOLS = ("ip", "bridge", "iptables-restore", "iptables-save", "ipset", "nsenter")


def check_prerequisites(topo: Topology | None = None) -> None:
    """Raise LabUnavailable (exit 2) with the exact fix when root or a tool is missing."""
    require_root_and_tools(LAB_TOOLS)
    if topo is not None and topo.ingresses:
        problem = ingress.check_nginx_available()
        if problem:
            raise LabUnavailable(problem)


@dataclass
class Lab:
    """One scenario's datapath on this host."""

    topo: Topology
    prefix: str | None = None
    run: Run | None = None
    net: topology.LabNet | None = None
    forwarder: Any = None
    controllers: list[Any] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    trace_rules: bool = False  # load the TRACE rules with the node rules (tracing.start_tracing then skips them)

    def up(self) -> Lab:
        check_prerequisites(self.topo)
        started = time.perf_counter()
        self.run = Run.create(self.prefix)
        try:
            self.net = topology.build(self.topo, self.run)
            self.timings["topology_s"] = time.perf_counter() - started
            pending = None
            if self.topo.encapsulation == "ipip":
                pending = ipip.spawn_forwarder(ipip.config_for_topology(self.topo, self.run.prefix))
                self.forwarder = pending.proc  # down() stops it, whatever fails from here on
                self.run.register_pid(pending.pid, "ipip-forwarder")
            self._rules()
            if pending is not None:
                ipip.wait_forwarder(pending)
            for svc in self.topo.services.values():
                if svc.lb_ip and svc.lb_node:
                    announce.announce(self.net, svc.lb_node, svc.lb_ip, gratuitous=False)
            if self.topo.ingresses:
                rundir = RUN_FILES_DIR / self.run.prefix
                net = self.net
                self.controllers = ingress.start_controllers(
                    self.topo, lambda pod: net.ns_of(pod.symbol), rundir, register=self.run.register_pid)
        except BaseException:
            self.down()
            raise
        self.timings["up_s"] = time.perf_counter() - started
        return self

    def _rules(self) -> None:
        assert self.run is not None and self.net is not None
        run, topo = self.run, self.topo

        def load(node: str) -> None:
            ns = self.net.nodes[node].netns  # type: ignore[union-attr]
            rs, ipsets = calico.render_calico(topo, node)
            parts = [rs, kubeproxy.render_kube_proxy(topo, node), portmap.render_portmap(topo, node),
                     calico.render_forward_tail()]
            if self.trace_rules:
                parts.append(trace.trace_rules(topo))
            doc = render_restore(merge(*parts))
            if ipsets.strip():
                run.run(["ipset", "restore"], netns=ns, input=ipsets)
            run.run(["iptables-restore", "-w"], netns=ns, input=doc)

        def mark(pod: Any) -> None:  # a traced lab's controller pods mark nginx's upstream SYNs (trace.py)
            trace.install_upstream_marks(run, self.net.ns_of(pod.symbol))  # type: ignore[union-attr]

        marks = [c.pod for c in ingress.controllers_of(topo)] if self.trace_rules else []
        with ThreadPoolExecutor(max_workers=4) as pool:
            for fut in [*(pool.submit(load, n) for n in topo.nodes), *(pool.submit(mark, p) for p in marks)]:
                fut.result()

    def down(self) -> float:
        """Stop every process of the run by PID, delete its namespaces; returns seconds taken."""
        started = time.perf_counter()
        if self.controllers:
            try:
                ingress.stop_controllers(self.controllers)
            except Exception as exc:
                log.warning("stopping nginx: %s", exc)
            self.controllers = []
        if self.forwarder is not None:
            try:
                ipip.stop_forwarder(self.forwarder)
            except Exception as exc:
                log.warning("stopping the ipip forwarder: %s", exc)
            self.forwarder = None
        if self.run is not None:
            self.run.down()
            self.run = None
        self.net = None
        self.timings["down_s"] = time.perf_counter() - started
        return self.timings["down_s"]

    def __enter__(self) -> Lab:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()

    # ------------------------------------------------------------------ evidence
    def evidence(self, nodes: list[str]) -> dict[str, str]:
        """iptables-save, routes, neighbours and FDB of ``nodes`` (attached to mismatching flows)."""
        assert self.run is not None and self.net is not None
        out: dict[str, str] = {}
        for node in nodes:
            ns = self.net.nodes[node].netns
            parts = []
            for title, argv in (("iptables-save", ["iptables-save"]),
                                ("ip route", ["ip", "route"]),
                                ("ip neigh", ["ip", "neigh"]),
                                ("bridge fdb (vxlan.calico)", ["bridge", "fdb", "show", "dev", "vxlan.calico"])):
                if argv[0] == "bridge" and self.topo.encapsulation != "vxlan":
                    continue
                res = self.run.run(argv, netns=ns, check=False)
                parts.append(f"## {title}\n{res.stdout}{res.stderr}")
            out[f"node:{node}"] = "\n".join(parts)
        return out
