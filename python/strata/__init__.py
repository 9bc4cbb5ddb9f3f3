"""strata: Python and PyTorch client of the strata embedding and parameter server.

::

    import numpy as np, strata
    c = strata.Client("127.0.0.1:7070")
    c.create_table("emb", dim=16, optimizer="adagrad", lr=0.05, init="uniform:0.01", seed=1)
    rows = c.pull("emb", np.array([1, 2, 3], dtype=np.uint64))   # float32 (3, 16)
    c.push("emb", [1, 2, 3], np.full((3, 16), 0.1, dtype=np.float32))

Modules: :mod:`strata.client` (:class:`Client`), :mod:`strata.aio` (:class:`AsyncClient`),
:mod:`strata.errors` (the exceptions), :mod:`strata.torch` (embedding modules whose weights
and optimizer live on the servers; imports torch), :mod:`strata.bench` (workload W1 from
Python: ``python -m strata.bench``).
"""

from ._native import __version__
from .aio import AsyncClient
from .client import Client
from .errors import (
    AmbiguousPush,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    StrataError,
    Unavailable,
)

__all__ = [
    "Client",
    "AsyncClient",
    "StrataError",
    "NotFound",
    "InvalidArgument",
    "ResourceExhausted",
    "Unavailable",
    "AmbiguousPush",
    "__version__",
]
