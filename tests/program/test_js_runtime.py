"""The V8 runtime for ``tasks.js`` programs: what config code sees (``Utils``, ``cht.v1``, ``user``) and
what it cannot do (reach outside the sandbox, run forever, eat the memory, take the process down).

Values are observed from *inside* task code: the ``probe`` fixture evaluates expressions in a
``modifyContent`` callback and puts each result in the action content. ``Utils`` edge cases are cht-nootils 4.2.0's
observed values; ``cht.v1`` must agree with :mod:`kazi.engine.permissions`, so that a
``tasks.js`` and its ``tasks.py`` twin answer alike. The sandbox tests use small limits (0.5 s, 64 MiB)
so that the suite stays fast.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from kazi.engine.budget import Budget
from kazi.engine.permissions import has_any_permission, has_permissions
from kazi.errors import ComputationInterrupted, ConfigCodeError
from kazi.program.js.runtime import JsProgramSpec, JsRuntime
from kazi.program.limits import ProgramLimits
from kazi.program.loader import Program, load_program

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "js_programs"
PROBE = FIXTURES / "probe"
SANDBOX = FIXTURES / "sandbox"

#: 2025-03-10T09:46:40Z
NOW_MS = 1_741_600_000_000
TIME_LIMIT_S = 0.5
MEMORY_LIMIT = 64 * 1024 * 1024


def probe_values(program: Program, exprs: list[str], *, tz: str = "America/New_York", roles: list[str] | None = None,
                 user: dict[str, Any] | None = None, now_ms: int = NOW_MS) -> list[str]:
    """Each expression's value inside the program's task code, as the probe's `show` renders it."""
    container = {"contact": {"_id": "probe", "type": "person", "probe": exprs}, "reports": []}
    emissions, errors = program.emission_source().emit(
        [container], tz=tz, now_ms=now_ms, user=user, roles=roles or [], collect=False)
    assert not errors
    values: list[str] = emissions[0]["actions"][0]["content"]["results"]
    return values


def js(value: Any) -> str:
    """A Python value as a JavaScript literal."""
    return json.dumps(value)


@pytest.fixture(scope="module")
def probe() -> Program:
    return load_program(PROBE)


# -- Utils (cht-nootils 4.2.0 semantics, the same values as tests/engine/test_utils.py) ----------------------
UTILS_CASES = [
    # addDate: calendar days in local time (DST-safe), fractions truncated, local midnight, a new Date
    ("Utils.addDate(new Date('2024-03-09T12:00'), 2).toISOString()", '"2024-03-11T04:00:00.000Z"'),
    ("Utils.addDate(new Date('2024-03-09T12:00'), 1.5).toISOString()", '"2024-03-10T05:00:00.000Z"'),
    # the *sum* is truncated: setDate(11 + -1.5) is setDate(9)
    ("Utils.addDate(new Date('2024-03-11T12:00'), -1.5).toISOString()", '"2024-03-09T05:00:00.000Z"'),
    ("Utils.addDate(Date.parse('2024-03-09T12:00'), 2)", "throws TypeError: date.getTime is not a function"),
    ("Utils.addDate(null, 1).toISOString()", '"2025-03-11T04:00:00.000Z"'),
    ("Utils.addDate(undefined, 0).toISOString()", '"2025-03-10T04:00:00.000Z"'),
    ("Utils.addDate(new Date(NaN), 1)", "Invalid Date"),
    ("(function () { var d = new Date(2024, 0, 1, 12); var r = Utils.addDate(d, 0); "
     "return [r !== d, d.getHours(), r.getHours()]; })()", "[true,12,0]"),
    # getLmpDate: weeks = fields.last_menstrual_period || 4
    ("Utils.getLmpDate({reported_date: Date.parse('2024-03-10T15:00'), fields: {last_menstrual_period: 10}})"
     ".toISOString()", '"2023-12-31T05:00:00.000Z"'),
    ("Utils.getLmpDate({reported_date: Date.parse('2024-03-10T15:00'), fields: {}}).toISOString()",
     '"2024-02-11T05:00:00.000Z"'),
    ("Utils.getLmpDate({reported_date: Date.parse('2024-03-10T15:00'), fields: {last_menstrual_period: 0}})"
     ".toISOString()", '"2024-02-11T05:00:00.000Z"'),
    ("Utils.getLmpDate({reported_date: 0})",
     "throws TypeError: Cannot read properties of undefined (reading 'last_menstrual_period')"),
    # getSchedule: the first schedule whose name === name (task-schedules.json of the probe)
    ("Utils.getSchedule('immunization').events[0].days", "42"),
    ("Utils.getSchedule('missing')", "undefined"),
    ("Utils.getSchedule(undefined)", "undefined"),
    ("Utils.getSchedule(null).events", "[]"),
    # getMostRecentReport / getMostRecentTimestamp: not deleted, strictly newer (ties keep the earlier)
    ("Utils.getMostRecentReport(c.contact.reports, 'a')._id", '"r1"'),
    ("Utils.getMostRecentReport(c.contact.reports, ['a', 'b'])._id", '"r3"'),
    ("Utils.getMostRecentReport(c.contact.reports, 'c')", "null"),
    ("Utils.getMostRecentReport(c.contact.reports, 'a', {n: 2})._id", '"r2"'),
    ("Utils.getMostRecentReport(c.contact.reports, 'a', {n: '2'})", "null"),
    ("Utils.getMostRecentTimestamp(c.contact.reports, 'a')", "10"),
    ("Utils.getMostRecentTimestamp(c.contact.reports, 'c')", "null"),
    # isFormSubmittedInWindow: inclusive both ends, count strictly exceeded, deleted reports count
    ("Utils.isFormSubmittedInWindow([{form: 'a', reported_date: 5, fields: {follow_up_count: 2}}], 'a', 5, 5, 2)",
     "false"),
    ("Utils.isFormSubmittedInWindow([{form: 'a', reported_date: 5, fields: {follow_up_count: 3}}], 'a', 5, 5, 2)",
     "true"),
    ("Utils.isFormSubmittedInWindow([{form: 'a', reported_date: 5, deleted: true}], 'a', 5, 5)", "true"),
    ("Utils.isFormSubmittedInWindow([{form: 'a', reported_date: 5}], 'a', 6, 9)", "false"),
    ("Utils.isFormSubmittedInWindow([{form: 'a', reported_date: 9}], 'a', 6, 9)", "true"),
    ("Utils.isFormSubmittedInWindow([{form: 'a', reported_date: 5}], ['a'], 0, 9)", "false"),
    # isFirstReportNewer
    ("Utils.isFirstReportNewer({reported_date: 1}, {reported_date: 1})", "false"),
    ("Utils.isFirstReportNewer({reported_date: 2}, {reported_date: 1})", "true"),
    ("Utils.isFirstReportNewer(null, {reported_date: 1})", "null"),
    ("Utils.isFirstReportNewer({reported_date: 1}, {})", "true"),
    # isDateValid
    ("[Utils.isDateValid(new Date('x')), Utils.isDateValid(new Date())]", "[false,true]"),
    ("Utils.isDateValid(5)", "throws TypeError: date.getTime is not a function"),
    # getField / fieldsMatch: falsy leaves as they are, missing steps undefined, === comparison
    ("Utils.getField({fields: {a: {b: 0}}}, 'a.b')", "0"),
    ("Utils.getField({fields: {a: {b: ''}}}, 'a.b')", '""'),
    ("Utils.getField({fields: {a: {b: 0}}}, 'a.c')", "undefined"),
    ("Utils.getField({fields: {a: null}}, 'a.b.c')", "undefined"),
    ("Utils.getField({}, 'a')", "undefined"),
    ("Utils.getField(null, 'a')", "throws TypeError: Cannot read properties of null (reading 'fields')"),
    ("[Utils.fieldsMatch({fields: {n: 2}}, {n: 2}), Utils.fieldsMatch({fields: {n: 2}}, {n: '2'})]", "[true,false]"),
    # the rest
    ("[Utils.isTimely(), Utils.isTimely(new Date(0), {})]", "[true,true]"),
    ("Utils.MS_IN_DAY", "86400000"),
    ("Utils.now().getTime()", str(NOW_MS)),
]
REPORTS = [
    {"_id": "r1", "form": "a", "reported_date": 10, "fields": {"n": 1}},
    {"_id": "r2", "form": "a", "reported_date": 10, "fields": {"n": 2}},
    {"_id": "r3", "form": "b", "reported_date": 20},
    {"_id": "r4", "form": "a", "reported_date": 30, "deleted": True},
]


def test_utils_edge_cases(probe: Program) -> None:
    container = {"contact": {"_id": "probe", "type": "person", "probe": [e for e, _ in UTILS_CASES],
                             "reports": REPORTS}, "reports": []}
    emissions, _ = probe.emission_source().emit(
        [container], tz="America/New_York", now_ms=NOW_MS, user=None, roles=[], collect=False)
    got = emissions[0]["actions"][0]["content"]["results"]
    wrong = [f"{e}\n    got:  {g}\n    want: {w}" for (e, w), g in zip(UTILS_CASES, got, strict=True) if g != w]
    assert not wrong, "\n".join(wrong)


def test_add_date_midnight_is_local_to_the_computation_zone(probe: Program) -> None:
    expr = "Utils.addDate(new Date(Date.UTC(2025, 8, 27, 13)), 1).toISOString()"
    # 2025-09-27 13:00Z is the 28th in Auckland (DST starts that night) and the 27th in New York.
    assert probe_values(probe, [expr], tz="Pacific/Auckland") == ['"2025-09-28T11:00:00.000Z"']
    assert probe_values(probe, [expr], tz="America/New_York") == ['"2025-09-28T04:00:00.000Z"']


# -- user and cht.v1 (permissions as kazi/engine/permissions.py answers them) -------------------------------
def test_user_global_is_the_users_contact(probe: Program) -> None:
    user = {"_id": "chw-1", "name": "Amina", "parent": {"_id": "hc-1"}}
    assert probe_values(probe, ["user.parent._id", "typeof user"], user=user) == ['"hc-1"', '"object"']
    assert probe_values(probe, ["typeof user"], user=None) == ['"undefined"']


PERMISSION_CASES: list[tuple[Any, Any]] = [
    # (permissions, roles)
    ("can_trace", ["chw"]),
    ("can_trace", ["supervisor"]),
    (["can_view_tasks", "can_trace"], ["chw"]),
    (["can_view_tasks", "can_verify"], ["chw"]),
    (["can_view_tasks", "can_verify"], ["chw", "supervisor"]),
    ("!can_verify", ["chw"]),
    ("!can_verify", ["supervisor"]),
    (["can_trace", "!can_verify"], ["chw", "supervisor"]),
    ("!can_unknown", ["chw"]),
    ("!can_nobody", ["chw"]),
    ("can_nobody", ["chw"]),
    ("can_unknown", ["chw"]),
    ("can_ghost", ["ghost"]),  # a role missing from settings.roles keeps its permissions (cht-core 4.11)
    ("can_view_tasks", ["ghost"]),
    ("can_text", ["chw"]),  # a permission configured as a string: substring test, as JavaScript's includes
    ("can_verify", ["_admin"]),
    ("can_unknown", ["admin"]),
    (["can_verify", "!can_trace"], ["_admin"]),
    ([], ["chw"]),
    ("", ["chw"]),
    ("", ["_admin"]),
    (5, ["chw"]),
    (None, ["chw"]),
    ([5], ["chw"]),
    ("can_trace", [5, "chw"]),
]
ANY_CASES: list[tuple[Any, Any]] = [
    ([["can_verify"], ["can_trace"]], ["chw"]),
    ([["can_verify"], ["can_trace", "!can_verify"]], ["chw", "supervisor"]),
    ([["can_verify"]], ["manager"]),
    ([["can_trace"], "can_verify"], ["chw"]),  # a group that is not an array: false
    ([], ["chw"]),
    ([[]], ["chw"]),
    ("can_trace", ["chw"]),
    ([["can_verify"], ["!can_trace"]], ["admin"]),
    ([["!can_verify"], ["can_x", "!can_trace"]], ["_admin"]),
    ([["can_trace"], [5]], ["chw"]),
]


def _expected(fn: Any, perms: Any, roles: Any, settings: dict[str, Any]) -> str:
    try:
        return "true" if fn(perms, roles, settings) else "false"
    except TypeError:
        return "throws TypeError"


def test_permissions_agree_with_the_python_engine(probe: Program) -> None:
    settings = json.loads((PROBE / "app_settings.json").read_text())
    cases: list[tuple[str, Any, Any, Any]] = [("hasPermissions", has_permissions, p, r) for p, r in PERMISSION_CASES]
    cases += [("hasAnyPermission", has_any_permission, p, r) for p, r in ANY_CASES]
    exprs = [f"cht.v1.{name}({js(p)}, {js(r)})" for name, _, p, r in cases]
    got = [g.split(":")[0] for g in probe_values(probe, exprs)]
    want = [_expected(fn, p, r, settings) for _, fn, p, r in cases]
    wrong = [f"{e}: got {g}, Python says {w}" for e, g, w in zip(exprs, got, want, strict=True) if g != w]
    assert not wrong, "\n".join(wrong)
    # and the answers themselves, for the cases that matter most
    assert dict(zip(exprs, got, strict=True))['cht.v1.hasPermissions("!can_verify", ["chw"])'] == "true"
    assert dict(zip(exprs, got, strict=True))['cht.v1.hasPermissions("!can_verify", ["supervisor"])'] == "false"
    assert dict(zip(exprs, got, strict=True))['cht.v1.hasPermissions("can_verify", ["_admin"])'] == "true"


def test_permission_roles_come_from_the_user_or_the_session(probe: Program) -> None:
    exprs = [
        "cht.v1.hasPermissions('can_trace')",  # the session's roles
        "cht.v1.hasPermissions('can_verify')",
        "cht.v1.hasPermissions('can_verify', {roles: ['supervisor']})",  # webapp form: a user
        "cht.v1.hasPermissions('can_verify', ['supervisor'])",  # documented form: a roles array
        "cht.v1.hasPermissions('can_trace', {name: 'no roles'})",  # no roles: the session's
        "cht.v1.hasPermissions('can_trace', {roles: 'chw'})",  # roles not an array: the session's
        "cht.v1.hasPermissions('x', null, {permissions: {x: ['chw']}})",  # settings override
        "cht.v1.hasPermissions('x', null, {x: ['chw']})",  # the permissions map itself
        "cht.v1.hasPermissions('can_trace', null, {})",  # an empty override is no override
        "cht.v1.hasAnyPermission([['can_verify'], ['can_trace']])",
        "cht.v1.hasAnyPermission([['can_verify']], ['supervisor'])",
    ]
    assert probe_values(probe, exprs, roles=["chw"]) == [
        "true", "false", "true", "true", "true", "true", "true", "true", "true", "true", "true"]
    assert probe_values(probe, exprs[:2], roles=["_admin"]) == ["true", "true"]
    assert probe_values(probe, exprs[:2], roles=["ghost"]) == ["false", "false"]


def test_no_permission_settings_answer_false_even_for_admins(probe: Program, tmp_path: Path) -> None:
    folder = tmp_path / "probe"
    shutil.copytree(PROBE, folder)
    (folder / "app_settings.json").unlink()
    bare = load_program(folder)
    exprs = ["cht.v1.hasPermissions('anything')", "cht.v1.hasPermissions('!anything')",
             "cht.v1.hasAnyPermission([['anything']])"]
    assert probe_values(bare, exprs, roles=["_admin"]) == ["false", "false", "false"]
    assert probe_values(bare, ["cht.v1.hasPermissions('x', ['chw'], {permissions: {x: ['chw']}})"]) == ["true"]


def test_extension_libs(probe: Program) -> None:
    exprs = [
        "cht.v1.getExtensionLib('average.js')([1, 2, 6])",
        "cht.v1.getExtensionLib('tools/units.js').kgToG(2.5)",
        "cht.v1.getExtensionLib('missing.js')",
        "cht.v1.getExtensionLib('broken.js')",  # threw while loading
        "cht.v1.getExtensionLib('average')",  # ids are file names, extension included
        "cht.v1.getExtensionLib('average.js') === cht.v1.getExtensionLib('average.js')",
    ]
    assert probe_values(probe, exprs) == ["3", "2500", "undefined", "undefined", "undefined", "true"]


# -- the sandbox -------------------------------------------------------------------------------------------
def test_no_way_out_of_the_sandbox(probe: Program) -> None:
    names = ["require", "process", "module", "exports", "global", "fetch", "XMLHttpRequest", "WebSocket",
             "importScripts", "setTimeout", "setInterval", "setImmediate", "clearTimeout", "queueMicrotask",
             "FinalizationRegistry", "WebAssembly", "Deno", "Bun", "Buffer", "__timer_manager", "__TimerManager"]
    got = probe_values(probe, [f"typeof {name}" for name in names] + ["typeof Atomics.waitAsync"])
    assert got == ['"undefined"'] * (len(names) + 1), dict(zip([*names, "Atomics.waitAsync"], got, strict=True))
    # the module's own require cannot reach Node built-ins either (see test_loader for the require rules)
    assert probe_values(probe, ["(function () { try { return new Function('return require')(); } "
                                "catch (e) { return e.name; } })()"]) == ['"ReferenceError"']


def sandbox_runtime() -> tuple[Program, JsRuntime]:
    program = load_program(SANDBOX)
    assert program.js_spec is not None
    runtime = JsRuntime(program.js_spec, time_limit_s=TIME_LIMIT_S, memory_limit=MEMORY_LIMIT)
    runtime.begin(tz="Africa/Nairobi", now_ms=NOW_MS, user=None, roles=[])
    return program, runtime


def people(*behaviours: str) -> list[dict[str, Any]]:
    return [{"contact": {"_id": f"c{i}-{b}", "type": "person", "behaviour": b}, "reports": []}
            for i, b in enumerate(behaviours)]


def ids(emissions: list[dict[str, Any]]) -> list[str]:
    return sorted(e["_id"] for e in emissions)


@pytest.fixture()
def sandbox() -> Any:
    _, runtime = sandbox_runtime()
    yield runtime
    runtime.close()


def test_a_runaway_loop_is_a_located_timeout(sandbox: JsRuntime) -> None:
    with pytest.raises(ConfigCodeError) as caught:
        sandbox.emit(people("ok", "loop", "ok"))
    err = caught.value
    assert err.kind == "timeout"
    assert err.file == "rules.js"  # where the definition was written (a timeout has no stack)
    assert (err.definition_index, err.definition_name) == (1, "sandbox.misbehave")
    assert err.callback == "appliesIf"
    assert err.contact_id == "c1-loop"
    assert "0.5 s" in err.message
    # the runtime goes on: the next batch computes
    emissions, errors = sandbox.emit(people("ok"))
    assert ids(emissions) == ["c0-ok~0~sandbox.harmless", "c0-ok~0~sandbox.misbehave"] and not errors


def test_collect_skips_the_runaway_container_only(sandbox: JsRuntime) -> None:
    emissions, errors = sandbox.emit(people("ok", "loop", "ok", "loop", "ok"), collect=True)
    assert ids(emissions) == sorted(f"c{i}-ok~0~sandbox.{d}" for i in (0, 2, 4) for d in ("harmless", "misbehave"))
    assert [(e.kind, e.contact_id, e.definition_index) for e in errors] == [
        ("timeout", "c1-loop", 1), ("timeout", "c3-loop", 1)]


def test_a_memory_bomb_is_a_memory_error_and_the_process_lives(sandbox: JsRuntime) -> None:
    # filling 64 MiB takes V8 about 0.3 s, near the 0.5 s limit on a busy machine: time is not what this tests
    sandbox.time_limit_s = 10.0
    with pytest.raises(ConfigCodeError) as caught:
        sandbox.emit(people("memory"))
    err = caught.value
    assert (err.kind, err.contact_id, err.definition_name, err.callback) == (
        "memory", "c0-memory", "sandbox.misbehave", "appliesIf")
    assert "64 MiB" in err.message
    emissions, errors = sandbox.emit(people("ok", "memory", "ok"), collect=True)
    assert ids(emissions) == sorted(f"c{i}-ok~0~sandbox.{d}" for i in (0, 2) for d in ("harmless", "misbehave"))
    assert [(e.kind, e.contact_id) for e in errors] == [("memory", "c1-memory")]
    assert len(sandbox.emit(people("ok"))[0]) == 2


def test_a_thrown_error_names_file_line_definition_callback_and_contact(sandbox: JsRuntime) -> None:
    with pytest.raises(ConfigCodeError) as caught:
        sandbox.emit(people("ok", "throw"))
    err = caught.value
    assert err.kind == "exception"
    assert err.file == "rules.js:29"
    assert (err.definition_index, err.definition_name, err.callback, err.contact_id) == (
        1, "sandbox.misbehave", "resolvedIf", "c1-throw")
    assert err.message == "cannot resolve c1-throw"
    assert str(err) == ('rules.js:29, definition 1 ("sandbox.misbehave"), resolvedIf, contact c1-throw: '
                        'exception: cannot resolve c1-throw')
    emissions, errors = sandbox.emit(people("throw", "ok"), collect=True)
    assert ids(emissions) == ["c1-ok~0~sandbox.harmless", "c1-ok~0~sandbox.misbehave"]
    assert [e.contact_id for e in errors] == ["c0-throw"]


# Closing a V8 context while a cancelled call is still queued makes mini-racer report, from its callback
# thread, that its event loop is closed: noise of the recovery, not a failure.
quiet_recovery = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@quiet_recovery
@pytest.mark.parametrize("behaviour", ["promise", "await"])
def test_runaway_code_after_the_call_returned_is_caught_too(sandbox: JsRuntime, behaviour: str) -> None:
    # A promise callback runs after the emission call has returned, outside its time limit: unchecked, it
    # would block the next call of whatever computation came next.
    emissions, errors = sandbox.emit(people("ok", behaviour, "ok"), collect=True)
    assert ids(emissions) == sorted(f"c{i}-ok~0~sandbox.{d}" for i in (0, 2) for d in ("harmless", "misbehave"))
    assert [(e.kind, e.contact_id) for e in errors] == [("timeout", f"c1-{behaviour}")]
    with pytest.raises(ConfigCodeError) as caught:
        sandbox.emit(people(behaviour))
    assert (caught.value.kind, caught.value.contact_id) == ("timeout", f"c0-{behaviour}")
    assert len(sandbox.emit(people("ok"))[0]) == 2


@quiet_recovery
def test_a_runaway_top_level_is_caught_when_a_computation_begins(tmp_path: Path) -> None:
    # The top level runs once when a computation begins (to learn which definitions apply to whom).
    source = """
    if (user && user.stuck) { for (;;) {} }
    module.exports = [{ name: 't', title: 't', appliesTo: 'contacts', events: [{ days: 0, start: 0, end: 0 }],
                        actions: [{ form: 'f' }] }];
    """
    runtime = JsRuntime(JsProgramSpec(files={"tasks.js": source}, resolved={}), time_limit_s=TIME_LIMIT_S,
                        memory_limit=MEMORY_LIMIT)
    try:
        with pytest.raises(ConfigCodeError) as caught:
            runtime.begin(tz="UTC", now_ms=NOW_MS, user={"_id": "u", "stuck": True}, roles=[])
        assert (caught.value.kind, caught.value.file) == ("timeout", "tasks.js")
        runtime.begin(tz="UTC", now_ms=NOW_MS, user={"_id": "u"}, roles=[])
        assert ids(runtime.emit(people("ok"))[0]) == ["c0-ok~0~t"]
    finally:
        runtime.close()


def test_errors_in_a_module_text_name_that_module() -> None:
    # A module that does not compile, required only when a callback runs (the loader refuses such programs;
    # the runtime still names the file and line if it meets one).
    tasks = """module.exports = [{ name: 't', title: 't', appliesTo: 'contacts',
      events: [{ days: 0, start: 0, end: 0 }], actions: [{ form: 'f' }],
      appliesIf: function (c) { return require(c.contact.lib).ok; } }];"""
    spec = JsProgramSpec(
        files={"tasks.js": tasks, "broken.js": "// fine\nexports.ok = (;\n", "data.json": '{\n  "ok": true,\n}\n'},
        resolved={"tasks.js\u0000./broken": "broken.js", "tasks.js\u0000./data.json": "data.json"},
    )
    runtime = JsRuntime(spec, time_limit_s=TIME_LIMIT_S, memory_limit=MEMORY_LIMIT)
    try:
        runtime.begin(tz="UTC", now_ms=NOW_MS, user=None, roles=[])
        _, errors = runtime.emit([
            {"contact": {"_id": "a", "lib": "./broken"}, "reports": []},
            {"contact": {"_id": "b", "lib": "./data.json"}, "reports": []},
        ], collect=True)
        assert [(e.file, e.contact_id, e.message.split(":")[0]) for e in errors] == [
            ("broken.js:2", "a", "SyntaxError"), ("data.json:3", "b", "SyntaxError")]
    finally:
        runtime.close()


def test_module_code_may_shadow_the_cht_globals() -> None:
    # In CHT the globals are parameters of the function around the whole bundle, so a module may declare
    # its own `const c` or `let user`.
    tasks = """const c = 'mine'; let user = 'me'; class Utils {}
    module.exports = [{ name: 't', title: 't', appliesTo: 'contacts', events: [{ days: 0, start: 0, end: 0 }],
      actions: [{ type: 'contact', modifyContent: function (content) { content.v = [c, user, typeof Utils]; } }],
      resolvedIf: function () { return false; } }];"""
    runtime = JsRuntime(JsProgramSpec(files={"tasks.js": tasks}, resolved={}), time_limit_s=TIME_LIMIT_S)
    try:
        runtime.begin(tz="UTC", now_ms=NOW_MS, user={"_id": "u"}, roles=[])
        emissions, _ = runtime.emit([{"contact": {"_id": "a"}, "reports": []}])
        assert emissions[0]["actions"][0]["content"]["v"] == ["mine", "me", "function"]
    finally:
        runtime.close()


# -- what failing code may cost a computation ---------------------------------------------------------------


def test_a_container_too_large_is_not_run_and_the_others_are() -> None:
    program = load_program(SANDBOX)
    assert program.js_spec is not None
    runtime = JsRuntime(program.js_spec, time_limit_s=TIME_LIMIT_S, memory_limit=MEMORY_LIMIT,
                        max_container_bytes=100_000)
    try:
        runtime.begin(tz="UTC", now_ms=NOW_MS, user=None, roles=[])
        batch = people("ok", "ok", "ok")
        batch[1]["contact"]["notes"] = "x" * 200_000
        emissions, errors = runtime.emit(batch, collect=True)
        assert ids(emissions) == sorted(f"c{i}-ok~0~sandbox.{d}" for i in (0, 2) for d in ("harmless", "misbehave"))
        assert [(e.kind, e.contact_id) for e in errors] == [("size", "c1-ok")]
        with pytest.raises(ConfigCodeError):
            runtime.emit(batch)
    finally:
        runtime.close()


@quiet_recovery
def test_an_abort_at_an_unknown_place_splits_the_batch_until_the_culprit_is_alone(
        sandbox: JsRuntime, monkeypatch: pytest.MonkeyPatch) -> None:
    # as when the limit is hit while V8 reads the batch's JSON: the runtime cannot say which container ran
    monkeypatch.setattr(sandbox, "_where_after_abort", lambda: {})
    batch = people("ok", "ok", "ok", "loop", "ok", "ok")
    emissions, errors = sandbox.emit(batch, collect=True)
    assert ids(emissions) == sorted(f"c{i}-ok~0~sandbox.{d}" for i in (0, 1, 2, 4, 5)
                                    for d in ("harmless", "misbehave"))
    assert [(e.kind, e.contact_id) for e in errors] == [("timeout", "c3-loop")]


@quiet_recovery
def test_a_spent_budget_abandons_the_rest_of_the_computation(sandbox: JsRuntime) -> None:
    budget = Budget(max_aborts=1)
    started = time.monotonic()
    emissions, errors = sandbox.emit(people("loop", "loop", "loop", "loop", "ok"), collect=True, budget=budget)
    assert time.monotonic() - started < 6 * TIME_LIMIT_S  # two aborts, not one per container
    assert [(e.kind, e.contact_id) for e in errors[:2]] == [("timeout", "c0-loop"), ("timeout", "c1-loop")]
    assert errors[-1].contact_id is None and "abandoned" in errors[-1].message
    assert sandbox.emit(people("ok"), collect=True, budget=budget) == ([], [])  # nothing more runs
    assert len(sandbox.emit(people("ok"))[0]) == 2  # another computation does


def test_a_deadline_interrupts_the_computation(sandbox: JsRuntime) -> None:
    budget = Budget(deadline=time.monotonic() + 0.2)
    with pytest.raises(ComputationInterrupted) as caught:
        sandbox.emit(people("ok", "loop"), collect=True, budget=budget)
    assert caught.value.where.get("contact") == "c1-loop"
    assert len(sandbox.emit(people("ok"))[0]) == 2


def test_interrupt_ends_a_running_call_from_another_thread() -> None:
    program = load_program(SANDBOX)
    assert program.js_spec is not None
    runtime = JsRuntime(program.js_spec, time_limit_s=60, memory_limit=MEMORY_LIMIT)
    try:
        runtime.begin(tz="UTC", now_ms=NOW_MS, user=None, roles=[])
        threading.Timer(0.5, runtime.interrupt).start()
        started = time.monotonic()
        with pytest.raises(ComputationInterrupted):
            runtime.emit(people("loop"), collect=True)
        assert time.monotonic() - started < 5
        with pytest.raises(ComputationInterrupted):  # and no later call runs
            runtime.emit(people("ok"))
    finally:
        runtime.close()


def test_limits_come_from_the_environment() -> None:
    limits = ProgramLimits.from_env({"KAZI_PROGRAM_TIME_LIMIT_S": "2.5", "KAZI_PROGRAM_MEMORY_MB": "64",
                                     "KAZI_PREFLIGHT_CONTAINERS": "0", "KAZI_PROGRAM_MAX_ABORTS": ""})
    assert (limits.time_limit_s, limits.memory_bytes, limits.preflight_containers, limits.max_aborts) == (
        2.5, MEMORY_LIMIT, 0, ProgramLimits().max_aborts)
    for bad in ({"KAZI_PROGRAM_TIME_LIMIT_S": "0"}, {"KAZI_READ_COMPUTE_S": "-1"}, {"KAZI_PROGRAM_MEMORY_MB": "x"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            ProgramLimits.from_env(bad)
