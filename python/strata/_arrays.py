"""Argument checks that turn ids, gradients and output buffers into the exact arrays the
native extension takes (1-D C-contiguous uint64 ids, C-contiguous float32 values), with
vectorised numpy work only and a clear :class:`~strata.errors.InvalidArgument` otherwise."""

from __future__ import annotations

import numpy as np

from .errors import InvalidArgument


def ids_array(ids) -> np.ndarray:
    """``ids`` as a 1-D C-contiguous uint64 array.

    Accepts uint64 arrays as they are, other integer arrays (int64 ...) whose values are all
    >= 0, and sequences of Python ints; anything else is an :class:`InvalidArgument`.
    """
    arr = ids if isinstance(ids, np.ndarray) else np.asarray(ids)
    if arr.dtype == object:
        try:
            arr = np.asarray(ids, dtype=np.uint64)
        except (TypeError, ValueError, OverflowError) as e:
            raise InvalidArgument(f"ids must be integers >= 0: {e}") from None
    if arr.ndim != 1:
        raise InvalidArgument(f"ids must be 1-D, got an array of shape {arr.shape}")
    if arr.size == 0:
        return np.empty(0, dtype=np.uint64)
    if arr.dtype == np.uint64:
        return np.ascontiguousarray(arr)
    if arr.dtype.kind == "u":
        return arr.astype(np.uint64)
    if arr.dtype.kind == "i":
        if arr.min() < 0:
            raise InvalidArgument("ids must be >= 0, got a negative id")
        if arr.dtype == np.int64:
            return np.ascontiguousarray(arr).view(np.uint64)
        return arr.astype(np.uint64)
    raise InvalidArgument(f"ids must be uint64 (or int64 >= 0), got dtype {arr.dtype}")


def float32_array(values, what: str) -> np.ndarray:
    """``values`` as a C-contiguous float32 array: float32 arrays as they are (copied only if
    not contiguous), lists of numbers converted; arrays of another dtype are refused rather
    than converted silently."""
    if isinstance(values, np.ndarray):
        if values.dtype != np.float32:
            raise InvalidArgument(f"{what} must be float32, got dtype {values.dtype}")
        return np.ascontiguousarray(values)
    if hasattr(values, "__array__") and not isinstance(values, (list, tuple)):
        arr = np.asarray(values)
        if arr.dtype != np.float32:
            raise InvalidArgument(f"{what} must be float32, got dtype {arr.dtype}")
        return np.ascontiguousarray(arr)
    try:
        return np.ascontiguousarray(np.asarray(values, dtype=np.float32))
    except (TypeError, ValueError) as e:
        raise InvalidArgument(f"{what} must be float32 numbers: {e}") from None


def grads_array(grads, n: int, dim: int | None) -> np.ndarray:
    """Gradients for ``n`` ids as float32 of shape ``(n, dim)``."""
    arr = float32_array(grads, "grads")
    if n == 0 and arr.size == 0:
        return arr.reshape(0, dim or 0)
    if arr.ndim != 2 or arr.shape[0] != n:
        raise InvalidArgument(
            f"grads must have shape (len(ids), dim) = ({n}, {dim if dim else 'dim'}), "
            f"got {arr.shape}"
        )
    if dim is not None and arr.shape[1] != dim:
        raise InvalidArgument(
            f"grads have {arr.shape[1]} columns but the table's dim is {dim}"
        )
    return arr


def out_array(out, n: int, dim: int | None) -> np.ndarray:
    """A caller's buffer for ``n`` rows: a writable C-contiguous float32 ndarray of shape
    ``(n, dim)``, used as it is (never copied)."""
    if not isinstance(out, np.ndarray):
        raise InvalidArgument(f"out must be a numpy ndarray, got {type(out).__name__}")
    if out.dtype != np.float32:
        raise InvalidArgument(f"out must be float32, got dtype {out.dtype}")
    if not out.flags.c_contiguous:
        raise InvalidArgument("out must be C-contiguous")
    if not out.flags.writeable:
        raise InvalidArgument("out must be writable")
    if out.ndim != 2 or out.shape[0] != n:
        raise InvalidArgument(
            f"out must have shape (len(ids), dim) = ({n}, {dim if dim else 'dim'}), "
            f"got {out.shape}"
        )
    if dim is not None and out.shape[1] != dim:
        raise InvalidArgument(f"out has {out.shape[1]} columns but the table's dim is {dim}")
    return out
