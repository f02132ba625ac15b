"""Kazi's JavaScript program runtime: V8 (mini-racer), sandboxed, called in batches.

Why mini-racer: CHT runs task code in V8 (Chrome, Android WebView), so only V8 gives the same
JavaScript, date parsing included; mini-racer embeds it in-process with per-call timeouts and a
hard heap limit that ends the script, not the process, and exposes no file system, network or
process API to the script. Its calls cost ~0.3 ms each (it runs V8 on its own thread), so the
runtime never calls per callback: the whole emission loop runs inside V8 over a batch of
containers, one round trip per batch. See docs/engine.md for the measurements behind the choice.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import json
import re
import threading
import weakref
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from importlib import resources
from typing import Any

import orjson
from py_mini_racer import JSOOMException, JSParseException, JSTimeoutException, MiniRacer, mini_racer

from kazi.engine import dates
from kazi.engine.budget import Budget
from kazi.errors import ComputationInterrupted, ConfigCodeError
from kazi.program.limits import ProgramLimits

_DEFAULTS = ProgramLimits()
DEFAULT_TIME_LIMIT_S = _DEFAULTS.time_limit_s
DEFAULT_MEMORY_LIMIT = _DEFAULTS.memory_bytes
DEFAULT_MAX_CONTAINER_BYTES = _DEFAULTS.max_container_bytes

_SOURCES: dict[str, str] = {}
_STACK_FILE = re.compile(r"\(?([^()\s]+\.js):(\d+):(\d+)\)?")
_PARSE_LINE = re.compile(r"^<anonymous>:(\d+):")
_ABORTS = (JSTimeoutException, JSOOMException)


def _may_apply(filters: list[Any], c: dict[str, Any]) -> bool:
    """Whether any definition could call program code for container ``c`` (runtime.js's ``mayApply``).

    Filters come from ``appliesTo`` / ``appliesToType`` of one evaluation per computation; containers no
    definition applies to are never encoded nor sent to V8 (for a CHW, most places and households).
    """
    contact = c.get("contact")
    reports = c.get("reports") or ()
    for f in filters:
        if not isinstance(f, dict) or ("types" in f and f["types"] is None):
            return True
        types = f.get("types")
        applies_to = f.get("appliesTo")
        if applies_to == "contacts":
            if not contact:
                continue
            if not types:
                return True
            ctype = contact.get("contact_type") if contact.get("type") == "contact" else contact.get("type")
            if ctype in types:
                return True
        elif applies_to in ("reports", "scheduled_tasks"):
            if not reports:
                continue
            if not types or any(r.get("form") in types for r in reports):
                return True
        else:
            return True  # unknown appliesTo: let the emitter raise as CHT does
    return False


class _Abandoned(Exception):  # noqa: N818 - control flow inside the runtime, never seen outside
    """The computation's budget is spent: what it produced so far and the errors to report."""

    def __init__(self, emissions: list[dict[str, Any]], errors: list[ConfigCodeError]) -> None:
        super().__init__("abandoned")
        self.emissions = emissions
        self.errors = errors


def _encode_one(container: dict[str, Any]) -> bytes:
    """A container's JSON (orjson, or the standard encoder for what orjson refuses: integers beyond 64 bits)."""
    try:
        return orjson.dumps(container)
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(container, separators=(",", ":")).encode()


def _source(name: str) -> str:
    if name not in _SOURCES:
        _SOURCES[name] = resources.files("kazi.program.js").joinpath(name).read_text(encoding="utf-8")
    return _SOURCES[name]


_DST_SCAN_FROM_MS = -2_524_521_600_000  # 1890-01-01, where dates.transitions() starts
_DST_SCAN_TO_MS = 4_133_980_800_000  # 2101-01-01, where it ends
_DST_STEP_MS = 7 * 86_400_000


@lru_cache(maxsize=64)
def _dst_changes(tz: str) -> tuple[list[int], list[bool]]:
    """When ``tz`` enters or leaves daylight-saving time: ``(instants_ms, flags)``, ``flags[0]`` before the first.

    Only ``Date.prototype.toString`` needs it (V8 names a zone by its standard or daylight name). A zone can
    switch between standard and daylight time without changing its offset (New Zealand, 1946), so the
    changes are searched inside the offset intervals of ``dates.transitions(tz)`` too: weekly, then to the ms.
    """
    z = dates.zone(tz)

    def is_dst(ms: int) -> bool:
        return bool(datetime.fromtimestamp(ms / 1000, UTC).astimezone(z).dst())

    instants, _ = dates.transitions(tz)
    bounds = [_DST_SCAN_FROM_MS, *instants, _DST_SCAN_TO_MS]
    points: list[int] = []
    flags = [is_dst(bounds[0])]
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        t = lo
        while t < hi:
            step = min(t + _DST_STEP_MS, hi - 1)
            if step <= t:
                break
            if is_dst(step) != flags[-1]:
                a, b = t, step  # is_dst(a) == flags[-1] != is_dst(b)
                while b - a > 1:
                    mid = (a + b) // 2
                    if is_dst(mid) == flags[-1]:
                        a = mid
                    else:
                        b = mid
                points.append(b)
                flags.append(not flags[-1])
            t = step
        if hi < _DST_SCAN_TO_MS and is_dst(hi) != flags[-1]:
            points.append(hi)
            flags.append(not flags[-1])
    return points, flags


def _abort_kind(exc: BaseException) -> str:
    return "timeout" if isinstance(exc, JSTimeoutException) else "memory"


@dataclass
class JsProgramSpec:
    """Everything V8 needs to run a program: module sources and their statically resolved requires."""

    files: dict[str, str]
    resolved: dict[str, str]
    entry: str = "tasks.js"
    extension_libs: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    schedules: list[Any] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps({
            "files": self.files, "resolved": self.resolved, "entry": self.entry,
            "extensionLibs": self.extension_libs, "settings": self.settings, "schedules": self.schedules,
        })


_LIVE: weakref.WeakSet[JsRuntime] = weakref.WeakSet()
_LOOP: asyncio.AbstractEventLoop | None = None
_LOOP_GUARD = threading.Lock()


def _loop() -> asyncio.AbstractEventLoop:
    """The process's event loop for V8 calls (a daemon thread): a call runs there as a task, which
    :meth:`JsRuntime.interrupt` can cancel from any thread, ending the JavaScript that runs (mini-racer's
    synchronous ``eval`` offers only its own time limit)."""
    global _LOOP
    with _LOOP_GUARD:
        if _LOOP is None or _LOOP.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="kazi-v8-calls", daemon=True).start()
            _LOOP = loop
        return _LOOP


async def _eval_within(ctx: MiniRacer, code: str, timeout_s: float) -> Any:
    try:
        return await asyncio.wait_for(ctx.eval_cancelable(code), timeout=timeout_s)
    except TimeoutError:
        raise JSTimeoutException from None


def interrupt_all() -> None:
    """End every running call of program code in this process, and refuse further ones (process shutdown)."""
    for runtime in list(_LIVE):
        runtime.interrupt()


@atexit.register
def _close_all() -> None:
    # mini-racer's context destructor waits on its V8 thread; run from a garbage-collection pass at
    # interpreter shutdown it can wait forever, so contexts are closed while everything still runs (after
    # ending any call still running in another thread).
    for runtime in list(_LIVE):
        runtime.interrupt()
        runtime.close()


class JsRuntime:
    """One V8 context holding one program. Not thread-safe: use one per thread or process (a lock keeps
    two threads from interleaving calls; :meth:`interrupt` and :meth:`close` may come from any thread)."""

    def __init__(
        self, spec: JsProgramSpec, *, time_limit_s: float = DEFAULT_TIME_LIMIT_S,
        memory_limit: int = DEFAULT_MEMORY_LIMIT, max_container_bytes: int = DEFAULT_MAX_CONTAINER_BYTES,
    ) -> None:
        self.spec = spec
        self.time_limit_s = time_limit_s
        self.memory_limit = memory_limit
        self.max_container_bytes = max_container_bytes
        self._lock = threading.RLock()
        self._ctx: MiniRacer | None = None
        self._maker: AbstractContextManager[MiniRacer] | None = None
        self._pending: concurrent.futures.Future[Any] | None = None
        self._interrupted = False
        self._zones: set[str] = set()
        self._begin_args: tuple[str, float, dict[str, Any] | None, list[str]] | None = None
        self._filters: list[Any] | None = None
        _LIVE.add(self)

    @classmethod
    def with_limits(cls, spec: JsProgramSpec, limits: ProgramLimits) -> JsRuntime:
        return cls(spec, time_limit_s=limits.time_limit_s, memory_limit=limits.memory_bytes,
                   max_container_bytes=limits.max_container_bytes)

    # -- lifecycle --------------------------------------------------------------------------------
    def _context(self) -> MiniRacer:
        if self._interrupted:
            raise ComputationInterrupted("the program's runtime was stopped")
        if self._ctx is None:
            maker = mini_racer(_loop())
            ctx = maker.__enter__()
            self._ctx, self._maker = ctx, maker
            self._zones = set()
            try:
                ctx.set_hard_memory_limit(self.memory_limit)
                self._call(ctx, _source("date_shim.js"), self.time_limit_s)
                self._call(ctx, _source("runtime.js"), self.time_limit_s)
                self._call(ctx, f"__kazi.loadProgram({self.spec.to_json()})", self.time_limit_s)
            except BaseException:
                self._reset()
                raise
            return ctx
        return self._ctx

    def _call(self, ctx: MiniRacer, code: str, timeout_s: float) -> Any:
        """One call into V8 under a time limit, cancelable by :meth:`interrupt`."""
        if self._interrupted:
            raise ComputationInterrupted("the program's runtime was stopped")
        future = asyncio.run_coroutine_threadsafe(_eval_within(ctx, code, max(timeout_s, 0.001)), _loop())
        self._pending = future
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            self._reset()
            raise ComputationInterrupted("the program's runtime was stopped") from None
        finally:
            self._pending = None

    def interrupt(self) -> None:
        """End the running call, if any, and refuse every later one: the process is stopping, or the program
        is being replaced. Safe from any thread; the computation that was running raises
        :class:`ComputationInterrupted`."""
        self._interrupted = True
        pending = self._pending
        if pending is not None:
            pending.cancel()

    def close(self) -> None:
        pending = self._pending
        if pending is not None:  # a call of another thread: end it, so that the context is free
            pending.cancel()
        # the thread that ran it lets go at once; one that does not (stuck outside V8) keeps the context,
        # rather than holding up a process that is stopping
        if not self._lock.acquire(timeout=5.0):
            return
        try:
            self._free()
        finally:
            self._lock.release()

    def _free(self) -> None:
        self._begin_args = None
        self._filters = None
        maker, self._maker, self._ctx = self._maker, None, None
        if maker is not None:
            maker.__exit__(None, None, None)

    def _reset(self) -> None:
        # After a timeout or an out-of-memory end the context may hold half-built state: start over.
        try:
            self._free()
        except Exception:  # noqa: BLE001 - a dead context may fail to close; it is dropped anyway
            self._ctx = None
            self._maker = None

    def _eval(self, code: str, budget: Budget | None = None) -> Any:
        """A call under the time limit, shortened to the computation's deadline; past the deadline the
        computation is interrupted (the context is reset: the call may have stopped anywhere)."""
        ctx = self._context()
        limit = self.time_limit_s
        left = budget.remaining() if budget is not None else None
        if left is not None:
            if left <= 0:
                raise ComputationInterrupted("the computation's deadline passed")
            limit = min(limit, left)
        try:
            return self._call(ctx, code, limit)
        except JSTimeoutException:
            if budget is not None and budget.expired():
                where = self._where_after_abort()
                self._reset()
                raise ComputationInterrupted("the computation's deadline passed",
                                             where if where.get("container", -1) != -1 else None) from None
            raise

    def _settled(self, budget: Budget | None = None) -> str | None:
        """After a call that ran program code: ``None`` if V8 is idle, else why it is not (and reset it).

        mini-racer runs promise callbacks (``then``, ``await``) left by a call right *after* the call
        returned, outside its time limit; a runaway one would block the next call, whichever computation
        it belongs to. A trivial call with the time limit finds out, and closing the context ends it.
        """
        try:
            self._eval("0", budget)
        except _ABORTS as exc:
            self._reset()
            return _abort_kind(exc)
        return None

    def _limit_text(self, kind: str) -> str:
        return f"{self.time_limit_s:g} s" if kind == "timeout" else f"{self.memory_limit // (1024 * 1024)} MiB"

    # -- API ------------------------------------------------------------------------------------------
    def describe(self) -> tuple[Any, dict[str, Any] | None]:
        """The export as data (functions as markers), or the error that stopped its evaluation.

        An error whose place is known carries ``location`` (``"tasks/anc.js:12"``).
        """
        with self._lock:
            try:
                out = json.loads(self._eval("__kazi.describe()"))
            except _ABORTS as exc:
                self._reset()
                kind = _abort_kind(exc)
                return None, {"message": f"evaluating the program ran out of {kind}", "kind": kind}
            late = self._settled()
            if late is not None:
                return None, {"message": f"asynchronous program code exceeded the {late} limit of "
                              f"{self._limit_text(late)}", "kind": late}
            if out["ok"]:
                return out["shape"], None
            error = dict(out["error"])
            error["location"] = self._location(error)
        return None, error

    def syntax_errors(self) -> list[tuple[str, str]]:
        """``(location, message)`` for every program module (not ``node_modules``) V8 cannot compile.

        A bundler parses every module it bundles, so a syntax error in a module required only inside a
        function stops cht-conf too; evaluating the program would not reach it.
        """
        found: list[tuple[str, str]] = []
        with self._lock:
            for path in self.spec.files:
                if "node_modules/" in f"/{path}" or not path.endswith(".js"):
                    continue
                where, message = self._compile_error(path)
                if message:
                    found.append((where, message))
        return found

    def _compile_error(self, path: str) -> tuple[str, str]:
        """(``path:line``, message) of the syntax error in a module; message ``""`` when it compiles."""
        ctx = self._context()
        source = self._call(ctx, f"__kazi.source({json.dumps(path)})", self.time_limit_s)
        if not isinstance(source, str):
            return path, ""
        try:
            self._call(ctx, source + "\n;0", self.time_limit_s)  # compiled, not run; no function handed back
        except JSParseException as exc:
            text = str(exc)
            m = _PARSE_LINE.match(text)
            message = next((ln for ln in text.splitlines() if ln.startswith("SyntaxError")), text.strip())
            return (f"{path}:{m.group(1)}" if m else path), message
        return path, ""

    def _location(self, e: dict[str, Any]) -> str:
        """``file:line`` of an error: the module it names (syntax, JSON), else the stack's first program file,
        else (a timeout has no stack) the module the definition came from."""
        named = e.get("file")
        if isinstance(named, str) and named in self.spec.files:
            if named.endswith(".json"):
                try:
                    json.loads(self.spec.files[named])
                except json.JSONDecodeError as exc:
                    return f"{named}:{exc.lineno}"
                return named
            try:
                return self._compile_error(named)[0]
            except Exception:  # noqa: BLE001 - the location is a courtesy; the error itself is reported
                return named
        for m in _STACK_FILE.finditer(str(e.get("stack") or "")):
            path = m.group(1)
            if path in self.spec.files or path.startswith("extension-libs/"):
                return f"{path}:{m.group(2)}"
        origin = e.get("definitionFile")
        return origin if isinstance(origin, str) and origin in self.spec.files else self.spec.entry

    def begin(self, *, tz: str, now_ms: float, user: dict[str, Any] | None, roles: list[str],
              budget: Budget | None = None) -> None:
        """Set the computation's zone, instant, user and roles for the next :meth:`emit` calls.

        It evaluates the program once (to learn which definitions can apply to whom), under the time and
        memory limits: a runaway top level raises :class:`ConfigCodeError`.
        """
        with self._lock:
            self._begin(tz, now_ms, user, roles, budget)

    def _begin(self, tz: str, now_ms: float, user: dict[str, Any] | None, roles: list[str],
               budget: Budget | None = None) -> None:
        ctx = self._context()
        if tz not in self._zones:
            instants, offsets = dates.transitions(tz)
            dst_instants, dst_flags = _dst_changes(tz)
            self._call(ctx, f"__kaziDate.defineZone({json.dumps(tz)}, {json.dumps(instants)}, "
                       f"{json.dumps(offsets)}, {json.dumps(dst_instants)}, {json.dumps(dst_flags)})",
                       self.time_limit_s)
            self._zones.add(tz)
        if self._begin_args == (tz, now_ms, user, roles):
            return  # same computation, next batch: the context already holds it
        spec = {"tz": tz, "now": now_ms, "user": user, "roles": roles}
        self._begin_args = (tz, now_ms, user, roles)
        self._filters = None
        try:
            self._eval(f"__kazi.begin({json.dumps(spec)})", budget)
            self._filters = json.loads(self._eval("__kazi.filters()", budget))
        except _ABORTS as exc:
            self._reset()
            kind = _abort_kind(exc)
            raise ConfigCodeError(f"evaluating the program exceeded the {kind} limit of {self._limit_text(kind)}",
                                  file=self.spec.entry, kind=kind) from None
        late = self._settled(budget)
        if late is not None:
            raise ConfigCodeError(f"asynchronous program code exceeded the {late} limit of "
                                  f"{self._limit_text(late)}", file=self.spec.entry, kind=late)

    def emit(self, containers: list[dict[str, Any]], *, collect: bool = False, budget: Budget | None = None
             ) -> tuple[list[dict[str, Any]], list[ConfigCodeError]]:
        """Emissions of a batch of containers, and the errors of containers whose code failed.

        With ``collect=False`` the first error is raised as :class:`ConfigCodeError`; with
        ``collect=True`` failing containers are skipped (their errors returned) and the rest go on: a
        container whose JSON exceeds ``max_container_bytes`` is not run at all, and a batch that exceeds
        the time or memory limit is resumed past the container that was running, or split in halves until
        the culprit is alone when that is not known. Each such abort spends ``budget``; once it is spent, the
        rest of the computation is abandoned with one error that names no contact (the engine then keeps
        every task document of the computation).
        """
        with self._lock:
            if budget is not None and budget.exhausted:
                return [], []
            if self._filters is not None:
                containers = [c for c in containers if _may_apply(self._filters, c)]
            if not containers:
                return [], []
            kept, parts, errors = self._encoded(containers, collect)
            try:
                emissions, more = self._emit_batch(kept, parts, collect, budget) if kept else ([], [])
            except _Abandoned as stop:
                return stop.emissions, [*errors, *stop.errors]
            return emissions, [*errors, *more]

    def emit_encoded(self, batch_json: bytes, *, collect: bool = False, budget: Budget | None = None
                     ) -> tuple[list[dict[str, Any]], list[ConfigCodeError]]:
        """:meth:`emit` for a batch already encoded as a JSON array (bytes), as worker processes get it.

        The common case (no error) costs one V8 call and one decode; anything else (an error, a timeout,
        a container too large) takes the careful path of :meth:`emit` on the decoded batch.
        """
        with self._lock:
            if budget is not None and budget.exhausted:
                return [], []
            raw = None
            if len(batch_json) <= self.max_container_bytes:
                payload = orjson.dumps(batch_json.decode()).decode()
                try:
                    raw = self._eval(f"__kazi.emit({payload}, {'true' if collect else 'false'})", budget)
                except _ABORTS:
                    self._restart(budget)  # the careful path finds the culprit and spends the budget
            if raw is not None and self._settled(budget) is None:
                out = orjson.loads(raw)
                if not out["errors"]:
                    return out["emissions"], []
                self._restart(budget)
            containers = orjson.loads(batch_json)
        return self.emit(containers, collect=collect, budget=budget)

    def _encoded(self, containers: list[dict[str, Any]], collect: bool) -> tuple[
        list[dict[str, Any]], list[bytes], list[ConfigCodeError]
    ]:
        """Each container's JSON, apart from those over ``max_container_bytes`` (their errors): a document
        stored before size limits existed (100 MB) would otherwise make every batch holding it exceed the
        limits, and be found only after several aborts."""
        kept: list[dict[str, Any]] = []
        parts: list[bytes] = []
        errors: list[ConfigCodeError] = []
        for c in containers:
            data = _encode_one(c)
            if len(data) > self.max_container_bytes:
                contact = c.get("contact")
                err = ConfigCodeError(
                    message=f"the contact's documents take {len(data) / 1048576:.1f} MiB of JSON, more than the "
                            f"{self.max_container_bytes / 1048576:g} MiB a container may: not computed",
                    file=self.spec.entry, contact_id=contact.get("_id") if isinstance(contact, dict) else None,
                    kind="size")
                if not collect:
                    raise err
                errors.append(err)
                continue
            kept.append(c)
            parts.append(data)
        return kept, parts, errors

    def _emit_batch(self, batch: list[dict[str, Any]], parts: list[bytes], collect: bool,
                    budget: Budget | None) -> tuple[list[dict[str, Any]], list[ConfigCodeError]]:
        if not batch:
            return [], []
        payload = orjson.dumps((b"[" + b",".join(parts) + b"]").decode()).decode()
        try:
            raw = self._eval(f"__kazi.emit({payload}, {'true' if collect else 'false'})", budget)
        except _ABORTS as exc:
            kind = _abort_kind(exc)
            where = self._where_after_abort()
            self._restart(budget)
            index = where.get("container", -1)
            known = isinstance(index, int) and 0 <= index < len(batch)
            if known:
                err = self._error({**where, "message": f"exceeded the {kind} limit of {self._limit_text(kind)}"},
                                  kind, batch)
            elif len(batch) == 1:
                err = self._error({"container": 0, "message": f"exceeded the {kind} limit of "
                                   f"{self._limit_text(kind)}"}, kind, batch)
            else:
                err = self._error({"message": f"a batch of {len(batch)} containers exceeded the {kind} limit of "
                                   f"{self._limit_text(kind)}"}, kind, [])
            if not collect:
                raise err from None
            if known:
                self._spend(budget, err, [])
                # Containers before the culprit are recomputed: their results were lost with the context.
                before: tuple[list[dict[str, Any]], list[ConfigCodeError]] = ([], [])
                try:
                    before = self._emit_batch(batch[:index], parts[:index], collect, budget)
                    after = self._emit_batch(batch[index + 1:], parts[index + 1:], collect, budget)
                except _Abandoned as stop:
                    raise _Abandoned([*before[0], *stop.emissions], [*before[1], err, *stop.errors]) from None
                return [*before[0], *after[0]], [*before[1], err, *after[1]]
            if len(batch) == 1:
                self._spend(budget, err, [])
                return [], [err]
            return self._halves(batch, parts, collect, budget, err)
        late = self._settled(budget)
        if late is not None:
            # A container left asynchronous code that ran away after the call: find which, half by half.
            err = self._error({"container": 0, "message": f"asynchronous program code (a promise callback) "
                               f"exceeded the {late} limit of {self._limit_text(late)}"}, late,
                              batch if len(batch) == 1 else [])
            if not collect:
                if len(batch) == 1:
                    raise err
                self._restart(budget)
                return self._halves(batch, parts, collect, budget, err)
            self._restart(budget)
            if len(batch) == 1:
                self._spend(budget, err, [])
                return [], [err]
            return self._halves(batch, parts, collect, budget, err)
        out = orjson.loads(raw)
        errors: list[ConfigCodeError] = []
        for e in out["errors"]:
            err = self._error(e, "exception", batch)
            if not collect:
                raise err
            errors.append(err)
        return out["emissions"], errors

    def _halves(self, batch: list[dict[str, Any]], parts: list[bytes], collect: bool, budget: Budget | None,
                err: ConfigCodeError) -> tuple[list[dict[str, Any]], list[ConfigCodeError]]:
        """A batch that exceeded a limit somewhere unknown (while its JSON was read, or in a promise callback
        after the call): each half on its own, recursively, so the culprit ends up alone."""
        self._spend(budget, err, [])
        mid = len(batch) // 2
        first: tuple[list[dict[str, Any]], list[ConfigCodeError]] = ([], [])
        try:
            first = self._emit_batch(batch[:mid], parts[:mid], collect, budget)
            second = self._emit_batch(batch[mid:], parts[mid:], collect, budget)
        except _Abandoned as stop:
            raise _Abandoned([*first[0], *stop.emissions], [*first[1], *stop.errors]) from None
        errors = [*first[1], *second[1]]
        if not errors:
            # Not reproducible on the halves (e.g. it depended on state shared across containers): the batch
            # failed and no container can be named.
            if not collect:
                raise err
            errors.append(err)
        return [*first[0], *second[0]], errors

    def _spend(self, budget: Budget | None, err: ConfigCodeError, emissions: list[dict[str, Any]]) -> None:
        """Count an abort against the computation's budget; once spent, abandon the computation."""
        if budget is None or budget.spend():
            return
        summary = ConfigCodeError(
            message=f"program code exceeded its limits on {budget.aborts} containers of one computation: the "
                    f"rest of it was abandoned (every task document of the computation is kept)",
            file=err.file, definition_index=err.definition_index, definition_name=err.definition_name,
            kind=err.kind)
        raise _Abandoned(emissions, [err, summary])

    def _restart(self, budget: Budget | None = None) -> None:
        """A fresh context in the current computation's state (after a timeout or memory abort)."""
        args = self._begin_args
        self._reset()
        if args is not None:
            self._begin(*args, budget)

    def _where_after_abort(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self._eval("__kazi.current()")))
        except Exception:  # noqa: BLE001 - the context may be unusable after an abort
            return {}

    def _error(self, e: dict[str, Any], kind: str, batch: list[dict[str, Any]]) -> ConfigCodeError:
        stack = str(e.get("stack") or "")
        file = self._location(e)
        definition = e.get("definition")
        index = e.get("container", -1)
        contact = e.get("contact")
        if contact is None and isinstance(index, int) and 0 <= index < len(batch):
            c = batch[index].get("contact")
            contact = c.get("_id") if isinstance(c, dict) else None
        name = e.get("name")
        message = str(e.get("message", ""))
        if name and name != "Error" and kind == "exception":
            message = f"{name}: {message}"
        return ConfigCodeError(
            message=message,
            file=file,
            definition_index=definition if isinstance(definition, int) and definition >= 0 else None,
            definition_name=e.get("definitionName"),
            contact_id=contact,
            callback=e.get("callback"),
            kind=kind,
            stack=stack,
        )
