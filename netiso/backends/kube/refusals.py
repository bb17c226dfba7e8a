"""Every failed API answer as one sentence a person can act on: the cluster, the verb, the fix.

Why a module of its own: the same refusal reads differently depending on who refused - the
authenticator (401: renew the credentials in the kubeconfig), the authorizer (403: grant
netiso's role), Pod Security Admission (403 with ``violates PodSecurity``: the namespace's level),
an admission webhook, the transport (refused, DNS, TLS, timeout), or the API itself (404, 409,
422: :class:`KubeApiError`, which callers handle). :func:`translate` tells them apart by the
Status body the apiserver sends (k8s.io/apimachinery pkg/api/errors: ``reason``, ``message``), as
kubectl's error printing does. Environment problems become :class:`BackendUnavailable` (exit 2
with the fix); everything else stays a :class:`KubeApiError` for the caller to decide.

Knowingly different from kubectl: the messages are netiso's own (they name netiso's RBAC file and
namespaces), and a new namespace's ``default`` ServiceAccount not found yet (403) is kept a
:class:`KubeApiError`: it is transient, the realization retries it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from netiso.backends.base import BackendUnavailable
from netiso.backends.kube.answers import handshake_body

RBAC_HINT = "grant netiso the role in cluster-configs/kube/rbac.yaml"


class AnswerLost(BackendUnavailable):
    """The connection closed after the request was sent and before its answer (it may have been served)."""


class KubeApiError(Exception):
    """An API answer other than success: ``status`` (HTTP code), ``reason`` and ``message`` of the Status."""

    def __init__(self, status: int, reason: str, message: str, what: str) -> None:
        super().__init__(f"{what}: {message or reason} (HTTP {status})")
        self.status = status
        self.reason = reason
        self.message = message
        self.what = what


@dataclass(frozen=True)
class Target:
    """Which cluster a run talks to (for messages): context name, server URL, kubeconfig path."""

    context: str
    server: str
    kubeconfig: str


def translate(exc: ApiException, what: str, target: Target) -> Exception:
    """ApiException -> BackendUnavailable (401/403/transport) or KubeApiError (anything else)."""
    status = int(exc.status or 0)
    body = _status_body(exc.body)
    message = str(body.get("message") or "")
    reason = str(body.get("reason") or exc.reason or "")
    where = f"context {target.context!r} ({target.server})"
    if status == 0:
        handshake = re.search(r"Handshake status (\d{3})", reason)
        if handshake:  # the exec websocket's upgrade was answered with an HTTP error
            code = int(handshake.group(1))
            if code in (401, 403):
                return BackendUnavailable(f"not allowed to {what} ({code}): {reason[:300]}; {RBAC_HINT}")
            return KubeApiError(code, "Handshake", handshake_body(reason)[:300], what)
        return BackendUnavailable(f"cannot reach the Kubernetes API server of {where}: {reason or exc}")
    if status == 401:
        return BackendUnavailable(f"the API server of {where} rejected the credentials (401 Unauthorized) "
                                  f"while trying to {what}: renew the token/certificate in {target.kubeconfig}")
    if status == 403:
        if "serviceaccount" in message and "not found" in message:
            return KubeApiError(status, reason, message, what)  # a new namespace's default SA: transient, retried
        if "PodSecurity" in message:
            return BackendUnavailable(pod_security_refusal(what, message))
        if "admission webhook" in message:
            return BackendUnavailable(f"the cluster's admission refused to {what}: {message} (403); netiso's pods "
                                      "need Pod Security 'baseline' in project namespaces and 'privileged' in the "
                                      "run's -netiso namespace (hostNetwork node probes)")
        return BackendUnavailable(f"not allowed to {what}: {message or 'Forbidden'} (403); {RBAC_HINT}")
    return KubeApiError(status, reason, message, what)

def unreachable(exc: BaseException, target: Target) -> BackendUnavailable:
    """A transport failure (refused, DNS, TLS, timeout) as one sentence naming the server."""
    cause: BaseException = exc
    while getattr(cause, "reason", None) is not None and isinstance(cause.reason, BaseException):  # MaxRetryError
        cause = cause.reason
    text = str(cause)
    low = text.lower()
    if "refused" in low:
        why = "connection refused (is the cluster running and the server address right?)"
    elif "name or service not known" in low or "nodename nor servname" in low or "resolution" in low:
        why = f"the host name does not resolve ({text})"
    elif "certificate" in low or "ssl" in low or isinstance(cause, urllib3.exceptions.SSLError):
        why = f"TLS failed ({text}); check certificate-authority-data in {target.kubeconfig}"
    elif "timed out" in low or "timeout" in low:
        why = f"the connection timed out ({text})"
    else:
        why = text
    return BackendUnavailable(f"cannot reach the Kubernetes API server {target.server} "
                              f"(context {target.context!r}): {why}")


def pod_security_refusal(what: str, message: str) -> str:
    """One sentence for a pod refused by Pod Security Admission: the namespace, the level it enforced, what
    the pod needs and the fix (the namespace label netiso sets is overridden or capped by the cluster).

    >>> pod_security_refusal("create Pod nx0a1b2c-netiso/node-worker",
    ...     'pods "node-worker" is forbidden: violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true)')[:108]
    'Pod Security Admission refused to create Pod nx0a1b2c-netiso/node-worker: namespace nx0a1b2c-netiso enforces'
    """
    found = re.search(r'violates PodSecurity "([a-z]+)(?::[^"]*)?": (.*)$', message)
    level, why = (found.group(1), found.group(2)) if found else ("?", message)
    namespace = what.split(" ")[-1].split("/")[0] if "/" in what else "?"
    needs = "privileged" if namespace.endswith("-netiso") else "baseline"
    return (f"Pod Security Admission refused to {what}: namespace {namespace} enforces {level!r} ({why}); netiso "
            f"labels it pod-security.kubernetes.io/enforce={needs}, so something in the cluster enforces a stricter "
            f"level regardless (an AdmissionConfiguration without that label honoured, a policy engine such as "
            f"Kyverno or Gatekeeper): allow Pod Security {needs!r} in netiso's namespaces ({namespace.rsplit('-', 1)[0]}-*) "
            "or exempt them")


def _status_body(body: Any) -> dict[str, Any]:
    if not body:
        return {}
    try:
        data = json.loads(body) if isinstance(body, str | bytes) else body
    except ValueError:
        return {"message": (body.decode(errors="replace") if isinstance(body, bytes) else str(body)).strip()[:300]}
    return data if isinstance(data, dict) else {}
