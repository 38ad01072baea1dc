"""`inferlab deploy -f stack.yml` and `inferlab fn deploy|list|invoke|scale|logs|rm`: functions on a running server."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import orjson
import yaml
from click.core import ParameterSource
from rich.console import Console
from rich.table import Table

from inferlab.cli.client import ServerError, call, make_client, server_options
from inferlab.functions.package import deploy_body
from inferlab.functions.spec import SPEC_FILE, load_stack

_DEPLOY_TIMEOUT_S = 120.0


@click.command()
@click.option("-f", "--yaml", "stack_file", required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="OpenFaaS-style stack.yml listing the functions.")
@click.option("--filter", "only", multiple=True, help="Deploy only these functions (repeatable).")
@server_options
@click.pass_context
def deploy(ctx: click.Context, stack_file: Path, only: tuple[str, ...], url: str, token: str | None,
           insecure: bool) -> None:
    """Deploy every function of a stack.yml (its provider.gateway is the server unless --url is given)."""
    stack = load_stack(stack_file)
    if stack.gateway and ctx.get_parameter_source("url") is ParameterSource.DEFAULT:
        url = stack.gateway
    unknown = set(only) - {f.name for f in stack.functions}
    if unknown:
        raise click.UsageError(f"--filter names {sorted(unknown)}, which {stack_file.name} does not define")
    with make_client(url, token, insecure, timeout_s=_DEPLOY_TIMEOUT_S) as client:
        for function in stack.functions:
            if only and function.name not in only:
                continue
            call(client, "POST", "/system/functions", json=deploy_body(function.name, function.folder,
                                                                          function.overrides))
            click.echo(f"deployed {function.name}: {url.rstrip('/')}/function/{function.name}")


@click.group()
def fn() -> None:
    """Deploy, call, scale and inspect functions on a running server."""


@fn.command("deploy")
@click.argument("folder", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--name", default=None, help="Function name (default: function.yaml's name, else the folder's).")
@server_options
def deploy_folder(folder: Path, name: str | None, url: str, token: str | None, insecure: bool) -> None:
    """Deploy one function FOLDER (handler.py + function.yaml + its files)."""
    name = name or _name_in_spec(folder) or folder.resolve().name
    with make_client(url, token, insecure, timeout_s=_DEPLOY_TIMEOUT_S) as client:
        call(client, "POST", "/system/functions", json=deploy_body(name, folder))
    click.echo(f"deployed {name}: {url.rstrip('/')}/function/{name}")


@fn.command("list")
@server_options
def list_functions(url: str, token: str | None, insecure: bool) -> None:
    """List deployed functions with their instances, calls and cold starts."""
    with make_client(url, token, insecure) as client:
        rows = call(client, "GET", "/system/functions")
    workers = {(row["worker"]["pid"], row["worker"]["workers"]) for row in rows if "worker" in row}
    caption = None
    if workers and max(n for _, n in workers) > 1:  # counts are the answering worker's (see examples/README.md)
        pid, n = workers.pop()
        caption = f"instances, calls and cold starts of server worker {pid}, one of {n}"
    table = Table("function", "instances", "ready", "invocations", "errors", "cold starts", "last cold start ms",
                  "error", caption=caption)
    for row in rows:
        metrics = row.get("metrics")  # absent for a stored function that could not be deployed
        last = metrics["cold_start_ms"]["last"] if metrics else None
        table.add_row(row["name"], str(row["replicas"]), str(row["availableReplicas"]),
                      str(row.get("invocationCount", "")), str(metrics["errors"] if metrics else ""),
                      str(metrics["cold_starts"] if metrics else ""), "" if last is None else f"{last:.1f}",
                      row.get("error") or "")
    Console().print(table)


@fn.command("invoke")
@click.argument("name")
@click.option("--content-type", default="application/octet-stream", show_default=True)
@click.option("--async", "is_async", is_flag=True, help="Queue the call; print its call id.")
@click.option("--callback-url", default=None, help="With --async: where the server POSTs the result.")
@server_options
def invoke(name: str, content_type: str, is_async: bool, callback_url: str | None, url: str, token: str | None,
           insecure: bool) -> None:
    """Call NAME with standard input as the body; the reply body goes to standard output."""
    headers = {"Content-Type": content_type}
    if callback_url:
        headers["X-Callback-Url"] = callback_url
    path = f"/async-function/{name}" if is_async else f"/function/{name}"
    with make_client(url, token, insecure) as client:
        response = client.post(path, content=sys.stdin.buffer.read(), headers=headers)
    if response.is_error:
        _raise_server_error(response.status_code, response.reason_phrase, response.content)
    if is_async:
        click.echo(response.headers["x-call-id"])
        return
    sys.stdout.buffer.write(response.content)
    click.echo(f"server-timing: {response.headers.get('server-timing', '')}", err=True)


@fn.command("scale")
@click.argument("name")
@click.argument("replicas", type=click.IntRange(0))
@server_options
def scale(name: str, replicas: int, url: str, token: str | None, insecure: bool) -> None:
    """Set NAME to REPLICAS instances now (the autoscaler resumes after the idle timeout)."""
    with make_client(url, token, insecure) as client:
        call(client, "POST", f"/system/scale-function/{name}", json={"serviceName": name, "replicas": replicas})
    click.echo(f"scaled {name} to {replicas}")


@fn.command("logs")
@click.argument("name")
@click.option("--tail", type=click.IntRange(1), default=None, help="Only the last N lines.")
@server_options
def logs(name: str, tail: int | None, url: str, token: str | None, insecure: bool) -> None:
    """Print what NAME's instances wrote to stdout/stderr, and their exits."""
    params: dict[str, Any] = {"name": name}
    if tail:
        params["tail"] = tail
    with make_client(url, token, insecure) as client:
        response = client.get("/system/logs", params=params)
    if response.is_error:
        _raise_server_error(response.status_code, response.reason_phrase, response.content)
    for line in response.content.splitlines():
        entry = orjson.loads(line)
        click.echo(f"{entry['timestamp']:.3f} {entry['instance']}: {entry['text']}")


@fn.command("rm")
@click.argument("name")
@server_options
def remove(name: str, url: str, token: str | None, insecure: bool) -> None:
    """Remove NAME: its instances stop and its files are deleted."""
    with make_client(url, token, insecure) as client:
        call(client, "DELETE", "/system/functions", json={"functionName": name})
    click.echo(f"removed {name}")


def _raise_server_error(status: int, reason: str, content: bytes) -> None:
    """Raise the CLI's ServerError for a reply whose body is not read through `call`."""
    try:
        message = orjson.loads(content).get("error", content.decode(errors="replace"))
    except (orjson.JSONDecodeError, AttributeError):
        message = content.decode(errors="replace")
    raise ServerError(f"{status} {reason}: {message}")


def _name_in_spec(folder: Path) -> str | None:
    path = folder / SPEC_FILE
    if not path.is_file():
        return None
    raw = yaml.safe_load(path.read_text())
    return str(raw["name"]) if isinstance(raw, dict) and raw.get("name") else None
