"""Names of lab objects: network namespaces and interfaces.

Interface names are limited to 15 characters (IFNAMSIZ), so host-side pod veths are named as
Calico names them (``cali`` + 11 hex characters of a hash of the pod identity); namespaces
carry the run-unique prefix so that a janitor can find exactly what one run created.
"""

from __future__ import annotations

import hashlib

from netiso.model.types import PodInfo


def cali_iface(pod: PodInfo) -> str:
    """Host-side veth of a pod, ``cali`` + 11 hex chars, like Calico's CNI plugin.

    >>> from netiso.model.types import PodInfo
    >>> cali_iface(PodInfo("demo", "web", "worker", "100.64.1.1", {}, ()))
    'calie4ff24dd77c'
    """
    digest = hashlib.sha1(f"{pod.project}.{pod.name}".encode()).hexdigest()
    return "cali" + digest[:11]


def node_ns(prefix: str, node: str) -> str:
    """Namespace of a node: ``<prefix>-n-<node>``."""
    return f"{prefix}-n-{node}"


def client_ns(prefix: str, client: str) -> str:
    """Namespace of an external client: ``<prefix>-c-<client>``."""
    return f"{prefix}-c-{client}"


def pod_ns(prefix: str, pod: PodInfo) -> str:
    """Namespace of a pod: ``<prefix>-p-<project>-<workload>-<node>``."""
    return f"{prefix}-p-{pod.project}-{pod.name}"


def switch_ns(prefix: str) -> str:
    """Namespace holding the node-network bridge: ``<prefix>-sw``."""
    return f"{prefix}-sw"
