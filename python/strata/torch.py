"""Embedding modules whose weights live on the strata servers and whose optimizer runs there.

:class:`Embedding` and :class:`EmbeddingBag` behave like ``torch.nn.Embedding`` and
``torch.nn.EmbeddingBag`` with one difference: the table is a strata table. ``forward`` pulls
the rows of the batch's distinct ids; ``backward`` sums the gradient of each distinct id and
pushes it, and the server applies the table's optimizer (so these modules have no
parameters for a torch optimizer: dense layers keep theirs).

``prefetch(ids)`` starts pulling the rows of a coming batch on a background thread while the
current one computes; a ``forward`` over the same ids uses them. Rows prefetched before the
current step's push miss that push's update (one step of staleness, as in any pipelined
trainer). A module holds a :class:`strata.Client`, which connects again in each process that
uses it (DataLoader workers, ``torchrun`` ranks); with DDP, wrap the dense part.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from .client import Client
from .errors import InvalidArgument

__all__ = ["Embedding", "EmbeddingBag"]


# Prefetchers inherited through fork: kept alive, never touched (their thread is gone).
_INHERITED: list = []


class _Prefetcher:
    """Pulls started ahead of the forwards that use them, by key (the distinct ids' bytes),
    on one background thread of the process that made it."""

    def __init__(self):
        self.pid = os.getpid()
        self.pending: "OrderedDict[bytes, Future]" = OrderedDict()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="strata-prefetch")

    def start(self, key: bytes, limit: int, pull, *args) -> None:
        """Submits ``pull(*args)`` under ``key`` unless it is pending; the oldest pending
        pulls beyond ``limit`` are dropped."""
        if key in self.pending:
            return
        self.pending[key] = self.executor.submit(pull, *args)
        while len(self.pending) > max(limit, 1):
            _, oldest = self.pending.popitem(last=False)
            oldest.cancel()

    def take(self, key: bytes) -> Optional[Future]:
        """The pending pull under ``key``, no longer pending; ``None`` if there is none."""
        return self.pending.pop(key, None)


class _ServerRows(torch.autograd.Function):
    """The rows of a batch's distinct ids as a ``(n_unique, dim)`` tensor: pulled in
    ``forward``, their summed gradient pushed in ``backward``."""

    @staticmethod
    def forward(ctx, anchor, module, unique):  # noqa: D401 (torch's signature)
        ctx.module = module
        ctx.unique = unique
        return torch.from_numpy(module._rows(unique))

    @staticmethod
    def backward(ctx, grad):
        grads = grad.detach().to(device="cpu", dtype=torch.float32).contiguous().numpy()
        ctx.module._push(ctx.unique, grads)
        return None, None, None


class _ServerTable(torch.nn.Module):
    """What both modules share: the client and table, distinct ids of a batch, pulls
    (prefetched or not) and pushes."""

    def __init__(self, client: Client, table: str, max_prefetch: int = 4):
        super().__init__()
        self.client = client
        self.table = table
        self.embedding_dim = client.dim(table)
        self.max_prefetch = max_prefetch
        self._prefetcher: Optional[_Prefetcher] = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_prefetcher"] = None
        return state

    def extra_repr(self) -> str:
        return f"table={self.table!r}, embedding_dim={self.embedding_dim}"

    def _distinct(self, ids: torch.Tensor) -> Tuple[np.ndarray, torch.Tensor]:
        """The sorted distinct ids of ``ids`` (uint64 numpy) and, for each position of
        ``ids``, the index of its id among them."""
        if ids.dtype not in (torch.int64, torch.int32):
            raise InvalidArgument(f"ids must be an integer (long) tensor, got {ids.dtype}")
        flat = ids.detach().reshape(-1).to("cpu", torch.int64)
        if flat.numel() == 0:
            return np.empty(0, dtype=np.uint64), torch.empty(ids.shape, dtype=torch.int64)
        unique, inverse = torch.unique(flat, sorted=True, return_inverse=True)
        if int(unique[0]) < 0:
            raise InvalidArgument("ids must be >= 0, got a negative id")
        return unique.numpy().view(np.uint64), inverse.view(ids.shape)

    def _prefetches(self) -> "_Prefetcher":
        """This process's prefetcher: a forked child (a DataLoader worker) starts its own,
        since the parent's thread does not exist in it and its pulls will never finish."""
        current = self._prefetcher
        if current is None or current.pid != os.getpid():
            if current is not None:
                _INHERITED.append(current)  # never waited on or shut down in this process
            current = self._prefetcher = _Prefetcher()
        return current

    def prefetch(self, ids: torch.Tensor) -> None:
        """Starts pulling the rows of ``ids`` (a coming batch) in the background; the
        ``forward`` over the same ids uses them instead of pulling."""
        unique, _ = self._distinct(torch.as_tensor(ids))
        if unique.size:
            self._prefetches().start(
                unique.tobytes(), self.max_prefetch, self.client.pull, self.table, unique
            )

    def _rows(self, unique: np.ndarray) -> np.ndarray:
        """Rows of the distinct ids: the prefetched ones if ``prefetch`` asked for them."""
        if unique.size == 0:
            return np.empty((0, self.embedding_dim), dtype=np.float32)
        current = self._prefetcher
        if current is not None and current.pid == os.getpid():
            pending = current.take(unique.tobytes())
            if pending is not None:
                return pending.result()
        return self.client.pull(self.table, unique)

    def _push(self, unique: np.ndarray, grads: np.ndarray) -> None:
        if unique.size:
            self.client.push(self.table, unique, grads)

    def _weight(self, unique: np.ndarray, device: torch.device) -> torch.Tensor:
        """The distinct ids' rows as a tensor whose gradient goes back to the server."""
        anchor = torch.empty(0, requires_grad=torch.is_grad_enabled())
        rows = _ServerRows.apply(anchor, self, unique)
        return rows if device.type == "cpu" else rows.to(device)


class Embedding(_ServerTable):
    """``torch.nn.Embedding`` over strata table ``table``: ``forward(ids)`` with a long
    tensor of any shape returns ``ids.shape + (dim,)``."""

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Rows of ``ids``; their gradients are pushed to the server in ``backward``."""
        unique, inverse = self._distinct(ids)
        weight = self._weight(unique, ids.device)
        return F.embedding(inverse.to(ids.device), weight)


class EmbeddingBag(_ServerTable):
    """``torch.nn.EmbeddingBag`` over strata table ``table``.

    ``forward(input, offsets=None, per_sample_weights=None)`` has ``torch.nn.EmbeddingBag``'s
    semantics: a 2-D ``input`` is one bag per row; a 1-D ``input`` is cut into bags at
    ``offsets`` (``include_last_offset`` as in torch). ``mode`` is ``"sum"``, ``"mean"``
    (torch's default) or ``"max"``; ``per_sample_weights`` needs ``"sum"``.
    """

    def __init__(
        self,
        client: Client,
        table: str,
        mode: str = "mean",
        include_last_offset: bool = False,
        max_prefetch: int = 4,
    ):
        if mode not in ("sum", "mean", "max"):
            raise InvalidArgument(f"mode must be 'sum', 'mean' or 'max', got {mode!r}")
        super().__init__(client, table, max_prefetch=max_prefetch)
        self.mode = mode
        self.include_last_offset = include_last_offset

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, mode={self.mode!r}"

    def forward(
        self,
        input: torch.Tensor,
        offsets: Optional[torch.Tensor] = None,
        per_sample_weights: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """One pooled row per bag; gradients are pushed to the server in ``backward``."""
        if input.dim() not in (1, 2):
            raise InvalidArgument(f"input must be 1-D or 2-D, got {input.dim()}-D")
        if input.dim() == 1 and offsets is None:
            raise InvalidArgument("a 1-D input needs offsets")
        unique, inverse = self._distinct(input)
        weight = self._weight(unique, input.device)
        return F.embedding_bag(
            inverse.to(input.device),
            weight,
            offsets,
            mode=self.mode,
            per_sample_weights=per_sample_weights,
            include_last_offset=self.include_last_offset,
        )
