"""Preflight: Felix runs, on every node a scenario uses, with the ``defaultEndpointToHostAction`` it predicts.

``cluster.felix.defaultEndpointToHostAction`` decides a pod's packets to its own node (ACCEPT:
the host stack answers; RETURN: kube-proxy's INPUT rules run; DROP: dropped), so a scenario
predicted for one action must not be compared with a cluster running another. Felix's effective
value is read the way Felix resolves it, per node (projectcalico/calico v3.32.1):

1. the environment of calico-node's container (``felix/config/env_var_loader.go``: any variable
   whose name starts with ``FELIX_``, case-insensitive, so ``FELIX_DEFAULTENDPOINTTOHOSTACTION``
   or ``FELIX_DefaultEndpointToHostAction``; an empty value is ignored, ``UpdateFrom``).
   calico.yaml sets it to ACCEPT (DaemonSet ``kube-system/calico-node``), so does the Tigera
   operator (tigera/operator pkg/render/node.go, DaemonSet ``calico-system/calico-node``);
2. the config file (``felix/config/file_loader.go``, /etc/calico/felix.cfg; calico-node's image
   ships node/filesystem/etc/calico/felix.cfg, which does not set it);
3. FelixConfiguration ``node.<nodename>`` (per host), then a selector-scoped FelixConfiguration
   (any other name with ``spec.nodeSelector``; several matching: the oldest, then the name,
   wins as a whole: felix/calc/config_batcher.go MergeSelectorConfigs), then ``default``
   (libcalico-go/lib/backend/syncersv1/updateprocessors/configurationprocessor.go);
4. Felix's built-in default: DROP (``felix/config/config_params.go``:
   ``DefaultEndpointToHostAction string `config:"oneof(DROP,RETURN,ACCEPT);DROP;non-zero,die-on-fail"```).

That order is ``SourcesInDescendingOrder`` in config_params.go (InternalOverride,
EnvironmentVariable, ConfigFile, DatastorePerHost, DatastorePerSelector, DatastoreGlobal).
Values are case-insensitive (``OneofListParam``); anything else makes Felix exit.

The DaemonSet is looked for in ``calico-system`` (operator installs) first, then ``kube-system``
(manifest installs); the FelixConfigurations in the API group Calico's pools are read from
(preflight.calico_api). A difference is refused naming the node, both values, where the
cluster's value came from and the fix, as kube-proxy's settings are (proxy_settings.py).

Knowingly not read: the config file inside the container (calico-node's own sets nothing
here); ``$(VAR)`` references inside an env value; environment a Secret or the downward API
provides (netiso holds no grant for Secrets: such a source is a refusal that says so, when it
could decide); node selectors other than ``all()`` (Calico's selector language is not
evaluated: a refusal when such a FelixConfiguration could decide).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from netiso.backends.base import BackendUnavailable
from netiso.backends.kube.client import Kube, KubeApiError
from netiso.model.types import ENDPOINT_TO_HOST_ACTIONS, Topology

FIELD = "defaultEndpointToHostAction"
ENV = "FELIX_DEFAULTENDPOINTTOHOSTACTION"
CONTAINER = "calico-node"
DAEMONSET = "calico-node"
DAEMONSET_NAMESPACES = ("calico-system", "kube-system")  # operator install first, then calico.yaml
BUILTIN_DEFAULT = "DROP"  # felix/config/config_params.go


@dataclass(frozen=True)
class Setting:
    """Felix's action on one node, where it came from and how to change it (``{want}``: the scenario's value)."""

    value: str
    source: str
    fix: str


@dataclass(frozen=True)
class _Candidate:
    """One place calico-node's environment may take the variable from; ``raw`` None: netiso cannot read it."""

    raw: str | None
    where: str


def canonical(raw: str) -> str | None:
    """Felix's value for ``raw`` (case-insensitive), None when Felix would refuse to start.

    >>> canonical("Accept"), canonical("return"), canonical("none")
    ('ACCEPT', 'RETURN', None)
    """
    up = raw.strip().upper()
    return up if up in ENDPOINT_TO_HOST_ACTIONS else None


def find_daemonset(kube: Kube) -> tuple[str, dict[str, Any]]:
    """(namespace, DaemonSet) of calico-node; a refusal when neither namespace has one."""
    for ns in DAEMONSET_NAMESPACES:
        ds = kube.get("apps/v1", "DaemonSet", DAEMONSET, ns)  # a 403 is the client's refusal naming the grant
        if ds is not None:
            return ns, ds
    raise BackendUnavailable(
        f"cannot read Felix's {FIELD}: no DaemonSet {DAEMONSET} in {' or '.join(DAEMONSET_NAMESPACES)} (where the "
        "Tigera operator and calico.yaml run Felix); netiso predicts Calico's datapath and reads Felix's settings "
        "from calico-node's environment")


def _config_map(kube: Kube, name: str, namespace: str) -> Mapping[str, str] | None:
    cm = kube.get("v1", "ConfigMap", name, namespace)
    return None if cm is None else dict(cm.get("data") or {})


def _env_candidates(kube: Kube, namespace: str, container: Mapping[str, Any], ds_name: str) -> list[_Candidate]:
    """Every source of the variable in Kubernetes' order (envFrom, then env; a later one wins)."""
    out: list[_Candidate] = []
    here = f"DaemonSet {namespace}/{ds_name} container {CONTAINER}"
    for src in container.get("envFrom") or []:
        prefix = str(src.get("prefix") or "")
        if src.get("configMapRef"):
            name = str(src["configMapRef"].get("name"))
            data = _config_map(kube, name, namespace) or {}
            for key, val in data.items():
                if (prefix + key).lower() == ENV.lower():
                    out.append(_Candidate(str(val), f"{here}, envFrom ConfigMap {namespace}/{name} key {key}"))
        elif src.get("secretRef"):
            name = str(src["secretRef"].get("name"))
            out.append(_Candidate(None, f"{here}, envFrom Secret {namespace}/{name} (netiso holds no grant to read "
                                        "Secrets, so cannot tell whether it sets the variable)"))
    for var in container.get("env") or []:
        if str(var.get("name", "")).lower() != ENV.lower():
            continue
        where = f"{here}, env {var['name']}"
        ref = (var.get("valueFrom") or {})
        if "value" in var or not ref:
            out.append(_Candidate(str(var.get("value") or ""), where))
        elif ref.get("configMapKeyRef"):
            cref = ref["configMapKeyRef"]
            data = _config_map(kube, str(cref.get("name")), namespace)
            if data is not None and str(cref.get("key")) in data:
                out.append(_Candidate(str(data[str(cref.get("key"))]),
                                      f"{where} from ConfigMap {namespace}/{cref.get('name')} key {cref.get('key')}"))
        else:
            kind = next(iter(ref), "valueFrom")
            out.append(_Candidate(None, f"{where} from {kind} (netiso does not read it)"))
    return out


def env_setting(kube: Kube) -> Setting | None:
    """What calico-node's environment sets (None: the variable is not set, or set empty, which Felix ignores)."""
    namespace, ds = find_daemonset(kube)
    containers = (((ds.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    container = next((c for c in containers if c.get("name") == CONTAINER), None)
    if container is None:
        raise BackendUnavailable(f"cannot read Felix's {FIELD}: DaemonSet {namespace}/{DAEMONSET} has no container "
                                 f"{CONTAINER} (it has: {', '.join(str(c.get('name')) for c in containers) or 'none'})")
    candidates = _env_candidates(kube, namespace, container, DAEMONSET)
    if not candidates:
        return None
    last = candidates[-1]
    if last.raw is None:
        raise BackendUnavailable(f"cannot read Felix's {FIELD}: {ENV} may come from {last.where}; set it with a "
                                 "plain value on the container, or in a FelixConfiguration")
    if last.raw == "":
        return None
    value = canonical(last.raw)
    if value is None:
        raise BackendUnavailable(f"Felix's {ENV}={last.raw!r} ({last.where}) is not one of "
                                 f"{', '.join(ENDPOINT_TO_HOST_ACTIONS)}: Felix refuses to start with it")
    ds_ref = f"DaemonSet {namespace}/{DAEMONSET}"
    fix = (f"the Tigera operator owns {ds_ref}'s environment (it writes {ENV}=ACCEPT, ahead of any "
           "FelixConfiguration), so run the scenario on a cluster whose Felix runs {want}"
           if namespace == "calico-system" else
           f"or set it on {ds_ref}: kubectl -n {namespace} set env daemonset/{DAEMONSET} {ENV}={{want}}")
    return Setting(value, f"environment: {last.where}", fix)


def felix_configurations(kube: Kube, calico_api: str) -> list[dict[str, Any]]:
    """Every FelixConfiguration in ``calico_api`` (a 403 is the client's refusal naming the grant; a 404,
    no such resource served, is none)."""
    try:
        return kube.list(calico_api, "FelixConfiguration")
    except KubeApiError as exc:
        if exc.status == 404:
            return []
        raise


def _datastore_value(fc: Mapping[str, Any], what: str) -> str | None:
    raw = str((fc.get("spec") or {}).get(FIELD) or "")
    if not raw:
        return None  # an empty field is no value (configurationprocessor.go: deleted key)
    value = canonical(raw)
    if value is None:
        raise BackendUnavailable(f"{what} has {FIELD} {raw!r}, not one of {', '.join(ENDPOINT_TO_HOST_ACTIONS)}: "
                                 "Felix refuses to start with it")
    return value


def _patch_fix(name: str) -> str:
    return (f"or kubectl patch felixconfiguration {name} --type merge -p "
            f"'{{\"spec\":{{\"{FIELD}\":\"{{want}}\"}}}}'")


def datastore_setting(configs: Sequence[Mapping[str, Any]], node: str) -> Setting:
    """Felix's value on ``node`` when its environment does not set it: per node, per selector, global, built-in."""
    by_name = {str(fc["metadata"]["name"]): fc for fc in configs}
    own = by_name.get(f"node.{node}")
    if own is not None:
        value = _datastore_value(own, f"FelixConfiguration node.{node}")
        if value is not None:
            return Setting(value, f"FelixConfiguration node.{node} (per node)", _patch_fix(f"node.{node}"))
    scoped = [fc for name, fc in by_name.items()
              if name != "default" and not name.startswith("node.") and (fc.get("spec") or {}).get("nodeSelector")]
    if any((fc.get("spec") or {}).get(FIELD) for fc in scoped):
        other = [fc for fc in scoped if str(fc["spec"]["nodeSelector"]).strip() != "all()"]
        if other:
            names = ", ".join(f"{fc['metadata']['name']} ({fc['spec']['nodeSelector']})" for fc in other)
            raise BackendUnavailable(
                f"cannot tell Felix's {FIELD} on node {node}: selector-scoped FelixConfigurations {names} may apply "
                "and netiso does not evaluate Calico node selectors; set the value in calico-node's environment or "
                f"in FelixConfiguration node.{node}")
        winner = min(scoped, key=lambda fc: (str(fc["metadata"].get("creationTimestamp") or ""),
                                             str(fc["metadata"]["name"])))
        name = str(winner["metadata"]["name"])
        value = _datastore_value(winner, f"FelixConfiguration {name}")
        if value is not None:
            return Setting(value, f"FelixConfiguration {name} (nodeSelector all())", _patch_fix(name))
    return _global(by_name)


def _global(by_name: Mapping[str, Mapping[str, Any]]) -> Setting:
    default = by_name.get("default")
    if default is not None:
        value = _datastore_value(default, "FelixConfiguration default")
        if value is not None:
            return Setting(value, "FelixConfiguration default (global)", _patch_fix("default"))
    return Setting(BUILTIN_DEFAULT, f"Felix's built-in default ({ENV} unset, no FelixConfiguration sets {FIELD})",
                   _patch_fix("default"))


def check_felix_settings(kube: Kube, calico_api: str, topos: Sequence[Topology],
                         node_maps: Mapping[str, Mapping[str, str]]) -> dict[str, Setting]:
    """Refuse (BackendUnavailable) when Felix on a node a scenario uses runs another action than it says.

    ``node_maps``: scenario -> {scenario node: cluster node}. Returns cluster node -> Setting.
    """
    env = env_setting(kube)
    configs = [] if env is not None else felix_configurations(kube, calico_api)
    found: dict[str, Setting] = {}
    for topo in topos:
        want = topo.scenario.cluster.felix.defaultEndpointToHostAction
        for scenario_node, cluster_node in node_maps.get(topo.name, {}).items():
            have = found.get(cluster_node) or env or datastore_setting(configs, cluster_node)
            found[cluster_node] = have
            if have.value != want:
                raise BackendUnavailable(
                    f"{topo.scenario.source.file}: scenario {topo.name!r} says cluster.felix.{FIELD} {want}, but "
                    f"Felix on node {cluster_node} (scenario node {scenario_node}) runs with {have.value}, from "
                    f"{have.source}. Set cluster.felix.{FIELD}: {have.value} in the scenario; "
                    + have.fix.replace("{want}", want))
    return found
