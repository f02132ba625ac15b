"""The program's ``supervision`` settings (kazi.supervision.definitions): parsed as the demo writes them, and
every mistake located (file, indicator, field) with a suggestion for a misspelling; a program folder whose
settings have one does not load."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from kazi.errors import ProgramError
from kazi.program.loader import inspect_tasks, load_program
from kazi.supervision.definitions import parse_supervision, task_name_of

DEMO = Path(__file__).resolve().parents[2] / "kazi" / "demo" / "program"
NAMES = ["anc.visit", "pnc.home_visit"]
TITLES = ["task.anc.visit.title"]
FORMS = ["pregnancy", "P", "anc_visit"]


def settings(**supervision: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "categories": {"anc": {"label": "ANC", "tasks": ["anc.visit"], "titles": ["task.anc.visit.title"]}},
        "indicators": [
            {"id": "done", "label": "Done", "tasks": {"states": ["completed"]}},
            {"id": "due", "label": "Due", "tasks": {"states": ["completed", "failed"]}},
            {"id": "anc", "label": "ANC", "tasks": {"category": "anc", "states": ["completed_on_time"]}},
            {"id": "preg", "label": "Pregnancies", "reports": {"forms": ["pregnancy", "P"]}},
            {"id": "rate", "label": "Rate", "rate": {"numerator": "done", "denominator": "due"},
             "higher_is_better": True},
        ],
        "supervisor_tasks": [{"id": "low", "indicator": "rate", "below": 0.5, "permission": "can_supervise",
                              "title": "t", "form": "anc_visit"}],
    }
    base.update(supervision)
    return {"permissions": {"can_supervise": ["sup"]}, "supervision": base}


def problems(raw: dict[str, Any], **kw: Any) -> list[tuple[str, str | None, str | None, str]]:
    _, found = parse_supervision(raw, "app_settings.json", task_names=NAMES, title_keys=TITLES, form_ids=FORMS,
                                 kazi_forms=kw.get("kazi_forms", ["anc_visit"]))
    return [(p.severity, p.field, p.definition_name, p.message) for p in found]


def test_a_valid_definition_parses() -> None:
    sup, found = parse_supervision(settings(), "app_settings.json", task_names=NAMES, title_keys=TITLES,
                                   form_ids=FORMS, kazi_forms=["anc_visit"])
    assert found == []
    assert [i.id for i in sup.indicators] == ["done", "due", "anc", "preg", "rate"]
    assert sup.indicator("anc").category == "anc" and sup.indicator("anc").states == ("completed_on_time",)
    assert sup.report_forms == ("pregnancy", "P")
    assert sup.categories_of("anc.visit", None) == ["anc"]
    assert sup.categories_of(None, "task.anc.visit.title") == ["anc"]
    assert sup.categories_of("pnc.home_visit", "x") == []
    rule = sup.supervisor_tasks[0]
    assert (rule.window_days, rule.task_name, rule.crossed(0.4), rule.crossed(0.5), rule.crossed(None)) == \
        (30, "supervisor:low", True, False, False)
    assert sup.indicator("rate").to_dict() == {"id": "rate", "label": "Rate", "kind": "rate", "format": "percent",
                                               "higher_is_better": True}


def test_no_supervision_settings_is_no_problem() -> None:
    sup, found = parse_supervision({}, "app_settings.json")
    assert sup.indicators == () and found == []


def test_misspellings_are_located_with_a_suggestion() -> None:
    raw = settings()
    raw["supervision"]["categories"]["anc"]["tasks"] = ["anc.vist"]
    raw["supervision"]["indicators"][0]["tasks"]["states"] = ["complete"]
    raw["supervision"]["indicators"][2]["tasks"]["category"] = "acn"
    raw["supervision"]["indicators"][3]["reports"]["forms"] = ["pregnancy", "pregnancyy", "an_xform"]
    raw["supervision"]["supervisor_tasks"][0]["permission"] = "can_supervize"
    found = problems(raw)
    assert ("error", "supervision.categories.anc.tasks[0]", "anc",
            "anc: no task definition is named 'anc.vist'. Did you mean 'anc.visit'?") in found
    assert ("error", "supervision.indicators[0].tasks.states[0]", "done",
            "done: no task state is named 'complete'. Did you mean 'completed'?") in found
    assert ("error", "supervision.indicators[2].tasks.category", "anc",
            "anc: no category is named 'acn'. Did you mean 'anc'?") in found
    assert ("error", "supervision.indicators[3].reports.forms[1]", "preg",
            "preg: no form is named 'pregnancyy'. Did you mean 'pregnancy'?") in found
    # a form Kazi does not know and nothing resembles may be an XForm: a warning
    assert [p for p in found if p[1] == "supervision.indicators[3].reports.forms[2]"][0][0] == "warning"
    assert ("error", "supervision.supervisor_tasks[0].permission", "low",
            "low: the settings define no permission 'can_supervize'. Did you mean 'can_supervise'?") in found
    assert len([p for p in found if p[0] == "error"]) == 5


def test_structural_mistakes() -> None:
    raw = settings(indicators=[
        {"id": "a", "label": "A", "tasks": {"states": ["completed"]}, "reports": {"forms": ["P"]}},
        {"id": "a", "label": "again", "rate": {"numerator": "b", "denominator": "nothing"}},
        {"id": "b", "label": "B", "rate": {"numerator": "a", "denominator": "a"}},
        {"label": "no id", "tasks": {}},
        {"id": "c", "label": "C", "tasks": {"states": ["failed"]}, "colour": "red", "higher_is_better": "yes"},
    ], supervisor_tasks=[{"id": "x", "indicator": "nope", "window_days": 90, "permission": "can_supervise",
                          "title": "t", "form": "missing_form", "priority": "high"}])
    found = {(p[1], p[3]) for p in problems(raw) if p[0] == "error"}
    assert ("supervision.indicators[0]", "a: needs exactly one of tasks, reports or rate (has tasks, reports)") in found
    assert ("supervision.indicators[1].id", "a: the id 'a' is used twice") in found
    assert ("supervision.indicators[1].rate.numerator", "a: 'b' is a rate (a rate divides counts).") in found
    assert ("supervision.indicators[1].rate.denominator", "a: 'nothing' is not defined.") in found
    assert ("supervision.indicators[3].id", "must be a non-empty string, got null") in found
    assert ("supervision.indicators[3].tasks.states", "is required: a list of generated, completed, "
                                                      "completed_on_time, failed, cancelled") in found
    assert any(f == "supervision.indicators[4].colour" for f, _ in found)
    assert ("supervision.indicators[4].higher_is_better", "c: must be true or false, got 'yes'") in found
    assert ("supervision.supervisor_tasks[0].indicator", "x: no indicator is named 'nope'.") in found
    assert ("supervision.supervisor_tasks[0]", "x: needs a threshold: above (more than) and/or below (less than)") \
        in found
    assert ("supervision.supervisor_tasks[0].window_days", "x: must be a whole number of days from 1 to 60, got 90") \
        in found
    assert ("supervision.supervisor_tasks[0].priority", "x: must be a whole number, got 'high'") in found
    assert any(f == "supervision.supervisor_tasks[0].form[0]" for f, _ in found)


def test_the_emission_id_names_the_task() -> None:
    assert task_name_of("r1~anc-12w~anc.visit") == "anc.visit"
    assert task_name_of("r1~0~sched.visit-3") == "sched.visit"  # a scheduled task's occurrence
    assert task_name_of("c~2026-11-03~supervisor:low") == "supervisor:low"
    assert task_name_of("no-tilde") is None and task_name_of(None) is None


@pytest.fixture
def demo_copy(tmp_path: Path) -> Path:
    dest = tmp_path / "program"
    shutil.copytree(DEMO, dest)
    return dest


def test_the_demo_defines_the_issues_indicators() -> None:
    assert [p for p in inspect_tasks(DEMO) if p.rule == "supervision"] == []
    sup = load_program(DEMO).supervision
    labels = {i.id: i.label for i in sup.indicators}
    for label in ("Total tasks completed", "ANC tasks completed", "PNC tasks completed", "Child-care visits done",
                  "Pregnancies registered", "Completion rate", "On-time rate"):
        assert label in labels.values()
    assert [r.form for r in sup.supervisor_tasks] == ["performance_follow_up"]


def test_a_misspelt_task_name_blocks_the_load(demo_copy: Path) -> None:
    path = demo_copy / "app_settings.json"
    raw = json.loads(path.read_text())
    bad = copy.deepcopy(raw)
    bad["supervision"]["categories"]["anc"]["tasks"][0] = "anc.vist"
    path.write_text(json.dumps(bad))
    with pytest.raises(ProgramError) as err:
        load_program(demo_copy)
    text = "\n".join(str(p) for p in err.value.problems)
    assert "app_settings.json" in text and "supervision.categories.anc.tasks[0]" in text
    assert "Did you mean 'anc.visit'?" in text
