"""Shared fixtures: the reference models, a temporary repository, and a live server on loopback."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from inferlab.config import ServerConfig
from inferlab.server.app import Server, serve_in_thread

ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """`shared/` sits beside the checkout (CI clones main next to it)."""
    for candidate in (ROOT.parent / "shared", ROOT / "shared"):
        if (candidate / "models").is_dir():
            return candidate
    raise RuntimeError(f"cannot find shared/models beside {ROOT}")


SHARED_MODELS = shared_dir() / "models"


def make_repository(root: Path, models: dict[str, str]) -> Path:
    """A repository under `root` with NAME/1/model.onnx copied from the shared models (NAME -> file stem)."""
    for name, stem in models.items():
        (root / name / "1").mkdir(parents=True)
        shutil.copyfile(SHARED_MODELS / f"{stem}.onnx", root / name / "1" / "model.onnx")
    if "digits" in models:
        shutil.copyfile(SHARED_MODELS / "digits_labels.txt", root / "digits" / "labels.txt")
    return root


@pytest.fixture(scope="session")
def model_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """digits, mobilenet_v2 and minilm in a fresh repository shared by the session's live server."""
    return make_repository(
        tmp_path_factory.mktemp("repo"),
        {"digits": "digits_mlp", "mobilenet_v2": "mobilenet_v2", "minilm": "minilm_l6_int8"},
    )


@pytest.fixture(scope="session")
def live_server(model_repository: Path) -> Iterator[tuple[Server, str]]:
    """One real server (uvicorn and grpc.aio on free loopback ports) for the whole session."""
    config = ServerConfig(
        model_repository=model_repository, http_port=0, grpc_port=0, max_body_bytes=8 * 1024 * 1024,
        grpc_max_message_bytes=8 * 1024 * 1024,
    )
    with serve_in_thread(config) as running:
        yield running


@pytest.fixture(scope="session")
def base_url(live_server: tuple[Server, str]) -> str:
    return live_server[1]
