"""The app's rules (kazi/web/static/logic.js) run in Chromium and compared with Kazi's Python references:
the Tasks tab order (kazi.engine.taskdocs.sort_for_tasks_tab), the form rules the server applies to a
submission (kazi.program.forms.check_answers), CHT's due labels and translation fallbacks.

Why: the app decides offline what the server would decide online (order, what is asked, what is sent), so
the two must never drift apart. Random cases make the comparison cover what nobody would think to write.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest

from kazi.demo import PROGRAM_DIR
from kazi.demo.server import RunningDemo
from kazi.engine.taskdocs import sort_for_tasks_tab
from kazi.program import forms as kforms
from kazi.program.loader import read_forms

LOGIC = "/app/logic.js"


@pytest.fixture(scope="module")
def js(browser: Any, demo: RunningDemo) -> Iterator[Any]:
    """A page of the app whose ``call(name, *args)`` runs an export of logic.js."""
    context = browser.new_context(base_url=demo.base_url, timezone_id=demo.tz)
    page = context.new_page()
    page.goto("/app/manifest.webmanifest")  # same origin, no app running

    class Js:
        def call(self, name: str, *args: Any) -> Any:
            return page.evaluate(f"async (args) => (await import('{LOGIC}')).{name}(...args)", list(args))

        def run(self, body: str, arg: Any = None) -> Any:
            return page.evaluate(f"async (arg) => {{ const L = await import('{LOGIC}'); {body} }}", arg)

    yield Js()
    context.close()


def test_due_labels_are_chts(js: Any) -> None:
    today = "2025-08-01"
    days = {"2025-07-20": "Due 12 days ago", "2025-07-30": "Due 2 days ago", "2025-07-31": "Due yesterday",
            "2025-08-01": "Due today", "2025-08-02": "1 day left", "2025-08-04": "3 days left",
            "2025-08-05": "4 days left", "2025-08-06": "", "2026-01-01": "", "2024-12-31": "Due 213 days ago"}
    shown = js.run("""const t = L.makeTranslator({});
        return arg.days.map(d => { const l = L.dueLabel(d, arg.today); return l ? t(l.key, l.vars) : ''; });""",
                   {"days": list(days), "today": today})
    assert shown == list(days.values())
    # across a daylight-saving change the count is still in calendar days
    assert js.call("daysBetween", "2025-03-29", "2025-03-31") == 2
    assert js.call("isOverdue", {"emission": {"dueDate": today}}, today) is True
    assert js.call("isOverdue", {"emission": {"dueDate": "2025-08-02"}}, today) is False


def test_translations_fall_back_to_the_key_and_format_plurals(js: Any) -> None:
    out = js.run("""const t = L.makeTranslator({'x.title': 'Visit {{contact.name}}',
            'task.days.left': '{DAYS, plural, one{siku 1} other{masiku #}}'}, 'ny');
        return [t('x.title', {contact: {name: 'Grace'}}), t('no.such.key'), t('task.days.left', {DAYS: 1}),
                t('task.days.left', {DAYS: 3}), t('task.overdue'), t('app.sync.queued', {COUNT: 2})];""")
    assert out == ["Visit Grace", "no.such.key", "siku 1", "masiku 3", "Due today", "2 forms waiting to be sent"]


def _random_emission(rng: random.Random, i: int) -> dict[str, Any]:
    priority = rng.choice([None, 0, 1, 3, 5, 5, 10, -1, 2.5, "5", True, float("inf")])
    due = rng.choice(["2025-07-30", "2025-08-01", "2025-08-01", "2025-08-04", "2025-02-30", "nope", None])
    e: dict[str, Any] = {"_id": f"e{i}"}
    if priority is not None:
        e["priority"] = priority
    if due is not None:
        e["dueDate"] = due
    return {"_id": f"t{i}", "emission": e}


def test_tasks_tab_order_matches_the_server(js: Any, demo: RunningDemo) -> None:
    rng = random.Random(4)
    for _round in range(30):
        tasks = [_random_emission(rng, i) for i in range(rng.randint(2, 14))]
        as_json = [{**t, "emission": {k: (None if v == float("inf") else v) for k, v in t["emission"].items()}}
                   for t in tasks]  # JSON has no Infinity: sent as null, and compared that way
        expected = [t["_id"] for t in sort_for_tasks_tab(as_json, demo.tz)]
        got = js.run("return [...arg].sort(L.compareTasks).map(t => t._id);", as_json)
        assert got == expected, as_json


def test_a_delta_applied_on_the_device_gives_the_servers_list(js: Any, demo: RunningDemo) -> None:
    """applyTaskDelta + compareTasks on the device's copy == the server's whole list after the same writes
    (task documents listed in write order, then sorted), ties included."""
    rng = random.Random(9)
    for _round in range(30):
        written = [_random_emission(rng, i) for i in range(rng.randint(2, 12))]  # write order = list order
        for t in written:
            t["emission"] = {k: (None if v == float("inf") else v) for k, v in t["emission"].items()}
        before = sort_for_tasks_tab(written, demo.tz)
        changed = rng.sample(written, rng.randint(0, len(written)))
        kept = [t for t in written if t not in changed]
        rewritten = [t for t in changed if rng.random() < 0.5]  # a new state of the same task, still listed
        for t in rewritten:
            t["emission"] = {**t["emission"], "priority": rng.choice([None, 1, 5, 9])}
        new = [_random_emission(rng, 100 + i) for i in range(rng.randint(0, 4))]
        for t in new:
            t["emission"] = {k: (None if v == float("inf") else v) for k, v in t["emission"].items()}
        delta_docs = [*rewritten, *new]
        removed = [t["_id"] for t in changed if t not in rewritten]
        expected = [t["_id"] for t in sort_for_tasks_tab([*kept, *delta_docs], demo.tz)]
        delta = {"items": sort_for_tasks_tab(delta_docs, demo.tz), "removed": removed}
        got = js.run("return L.applyTaskDelta(arg.before, arg.delta).sort(L.compareTasks).map(t => t._id);",
                     {"before": before, "delta": delta})
        assert got == expected


def _random_raw(rng: random.Random, form: kforms.Form) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for f in form.fields:
        choices = [c.value for c in f.choices]
        options: list[Any]
        if f.type == "select_one":
            options = [None, *choices, *choices, "bogus"]
        elif f.type == "select_multiple":
            options = [None, [], [rng.choice(choices)], rng.sample(choices, min(2, len(choices))), ["bogus"]]
        elif f.type == "integer":
            options = [None, "", "2", " 7 ", "-3", "2.5", "x"]
        elif f.type == "decimal":
            options = [None, "3.5", "4", ".5", "3.0", "abc"]
        elif f.type == "date":
            options = [None, "2025-08-01", "2025-02-30", "01/08/2025"]
        elif f.type == "text":
            options = [None, "", "  ", "seen at home"]
        else:
            continue
        value = rng.choice(options)
        if value is not None:
            raw[f.name] = value
    return raw


def test_forms_ask_and_send_what_the_server_accepts(js: Any) -> None:
    problems: list[Any] = []
    forms = read_forms(PROGRAM_DIR, problems)  # the forms alone (no V8 under Playwright's event loop)
    assert forms and not problems
    rng = random.Random(7)
    checked = 0
    for form_id, form in sorted(forms.items()):
        definition = dict(form.definition)
        for _round in range(25):
            raw = _random_raw(rng, form)
            content = {f.name: f"value-of-{f.name}" for f in form.fields if f.type == "hidden" and rng.random() < 0.9}
            content["contact"] = "contact-id"
            js_out = js.run("const r = L.collectFields(arg.form, arg.raw, arg.content);"
                            "return {fields: r.fields, errors: Object.keys(r.errors)};",
                            {"form": definition, "raw": raw, "content": content})
            sent = {**kforms.prefill(form, content), **{k: v for k, v in raw.items() if v not in ("", [], None)}}
            stored, problems = kforms.check_answers(form, sent)
            assert sorted(js_out["errors"]) == sorted(p.field.removeprefix("fields.") for p in problems), (form_id, raw)
            if not problems:
                assert js_out["fields"] == stored, (form_id, raw)
                again, none = kforms.check_answers(form, js_out["fields"])  # what the app sends is accepted as is
                assert not none and again == js_out["fields"]
                checked += 1
    assert checked > 40


def test_hidden_inputs_take_a_contacts_id(js: Any) -> None:
    content = {"contact": {"_id": "c-1", "name": "Grace"}, "source": {"deep": {"id": 5}}, "list": [1, 2]}
    assert js.call("hiddenValue", {"name": "patient_uuid", "from": "contact"}, content) == "c-1"
    assert js.call("hiddenValue", {"name": "patient_uuid", "from": "contact._id"}, content) == "c-1"
    assert js.call("hiddenValue", {"name": "x", "from": "source.deep.id"}, content) == 5
    assert js.call("hiddenValue", {"name": "list"}, content) is None
