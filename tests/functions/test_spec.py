"""function.yaml, stack.yml and deploy packages: parsed once, with messages that name what is wrong."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from inferlab.errors import InvalidInput
from inferlab.functions.package import deploy_body, pack_folder, unpack_files
from inferlab.functions.spec import FunctionSpec, load_stack, parse_duration


def test_defaults_and_overrides(tmp_path: Path) -> None:
    (tmp_path / "function.yaml").write_text("name: blur\nmodels: mobilenet_v2\nidle_timeout_s: 2m\n")
    spec = FunctionSpec.from_folder(tmp_path, {"max_instances": 8})
    assert spec.models == ("mobilenet_v2",) and spec.idle_timeout_s == 120.0 and spec.max_instances == 8
    assert spec.handler == "handler.py" and spec.keep_warm == "fixed"


@pytest.mark.parametrize(("raw", "message"), [
    ({"name": "x", "max_instances": 0}, "max_instances: 0 is not an integer >= 1"),
    ({"name": "x", "min_instances": 3, "max_instances": 2}, "min_instances 3 is over max_instances 2"),
    ({"name": "x", "keep_warm": "lstm"}, "keep_warm: 'lstm' is not one of"),
    ({"name": "x", "timeout_s": "soon"}, "timeout_s: 'soon' is not a duration"),
    ({"name": "x", "timeout_s": 0}, "must be more than 0 seconds"),
    ({"name": "x", "handler": "../evil.py"}, "must name a .py file in the function folder"),
    ({"name": "Bad Name"}, "invalid function name"),
    ({"name": "x", "replicas": 2}, "unknown key(s) ['replicas']"),
    ({"models": []}, "'name' is required"),
])
def test_invalid_specs_say_what_to_fix(raw: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        FunctionSpec.from_dict(raw)


def test_durations() -> None:
    assert [parse_duration(v, "d") for v in (1, "250ms", "30s", "15m", "1h", 0.5)] == [1, 0.25, 30, 900, 3600, 0.5]


def test_stack_file_with_openfaas_labels(tmp_path: Path) -> None:
    (tmp_path / "blur").mkdir()
    (tmp_path / "stack.yml").write_text(
        "version: 1.0\nprovider: {name: inferlab, gateway: http://127.0.0.1:9000}\nfunctions:\n"
        "  blur:\n    lang: python3\n    handler: ./blur\n    environment: {MODE: fast}\n"
        "    labels: {com.openfaas.scale.min: '1', com.openfaas.scale.max: '3', "
        "com.openfaas.scale.zero-duration: 5m}\n"
    )
    stack = load_stack(tmp_path / "stack.yml")
    assert stack.gateway == "http://127.0.0.1:9000"
    (entry,) = stack.functions
    assert entry.name == "blur" and entry.folder == tmp_path / "blur"
    assert entry.overrides == {"environment": {"MODE": "fast"}, "min_instances": 1, "max_instances": 3,
                               "idle_timeout_s": 300.0}


def test_stack_errors(tmp_path: Path) -> None:
    (tmp_path / "stack.yml").write_text("functions:\n  blur:\n    handler: ./missing\n")
    with pytest.raises(InvalidInput, match=r"handler folder .* does not exist"):
        load_stack(tmp_path / "stack.yml")
    (tmp_path / "stack.yml").write_text("provider: {}\n")
    with pytest.raises(InvalidInput, match="'functions:' mapping"):
        load_stack(tmp_path / "stack.yml")


def test_package_round_trip_skips_caches(tmp_path: Path) -> None:
    source = tmp_path / "fn"
    (source / "data").mkdir(parents=True)
    (source / "handler.py").write_text("x = 1\n")
    (source / "data" / "vocab.json").write_bytes(b"\x00\x01")
    (source / "__pycache__").mkdir()
    (source / "__pycache__" / "handler.pyc").write_bytes(b"junk")
    body = deploy_body("fn", source, {"max_instances": 2})
    assert sorted(body["files"]) == ["data/vocab.json", "handler.py"] and body["config"] == {"max_instances": 2}
    out = unpack_files(pack_folder(source), tmp_path)
    assert (out / "data" / "vocab.json").read_bytes() == b"\x00\x01"


@pytest.mark.parametrize("path", ["../x.py", "/etc/passwd", "a/../../b", "a\\b"])
def test_unpack_refuses_paths_outside(tmp_path: Path, path: str) -> None:
    with pytest.raises(InvalidInput, match="must be relative"):
        unpack_files({path: base64.b64encode(b"x").decode()}, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == []
