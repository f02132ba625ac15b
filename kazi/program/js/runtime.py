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
from importlib import resources
from typing import Any

from py_mini_racer import JSOOMException, JSTimeoutException, MiniRacer

from kazi.engine import dates
from kazi.errors import ConfigCodeError

DEFAULT_TIME_LIMIT_S = 10.0
DEFAULT_MEMORY_LIMIT = 1024 * 1024 * 1024

_SOURCES: dict[str, str] = {}
_STACK_FILE = re.compile(r"\(?([^()\s]+\.js):(\d+):(\d+)\)?")


def _source(name: str) -> str:
    if name not in _SOURCES:
        _SOURCES[name] = resources.files("kazi.program.js").joinpath(name).read_text(encoding="utf-8")
    return _SOURCES[name]


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
        if self._ctx is not None:
            self._ctx.close()
            self._ctx = None

    def _reset(self) -> None:
        # After a timeout or an out-of-memory end the context may hold half-built state: start over.
        try:
            self.close()
        except Exception:  # noqa: BLE001 - a dead context may fail to close; it is dropped anyway
            self._ctx = None

    def _eval(self, code: str) -> Any:
        ctx = self._context()
        return ctx.eval(code, timeout_sec=self.time_limit_s)

    # -- API ------------------------------------------------------------------------------------------
    def describe(self) -> tuple[Any, dict[str, Any] | None]:
        """The export as data (functions as markers), or the error that stopped its evaluation."""
        with self._lock:
            try:
                out = json.loads(self._eval("__kazi.describe()"))
            except (JSTimeoutException, JSOOMException) as exc:
                self._reset()
                kind = "timeout" if isinstance(exc, JSTimeoutException) else "memory"
                return None, {"message": f"evaluating the program ran out of {kind}", "kind": kind}
        if out["ok"]:
            return out["shape"], None
        return None, out["error"]

    def begin(self, *, tz: str, now_ms: float, user: dict[str, Any] | None, roles: list[str]) -> None:
        """Set the computation's zone, instant, user and roles for the next :meth:`emit` calls."""
        with self._lock:
            self._begin(tz, now_ms, user, roles)

    def _begin(self, tz: str, now_ms: float, user: dict[str, Any] | None, roles: list[str]) -> None:
        ctx = self._context()
        if tz not in self._zones:
            instants, offsets = dates.transitions(tz)
            ctx.eval(f"__kaziDate.defineZone({json.dumps(tz)}, {json.dumps(instants)}, {json.dumps(offsets)})")
            self._zones.add(tz)
        spec = {"tz": tz, "now": now_ms, "user": user, "roles": roles}
        self._begin_args = (tz, now_ms, user, roles)
        ctx.eval(f"__kazi.begin({json.dumps(spec)})")

    def emit(self, containers: list[dict[str, Any]], *, collect: bool = False) -> tuple[
        list[dict[str, Any]], list[ConfigCodeError]
    ]:
        """Emissions of a batch of containers, and the errors of containers whose code failed.

        With ``collect=False`` the first error is raised as :class:`ConfigCodeError`; with
        ``collect=True`` failing containers are skipped (their errors returned) and the rest go on,
        a runaway container included: after a timeout the batch is resumed past the culprit.
        """
        emissions: list[dict[str, Any]] = []
        errors: list[ConfigCodeError] = []
        start = 0
        with self._lock:
            while start < len(containers):
                batch = containers[start:]
                payload = json.dumps(json.dumps(batch, separators=(",", ":")))
                try:
                    raw = self._eval(f"__kazi.emit({payload}, {'true' if collect else 'false'})")
                except (JSTimeoutException, JSOOMException) as exc:
                    kind = "timeout" if isinstance(exc, JSTimeoutException) else "memory"
                    where = self._where_after_abort()
                    self._reset()
                    self._begin(*self._begin_args)
                    index = where.get("container", -1)
                    limit = (f"{self.time_limit_s:g} s" if kind == "timeout"
                             else f"{self.memory_limit // (1024 * 1024)} MiB")
                    err = self._error({**where, "message": f"exceeded the {kind} limit of {limit}"}, kind, batch)
                    if not collect or index < 0:
                        raise err from None
                    errors.append(err)
                    # Containers before the culprit are recomputed: their results were lost.
                    start += index + 1
                    emissions_before, errs_before = self._emit_plain(batch[:index], collect)
                    emissions.extend(emissions_before)
                    errors.extend(errs_before)
                    continue
                out = json.loads(raw)
                emissions.extend(out["emissions"])
                for e in out["errors"]:
                    err = self._error(e, "exception", batch)
                    if not collect:
                        raise err
                    errors.append(err)
                break
        return emissions, errors

    def _emit_plain(self, batch: list[dict[str, Any]], collect: bool) -> tuple[
        list[dict[str, Any]], list[ConfigCodeError]
    ]:
        if not batch:
            return [], []
        payload = json.dumps(json.dumps(batch, separators=(",", ":")))
        out = json.loads(self._eval(f"__kazi.emit({payload}, {'true' if collect else 'false'})"))
        errs = [self._error(e, "exception", batch) for e in out["errors"]]
        return out["emissions"], errs

    def _where_after_abort(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self._eval("__kazi.current()")))
        except Exception:  # noqa: BLE001 - the context may be unusable after an abort
            return {}

    def _error(self, e: dict[str, Any], kind: str, batch: list[dict[str, Any]]) -> ConfigCodeError:
        stack = str(e.get("stack") or "")
        file = self.spec.entry
        for m in _STACK_FILE.finditer(stack):
            path = m.group(1)
            if path in self.spec.files or path.startswith("extension-libs/"):
                file = f"{path}:{m.group(2)}"
                break
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
