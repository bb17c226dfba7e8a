"""A cluster-wide answer to the founding question, where it is the smaller one.

The minimal whitelist (:mod:`netiso.oracle.minimal`) is per project: when several isolated
projects each need the same node/tunnel address (a NodePort/LoadBalancer masquerades every
client to it) or the same namespace (a gateway's), each project carries its own entry. KubeSphere
has two cluster-wide settings that every ``nsnp-network-isolate`` picks up
(kubesphere/kubesphere release-3.4, pkg/controller/network/nsnetworkpolicy/nsnetworkpolicy_controller.go
``generateNodeRule`` and ``generateNSNP``):

* one ``kubesphere.io/snat-node-ips`` annotation per address admits it in every isolated
  project (scenario key ``cluster.kubesphere.snatNodeIPs``);
* one ``allowedIngressNamespaces`` entry admits a namespace everywhere
  (``cluster.kubesphere.allowedIngressNamespaces``).

This module proposes them only where they are *smaller*: fewer settings than the whitelist
entries they replace (so one project alone never gets the proposal), and only when the oracle
shows that every wanted flow the minimal whitelist satisfies still passes with those entries
replaced. The price is said, not hidden: the settings admit every port (entries carry ports),
in every isolated project of the cluster, and the unwanted flows they open beyond the minimal
whitelist are listed (``opens``).

>>> ClusterAlternative(("kubesphere-controls-system",), (), 2).json()["replaces"]
2
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from netiso.model.symbols import parse_symbol
from netiso.model.types import FlowSpec, KubeSphereSettings, Scenario
from netiso.oracle.minimal import Entry, FlowNote, MinimalConfig, _Predictor

PRICE = ("cluster-wide: admits these sources on every port of every isolated project (workspace and "
         "project isolation), where the whitelist entries it replaces admit only their ports in their project")


@dataclass
class ClusterAlternative:
    """KubeSphere settings that replace ``replaces`` whitelist entries of the minimal answer."""

    allowed_ingress_namespaces: tuple[str, ...]
    snat_node_ips: tuple[str, ...]
    replaces: int
    replaced: tuple[Entry, ...] = ()
    opens: list[FlowNote] = field(default_factory=list)  # unwanted flows opened beyond the minimal whitelist
    verified: bool | None = None  # set by a backend's proof
    proof: list[str] = field(default_factory=list)

    @property
    def settings(self) -> int:
        return len(self.allowed_ingress_namespaces) + len(self.snat_node_ips)

    def json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kubesphere": {"allowedIngressNamespaces": list(self.allowed_ingress_namespaces),
                           "snatNodeIPs": list(self.snat_node_ips)},
            "replaces": self.replaces, "price": PRICE, "opens": [n.json() for n in self.opens]}
        if self.verified is not None:
            out["verified"] = self.verified
            if self.proof:
                out["proof"] = list(self.proof)
        return out


def cluster_alternative(result: MinimalConfig) -> ClusterAlternative | None:
    """The cluster-wide settings that answer ``result`` with fewer items, or ``None``."""
    snat: dict[str, list[Entry]] = {}
    namespaces: dict[str, list[Entry]] = {}
    for e in result.entries:
        if e.peer_kind == "cidr" and parse_symbol(e.peer_value).kind in ("node", "tunnel"):
            snat.setdefault(e.peer_value, []).append(e)
        elif e.peer_kind == "project":
            namespaces.setdefault(e.peer_value, []).append(e)
    # a namespace earns a setting only when two or more projects need it; addresses go together
    # (one annotation per node), so they are judged as one group
    ns_keep = {n: es for n, es in namespaces.items() if len({e.project for e in es}) > 1}
    snat_entries = [e for es in snat.values() for e in es]
    use_snat = len(snat) < len(snat_entries)
    replaced = [e for es in ns_keep.values() for e in es] + (snat_entries if use_snat else [])
    n_settings = len(ns_keep) + (len(snat) if use_snat else 0)
    if not replaced or n_settings >= len(replaced):
        return None
    base = result.scenario.cluster.kubesphere
    settings = KubeSphereSettings(
        tuple(dict.fromkeys((*base.allowed_ingress_namespaces, *ns_keep))),
        tuple(dict.fromkeys((*base.snat_node_ips, *(snat if use_snat else ())))))
    alt_scenario = with_settings(result.base, settings)
    keep = [e for e in result.entries if e not in replaced]
    oracle = _Predictor(alt_scenario, result.profile)
    wanted = [f for f in result.base.flows if f.intent == "wanted" and _satisfied(result, f)]
    if not oracle.all_pass(keep, wanted):
        return None  # e.g. a whitelist-only (unmanaged) project: no nsnp-network-isolate picks the settings up
    before = _Predictor(result.base, result.profile)
    opens = [FlowNote(f, f"{_port(f)}admitted by the cluster-wide settings, not by the minimal whitelist")
             for f in result.base.flows if f.intent == "unwanted"
             and oracle.evaluate(keep, f).passes and not before.evaluate(result.entries, f).passes]
    return ClusterAlternative(settings.allowed_ingress_namespaces, settings.snat_node_ips, len(replaced),
                              tuple(replaced), opens)


def with_settings(scenario: Scenario, settings: KubeSphereSettings) -> Scenario:
    """``scenario`` with ``cluster.kubesphere`` replaced."""
    return replace(scenario, cluster=replace(scenario.cluster, kubesphere=settings))


def kept_entries(result: MinimalConfig, alt: ClusterAlternative) -> list[Entry]:
    """The minimal whitelist's entries the settings do not replace."""
    return [e for e in result.entries if e not in alt.replaced]


def alternative_table(alt: ClusterAlternative, where: str = "lab") -> list[str]:
    """Lines for ``minimal-config``'s table: what to set instead, what it replaces, its price."""
    lines = [f"smaller cluster-wide answer: {alt.settings} KubeSphere setting(s) instead of {alt.replaces} "
             "whitelist entries:"]
    if alt.snat_node_ips:
        lines.append(f"  cluster.kubesphere.snatNodeIPs: [{', '.join(alt.snat_node_ips)}]   "
                     "(node annotation kubesphere.io/snat-node-ips)")
    if alt.allowed_ingress_namespaces:
        lines.append(f"  cluster.kubesphere.allowedIngressNamespaces: [{', '.join(alt.allowed_ingress_namespaces)}]"
                     "   (network options nsnpOptions.allowedIngressNamespaces)")
    lines.append(f"  replaces: {', '.join(f'{e.project}: {e.peer}' for e in alt.replaced)}")
    lines.append(f"  price: {PRICE}")
    lines.extend(f"  opens: {n.flow.label}: {n.because}" for n in alt.opens)
    if alt.verified is not None:
        lines.append(f"  verified on the {where}: " + ("yes" if alt.verified else "NO"))
        lines.extend(f"    ✗ {msg}" for msg in alt.proof)
    return lines


def _port(flow: FlowSpec) -> str:
    return f"on {flow.port}: " if flow.port is not None else ""


def _satisfied(result: MinimalConfig, flow: FlowSpec) -> bool:
    return not any(n.flow == flow for p in result.projects for n in p.unsatisfiable)


__all__: Sequence[str] = ("ClusterAlternative", "alternative_table", "cluster_alternative", "kept_entries",
                          "with_settings")
