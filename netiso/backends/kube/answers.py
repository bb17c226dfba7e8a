"""Reading the API answers that are neither a plain success nor a final error.

Why a module of its own: a real apiserver answers in ways an instant test server never does, and
each needs reading the way the Kubernetes client libraries read it, not guessing:

* **429 / 5xx with ``Retry-After``**: API Priority and Fairness or max-in-flight refused the request
  before serving it (k8s.io/apiserver pkg/server/filters/maxinflight.go, plain-text body), or an
  apiserver is starting or overloaded. client-go (rest/request.go ``checkWait``,
  ``retryAfterSeconds``) waits that many seconds and sends again, up to 10 times: so does
  :func:`retry_after`'s caller. The official Python client's urllib3 already does it for GETs, never
  for POST/PATCH.
* **an exec's exit status**: the kubelet writes a ``metav1.Status`` on channel 3 (remotecommand
  ``v4/v5.channel.k8s.io``): ``Success``, or ``Failure`` with reason ``NonZeroExitCode`` and a cause
  ``{"reason": "ExitCode", "message": "<code>"}``; any other Failure (the runtime could not start
  the command: ``InternalError``) has no exit code at all. The client's ``WSClient.returncode``
  does ``int(causes[0].message)`` and raises on those; :func:`exit_code` tells them apart.
* **a refused exec upgrade**: websocket-client reports ``Handshake status 500 ... -+-+- {headers}
  -+-+- body``; behind the apiserver's headers (Audit-Id, API Priority and Fairness UIDs) the body
  carries the words that matter (the kubelet's ``container not found ("netexec")``, the apiserver's
  ``pod X does not have a host assigned``): :func:`handshake_body` keeps them.
* **a lost answer**: the connection closed after the request went out (a proxy or load balancer
  resetting it): whether it was served is unknown (:func:`answer_lost`); the caller may send it
  again and must then read a 409 AlreadyExists as possibly its own first attempt.
"""

from __future__ import annotations

import json
from typing import Any

import urllib3

RETRIES = 10  # client-go's default maxRetries for Retry-After answers
MAX_RETRY_WAIT_S = 10.0


class ExecFailure(Exception):
    """The exec ended without an exit code: ``code`` (HTTP-like), ``reason`` and ``message`` of its Status."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


def retry_after(exc: Any) -> float | None:
    """Seconds to wait before sending again, or None when this answer is final (client-go checkWait).

    >>> from kubernetes.client.exceptions import ApiException
    >>> e = ApiException(status=429, reason="Too Many Requests"); e.headers = {"Retry-After": "1"}
    >>> retry_after(e)
    1.0
    >>> e.status = 409; retry_after(e) is None
    True
    """
    code = int(getattr(exc, "status", 0) or 0)
    if code != 429 and code < 500:
        return None
    headers = getattr(exc, "headers", None) or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return None if seconds is None or seconds < 0 else min(seconds, MAX_RETRY_WAIT_S)


def exit_code(status_text: str) -> int:
    """The exit code from an exec's channel-3 Status; :class:`ExecFailure` when it carries none.

    >>> exit_code('{"metadata":{},"status":"Success"}')
    0
    >>> exit_code('{"status":"Failure","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}')
    3
    """
    if not status_text.strip():
        raise ExecFailure(500, "NoExitStatus", "the exec stream ended without an exit status")
    try:
        status = json.loads(status_text)
    except ValueError:
        raise ExecFailure(500, "NoExitStatus", f"unreadable exit status: {status_text[:200]}") from None
    if status.get("status") == "Success":
        return 0
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode" and str(cause.get("message", "")).lstrip("-").isdigit():
            return int(cause["message"])
    raise ExecFailure(int(status.get("code") or 500), str(status.get("reason") or "Failure"),
                      str(status.get("message") or status_text[:200]))


def handshake_body(reason: str) -> str:
    """``Handshake status N ...: <body or its Status message>`` from websocket-client's refusal text.

    >>> handshake_body("Handshake status 500 Internal Server Error -+-+- {'audit-id': 'x'} -+-+- "
    ...                "b'container not found (\\"netexec\\")'")
    'Handshake status 500 Internal Server Error: container not found ("netexec")'
    """
    parts = reason.split(" -+-+- ")
    if len(parts) < 3:
        return reason
    body = parts[-1].strip()
    if body.startswith(("b'", 'b"')):
        body = body[2:-1]
    try:
        message = json.loads(body.encode().decode("unicode_escape")).get("message")
    except (ValueError, AttributeError, UnicodeDecodeError):
        message = None
    return f"{parts[0].strip()}: {message or body}"


def answer_lost(exc: BaseException) -> bool:
    """True when urllib3 saw the connection close before an answer (the request may have been served)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, urllib3.exceptions.ProtocolError) or type(cause).__name__ == "RemoteDisconnected":
            return True
        reason = getattr(cause, "reason", None)
        cause = reason if isinstance(reason, BaseException) else None
    return False
