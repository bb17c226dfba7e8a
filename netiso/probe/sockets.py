"""Sockets for probes, created in their source namespace and handed out in batches.

Socket *creation* must happen in the source namespace's helper thread (``netns.py``); doing it
per probe would cost a thread hand-off per probe, so a supply fetches ``batch`` sockets per hop
and keeps spares per (namespace, family, type) until the last run that needs them ends.
"""

from __future__ import annotations

import asyncio
import socket
from collections import Counter, deque

from netiso.probe.netns import NetnsThreads, make_sockets

SOCKET_BATCH = 32

SocketKey = tuple[str | None, int, int]


class SocketSupply:
    """Hands out sockets created in their source namespace, fetched in batches.

    Each run announces how many sockets it will need (``expect``); a refill asks the
    namespace thread for ``min(batch, still expected)`` sockets in one hop, so few sockets are
    created that no probe will use, and spares are closed when the last run using a key ends
    (an unconnected socket still pins its namespace).
    """

    def __init__(self, threads: NetnsThreads, batch: int = SOCKET_BATCH) -> None:
        self.threads = threads
        self.batch = batch
        self._spare: dict[SocketKey, deque[socket.socket]] = {}
        self._expected: Counter[SocketKey] = Counter()
        self._users: Counter[SocketKey] = Counter()
        self._refill: dict[SocketKey, asyncio.Future[None]] = {}

    def expect(self, key: SocketKey, count: int) -> None:
        self._users[key] += 1
        self._expected[key] += count

    def done(self, key: SocketKey) -> None:
        """A run that called ``expect`` for ``key`` is over."""
        self._users[key] -= 1
        if self._users[key] <= 0:
            del self._users[key]
            self._expected.pop(key, None)
            for sock in self._spare.pop(key, ()):
                sock.close()

    async def take(self, key: SocketKey) -> socket.socket:
        while True:
            spare = self._spare.get(key)
            if spare:
                self._expected[key] = max(0, self._expected[key] - 1)
                return spare.popleft()
            pending = self._refill.get(key)
            if pending is not None:
                await asyncio.shield(pending)
                continue
            count = max(1, min(self.batch, self._expected[key]))
            fut = asyncio.get_running_loop().create_future()
            self._refill[key] = fut
            try:
                netns, family, kind = key
                socks = await self.threads.arun_in(netns, make_sockets, family, kind, count)
                self._spare.setdefault(key, deque()).extend(socks)
                fut.set_result(None)
            except BaseException as exc:
                fut.set_exception(exc)
                fut.exception()  # mark retrieved; waiters re-raise it below
                raise
            finally:
                del self._refill[key]

    def close(self) -> None:
        for spare in self._spare.values():
            for sock in spare:
                sock.close()
        self._spare.clear()
