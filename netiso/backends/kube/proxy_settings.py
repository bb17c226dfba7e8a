"""Preflight: the cluster's kube-proxy runs with the settings the scenario predicts.

``cluster.kubeProxy`` (masqueradeAll, detectLocalMode, nodePortAddresses) changes verdicts and
sources, so a scenario predicted for one setting must not be compared with a cluster running
another. The settings are read where kubeadm and kind keep them - ConfigMap
``kube-system/kube-proxy``, key ``config.conf`` (a KubeProxyConfiguration, the file the
DaemonSet mounts; the same one :func:`netiso.backends.kube.preflight.check_proxy_mode` reads) - and
compared field by field; a difference is refused naming the field, both values and the fix.

Knowingly not read: command-line flags on the DaemonSet (``--masquerade-all``,
``--nodeport-addresses``) that would override the file; kubeadm and kind set none.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from netiso.backends.base import BackendUnavailable
from netiso.model.types import KubeProxySpec, Topology

WHERE = "ConfigMap kube-system/kube-proxy (config.conf)"


def effective_settings(conf: Mapping[str, Any]) -> KubeProxySpec | str:
    """The settings a KubeProxyConfiguration amounts to, or why netiso cannot predict them.

    ``detectLocalMode`` "" is ClusterCIDR (kube-proxy's default); ClusterCIDR without a
    ``clusterCIDR`` is a detector that detects nothing (kube-proxy's no-op detector): None.

    >>> effective_settings({"clusterCIDR": "100.64.0.0/16", "iptables": {"masqueradeAll": True}})
    KubeProxySpec(masqueradeAll=True, detectLocalMode='ClusterCIDR', nodePortAddresses=())
    >>> effective_settings({"detectLocalMode": "NodeCIDR"})
    "detectLocalMode 'NodeCIDR' (netiso predicts ClusterCIDR, or no detector)"
    """
    iptables = conf.get("iptables") or {}
    masq = bool(iptables.get("masqueradeAll") or False)
    mode = str(conf.get("detectLocalMode") or "ClusterCIDR")
    if mode != "ClusterCIDR":
        return f"detectLocalMode {mode!r} (netiso predicts ClusterCIDR, or no detector)"
    detect = "ClusterCIDR" if str(conf.get("clusterCIDR") or "") else "None"
    raw = conf.get("nodePortAddresses") or []
    try:
        cidrs = tuple(str(ipaddress.ip_network(str(c), strict=False)) for c in raw)
    except ValueError:
        return f"nodePortAddresses {raw!r} (netiso predicts CIDRs; 'primary' is not predicted)"
    return KubeProxySpec(masq, detect, cidrs)


def differences(want: KubeProxySpec, have: KubeProxySpec) -> list[str]:
    """Each field that differs, as ``field: cluster has X, the scenario says Y``."""
    out = []
    if want.masqueradeAll != have.masqueradeAll:
        out.append(f"iptables.masqueradeAll: the cluster has {str(have.masqueradeAll).lower()}, "
                   f"the scenario says {str(want.masqueradeAll).lower()}")
    if want.detectLocalMode != have.detectLocalMode:
        out.append(f"detectLocalMode: the cluster has {have.detectLocalMode} (clusterCIDR "
                   f"{'set' if have.detects_local else 'empty'}), the scenario says {want.detectLocalMode}")
    if sorted(want.nodePortAddresses) != sorted(have.nodePortAddresses):
        out.append(f"nodePortAddresses: the cluster has {list(have.nodePortAddresses) or 'all addresses'}, "
                   f"the scenario says {list(want.nodePortAddresses) or 'all addresses'}")
    return out


def check_proxy_settings(config_text: str | None, topos: Sequence[Topology]) -> None:
    """Refuse (BackendUnavailable) when a scenario's ``cluster.kubeProxy`` is not the cluster's.

    Every scenario is checked, those keeping the defaults too (a cluster with e.g.
    ``nodePortAddresses`` set would answer them otherwise than predicted). ``config_text`` None
    (no ConfigMap: the mode was asserted with ``--profile``) is accepted only for scenarios that
    keep kube-proxy's defaults.
    """
    custom = [t for t in topos if t.scenario.cluster.kubeProxy != KubeProxySpec()]
    if config_text is None:
        if custom:
            raise BackendUnavailable(
                f"scenario {custom[0].name!r} sets cluster.kubeProxy but {WHERE} cannot be read to confirm it; "
                "run it on a cluster whose kube-proxy reads that ConfigMap")
        return
    try:
        conf = yaml.safe_load(config_text)
    except yaml.YAMLError as exc:
        raise BackendUnavailable(f"{WHERE} is not YAML ({exc})") from None
    have = effective_settings(conf if isinstance(conf, dict) else {})
    for topo in topos:
        want = topo.scenario.cluster.kubeProxy
        if isinstance(have, str):
            raise BackendUnavailable(f"scenario {topo.name!r}: kube-proxy runs with {have}, {WHERE}; "
                                     "set the scenario's cluster.kubeProxy to the cluster's or reconfigure kube-proxy")
        diff = differences(want, have)
        if diff:
            raise BackendUnavailable(
                f"scenario {topo.name!r} predicts another kube-proxy than the cluster runs ({WHERE}): "
                + "; ".join(diff) + ". Set cluster.kubeProxy in the scenario to the cluster's values, or "
                "change the ConfigMap and restart the kube-proxy DaemonSet")
