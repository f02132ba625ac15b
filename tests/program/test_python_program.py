"""Loading ``tasks.py`` programs: isolation, relative helper imports, located errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from kazi.engine.utils import Utils
from kazi.errors import ConfigCodeError, ProgramError
from kazi.program import shape
from kazi.program.python import load_python_program

MINIMAL = """
from . import helpers

tasks = [{
    "name": "t", "title": "t", "appliesTo": "contacts",
    "events": [{"days": helpers.DAYS, "start": 0, "end": 0}],
    "actions": [{"form": "visit"}],
    "appliesIf": lambda ctx, c: helpers.adult(c["contact"]),
}]
extension_libs = {"lib.js": helpers}
"""
HELPERS = """
DAYS = 3
def adult(contact):
    return contact.get("age", 0) >= 18
"""


def write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def test_loads_definitions_helpers_and_extension_libs(tmp_path: Path) -> None:
    folder = write(tmp_path / "prog", {"tasks.py": MINIMAL, "helpers.py": HELPERS})
    path_before = list(sys.path)
    program = load_python_program(folder)
    assert sys.path == path_before  # nothing added
    assert program.path == folder / "tasks.py"
    assert [d["name"] for d in program.definitions] == ["t"]
    assert program.shape[0]["appliesIf"] is shape.FUNCTION
    assert program.extension_libs["lib.js"].DAYS == 3
    assert "helpers" not in sys.modules  # only under the program's own package name
    out, errors = program.emission_source({}, []).emit(
        [
            {"contact": {"_id": "a", "age": 30}, "reports": [], "tasks": []},
            {"contact": {"_id": "b", "age": 3}, "reports": [], "tasks": []},
        ],
        tz="Africa/Nairobi",
        now_ms=Utils(0, "UTC").to_ms(Utils(0, "UTC").make_date(2025, 1, 1)),
        user=None,
        roles=[],
        collect=False,
    )
    assert [e["_id"] for e in out] == ["a~0~t"] and errors == []
    program.unload()
    assert not any(name.startswith(program.package) for name in sys.modules)


def test_each_load_is_isolated(tmp_path: Path) -> None:
    one = write(tmp_path / "one", {"tasks.py": MINIMAL, "helpers.py": HELPERS})
    two = write(tmp_path / "two", {"tasks.py": MINIMAL, "helpers.py": HELPERS.replace("DAYS = 3", "DAYS = 9")})
    a, b, a_again = load_python_program(one), load_python_program(two), load_python_program(one)
    assert a.definitions[0]["events"][0]["days"] == 3
    assert b.definitions[0]["events"][0]["days"] == 9
    assert a.module is not a_again.module and a.package != a_again.package


def test_absolute_helper_import_is_refused_with_a_hint(tmp_path: Path) -> None:
    folder = write(tmp_path / "p", {"tasks.py": "import helpers\ntasks = []\n", "helpers.py": HELPERS})
    with pytest.raises(ProgramError) as info:
        load_python_program(folder)
    [problem] = info.value.problems
    assert problem.file == "tasks.py:1" and "ModuleNotFoundError" in problem.message
    assert "from . import helpers" in problem.hint


def test_errors_are_located_in_the_program_files(tmp_path: Path) -> None:
    folder = write(
        tmp_path / "s",
        {"tasks.py": "from . import helpers\ntasks = []\n", "helpers.py": "x = 1\ndef broken(:\n"},
    )
    with pytest.raises(ProgramError) as info:
        load_python_program(folder)
    assert info.value.problems[0].file == "helpers.py:2"
    folder = write(tmp_path / "r", {"tasks.py": "tasks = []\nraise ValueError('nope')\n"})
    with pytest.raises(ProgramError) as info:
        load_python_program(folder)
    assert info.value.problems[0].file == "tasks.py:2" and "ValueError: nope" in info.value.problems[0].message


def test_missing_or_odd_exports(tmp_path: Path) -> None:
    assert load_python_program(write(tmp_path / "a", {"tasks.py": "x = 1\n"})).definitions is shape.UNDEFINED
    assert load_python_program(write(tmp_path / "b", {"tasks.py": "tasks = ({'name': 'x'},)\n"})).definitions == [
        {"name": "x"}
    ]
    with pytest.raises(ProgramError):
        load_python_program(write(tmp_path / "c", {"tasks.py": "tasks = []\nextension_libs = 3\n"}))
    with pytest.raises(ProgramError):
        load_python_program(tmp_path / "nowhere")
    program = load_python_program(write(tmp_path / "d", {"tasks.py": "tasks = {'name': 'x'}\n"}))
    with pytest.raises(ProgramError):
        program.emitter()


def test_callback_errors_name_the_program_line(tmp_path: Path) -> None:
    helpers = "def adult(contact):\n    return contact['age'] >= 18\n"
    folder = write(tmp_path / "e", {"tasks.py": MINIMAL, "helpers.py": HELPERS + helpers.replace("adult", "adult2")})
    (folder / "tasks.py").write_text(MINIMAL.replace("helpers.adult(", "helpers.adult2("))
    program = load_python_program(folder)
    with pytest.raises(ConfigCodeError) as info:
        program.emission_source({}, []).emit(
            [{"contact": {"_id": "a"}, "reports": [], "tasks": []}],
            tz="UTC",
            now_ms=0,
            user=None,
            roles=[],
            collect=False,
        )
    err = info.value
    assert err.file == f"helpers.py:{HELPERS.count(chr(10)) + 2}"
    assert (err.definition_index, err.definition_name, err.callback, err.contact_id) == (0, "t", "appliesIf", "a")
    assert err.message == "KeyError: 'age'"
