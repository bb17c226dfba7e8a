"""``metav1.Status`` failure bodies worded as kube-apiserver words them.

Why: a backend turns API failures into user messages (a 403 must name the missing verb and
resource, a 409 must be told apart from a 404), so the fake server must answer with the same
``reason``, ``code``, ``details`` and ``message`` text a real cluster sends.

Mirrors: k8s.io/apimachinery/pkg/api/errors (NewNotFound, NewAlreadyExists, NewForbidden,
NewInvalid, NewBadRequest, NewMethodNotSupported, NewUnauthorized) and the RBAC authorizer's
forbidden message from k8s.io/apiserver/pkg/endpoints/handlers/responsewriters/errors.go
(``User "u" cannot VERB resource "R" in API group "G" in the namespace "NS"`` / ``at the cluster
scope``), NewConflict for a namespace already Terminating (pkg/registry/core/namespace/storage/
storage.go), the NamespaceLifecycle admission's Forbidden with its NamespaceTerminating cause.
Knowingly differs: ``retryAfterSeconds`` only on the 503 of ``FakeCluster.throttle`` (the 429 of
API Priority and Fairness is plain text with a ``Retry-After`` header, as upstream).
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """Raised inside the server; rendered as a Status with the HTTP code."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                               "message": self.message, "reason": self.reason}
        if self.details is not None:
            out["details"] = self.details
        out["code"] = self.code
        return out


def _details(name: str, group: str, plural: str) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if name:
        d["name"] = name
    if group:
        d["group"] = group
    d["kind"] = plural
    return d


def _qualified(group: str, plural: str) -> str:
    return f"{plural}.{group}" if group else plural


def not_found(group: str, plural: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{_qualified(group, plural)} "{name}" not found', _details(name, group, plural))


def already_exists(group: str, plural: str, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{_qualified(group, plural)} "{name}" already exists',
                    _details(name, group, plural))


def forbidden(user: str, verb: str, group: str, resource: str, name: str, namespace: str | None) -> ApiError:
    """``resource`` may carry a subresource (``pods/exec``), as RBAC spells it."""
    plural = resource.split("/")[0]
    subject = f'{_qualified(group, plural)} "{name}"' if name else _qualified(group, plural)
    scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    msg = f'{subject} is forbidden: User "{user}" cannot {verb} resource "{resource}" in API group "{group}" {scope}'
    return ApiError(403, "Forbidden", msg, _details(name, group, plural))


def terminating(group: str, plural: str, name: str, namespace: str) -> ApiError:
    msg = (f'{_qualified(group, plural)} "{name}" is forbidden: unable to create new content in namespace '
           f"{namespace} because it is being terminated")
    details = _details(name, group, plural)
    details["causes"] = [{"reason": "NamespaceTerminating", "message": f"namespace {namespace} is being terminated",
                          "field": "metadata.namespace"}]
    return ApiError(403, "Forbidden", msg, details)


def namespace_terminating_conflict(name: str) -> ApiError:
    """A DELETE of a namespace that is already Terminating (its ``kubernetes`` finalizer still set):
    ``apierrors.NewConflict`` in kubernetes pkg/registry/core/namespace/storage/storage.go Delete."""
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on namespaces "{name}": The system is ensuring '
                    "all content is removed from this namespace.  Upon completion, this namespace will automatically "
                    "be purged by the system.", {"name": name, "kind": "namespaces"})


def too_many_requests() -> str:
    """The plain-text body API Priority and Fairness / max-in-flight answer with 429 and ``Retry-After``
    (k8s.io/apiserver pkg/server/filters/maxinflight.go tooManyRequests): not a Status."""
    return "Too many requests, please try again later.\n"


def invalid(kind: str, group: str, name: str, field: str, value: str, detail: str) -> ApiError:
    cause = f'Invalid value: "{value}": {detail}'
    d: dict[str, Any] = {"name": name}
    if group:
        d["group"] = group
    d.update(kind=kind, causes=[{"reason": "FieldValueInvalid", "message": cause, "field": field}])
    return ApiError(422, "Invalid", f'{kind}{"." + group if group else ""} "{name}" is invalid: {field}: {cause}', d)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def method_not_allowed(verb: str, group: str, plural: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed", f"{verb} is not supported on resources of kind \"{_qualified(group, plural)}\"",
                    {"group": group, "kind": plural} if group else {"kind": plural})


def unsupported_media(accepted: list[str]) -> ApiError:
    return ApiError(415, "UnsupportedMediaType",
                    f"the body of the request was in an unknown format - accepted media types include: {', '.join(accepted)}")


def page_not_found() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def success(name: str, group: str, plural: str, uid: str) -> dict[str, Any]:
    """What DELETE answers for kinds whose registry does not return the deleted object."""
    d = _details(name, group, plural)
    d["uid"] = uid
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": d}


def service_account_missing(name: str, namespace: str) -> ApiError:
    """What the ServiceAccount admission plugin answers while a new namespace has no ``default``
    ServiceAccount yet (kubernetes plugin/pkg/admission/serviceaccount/admission.go)."""
    msg = (f'pods "{name}" is forbidden: error looking up service account {namespace}/default: '
           'serviceaccount "default" not found')
    return ApiError(403, "Forbidden", msg, _details(name, "", "pods"))
