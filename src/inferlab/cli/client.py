"""A small HTTP client of a running inferlab server, shared by the CLI commands."""

from __future__ import annotations

from typing import Any

import click
import httpx
import orjson

DEFAULT_URL = "http://127.0.0.1:8000"


class ServerError(Exception):
    """The server answered with an error status; the message is its `error` text."""


def server_options(f: Any) -> Any:
    """The `--url`, `--token` and `--insecure` options every client command takes."""
    f = click.option("--url", default=DEFAULT_URL, envvar="INFERLAB_URL", show_default=True,
                     help="Base URL of the server (env INFERLAB_URL).")(f)
    f = click.option("--token", envvar="INFERLAB_AUTH_TOKEN", default=None,
                     help="Bearer token for protected operations (env INFERLAB_AUTH_TOKEN).")(f)
    return click.option("--insecure", is_flag=True, help="Do not verify the server's TLS certificate.")(f)


def make_client(url: str, token: str | None, insecure: bool, timeout_s: float = 60.0) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=url, headers=headers, verify=not insecure, timeout=timeout_s)


def call(client: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
    """Send one request; return the decoded JSON body, or raise ServerError with the server's message."""
    response = client.request(method, path, **kwargs)
    try:
        body = orjson.loads(response.content) if response.content else None
    except orjson.JSONDecodeError:
        body = response.text
    if response.is_error:
        message = body.get("error") if isinstance(body, dict) else body
        raise ServerError(f"{response.status_code} {response.reason_phrase}: {message}")
    return body
