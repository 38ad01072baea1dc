"""The exception tree every layer raises; adapters alone map these to HTTP status or gRPC codes.

    InferlabError
    ├── InvalidInput        the request is malformed or does not fit the model's signature
    │   └── PayloadTooLarge the body is over the configured limit
    ├── ModelNotFound       no such model, or no such version of it
    ├── ModelNotReady       the model exists but is not loaded
    ├── RepositoryError     a model file or config cannot be stored or loaded
    ├── Unauthorized        a protected operation without the right bearer token
    ├── Overloaded          the model's queue is full; try again later
    ├── DeadlineExceeded    the request's own timeout ran out before it could run
    └── RuntimeFailure      the runtime raised while running a valid request
"""

from __future__ import annotations


class InferlabError(Exception):
    """Base of every error inferlab raises on purpose; the message is shown to the client."""


class InvalidInput(InferlabError):
    """The request is malformed or does not match the model's inputs."""


class PayloadTooLarge(InvalidInput):
    """The request body is larger than the server accepts."""


class ModelNotFound(InferlabError):
    """The named model or version is not in the repository."""


class ModelNotReady(InferlabError):
    """The model is in the repository but is not loaded."""


class RepositoryError(InferlabError):
    """A model cannot be stored, loaded or removed; the repository is left as it was."""


class Unauthorized(InferlabError):
    """A protected operation was called without the server's bearer token."""


class Overloaded(InferlabError):
    """The model's queue is full; the request was not accepted."""

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class DeadlineExceeded(InferlabError):
    """The request's timeout expired while it waited; it was never run."""


class RuntimeFailure(InferlabError):
    """The runtime failed on a request that passed validation."""


def error_class(name: str) -> type[InferlabError] | None:
    """The InferlabError subclass called `name`, or None: how an error crosses a process boundary by name."""
    found = globals().get(name)
    return found if isinstance(found, type) and issubclass(found, InferlabError) else None
