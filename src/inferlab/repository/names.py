"""Model and version names: what is allowed, so that no name can reach outside the repository."""

from __future__ import annotations

import re

from inferlab.errors import InvalidInput

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")


def check_model_name(name: str) -> str:
    """Return `name` if it is a safe model name, else raise InvalidInput saying why."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise InvalidInput(
            f"invalid model name {name!r}: use 1-128 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit, with no '/' and no '..'"
        )
    return name


def parse_version(version: str | int | None) -> int | None:
    """A version as an int (None means 'latest'); InvalidInput if it is not a positive integer."""
    if version is None or version == "":
        return None
    text = str(version)
    if not text.isdigit() or int(text) < 1:
        raise InvalidInput(f"invalid model version {version!r}: expected a positive integer")
    return int(text)
