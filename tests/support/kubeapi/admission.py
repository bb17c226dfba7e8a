"""Pod Security Admission, as the built-in ``PodSecurity`` admission plugin enforces it.

Why: a real cluster refuses a hostNetwork pod in a namespace whose ``pod-security.kubernetes.io/
enforce`` label (or the cluster's AdmissionConfiguration default) is ``baseline`` or ``restricted``;
an emulator that admits it cannot show that netiso labels its namespaces as its pods need.

Mirrors k8s.io/pod-security-admission: ``admission/admission.go`` (the level from the namespace's
``enforce`` label, else the configured default; a 403 ``pods "<name>" is forbidden: violates
PodSecurity "<level>:<version>": <reason> (<detail>), ...``), ``policy/registry.go`` (baseline
checks, then for ``baseline`` the checks a restricted one overlaps, for ``restricted`` the
restricted checks, each group in the order the check files register) and the check files'
reasons and details (``check_hostNamespaces.go``, ``check_hostPorts.go``, ``check_privileged.go``,
``check_capabilities_baseline.go``, ``check_hostPathVolumes.go``,
``check_allowPrivilegeEscalation.go``, ``check_capabilities_restricted.go``,
``check_restrictedVolumes.go``, ``check_runAsNonRoot.go``, ``check_runAsUser.go``,
``check_seccompProfile_*.go``). Pods only, on create (the plugin also checks pod updates and
workload templates, where it only warns).

Knowingly absent: AppArmor, SELinux, procMount, sysctls and Windows checks, exemptions
(usernames, runtime classes, namespaces), ``audit``/``warn`` modes and version pinning (every level
is evaluated as ``latest``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import status

ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
LEVELS = ("privileged", "baseline", "restricted")
BASELINE_CAPS = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
                 "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected",
                      "secret"}
Spec = dict[str, Any]
Result = tuple[str, str] | None  # (forbidden reason, detail) or None when allowed


def _containers(spec: Spec) -> list[dict[str, Any]]:
    return [*(spec.get("initContainers") or []), *(spec.get("containers") or []),
            *(spec.get("ephemeralContainers") or [])]


def _plural(one: str, many: str, n: int) -> str:
    return one if n == 1 else many


def _quote(names: list[str]) -> str:
    return ", ".join(f'"{n}"' for n in names)


def _named_containers(names: list[str]) -> str:
    """``container "a"`` / ``containers "a", "b"``, as the checks' pluralize + joinQuote write them."""
    return f"{_plural('container', 'containers', len(names))} {_quote(names)}"


def _sc(container: dict[str, Any]) -> dict[str, Any]:
    return container.get("securityContext") or {}


def host_namespaces(spec: Spec) -> Result:
    used = [f"{k}=true" for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k)]
    return ("host namespaces", ", ".join(used)) if used else None


def host_ports(spec: Spec) -> Result:
    names, ports = [], []
    for c in _containers(spec):
        mine = [str(p["hostPort"]) for p in c.get("ports") or [] if p.get("hostPort")]
        if mine:
            names.append(c.get("name", ""))
            ports += mine
    if not names:
        return None
    return ("hostPort", f"{_named_containers(names)} "
                        f"{_plural('uses', 'use', len(names))} {_plural('hostPort', 'hostPorts', len(ports))} "
                        f"{', '.join(ports)}")


def privileged(spec: Spec) -> Result:
    names = [c.get("name", "") for c in _containers(spec) if _sc(c).get("privileged")]
    if not names:
        return None
    return ("privileged", f"{_named_containers(names)} must not set "
                          "securityContext.privileged=true")


def capabilities_baseline(spec: Spec) -> Result:
    names, caps = [], set()
    for c in _containers(spec):
        bad = [cap for cap in ((_sc(c).get("capabilities") or {}).get("add") or []) if cap not in BASELINE_CAPS]
        if bad:
            names.append(c.get("name", ""))
            caps.update(bad)
    if not names:
        return None
    return ("non-default capabilities", f"{_named_containers(names)} must not "
                                        f"include {_quote(sorted(caps))} in securityContext.capabilities.add")


def host_path_volumes(spec: Spec) -> Result:
    names = [v.get("name", "") for v in spec.get("volumes") or [] if "hostPath" in v]
    return ("hostPath volumes", f"{_plural('volume', 'volumes', len(names))} {_quote(names)}") if names else None


def seccomp_baseline(spec: Spec) -> Result:
    bad = []
    if ((spec.get("securityContext") or {}).get("seccompProfile") or {}).get("type") == "Unconfined":
        bad.append('pod must not set securityContext.seccompProfile.type to "Unconfined"')
    names = [c.get("name", "") for c in _containers(spec)
             if (_sc(c).get("seccompProfile") or {}).get("type") == "Unconfined"]
    if names:
        bad.append(f"{_named_containers(names)} must not set "
                   'securityContext.seccompProfile.type to "Unconfined"')
    return ("seccompProfile", "; ".join(bad)) if bad else None


def allow_privilege_escalation(spec: Spec) -> Result:
    names = [c.get("name", "") for c in _containers(spec) if _sc(c).get("allowPrivilegeEscalation") is not False]
    if not names:
        return None
    return ("allowPrivilegeEscalation != false", f"{_named_containers(names)} "
                                                 "must set securityContext.allowPrivilegeEscalation=false")


def capabilities_restricted(spec: Spec) -> Result:
    missing_drop, adding, caps = [], [], set()
    for c in _containers(spec):
        capabilities = _sc(c).get("capabilities")
        if capabilities is None:
            missing_drop.append(c.get("name", ""))
            continue
        if "ALL" not in (capabilities.get("drop") or []):
            missing_drop.append(c.get("name", ""))
        bad = [cap for cap in capabilities.get("add") or [] if cap != "NET_BIND_SERVICE"]
        if bad:
            adding.append(c.get("name", ""))
            caps.update(bad)
    details = []
    if missing_drop:
        details.append(f"{_named_containers(missing_drop)} must set "
                       'securityContext.capabilities.drop=["ALL"]')
    if adding:
        details.append(f"{_named_containers(adding)} must not include "
                       f"{_quote(sorted(caps))} in securityContext.capabilities.add")
    return ("unrestricted capabilities", "; ".join(details)) if details else None


def restricted_volumes(spec: Spec) -> Result:
    bad: list[tuple[str, str]] = []
    for v in spec.get("volumes") or []:
        kinds = [k for k in v if k != "name"]
        other = [k for k in kinds if k not in RESTRICTED_VOLUMES]
        if other:
            bad.append((v.get("name", ""), other[0]))
    if not bad:
        return None
    names = [n for n, _ in bad]
    types = sorted({t for _, t in bad})
    return ("restricted volume types", f"{_plural('volume', 'volumes', len(names))} {_quote(names)} "
                                       f"{_plural('uses', 'use', len(names))} restricted "
                                       f"{_plural('volume type', 'volume types', len(types))} {_quote(types)}")


def run_as_non_root(spec: Spec) -> Result:
    pod_value = (spec.get("securityContext") or {}).get("runAsNonRoot")
    details = []
    if pod_value is False:
        details.append("pod must not set securityContext.runAsNonRoot=false")
    explicit_false, implicit = [], []
    for c in _containers(spec):
        value = _sc(c).get("runAsNonRoot")
        if value is False:
            explicit_false.append(c.get("name", ""))
        elif value is None and pod_value is not True:
            implicit.append(c.get("name", ""))
    if explicit_false:
        details.append(f"{_named_containers(explicit_false)} must not "
                       "set securityContext.runAsNonRoot=false")
    if implicit and pod_value is None:
        details.append(f"pod or {_named_containers(implicit)} must set "
                       "securityContext.runAsNonRoot=true")
    elif implicit:
        details.append(f"{_named_containers(implicit)} must set "
                       "securityContext.runAsNonRoot=true")
    return ("runAsNonRoot != true", "; ".join(details)) if details else None


def run_as_user(spec: Spec) -> Result:
    details = []
    if (spec.get("securityContext") or {}).get("runAsUser") == 0:
        details.append("pod must not set runAsUser=0")
    names = [c.get("name", "") for c in _containers(spec) if _sc(c).get("runAsUser") == 0]
    if names:
        details.append(f"{_named_containers(names)} must not set runAsUser=0")
    return ("runAsUser=0", "; ".join(details)) if details else None


def seccomp_restricted(spec: Spec) -> Result:
    ok = ("RuntimeDefault", "Localhost")
    pod_type = ((spec.get("securityContext") or {}).get("seccompProfile") or {}).get("type")
    details = []
    if pod_type is not None and pod_type not in ok:
        details.append(f'pod must not set securityContext.seccompProfile.type to "{pod_type}"')
    bad, unset = [], []
    for c in _containers(spec):
        t = (_sc(c).get("seccompProfile") or {}).get("type")
        if t is not None and t not in ok:
            bad.append(c.get("name", ""))
        elif t is None and pod_type is None:
            unset.append(c.get("name", ""))
    if bad:
        details.append(f"{_named_containers(bad)} must not set "
                       'securityContext.seccompProfile.type to "Unconfined"')
    if unset:
        details.append(f"pod or {_named_containers(unset)} must set "
                       'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"')
    return ("seccompProfile", "; ".join(details)) if details else None


Check = Callable[[Spec], Result]
# registry.go: baseline checks (file order), then either the overlapped baseline checks or the restricted ones
BASELINE: tuple[Check, ...] = (host_namespaces, host_ports, privileged)
OVERLAPPED_BY_RESTRICTED: tuple[Check, ...] = (capabilities_baseline, host_path_volumes, seccomp_baseline)
RESTRICTED: tuple[Check, ...] = (allow_privilege_escalation, capabilities_restricted, restricted_volumes,
                                 run_as_non_root, run_as_user, seccomp_restricted)


def violations(level: str, spec: Spec) -> list[tuple[str, str]]:
    """The (reason, detail) of every check ``spec`` fails at ``level`` (empty: admitted).

    >>> violations("baseline", {"hostNetwork": True, "containers": [{"name": "c"}]})
    [('host namespaces', 'hostNetwork=true')]
    """
    if level == "privileged":
        return []
    checks = BASELINE + (OVERLAPPED_BY_RESTRICTED if level == "baseline" else RESTRICTED)
    return [r for r in (check(spec) for check in checks) if r is not None]


def level_of(namespace: dict[str, Any] | None, default: str) -> str:
    """The enforce level of a namespace: its label, else the cluster default (an unknown label value
    is treated as ``restricted``, as PolicyToEvaluate does with an invalid level)."""
    value = ((namespace or {}).get("metadata") or {}).get("labels", {}).get(ENFORCE_LABEL)
    if value is None:
        return default
    return value if value in LEVELS else "restricted"


def admit_pod(pod: dict[str, Any], namespace: dict[str, Any] | None, default: str, forced: str | None = None) -> None:
    """403 Forbidden when ``pod`` violates its namespace's enforced level (or ``forced``, a level a
    cluster policy imposes over the label)."""
    level = forced or level_of(namespace, default)
    found = violations(level, pod.get("spec") or {})
    if not found:
        return
    text = ", ".join(f"{r} ({d})" if d else r for r, d in found)
    name = str((pod.get("metadata") or {}).get("name") or "")
    raise status.ApiError(403, "Forbidden", f'pods "{name}" is forbidden: violates PodSecurity "{level}:latest": {text}',
                          {"name": name, "kind": "pods"})
