"""Deployed functions on disk: what every worker process of the server runs, kept across restarts.

    REPO/.inferlab/functions/
        state.json   {"generation": G, "functions": {NAME: {"generation": g, "scaled": s, "replicas": r}}}
        lock         flock: exclusive to change the store, shared to read a consistent state and folders
        NAME/g/      files/ (the function folder as deployed) and spec.json (its resolved FunctionSpec)

Every change takes the next global generation G, so a worker that remembers the generations it has
applied can tell, from one read, which functions are new or replaced, which are gone (no longer
listed) and which were scaled. A deploy is copied into a staging folder and renamed into place
before state.json (written atomically) names it, so a reader never sees half a function. Like
server/sync.py, a worker `os.stat`s state.json before each function request and reads it only
when it changed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from inferlab.functions.spec import FunctionSpec
from inferlab.repository.store import write_atomic

STATE_FILE = "state.json"
FILES = "files"
SPEC = "spec.json"
_HIDDEN = "."  # function names start with a letter or digit, so hidden names never clash with them

Stamp = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class Entry:
    """One stored function: the generation of its files, and of its last scale-function call."""

    generation: int
    scaled: int = 0
    replicas: int | None = None


@dataclass(slots=True)
class Fetched:
    """A function's stored files copied out for one worker (`folder`), or why that failed (`error`)."""

    spec: dict[str, Any] | None = None
    folder: Path | None = None
    error: str | None = None


@dataclass(slots=True)
class Snapshot:
    """The store as one worker read it: every entry, the newer functions' copies, and the file's stamp."""

    stamp: Stamp | None
    entries: dict[str, Entry] = field(default_factory=dict)
    fetched: dict[str, Fetched] = field(default_factory=dict)


class FunctionStore:
    """The store folder; its methods block (file locks, copies), so async callers run them in a thread."""

    def __init__(self, root: Path) -> None:
        self.root = root  # created by the first deploy: a server that never has functions leaves no trace
        self._state = root / STATE_FILE
        self._lock = root / "lock"

    def stamp(self) -> Stamp | None:
        """Changes whenever state.json is rewritten (about a microsecond; no lock)."""
        try:
            st = os.stat(self._state)
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def put(self, name: str, folder: Path, spec: FunctionSpec) -> int:
        """Store `folder` and `spec` as function `name` (replacing any older one); returns the new generation."""
        with self._locked(fcntl.LOCK_EX):
            generation, entries = self._read()
            for stale in self.root.glob(f"{_HIDDEN}*-*"):  # left by a crash: nobody else writes under this lock
                shutil.rmtree(stale, ignore_errors=True)
            generation += 1
            staging = self.root / f"{_HIDDEN}staging-{uuid.uuid4().hex}"
            shutil.copytree(folder, staging / FILES)
            (staging / SPEC).write_bytes(orjson.dumps(spec.to_dict()))
            (self.root / name).mkdir(exist_ok=True)
            os.rename(staging, self.root / name / str(generation))
            entries[name] = Entry(generation)
            self._write(generation, entries)
            for old in (self.root / name).iterdir():
                if old.name != str(generation):
                    shutil.rmtree(old, ignore_errors=True)
        return generation

    def remove(self, name: str) -> bool:
        """Forget function `name` and delete its files; False when it was not stored."""
        with self._locked(fcntl.LOCK_EX):
            generation, entries = self._read()
            if entries.pop(name, None) is None:
                return False
            self._write(generation + 1, entries)
            trash = self.root / f"{_HIDDEN}trash-{uuid.uuid4().hex}"
            with contextlib.suppress(FileNotFoundError):
                os.rename(self.root / name, trash)
                shutil.rmtree(trash, ignore_errors=True)
        return True

    def scale(self, name: str, replicas: int) -> int:
        """Record a scale-function call for the other workers; returns its generation (0: `name` is not stored)."""
        with self._locked(fcntl.LOCK_EX):
            generation, entries = self._read()
            entry = entries.get(name)
            if entry is None:
                return 0
            generation += 1
            entries[name] = Entry(entry.generation, generation, replicas)
            self._write(generation, entries)
        return generation

    def read(self, known: dict[str, int], into: Path) -> Snapshot:
        """The current entries; every function whose generation is not `known[name]` is copied under `into`."""
        if self.stamp() is None:
            return Snapshot(None)  # nothing was ever deployed
        with self._locked(fcntl.LOCK_SH):
            snapshot = Snapshot(self.stamp())
            _, snapshot.entries = self._read()
            for name, entry in snapshot.entries.items():
                if known.get(name) != entry.generation:
                    snapshot.fetched[name] = self._fetch(name, entry.generation, into)
        return snapshot

    def _fetch(self, name: str, generation: int, into: Path) -> Fetched:
        source = self.root / name / str(generation)
        target = into / f"{_HIDDEN}stored-{name}-{uuid.uuid4().hex}"
        try:
            spec = orjson.loads((source / SPEC).read_bytes())
            shutil.copytree(source / FILES, target)
        except (OSError, orjson.JSONDecodeError) as exc:
            shutil.rmtree(target, ignore_errors=True)
            return Fetched(error=f"stored copy in {source} is unreadable: {type(exc).__name__}: {exc}")
        return Fetched(spec, target)

    @contextlib.contextmanager
    def _locked(self, how: int) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self._lock, "a+b") as lock:
            fcntl.flock(lock, how)
            yield

    def _read(self) -> tuple[int, dict[str, Entry]]:
        try:
            raw = orjson.loads(self._state.read_bytes())
        except FileNotFoundError:
            return 0, {}
        return int(raw["generation"]), {name: Entry(**entry) for name, entry in raw["functions"].items()}

    def _write(self, generation: int, entries: dict[str, Entry]) -> None:
        functions = {name: {"generation": e.generation, "scaled": e.scaled, "replicas": e.replicas}
                     for name, e in entries.items()}
        write_atomic(self._state, orjson.dumps({"generation": generation, "functions": functions}))
