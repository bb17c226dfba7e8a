"""Reading non-plain API answers (netiso/backends/kube/answers.py): its docstring examples and the edge cases."""

from __future__ import annotations

import doctest

import pytest
from kubernetes.client.exceptions import ApiException

from netiso.backends.kube import answers
from netiso.backends.kube.answers import ExecFailure, exit_code, handshake_body, retry_after


def test_answers_docstring_examples_hold() -> None:
    assert doctest.testmod(answers).failed == 0


def test_an_exec_failure_without_exit_code_or_without_status_is_an_exec_failure() -> None:
    with pytest.raises(ExecFailure) as info:
        exit_code('{"metadata":{},"status":"Failure","message":"error executing command in container: OCI runtime",'
                  '"reason":"InternalError","details":{"causes":[{"message":"OCI runtime"}]},"code":500}')
    assert (info.value.code, info.value.reason) == (500, "InternalError")
    with pytest.raises(ExecFailure, match="without an exit status"):
        exit_code("")


def test_retry_after_follows_client_go_only_429_and_5xx_with_the_header() -> None:
    e = ApiException(status=503, reason="Service Unavailable")
    e.headers = {}
    assert retry_after(e) is None  # no header: final
    e.headers = {"Retry-After": "120"}
    assert retry_after(e) == answers.MAX_RETRY_WAIT_S


def test_a_refused_upgrade_with_a_status_body_keeps_its_message() -> None:
    text = ('Handshake status 400 Bad Request -+-+- {"audit-id": "x"} -+-+- b\'{"kind":"Status","message":'
            '"pod p does not have a host assigned","reason":"BadRequest","code":400}\'')
    assert handshake_body(text) == "Handshake status 400 Bad Request: pod p does not have a host assigned"
