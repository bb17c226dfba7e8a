"""calico-node's Felix settings as a Calico manifest install leaves them, for the seeded clusters.

Mirrors: the calico-node container's ``envFrom``/``env`` of the vendored
cluster-configs/addons/calico/<version>/calico.yaml (``FELIX_DEFAULTENDPOINTTOHOSTACTION`` ACCEPT
among them), and FelixConfiguration ``default`` as calico-node's startup writes it
(projectcalico/calico node/pkg/lifecycle/startup/startup.go: ``reportingInterval`` 0s,
``logSeverityScreen`` Info, no ``defaultEndpointToHostAction``; the per-node ``node.<name>`` with
RETURN it writes only off the Kubernetes datastore). Read by netiso's preflight
(netiso/backends/kube/felix_settings.py).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]
CALICO_ADDON = Path(__file__).resolve().parents[3] / "cluster-configs" / "addons" / "calico"
FELIX_ENV = {"name": "FELIX_DEFAULTENDPOINTTOHOSTACTION", "value": "ACCEPT"}


@functools.cache
def calico_node_env() -> tuple[tuple[Obj, ...], tuple[Obj, ...]]:
    """(envFrom, env) of the vendored calico.yaml's calico-node container (the newest version), or
    calico.yaml's Felix variable alone when none is vendored."""
    dirs = sorted(d for d in CALICO_ADDON.glob("*") if (d / "calico.yaml").is_file()) if CALICO_ADDON.is_dir() else []
    if dirs:
        docs = yaml.load_all((dirs[-1] / "calico.yaml").read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        for d in docs:
            if d and d.get("kind") == "DaemonSet" and d["metadata"]["name"] == "calico-node":
                c = next(c for c in d["spec"]["template"]["spec"]["containers"] if c["name"] == "calico-node")
                return tuple(c.get("envFrom") or ()), tuple(c.get("env") or ())
    return (), (FELIX_ENV,)


def felix_default_config(api_version: str) -> Obj:
    """FelixConfiguration ``default`` as calico-node's startup creates it."""
    return {"apiVersion": api_version, "kind": "FelixConfiguration", "metadata": {"name": "default"},
            "spec": {"reportingInterval": "0s", "logSeverityScreen": "Info"}}
