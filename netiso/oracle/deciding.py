"""The oracle's ``decidedBy``: which rule decides each predicted outcome, in ``decided`` words.

Why derived from the walk's structured hops (``Hop.step``) rather than told by the path
engine: the path engine stays one description of the datapath, and its hop texts (the
``explain`` output) do not change. Each step already says what happened; this module names
the rule a real node would have used for it, exactly as the lab's rule comments name it:

* ``policy`` steps: denied -> ``isolation <ns> <dir> drop``; admitted by a policy -> ``policy
  <ns>/<name> <dir> allow``, where among several admitting policies the first in Calico's order
  (by name, Felix's ``cali-pi-``/``cali-po-`` jump order) decides, re-evaluated per policy for
  ingress from the hop's :class:`~netiso.oracle.paths.PolicyCheck`; not isolated -> ``profile
  <ns> <dir> allow`` (Calico's namespace profile);
* a pod's egress that the walk does not report as a hop (not isolated, or admitted on the way
  into its own node) is Calico's decision all the same, on the pod's node, first: the profile,
  or the admitting egress policy;
* ``filter`` steps (kube-proxy's filter verdict for what nothing DNATed): ``kube-proxy
  <ServicePortName> no-endpoints reject`` / ``no-local-endpoints drop`` / ``source-ranges drop``
  (KUBE-PROXY-FIREWALL: a source outside ``loadBalancerSourceRanges``);
* ``snat`` steps: ``masquerade kube-proxy`` / ``nat-outgoing`` / ``tunnel`` / ``portmap`` (hairpin);
* a ``refuse`` step on a node (its own stack, nothing listens): ``host-stack node:<n>
  no-listener reject``; a ``drop`` step of Felix's ``cali-wl-to-host`` (endpoint-to-host action
  DROP): ``calico endpoint-to-host drop``;
* a ``proxy`` step (ingress-nginx takes over): ``proxy <controller>``; what follows is nginx's
  own connection, not the probe's packet (see ``decided.probe_decisions``), named all the same:
  a flow dropped on that leg is decided there (``decided.summarize``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from netiso.model.types import PodInfo, ServiceInfo, Topology
from netiso.oracle.decided import Decision, host_stack, service_port_subject, summarize
from netiso.oracle.netpol import PolicyEngine
from netiso.oracle.paths import Outcome


class DecisionNamer:
    """Names the deciding rules of outcomes of one topology (one per prediction set)."""

    def __init__(self, topo: Topology) -> None:
        self.topo = topo
        self.policy = PolicyEngine(topo.policies, topo.namespaces)
        self._single: dict[str, PolicyEngine] = {}

    def decisions(self, outcome: Outcome, origin_pod: PodInfo | None, dport: int, proto: str,
                  dst_ip: str | None) -> list[Decision]:
        """The decisions along ``outcome``'s hops, in path order."""
        out: list[Decision] = []
        service: str | None = None
        egress_seen = proxied = False
        for hop in outcome.hops:
            step = getattr(hop, "step", None)
            if step is None:
                continue
            if step.kind == "proxy":
                if not proxied:
                    out.append(Decision("proxy", step.at))
                proxied = True
            elif step.kind == "refuse" and step.at.startswith("node:"):
                out.append(host_stack(step.at.split(":", 1)[1]))
            elif step.kind == "drop" and step.rule == "cali-wl-to-host":
                out.append(Decision("calico", "endpoint-to-host", "drop"))
            elif step.kind == "service":
                service = self._service_subject(step.rule, dport, proto)
            elif step.kind == "policy" and step.decision is not None:
                egress_seen = egress_seen or (step.direction == "egress" and not proxied)
                out.append(self._policy(step, getattr(hop, "check", None)))
            elif step.kind == "filter" and service is not None and step.verdict in ("refused", "dropped"):
                what, verdict = ("no-endpoints", "reject") if step.verdict == "refused" else ("no-local-endpoints", "drop")
                if step.rule == "KUBE-PROXY-FIREWALL":  # loadBalancerSourceRanges (proxy_knobs)
                    what = "source-ranges"
                out.append(Decision("kube-proxy", f"{service} {what}", verdict))
            elif step.kind == "snat":
                rule = step.rule or ""
                who = ("kube-proxy" if rule.startswith("KUBE-") else "nat-outgoing" if "nat-outgoing" in rule
                       else "portmap" if rule.startswith("CNI-HOSTPORT") else "tunnel")
                out.append(Decision("masquerade", who))
        if origin_pod is not None and not egress_seen:
            first = self._unreported_egress(origin_pod, dport, proto, dst_ip)
            if first is not None:
                out.insert(0, first)
        return out

    def decided_by(self, outcome: Outcome, origin_pod: PodInfo | None, dport: int, proto: str,
                   dst_ip: str | None) -> str | None:
        return summarize(self.decisions(outcome, origin_pod, dport, proto, dst_ip), outcome.verdict)

    # ------------------------------------------------------------------ pieces
    def _policy(self, step: Any, check: Any) -> Decision:
        d = step.decision
        direction = step.direction or "ingress"
        pod = self.topo.pod_by_ip(step.dst if direction == "ingress" else step.src)
        ns = pod.project if pod is not None else (d.policies[0].split("/")[0] if d.policies else "?")
        if not d.allowed:
            return Decision("isolation", f"{ns} {direction}", "drop")
        if not d.isolated:
            return Decision("profile", f"{ns} {direction}", "allow")
        key = d.admitted_by.split(" ")[0] if d.admitted_by else None
        if direction == "ingress" and check is not None and len(d.policies) > 1:
            key = self._calico_first(d.policies, check) or key
        return Decision("policy", f"{key} {direction}", "allow")

    def _calico_first(self, keys: Sequence[str], check: Any) -> str | None:
        """The first admitting policy in Calico's order (policy name within the namespace)."""
        for key in sorted(keys, key=lambda k: k.split("/", 1)[1]):
            engine = self._single.get(key)
            if engine is None:
                manifest = next((m for m in self.topo.policies
                                 if f"{m['metadata']['namespace']}/{m['metadata']['name']}" == key), None)
                if manifest is None:
                    continue
                engine = self._single[key] = PolicyEngine([manifest], self.topo.namespaces)
            if engine.ingress(check.pod, check.src_ip, check.src_pod, check.port, check.protocol).allowed:
                return key
        return None

    def _unreported_egress(self, pod: PodInfo, dport: int, proto: str, dst_ip: str | None) -> Decision | None:
        if not self.policy.selecting(pod, "egress"):
            return Decision("profile", f"{pod.project} egress", "allow")
        if dst_ip is None:
            return None
        d = self.policy.egress(pod, dst_ip, self.topo.pod_by_ip(dst_ip), dport, proto)
        if d.allowed and d.admitted_by:
            return Decision("policy", f"{d.admitted_by.split(' ')[0]} egress", "allow")
        return None

    def _service_subject(self, rule: str | None, dport: int, proto: str) -> str | None:
        if not rule:
            return None
        parts = rule.split(" ")
        key = parts[1] if len(parts) > 1 else ""
        svc: ServiceInfo | None = self.topo.services.get(key)
        if svc is None and self.topo.dns_service is not None and self.topo.dns_service.key == key:
            svc = self.topo.dns_service
        if svc is None:
            return None
        for sp in svc.ports:
            if sp.port.protocol == proto and dport in (sp.port.port, sp.node_port):
                return service_port_subject(svc.project, svc.name, sp.port.name)
        return service_port_subject(svc.project, svc.name, None)
