"""Reading the Service and workload knobs of kube-proxy's and the endpoints' world from a scenario.

Split from :mod:`netiso.model.scenario_objects` (which calls these with the object's cursor):
``internalTrafficPolicy``, ``loadBalancerSourceRanges``, ``sessionAffinity``/``sessionAffinityConfig``,
``externalIPs`` and ``publishNotReadyAddresses`` of a Service, and a workload's per-replica
endpoint ``state``. Each refuses what the API server would refuse, or what cannot act, with the
file, document and field named.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from netiso.model import fields as f
from netiso.model.endpoint_states import STATES as ENDPOINT_STATES
from netiso.model.fields import Cursor
from netiso.model.symbols import parse_symbol
from netiso.model.types import TRAFFIC_POLICIES, ClusterSpec, ServiceSpec

SERVICE_KNOBS = ("internalTrafficPolicy", "loadBalancerSourceRanges", "sessionAffinity", "sessionAffinityConfig",
                 "externalIPs", "publishNotReadyAddresses")
# externalIPs netiso accepts: the documentation ranges (RFC 5737), routed nowhere on the internet and
# inside no lab network, so a lab routes them to a node without ever reaching outside its namespaces.
EXTERNAL_IP_RANGES = ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")


def read_external_ips(scur: Cursor, item: Mapping[str, Any], earlier: list[ServiceSpec]) -> tuple[str, ...]:
    """``externalIPs``: addresses kube-proxy captures for the Service on every node (any type).

    Only the documentation ranges, each address on one Service (two Services on one IP and port
    would be one kube-proxy rule shadowing the other).
    """
    if "externalIPs" not in item:
        return ()
    ecur = scur.at("externalIPs")
    listed = f.seq(ecur, item["externalIPs"], allow_empty=False)
    out: list[str] = []
    for i, value in enumerate(listed):
        text = f.string(ecur.at(i), value)
        try:
            addr = ipaddress.IPv4Address(text)
        except ValueError:
            ecur.at(i).fail(f"'{text}' is not an IPv4 address")
        if not any(addr in ipaddress.ip_network(r) for r in EXTERNAL_IP_RANGES):
            ecur.at(i).fail(f"'{text}': netiso takes external IPs from the documentation ranges "
                            f"{', '.join(EXTERNAL_IP_RANGES)} (the lab routes them inside its namespaces)")
        owner = next((s for s in earlier if text in s.externalIPs), None)
        if text in out or owner is not None:
            where = f"{owner.project}/{owner.name}" if owner else "this service"
            ecur.at(i).fail(f"'{text}' is already an external IP of {where}")
        out.append(text)
    return tuple(out)
AFFINITY_DEFAULT_TIMEOUT = 10800  # v1.DefaultClientIPServiceAffinitySeconds (3 hours)
AFFINITY_MAX_TIMEOUT = 86400  # the API's limit (pkg/apis/core/validation: 0 < timeoutSeconds <= 86400)


def read_session_affinity(scur: Cursor, item: Mapping[str, Any]) -> int | None:
    """``sessionAffinity: ClientIP`` (+ ``sessionAffinityConfig.clientIP.timeoutSeconds``), as the API takes them.

    Returns the stickiness timeout in seconds, None without affinity. The API rejects a config
    without ``ClientIP`` affinity and a timeout outside 1..86400; so does netiso, at load time.
    """
    affinity = f.choice(scur.at("sessionAffinity"), item.get("sessionAffinity"), ("None", "ClientIP"), "None")
    if "sessionAffinityConfig" not in item:
        return AFFINITY_DEFAULT_TIMEOUT if affinity == "ClientIP" else None
    ccur = scur.at("sessionAffinityConfig")
    if affinity != "ClientIP":
        ccur.fail("only applies with sessionAffinity: ClientIP (the API rejects it otherwise); add that or remove the key")
    config = f.mapping(ccur, item["sessionAffinityConfig"], ("clientIP",), required=("clientIP",))
    client = f.mapping(ccur.at("clientIP"), config["clientIP"], ("timeoutSeconds",))
    timeout = client.get("timeoutSeconds", AFFINITY_DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not 0 < timeout <= AFFINITY_MAX_TIMEOUT:
        ccur.at("clientIP").at("timeoutSeconds").fail(
            f"expected whole seconds, 1 to {AFFINITY_MAX_TIMEOUT}; got {f.describe(timeout)}")
    return timeout


def read_service_knobs(scur: Cursor, item: Mapping[str, Any], stype: str,
                       cluster: ClusterSpec) -> tuple[str, tuple[str, ...]]:
    """kube-proxy's per-Service knobs: ``internalTrafficPolicy`` and ``loadBalancerSourceRanges``.

    Source ranges are CIDRs or the symbols ``client:NAME`` / ``node:NAME`` (``node:*``), resolved
    like a whitelist ``cidr:`` peer (on a cluster: the client's and node's real addresses, known
    before the Service is created); Kubernetes accepts them on any type but kube-proxy only applies
    them to LoadBalancer IPs, so netiso refuses them elsewhere (a knob that cannot act).
    """
    from netiso.model.scenario_objects import check_cidr_symbol  # it imports this module

    itp = f.choice(scur.at("internalTrafficPolicy"), item.get("internalTrafficPolicy"), TRAFFIC_POLICIES, "Cluster")
    ranges: tuple[str, ...] = ()
    if "loadBalancerSourceRanges" in item:
        rcur = scur.at("loadBalancerSourceRanges")
        if stype != "LoadBalancer":
            rcur.fail("only a LoadBalancer service's VIP is filtered by source ranges (kube-proxy's KUBE-FW "
                      "chain); set type: LoadBalancer or remove the key")
        listed = f.seq(rcur, item["loadBalancerSourceRanges"], allow_empty=False)
        ranges = tuple(f.string(rcur.at(i), v) for i, v in enumerate(listed))
        for i, text in enumerate(ranges):
            check_cidr_symbol(rcur.at(i), text, cluster)
            if parse_symbol(text).kind not in ("cidr", "client", "node"):
                # a cluster learns pod and tunnel addresses only after the Service exists
                rcur.at(i).fail(f"'{text}': source ranges take a CIDR, client:NAME or node:NAME")
    return itp, ranges


def read_states(cur: Cursor, value: Any, nodes: tuple[str, ...]) -> dict[str, str]:
    """``state: {NODE: STATE}``: the endpoint state of the replica on each listed node (default ready).

    The states (netiso.model.endpoint_states.STATES) are what the replica's EndpointSlice
    conditions say; the pod runs and listens in all of them.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        cur.fail(f"expected a mapping of node to state, e.g. {{{nodes[0]}: not-ready}}; got {f.describe(value)}")
    out: dict[str, str] = {}
    for node, state in value.items():
        ncur = cur.at(str(node))
        if node not in nodes:
            ncur.fail(f"this workload has no replica on '{node}' (it runs on {', '.join(nodes)}); "
                      "name one of its nodes")
        if state not in ENDPOINT_STATES:
            ncur.fail(f"{f.describe(state)} is not an endpoint state; use one of {', '.join(ENDPOINT_STATES)}")
        out[node] = state
    return out
