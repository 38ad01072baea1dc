"""FunctionStore on disk: generations, replacement, removal, scale records, and what a worker copies out."""

from __future__ import annotations

from pathlib import Path

from inferlab.functions.spec import FunctionSpec
from inferlab.functions.store import Entry, FunctionStore


def folder(tmp_path: Path, text: str) -> Path:
    path = tmp_path / f"src-{text}"
    path.mkdir()
    (path / "handler.py").write_text(text)
    return path


def test_put_replace_scale_remove(tmp_path: Path) -> None:
    store = FunctionStore(tmp_path / "functions")
    assert store.stamp() is None and store.read({}, tmp_path / "worker").entries == {}
    assert not store.root.exists()  # nothing deployed, nothing written
    (store.root / ".staging-left-by-a-crash").mkdir(parents=True)
    first = store.put("echo", folder(tmp_path, "one"), FunctionSpec("echo", max_instances=3))
    assert not (store.root / ".staging-left-by-a-crash").exists()
    stamp = store.stamp()
    second = store.put("echo", folder(tmp_path, "two"), FunctionSpec("echo"))
    assert second > first and store.stamp() != stamp
    assert [p.name for p in (store.root / "echo").iterdir()] == [str(second)]  # the older copy is gone

    snapshot = store.read({}, tmp_path / "worker")
    assert snapshot.entries == {"echo": Entry(second)} and snapshot.stamp == store.stamp()
    fetched = snapshot.fetched["echo"]
    assert fetched.folder is not None and (fetched.folder / "handler.py").read_text() == "two"
    assert fetched.spec is not None and FunctionSpec.from_dict(fetched.spec) == FunctionSpec("echo")
    assert store.read({"echo": second}, tmp_path / "worker").fetched == {}  # known: nothing copied

    scaled = store.scale("echo", 4)
    assert store.read({"echo": second}, tmp_path / "worker").entries == {"echo": Entry(second, scaled, 4)}
    assert store.scale("nope", 1) == 0

    assert store.remove("echo") and not (store.root / "echo").exists()
    assert store.read({}, tmp_path / "worker").entries == {}
    assert not store.remove("echo")


def test_an_unreadable_copy_is_reported_not_raised(tmp_path: Path) -> None:
    store = FunctionStore(tmp_path / "functions")
    generation = store.put("echo", folder(tmp_path, "one"), FunctionSpec("echo"))
    (store.root / "echo" / str(generation) / "spec.json").unlink()
    fetched = store.read({}, tmp_path / "worker").fetched["echo"]
    assert fetched.folder is None and fetched.error is not None and "unreadable" in fetched.error
