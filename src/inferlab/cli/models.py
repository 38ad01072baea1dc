"""`inferlab models list|upload|rm`: manage the repository of a running server."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from inferlab.cli.client import call, make_client, server_options


@click.group()
def models() -> None:
    """List, upload and remove models on a running server."""


@models.command("list")
@server_options
def list_models(url: str, token: str | None, insecure: bool) -> None:
    """List every model version in the repository and its state."""
    with make_client(url, token, insecure) as client:
        rows = call(client, "POST", "/v2/repository/index", json={})
    table = Table("model", "version", "state", "reason")
    for row in rows:
        table.add_row(row["name"], row.get("version", ""), row["state"], row.get("reason", ""))
    Console().print(table)


@models.command()
@click.argument("name")
@click.argument("model_file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--labels", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="labels.txt, one label per line.")
@click.option("--config", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="config.yaml for the model.")
@click.option("--version", "version", type=click.IntRange(1), default=None, help="Version number (default: next).")
@server_options
def upload(
    name: str, model_file: Path, labels: Path | None, config: Path | None, version: int | None,
    url: str, token: str | None, insecure: bool,
) -> None:
    """Upload MODEL_FILE (an .onnx file) as a new version of NAME; the server checks it by loading it."""
    files = {"model": (model_file.name, model_file.read_bytes())}
    if labels:
        files["labels"] = (labels.name, labels.read_bytes())
    if config:
        files["config"] = (config.name, config.read_bytes())
    data = {"version": str(version)} if version else {}
    with make_client(url, token, insecure, timeout_s=600) as client:
        reply = call(client, "POST", f"/v2/repository/models/{name}/upload", files=files, data=data)
    click.echo(f"uploaded {reply['name']} version {reply['version']}")


@models.command("rm")
@click.argument("name")
@click.option("--version", "version", type=click.IntRange(1), default=None, help="Remove only this version.")
@server_options
def remove(name: str, version: int | None, url: str, token: str | None, insecure: bool) -> None:
    """Remove NAME (or one version of it) from the repository."""
    path = f"/v2/repository/models/{name}" + (f"/versions/{version}" if version else "")
    with make_client(url, token, insecure) as client:
        call(client, "DELETE", path)
    click.echo(f"removed {name}" + (f" version {version}" if version else ""))
