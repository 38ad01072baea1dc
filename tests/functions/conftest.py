"""A server with functions enabled and a token, plus helpers to write and deploy function folders."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from inferlab.config import ServerConfig
from inferlab.functions.package import deploy_body
from inferlab.server.app import Server, serve_in_thread
from tests.conftest import make_repository

TOKEN = "fn-secret"


@pytest.fixture(scope="session")
def fn_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The functions tests' own repository: deployed functions are stored in it (and so kept across restarts)."""
    return make_repository(tmp_path_factory.mktemp("fn-repo"),
                           {"digits": "digits_mlp", "mobilenet_v2": "mobilenet_v2", "minilm": "minilm_l6_int8"})


@pytest.fixture(scope="session")
def fn_server(fn_repository: Path) -> Iterator[tuple[Server, str]]:
    config = ServerConfig(model_repository=fn_repository, http_port=0, auth_token=TOKEN,
                          max_body_bytes=8 * 1024 * 1024)
    with serve_in_thread(config) as running:
        yield running


@pytest.fixture
def fn_client(fn_server: tuple[Server, str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fn_server[1], headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as client:
        yield client


def write_function(folder: Path, code: str, **settings: Any) -> Path:
    """A function folder with handler.py = `code` (dedented) and function.yaml = `settings`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "handler.py").write_text(textwrap.dedent(code))
    (folder / "function.yaml").write_text(yaml.safe_dump({"name": folder.name, **settings}))
    return folder


def deploy(client: httpx.Client, name: str, folder: Path, **overrides: Any) -> httpx.Response:
    reply = client.post("/system/functions", json=deploy_body(name, folder, overrides))
    return reply
