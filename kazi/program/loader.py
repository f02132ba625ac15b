"""Reading a program folder (the layout cht-conf uses) into a :class:`Program`.

A folder holds ``tasks.js`` (with the modules it ``require``s, ``node_modules`` packages included)
or ``tasks.py``, plus ``app_settings.json`` / ``base_settings.json`` / ``settings.json`` (roles,
permissions), ``task-schedules.json`` and ``extension-libs/``. Requires are resolved here, once,
statically, as cht-conf's bundler does; V8 then only sees a closed set of files, which is also what
keeps program code away from the file system.

The settings' ``forms`` are the program's SMS forms (:mod:`kazi.sms.forms`), validated with the rest and
kept in :attr:`Program.sms_forms`.

For the web app a program may also carry ``forms/<id>.json`` (Kazi's form format, :mod:`kazi.program.forms`)
and ``translations/messages-<locale>.properties`` (:mod:`kazi.program.translations`); both are validated
with the tasks, and a program with a ``forms/`` folder gets a warning for each task action whose form is not
there.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from kazi.engine.budget import Budget
from kazi.errors import ConfigCodeError, Problem, ProgramError
from kazi.program import forms as kforms
from kazi.program import shape as shapes
from kazi.program import translations as ktr
from kazi.program.js.runtime import JsProgramSpec, JsRuntime
from kazi.program.limits import ProgramLimits
from kazi.sms import forms as ksms
from kazi.supervision import definitions as ksup

#: guards the lazy creation of programs' V8 runtimes (see Program._runtime)
_RUNTIME_LOCK = threading.Lock()
SETTINGS_FILES = ("app_settings.json", "base_settings.json", "settings.json")
_REQUIRE = re.compile(r"""\brequire\s*\(\s*(['"])((?:\\.|(?!\1).)+)\1\s*\)""")
_MAX_FILES = 5000


class EmissionSource(Protocol):
    """What the engine needs from a program: emissions for containers, nothing else."""

    def emit(
        self, containers: list[dict[str, Any]], *, tz: str, now_ms: float, user: dict[str, Any] | None,
        roles: list[str], collect: bool,
    ) -> tuple[list[dict[str, Any]], list[ConfigCodeError]]: ...


@dataclass
class Program:
    """A loaded, validated program."""

    path: Path
    kind: str  # "js" | "python"
    settings: dict[str, Any]
    schedules: list[Any]
    warnings: list[Problem] = field(default_factory=list)
    js_spec: JsProgramSpec | None = None
    python_source: Any = None  # EmissionSource for tasks.py programs
    _js_runtime: JsRuntime | None = None
    forms: dict[str, kforms.Form] = field(default_factory=dict)  # by form id (forms/<id>.json)
    translations: dict[str, dict[str, str]] = field(default_factory=dict)  # locale -> key -> text
    sms_forms: dict[str, ksms.SmsForm] = field(default_factory=dict)  # by upper-case code (settings `forms`)
    supervision: ksup.Supervision = ksup.EMPTY  # settings `supervision` (docs/supervision.md)
    limits: ProgramLimits | None = None  # the runtime's limits (None: the environment's, ProgramLimits.from_env)

    @property
    def default_locale(self) -> str:
        """``app_settings.locale`` (CHT's default language), else ``en``."""
        locale = self.settings.get("locale")
        return locale if isinstance(locale, str) and ktr.is_locale(locale) else ktr.DEFAULT_LOCALE

    @property
    def roles(self) -> dict[str, Any]:
        roles = self.settings.get("roles")
        return roles if isinstance(roles, dict) else {}

    @property
    def permissions(self) -> dict[str, Any]:
        perms = self.settings.get("permissions")
        return perms if isinstance(perms, dict) else {}

    @property
    def js_runtime(self) -> JsRuntime | None:
        """The program's V8 runtime (created on first use); ``None`` for a Python program."""
        if self.kind != "js":
            return None
        return self._runtime()

    def _runtime(self) -> JsRuntime:
        """Create the runtime once, whichever threads ask at the same moment: a second runtime made by a
        racing thread would be dropped, and a V8 context destroyed from a garbage-collection pass in another
        thread brings the process down (seen: a server hit by 200 requests in its first second)."""
        if self._js_runtime is None:
            with _RUNTIME_LOCK:
                if self._js_runtime is None:
                    assert self.js_spec is not None
                    self._js_runtime = JsRuntime.with_limits(self.js_spec, self.limits or ProgramLimits.from_env())
        return self._js_runtime

    def emission_source(self, budget: Budget | None = None) -> EmissionSource:
        """The program's emitter (one JS runtime per Program object, created on first use); ``budget``: what
        failing code may cost the computation it is used for (JavaScript programs)."""
        if self.kind == "python":
            return self.python_source  # type: ignore[no-any-return]
        return _JsSource(self._runtime(), budget)

    def fresh_copy(self) -> Program:
        """A copy with its own JS runtime (for another thread or process)."""
        return Program(self.path, self.kind, self.settings, self.schedules, self.warnings, self.js_spec,
                       self.python_source, forms=self.forms, translations=self.translations,
                       sms_forms=self.sms_forms, supervision=self.supervision, limits=self.limits)


class _JsSource:
    def __init__(self, runtime: JsRuntime, budget: Budget | None = None) -> None:
        self.runtime = runtime
        self.budget = budget
        self._begun: tuple[Any, ...] | None = None

    def emit(
        self, containers: list[dict[str, Any]], *, tz: str, now_ms: float, user: dict[str, Any] | None,
        roles: list[str], collect: bool,
    ) -> tuple[list[dict[str, Any]], list[ConfigCodeError]]:
        self.runtime.begin(tz=tz, now_ms=now_ms, user=user, roles=roles, budget=self.budget)
        return self.runtime.emit(containers, collect=collect, budget=self.budget)


# -- reading files ----------------------------------------------------------------------------------
def _read_json(path: Path, problems: list[Problem], root: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem("error", _rel(path, root), f"cannot read: {exc}", rule="file"))
    except json.JSONDecodeError as exc:
        problems.append(Problem("error", f"{_rel(path, root)}:{exc.lineno}", f"invalid JSON at line {exc.lineno}, "
                                f"column {exc.colno}: {exc.msg}", rule="file", hint="fix the JSON syntax"))
    return None


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def read_settings(root: Path, problems: list[Problem]) -> dict[str, Any]:
    """The program's app settings: the first of app_settings.json, base_settings.json, settings.json."""
    for name in SETTINGS_FILES:
        p = root / name
        if p.is_file():
            data = _read_json(p, problems, root)
            if data is None:
                return {}
            if not isinstance(data, dict):
                problems.append(Problem("error", name, "settings must be a JSON object", rule="settings"))
                return {}
            return data
    return {}


def settings_file(root: Path) -> str:
    """The name of the program's settings file (the first of :data:`SETTINGS_FILES` present)."""
    return next((name for name in SETTINGS_FILES if (root / name).is_file()), SETTINGS_FILES[0])


def read_schedules(root: Path, settings: dict[str, Any], problems: list[Problem]) -> list[Any]:
    p = root / "task-schedules.json"
    if p.is_file():
        data = _read_json(p, problems, root)
        if data is None:
            return []
        if not isinstance(data, list):
            problems.append(Problem("error", "task-schedules.json", "must be a JSON array of schedules",
                                    rule="schedules"))
            return []
        return data
    tasks = settings.get("tasks")
    if isinstance(tasks, dict) and isinstance(tasks.get("schedules"), list):
        return list(tasks["schedules"])
    return []


def form_paths(root: Path) -> list[Path]:
    """The program's form files: ``forms/*.json`` (CHT's ``forms/app/*.xml`` sub-folders are not Kazi's)."""
    base = root / kforms.FORMS_DIR
    return sorted(p for p in base.glob("*.json") if p.is_file()) if base.is_dir() else []


def read_forms(root: Path, problems: list[Problem]) -> dict[str, kforms.Form]:
    """Every valid form of the folder by id; the problems of the others are added to ``problems``."""
    out: dict[str, kforms.Form] = {}
    for path in form_paths(root):
        before = len(problems)
        data = _read_json(path, problems, root)
        for p in problems[before:]:
            p.form = path.stem
        if data is None and len(problems) > before:
            continue
        form, found = kforms.parse_form(data, path.stem, _rel(path, root))
        problems.extend(found)
        if form is not None:
            out[form.id] = form
    return out


def translation_paths(root: Path) -> list[Path]:
    base = root / ktr.TRANSLATIONS_DIR
    return sorted(p for p in base.glob("messages-*.properties") if p.is_file()) if base.is_dir() else []


def read_translations(root: Path, problems: list[Problem]) -> dict[str, dict[str, str]]:
    """Messages by locale, from ``translations/messages-<locale>.properties``."""
    out: dict[str, dict[str, str]] = {}
    for path in translation_paths(root):
        locale = ktr.locale_of_file(path.name)
        if locale is None or not ktr.is_locale(locale):
            problems.append(Problem("warning", _rel(path, root), f"{locale!r} is not a locale name such as en, "
                                    "ny or pt-BR: the file is not used", rule="translations: messages-<locale>",
                                    hint="name the file messages-<locale>.properties"))
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem("error", _rel(path, root), f"cannot read: {exc}", rule="file",
                                    hint="save the file as UTF-8"))
            continue
        out[locale] = ktr.parse_properties(text)
    return out


def read_extension_libs(root: Path, problems: list[Problem]) -> dict[str, str]:
    libs: dict[str, str] = {}
    base = root / "extension-libs"
    if base.is_dir():
        for p in sorted(base.rglob("*")):
            if p.is_file():
                try:
                    libs[p.relative_to(base).as_posix()] = p.read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError) as exc:
                    problems.append(Problem("error", _rel(p, root), f"cannot read: {exc}", rule="file"))
    return libs


# -- static require resolution (node's algorithm, confined to the program folder) ------------------------
class _Resolver:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.files: dict[str, str] = {}
        self.resolved: dict[str, str] = {}

    def _inside(self, p: Path) -> bool:
        try:
            p.resolve().relative_to(self.root)
            return True
        except ValueError:
            return False

    def _as_file(self, p: Path) -> Path | None:
        for cand in (p, p.with_name(p.name + ".js"), p.with_name(p.name + ".json")):
            if cand.is_file() and self._inside(cand):
                return cand
        return None

    def _as_dir(self, p: Path) -> Path | None:
        if not p.is_dir():
            return None
        pkg = p / "package.json"
        if pkg.is_file():
            try:
                meta = json.loads(pkg.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                meta = {}
            # CommonJS entry points only: "browser" (as a web bundler picks) then "main"; never "module" (ESM).
            for key in ("browser", "main"):
                target = meta.get(key) if isinstance(meta, dict) else None
                if isinstance(target, str) and target:
                    hit = self._as_file(p / target) or self._as_index(p / target)
                    if hit:
                        return hit
        return self._as_index(p)

    def _as_index(self, p: Path) -> Path | None:
        for name in ("index.js", "index.json"):
            cand = p / name
            if cand.is_file() and self._inside(cand):
                return cand
        return None

    def resolve(self, request: str, from_file: Path) -> Path | None:
        if request.startswith("/"):
            return None  # an absolute file system path: never part of the program
        if request.startswith(("./", "../")) or request in (".", ".."):
            base = from_file.parent / request
            # Node: a trailing slash ("./tasks/", ".", "x/..") asks for the folder, never a file beside it.
            if request.endswith(("/", "/.", "/..")) or request in (".", ".."):
                return self._as_dir(base)
            return self._as_file(base) or self._as_dir(base)
        d = from_file.parent
        while True:
            nm = d / "node_modules" / request
            hit = self._as_file(nm) or self._as_dir(nm)
            if hit:
                return hit
            if d.resolve() == self.root or d == d.parent:
                return None
            d = d.parent

    def key(self, p: Path) -> str:
        return PurePosixPath(p.resolve().relative_to(self.root)).as_posix()

    def walk(self, entry: Path, problems: list[Problem]) -> None:
        todo = [entry]
        while todo:
            p = todo.pop()
            k = self.key(p)
            if k in self.files:
                continue
            if len(self.files) >= _MAX_FILES:
                problems.append(Problem("error", k, f"more than {_MAX_FILES} modules required", rule="require"))
                return
            try:
                src = p.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                problems.append(Problem("error", k, f"cannot read: {exc}", rule="file"))
                continue
            self.files[k] = src
            if p.suffix == ".json":
                continue
            for m in _REQUIRE.finditer(src):
                request = m.group(2)
                target = self.resolve(request, p)
                if target is None:
                    # Not an error yet: like a bundler's unresolved optional require, it throws when called.
                    continue
                self.resolved[f"{k}\u0000{request}"] = self.key(target)
                todo.append(target)


def _js_spec(root: Path, settings: dict[str, Any], schedules: list[Any], problems: list[Problem]) -> JsProgramSpec:
    resolver = _Resolver(root)
    resolver.walk(root / "tasks.js", problems)
    return JsProgramSpec(
        files=resolver.files, resolved=resolver.resolved, entry="tasks.js",
        extension_libs=read_extension_libs(root, problems), settings=settings, schedules=schedules,
    )


def _describe_js(spec: JsProgramSpec) -> tuple[Any, list[Problem]]:
    runtime = JsRuntime(spec, time_limit_s=10.0)
    try:
        syntax = runtime.syntax_errors()
        if syntax:
            return None, [Problem("error", where, f"cannot parse the file: {msg}",
                                  rule="tasks.js must require() cleanly", hint="fix the JavaScript syntax")
                          for where, msg in syntax]
        shape, error = runtime.describe()
    finally:
        runtime.close()
    if error is None:
        return shapes.from_json(shape), []
    where = str(error.get("location") or spec.entry)
    name = error.get("name")
    msg = str(error.get("message"))
    hint = "tasks.js must evaluate on its own; use Utils, user, cht and c only inside functions"
    if name == "ReferenceError":
        hint = ("CHT globals (Utils, user, cht, c) exist only while tasks run: move this use inside a "
                "function such as appliesIf or resolvedIf")
    what = f"{name}: {msg}" if name else msg
    return None, [Problem("error", where, f"cannot evaluate the file: {what}",
                          rule="tasks.js must require() cleanly", hint=hint)]


def inspect_tasks(program_dir: Path) -> list[Problem]:
    """Every problem of a program folder's task definitions (errors and warnings), all at once."""
    from kazi.program.validate import validate_tasks

    root = Path(program_dir)
    problems: list[Problem] = []
    settings = read_settings(root, problems)
    schedules = read_schedules(root, settings, problems)
    shape: Any = None
    tasks_file = "tasks.js"
    if (root / "tasks.js").is_file():
        spec = _js_spec(root, settings, schedules, problems)
        shape, errs = _describe_js(spec)
        problems.extend(errs)
        if shape is not None:
            problems.extend(validate_tasks(shape, tasks_file))
    elif (root / "tasks.py").is_file():
        from kazi.program.python import load_python_program

        tasks_file = "tasks.py"
        try:
            py = load_python_program(root)
        except ProgramError as exc:
            problems.extend(exc.problems or [Problem("error", "tasks.py", str(exc), rule="file")])
        else:
            shape = shapes.from_python(py.definitions)
            problems.extend(validate_tasks(shape, tasks_file))
    else:
        problems.append(Problem("error", str(root), "no tasks.js or tasks.py in the program folder",
                                rule="file", hint="point Kazi at a cht-conf project folder"))
    read_forms(root, problems)
    read_translations(root, problems)
    problems.extend(ksms.parse_sms_forms(settings, settings_file(root))[1])
    problems.extend(_supervision_problems(root, settings, shape))
    if shape is not None and (root / kforms.FORMS_DIR).is_dir():
        # only programs that carry Kazi forms are told which task forms the web app cannot open
        problems.extend(kforms.action_form_problems(shape, [p.stem for p in form_paths(root)], tasks_file))
    return problems


def _supervision_problems(root: Path, settings: dict[str, Any], shape: Any) -> list[Problem]:
    """Problems of the settings' ``supervision`` (docs/supervision.md), its names checked against the task definitions,
    the program's forms and SMS form codes (when the tasks could be described)."""
    names = titles = forms = None
    kazi_forms = {p.stem for p in form_paths(root)} if (root / kforms.FORMS_DIR).is_dir() else None
    if shape is not None:
        names, titles, forms = ksup.shape_vocabulary(shape)
        forms |= kazi_forms or set()
        codes = settings.get("forms")
        if isinstance(codes, dict):
            forms |= {str(k) for k in codes}
    return ksup.parse_supervision(settings, settings_file(root), task_names=names, title_keys=titles,
                                  form_ids=forms, kazi_forms=kazi_forms)[1]


def check_program(program_dir: Path, *, consequence: str = "") -> list[Problem]:
    """The warnings of a valid program folder; :class:`ProgramError` listing every error otherwise.

    ``consequence`` completes the error message (e.g. "the previous program stays").
    """
    root = Path(program_dir)
    if not root.is_dir():
        raise ProgramError(f"{root}: not a folder")
    problems = inspect_tasks(root)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        tail = f"; {consequence}" if consequence else ""
        raise ProgramError(f"{root}: the program has {len(errors)} error(s){tail}", errors)
    return [p for p in problems if p.severity != "error"]


def load_program(program_dir: Path) -> Program:
    """Load and validate a program folder; raise :class:`ProgramError` listing every error."""
    root = Path(program_dir)
    warnings = check_program(root)
    scratch: list[Problem] = []
    settings = read_settings(root, scratch)
    schedules = read_schedules(root, settings, scratch)
    extras: dict[str, Any] = {"forms": read_forms(root, scratch), "translations": read_translations(root, scratch),
                              "sms_forms": ksms.parse_sms_forms(settings, settings_file(root))[0],
                              "supervision": ksup.parse_supervision(settings, settings_file(root))[0]}
    if (root / "tasks.js").is_file():
        spec = _js_spec(root, settings, schedules, scratch)
        return Program(root, "js", settings, schedules, warnings, js_spec=spec, **extras)
    from kazi.program.python import load_python_program

    py = load_python_program(root)
    return Program(root, "python", settings, schedules, warnings,
                   python_source=py.emission_source(settings, schedules), **extras)
