"""The emulated API server's watch: a chunked HTTP stream of ``{"type", "object"}`` lines.

Mirrors kube-apiserver's watch over HTTP/1.1 (k8s.io/apiserver pkg/endpoints/handlers/watch.go,
``serveWatch`` with the JSON framer): the initial state as ``ADDED`` events for a watch without a
resourceVersion (or ``0``), then each change the store publishes, until ``timeoutSeconds`` (default
1800 s here) or the server stops; the stream then ends cleanly, as a real watch that timed out.

Knowingly absent: bookmarks, ``410 Gone`` for a too-old resourceVersion (every resourceVersion other
than ``0`` means "from now on"), websocket watches and ``sendInitialEvents``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .resources import Resource
from .store import Store, Watcher


async def stream_watch(request: web.Request, store: Store, resource: Resource, namespace: str | None,
                       match: Callable[[dict[str, Any]], bool]) -> web.StreamResponse:
    """A watch as kube-apiserver streams it: the current objects as ``ADDED`` (unless the client passed a
    ``resourceVersion``), then every change, one JSON event per line, until ``timeoutSeconds``."""
    q = request.query
    loop = asyncio.get_running_loop()
    watcher = Watcher(resource, namespace, match, loop, asyncio.Queue())
    with store.lock:
        initial = [] if q.get("resourceVersion") not in (None, "", "0") else store.list(resource, namespace,
                                                                                             match)
        store.subscribe(watcher)
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    timeout = float(q.get("timeoutSeconds") or 1800)
    deadline = loop.time() + timeout
    try:
        for obj in initial:
            await resp.write((json.dumps({"type": "ADDED", "object": obj}) + "\n").encode())
        while (left := deadline - loop.time()) > 0:
            try:
                event = await asyncio.wait_for(watcher.queue.get(), left)
            except TimeoutError:
                break
            if event is None:  # the server is stopping
                break
            await resp.write((json.dumps(event) + "\n").encode())
    except ConnectionResetError:
        pass
    finally:
        store.unsubscribe(watcher)
    with contextlib.suppress(ConnectionResetError):
        await resp.write_eof()
    return resp
