"""The Go validators' rules for the fields netiso and the vendored add-ons use (the 422 stage of validation.py).

Mirrors, one rule at a time: k8s.io/apimachinery pkg/api/validation/objectmeta.go (names per kind:
RFC 1123 labels for namespaces and services, subdomains elsewhere, path segments for RBAC; label
and annotation keys as qualified names, label values), pkg/util/validation/field (the error
types and their ``Required value`` / ``Invalid value: X: detail`` / ``Unsupported value: X:
supported values: ...`` / ``Duplicate value`` / ``Forbidden`` texts), k8s.io/kubernetes
pkg/apis/core/validation (pod specs: container names, images, ports, protocols, probes,
tolerations, volumes; Services: ports, types, traffic policies, health check node ports),
pkg/apis/networking/validation (NetworkPolicy peers, ports, CIDRs; Ingress hosts and paths;
IngressClass controller), pkg/apis/coordination/validation (Lease durations) and
pkg/apis/rbac/validation (rules, role references, subjects).

Knowingly differs: only these rules; a real server checks every field of every kind.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .resources import Resource

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
IANA_SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
PATH_SEGMENT_KINDS = {"roles", "rolebindings", "clusterroles", "clusterrolebindings"}
LABEL_NAMED = {("", "namespaces"), ("", "services")}

LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
             "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
             "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and "
                 "must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation "
                 "is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
QUALIFIED_MSG = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
                 "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
                 "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and "
                   "must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', "
                   "regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")


@dataclass
class FieldError:
    """One cause of a 422 (k8s.io/apimachinery pkg/util/validation/field.Error)."""

    reason: str  # FieldValueRequired, FieldValueInvalid, FieldValueNotSupported, FieldValueDuplicate
    field: str
    detail: str = ""
    value: Any = None

    def message(self) -> str:
        if self.reason == "FieldValueRequired":
            return "Required value" + (f": {self.detail}" if self.detail else "")
        if self.reason == "FieldValueNotSupported":
            return f"Unsupported value: {_go_value(self.value)}: supported values: {self.detail}"
        if self.reason == "FieldValueDuplicate":
            return f"Duplicate value: {_go_value(self.value)}"
        if self.reason == "FieldValueForbidden":
            return f"Forbidden: {self.detail}"
        if self.reason == "FieldValueTooLong":
            return f"Too long: {self.detail}"
        return f"Invalid value: {_go_value(self.value)}" + (f": {self.detail}" if self.detail else "")


def _go_value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def metadata_errors(res: Resource, obj: dict[str, Any]) -> list[FieldError]:
    """ObjectMeta rules (apimachinery pkg/api/validation/objectmeta.go): name by kind, label and annotation keys,
    label values."""
    meta = obj.get("metadata") or {}
    name = meta.get("name") or ""
    errors: list[FieldError] = []
    if not name:
        errors.append(FieldError("FieldValueRequired", "metadata.name", "name or generateName is required"))
    elif res.plural in PATH_SEGMENT_KINDS and res.group == "rbac.authorization.k8s.io":
        if name in (".", "..") or "/" in name or "%" in name:
            errors.append(FieldError("FieldValueInvalid", "metadata.name", "may not contain '/' or '%'", name))
    elif (res.group, res.plural) in LABEL_NAMED:
        errors += label_errors("metadata.name", name)
    elif not res.custom or ":" not in name:
        errors += subdomain_errors("metadata.name", name)
    for key, value in (meta.get("labels") or {}).items():
        errors += qualified_name_errors("metadata.labels", key)
        if not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE.match(value):
            detail = LABEL_VALUE_MSG if isinstance(value, str) and len(value) <= 63 else \
                "must be no more than 63 characters"
            errors.append(FieldError("FieldValueInvalid", "metadata.labels", detail, value))
    annotations = meta.get("annotations") or {}
    for key in annotations:
        errors += qualified_name_errors("metadata.annotations", key.lower())
    if sum(len(k) + len(str(v)) for k, v in annotations.items()) > 256 * 1024:
        errors.append(FieldError("FieldValueTooLong", "metadata.annotations", "must have at most 262144 bytes"))
    return errors


def label_errors(path: str, value: str) -> list[FieldError]:
    out = []
    if len(value) > 63:
        out.append(FieldError("FieldValueInvalid", path, "must be no more than 63 characters", value))
    if not DNS1123_LABEL.match(value):
        out.append(FieldError("FieldValueInvalid", path, LABEL_MSG, value))
    return out


def subdomain_errors(path: str, value: str) -> list[FieldError]:
    out = []
    if len(value) > 253:
        out.append(FieldError("FieldValueInvalid", path, "must be no more than 253 characters", value))
    if not DNS1123_SUBDOMAIN.match(value):
        out.append(FieldError("FieldValueInvalid", path, SUBDOMAIN_MSG, value))
    return out


def qualified_name_errors(path: str, key: str) -> list[FieldError]:
    """apimachinery pkg/util/validation IsQualifiedName: ``[prefix/]name``, prefix a DNS subdomain."""
    prefix, _, name = key.rpartition("/")
    out = []
    if not name:
        out.append(FieldError("FieldValueInvalid", path, "name part must be non-empty", key))
    elif len(name) > 63:
        out.append(FieldError("FieldValueInvalid", path, "name part must be no more than 63 characters", key))
    elif not QUALIFIED_NAME.match(name):
        out.append(FieldError("FieldValueInvalid", path, QUALIFIED_MSG, key))
    if "/" in key and (not prefix or len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix)):
        out.append(FieldError("FieldValueInvalid", path, "prefix part " + SUBDOMAIN_MSG, key))
    return out


# --------------------------------------------------------------------------- semantic rules per kind


PROTOCOLS = ("SCTP", "TCP", "UDP")


def _supported(values: tuple[str, ...]) -> str:
    return ", ".join(f'"{v}"' for v in values)


def _port_errors(path: str, port: Any) -> list[FieldError]:
    if isinstance(port, int) and not 1 <= port <= 65535:
        return [FieldError("FieldValueInvalid", path, "must be between 1 and 65535, inclusive", port)]
    return []


def _protocol_errors(path: str, proto: Any) -> list[FieldError]:
    if proto is not None and proto not in PROTOCOLS:
        return [FieldError("FieldValueNotSupported", path, _supported(PROTOCOLS), proto)]
    return []


def _port_name_errors(path: str, name: Any) -> list[FieldError]:
    """IsValidPortName: an IANA service name (at most 15 characters, a letter, no '--')."""
    if not isinstance(name, str) or not name:
        return []
    bad = []
    if len(name) > 15:
        bad.append("must be no more than 15 characters")
    if not IANA_SVC_NAME.match(name):
        bad.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if "--" in name:
        bad.append("must not contain consecutive hyphens")
    if not re.search(r"[a-z]", name):
        bad.append("must contain at least one letter (a-z)")
    return [FieldError("FieldValueInvalid", path, d, name) for d in bad]


def _int_or_name_errors(path: str, value: Any) -> list[FieldError]:
    if isinstance(value, int):
        return _port_errors(path, value)
    return _port_name_errors(path, value)


def pod_spec_errors(spec: dict[str, Any], path: str) -> list[FieldError]:
    """pkg/apis/core/validation ValidatePodSpec, for containers, ports, probes, policies and volumes."""
    errors: list[FieldError] = []
    containers = spec.get("containers") or []
    if not containers:
        errors.append(FieldError("FieldValueRequired", f"{path}.containers"))
    names: set[str] = set()
    for group in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(group) or []):
            where = f"{path}.{group}[{i}]"
            cname = c.get("name") or ""
            if not cname:
                errors.append(FieldError("FieldValueRequired", f"{where}.name"))
            else:
                errors += label_errors(f"{where}.name", cname)
                if cname in names:
                    errors.append(FieldError("FieldValueDuplicate", f"{where}.name", value=cname))
                names.add(cname)
            if not c.get("image"):
                errors.append(FieldError("FieldValueRequired", f"{where}.image"))
            seen_ports: set[tuple[Any, Any]] = set()
            for j, p in enumerate(c.get("ports") or []):
                pw = f"{where}.ports[{j}]"
                errors += _port_errors(f"{pw}.containerPort", p.get("containerPort"))
                if p.get("hostPort") not in (None, 0):
                    errors += _port_errors(f"{pw}.hostPort", p.get("hostPort"))
                errors += _protocol_errors(f"{pw}.protocol", p.get("protocol"))
                errors += _port_name_errors(f"{pw}.name", p.get("name"))
                key = (p.get("containerPort"), p.get("protocol") or "TCP")
                if key in seen_ports:
                    errors.append(FieldError("FieldValueDuplicate", f"{pw}", value=f"{key[0]}/{key[1]}"))
                seen_ports.add(key)
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                http = ((c.get(probe) or {}).get("httpGet") or {})
                if http:
                    errors += _int_or_name_errors(f"{where}.{probe}.httpGet.port", http.get("port"))
            for k, env in enumerate(c.get("env") or []):
                if not env.get("name"):
                    errors.append(FieldError("FieldValueRequired", f"{where}.env[{k}].name"))
    errors += _enum(spec, "restartPolicy", f"{path}.restartPolicy", ("Always", "OnFailure", "Never"))
    errors += _enum(spec, "dnsPolicy", f"{path}.dnsPolicy", ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"))
    for i, t in enumerate(spec.get("tolerations") or []):
        errors += _enum(t, "operator", f"{path}.tolerations[{i}].operator", ("Equal", "Exists"))
        errors += _enum(t, "effect", f"{path}.tolerations[{i}].effect", ("NoExecute", "NoSchedule", "PreferNoSchedule"))
        if t.get("operator") == "Exists" and t.get("value"):
            errors.append(FieldError("FieldValueInvalid", f"{path}.tolerations[{i}].operator",
                                     "value must be empty when `operator` is 'Exists'", t.get("value")))
    volumes: set[str] = set()
    for i, v in enumerate(spec.get("volumes") or []):
        vname = v.get("name") or ""
        if not vname:
            errors.append(FieldError("FieldValueRequired", f"{path}.volumes[{i}].name"))
        elif vname in volumes:
            errors.append(FieldError("FieldValueDuplicate", f"{path}.volumes[{i}].name", value=vname))
        volumes.add(vname)
    return errors


def _enum(obj: dict[str, Any], key: str, path: str, values: tuple[str, ...]) -> list[FieldError]:
    value = obj.get(key)
    if value is not None and value not in values:
        return [FieldError("FieldValueNotSupported", path, _supported(values), value)]
    return []


def _pod(obj: dict[str, Any]) -> list[FieldError]:
    return pod_spec_errors(obj.get("spec") or {}, "spec")


def _template(obj: dict[str, Any]) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errors: list[FieldError] = []
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if selector and any(labels.get(k) != v for k, v in selector.items()):
        errors.append(FieldError("FieldValueInvalid", "spec.template.metadata.labels",
                                 "`selector` does not match template `labels`", labels))
    errors += pod_spec_errors((spec.get("template") or {}).get("spec") or {}, "spec.template.spec")
    return errors


SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")


def _service(obj: dict[str, Any]) -> list[FieldError]:
    """ValidateService: ports, types, and the externalTrafficPolicy / node port rules netiso relies on."""
    spec = obj.get("spec") or {}
    errors = _enum(spec, "type", "spec.type", SERVICE_TYPES)
    kind = spec.get("type") or "ClusterIP"
    ports = spec.get("ports") or []
    if not ports and kind != "ExternalName" and spec.get("clusterIP") != "None":
        errors.append(FieldError("FieldValueRequired", "spec.ports"))
    seen: set[tuple[Any, Any]] = set()
    for i, p in enumerate(ports):
        where = f"spec.ports[{i}]"
        if len(ports) > 1 and not p.get("name"):
            errors.append(FieldError("FieldValueRequired", f"{where}.name"))
        errors += _port_name_errors(f"{where}.name", p.get("name"))
        errors += _port_errors(f"{where}.port", p.get("port"))
        errors += _protocol_errors(f"{where}.protocol", p.get("protocol"))
        if "targetPort" in p:
            errors += _int_or_name_errors(f"{where}.targetPort", p.get("targetPort"))
        if p.get("nodePort") and kind not in ("NodePort", "LoadBalancer"):
            errors.append(FieldError("FieldValueForbidden", f"{where}.nodePort",
                                     "may not be used when `type` is 'ClusterIP'", p["nodePort"]))
        key = (p.get("port"), p.get("protocol") or "TCP")
        if key in seen:
            errors.append(FieldError("FieldValueDuplicate", where, value=f"{key[0]}/{key[1]}"))
        seen.add(key)
    etp = spec.get("externalTrafficPolicy")
    if etp is not None:
        if kind not in ("NodePort", "LoadBalancer"):
            errors.append(FieldError("FieldValueInvalid", "spec.externalTrafficPolicy",
                                     "may only be set when `type` is 'NodePort' or 'LoadBalancer'", etp))
        else:
            errors += _enum(spec, "externalTrafficPolicy", "spec.externalTrafficPolicy", ("Cluster", "Local"))
    errors += _enum(spec, "internalTrafficPolicy", "spec.internalTrafficPolicy", ("Cluster", "Local"))
    if spec.get("healthCheckNodePort") and not (kind == "LoadBalancer" and etp == "Local"):
        errors.append(FieldError("FieldValueInvalid", "spec.healthCheckNodePort",
                                 "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
                                 spec["healthCheckNodePort"]))
    return errors


def _cidr_errors(path: str, value: Any) -> list[FieldError]:
    try:
        ipaddress.ip_network(str(value), strict=False)
        if "/" not in str(value):
            raise ValueError
    except ValueError:
        return [FieldError("FieldValueInvalid", path, "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                           value)]
    return []


def _network_policy(obj: dict[str, Any]) -> list[FieldError]:
    """pkg/apis/networking/validation ValidateNetworkPolicySpec: peers, ports, ipBlocks, policyTypes."""
    spec = obj.get("spec") or {}
    errors: list[FieldError] = []
    for i, t in enumerate(spec.get("policyTypes") or []):
        if t not in ("Ingress", "Egress"):
            errors.append(FieldError("FieldValueNotSupported", f"spec.policyTypes[{i}]", '"Egress", "Ingress"', t))
    for direction, peers in (("ingress", "from"), ("egress", "to")):
        for i, rule in enumerate(spec.get(direction) or []):
            for j, port in enumerate(rule.get("ports") or []):
                where = f"spec.{direction}[{i}].ports[{j}]"
                errors += _protocol_errors(f"{where}.protocol", port.get("protocol"))
                if "port" in port:
                    errors += _int_or_name_errors(f"{where}.port", port.get("port"))
                if port.get("endPort") is not None and not isinstance(port.get("port"), int):
                    errors.append(FieldError("FieldValueInvalid", f"{where}.endPort",
                                             "may not be specified when `port` is non-numeric", port["endPort"]))
            for j, peer in enumerate(rule.get(peers) or []):
                where = f"spec.{direction}[{i}].{peers}[{j}]"
                if not peer:
                    errors.append(FieldError("FieldValueRequired", where, "must specify a peer"))
                block = peer.get("ipBlock")
                if block is not None:
                    if len(peer) > 1:
                        errors.append(FieldError("FieldValueForbidden", where, "may not specify more than 1 peer type"))
                    errors += _cidr_errors(f"{where}.ipBlock.cidr", block.get("cidr"))
                    for k, ex in enumerate(block.get("except") or []):
                        errors += _cidr_errors(f"{where}.ipBlock.except[{k}]", ex)
    return errors


def _ingress(obj: dict[str, Any]) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errors: list[FieldError] = []
    for i, rule in enumerate(spec.get("rules") or []):
        host = rule.get("host")
        if host:
            errors += subdomain_errors(f"spec.rules[{i}].host", host[2:] if host.startswith("*.") else host)
        for j, path in enumerate((rule.get("http") or {}).get("paths") or []):
            where = f"spec.rules[{i}].http.paths[{j}]"
            if not path.get("pathType"):
                errors.append(FieldError("FieldValueRequired", f"{where}.pathType", "pathType must be specified"))
            else:
                errors += _enum(path, "pathType", f"{where}.pathType", ("Exact", "ImplementationSpecific", "Prefix"))
            if path.get("pathType") in ("Exact", "Prefix") and not str(path.get("path", "")).startswith("/"):
                errors.append(FieldError("FieldValueInvalid", f"{where}.path", "must be an absolute path",
                                         path.get("path", "")))
            port = (((path.get("backend") or {}).get("service") or {}).get("port") or {})
            if port.get("name") and port.get("number"):
                errors.append(FieldError("FieldValueInvalid", f"{where}.backend.service.port",
                                         "cannot set both port name & port number", port))
    return errors


def _lease(obj: dict[str, Any]) -> list[FieldError]:
    """pkg/apis/coordination/validation ValidateLeaseSpec."""
    spec = obj.get("spec") or {}
    errors: list[FieldError] = []
    for key in ("leaseDurationSeconds", "leaseTransitions"):
        value = spec.get(key)
        if key == "leaseDurationSeconds" and value is not None and value <= 0:
            errors.append(FieldError("FieldValueInvalid", f"spec.{key}", "must be greater than 0", value))
        if key == "leaseTransitions" and value is not None and value < 0:
            errors.append(FieldError("FieldValueInvalid", f"spec.{key}", "must be greater than or equal to 0", value))
    return errors


def _rbac_rules(obj: dict[str, Any]) -> list[FieldError]:
    """pkg/apis/rbac/validation ValidatePolicyRule: verbs required, resources need apiGroups."""
    errors: list[FieldError] = []
    for i, rule in enumerate(obj.get("rules") or []):
        if not rule.get("verbs"):
            errors.append(FieldError("FieldValueRequired", f"rules[{i}].verbs", "verbs must contain at least one value"))
        if rule.get("resources") and rule.get("apiGroups") is None:
            errors.append(FieldError("FieldValueRequired", f"rules[{i}].apiGroups",
                                     "resource rules must supply at least one api group"))
    return errors


def _rbac_binding(obj: dict[str, Any]) -> list[FieldError]:
    ref = obj.get("roleRef") or {}
    errors: list[FieldError] = []
    if ref.get("apiGroup") != "rbac.authorization.k8s.io":
        errors.append(FieldError("FieldValueNotSupported", "roleRef.apiGroup", '"rbac.authorization.k8s.io"',
                                 ref.get("apiGroup", "")))
    kinds = ("ClusterRole",) if obj.get("kind") == "ClusterRoleBinding" else ("ClusterRole", "Role")
    if ref.get("kind") not in kinds:
        errors.append(FieldError("FieldValueNotSupported", "roleRef.kind", _supported(kinds), ref.get("kind", "")))
    for i, s in enumerate(obj.get("subjects") or []):
        if s.get("kind") == "ServiceAccount" and not s.get("namespace") and obj.get("kind") == "ClusterRoleBinding":
            errors.append(FieldError("FieldValueRequired", f"subjects[{i}].namespace"))
        errors += _enum(s, "kind", f"subjects[{i}].kind", ("Group", "ServiceAccount", "User"))
    return errors


def _ingress_class(obj: dict[str, Any]) -> list[FieldError]:
    controller = (obj.get("spec") or {}).get("controller") or ""
    if not controller:
        return [FieldError("FieldValueRequired", "spec.controller")]
    if "/" not in controller:
        return [FieldError("FieldValueInvalid", "spec.controller", "must be a domain-prefixed path (such as "
                                                                  '"acme.io/foo")', controller)]
    return []


SEMANTIC: dict[tuple[str, str], Callable[[dict[str, Any]], list[FieldError]]] = {
    ("", "pods"): _pod,
    ("", "services"): _service,
    ("apps", "deployments"): _template,
    ("apps", "daemonsets"): _template,
    ("apps", "replicasets"): _template,
    ("apps", "statefulsets"): _template,
    ("batch", "jobs"): lambda o: pod_spec_errors(((o.get("spec") or {}).get("template") or {}).get("spec") or {},
                                                 "spec.template.spec"),
    ("networking.k8s.io", "networkpolicies"): _network_policy,
    ("networking.k8s.io", "ingresses"): _ingress,
    ("networking.k8s.io", "ingressclasses"): _ingress_class,
    ("coordination.k8s.io", "leases"): _lease,
    ("rbac.authorization.k8s.io", "roles"): _rbac_rules,
    ("rbac.authorization.k8s.io", "clusterroles"): _rbac_rules,
    ("rbac.authorization.k8s.io", "rolebindings"): _rbac_binding,
    ("rbac.authorization.k8s.io", "clusterrolebindings"): _rbac_binding,
}
