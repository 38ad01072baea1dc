"""`inferlab serve`: flags -> ServerConfig -> a running server."""

from __future__ import annotations

import os
import shutil
from importlib.resources import files
from pathlib import Path

import click

from inferlab.config import ServerConfig


def demo_repository() -> Path:
    """A writable copy of the repository shipped in the package (the digits classifier), served when none is named.

    The server writes into its repository (uploads, the workers' shared state) and an installed
    package may be read-only, so the demo is copied once to $XDG_DATA_HOME/inferlab/demo-repository
    (default ~/.local/share/...), through a staging folder and a rename, and served from there.
    """
    data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    target = data_home / "inferlab" / "demo-repository"
    if not target.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_name(f".{target.name}.{os.getpid()}")
        shutil.copytree(str(files("inferlab") / "demo_repository"), staging, ignore=shutil.ignore_patterns(".*"))
        try:
            staging.rename(target)
        except OSError:  # another process seeded it first
            shutil.rmtree(staging, ignore_errors=True)
    return target


@click.command()
@click.option("--model-repository", "repository", type=click.Path(file_okay=False, path_type=Path),
              default=None, envvar="INFERLAB_MODEL_REPOSITORY",
              help="Folder with one sub-folder per model (default: a copy of the built-in demo repository).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--http-port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="HTTP port.")
@click.option("--grpc-port", default=8001, show_default=True, type=click.IntRange(-1, 65535),
              help="gRPC (KServe V2) port; -1 turns gRPC off.")
@click.option("--grpc-max-message-mb", default=64, show_default=True, type=click.IntRange(1),
              help="Largest gRPC message either way; larger ones fail with RESOURCE_EXHAUSTED.")
@click.option("--tls-cert", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="PEM certificate; with --tls-key the server speaks HTTPS only.")
@click.option("--tls-key", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="PEM private key for --tls-cert.")
@click.option("--auth-token", envvar="INFERLAB_AUTH_TOKEN", default=None,
              help="Bearer token required for upload, delete, load and unload (env INFERLAB_AUTH_TOKEN).")
@click.option("--protect-inference", is_flag=True, help="Require the token for inference too.")
@click.option("--max-body-mb", default=64, show_default=True, type=click.IntRange(1), help="Largest request body.")
@click.option("--access-log", is_flag=True, help="Log every inference request as one JSON line on stderr.")
@click.option("--workers", type=click.IntRange(1, 64), default=None, envvar="INFERLAB_WORKERS",
              help="Server processes sharing the port (default: one per core, at most 4).")
def serve(
    repository: Path | None, host: str, http_port: int, grpc_port: int, grpc_max_message_mb: int,
    tls_cert: Path | None, tls_key: Path | None,
    auth_token: str | None, protect_inference: bool, max_body_mb: int, access_log: bool, workers: int | None,
) -> None:
    """Serve a repository's models over HTTP (KServe V2, TF Serving, TFaaS) and gRPC (KServe V2)."""
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    if repository is not None and not repository.is_dir():
        raise click.UsageError(f"--model-repository {repository} is not a directory")
    from inferlab.server.app import run  # imported here so `--help` stays fast
    from inferlab.server.workers import default_workers

    run(ServerConfig(
        model_repository=repository or demo_repository(),
        host=host,
        http_port=http_port,
        grpc_port=None if grpc_port < 0 else grpc_port,
        grpc_max_message_bytes=grpc_max_message_mb * 1024 * 1024,
        tls_cert=tls_cert,
        tls_key=tls_key,
        auth_token=auth_token,
        protect_inference=protect_inference,
        max_body_bytes=max_body_mb * 1024 * 1024,
        access_log=access_log,
    ), workers or default_workers())
