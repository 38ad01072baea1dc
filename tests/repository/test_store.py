"""The on-disk store never leaves a half-written model behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from inferlab.config import ModelConfig
from inferlab.errors import InvalidInput, RepositoryError
from inferlab.repository.names import check_model_name, parse_version
from inferlab.repository.store import ModelStore


def _fail(model_dir: Path, version_dir: Path) -> None:
    assert (version_dir / "model.onnx").is_file()  # the staged copy is complete when validated
    raise RepositoryError("rejected")


def test_failed_validation_leaves_nothing(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    with pytest.raises(RepositoryError):
        store.put("m", {"model.onnx": b"x"}, None, _fail)
    assert list(tmp_path.iterdir()) == []


def test_failed_new_version_keeps_old_config(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    store.put("m", {"model.onnx": b"x", "config.yaml": b"max_batch_size: 4\n"}, None, lambda m, v: None)
    with pytest.raises(RepositoryError):
        store.put("m", {"model.onnx": b"y", "config.yaml": b"max_batch_size: 9\n"}, None, _fail)
    assert store.versions("m") == [1]
    assert (tmp_path / "m" / "config.yaml").read_text() == "max_batch_size: 4\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_stale_staging_folders_are_removed_on_open(tmp_path: Path) -> None:
    (tmp_path / ".tmp-crashed" / "m" / "1").mkdir(parents=True)
    ModelStore(tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["../x", "a/b", "..", ".hidden", "", "a" * 129, "x\x00y", "a..b"])
def test_unsafe_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput, match="invalid model name"):
        check_model_name(name)


def test_versions_must_be_positive_integers() -> None:
    assert parse_version("3") == 3 and parse_version(None) is None
    for bad in ("0", "-1", "1.5", "v1"):
        with pytest.raises(InvalidInput):
            parse_version(bad)


def test_config_errors_name_the_key() -> None:
    with pytest.raises(RepositoryError, match="unknown key"):
        ModelConfig.from_dict({"max_batchsize": 4})
    with pytest.raises(RepositoryError, match="instances"):
        ModelConfig.from_dict({"instances": 0})
    config = ModelConfig.from_dict({"max_batch_size": 8, "batching": {"max_queue_delay_us": 200}})
    assert config.batching.enabled and ModelConfig.from_dict(config.to_dict()) == config
