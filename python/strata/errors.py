"""Exceptions raised by strata calls.

Every failure is a :class:`StrataError` whose ``code`` is the gRPC status code name
(``"NOT_FOUND"``, ``"INVALID_ARGUMENT"``, ...). The subclasses name the failures a trainer
handles differently; the native extension raises them, and so do the argument checks made
before a request is sent.
"""

from __future__ import annotations

__all__ = [
    "StrataError",
    "NotFound",
    "InvalidArgument",
    "ResourceExhausted",
    "Unavailable",
    "AmbiguousPush",
]


class StrataError(Exception):
    """A strata call failed; ``code`` is the gRPC status code name."""

    default_code = "UNKNOWN"

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code if code is not None else self.default_code

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):
        return (type(self), (self.message, self.code))


class NotFound(StrataError):
    """The table or dense tensor does not exist (``NOT_FOUND``)."""

    default_code = "NOT_FOUND"


class InvalidArgument(StrataError, ValueError):
    """An argument is wrong: dtype, shape, dimension, name, hyperparameter
    (``INVALID_ARGUMENT``). Nothing was applied."""

    default_code = "INVALID_ARGUMENT"


class ResourceExhausted(StrataError):
    """A batch or message is over a limit, or a memory budget is spent
    (``RESOURCE_EXHAUSTED``)."""

    default_code = "RESOURCE_EXHAUSTED"


class Unavailable(StrataError):
    """A coordinator or node cannot be reached, or a shard has no server (``UNAVAILABLE``).
    Nothing was applied; the call may be made again."""

    default_code = "UNAVAILABLE"


class AmbiguousPush(StrataError):
    """A push was sent and then its connection failed: it may or may not have been applied,
    so it was not retried."""

    default_code = "UNKNOWN"
