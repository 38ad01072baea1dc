"""The tables from error class to HTTP status and to gRPC status code, one per transport, side by side."""

from __future__ import annotations

import grpc

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


GRPC_CODE: dict[type[InferlabError], grpc.StatusCode] = {
    PayloadTooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
    InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    ModelNotFound: grpc.StatusCode.NOT_FOUND,
    ModelNotReady: grpc.StatusCode.UNAVAILABLE,
    RepositoryError: grpc.StatusCode.INVALID_ARGUMENT,
    Unauthorized: grpc.StatusCode.UNAUTHENTICATED,
    Overloaded: grpc.StatusCode.UNAVAILABLE,
    DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    RuntimeFailure: grpc.StatusCode.INTERNAL,
}


def grpc_code(exc: InferlabError) -> grpc.StatusCode:
    """The gRPC status for `exc`, found along its class hierarchy like `http_status`."""
    for cls in type(exc).__mro__:
        if cls in GRPC_CODE:
            return GRPC_CODE[cls]
    return grpc.StatusCode.INTERNAL


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
