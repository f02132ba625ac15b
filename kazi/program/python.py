"""Loading a ``tasks.py`` program: the Python twin of a CHT ``tasks.js``.

``tasks.py`` defines ``tasks = [...]`` (a list of definition dicts with the keys of ``tasks.js``:
``name``, ``title``, ``appliesTo``, ``events``, ``actions``, ..., callbacks as Python callables; see
:mod:`kazi.engine.emitter` for how callbacks receive ``this`` and the CHT globals) and optionally
``extension_libs = {"<id>": object}`` (what ``ctx.cht.v1.get_extension_lib(id)`` returns).

Isolation: every load imports the file afresh under a unique synthetic package name, so two programs (or
two versions of one program) never share modules and nothing is added to ``sys.path``.  Helper modules
next to ``tasks.py`` are imported *relatively* (``from . import helpers`` / ``from .helpers import x``);
an absolute ``import helpers`` is not found, by design.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import itertools
import sys
import threading
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from kazi.engine.emitter import PythonEmitter
from kazi.engine.permissions import ChtApi
from kazi.engine.utils import Utils
from kazi.errors import ConfigCodeError, Problem, ProgramError
from kazi.program import shape as shapes

__all__ = ["PythonEmissionSource", "PythonProgram", "load_python_program"]

TASKS_FILE = "tasks.py"
_COUNTER = itertools.count()
_LOCK = threading.Lock()


@dataclass
class PythonProgram:
    """A loaded ``tasks.py``: its definitions as exported, its extension libraries and module."""

    path: Path  # the tasks.py file
    definitions: Any  # normally a list of dicts; anything else is reported by the validator
    extension_libs: dict[str, Any] = field(default_factory=dict)
    module: ModuleType | None = None
    package: str = ""
    _emitter: PythonEmitter | None = None

    @property
    def shape(self) -> Any:
        """The definitions described for :mod:`kazi.program.validate` (callables become ``FUNCTION``)."""
        return shapes.from_python(self.definitions)

    def emitter(self) -> PythonEmitter:
        """The emitter over these definitions (built once; raises if the export is not a list)."""
        if self._emitter is None:
            if not isinstance(self.definitions, (list, tuple)):
                raise ProgramError(f"{self.path}: `tasks` must be a list of definitions")
            self._emitter = PythonEmitter(
                self.definitions, file=self.path.name, root=str(self.path.parent.resolve()),
            )
        return self._emitter

    def emission_source(
        self, settings: Mapping[str, Any] | None, schedules: Sequence[Any] | None,
    ) -> PythonEmissionSource:
        """What the engine calls: emissions for containers, given a computation's zone, instant and user."""
        return PythonEmissionSource(
            self.emitter(), settings or {}, list(schedules or []), self.extension_libs,
        )

    def unload(self) -> None:
        """Forget this program's modules (tests load many programs)."""
        if self.package:
            for name in [n for n in sys.modules if n == self.package or n.startswith(self.package + ".")]:
                del sys.modules[name]


class PythonEmissionSource:
    """The engine's emission source for a ``tasks.py`` program (same contract as the JS runtime's)."""

    def __init__(
        self, emitter: PythonEmitter, settings: Mapping[str, Any], schedules: list[Any],
        extension_libs: Mapping[str, Any],
    ) -> None:
        self.emitter = emitter
        self.settings = settings
        self.schedules = schedules
        self.extension_libs = extension_libs

    def emit(
        self, containers: list[dict[str, Any]], *, tz: str, now_ms: float, user: dict[str, Any] | None,
        roles: list[str], collect: bool,
    ) -> tuple[list[dict[str, Any]], list[ConfigCodeError]]:
        utils = Utils(now_ms, tz, self.schedules)
        cht = ChtApi(roles, self.settings, self.extension_libs)
        return self.emitter.emit(containers, utils, user, cht, collect=collect)


def _problem_from(exc: BaseException, file: Path, root: Path) -> Problem:
    """Locate an import failure at the innermost frame inside the program folder."""
    where = file.name
    if isinstance(exc, SyntaxError) and exc.filename:
        where = _rel(Path(exc.filename), root) + (f":{exc.lineno}" if exc.lineno else "")
    else:
        for frame in reversed(traceback.extract_tb(exc.__traceback__)):
            p = Path(frame.filename)
            if p.is_relative_to(root):
                where = f"{_rel(p, root)}:{frame.lineno}"
                break
    hint = "tasks.py must import on its own; use ctx.utils, ctx.user and ctx.cht only inside callbacks"
    if isinstance(exc, ImportError):
        hint = "import helper modules relatively: `from . import helpers` (the folder is not on sys.path)"
    return Problem("error", where, f"cannot import the file: {type(exc).__name__}: {exc}",
                   rule="file: import", hint=hint)


def _rel(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return str(path)


def load_python_program(path: Path) -> PythonProgram:
    """Import ``tasks.py`` of a program folder (or the file itself) in isolation.

    Raises :class:`ProgramError` when the file is missing or cannot be imported, or when ``tasks`` /
    ``extension_libs`` are absent or of the wrong kind; validating the definitions is the caller's job
    (``kazi.program.validate`` over :attr:`PythonProgram.shape`).
    """
    p = Path(path)
    file = p / TASKS_FILE if p.is_dir() else p
    if not file.is_file():
        raise ProgramError(
            f"{file}: no such file", [Problem("error", str(file), "file not found", rule="file")],
        )
    root = file.parent.resolve()
    digest = hashlib.sha1(str(file.resolve()).encode()).hexdigest()[:10]
    with _LOCK:
        package = f"_kazi_program_{digest}_{next(_COUNTER)}"
    pkg_spec = importlib.machinery.ModuleSpec(package, None, is_package=True)
    pkg_spec.submodule_search_locations = [str(root)]
    pkg = importlib.util.module_from_spec(pkg_spec)
    pkg.__path__ = [str(root)]
    spec = importlib.util.spec_from_file_location(f"{package}.tasks", file.resolve())
    if spec is None or spec.loader is None:  # pragma: no cover - a .py file always has a loader
        raise ProgramError(f"{file}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[package] = pkg
    sys.modules[spec.name] = module
    program = PythonProgram(path=file, definitions=shapes.UNDEFINED, module=module, package=package)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - any failure of program code is the program's problem
        program.unload()
        problem = _problem_from(exc, file, root)
        raise ProgramError(f"{file}: cannot be imported", [problem]) from exc
    if hasattr(module, "tasks"):
        tasks = module.tasks
        program.definitions = list(tasks) if isinstance(tasks, tuple) else tasks
    libs = getattr(module, "extension_libs", None)
    if libs is not None:
        if not isinstance(libs, Mapping):
            program.unload()
            raise ProgramError(f"{file}: cannot be loaded", [Problem(
                "error", file.name, "`extension_libs` must be a dict of library id -> object",
                rule="extension_libs")])
        program.extension_libs = dict(libs)
    return program
