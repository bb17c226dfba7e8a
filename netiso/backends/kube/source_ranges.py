"""``loadBalancerSourceRanges`` with the cluster's addresses, before the Service is created.

The kube backend creates Services from the planned topology (the lab's address plan), and
learns the real addresses (ClusterFacts) only once pods are Ready. A source range names a
client or a node, whose addresses do not depend on anything netiso creates: the clients answer
through their command (``ip route get``) and the nodes' InternalIPs are in preflight's
findings. So the ranges are resolved from those before the Services step; the loader accepts
no other symbols there (``service_knob_input.read_service_knobs``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from netiso.model.addressing import resolve
from netiso.model.types import ClusterFacts, Topology


def needs_real_addresses(planned: Topology) -> bool:
    """True when a Service of ``planned`` carries source ranges (anything to resolve)."""
    return any(s.loadBalancerSourceRanges for s in planned.scenario.services)


def with_real_source_ranges(planned: Topology, client_ips: Mapping[str, str],
                            node_ips: Mapping[str, str]) -> Topology:
    """``planned`` whose Services' ``source_ranges`` name the clients' and nodes' real addresses.

    Nothing else of ``planned`` changes: the Services are still created from the plan, and the
    whole topology is resolved again from ClusterFacts after discovery.
    """
    real = resolve(planned.scenario, ClusterFacts(client_ips=dict(client_ips), node_ips=dict(node_ips)))
    services = {key: replace(svc, source_ranges=real.services[key].source_ranges) if key in real.services else svc
                for key, svc in planned.services.items()}
    return replace(planned, services=services)
