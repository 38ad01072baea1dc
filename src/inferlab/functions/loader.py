"""Import a handler file and check its hooks once, at deploy, with messages that say how to fix them.

This runs inside a worker process (never in the server), because importing user code may be slow,
crash, or pull in heavy libraries.
"""

from __future__ import annotations

import difflib
import importlib.util
import inspect
import sys
import traceback
from pathlib import Path

from inferlab.errors import InvalidInput
from inferlab.functions.handler import HOOKS, Handler

# hook -> its parameters after `self`
_SIGNATURE = {
    "setup": (), "handle": ("request",), "decode": ("request",), "predict": ("inputs",), "encode": ("outputs",),
}


def load_handler(path: Path) -> type[Handler]:
    """The one Handler subclass defined in `path`; InvalidInput explaining what to change otherwise."""
    if not path.is_file():
        raise InvalidInput(f"{path.name}: not found in the function folder; add it with a Handler subclass")
    module_name = f"inferlab_function_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise InvalidInput(f"{path.name}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
        line = f" (line {frames[-1].lineno})" if frames else ""  # the handler's line, not the library's
        raise InvalidInput(
            f"{path.name}: importing it raised {type(exc).__name__}: {exc}{line}; "
            "fix the error (is every imported package installed on the server?)"
        ) from None
    classes = [
        obj for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, Handler) and obj is not Handler and obj.__module__ == module_name
    ]
    if not classes:
        raise InvalidInput(
            f"{path.name}: defines no Handler subclass; add `from inferlab.functions import Handler` and "
            "`class MyFunction(Handler):` with a handle(self, request) method"
        )
    if len(classes) > 1:
        names = sorted(c.__name__ for c in classes)
        raise InvalidInput(f"{path.name}: defines several Handler subclasses {names}; keep exactly one")
    check_hooks(classes[0], path.name)
    return classes[0]


def check_hooks(cls: type[Handler], where: str) -> None:
    """Reject a class whose hooks cannot work: missing, both styles, async, wrong arity, or misspelt."""
    overridden = {hook for hook in HOOKS if getattr(cls, hook) is not getattr(Handler, hook)}
    name = cls.__name__
    if "handle" not in overridden and "predict" not in overridden:
        raise InvalidInput(
            f"{where}: {name} overrides neither handle() nor predict(); define handle(self, request) "
            "or the decode/predict/encode trio"
        )
    if "handle" in overridden and overridden & {"decode", "predict", "encode"}:
        both = sorted(overridden & {"decode", "predict", "encode"})
        raise InvalidInput(
            f"{where}: {name} overrides handle() and {both}; handle() replaces decode/predict/encode, "
            "so define one style only"
        )
    for hook in sorted(overridden):
        method = getattr(cls, hook)
        if inspect.iscoroutinefunction(method) or inspect.isasyncgenfunction(method):
            raise InvalidInput(
                f"{where}: {name}.{hook} is async; make it a plain `def` (each request runs on its own "
                "thread in the instance, so blocking calls are fine)"
            )
        if not inspect.isfunction(method):
            raise InvalidInput(f"{where}: {name}.{hook} must be a plain method, got {type(method).__name__}")
        params = list(inspect.signature(method).parameters.values())[1:]
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        required = [p for p in positional if p.default is p.empty]
        takes_varargs = any(p.kind is p.VAR_POSITIONAL for p in params)
        arity = len(_SIGNATURE[hook])
        if len(required) > arity or (len(positional) < arity and not takes_varargs):
            want = ", ".join(("self", *_SIGNATURE[hook]))
            got = ", ".join(("self", *(p.name for p in params)))
            raise InvalidInput(f"{where}: {name}.{hook} must take ({want}); it takes ({got})")
    for attr in vars(cls):
        if attr.startswith("_") or attr in HOOKS:
            continue
        close = difflib.get_close_matches(attr, HOOKS, n=1, cutoff=0.75)
        if close and callable(vars(cls)[attr]):
            raise InvalidInput(
                f"{where}: {name}.{attr} looks like a misspelt hook; rename it to {close[0]} "
                f"(hooks are {', '.join(HOOKS)})"
            )
