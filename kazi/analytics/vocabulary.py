"""The identifiers a program lets interaction summaries name: its task title keys and its form ids.

A summary's ``ref`` must be one of these (or a filter field id), never free text: that is what keeps a task's
displayed title (which may hold a patient's name once translated and interpolated) out of the analysts' data.
CHT records the untranslated title key for the same reason (docs/interactions.md, "What is never recorded").

* **title keys**: the ``title`` of every task definition (``tasks.js`` / ``tasks.py``);
* **form ids**: the program's web app forms (``forms/<id>.json``, :attr:`Program.forms`) and every form a task
  action names (a CHT XForm the web app cannot open may still be what an action names).

Reading a JavaScript program's definitions means evaluating it in V8, which takes a moment, so the answer is
kept per program object: a new program version is a new object, and gets its own.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Final

from kazi.analytics.summary import Vocabulary
from kazi.errors import ProgramError
from kazi.program import shape as shapes
from kazi.program.js.runtime import JsRuntime
from kazi.program.loader import Program

#: programs remembered (a server runs one at a time; tests load several)
_CACHE_SIZE: Final = 8
_cache: OrderedDict[int, tuple[Program, Vocabulary]] = OrderedDict()
_lock = threading.Lock()


def program_vocabulary(program: Program) -> Vocabulary:
    """The program's title keys and form ids (computed once per program object)."""
    with _lock:
        found = _cache.get(id(program))
        if found is not None and found[0] is program:
            _cache.move_to_end(id(program))
            return found[1]
    vocabulary = vocabulary_of(program_definitions(program), program.forms)
    with _lock:
        _cache[id(program)] = (program, vocabulary)  # the program is held, so its id is not reused meanwhile
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return vocabulary


def vocabulary_of(definitions: Any, form_ids: Any = ()) -> Vocabulary:
    """Title keys and action forms of described definitions (a list of dicts, functions as markers), plus
    ``form_ids``."""
    titles: set[str] = set()
    forms: set[str] = {f for f in form_ids if isinstance(f, str)}
    for definition in definitions if isinstance(definitions, list) else []:
        if not isinstance(definition, dict):
            continue
        title = definition.get("title")
        if isinstance(title, str) and title:
            titles.add(title)
        actions = definition.get("actions")
        for action in actions if isinstance(actions, list) else []:
            form = action.get("form") if isinstance(action, dict) else None
            if isinstance(form, str) and form:
                forms.add(form)
    return Vocabulary(frozenset(titles), frozenset(forms))


def program_definitions(program: Program) -> Any:
    """The program's exported definitions as data (what :mod:`kazi.program.validate` checks)."""
    if program.kind == "js":
        assert program.js_spec is not None
        # a runtime of its own: the program's own one belongs to the task computations
        runtime = JsRuntime(program.js_spec, time_limit_s=10.0)
        try:
            described, error = runtime.describe()
        finally:
            runtime.close()
        if error is not None:  # it was validated when loaded, so this is an environment failure
            raise ProgramError(f"cannot read the program's task definitions: {error.get('message')}")
        return shapes.from_json(described)
    emitter = getattr(program.python_source, "emitter", None)
    return shapes.from_python(getattr(emitter, "definitions", []))
