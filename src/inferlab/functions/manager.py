"""FunctionManager: deploy, remove, scale, list and invoke functions; owns their folders and the autoscaler.

Deploying unpacks the files into a fresh folder, checks function.yaml, the models it names and the
handler's hooks (in a short-lived worker, never by importing user code here), then swaps the new
deployment in. Workers are forked from a forkserver that has inferlab preloaded, so a cold start
pays for the handler's own imports and setup(), not for starting Python.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import multiprocessing.context
import multiprocessing.forkserver
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from time import perf_counter
from typing import Any, Protocol

from prometheus_client import CollectorRegistry

from inferlab.errors import InferlabError, InvalidInput, ModelNotFound
from inferlab.functions.async_calls import AsyncCalls
from inferlab.functions.autoscaler import AutoscalerLoop
from inferlab.functions.deployment import Deployment, FunctionNotFound, Invocation
from inferlab.functions.handler import Request
from inferlab.functions.instance import Instance, ModelService
from inferlab.functions.package import unpack_files
from inferlab.functions.spec import FunctionSpec, check_function_name
from inferlab.functions.stats import FunctionCollectors


class ModelCatalog(ModelService, Protocol):
    """ModelService plus the lookup deploy uses to check that a function's models exist."""

    def model(self, name: str, version: str | None = None) -> object: ...


class FunctionManager:
    """The functions of one server; created by server/app.py with the InferenceService.

    Example::

        manager = FunctionManager(service, http_status, registry=metrics.registry)
        await manager.deploy("echo", pack_folder(Path("examples/echo")))
        invocation = await manager.invoke("echo", Request(b"hi"))
    """

    def __init__(self, models: ModelCatalog, error_status: Callable[[InferlabError], int],
                 registry: CollectorRegistry | None = None, root: Path | None = None, tick_s: float = 0.05) -> None:
        self._models = models
        self._own_root = root is None
        self.root = root or Path(tempfile.mkdtemp(prefix="inferlab-functions-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self._processes = _forkserver()
        self._deployments: dict[str, Deployment] = {}
        self._serial = itertools.count(1)
        self._tick_s = tick_s
        self._collectors = FunctionCollectors(registry) if registry is not None else None
        self._autoscaler = AutoscalerLoop(lambda: self._deployments.values(), tick_s)
        self.async_calls = AsyncCalls(self.invoke, error_status)

    async def deploy(self, name: str, files: Any, overrides: dict[str, Any] | None = None) -> FunctionSpec:
        """Deploy (or replace) function `name` from {path: base64} files; InvalidInput says what to fix."""
        check_function_name(name, "service")
        if overrides is not None and not isinstance(overrides, dict):
            raise InvalidInput("'config' must be a mapping of function.yaml keys to values")
        incoming = await asyncio.to_thread(unpack_files, files, self.root)  # disk writes off the event loop
        try:
            spec = FunctionSpec.from_folder(incoming, {**(overrides or {}), "name": name})
            self._check_models(spec)
            await Instance(f"{name}-check", spec, incoming, self._models, self._processes,
                           on_log=lambda _id, _text: None, on_exit=lambda _i: None).start(check_only=True)
            folder = self.root / f"{name}.{next(self._serial)}"
            incoming.rename(folder)
        except BaseException:
            shutil.rmtree(incoming, ignore_errors=True)
            raise
        deployment = Deployment(spec, folder, self._models, self._processes, self._tick_s, self._collectors)
        old = self._deployments.get(name)
        self._deployments[name] = deployment
        if old is not None:
            old.remove()
        self._autoscaler.start()
        deployment.reconcile(perf_counter())
        return spec

    def remove(self, name: str) -> None:
        self._get(name).remove()
        del self._deployments[name]
        if self._collectors is not None:
            self._collectors.forget(name)

    def scale(self, name: str, replicas: Any) -> None:
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
            raise InvalidInput(f"replicas: {replicas!r} is not an integer >= 0")
        self._get(name).scale(replicas)  # checked above: a non-negative int

    async def invoke(self, name: str, request: Request) -> Invocation:
        return await self._get(name).invoke(request)

    def status(self, name: str | None = None) -> list[dict[str, Any]]:
        if name is not None:
            return [self._get(name).status()]
        return [d.status() for d in self._deployments.values()]

    def logs(self, name: str, tail: int | None = None) -> list[dict[str, Any]]:
        lines = list(self._get(name).logs)
        return lines[-tail:] if tail else lines

    async def aclose(self) -> None:
        """Stop the autoscaler and background calls while the event loop still runs."""
        await self._autoscaler.stop()
        await self.async_calls.close()

    def close(self) -> None:
        """Kill every worker and remove the folders; safe to call after the event loop has ended."""
        for deployment in self._deployments.values():
            deployment.close()
        self._deployments.clear()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def _get(self, name: str) -> Deployment:
        deployment = self._deployments.get(name)
        if deployment is None:
            raise FunctionNotFound(f"function '{name}' is not deployed; deployed: {sorted(self._deployments)}")
        return deployment

    def _check_models(self, spec: FunctionSpec) -> None:
        for model in spec.models:
            try:
                self._models.model(model)
            except ModelNotFound:
                raise InvalidInput(
                    f"function.yaml: models: '{model}' is not a model on this server; upload it first "
                    "or fix the name (`inferlab models list` shows them)"
                ) from None


def _forkserver() -> multiprocessing.context.BaseContext:
    """The forkserver context, its server started with our sys.path and the worker module preloaded.

    Python 3.11's forkserver ignores the parent's sys.path, so a package found through PYTHONPATH or
    a test's `pythonpath` would not import there; the server is started with it in PYTHONPATH.
    """
    context = multiprocessing.get_context("forkserver")
    # Each child re-runs the parent's main script (multiprocessing's "safe importing of main"); for
    # the `inferlab` console script that is one import of the CLI, preloaded here so a cold start
    # does not pay ~80 ms for it. `prefork` gives every worker kept-mapped allocator arenas.
    context.set_forkserver_preload(["inferlab.functions.worker", "inferlab.cli.main", "inferlab.functions.prefork"])
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    try:
        multiprocessing.forkserver.ensure_running()
    finally:
        if saved is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved
    return context
