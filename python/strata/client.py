"""The blocking client: :class:`Client`.

Each call checks its arguments (see :mod:`strata._arrays`), then hands numpy buffers to the
native extension, which runs the Rust client (routing, dedup, per-node fan-out, retries) with
the GIL released while it waits on the network.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from . import _native
from ._arrays import float32_array, grads_array, ids_array, out_array
from .errors import InvalidArgument

__all__ = ["Client"]

# Native clients inherited through fork: kept alive and never used or dropped in the child,
# since dropping one could wait on a lock a thread of the parent held when it forked.
_INHERITED: List[Any] = []


def _hyperparameters(lr: Optional[float], extra: Dict[str, Any]) -> Dict[str, float]:
    """Optimizer settings by flag name, as floats (``None`` means the rule's default)."""
    values = dict(extra)
    if lr is not None:
        values["lr"] = lr
    out = {}
    for name, value in values.items():
        if value is None:
            continue
        try:
            out[name] = float(value)
        except (TypeError, ValueError):
            raise InvalidArgument(f"{name} must be a number, got {value!r}") from None
    return out


class Client:
    """A connection to a strata cluster.

    ``addr`` is one coordinator address or several, comma-separated (like the CLI's
    ``--coordinator``); the client finds the leader among them and follows it. A client may
    be shared by threads. After ``fork`` (DataLoader workers, multiprocessing) or unpickling,
    it connects again on first use. ``labels`` says where the client runs (e.g.
    ``"zone=z1,rack=r1"``; default: the ``STRATA_LABELS`` environment variable): shard servers
    count its traffic by that location, which topology-aware placement reads.
    ``connect_timeout`` (seconds, default 3) bounds the wait for a coordinator to answer;
    an unreachable one raises :class:`strata.Unavailable` naming the address.
    ``tls_ca``, ``tls_cert``, ``tls_key`` name PEM files (default: the ``STRATA_TLS_CA``,
    ``STRATA_TLS_CERT``, ``STRATA_TLS_KEY`` environment variables): with a CA the client
    connects with TLS and verifies the servers; the certificate and key are shown to servers
    that require client certificates. A refused handshake raises :class:`strata.StrataError`
    (code ``UNAUTHENTICATED``) saying what failed.
    """

    def __init__(
        self,
        addr: str = "127.0.0.1:7070",
        *,
        labels: Optional[str] = None,
        connect_timeout: Optional[float] = None,
        tls_ca: Optional[str] = None,
        tls_cert: Optional[str] = None,
        tls_key: Optional[str] = None,
    ):
        self.addr = addr
        self.labels = labels
        self.connect_timeout = connect_timeout
        self.tls = {"tls_ca": tls_ca, "tls_cert": tls_cert, "tls_key": tls_key}
        self._dims: Dict[str, int] = {}
        self._pid = os.getpid()
        self._native_client = self._connect()

    def _connect(self) -> "_native.NativeClient":
        tls = {k: os.fspath(v) for k, v in self.tls.items() if v is not None}
        return _native.NativeClient(self.addr, self.labels, self.connect_timeout, **tls)

    def __getstate__(self):
        return {
            "addr": self.addr,
            "labels": self.labels,
            "connect_timeout": self.connect_timeout,
            "tls": self.tls,
        }

    def __setstate__(self, state):
        self.addr = state["addr"]
        self.labels = state.get("labels")
        self.connect_timeout = state.get("connect_timeout")
        self.tls = state.get("tls") or {"tls_ca": None, "tls_cert": None, "tls_key": None}
        self._dims = {}
        self._pid = None
        self._native_client = None

    def __repr__(self) -> str:
        return f"strata.Client({self.addr!r})"

    @property
    def _native(self) -> "_native.NativeClient":
        """The native client of this process (connected again after fork or unpickling)."""
        if self._pid != os.getpid() or self._native_client is None:
            if self._native_client is not None:
                _INHERITED.append(self._native_client)
                self._native_client = None
            self._native_client = self._connect()
            self._pid = os.getpid()
        return self._native_client

    def dim(self, table: str) -> int:
        """The row width of ``table`` (asked once, then remembered)."""
        dim = self._dims.get(table)
        if dim is None:
            self.tables()
            dim = self._dims.get(table)
            if dim is None:
                from .errors import NotFound

                raise NotFound(f"table {table!r} not found", "NOT_FOUND")
        return dim

    def _checked_dim(self, table: str, columns: int) -> Optional[int]:
        """The dim to check ``columns`` against: the remembered one, asked again when it
        differs (the table may have been recreated); ``None`` when not known yet."""
        dim = self._dims.get(table)
        if dim is not None and dim != columns:
            self._dims.pop(table, None)
            return self.dim(table)
        return dim

    # -- tables -------------------------------------------------------------------------

    def create_table(
        self,
        name: str,
        dim: int,
        optimizer: str = "sgd",
        lr: Optional[float] = None,
        init: str = "uniform:0.01",
        seed: int = 0,
        tier: str = "host",
        **hyperparameters: float,
    ) -> None:
        """Creates table ``name`` of rows of ``dim`` float32 values.

        The arguments mirror ``strata table create``: ``optimizer`` is ``sgd``, ``adagrad``,
        ``adam`` or ``ftrl``; ``init`` is ``zeros``, ``uniform:A`` or ``normal:STD``;
        ``tier`` is ``host`` or ``gpu``; further keyword arguments are the optimizer's
        hyperparameters by flag name (``initial_accumulator``, ``beta1``, ``beta2``,
        ``epsilon``, ``l1``, ``l2``, ``lr_power``, ``beta``, ``weight_decay``,
        ``clip_value``, ``clip_norm``).
        """
        self._native.create_table(
            name,
            int(dim),
            optimizer,
            _hyperparameters(lr, hyperparameters),
            init,
            int(seed),
            tier,
        )
        self._dims[name] = int(dim)

    def drop_table(self, name: str) -> None:
        """Drops table ``name`` and its rows."""
        self._native.drop_table(name)
        self._dims.pop(name, None)

    def tables(self) -> List[Dict[str, Any]]:
        """Tables as dicts with ``name``, ``dim``, ``optimizer``, ``rows``, ``bytes``
        (and ``tier``)."""
        tables = self._native.tables()
        self._dims = {t["name"]: t["dim"] for t in tables}
        return tables

    # -- rows ---------------------------------------------------------------------------

    def pull(self, table: str, ids) -> np.ndarray:
        """Rows of ``ids`` as float32 of shape ``(len(ids), dim)``; missing rows are created
        with the table's initializer.

        ``ids`` is a 1-D uint64 array (int64 arrays with values >= 0 and lists of ints are
        accepted); duplicates get the same row.
        """
        ids = ids_array(ids)
        if ids.size == 0:
            return np.empty((0, self.dim(table)), dtype=np.float32)
        flat = self._native.pull(table, ids)
        rows = flat.reshape(ids.size, -1)
        self._dims[table] = rows.shape[1]
        return rows

    def pull_into(self, table: str, ids, out: np.ndarray) -> np.ndarray:
        """Writes the rows of ``ids`` into ``out``, a caller's C-contiguous float32 array of
        shape ``(len(ids), dim)``; rows are written in place, with no extra copy. Returns
        ``out``."""
        ids = ids_array(ids)
        out_array(out, ids.size, self._checked_dim(table, getattr(out, "shape", (0, 0))[-1]))
        if ids.size == 0:
            return out
        self._native.pull_into(table, ids, out)
        return out

    def push(self, table: str, ids, grads) -> int:
        """Applies ``grads`` (float32, shape ``(len(ids), dim)``) to the rows of ``ids`` with
        the table's optimizer; gradients of duplicate ids are summed first. Returns the
        number of distinct rows applied.

        Raises :class:`~strata.AmbiguousPush` when the push was sent and its connection then
        failed (it may have been applied; it is not retried).
        """
        ids = ids_array(ids)
        arr = float32_array(grads, "grads")
        columns = arr.shape[-1] if arr.ndim == 2 else 0
        grads = grads_array(arr, ids.size, self._checked_dim(table, columns))
        if ids.size == 0:
            return 0
        return self._native.push(table, ids, grads)

    # -- dense tensors ------------------------------------------------------------------

    def create_dense(
        self,
        name: str,
        shape: Sequence[int],
        optimizer: str = "sgd",
        lr: Optional[float] = None,
        init: str = "zeros",
        seed: int = 0,
        **hyperparameters: float,
    ) -> None:
        """Creates dense tensor ``name`` of ``shape`` (float32), updated on the servers by
        ``optimizer`` from pushed gradients; arguments as for :meth:`create_table`."""
        shape = [int(s) for s in shape]
        if any(s <= 0 for s in shape) or not shape:
            raise InvalidArgument(f"shape must be positive sizes, got {tuple(shape)}")
        self._native.create_dense(
            name, shape, optimizer, _hyperparameters(lr, hyperparameters), init, int(seed)
        )

    def pull_dense(self, name: str) -> np.ndarray:
        """The values of dense tensor ``name`` as float32 of its shape."""
        values, shape = self._native.pull_dense(name)
        return values.reshape(shape)

    def push_dense(self, name: str, grads) -> int:
        """Applies a gradient to dense tensor ``name``: float32 with as many values as the
        tensor (any shape with that many values, e.g. the tensor's own)."""
        grads = float32_array(grads, "grads")
        return self._native.push_dense(name, grads)

    def drop_dense(self, name: str) -> None:
        """Drops dense tensor ``name``."""
        self._native.drop_dense(name)

    def dense_tensors(self) -> List[Dict[str, Any]]:
        """Dense tensors as dicts with ``name``, ``shape``, ``optimizer``."""
        return self._native.dense_tensors()

    # -- durability ---------------------------------------------------------------------

    def checkpoint(self) -> str:
        """Takes a checkpoint of every table and dense tensor; returns its id."""
        return self._native.checkpoint()

    def checkpoints(self) -> List[Dict[str, Any]]:
        """Checkpoints, newest first, as dicts (``id``, ``created_unix_ms``, ``bytes``,
        ``tables``, ``rows``, ``state``)."""
        return self._native.checkpoints()

    def restore(self, checkpoint_id: str) -> None:
        """Restores every table and dense tensor from checkpoint ``checkpoint_id``."""
        self._native.restore(checkpoint_id)
        self._dims = {}
