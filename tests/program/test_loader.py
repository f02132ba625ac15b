"""Loading a ``tasks.js`` program folder: settings, schedules, extension libraries, ``require`` and npm packages.

A CHT program is a cht-conf project folder. Kazi reads it the way cht-conf builds it: the first of
``app_settings.json`` / ``base_settings.json`` / ``settings.json``, ``task-schedules.json``,
``extension-libs/``, and ``tasks.js`` with every module it ``require``s, resolved statically as the
bundler does (relative files, folders with an ``index.js``, JSON, packages from ``node_modules`` with
``browser`` before ``main``), confined to the folder. Whatever is wrong is a located :class:`Problem`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from kazi.errors import ConfigCodeError, ProgramError
from kazi.program.loader import Program, inspect_tasks, load_program

TESTS = Path(__file__).resolve().parents[1]
FIXTURES = TESTS / "fixtures" / "js_programs"
NPM_PROGRAM = TESTS / "fixtures" / "npm_program"
NOW_MS = 1_741_600_000_000  # 2025-03-10T09:46:40Z


def copy_program(name: str, tmp_path: Path) -> Path:
    """A fixture program copied to ``tmp_path``, its ``vendor_packages`` folders renamed ``node_modules``.

    (No ``node_modules`` folder is committed: tools and ignore files commonly skip them.)
    """
    folder = tmp_path / name
    shutil.copytree(FIXTURES / name, folder)
    for vendored in sorted(folder.rglob("vendor_packages"), key=lambda p: len(p.parts), reverse=True):
        vendored.rename(vendored.with_name("node_modules"))
    return folder


def emit(program: Program, contacts: list[dict[str, Any]], *, tz: str = "UTC", now_ms: int = NOW_MS,
         roles: list[str] | None = None, collect: bool = False) -> tuple[list[dict[str, Any]], list[ConfigCodeError]]:
    containers = [{"contact": c, "reports": []} for c in contacts]
    return program.emission_source().emit(containers, tz=tz, now_ms=now_ms, user=None, roles=roles or [],
                                          collect=collect)


def content(emissions: list[dict[str, Any]], emission_id: str) -> dict[str, Any]:
    found = [e for e in emissions if e["_id"] == emission_id]
    assert len(found) == 1, [e["_id"] for e in emissions]
    result: dict[str, Any] = found[0]["actions"][0]["content"]
    return result


# -- settings, schedules, extension libraries -----------------------------------------------------------------
def test_settings_file_precedence(tmp_path: Path) -> None:
    folder = tmp_path / "settings_precedence"
    shutil.copytree(FIXTURES / "settings_precedence", folder)
    for expected in ("app_settings", "base_settings", "settings"):
        program = load_program(folder)
        assert program.settings["permissions"] == {"source": [expected]}
        got = content(emit(program, [{"_id": "p", "type": "person"}])[0], "p~0~settings.source")
        assert got["source"] == [expected]
        assert got["schedule"] == f"from-{expected.replace('_', '-')}"  # tasks.schedules of the same file
        (folder / f"{expected}.json").unlink()
    program = load_program(folder)  # no settings at all
    assert program.settings == {} and program.schedules == []


def test_task_schedules_json_wins_over_the_settings_schedules(tmp_path: Path) -> None:
    folder = tmp_path / "settings_precedence"
    shutil.copytree(FIXTURES / "settings_precedence", folder)
    (folder / "task-schedules.json").write_text('[{"name": "from-task-schedules"}, {"name": "from-settings"}]')
    program = load_program(folder)
    assert program.schedules == [{"name": "from-task-schedules"}, {"name": "from-settings"}]
    (folder / "task-schedules.json").write_text('{"name": "not a list"}')
    with pytest.raises(ProgramError) as caught:
        load_program(folder)
    assert [(p.file, p.rule) for p in caught.value.problems] == [("task-schedules.json", "schedules")]


def test_extension_libs_are_read_by_relative_path() -> None:
    program = load_program(FIXTURES / "probe")
    assert program.js_spec is not None
    assert sorted(program.js_spec.extension_libs) == ["average.js", "broken.js", "tools/units.js"]
    assert program.schedules[0]["name"] == "immunization"  # task-schedules.json
    assert program.roles["chw"] == {"name": "CHW", "offline": True}
    assert program.permissions["can_trace"] == ["chw"]


def test_broken_settings_json_is_a_located_problem() -> None:
    problems = inspect_tasks(FIXTURES / "broken_settings")
    assert [(p.severity, p.file, p.rule) for p in problems] == [("error", "app_settings.json:3", "file")]
    assert "line 3" in problems[0].message
    with pytest.raises(ProgramError) as caught:
        load_program(FIXTURES / "broken_settings")
    assert "app_settings.json:3" in str(caught.value)


def test_settings_that_are_not_an_object(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "broken_settings", tmp_path / "p")
    (tmp_path / "p" / "app_settings.json").write_text("[1, 2]")
    problems = inspect_tasks(tmp_path / "p")
    assert [(p.file, p.rule) for p in problems] == [("app_settings.json", "settings")]


def test_no_tasks_file_is_a_problem(tmp_path: Path) -> None:
    problems = inspect_tasks(FIXTURES / "no_tasks")
    assert len(problems) == 1 and problems[0].severity == "error"
    assert "no tasks.js or tasks.py" in problems[0].message
    with pytest.raises(ProgramError):
        load_program(FIXTURES / "no_tasks")
    with pytest.raises(ProgramError, match="not a folder"):
        load_program(tmp_path / "missing")


# -- syntax and evaluation errors --------------------------------------------------------------------------
def test_syntax_errors_are_located_in_every_bundled_module() -> None:
    # helpers.js is required at the top, later.js only inside a function: a bundler parses both.
    problems = inspect_tasks(FIXTURES / "syntax_error")
    assert sorted((p.file, p.severity) for p in problems) == [("helpers.js:4", "error"), ("later.js:3", "error")]
    assert all("SyntaxError" in p.message for p in problems)


def test_a_syntax_error_in_tasks_js_itself(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "tasks.js").write_text("// line 1\nmodule.exports = [\n  { name: 'x' title: 'y' },\n];\n")
    problems = inspect_tasks(folder)
    assert [p.file for p in problems] == ["tasks.js:3"]
    assert "SyntaxError" in problems[0].message


def test_an_exception_at_the_top_level_is_located(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    (folder / "lib").mkdir(parents=True)
    (folder / "tasks.js").write_text("var lib = require('./lib/setup');\nmodule.exports = lib.tasks;\n")
    (folder / "lib" / "setup.js").write_text("// setup\n\nexports.tasks = [Utils.now()];\n")
    problems = inspect_tasks(folder)
    assert [p.file for p in problems] == ["lib/setup.js:3"]
    assert "ReferenceError: Utils is not defined" in problems[0].message
    assert "inside a" in problems[0].hint  # CHT globals exist only while tasks run


# -- require -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def modules_program(tmp_path_factory: pytest.TempPathFactory) -> Program:
    return load_program(copy_program("modules", tmp_path_factory.mktemp("programs")))


def test_the_bundle_is_the_statically_required_modules(modules_program: Program) -> None:
    assert modules_program.js_spec is not None
    assert sorted(modules_program.js_spec.files) == [
        "config.json", "cycle/a.js", "cycle/b.js", "lib/helpers.js", "lib/node_modules/nearpkg/index.js",
        "node_modules/@scope/dirpkg/index.js", "node_modules/browserpkg/browser.js",
        "node_modules/mainpkg/lib/entry.js", "tasks.js", "tasks/anc.js", "tasks/index.js", "tasks/lazy.js",
    ]


def test_require_resolution(modules_program: Program) -> None:
    emissions, _ = emit(modules_program, [{"_id": "p1", "type": "person", "name": "amina"}])
    assert sorted(e["_id"] for e in emissions) == ["p1~0~anc.visit", "p1~0~modules.report"]
    got = content(emissions, "p1~0~modules.report")
    assert got["helpers"] == "hello amina"  # ./lib/helpers -> lib/helpers.js
    assert got["near"] == "nearpkg from lib/node_modules"  # node_modules nearest to the requiring file
    assert got["config"] == {"days": 3, "label": "from config.json"}  # a JSON module
    assert got["cycle"] == "a sees b; b saw a partial"  # circular: b gets a's exports as they were
    assert got["browserpkg"] == "browserpkg browser build"  # package.json "browser" before "main"
    assert got["mainpkg"] == "mainpkg lib/entry.js"  # "main" without extension
    assert got["dirpkg"] == "@scope/dirpkg index.js"  # scoped package, index.js
    assert got["fs"] == "Cannot find module 'fs' from 'tasks.js'"  # no Node built-ins
    assert got["child_process"] == "Cannot find module 'child_process' from 'tasks.js'"
    assert got["escape"] == "Cannot find module '../../etc/passwd' from 'tasks.js'"  # confined to the folder
    assert got["absolute"] == "Cannot find module '/etc/passwd' from 'tasks.js'"
    assert got["dynamic"] == "Cannot find module './lib/unlisted' from 'tasks.js'"  # never required literally


def test_a_missing_module_fails_when_called_not_at_load(modules_program: Program) -> None:
    emissions, errors = emit(modules_program, [{"_id": "p1", "type": "person", "name": "lazy"},
                                               {"_id": "p2", "type": "person", "name": "fine"}], collect=True)
    assert sorted(e["_id"] for e in emissions) == ["p2~0~anc.visit", "p2~0~modules.report"]
    [err] = errors
    assert "Cannot find module './missing'" in err.message
    assert (err.file, err.definition_index, err.definition_name, err.callback, err.contact_id) == (
        "tasks/lazy.js:10", 1, "lazy.require", "appliesIf", "p1")


def test_errors_in_a_sub_module_name_it(modules_program: Program) -> None:
    with pytest.raises(ConfigCodeError) as caught:
        emit(modules_program, [{"_id": "p9", "type": "person", "name": "anc-throws"}])
    err = caught.value
    assert (err.file, err.definition_name, err.callback, err.contact_id) == (
        "tasks/anc.js:12", "anc.visit", "resolvedIf", "p9")


def test_a_folder_request_never_picks_the_file_beside_it(tmp_path: Path) -> None:
    # Node: require('./x') is x.js when it exists, require('./x/') is always x/index.js.
    folder = tmp_path / "p"
    (folder / "defs").mkdir(parents=True)
    (folder / "defs.js").write_text("module.exports = 'defs.js';\n")
    (folder / "defs" / "index.js").write_text("module.exports = 'defs/index.js';\n")
    (folder / "tasks.js").write_text(
        "var a = require('./defs'), b = require('./defs/');\n"
        "module.exports = [{ name: 't', title: 't', appliesTo: 'contacts', events: [{ days: 0, start: 0, end: 0 }],"
        " resolvedIf: function () { return false; },"
        " actions: [{ type: 'contact', modifyContent: function (content) { content.v = [a, b]; } }] }];\n")
    got = content(emit(load_program(folder), [{"_id": "p"}])[0], "p~0~t")
    assert got["v"] == ["defs.js", "defs/index.js"]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symbolic links here")
def test_a_symlink_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.js").write_text("module.exports = 'secret';\n")
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "secret.js").symlink_to(outside / "secret.js")
    (folder / "tasks.js").write_text(
        "module.exports = [{ name: 't', title: 't', appliesTo: 'contacts', events: [{ days: 0, start: 0, end: 0 }],"
        " resolvedIf: function () { return false; }, actions: [{ type: 'contact', modifyContent: function (ct) {"
        " try { ct.v = require('./secret'); } catch (e) { ct.v = e.message; } } }] }];\n")
    program = load_program(folder)
    assert program.js_spec is not None and "secret.js" not in program.js_spec.files
    assert content(emit(program, [{"_id": "p"}])[0], "p~0~t")["v"] == "Cannot find module './secret' from 'tasks.js'"


# -- real npm packages ---------------------------------------------------------------------------------------
@pytest.mark.skipif(not (NPM_PROGRAM / "node_modules").is_dir(),
                    reason="tests/fixtures/npm_program/node_modules is absent: run scripts/install_test_npm.sh")
def test_moment_and_luxon_from_node_modules_compute_in_the_computation_zone() -> None:
    program = load_program(NPM_PROGRAM)
    assert program.js_spec is not None
    assert "node_modules/moment/moment.js" in program.js_spec.files
    assert "node_modules/luxon/build/cjs-browser/luxon.js" in program.js_spec.files  # "browser" build
    # now = 2025-09-27T12:00Z: midnight starting the 28th in Auckland, two hours before its DST gap, and
    # 08:00 on the 27th in New York; the contact was reported at 2025-09-26T20:00Z (the 27th in Auckland,
    # the 26th in New York). The expected values are what Node gives with TZ set to each zone.
    now = 1_758_974_400_000
    contact = {"_id": "p1", "type": "person", "reported_date": 1_758_916_800_000}
    expected = {
        "Pacific/Auckland": ({
            "now": "2025-09-28T00:00:00+12:00", "utcOffset": 720, "inGap": "2025-09-28T03:30:00+13:00",
            "iso": "2025-04-06T02:30:00+13:00", "reportedDay": "2025-09-27 Saturday",
            "addMonth": "2025-10-31T23:59:59+13:00",
        }, {
            "zone": "Pacific/Auckland", "now": "2025-09-28T00:00:00.000+12:00", "offset": 720,
            "inGap": "2025-09-28T03:30:00.000+13:00", "reportedDay": "2025-09-27", "nextMidnight": 1_758_974_400_000,
            "explicitZone": "2025-09-27T01:45:00.000+05:45",
        }, 1_759_143_600_000),  # 2025-09-30 00:00 +13:00
        "America/New_York": ({
            "now": "2025-09-27T08:00:00-04:00", "utcOffset": -240, "inGap": "2025-09-28T02:30:00-04:00",
            "iso": "2025-04-06T02:30:00-04:00", "reportedDay": "2025-09-26 Friday",
            "addMonth": "2025-10-31T23:59:59-04:00",
        }, {
            "zone": "America/New_York", "now": "2025-09-27T08:00:00.000-04:00", "offset": -240,
            "inGap": "2025-09-28T02:30:00.000-04:00", "reportedDay": "2025-09-26", "nextMidnight": 1_758_945_600_000,
            "explicitZone": "2025-09-27T01:45:00.000+05:45",
        }, 1_759_118_400_000),  # 2025-09-29 00:00 -04:00
    }
    for tz, (moment, luxon, due_ms) in expected.items():
        emissions, _ = emit(program, [contact], tz=tz, now_ms=now)
        [task] = emissions
        got = task["actions"][0]["content"]
        assert got["moment"] == moment, tz
        assert got["luxon"] == luxon, tz
        assert task["dueDateMs"] == due_ms, tz  # moment(...).add(3, 'days').startOf('day'): local midnight
