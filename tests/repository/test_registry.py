"""The registry loads all of a model or none of it: what it built before a failure is closed, not leaked."""

from __future__ import annotations

from pathlib import Path

import pytest

from inferlab.config import ModelConfig
from inferlab.errors import RepositoryError
from inferlab.repository.registry import ModelRegistry
from inferlab.repository.store import ModelStore
from inferlab.runtimes.base import Runtime
from inferlab.runtimes.onnx import OnnxRuntime
from tests.conftest import SHARED_MODELS, make_repository


class _Loader:
    """Loads real onnxruntime sessions, fails on call number `fail_on`, and remembers which were closed."""

    def __init__(self, fail_on: int) -> None:
        self.fail_on = fail_on
        self.calls = 0
        self.closed: list[int] = []

    def __call__(self, path: Path, config: ModelConfig) -> Runtime:
        self.calls += 1
        if self.calls == self.fail_on:
            raise RepositoryError(f"copy {self.calls} failed to load")
        runtime = OnnxRuntime.load(path, config)
        number, close = self.calls, runtime.close

        def closing() -> None:
            self.closed.append(number)
            close()

        runtime.close = closing  # type: ignore[method-assign]
        return runtime


@pytest.mark.parametrize("versions", [1, 2])
def test_a_failed_load_closes_what_it_had_built(tmp_path: Path, versions: int) -> None:
    repo = make_repository(tmp_path, {"digits": "digits_mlp"})
    (repo / "digits" / "config.yaml").write_text("instances: 2\nversion_policy: all\n")
    if versions == 2:
        (repo / "digits" / "2").mkdir()
        (repo / "digits" / "2" / "model.onnx").write_bytes((SHARED_MODELS / "digits_mlp.onnx").read_bytes())
    loader = _Loader(fail_on=2 * versions)  # the last instance of the last version fails
    registry = ModelRegistry(ModelStore(repo), {"onnx": loader})
    with pytest.raises(RepositoryError, match="failed to load"):
        registry.load("digits")
    assert sorted(loader.closed) == list(range(1, 2 * versions))  # every copy that was built
    assert registry.index()[0]["state"] == "UNAVAILABLE"
