"""FunctionManager: deploy, remove, scale, list and invoke functions; owns their folders and the autoscaler.

Deploying unpacks the files into a fresh folder, checks function.yaml, the models it names and the
handler's hooks (in a short-lived worker, never by importing user code here), records the function
in the store (functions/store.py) so other worker processes and later restarts deploy it too, then
swaps the new deployment in. Workers are forked from a forkserver that has inferlab preloaded, so a cold start
pays for the handler's own imports and setup(), not for starting Python.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import multiprocessing
import multiprocessing.context
import multiprocessing.forkserver
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from time import perf_counter
from typing import Any, Protocol

from prometheus_client import CollectorRegistry

from inferlab.errors import InferlabError, InvalidInput, ModelNotFound, ModelNotReady
from inferlab.functions.async_calls import AsyncCalls
from inferlab.functions.autoscaler import AutoscalerLoop
from inferlab.functions.deployment import Deployment, FunctionNotFound, Invocation, per_worker
from inferlab.functions.handler import Request
from inferlab.functions.instance import Instance, ModelService
from inferlab.functions.package import unpack_files
from inferlab.functions.spec import FunctionSpec, check_function_name
from inferlab.functions.stats import FunctionCollectors
from inferlab.functions.store import FunctionStore, Stamp

log = logging.getLogger("inferlab.functions")
_FOLLOW_S = 0.25  # how often an idle worker checks the store (one stat)


class ModelCatalog(ModelService, Protocol):
    """ModelService plus the lookup deploy uses to check that a function's models exist."""

    def model(self, name: str, version: str | None = None) -> object: ...


class FunctionManager:
    """The functions of one server process; created by server/app.py with the InferenceService.

    Every worker process of a server has one; they share the deployed functions through a
    FunctionStore in the repository's state folder (which also keeps them across restarts) and the
    results of asynchronous calls through a folder beside it. Each runs its own instances.

    Example::

        manager = FunctionManager(service, http_status, REPO / ".inferlab" / "functions")
        await manager.start()  # deploys what the store holds
        await manager.deploy("echo", pack_folder(Path("examples/echo")))
        invocation = await manager.invoke("echo", Request(b"hi"))
    """

    def __init__(self, models: ModelCatalog, error_status: Callable[[InferlabError], int], state_dir: Path,
                 share: int = 1, registry: CollectorRegistry | None = None, tick_s: float = 0.05) -> None:
        self._models = models
        self.root = Path(tempfile.mkdtemp(prefix="inferlab-functions-"))  # this process's working copies
        self._store = FunctionStore(state_dir)
        self._share = share
        self._processes = _forkserver()
        self._deployments: dict[str, Deployment] = {}
        self._broken: dict[str, str] = {}  # stored functions that could not be deployed here, and why
        self._seen: dict[str, tuple[int, int]] = {}  # name -> store generations applied: (files, scale)
        self._stamp: Stamp | None = None
        self._sync = asyncio.Lock()
        self._serial = itertools.count(1)
        self._tick_s = tick_s
        self._collectors = FunctionCollectors(registry) if registry is not None else None
        self._autoscaler = AutoscalerLoop(lambda: self._deployments.values(), tick_s)
        self._tasks: set[asyncio.Task[None]] = set()
        self.async_calls = AsyncCalls(self.invoke, error_status, state_dir / ".results")

    async def start(self) -> None:
        """Deploy every stored function (at server start); one whose handler no longer loads is reported."""
        async with self._sync:
            await self._catch_up(restoring=True)
        self._background(self._follow())

    async def refresh(self) -> None:
        """Apply deploys, removals and scale calls made through other workers; one stat when none were."""
        if self._store.stamp() == self._stamp:
            return
        async with self._sync:
            if self._store.stamp() != self._stamp:
                await self._catch_up(restoring=False)

    async def _follow(self) -> None:
        """Catch up without waiting for a request, so an idle worker also starts min_instances and scale holds."""
        while True:
            await asyncio.sleep(_FOLLOW_S)
            try:
                await self.refresh()
            except Exception:  # e.g. the state folder unreadable for a moment: try again next time
                log.exception("functions: catching up with the store failed")

    async def deploy(self, name: str, files: Any, overrides: dict[str, Any] | None = None) -> FunctionSpec:
        """Deploy (or replace) function `name` from {path: base64} files; InvalidInput says what to fix."""
        check_function_name(name, "service")
        if overrides is not None and not isinstance(overrides, dict):
            raise InvalidInput("'config' must be a mapping of function.yaml keys to values")
        incoming = await asyncio.to_thread(unpack_files, files, self.root)  # disk writes off the event loop
        try:
            spec = FunctionSpec.from_folder(incoming, {**(overrides or {}), "name": name})
            await self._check(spec, incoming)
            async with self._sync:
                generation = await asyncio.to_thread(self._store.put, name, incoming, spec)
                self._install(spec, incoming, generation)
        except BaseException:
            shutil.rmtree(incoming, ignore_errors=True)
            raise
        return spec

    async def remove(self, name: str) -> None:
        await self.refresh()
        async with self._sync:
            if name not in self._broken:
                self._get(name)
            await asyncio.to_thread(self._store.remove, name)
            self._uninstall(name)

    async def scale(self, name: str, replicas: Any) -> None:
        """Scale function-wide: each worker holds ceil(replicas / workers) instances (see Deployment.scale)."""
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
            raise InvalidInput(f"replicas: {replicas!r} is not an integer >= 0")
        await self.refresh()
        async with self._sync:
            deployment = self._get(name)
            scaled = await asyncio.to_thread(self._store.scale, name, replicas)
            self._seen[name] = (self._seen[name][0], scaled)
            deployment.scale(per_worker(replicas, self._share))

    async def invoke(self, name: str, request: Request) -> Invocation:
        await self.refresh()
        return await self._get(name).invoke(request)

    async def status(self, name: str | None = None) -> list[dict[str, Any]]:
        await self.refresh()
        if name is not None:
            return [self._get(name).status() if name not in self._broken else self._broken_status(name)]
        return [*(d.status() for d in self._deployments.values()), *map(self._broken_status, self._broken)]

    async def logs(self, name: str, tail: int | None = None) -> list[dict[str, Any]]:
        await self.refresh()
        lines = list(self._get(name).logs)
        return lines[-tail:] if tail else lines

    async def aclose(self) -> None:
        """Stop the autoscaler and background calls while the event loop still runs."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._autoscaler.stop()
        await self.async_calls.close()

    def close(self) -> None:
        """Kill every instance and remove this process's copies (the store stays); safe after the loop ended."""
        for deployment in self._deployments.values():
            deployment.close()
        self._deployments.clear()
        shutil.rmtree(self.root, ignore_errors=True)

    # --- this process's deployments --------------------------------------------------------------
    def _install(self, spec: FunctionSpec, incoming: Path, generation: int) -> Deployment:
        folder = self.root / f"{spec.name}.{next(self._serial)}"
        incoming.rename(folder)
        deployment = Deployment(spec, folder, self._models, self._processes, self._tick_s, self._collectors,
                                self._share)
        old = self._deployments.get(spec.name)
        self._deployments[spec.name] = deployment
        if old is not None:
            old.remove()
        self._broken.pop(spec.name, None)
        self._seen[spec.name] = (generation, self._seen.get(spec.name, (0, 0))[1])
        self._autoscaler.start()
        deployment.reconcile(perf_counter())
        return deployment

    def _uninstall(self, name: str) -> None:
        self._broken.pop(name, None)
        self._seen.pop(name, None)
        deployment = self._deployments.pop(name, None)
        if deployment is not None:
            deployment.remove()
            if self._collectors is not None:
                self._collectors.forget(name)

    async def _catch_up(self, restoring: bool) -> None:
        """Make this process's deployments what the store says (the caller holds `_sync`)."""
        known = {name: generation for name, (generation, _) in self._seen.items()}
        snapshot = await asyncio.to_thread(self._store.read, known, self.root)
        for name in [*self._deployments, *self._broken]:
            if name not in snapshot.entries:
                self._uninstall(name)
        for name, fetched in snapshot.fetched.items():
            entry = snapshot.entries[name]
            try:
                if fetched.error is not None:
                    raise InvalidInput(fetched.error)
                assert fetched.spec is not None and fetched.folder is not None  # set together with no error
                spec = FunctionSpec.from_dict(fetched.spec, f"stored {name}/spec.json")
            except InvalidInput as exc:
                log.error("function '%s' could not be deployed from the store: %s", name, exc)
                self._uninstall(name)
                self._broken[name] = str(exc)
                self._seen[name] = (entry.generation, entry.scaled)
                continue
            deployment = self._install(spec, fetched.folder, entry.generation)
            if restoring:
                self._background(self._recheck(deployment))
        for name, entry in snapshot.entries.items():
            applied, scaled = self._seen[name]
            if scaled != entry.scaled:  # a scale call's hold is not replayed at restart (it lasts idle_timeout_s)
                self._seen[name] = (applied, entry.scaled)
                scaled_here = self._deployments.get(name)
                if scaled_here is not None and entry.replicas is not None and not restoring:
                    scaled_here.scale(per_worker(entry.replicas, self._share))
        self._stamp = snapshot.stamp

    async def _recheck(self, deployment: Deployment) -> None:
        """At restart: does the stored handler still load (imports installed, models present)?"""
        try:
            await self._check(deployment.spec, deployment.folder)
        except InferlabError as exc:
            log.error("restored function '%s' does not load: %s", deployment.spec.name, exc)
            deployment.failed(str(exc))

    async def _check(self, spec: FunctionSpec, folder: Path) -> None:
        """The models exist and the handler imports with valid hooks (in a short-lived worker)."""
        self._check_models(spec)
        await Instance(f"{spec.name}-check", spec, folder, self._models, self._processes,
                       on_log=lambda _id, _text: None, on_exit=lambda _i: None).start(check_only=True)

    def _background(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _broken_status(self, name: str) -> dict[str, Any]:
        return {"name": name, "replicas": 0, "availableReplicas": 0, "error": self._broken[name],
                "worker": {"pid": os.getpid(), "workers": self._share}}

    def _get(self, name: str) -> Deployment:
        deployment = self._deployments.get(name)
        if deployment is None:
            if name in self._broken:
                raise FunctionBroken(f"function '{name}' could not be deployed from the store "
                                     f"({self._broken[name]}); deploy it again")
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


class FunctionBroken(ModelNotReady):
    """A stored function this process could not deploy (its stored copy is unreadable or invalid)."""


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
