"""Emission across worker processes, so that a full compute uses every core.

The engine core stays single-threaded and pure; this module only implements its
:class:`~kazi.engine.engine.EmissionSource` protocol by sending batches of containers to a pool of
processes, each holding its own copy of the program (its own V8 context for ``tasks.js``). Batches
come back in order, so results are identical to a single-process compute (a test compares).

Processes are started with ``spawn``: V8's threads do not survive ``fork``.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import orjson

from kazi.engine.budget import Budget
from kazi.errors import ComputationInterrupted, ConfigCodeError
from kazi.program.limits import ProgramLimits

Doc = dict[str, Any]

_program: Any = None  # the worker's program (set by _init in each worker process)


def _init(program_dir: str, limits: ProgramLimits | None = None) -> None:
    global _program
    from kazi.program.loader import load_program

    _program = load_program(Path(program_dir))
    _program.limits = limits


def _emit(
    batch: bytes, tz: str, now_ms: float, user: Doc | None, roles: list[str], collect: bool,
    max_aborts: int | None = None, seconds: float | None = None,
) -> tuple[list[Doc], list[ConfigCodeError]]:
    """One batch in a worker. JavaScript programs take the batch as the JSON V8 will read (no decoding
    and re-encoding here); Python programs decode it. ``max_aborts`` and ``seconds`` are the batch's share
    of the computation's budget (a process cannot spend the caller's)."""
    assert _program is not None
    runtime = getattr(_program, "js_runtime", None)
    if runtime is not None:
        budget = None if max_aborts is None else Budget(
            max_aborts=max_aborts, deadline=None if seconds is None else time.monotonic() + seconds)
        runtime.begin(tz=tz, now_ms=now_ms, user=user, roles=roles, budget=budget)
        return runtime.emit_encoded(batch, collect=collect, budget=budget)  # type: ignore[no-any-return]
    source = _program.emission_source()
    return source.emit(orjson.loads(batch), tz=tz, now_ms=now_ms, user=user,  # type: ignore[no-any-return]
                       roles=roles, collect=collect)


def _encode(batch: list[Doc]) -> bytes:
    try:
        return orjson.dumps(batch)
    except (TypeError, orjson.JSONEncodeError):  # e.g. integers beyond 64 bits
        return json.dumps(batch, separators=(",", ":")).encode()


def default_workers() -> int:
    """One worker per core the process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


class ParallelEmissionSource:
    """An :class:`EmissionSource` that spreads batches over ``workers`` processes.

    Give :func:`kazi.engine.engine.compute` a large ``batch_size`` (thousands of containers) with it:
    each batch is one message to a worker.
    """

    def __init__(self, program_dir: Path, workers: int | None = None, limits: ProgramLimits | None = None) -> None:
        self.program_dir = Path(program_dir)
        self.workers = workers or default_workers()
        self._pool = ProcessPoolExecutor(
            max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=_init, initargs=(str(self.program_dir), limits),
        )
        self._interrupted = False
        self._pending: list[Future[tuple[list[Doc], list[ConfigCodeError]]]] = []

    def emit_many(
        self, batches: list[list[Doc]], *, tz: str, now_ms: float, user: Doc | None, roles: list[str],
        collect: bool, budget: Budget | None = None,
    ) -> tuple[list[Doc], list[ConfigCodeError]]:
        """All batches at once, spread over the pool; results in batch order. A batch whose process abandoned
        it (its share of ``budget`` spent) ends the computation: the batches not started are cancelled."""
        if self._interrupted:
            raise ComputationInterrupted("the compute processes were stopped")
        share = None if budget is None else budget.max_aborts
        left = None if budget is None else budget.remaining()
        futures = [self._pool.submit(_emit, _encode(b), tz, now_ms, user, roles, collect, share, left)
                   for b in batches]
        emissions: list[Doc] = []
        errors: list[ConfigCodeError] = []
        try:
            for f in futures:
                wait = None if budget is None else budget.remaining()
                try:
                    out, errs = f.result(timeout=None if wait is None else max(wait, 0.0))
                except FutureTimeout:
                    raise ComputationInterrupted("the computation's deadline passed") from None
                except BrokenProcessPool:
                    raise ComputationInterrupted("the compute processes were stopped") from None
                emissions.extend(out)
                errors.extend(errs)
                if errs and (not collect or any(e.contact_id is None for e in errs)):
                    break
        finally:
            for f in futures:
                f.cancel()
        return emissions, errors

    def interrupt(self) -> None:
        """End the running batches now (the process is stopping, or the program was replaced): the pool's
        processes are terminated, and the computation waiting for them raises ComputationInterrupted."""
        self._interrupted = True
        for process in list(getattr(self._pool, "_processes", {}).values()):
            process.terminate()

    def emit(
        self, containers: list[Doc], *, tz: str, now_ms: float, user: Doc | None, roles: list[str],
        collect: bool,
    ) -> tuple[list[Doc], list[ConfigCodeError]]:
        size = max(1, -(-len(containers) // (self.workers * 4)))
        batches = [containers[i:i + size] for i in range(0, len(containers), size)]
        return self.emit_many(batches, tz=tz, now_ms=now_ms, user=user, roles=roles, collect=collect)

    def close(self) -> None:
        self._pool.shutdown(wait=not self._interrupted, cancel_futures=True)

    def __enter__(self) -> ParallelEmissionSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def compute_parallel(program: Any, *, workers: int | None = None, batch_size: int = 2000,
                     **kwargs: Any) -> Any:
    """:func:`kazi.engine.engine.compute` with emission spread over ``workers`` processes.

    ``program`` is a loaded :class:`~kazi.program.loader.Program` (its folder is loaded again in each
    worker). The pool lives for this call only, so its start-up (~1 s) is included; a server keeps one
    :class:`ParallelEmissionSource` open instead.
    """
    from kazi.engine.engine import compute

    with ParallelEmissionSource(program.path, workers) as source:
        return compute(source, batch_size=batch_size, **kwargs)
