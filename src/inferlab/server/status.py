"""The one table from error class to HTTP status, and the `{"error": ...}` body every adapter sends."""

from __future__ import annotations

from inferlab.errors import (
    DeadlineExceeded,
    InferlabError,
    InvalidInput,
    ModelNotFound,
    ModelNotReady,
    Overloaded,
    PayloadTooLarge,
    RepositoryError,
    RuntimeFailure,
    Unauthorized,
)

HTTP_STATUS: dict[type[InferlabError], int] = {
    PayloadTooLarge: 413,
    InvalidInput: 400,
    ModelNotFound: 404,
    ModelNotReady: 503,
    RepositoryError: 400,
    Unauthorized: 401,
    Overloaded: 503,
    DeadlineExceeded: 504,
    RuntimeFailure: 500,
}


def http_status(exc: InferlabError) -> int:
    """The status for `exc`, found along its class hierarchy (most specific first)."""
    for cls in type(exc).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500


def http_headers(exc: InferlabError) -> dict[str, str]:
    if isinstance(exc, Overloaded):
        return {"Retry-After": str(max(1, round(exc.retry_after_s)))}
    if isinstance(exc, Unauthorized):
        return {"WWW-Authenticate": "Bearer"}
    return {}
