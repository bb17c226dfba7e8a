"""Which rule decided a flow: one vocabulary for the oracle's prediction and the kernel's trace.

Why one place: a verdict can be right for the wrong reason (the wrong policy admitted it,
kube-proxy dropped what a policy should have). To catch that, the oracle's ``decidedBy`` and
the one read from a backend's rule trace must be written in the same words, so this module
defines the words and both sides use it: the path engine attaches a :class:`Decision` to the
hops that decide, and the lab writes :meth:`Decision.token` at the head of the comment of every
rule that can decide (``-m comment --comment "netiso:policy=demo/x ingress allow; <upstream
text>"``), which a trace parser turns back into a :class:`Decision` with :func:`from_comment`.

Kinds (``str(Decision)`` is ``kind subject verdict``):

* ``policy <ns>/<name> <ingress|egress> allow``: a NetworkPolicy rule admitted the packet
  (Calico's ``cali-pi-``/``cali-po-`` allow rule). When several policies would admit it, the
  first in Calico's order (policy name) is the one that decides, as in Felix's chains.
* ``profile <ns> <ingress|egress> allow``: no policy selects the pod for that direction; the
  namespace profile (``kns.<ns>``) accepted it.
* ``isolation <ns> <ingress|egress> drop``: the pod is isolated and no policy admitted it
  (Felix's "Drop if no policies passed packet").
* ``kube-proxy <ns>/<svc>[:<port>] no-endpoints reject`` / ``... no-local-endpoints drop``:
  kube-proxy's filter rules for traffic nothing DNATed; the subject is kube-proxy's own
  ServicePortName string.
* ``masquerade kube-proxy`` (KUBE-POSTROUTING), ``masquerade nat-outgoing`` (Calico
  natOutgoing), ``masquerade tunnel`` (Felix's tunnel-source rule), ``masquerade portmap`` (the CNI
  portmap plugin's CNI-HOSTPORT-MASQ: a pod to its own hostPort): the SNAT that rewrote the source.
* infrastructure drops that no scenario should hit: ``calico conntrack-invalid drop``,
  ``calico unknown-interface drop``, ``calico workload-encap drop``, ``calico tunnel-source drop``,
  ``kube-proxy conntrack-invalid drop``, ``kubelet localnet drop``.
* ``calico endpoint-to-host drop``: Felix's ``cali-wl-to-host`` with
  ``defaultEndpointToHostAction: DROP`` (pod -> its own node, after its egress policy).
* ``host-stack node:<node> no-listener reject``: the packet was delivered to the node's own
  stack (ACCEPTed into INPUT: Felix's endpoint-to-host ACCEPT, or no rule objected) and nothing
  listens on the port: the kernel answers RST / ICMP port unreachable. No rule decides it, so no
  rule comment can carry it; a trace reports it when the first packet's last netfilter hook on
  the last node is INPUT and the probe was refused (``netiso.backends.trace_parse.decided_by``).
* ``proxy <ns>/<ingress>``: the ingress controller took the connection over (marks the end of
  what the probe's own packet decides; the backend leg is nginx's connection, not the probe's).
  A flow whose backend leg is dropped is decided by the rule that dropped nginx's connection
  (the isolation drop the lab's upstream watch reports), see :func:`summarize`.

:func:`summarize` turns the decisions met along one path into the ``decidedBy`` string.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

TOKEN_PREFIX = "netiso:"
VERDICTS = ("allow", "drop", "reject")
STOPS = ("drop", "reject")
MAX_COMMENT = 255  # iptables' comment match holds 256 bytes including the NUL


@dataclass(frozen=True)
class Decision:
    """One deciding rule, in backend-neutral words.

    >>> str(Decision("policy", "demo/nsnp-network-isolate ingress", "allow"))
    'policy demo/nsnp-network-isolate ingress allow'
    >>> str(Decision("masquerade", "kube-proxy"))
    'masquerade kube-proxy'
    """

    kind: str
    subject: str
    verdict: str = ""

    def __str__(self) -> str:
        return " ".join(x for x in (self.kind, self.subject, self.verdict) if x)

    def token(self) -> str:
        """What the lab writes at the head of the rule's comment.

        >>> Decision("isolation", "demo ingress", "drop").token()
        'netiso:isolation=demo ingress drop'
        """
        return f"{TOKEN_PREFIX}{self.kind}={self.subject}" + (f" {self.verdict}" if self.verdict else "")

    def comment(self, text: str = "") -> str:
        """Token plus the upstream-like human text, within iptables' comment limit.

        >>> Decision("masquerade", "kube-proxy").comment("kubernetes service traffic requiring SNAT")
        'netiso:masquerade=kube-proxy; kubernetes service traffic requiring SNAT'
        """
        full = self.token() + (f"; {text}" if text else "")
        return full[:MAX_COMMENT]

    @property
    def stops(self) -> bool:
        """True for a rule that ends the packet (DROP/REJECT)."""
        return self.verdict in STOPS


def from_comment(comment: str | None) -> Decision | None:
    """The decision a rule comment carries, or None when it carries no token.

    >>> from_comment("netiso:policy=shop/a ingress allow; allow shop/a ingress[0]")
    Decision(kind='policy', subject='shop/a ingress', verdict='allow')
    >>> from_comment("netiso:masquerade=kube-proxy; kubernetes service traffic requiring SNAT")
    Decision(kind='masquerade', subject='kube-proxy', verdict='')
    >>> from_comment("kubernetes service portals") is None
    True
    """
    if not comment:
        return None
    text = comment.strip().strip('"')
    if not text.startswith(TOKEN_PREFIX):
        return None
    head = text[len(TOKEN_PREFIX):].split(";", 1)[0].strip()
    kind, sep, body = head.partition("=")
    if not sep or not kind:
        return None
    subject, _, last = body.rpartition(" ")
    if last in VERDICTS and subject:
        return Decision(kind, subject, last)
    return Decision(kind, body)


def parse(text: str | None) -> Decision | None:
    """A decision from its ``str()`` form (inverse of ``str(Decision)``), None for None/empty.

    >>> parse("kube-proxy demo/web no-endpoints reject")
    Decision(kind='kube-proxy', subject='demo/web no-endpoints', verdict='reject')
    """
    if not text:
        return None
    kind, _, rest = text.strip().partition(" ")
    subject, _, last = rest.rpartition(" ")
    if last in VERDICTS and subject:
        return Decision(kind, subject, last)
    return Decision(kind, rest)


def service_port_subject(project: str, name: str, port_name: str | None) -> str:
    """kube-proxy's ServicePortName string: ``ns/svc:port``, or ``ns/svc`` for an unnamed port.

    >>> service_port_subject("demo", "web", "http"), service_port_subject("demo", "web", None)
    ('demo/web:http', 'demo/web')
    """
    return f"{project}/{name}" + (f":{port_name}" if port_name else "")


def host_stack(node: str) -> Decision:
    """The node's own stack refused: nothing listens (no rule decides it).

    >>> str(host_stack("worker"))
    'host-stack node:worker no-listener reject'
    """
    return Decision("host-stack", f"node:{node} no-listener", "reject")


def probe_decisions(decisions: Iterable[Decision]) -> list[Decision]:
    """The decisions about the probe's own packet: everything before a ``proxy`` hand-over."""
    out: list[Decision] = []
    for d in decisions:
        if d.kind == "proxy":
            break
        out.append(d)
    return out


def summarize(decisions: Iterable[Decision], verdict: str) -> str | None:
    """``decidedBy`` of one path: the rule that decided ``verdict`` (+ the SNAT, if allowed).

    * dropped / refused: the first DROP/REJECT rule met by the probe's own packet, else (an
      ingress flow) the first one met by the proxy's upstream connection; None when no rule
      decided (no route, no ARP answer, a closed pod port's RST);
    * allowed: the last policy that admitted the packet, else the last namespace profile,
      followed by ``; <the last masquerade>`` when a SNAT rewrote the source.

    >>> ds = [Decision("policy", "a/p egress", "allow"), Decision("profile", "b ingress", "allow"),
    ...       Decision("masquerade", "kube-proxy")]
    >>> summarize(ds, "allowed")
    'policy a/p egress allow; masquerade kube-proxy'
    >>> summarize([Decision("isolation", "b ingress", "drop")], "dropped")
    'isolation b ingress drop'
    >>> summarize([Decision("profile", "b ingress", "allow")], "refused") is None
    True
    >>> summarize([Decision("profile", "a egress", "allow"), Decision("proxy", "pod:x/nginx@w"),
    ...            Decision("isolation", "b ingress", "drop")], "dropped")
    'isolation b ingress drop'
    """
    decisions = list(decisions)
    path = probe_decisions(decisions)
    if verdict in ("dropped", "refused"):
        stop = next((d for d in path if d.stops), None)
        if stop is None:
            stop = next((d for d in decisions[len(path):] if d.stops), None)
        return str(stop) if stop is not None else None
    if verdict != "allowed":
        return None
    admitted = [d for d in path if d.kind == "policy" and d.verdict == "allow"] or [
        d for d in path if d.kind == "profile" and d.verdict == "allow"]
    masq = [d for d in path if d.kind == "masquerade"]
    parts = [str(admitted[-1])] if admitted else []
    if masq:
        parts.append(str(masq[-1]))
    return "; ".join(parts) or None
