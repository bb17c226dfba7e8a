"""The emulated API server's discovery documents: ``/version``, ``/api``, ``/apis`` and each group/version.

Mirrors kube-apiserver 1.33's legacy (unaggregated) discovery: ``APIVersions`` for ``/api``,
``APIGroupList`` for ``/apis`` with the preferred version first, ``APIGroup`` per group and an
``APIResourceList`` per group/version (k8s.io/apiserver pkg/endpoints/discovery: root.go, group.go,
version.go), built from what the store serves - a CRD's group appears once it is Established.

Knowingly absent: aggregated discovery v2 (``application/json;g=apidiscovery.k8s.io``; a client
asking for it gets the legacy documents, as from an apiserver with the feature off).
"""

from __future__ import annotations

from typing import Any

from . import status
from .resources import Catalogue

VERSION_INFO = {"major": "1", "minor": "33", "emulationMajor": "1", "emulationMinor": "33",
                "minCompatibilityMajor": "1", "minCompatibilityMinor": "32", "gitVersion": "v1.33.1",
                "gitCommit": "8adc0f041b8e7ad1d30e29cc59c6ae7a15e19828", "gitTreeState": "clean",
                "buildDate": "2025-05-15T08:19:08Z", "goVersion": "go1.24.2", "compiler": "gc", "platform": "linux/amd64"}


def discovery_document(cat: Catalogue, path: str) -> dict[str, Any] | None:
    """The discovery answer for ``path`` (``/version``, ``/api``, ``/apis``...), None for any other path;
    a group or version ``cat`` does not serve is a 404."""
    groups = cat.group_versions()
    if path == "/version":
        return VERSION_INFO
    if path == "/api":
        return {"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "172.18.0.2:6443"}]}
    if path == "/apis":
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group(g, vs) for g, vs in groups.items()]}
    if path == "/api/v1":
        return _resource_list(cat, "", "v1")
    parts = [p for p in path.split("/") if p]
    if len(parts) == 2 and parts[0] == "apis":
        if parts[1] not in groups:
            raise status.page_not_found()
        return {"kind": "APIGroup", "apiVersion": "v1", **_group(parts[1], groups[parts[1]])}
    if len(parts) == 3 and parts[0] == "apis":
        if parts[2] not in groups.get(parts[1], []):
            raise status.page_not_found()
        return _resource_list(cat, parts[1], parts[2])
    return None

def _group(name: str, versions: list[str]) -> dict[str, Any]:
    gvs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": gvs, "preferredVersion": gvs[0]}

def _resource_list(cat: Catalogue, group: str, version: str) -> dict[str, Any]:
    entries = [e for r in cat.in_version(group, version) for e in r.discovery()]
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{group}/{version}" if group else version,
            "resources": entries}
