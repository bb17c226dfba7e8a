"""``pods/exec`` over a websocket, answering with a test-supplied handler instead of a container.

Why: netiso's kube backend probes by running commands in pods through the exec API
(``kubernetes.stream.stream(CoreV1Api().connect_get_namespaced_pod_exec, ...)``); this serves that
conversation over a real websocket so the official client's ``WSClient`` runs unpatched, while the
test decides what the "container" prints and with which exit code.

Mirrors: the kubelet's websocket stream server (k8s.io/kubelet/pkg/cri/streaming/remotecommand,
websocket.go) as reached through kube-apiserver: subprotocols ``v5.channel.k8s.io`` (preferred when
the client offers it) and ``v4.channel.k8s.io``; every frame carries one channel byte (0 stdin,
1 stdout, 2 stderr, 3 error, and in v5 255 = close a channel); the process's end is written on
channel 3 as a ``metav1.Status``: ``{"metadata":{},"status":"Success"}`` or ``{"metadata":{},
"status":"Failure","message":"command terminated with non-zero exit code: ...","reason":
"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"<code>"}]}}`` (the
StatusCause ``Type`` field is serialised as ``reason``). Before the upgrade, the apiserver's
checks: 404 for a missing pod, 400 when the pod has several containers and none is named or the
named one does not exist, 400 "Upgrade request required" for a plain HTTP request.

Knowingly differs: output is not streamed while the command runs (the handler returns it all at
once); with ``stdin=true`` under v4, which has no end-of-stdin signal, the first stdin frame is
taken as all of stdin (v5 reads until the client closes channel 0); no tty / resize channel 4;
no SPDY.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

from . import status

V4 = "v4.channel.k8s.io"
V5 = "v5.channel.k8s.io"
STDIN, STDOUT, STDERR, ERROR, CLOSE = 0, 1, 2, 3, 255


@dataclass
class ExecCall:
    namespace: str
    pod: str
    container: str | None
    command: list[str]
    stdin: bytes = b""


@dataclass
class ExecReply:
    stdout: str = ""
    stderr: str = ""
    exit_code: int = 0


ExecHandler = Callable[[ExecCall], ExecReply]


def no_handler(call: ExecCall) -> ExecReply:
    """The default: as if the command did not exist in the container."""
    return ExecReply(stderr=f"no handler for {call.command!r} in {call.namespace}/{call.pod}\n", exit_code=127)


def exit_status(call: ExecCall, code: int) -> dict[str, Any]:
    """The channel-3 Status the kubelet writes at the end of the process."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: error executing command {call.command}, "
                       f"exit code {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def check_target(pod: dict[str, Any] | None, name: str, container: str | None) -> str | None:
    """What the apiserver checks before upgrading; returns the container name to run in."""
    if pod is None:
        raise status.not_found("", "pods", name)
    names = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
    if container is None:
        default = ((pod.get("metadata") or {}).get("annotations") or {}).get("kubectl.kubernetes.io/default-container")
        if len(names) > 1 and default is None:
            raise status.bad_request(f"a container name must be specified for pod {name}, choose one of: "
                                     f"[{' '.join(str(n) for n in names)}]")
        return default or (names[0] if names else None)
    if container not in names:
        raise status.bad_request(f"container {container} is not valid for pod {name}")
    return container


async def serve(request: web.Request, pod: dict[str, Any] | None, handler: ExecHandler,
                protocols: tuple[str, ...] = (V5, V4)) -> web.StreamResponse:
    """Upgrade, collect stdin if asked, run the handler, send its output and the exit Status, close."""
    q = request.query
    namespace, name = request.match_info["ns"], request.match_info["name"]
    container = check_target(pod, name, q.get("container"))
    if request.headers.get("Upgrade", "").lower() != "websocket":
        raise status.bad_request("Upgrade request required")
    ws = web.WebSocketResponse(protocols=protocols)
    await ws.prepare(request)
    v5 = ws.ws_protocol == V5
    stdin = b""
    if q.get("stdin") in ("true", "1"):
        async for msg in ws:
            if msg.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
                break
            data = msg.data if isinstance(msg.data, bytes) else msg.data.encode()
            if v5 and data[:1] == bytes([CLOSE]):
                if data[1:2] == bytes([STDIN]):
                    break
                continue
            if data[:1] == bytes([STDIN]):
                stdin += data[1:]
                if not v5:
                    break
    call = ExecCall(namespace, name, container, q.getall("command", []), stdin)
    try:
        reply = await asyncio.get_running_loop().run_in_executor(None, handler, call)
        end = exit_status(call, reply.exit_code)
    except Exception as exc:  # a broken handler is an internal error, as a failed CRI exec
        reply = ExecReply()
        end = {"metadata": {}, "status": "Failure", "message": f"error executing command in container: {exc}",
               "reason": "InternalError", "details": {"causes": [{"message": str(exc)}]}, "code": 500}
    if reply.stdout and q.get("stdout") in ("true", "1"):
        await ws.send_bytes(bytes([STDOUT]) + reply.stdout.encode())
    if reply.stderr and q.get("stderr") in ("true", "1"):
        await ws.send_bytes(bytes([STDERR]) + reply.stderr.encode())
    await ws.send_bytes(bytes([ERROR]) + json.dumps(end, separators=(",", ":")).encode())
    await ws.close()
    return ws
