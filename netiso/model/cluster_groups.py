"""Which cluster a scenario needs: its group (encapsulation, load balancer) and its settings tag.

Why in the model: a scenario's kube-proxy and Calico settings are cluster-wide, so scenarios that
ask for different ones cannot share a cluster. The kind backend builds one cluster per group and
settings tag (kind/configs.group_of), and the top layer (``--group ENC/LB[/default|own]`` of the
CLI and of the pytest plugin) selects scenarios by the same rule, so the rule lives below both.
"""

from __future__ import annotations

from netiso.model.types import ClusterSpec, KubeProxySpec


def cluster_settings_tag(cluster: ClusterSpec) -> str:
    """The settings part of a scenario's cluster key ("" when it runs on its group's default cluster)."""
    return settings_tag(cluster.kubeProxy, calico_tag(cluster.felix.defaultEndpointToHostAction, cluster.natOutgoing))


GROUP_SETTINGS = ("default", "own")  # --group ENC/LB/default | ENC/LB/own


def parse_group(text: str) -> tuple[str, str, str]:
    """``ENC/LB`` or ``ENC/LB/default`` / ``ENC/LB/own`` -> (encapsulation, load balancer, settings).

    ``default`` keeps the scenarios that run on the group's default cluster, ``own`` those whose
    kube-proxy or Calico settings need a cluster of their own (a CI job each, so neither waits
    for the other's clusters); without the third part, both. ValueError for anything else.

    >>> parse_group("vxlan/metallb"), parse_group("ipip/openelb/own")
    (('vxlan', 'metallb', ''), ('ipip', 'openelb', 'own'))
    """
    from netiso.model.types import ENCAPSULATIONS, LOAD_BALANCERS

    parts = text.split("/")
    enc, lb, settings = (parts + [""])[:3] if len(parts) in (2, 3) else ("", "", "")
    if (enc not in ENCAPSULATIONS or lb not in LOAD_BALANCERS or lb == "none"
            or (len(parts) == 3 and settings not in GROUP_SETTINGS)):
        raise ValueError(f"expected ENCAPSULATION/LOADBALANCER[/default|own] with ENCAPSULATION one of "
                         f"{', '.join(ENCAPSULATIONS)} and LOADBALANCER metallb or openelb (e.g. vxlan/metallb, "
                         "vxlan/metallb/own)")
    return enc, lb, settings


def in_cluster_group(cluster: ClusterSpec, group: tuple[str, str, str]) -> bool:
    """Whether a scenario's cluster belongs to a parsed group (``loadBalancer: none`` rides with metallb)."""
    enc, lb, settings = group
    if cluster.encapsulation != enc or not (cluster.loadBalancer == lb or (cluster.loadBalancer == "none"
                                                                           and lb == "metallb")):
        return False
    if settings:
        return (cluster_settings_tag(cluster) != "") == (settings == "own")
    return True


def calico_tag(endpoint_to_host: str = "ACCEPT", nat_outgoing: bool = True) -> str:
    """A short stable name of Calico settings that differ from calico.yaml's ("" for its defaults:
    ``FELIX_DEFAULTENDPOINTTOHOSTACTION`` ACCEPT, an IPv4 pool with natOutgoing).

    >>> calico_tag(), calico_tag("DROP"), calico_tag(nat_outgoing=False)
    ('', 'defaultEndpointToHostAction=DROP', 'natOutgoing=false')
    """
    parts = [] if endpoint_to_host == "ACCEPT" else [f"defaultEndpointToHostAction={endpoint_to_host}"]
    if not nat_outgoing:
        parts.append("natOutgoing=false")
    return ",".join(parts)


def settings_tag(kube_proxy: KubeProxySpec, calico: str) -> str:
    """The group key's third part: kube-proxy's tag, then Calico's ("" when both are defaults).

    >>> settings_tag(KubeProxySpec(masqueradeAll=True), "natOutgoing=false")
    'masqueradeAll,natOutgoing=false'
    """
    return ",".join(t for t in (proxy_tag(kube_proxy), calico) if t)


def proxy_tag(spec: KubeProxySpec) -> str:
    """A short stable name of non-default kube-proxy settings ("" for the defaults).

    >>> proxy_tag(KubeProxySpec()), proxy_tag(KubeProxySpec(masqueradeAll=True))
    ('', 'masqueradeAll')
    >>> proxy_tag(KubeProxySpec(nodePortAddresses=("198.18.0.11/32",)))
    'nodePortAddresses=198.18.0.11/32'
    """
    parts = ["masqueradeAll"] if spec.masqueradeAll else []
    if not spec.detects_local:
        parts.append("detectLocalMode=None")
    if spec.nodePortAddresses:
        parts.append("nodePortAddresses=" + "+".join(spec.nodePortAddresses))
    return ",".join(parts)
