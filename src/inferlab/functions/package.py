"""A function folder as a JSON-able deploy body (files base64-encoded) and back onto disk, never outside it.

The CLI packs the folder on the client; the server unpacks it into a fresh directory and swaps it in
by rename, so a half-written function is never visible to a starting instance.
"""

from __future__ import annotations

import base64
import binascii
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from inferlab.errors import InvalidInput

_SKIP_DIRS = {"__pycache__", ".git", ".venv", "node_modules"}
MAX_FILES = 200


def pack_folder(folder: Path) -> dict[str, str]:
    """{relative posix path: base64 content} for every file under `folder` (hidden and cache dirs skipped)."""
    files: dict[str, str] = {}
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("."))
        for name in sorted(names):
            if name.startswith(".") or name.endswith(".pyc"):
                continue
            path = Path(root) / name
            files[path.relative_to(folder).as_posix()] = base64.b64encode(path.read_bytes()).decode()
    if len(files) > MAX_FILES:
        raise InvalidInput(f"function folder {folder} has {len(files)} files; at most {MAX_FILES} are deployed")
    return files


def deploy_body(name: str, folder: Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The POST /system/functions body (OpenFaaS names the function `service`)."""
    return {"service": name, "files": pack_folder(folder), "config": overrides or {}}


def unpack_files(files: Any, parent: Path) -> Path:
    """Write `files` into a new directory under `parent` and return it; bad paths or base64 -> InvalidInput."""
    if not isinstance(files, dict) or not files:
        raise InvalidInput("'files' must be a non-empty mapping of relative path -> base64 content")
    if len(files) > MAX_FILES:
        raise InvalidInput(f"a function may have at most {MAX_FILES} files, got {len(files)}")
    target = Path(tempfile.mkdtemp(prefix=".incoming-", dir=parent))
    try:
        for rel, content in files.items():
            path = target / _safe_relative(rel)
            try:
                data = base64.b64decode(str(content), validate=True)
            except binascii.Error:
                raise InvalidInput(f"file {rel!r}: content is not valid base64") from None
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return target


def _safe_relative(rel: Any) -> PurePosixPath:
    path = PurePosixPath(str(rel))
    if not str(rel) or path.is_absolute() or any(part in ("", ".", "..") for part in path.parts) or "\\" in str(rel):
        raise InvalidInput(f"file path {rel!r} must be relative, without '..' or backslashes")
    return path
