"""Kazi's JavaScript program runtime: V8 (mini-racer), sandboxed, called in batches.

Why mini-racer: CHT runs task code in V8 (Chrome, Android WebView), so only V8 gives the same
JavaScript, date parsing included; mini-racer embeds it in-process with per-call timeouts and a
hard heap limit that ends the script, not the process, and exposes no file system, network or
process API to the script. Its calls cost ~0.3 ms each (it runs V8 on its own thread), so the
runtime never calls per callback: the whole emission loop runs inside V8 over a batch of
containers, one round trip per batch. See docs/engine.md for the measurements behind the choice.
"""

from __future__ import annotations

import atexit
import json
import re
import threading
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from importlib import resources
from typing import Any

import orjson
from py_mini_racer import JSOOMException, JSParseException, JSTimeoutException, MiniRacer

from kazi.engine import dates
from kazi.errors import ConfigCodeError

DEFAULT_TIME_LIMIT_S = 10.0
DEFAULT_MEMORY_LIMIT = 1024 * 1024 * 1024

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


def _encode_batch(batch: list[dict[str, Any]]) -> str:
    """A batch as a JavaScript string literal holding its JSON (V8's JSON.parse beats parsing literals).

    orjson is ~4x faster than the standard library here, which matters at 300k containers; it refuses
    what JSON cannot carry faithfully (e.g. integers beyond 64 bits), and then the standard encoder runs.
    """
    try:
        return orjson.dumps(orjson.dumps(batch).decode()).decode()
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(json.dumps(batch, separators=(",", ":")))


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


@atexit.register
def _close_all() -> None:
    # mini-racer's context destructor waits on its V8 thread; run from a garbage-collection pass at
    # interpreter shutdown it can wait forever, so contexts are closed while everything still runs.
    for runtime in list(_LIVE):
        runtime.close()


class JsRuntime:
    """One V8 context holding one program. Not thread-safe: use one per thread or process."""

    def __init__(
        self, spec: JsProgramSpec, *, time_limit_s: float = DEFAULT_TIME_LIMIT_S,
        memory_limit: int = DEFAULT_MEMORY_LIMIT,
    ) -> None:
        self.spec = spec
        self.time_limit_s = time_limit_s
        self.memory_limit = memory_limit
        self._lock = threading.Lock()
        self._ctx: MiniRacer | None = None
        self._zones: set[str] = set()
        self._begin_args: tuple[str, float, dict[str, Any] | None, list[str]] | None = None
        self._filters: list[Any] | None = None
        _LIVE.add(self)

    # -- lifecycle --------------------------------------------------------------------------------
    def _context(self) -> MiniRacer:
        if self._ctx is None:
            ctx = MiniRacer()
            ctx.set_hard_memory_limit(self.memory_limit)
            ctx.eval(_source("date_shim.js"))
            ctx.eval(_source("runtime.js"))
            ctx.eval(f"__kazi.loadProgram({self.spec.to_json()})")
            self._ctx = ctx
            self._zones = set()
        return self._ctx

    def close(self) -> None:
        self._begin_args = None
        self._filters = None
        if self._ctx is not None:
            ctx, self._ctx = self._ctx, None
            ctx.close()

    def _reset(self) -> None:
        # After a timeout or an out-of-memory end the context may hold half-built state: start over.
        try:
            self.close()
        except Exception:  # noqa: BLE001 - a dead context may fail to close; it is dropped anyway
            self._ctx = None

    def _eval(self, code: str) -> Any:
        ctx = self._context()
        return ctx.eval(code, timeout_sec=self.time_limit_s)

    def _settled(self) -> str | None:
        """After a call that ran program code: ``None`` if V8 is idle, else why it is not (and reset it).

        mini-racer runs promise callbacks (``then``, ``await``) left by a call right *after* the call
        returned, outside its time limit; a runaway one would block the next call, whichever computation
        it belongs to. A trivial call with the time limit finds out, and closing the context ends it.
        """
        try:
            self._eval("0")
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
        source = ctx.eval(f"__kazi.source({json.dumps(path)})")
        if not isinstance(source, str):
            return path, ""
        try:
            ctx.eval(source + "\n;0", timeout_sec=self.time_limit_s)  # compiled, not run; no function handed back
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

    def begin(self, *, tz: str, now_ms: float, user: dict[str, Any] | None, roles: list[str]) -> None:
        """Set the computation's zone, instant, user and roles for the next :meth:`emit` calls.

        It evaluates the program once (to learn which definitions can apply to whom), under the time and
        memory limits: a runaway top level raises :class:`ConfigCodeError`.
        """
        with self._lock:
            self._begin(tz, now_ms, user, roles)

    def _begin(self, tz: str, now_ms: float, user: dict[str, Any] | None, roles: list[str]) -> None:
        ctx = self._context()
        if tz not in self._zones:
            instants, offsets = dates.transitions(tz)
            dst_instants, dst_flags = _dst_changes(tz)
            ctx.eval(f"__kaziDate.defineZone({json.dumps(tz)}, {json.dumps(instants)}, {json.dumps(offsets)}, "
                     f"{json.dumps(dst_instants)}, {json.dumps(dst_flags)})")
            self._zones.add(tz)
        if self._begin_args == (tz, now_ms, user, roles):
            return  # same computation, next batch: the context already holds it
        spec = {"tz": tz, "now": now_ms, "user": user, "roles": roles}
        self._begin_args = (tz, now_ms, user, roles)
        self._filters = None
        try:
            self._eval(f"__kazi.begin({json.dumps(spec)})")
            self._filters = json.loads(self._eval("__kazi.filters()"))
        except _ABORTS as exc:
            self._reset()
            kind = _abort_kind(exc)
            raise ConfigCodeError(f"evaluating the program exceeded the {kind} limit of {self._limit_text(kind)}",
                                  file=self.spec.entry, kind=kind) from None
        late = self._settled()
        if late is not None:
            raise ConfigCodeError(f"asynchronous program code exceeded the {late} limit of "
                                  f"{self._limit_text(late)}", file=self.spec.entry, kind=late)

    def emit(self, containers: list[dict[str, Any]], *, collect: bool = False) -> tuple[
        list[dict[str, Any]], list[ConfigCodeError]
    ]:
        """Emissions of a batch of containers, and the errors of containers whose code failed.

        With ``collect=False`` the first error is raised as :class:`ConfigCodeError`; with
        ``collect=True`` failing containers are skipped (their errors returned) and the rest go on,
        a runaway container included: after a timeout the batch is resumed past the culprit.
        """
        with self._lock:
            if self._filters is not None:
                containers = [c for c in containers if _may_apply(self._filters, c)]
            return self._emit_batch(containers, collect) if containers else ([], [])

    def emit_encoded(self, batch_json: bytes, *, collect: bool = False) -> tuple[
        list[dict[str, Any]], list[ConfigCodeError]
    ]:
        """:meth:`emit` for a batch already encoded as a JSON array (bytes), as worker processes get it.

        The common case (no error) costs one V8 call and one decode; anything else (an error, a timeout)
        takes the careful path of :meth:`emit` on the decoded batch.
        """
        with self._lock:
            payload = orjson.dumps(batch_json.decode()).decode()
            try:
                raw = self._eval(f"__kazi.emit({payload}, {'true' if collect else 'false'})")
            except _ABORTS:
                raw = None
                self._restart()
            if raw is not None and self._settled() is None:
                out = orjson.loads(raw)
                if not out["errors"]:
                    return out["emissions"], []
                self._restart()
            containers = orjson.loads(batch_json)
        return self.emit(containers, collect=collect)

    def _emit_batch(self, batch: list[dict[str, Any]], collect: bool) -> tuple[
        list[dict[str, Any]], list[ConfigCodeError]
    ]:
        emissions: list[dict[str, Any]] = []
        errors: list[ConfigCodeError] = []
        start = 0
        while start < len(batch):
            part = batch[start:]
            payload = _encode_batch(part)
            try:
                raw = self._eval(f"__kazi.emit({payload}, {'true' if collect else 'false'})")
            except _ABORTS as exc:
                kind = _abort_kind(exc)
                where = self._where_after_abort()
                self._restart()
                index = where.get("container", -1)
                err = self._error({**where, "message": f"exceeded the {kind} limit of {self._limit_text(kind)}"},
                                  kind, part)
                if not collect or not isinstance(index, int) or index < 0:
                    raise err from None
                # Containers before the culprit are recomputed: their results were lost with the context.
                before, errs_before = self._emit_batch(part[:index], collect)
                emissions.extend(before)
                errors.extend(errs_before)
                errors.append(err)
                start += index + 1
                continue
            late = self._settled()
            if late is not None:
                # A container left asynchronous code that ran away after the call: find which, one by one.
                self._restart()
                if len(part) == 1:
                    err = self._error({"container": 0, "message": f"asynchronous program code (a promise "
                                       f"callback) exceeded the {late} limit of {self._limit_text(late)}"},
                                      late, part)
                    if not collect:
                        raise err
                    errors.append(err)
                    break
                more, errs = self._emit_one_by_one(part, collect, late)
                emissions.extend(more)
                errors.extend(errs)
                break
            out = orjson.loads(raw)
            emissions.extend(out["emissions"])
            for e in out["errors"]:
                err = self._error(e, "exception", part)
                if not collect:
                    raise err
                errors.append(err)
            break
        return emissions, errors

    def _emit_one_by_one(self, batch: list[dict[str, Any]], collect: bool, kind: str) -> tuple[
        list[dict[str, Any]], list[ConfigCodeError]
    ]:
        emissions: list[dict[str, Any]] = []
        errors: list[ConfigCodeError] = []
        for container in batch:
            more, errs = self._emit_batch([container], collect)
            emissions.extend(more)
            errors.extend(errs)
        if not errors:
            # Not reproducible container by container (e.g. it depended on state shared across containers).
            err = self._error({"message": f"asynchronous program code exceeded the {kind} limit of "
                               f"{self._limit_text(kind)}"}, kind, batch)
            if not collect:
                raise err
            errors.append(err)
        return emissions, errors

    def _restart(self) -> None:
        """A fresh context in the current computation's state (after a timeout or memory abort)."""
        args = self._begin_args
        self._reset()
        if args is not None:
            self._begin(*args)

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
