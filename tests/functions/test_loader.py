"""Handler checks at deploy: each mistake gets a message saying how to fix it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from inferlab.errors import InvalidInput
from inferlab.functions.loader import load_handler

HEAD = "from inferlab.functions import Handler, Request\n"


def load(tmp_path: Path, body: str) -> type:
    path = tmp_path / "handler.py"
    path.write_text(HEAD + textwrap.dedent(body))
    return load_handler(path)


def test_handle_style_and_trio_style_load(tmp_path: Path) -> None:
    assert load(tmp_path, "class A(Handler):\n    def handle(self, request): return 'x'\n").__name__ == "A"
    trio = "class B(Handler):\n    def decode(self, r): return r\n    def predict(self, x): return x\n"
    assert load(tmp_path, trio).__name__ == "B"


@pytest.mark.parametrize(("body", "message"), [
    ("x = 1\n", "defines no Handler subclass"),
    ("class A(Handler):\n    pass\n", "overrides neither handle"),
    ("class A(Handler):\n    def handle(self, r): pass\n    def predict(self, x): pass\n", "define one style only"),
    ("class A(Handler):\n    async def handle(self, r): pass\n", "is async; make it a plain `def`"),
    ("class A(Handler):\n    def handle(self): pass\n", r"must take \(self, request\); it takes \(self\)"),
    ("class A(Handler):\n    def handle(self, r): pass\n    def set_up(self): pass\n", "rename it to setup"),
    ("class A(Handler):\n    def handle(self, r): pass\nclass B(A):\n    pass\n", "keep exactly one"),
    ("import not_a_package_anywhere\n", "No module named 'not_a_package_anywhere'"),
    ("def broken(:\n", "SyntaxError"),
    ("import pathlib\npathlib.Path('/no/such/file').read_text()\n", r"FileNotFoundError: .*\(line 3\)"),
])
def test_mistakes_are_explained(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        load(tmp_path, body)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="not found in the function folder"):
        load_handler(tmp_path / "handler.py")
