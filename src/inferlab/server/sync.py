"""Keep the worker processes of one server agreeing on which models are loaded.

Each worker owns its own registry, so a load, unload, upload or delete handled by one worker must
reach the others before any request that depends on it. The worker that changes a model writes the
model's new state and a per-model generation number to `REPO/.inferlab/state.json` (atomically,
under an exclusive file lock, before it answers); every worker `os.stat`s that file before each
request that looks a model up (about a microsecond) and, when the file changed, applies the states
whose generation it has not seen yet: reload from disk, unload, or forget.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson

from inferlab.errors import InferlabError
from inferlab.repository.registry import ModelRegistry
from inferlab.repository.store import write_atomic

STATE_DIR = ".inferlab"
LOADED, UNLOADED, DELETED = "loaded", "unloaded", "deleted"


class RepositorySync:
    """The state file plus this process's view of it."""

    def __init__(self, registry: ModelRegistry) -> None:
        self._registry = registry
        folder = registry.store.root / STATE_DIR
        folder.mkdir(exist_ok=True)
        self._path = folder / "state.json"
        self._lock_path = folder / "lock"
        self._seen: dict[str, int] = {}
        self._stamp: tuple[int, int, int] | None = None
        self._mutex = threading.Lock()

    @staticmethod
    def reset(root: Path) -> None:
        """Start from an empty state (the supervisor calls this before its workers load the repository)."""
        folder = root / STATE_DIR
        folder.mkdir(exist_ok=True)
        write_atomic(folder / "state.json", b"{}")

    def start(self) -> None:
        """Load the repository as the other workers left it (instead of `registry.load_all`).

        A worker that replaces a dead one starts while the others serve: models unloaded through the
        API stay unloaded (and are never loaded here), and a change made while this worker was loading
        is applied once more at the end.
        """
        with self._mutex:
            before = self._read()
            for name in self._registry.store.models():
                self._apply(name, before.get(name, (0, LOADED))[1])
            for name, (generation, state) in self._read().items():
                self._seen[name] = generation
                if generation != before.get(name, (0, ""))[0]:
                    self._apply(name, state)

    def check(self) -> None:
        """Catch up with changes other workers made; cheap when nothing changed."""
        try:
            st = os.stat(self._path)
        except FileNotFoundError:
            return
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp == self._stamp or not self._mutex.acquire(blocking=False):
            return  # unchanged, or this process is changing a model right now and catches up then
        try:
            self._catch_up()
        finally:
            self._mutex.release()

    @contextlib.contextmanager
    def change(self, name: str) -> Iterator[None]:
        """Run a repository change to `name`, then publish the model's resulting state to the other workers."""
        with self._mutex, open(self._lock_path, "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._catch_up()
            try:
                yield
            finally:
                states = self._read()
                generation = max(states.get(name, (0, ""))[0], self._seen.get(name, 0)) + 1
                states[name] = (generation, self._state_of(name))
                self._seen[name] = generation
                write_atomic(self._path, orjson.dumps({k: list(v) for k, v in states.items()}))
                self._stamp = None

    def _catch_up(self) -> None:
        st = os.stat(self._path)
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        for name, (generation, state) in self._read().items():
            if self._seen.get(name, 0) < generation:
                self._seen[name] = generation
                self._apply(name, state)
        self._stamp = stamp

    def _apply(self, name: str, state: str) -> None:
        registry = self._registry
        with contextlib.suppress(InferlabError):  # a failed load is recorded as UNAVAILABLE by the registry
            if state == LOADED:
                registry.load(name)
            elif state == UNLOADED:
                registry.unload(name)
            else:
                registry.forget(name)

    def _state_of(self, name: str) -> str:
        if name not in self._registry.store.models():
            return DELETED
        return LOADED if self._registry.versions(name) else UNLOADED

    def _read(self) -> dict[str, tuple[int, str]]:
        try:
            raw = orjson.loads(self._path.read_bytes())
        except (FileNotFoundError, orjson.JSONDecodeError):
            return {}
        return {str(k): (int(v[0]), str(v[1])) for k, v in raw.items()}

