"""Warn where a KubeSphere service-peer whitelist allows a port the policy never sees.

KubeSphere converts an egress whitelist whose peer is a Service into a NetworkPolicy rule whose
ports are the Service's ``port`` values (kubesphere/kubesphere release-3.4,
pkg/controller/network/nsnetworkpolicy/nsnetworkpolicy_controller.go, ``handlerPeerService``:
``intstr.FromInt(int(port.Port))`` for every ``service.Spec.Ports``), never its ``targetPort``.
A NetworkPolicy, however, is enforced on the pod after kube-proxy's DNAT (Calico polices in
filter FORWARD, after nat PREROUTING/OUTPUT): it sees the pod port, the targetPort. Where the two
differ the whitelist does not open the flow it names on a real cluster. netiso compiles the rule
exactly as KubeSphere writes it (netiso.model.tenancy), so the oracle predicts the drop and the lab
shows it; this module only says so in the scenario's warnings, naming the rule, the Service port it
allows and the pod port the policy sees.

>>> from netiso.model.types import PodInfo, Port, ServiceInfo, ServicePortInfo
>>> pod = PodInfo("db", "mysql", "worker", "100.64.1.1", {"app": "mysql"}, (Port(9376),))
>>> svc = ServiceInfo("db", "mysql", "ClusterIP", "Cluster", {"app": "mysql"},
...                   (ServicePortInfo(Port(80, target=9376), None),), "198.19.0.100", (pod,))
>>> mismatches(svc)
[('80/TCP', [9376])]
"""

from __future__ import annotations

from netiso.model.tenancy import NSNP_PREFIX
from netiso.model.types import ServiceInfo, Topology


def mismatches(svc: ServiceInfo) -> list[tuple[str, list[int]]]:
    """(Service port, the pod ports the policy sees for it) for every port whose targetPort differs.

    A numeric targetPort is the pod port; a named one is what each endpoint resolves (a name no
    endpoint resolves has no endpoint at all: the flow is refused before policy matters).
    """
    out = []
    for sp in svc.ports:
        if sp.port.target is None:
            continue
        if isinstance(sp.target, int):
            seen = [sp.target]
        else:
            seen = sorted({t for p in svc.endpoints_for(sp) if (t := sp.target_for(p)) is not None})
        if seen and seen != [sp.port.port]:
            out.append((str(sp.port), seen))
    return out


def service_peer_warnings(topo: Topology) -> list[str]:
    """One warning per rendered egress service-peer whitelist rule and Service port that differs."""
    rendered = {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in topo.policies}
    warnings: list[str] = []
    for project in topo.scenario.projects:
        for rule in project.whitelist:
            if rule.peer_kind != "service" or rule.direction != "egress":
                continue
            if (project.name, NSNP_PREFIX + rule.name) not in rendered:
                continue  # KubeSphere deletes or never converts it; tenancy already says why
            svc = topo.services.get(rule.peer_value)
            if svc is None:
                continue
            for port, pod_ports in mismatches(svc):
                seen = ", ".join(str(p) for p in pod_ports)
                warnings.append(
                    f"{project.name}: whitelist rule {rule.name} allows Service {svc.key} port {port} (KubeSphere "
                    f"writes the Service's port, not its targetPort), but the policy sees the pod port {seen} "
                    f"after kube-proxy's DNAT: this rule does not open {svc.key} port {port}")
    return warnings
