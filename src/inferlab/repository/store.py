"""The on-disk repository `REPO/NAME/VERSION/model.onnx`: list, read, write atomically, delete.

Every write goes to a hidden temporary folder inside the repository (same file system), is validated
by the caller, and only then renamed into place, so a crash or a bad file never leaves a half-written
model behind. Hidden folders left by a crash are removed when the store opens.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

from inferlab.errors import ModelNotFound, RepositoryError
from inferlab.repository.names import check_model_name

MODEL_FILE = "model.onnx"
CONFIG_FILE = "config.yaml"
LABELS_FILE = "labels.txt"
_TMP_PREFIX = ".tmp-"


class ModelStore:
    """A folder holding one sub-folder per model and one integer sub-folder per version."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        if not self.root.is_dir():
            raise RepositoryError(f"model repository {root} is not a directory")
        for stale in self.root.glob(f"{_TMP_PREFIX}*"):
            shutil.rmtree(stale, ignore_errors=True)

    def models(self) -> list[str]:
        """Names of the models present, sorted."""
        return sorted(
            p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".") and self.versions(p.name)
        )

    def versions(self, name: str) -> list[int]:
        """Versions of `name` that hold a model file, ascending."""
        folder = self.root / check_model_name(name)
        if not folder.is_dir():
            return []
        return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit() and (p / MODEL_FILE).is_file())

    def model_dir(self, name: str) -> Path:
        folder = self.root / check_model_name(name)
        if not folder.is_dir():
            raise ModelNotFound(f"model '{name}' is not in the repository")
        return folder

    def put(
        self,
        name: str,
        files: Mapping[str, bytes],
        version: int | None,
        validate: Callable[[Path, Path], None],
    ) -> int:
        """Store a new version of `name` from `files` (model.onnx, and optionally config.yaml, labels.txt).

        `validate(model_dir, version_dir)` is called on the staged copy and must raise if the model
        cannot be served; nothing in the repository changes unless it returns.
        """
        check_model_name(name)
        if MODEL_FILE not in files:
            raise RepositoryError(f"upload of '{name}' has no model file")
        existing = self.versions(name)
        if version is None:
            version = (existing[-1] if existing else 0) + 1
        if version in existing:
            raise RepositoryError(f"model '{name}' already has version {version}; delete it first")
        staging = self.root / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
        model_dir = staging / name
        version_dir = model_dir / str(version)
        try:
            version_dir.mkdir(parents=True)
            _write(version_dir / MODEL_FILE, files[MODEL_FILE])
            target = self.root / name
            for extra in (CONFIG_FILE, LABELS_FILE):
                if extra in files:
                    _write(model_dir / extra, files[extra])
                elif (target / extra).is_file():
                    shutil.copyfile(target / extra, model_dir / extra)
            validate(model_dir, version_dir)
            if not target.is_dir():
                os.rename(model_dir, target)
            else:
                for extra in (CONFIG_FILE, LABELS_FILE):
                    if extra in files:
                        os.replace(model_dir / extra, target / extra)
                os.rename(version_dir, target / str(version))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return version

    def delete(self, name: str, version: int | None = None) -> None:
        """Remove a model (or one version) by renaming it out of sight first, then deleting."""
        folder = self.model_dir(name)
        victim = folder if version is None else folder / str(version)
        if not victim.is_dir():
            raise ModelNotFound(f"model '{name}' has no version {version}")
        trash = self.root / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
        os.rename(victim, trash)
        shutil.rmtree(trash, ignore_errors=True)


def _write(path: Path, data: bytes, durable: bool = True) -> None:
    with open(path, "wb") as f:
        f.write(data)
        if durable:
            f.flush()
            os.fsync(f.fileno())


def write_atomic(path: Path, data: bytes, durable: bool = True) -> None:
    """Replace `path` with `data` so a reader sees the old or the new file, never a partial one.

    `durable=False` skips the fsync: for state other processes must see but a crash may lose.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    _write(tmp, data, durable)
    os.replace(tmp, path)
