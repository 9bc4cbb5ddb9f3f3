"""The asyncio flavour: :class:`AsyncClient`, for trainers that overlap I/O with compute.

Each coroutine runs the blocking call on a small thread pool; the native calls release the
GIL while they wait on the network, so several pulls and pushes (and the event loop) run at
the same time.
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Optional

import numpy as np

from .client import Client

__all__ = ["AsyncClient"]


class AsyncClient:
    """:class:`strata.Client` with awaitable methods of the same names and arguments.

    ``AsyncClient(addr)`` connects at once (blocking); ``await AsyncClient.connect(addr)``
    connects without blocking the event loop. ``max_workers`` bounds the calls in flight;
    ``labels`` and ``connect_timeout`` are :class:`strata.Client`'s.
    """

    def __init__(
        self,
        addr: str = "127.0.0.1:7070",
        *,
        max_workers: int = 4,
        labels: Optional[str] = None,
        connect_timeout: Optional[float] = None,
        _client=None,
    ):
        self.client = (
            _client
            if _client is not None
            else Client(addr, labels=labels, connect_timeout=connect_timeout)
        )
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="strata")

    @classmethod
    async def connect(
        cls,
        addr: str = "127.0.0.1:7070",
        *,
        max_workers: int = 4,
        labels: Optional[str] = None,
        connect_timeout: Optional[float] = None,
    ) -> "AsyncClient":
        """Connects without blocking the running event loop."""
        loop = asyncio.get_running_loop()
        connect = functools.partial(Client, addr, labels=labels, connect_timeout=connect_timeout)
        client = await loop.run_in_executor(None, connect)
        return cls(addr, max_workers=max_workers, _client=client)

    async def _run(self, fn, *args, **kwargs):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        """Stops the thread pool (calls in flight finish first)."""
        self._pool.shutdown(wait=True)

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc) -> None:
        self.close()

    async def create_table(self, name: str, dim: int, **kwargs: Any) -> None:
        """See :meth:`strata.Client.create_table`."""
        await self._run(self.client.create_table, name, dim, **kwargs)

    async def drop_table(self, name: str) -> None:
        """See :meth:`strata.Client.drop_table`."""
        await self._run(self.client.drop_table, name)

    async def tables(self) -> List[Dict[str, Any]]:
        """See :meth:`strata.Client.tables`."""
        return await self._run(self.client.tables)

    async def pull(self, table: str, ids) -> np.ndarray:
        """See :meth:`strata.Client.pull`."""
        return await self._run(self.client.pull, table, ids)

    async def pull_into(self, table: str, ids, out: np.ndarray) -> np.ndarray:
        """See :meth:`strata.Client.pull_into`."""
        return await self._run(self.client.pull_into, table, ids, out)

    async def push(self, table: str, ids, grads) -> int:
        """See :meth:`strata.Client.push`."""
        return await self._run(self.client.push, table, ids, grads)

    async def create_dense(self, name: str, shape, **kwargs: Any) -> None:
        """See :meth:`strata.Client.create_dense`."""
        await self._run(self.client.create_dense, name, shape, **kwargs)

    async def pull_dense(self, name: str) -> np.ndarray:
        """See :meth:`strata.Client.pull_dense`."""
        return await self._run(self.client.pull_dense, name)

    async def push_dense(self, name: str, grads) -> int:
        """See :meth:`strata.Client.push_dense`."""
        return await self._run(self.client.push_dense, name, grads)

    async def drop_dense(self, name: str) -> None:
        """See :meth:`strata.Client.drop_dense`."""
        await self._run(self.client.drop_dense, name)

    async def checkpoint(self) -> str:
        """See :meth:`strata.Client.checkpoint`."""
        return await self._run(self.client.checkpoint)

    async def restore(self, checkpoint_id: str) -> None:
        """See :meth:`strata.Client.restore`."""
        await self._run(self.client.restore, checkpoint_id)
