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
checks (kubernetes pkg/registry/core/pod/strategy.go ExecLocation -> streamLocation): 404 for a
missing pod, 400 when the pod has several containers and none is named or the named one does not
exist (``container c is not valid for pod p``), 400 ``pod p does not have a host assigned`` for a
pod not scheduled yet; then the kubelet's (pkg/kubelet/kubelet_pods.go GetExec: ``container not
found ("c")`` when the container is not running, written by pkg/kubelet/cri/streaming WriteError as
HTTP 500 plain text, which the apiserver's upgrade proxy hands back as is: kubectl shows "unable to
upgrade connection: container not found"); 400 "Upgrade request required" for a plain HTTP request.

Output is streamed: stdout is sent in ``Timing.exec_frames`` frames a few milliseconds apart
(stderr frames between them), so a client that reads the first frame and stops gets a partial
answer; ``ExecReply.runs_for`` keeps the process running (no exit Status) for that many real
seconds after its output, or until the client hangs up: a command that outlives the client's
timeout.

Knowingly differs: the handler computes the whole output first (frames are cut from it, not
produced by a running process); with ``stdin=true`` under v4, which has no end-of-stdin signal,
the first stdin frame is taken as all of stdin (v5 reads until the client closes channel 0); no
tty / resize channel 4; no SPDY; a process whose client hung up is not killed (it just ends here;
on a real node it keeps running in the container).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from . import status

if TYPE_CHECKING:
    from .lifecycle import Timing

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
    """What the "container" prints and how it ends; ``runs_for``: real seconds it keeps running after
    printing (no exit Status until then, or until the client hangs up)."""

    stdout: str = ""
    stderr: str = ""
    exit_code: int = 0
    runs_for: float = 0.0


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


def kubelet_refusal(pod: dict[str, Any], name: str, container: str | None) -> web.Response | None:
    """The apiserver's host check, then the kubelet's running-container check (see the module docstring)."""
    if not (pod.get("spec") or {}).get("nodeName"):
        raise status.bad_request(f"pod {name} does not have a host assigned")
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == container and "running" in (cs.get("state") or {}):
            return None
    # the headers a refused upgrade carries through kube-apiserver 1.33: its Audit-Id, Cache-Control and
    # API Priority and Fairness UIDs, and the kubelet's own (websocket-client quotes them all before the body)
    headers = {"Audit-Id": str(uuid.uuid4()), "Cache-Control": "no-cache, private",
               "X-Content-Type-Options": "nosniff", "X-Kubernetes-Pf-Flowschema-Uid": str(uuid.uuid4()),
               "X-Kubernetes-Pf-Prioritylevel-Uid": str(uuid.uuid4())}
    return web.Response(status=500, text=f'container not found ("{container}")', content_type="text/plain",
                        headers=headers)


def _pieces(text: str, count: int) -> list[str]:
    """``text`` cut into at most ``count`` non-empty pieces (mid-line: a frame is not a line)."""
    if count <= 1 or len(text) < 2:
        return [text] if text else []
    size = -(-len(text) // count)
    return [text[i:i + size] for i in range(0, len(text), size)]


async def serve(request: web.Request, pod: dict[str, Any] | None, handler: ExecHandler,
                protocols: tuple[str, ...] = (V5, V4), timing: Timing | None = None) -> web.StreamResponse:
    """Upgrade, collect stdin if asked, run the handler, stream its output and the exit Status, close."""
    q = request.query
    namespace, name = request.match_info["ns"], request.match_info["name"]
    container = check_target(pod, name, q.get("container"))
    assert pod is not None
    refused = kubelet_refusal(pod, name, container)
    if refused is not None:
        return refused
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
    frames = timing.exec_frames if timing is not None else 1
    gap = timing.exec_frame_gap_s if timing is not None else 0.0
    out = _pieces(reply.stdout, frames) if q.get("stdout") in ("true", "1") else []
    err = _pieces(reply.stderr, frames) if q.get("stderr") in ("true", "1") else []
    for i in range(max(len(out), len(err))):
        if i:
            await asyncio.sleep(gap)
        if i < len(out):
            await ws.send_bytes(bytes([STDOUT]) + out[i].encode())
        if i < len(err):
            await ws.send_bytes(bytes([STDERR]) + err[i].encode())
    if reply.runs_for > 0 and await _client_left_within(ws, reply.runs_for):
        return ws  # the client gave up on the command first: no exit Status was ever written
    await ws.send_bytes(bytes([ERROR]) + json.dumps(end, separators=(",", ":")).encode())
    await ws.close()
    return ws


async def _client_left_within(ws: web.WebSocketResponse, seconds: float) -> bool:
    """Wait ``seconds`` for the process to end; True when the client closed the websocket first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        try:
            msg = await asyncio.wait_for(ws.receive(), left)
        except TimeoutError:
            return False
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            return True
    return False
