"""Create sockets inside named network namespaces without moving the main thread.

A socket belongs to the network namespace of the thread that created it, for its whole life,
whatever thread later reads or writes it. So the probe agent keeps ONE asyncio loop in the main
thread (which never changes namespace) and asks small helper threads, each parked in one
namespace with ``setns(2)``, to create sockets for it. The loop then does all the I/O.

Two strategies exist and are measured by ``bench/probe.py``:

* ``NetnsThreads`` (the default): one long-lived thread per namespace; ``setns`` runs once.
* ``HoppingThread``: one thread that re-enters the wanted namespace before each call (an
  ``open`` + ``setns`` + ``close`` per hop, more syscalls but one thread for everything).

Python 3.11 has no ``os.setns``, so ``setns`` is called through ctypes.

A thread (or a socket) parked in a namespace keeps that namespace alive after
``ip netns delete``: call ``NetnsThreads.release(name)`` and close the sockets first.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import os
import queue
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = "/run/netns"

T = TypeVar("T")

_libc: ctypes.CDLL | None = None


def _get_libc() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def netns_path(netns_name: str) -> str:
    """Path of the bind mount that ``ip netns add`` creates for ``netns_name``.

    >>> netns_path("nxh2-a")
    '/run/netns/nxh2-a'
    """
    if not netns_name or "/" in netns_name or netns_name in (".", ".."):
        raise ValueError(f"invalid network namespace name: {netns_name!r}")
    return os.path.join(NETNS_RUN_DIR, netns_name)


def setns_fd(fd: int) -> None:
    """Move the calling thread into the network namespace referred to by ``fd``."""
    if _get_libc().setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def setns(netns_name: str) -> None:
    """Move the calling thread into the named network namespace (``/run/netns/<name>``).

    Refuses to run in the main thread: the agent's event loop lives there and must stay in the
    namespace the process started in, or every socket created later would silently land in the
    wrong namespace.
    """
    if threading.current_thread() is threading.main_thread():
        raise RuntimeError("setns() must not be called from the main thread")
    fd = os.open(netns_path(netns_name), os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns_fd(fd)
    finally:
        os.close(fd)


_STOP = object()


class _Worker(threading.Thread):
    """A daemon thread that runs submitted callables one after the other."""

    def __init__(self, name: str, netns: str | None) -> None:
        super().__init__(name=name, daemon=True)
        self.netns = netns
        self.jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.ready: concurrent.futures.Future[None] = concurrent.futures.Future()

    def run(self) -> None:
        try:
            if self.netns is not None:
                setns(self.netns)
        except BaseException as exc:  # reported to whoever waits for ready
            self.ready.set_exception(exc)
            return
        self.ready.set_result(None)
        self._loop()

    def _loop(self) -> None:
        while True:
            job = self.jobs.get()
            if job is _STOP:
                return
            fut, fn, args = job
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn(*args))
            except BaseException as exc:
                fut.set_exception(exc)

    def submit(self, fn: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()
        self.jobs.put((fut, fn, args))
        return fut

    def stop(self) -> None:
        self.jobs.put(_STOP)


class NetnsThreads:
    """One long-lived helper thread per network namespace.

    ``None`` as a namespace name means "the namespace the process runs in" (still served by a
    helper thread, so callers never block the loop).

    >>> threads = NetnsThreads()
    >>> s = threads.socket_in(None, socket.AF_INET, socket.SOCK_DGRAM)
    >>> s.close(); threads.close()
    """

    def __init__(self) -> None:
        self._workers: dict[str | None, _Worker] = {}
        self._lock = threading.Lock()

    def _worker(self, netns: str | None) -> _Worker:
        with self._lock:
            worker = self._workers.get(netns)
            if worker is None:
                worker = _Worker(f"netns:{netns or '-'}", netns)
                worker.start()
                self._workers[netns] = worker
        try:
            worker.ready.result()  # raises the setns failure (e.g. no such namespace)
        except BaseException:
            with self._lock:
                if self._workers.get(netns) is worker:
                    del self._workers[netns]
            raise
        return worker

    def submit(self, netns: str | None, fn: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        """Run ``fn(*args)`` in the namespace's thread; returns a concurrent future."""
        return self._worker(netns).submit(fn, *args)

    def run_in(self, netns: str | None, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` inside ``netns`` and wait for its result (blocking)."""
        return self.submit(netns, fn, *args).result()

    async def arun_in(self, netns: str | None, fn: Callable[..., T], *args: Any) -> T:
        """Like ``run_in`` but awaitable from the event loop.

        Starting a thread for a new namespace is the only blocking part; it happens once per
        namespace, so it is done in the default executor to keep the loop responsive.
        """
        worker = self._workers.get(netns)
        if worker is None or not worker.ready.done():
            loop = asyncio.get_running_loop()
            worker = await loop.run_in_executor(None, self._worker, netns)
        return await asyncio.wrap_future(worker.submit(fn, *args))

    def socket_in(self, netns: str | None, family: int, type: int) -> socket.socket:
        """A non-blocking socket created inside ``netns``."""
        return self.run_in(netns, make_socket, family, type)

    def namespaces(self) -> list[str | None]:
        with self._lock:
            return list(self._workers)

    def release(self, netns: str | None) -> None:
        """End the thread parked in ``netns`` so that it no longer pins the namespace."""
        with self._lock:
            worker = self._workers.pop(netns, None)
        if worker is not None:
            worker.stop()
            worker.join(timeout=5)

    def close(self) -> None:
        for netns in self.namespaces():
            self.release(netns)


class HoppingThread:
    """One helper thread that enters the requested namespace before every call.

    Namespace file descriptors are cached so that a hop is one ``setns`` syscall; the thread
    remembers where it is and skips the syscall when the namespace does not change.
    """

    def __init__(self) -> None:
        self._worker = _Worker("netns-hopper", None)
        self._worker.start()
        self._worker.ready.result()
        self._fds: dict[str | None, int] = {}
        self._current: str | None = None
        # The namespace the process started in, to hop back for ``None``.
        self._fds[None] = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)

    def _enter_and_call(self, netns: str | None, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        if netns != self._current:
            fd = self._fds.get(netns)
            if fd is None:
                fd = self._fds[netns] = os.open(netns_path(netns or ""), os.O_RDONLY | os.O_CLOEXEC)
            setns_fd(fd)
            self._current = netns
        return fn(*args)

    def submit(self, netns: str | None, fn: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        return self._worker.submit(self._enter_and_call, netns, fn, args)

    def run_in(self, netns: str | None, fn: Callable[..., T], *args: Any) -> T:
        return self.submit(netns, fn, *args).result()

    def socket_in(self, netns: str | None, family: int, type: int) -> socket.socket:
        return self.run_in(netns, make_socket, family, type)

    def close(self) -> None:
        self._worker.stop()
        self._worker.join(timeout=5)
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def make_socket(family: int, type: int) -> socket.socket:
    """A non-blocking socket in the calling thread's namespace."""
    sock = socket.socket(family, type)
    sock.setblocking(False)
    return sock


def make_sockets(family: int, type: int, count: int) -> list[socket.socket]:
    """``count`` non-blocking sockets in one hop (amortises the thread hand-off)."""
    return [make_socket(family, type) for _ in range(count)]


_default_threads: NetnsThreads | None = None


def default_threads() -> NetnsThreads:
    """The process-wide ``NetnsThreads`` used by the module-level helpers."""
    global _default_threads
    if _default_threads is None:
        _default_threads = NetnsThreads()
    return _default_threads


def socket_in(netns: str | None, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM) -> socket.socket:
    """A non-blocking socket created in ``netns`` by that namespace's helper thread."""
    return default_threads().socket_in(netns, family, type)


def run_in(netns: str | None, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` inside ``netns`` (in its helper thread) and return its result.

    Use it for anything namespace-bound that is not a socket, e.g. reading
    ``/proc/thread-self/net/...`` or calling ``socket.if_nametoindex``.
    """
    return default_threads().run_in(netns, fn, *args)


@contextmanager
def in_netns(netns: str) -> Iterator[Callable[..., Any]]:
    """A private helper thread in ``netns`` for the duration of a ``with`` block.

    Yields ``call(fn, *args)`` which runs ``fn`` inside the namespace and returns its result;
    the thread ends (and stops pinning the namespace) when the block exits.

    >>> with in_netns("nxh2-a") as call:  # doctest: +SKIP
    ...     call(socket.if_nametoindex, "lo")
    1
    """
    worker = _Worker(f"netns-ctx:{netns}", netns)
    worker.start()
    try:
        worker.ready.result()

        def call(fn: Callable[..., T], *args: Any) -> T:
            return worker.submit(fn, *args).result()

        yield call
    finally:
        worker.stop()
        worker.join(timeout=5)
