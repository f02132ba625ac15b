"""The Python emission loop against cht-conf's task emitter: ids, type matching, headless containers, resolution."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest

from kazi.engine.emitter import PythonEmitter, TaskContext, emit_tasks, to_json
from kazi.engine.permissions import ChtApi
from kazi.engine.utils import UNDEFINED, Utils
from kazi.errors import ConfigCodeError

ZONES = ["Africa/Nairobi", "America/New_York", "Pacific/Auckland"]
NAIROBI = "Africa/Nairobi"


def utils_at(tz: str, *local: int) -> Utils:
    """Utils whose `now` is the local wall time `local` (y, m, d, h, ...) in `tz`."""
    probe = Utils(0, tz)
    return Utils(probe.to_ms(probe.make_date(*local)), tz)


def local_ms(tz: str, *local: int) -> int:
    probe = Utils(0, tz)
    return int(probe.to_ms(probe.make_date(*local)))


def run(
    definitions: list[dict[str, Any]], containers: list[dict[str, Any]], u: Utils, **kw: Any
) -> list[Any]:
    return emit_tasks(definitions, containers, utils=u, **kw)


def by_id(emissions: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["_id"]: e for e in emissions}


PATIENT = {"_id": "c1", "name": "Mary", "type": "contact", "contact_type": "patient", "reported_date": 0}


def report(rid: str, form: str, reported: int, **extra: Any) -> dict[str, Any]:
    return {"_id": rid, "type": "data_record", "form": form, "reported_date": reported, **extra}


def container(contact: Any = PATIENT, reports: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"contact": contact, "reports": reports or [], "tasks": []}


# --- ids, appliesTo, appliesToType ----------------------------------------------------------------


def test_emission_ids() -> None:
    u = utils_at(NAIROBI, 2024, 3, 10, 12)
    defs = [
        {
            "name": "t-report",
            "title": "t",
            "appliesTo": "reports",
            "appliesToType": ["f"],
            "events": [{"id": "e1", "days": 1, "start": 0, "end": 0}, {"days": 2, "start": 0, "end": 0}],
            "actions": [{"form": "x"}],
        },
        {
            "name": "t-contact",
            "title": "t",
            "appliesTo": "contacts",
            "events": [{"id": "e", "days": 1, "start": 0, "end": 0}],
            "actions": [{"form": "x"}],
        },
        {
            "name": "st",
            "title": "t",
            "appliesTo": "scheduled_tasks",
            "appliesIf": lambda ctx, c, r, i: i == 1,
            "events": [{"id": "ev", "days": 0, "start": 0, "end": 0}],
            "actions": [{"form": "x"}],
        },
    ]
    sched = report("rs", "s", 0, scheduled_tasks=[{"due": "2024-03-10T00:00:00Z"}, {"due": 1710028800000}])
    out = by_id(run(defs, [container(reports=[report("r1", "f", 0), sched])], u))
    assert sorted(out) == ["c1~e~t-contact", "r1~1~t-report", "r1~e1~t-report", "rs~ev~st-1"]


def test_applies_to_type_for_contacts_and_reports() -> None:
    u = utils_at(NAIROBI, 2024, 3, 10, 12)
    event = [{"id": "e", "days": 0, "start": 0, "end": 0}]

    def defn(name: str, applies_to: str, types: list[str]) -> dict[str, Any]:
        return {
            "name": name,
            "title": "t",
            "appliesTo": applies_to,
            "appliesToType": types,
            "events": event,
            "actions": [{"form": "x"}],
        }

    defs = [
        defn("patient", "contacts", ["patient"]),
        defn("person", "contacts", ["person"]),
        defn("contact", "contacts", ["contact"]),
        defn("form", "reports", ["f"]),
    ]
    person = {"_id": "p1", "type": "person"}
    headless = {"_id": "12345"}
    containers = [
        container(PATIENT, [report("r1", "f", 0), report("r2", "g", 0)]),
        container(person),
        container(headless, [report("r3", "f", 0)]),
    ]
    assert sorted(by_id(run(defs, containers, u))) == [
        "c1~e~patient",
        "p1~e~person",
        "r1~e~form",
        "r3~e~form",
    ]


def test_unrecognised_applies_to() -> None:
    u = utils_at(NAIROBI, 2024, 3, 10, 12)
    defs = [{"name": "bad", "title": "t", "appliesTo": "contact", "events": [], "actions": []}]
    with pytest.raises(ConfigCodeError) as info:
        run(defs, [container()], u)
    assert "Unrecognised task.appliesTo: contact" in str(info.value)


def test_contacts_definition_skips_containers_without_contact() -> None:
    u = utils_at(NAIROBI, 2024, 3, 10, 12)
    defs = [
        {
            "name": "d",
            "title": "t",
            "appliesTo": "contacts",
            "events": [{"days": 0, "start": 0, "end": 0}],
            "actions": [{"form": "x"}],
        }
    ]
    assert run(defs, [container(None, [report("r", "f", 0)])], u) == []


def test_report_task_without_contact() -> None:
    # CHT: report-based tasks still run in a headless container; contact and content.contact are absent
    u = utils_at(NAIROBI, 2024, 3, 10, 12)
    defs = [
        {
            "name": "d",
            "title": "t",
            "appliesTo": "reports",
            "events": [{"days": 0, "start": 0, "end": 0}],
            "actions": [{"form": "x"}],
        }
    ]
    [e] = run(defs, [container(None, [report("r", "f", 0)])], u)
    assert e["contact"] is None and e["requester"] is None
    assert e["actions"] == [
        {"type": "report", "form": "x", "label": "Follow up", "content": {"source": "task", "source_id": "r"}}
    ]


def test_emission_format() -> None:
    u = utils_at(NAIROBI, 2024, 3, 10, 12)
    rd = local_ms(NAIROBI, 2024, 3, 8, 15)
    defs = [
        {
            "name": "d",
            "title": "task.title",
            "icon": "icon-x",
            "appliesTo": "reports",
            "events": [{"id": "e", "days": 3, "start": 2, "end": 4}],
            "actions": [{"form": "x"}],
        }
    ]
    [e] = run(defs, [container(reports=[report("r", "f", rd)])], u)
    assert e == {
        "_id": "r~e~d",
        "requester": "c1",
        "contact": {"_id": "c1", "name": "Mary"},
        "title": "task.title",
        "icon": "icon-x",
        "dueDate": "2024-03-11",
        "dueDateMs": local_ms(NAIROBI, 2024, 3, 11),
        "readyStart": 2,
        "readyEnd": 4,
        "resolved": False,
        "deleted": False,
        "_k_resolved_raw": False,
        "actions": [
            {
                "type": "report",
                "form": "x",
                "label": "Follow up",
                "content": {"source": "task", "source_id": "r", "contact": "c1"},
            }
        ],
    }


def test_icon_absent_name_absent_and_ready_defaults() -> None:
    u = utils_at(NAIROBI, 2024, 3, 10, 12)
    defs = [
        {
            "name": "d",
            "title": "t",
            "appliesTo": "contacts",
            "events": [{"days": 0}],
            "actions": [{"form": "x"}],
        }
    ]
    [e] = run(defs, [container({"_id": "h1"})], u)
    assert "icon" not in e
    assert e["contact"] == {"_id": "h1"} and e["requester"] == "h1"
    assert (e["readyStart"], e["readyEnd"]) == (0, 0)


# --- due dates ------------------------------------------------------------------------------------


@pytest.mark.parametrize("tz", ZONES)
def test_days_due_dates_are_local_midnights(tz: str) -> None:
    u = utils_at(tz, 2024, 3, 20, 12)
    rd = local_ms(tz, 2024, 3, 8, 15)
    defs = [
        {
            "name": "d",
            "title": "t",
            "appliesTo": "reports",
            "events": [
                {"id": "a", "days": 3, "start": 0, "end": 0},
                {"id": "b", "days": 1.5, "start": 0, "end": 0},
            ],
            "actions": [{"form": "x"}],
        }
    ]
    out = by_id(run(defs, [container(reports=[report("r", "f", rd)])], u))
    assert out["r~a~d"]["dueDate"] == "2024-03-11" and out["r~a~d"]["dueDateMs"] == local_ms(tz, 2024, 3, 11)
    assert out["r~b~d"]["dueDate"] == "2024-03-09"  # Q4: 1.5 days -> 1


def test_contact_due_dates_count_from_reported_date_or_now() -> None:
    # Q3: a contact without reported_date counts from now
    u = utils_at(NAIROBI, 2024, 3, 10, 12)
    defs = [
        {
            "name": "d",
            "title": "t",
            "appliesTo": "contacts",
            "events": [{"id": "e", "days": 5}],
            "actions": [{"form": "x"}],
        }
    ]
    dated = {"_id": "a", "type": "person", "reported_date": local_ms(NAIROBI, 2024, 1, 1, 9)}
    undated = {"_id": "b", "type": "person"}
    out = by_id(run(defs, [container(dated), container(undated)], u))
    assert out["a~e~d"]["dueDate"] == "2024-01-06"
    assert out["b~e~d"]["dueDate"] == "2024-03-15"


def test_due_date_callback_results() -> None:
    u = utils_at(NAIROBI, 2024, 3, 10, 12)
    defs = [
        {
            "name": "d",
            "title": "t",
            "appliesTo": "contacts",
            "actions": [{"form": "x"}],
            "events": [
                {
                    "id": "utc",
                    "start": 0,
                    "end": 0,
                    "dueDate": lambda ctx: datetime(2024, 3, 12, 21, 30, tzinfo=UTC),
                },
                {"id": "invalid", "start": 0, "end": 0, "dueDate": lambda ctx: None},
            ],
        }
    ]
    out = by_id(run(defs, [container()], u))
    assert out["c1~utc~d"]["dueDate"] == "2024-03-13"  # local date of the instant
    assert out["c1~utc~d"]["dueDateMs"] == local_ms(NAIROBI, 2024, 3, 13, 0, 30)
    assert out["c1~invalid~d"]["dueDate"] is None and out["c1~invalid~d"]["dueDateMs"] is None
    assert out["c1~invalid~d"]["resolved"] is False


@pytest.mark.parametrize("bad", [1710000000000, "2024-03-10", datetime(2024, 3, 10)])
def test_due_date_callback_must_return_an_aware_datetime(bad: Any) -> None:
    u = utils_at(NAIROBI, 2024, 3, 10, 12)
    defs = [
        {
            "name": "d",
            "title": "t",
            "appliesTo": "contacts",
            "actions": [{"form": "x"}],
            "events": [{"start": 0, "end": 0, "dueDate": lambda ctx: bad}],
        }
    ]
    with pytest.raises(ConfigCodeError) as info:
        run(defs, [container()], u)
    assert info.value.callback == "events[0].dueDate"


# --- default resolution ---------------------------------------------------------------------------


@pytest.mark.parametrize("tz", ZONES)
def test_default_resolution_window_for_contact_tasks(tz: str) -> None:
    # reference 3.6: due 2024-03-12, start 1, end 1 -> [03-11 00:00, 03-14 00:00] inclusive
    u = utils_at(tz, 2024, 3, 12, 9)
    defs = [
        {
            "name": "d",
            "title": "t",
            "appliesTo": "contacts",
            "actions": [{"form": "visit"}],
            "events": [{"start": 1, "end": 1, "dueDate": lambda ctx: ctx.utils.make_date(2024, 3, 12)}],
        }
    ]
    cases = [
        (local_ms(tz, 2024, 3, 10, 23, 59, 59, 999), False),
        (local_ms(tz, 2024, 3, 11), True),
        (local_ms(tz, 2024, 3, 14), True),
        (local_ms(tz, 2024, 3, 14) + 1, False),
    ]
    for at, expected in cases:
        [e] = run(defs, [container(reports=[report("v", "visit", at)])], u)
        assert e["resolved"] is expected, (tz, at)


@pytest.mark.parametrize("tz", ZONES)
def test_default_resolution_excludes_the_triggering_report(tz: str) -> None:
    u = utils_at(tz, 2024, 3, 10, 18)
    src = local_ms(tz, 2024, 3, 10, 15)
    defs = [
        {
            "name": "d",
            "title": "t",
            "appliesTo": "reports",
            "appliesToType": ["visit"],
            "events": [{"days": 0, "start": 0, "end": 0}],
            "actions": [{"form": "visit"}],
        }
    ]
    cases = [
        (src, False),
        (src + 1, True),
        (local_ms(tz, 2024, 3, 11), True),
        (local_ms(tz, 2024, 3, 11) + 1, False),
    ]
    for at, expected in cases:
        reports = (
            [report("r", "visit", src), report("v", "visit", at)]
            if at != src
            else [report("r", "visit", src)]
        )
        out = by_id(run(defs, [container(reports=reports)], u))
        assert out["r~0~d"]["resolved"] is expected, (tz, at)


def test_default_resolution_counts_deleted_reports() -> None:
    u = utils_at(NAIROBI, 2024, 3, 10, 12)
    defs = [
        {
            "name": "d",
            "title": "t",
            "appliesTo": "contacts",
            "events": [{"days": 0, "start": 0, "end": 0}],
            "actions": [{"type": "contact"}, {"form": "visit"}],
        }
    ]
    [e] = run(
        defs, [container(reports=[report("v", "visit", local_ms(NAIROBI, 2024, 3, 10, 8), deleted=True)])], u
    )
    assert e["resolved"] is True  # the first *report* action's form resolves


def test_missing_resolving_form_raises() -> None:
    # cht-conf's error when a task's default resolving form is missing
    u = utils_at(NAIROBI, 2024, 3, 10, 12)
    defs = [
        {
            "name": "d",
            "title": "t",
            "appliesTo": "contacts",
            "events": [{"days": 0, "start": 0, "end": 0}],
            "actions": [{"type": "contact"}],
        }
    ]
    with pytest.raises(ConfigCodeError) as info:
        run(defs, [container()], u)
    err = info.value
    assert err.message == "Could not find the default resolving form!"
    assert (err.definition_index, err.definition_name, err.contact_id) == (0, "d", "c1")


# --- resolvedIf raw values, deleted, actions, priority, contactLabel ----------------------------------------


def test_resolved_raw_values() -> None:
    u = utils_at(NAIROBI, 2024, 3, 10, 12)
    values: list[Any] = [
        1710000000000,
        None,
        UNDEFINED,
        0,
        "",
        {"a": UNDEFINED, "b": 2.0},
        [UNDEFINED],
        math.nan,
    ]
    defs = [
        {
            "name": f"d{i}",
            "title": "t",
            "appliesTo": "contacts",
            "events": [{"days": 0}],
            "resolvedIf": (lambda v: lambda ctx: v)(v),
            "actions": [{"form": "x"}],
        }
        for i, v in enumerate(values)
    ]
    out = run(defs, [container()], u)
    raws = [e.get("_k_resolved_raw", "ABSENT") for e in out]
    assert raws == [1710000000000, None, "ABSENT", 0, "", {"b": 2}, [None], None]
    assert [e["resolved"] for e in out] == [True, False, False, False, False, True, True, False]


def test_deleted_precedence() -> None:
    u = utils_at(NAIROBI, 2024, 3, 10, 12)
    defs = [
        {
            "name": "r",
            "title": "t",
            "appliesTo": "reports",
            "events": [{"days": 0}],
            "actions": [{"form": "x"}],
        },
        {
            "name": "c",
            "title": "t",
            "appliesTo": "contacts",
            "events": [{"days": 0}],
            "actions": [{"form": "x"}],
        },
    ]
    gone = dict(PATIENT, _id="gone", deleted=True)
    out = by_id(
        run(
            defs,
            [
                container(PATIENT, [report("r1", "f", 0, deleted=True)]),
                container(gone, [report("r2", "f", 0)]),
            ],
            u,
        )
    )
    assert out["r1~0~r"]["deleted"] is True
    assert out["r2~0~r"]["deleted"] is False  # Q1: the contact's flag is ignored when a report is in play
    assert out["c1~0~c"]["deleted"] is False
    assert out["gone~0~c"]["deleted"] is True  # Kazi fix: CHT throws here


def test_actions_defaults_and_modify_content() -> None:
    u = utils_at(NAIROBI, 2024, 3, 10, 12)
    seen: list[Any] = []

    def modify(
        ctx: TaskContext, content: dict[str, Any], c: dict[str, Any], r: dict[str, Any], event: Any
    ) -> Any:
        seen.append((dict(content), c["contact"]["_id"], r["_id"], event["id"]))
        content["when"] = ctx.utils.make_date(2024, 3, 10)
        content["missing"] = ctx.utils.get_field(r, "nope")
        content["null"] = None
        content["nested"] = {"keep": 1, "drop": UNDEFINED, "list": [UNDEFINED, 1.0]}
        content["source"] = "custom"
        return "ignored"

    defs = [
        {
            "name": "d",
            "title": "t",
            "appliesTo": "reports",
            "events": [{"id": "e", "days": 0}],
            "resolvedIf": lambda ctx: False,
            "actions": [{"form": "a", "modifyContent": modify}, {"type": "contact", "label": "Open"}],
        }
    ]
    [e] = run(defs, [container(reports=[report("r", "f", 0)])], u)
    assert seen == [({"source": "task", "source_id": "r", "contact": PATIENT}, "c1", "r", "e")]
    assert e["actions"] == [
        {
            "type": "report",
            "form": "a",
            "label": "Follow up",
            "content": {
                "source": "custom",
                "source_id": "r",
                "contact": "c1",
                "when": "2024-03-09T21:00:00.000Z",
                "null": None,
                "nested": {"keep": 1, "list": [None, 1]},
            },
        },
        {
            "type": "contact",
            "label": "Open",
            "content": {"source": "task", "source_id": "r", "contact": "c1"},
        },
    ]


def test_content_contact_changed_by_modify_content() -> None:
    u = utils_at(NAIROBI, 2024, 3, 10, 12)

    def other(ctx: Any, content: dict[str, Any]) -> None:
        content["contact"] = {"_id": "someone-else", "name": "X"}

    def drop(ctx: Any, content: dict[str, Any]) -> None:
        del content["contact"]

    defs = [
        {
            "name": "d",
            "title": "t",
            "appliesTo": "contacts",
            "events": [{"days": 0}],
            "resolvedIf": lambda: 0,
            "actions": [{"form": "a", "modifyContent": other}, {"form": "b", "modifyContent": drop}],
        }
    ]
    [e] = run(defs, [container()], u)
    assert e["actions"][0]["content"]["contact"] == "someone-else"
    assert "contact" not in e["actions"][1]["content"]
    assert e["actions"][1]["content"]["source_id"] == "c1"


@pytest.mark.parametrize(
    ("priority", "expected"),
    [
        ({"level": "high", "label": "P"}, {"priority": "high", "priorityLabel": "P"}),
        ({"level": 0, "label": "zero"}, {"priority": 0, "priorityLabel": "zero"}),
        ({"label": "only"}, {"priorityLabel": "only"}),
        ({"level": None}, {"priority": None}),
        ({}, {}),  # an empty object is truthy but has neither
        (None, {}),
        (0, {}),
        (UNDEFINED, {}),
        (5, {}),  # (5).level is undefined
    ],
)
def test_priority(priority: Any, expected: dict[str, Any]) -> None:
    u = utils_at(NAIROBI, 2024, 3, 10, 12)
    for value in (priority, lambda ctx, c, r, event, due, idx: priority):
        defs = [
            {
                "name": "d",
                "title": "t",
                "appliesTo": "contacts",
                "events": [{"days": 0}],
                "resolvedIf": lambda: False,
                "actions": [{"form": "x"}],
                "priority": value,
            }
        ]
        [e] = run(defs, [container()], u)
        assert {k: e[k] for k in ("priority", "priorityLabel") if k in e} == expected


def test_contact_label() -> None:
    u = utils_at(NAIROBI, 2024, 3, 10, 12)
    labels: list[Any] = ["Static", lambda ctx, c, r: "From " + r["_id"], lambda ctx: "", lambda: None, "", 7]
    defs = [
        {
            "name": f"d{i}",
            "title": "t",
            "appliesTo": "reports",
            "events": [{"days": 0}],
            "contactLabel": v,
            "resolvedIf": lambda: 0,
            "actions": [{"form": "x"}],
        }
        for i, v in enumerate(labels)
    ]
    out = run(defs, [container(reports=[report("r", "f", 0)])], u)
    assert [e["contact"] for e in out] == [
        {"name": "Static"},
        {"name": "From r"},
        {"_id": "c1", "name": "Mary"},
        {"_id": "c1", "name": "Mary"},
        {"_id": "c1", "name": "Mary"},
        {"name": 7},
    ]
    assert all(e["requester"] == "c1" for e in out)


# --- scheduled tasks ------------------------------------------------------------------------------


def test_scheduled_tasks() -> None:
    u = utils_at(NAIROBI, 2025, 4, 3, 9)
    seen: list[Any] = []

    def applies(ctx: Any, c: Any, r: Any, i: int) -> bool:
        return r["scheduled_tasks"][i]["state"] != "cleared"

    def resolved(ctx: Any, c: Any, r: Any, event: Any, due: datetime, idx: int) -> bool:
        seen.append((event["id"], idx, due.date().isoformat()))
        return False

    base: dict[str, Any] = {
        "title": "t",
        "appliesTo": "scheduled_tasks",
        "appliesToType": ["sched"],
        "events": [
            {"id": "remind", "days": 0, "start": 1, "end": 1},
            {"id": "check", "days": 2, "start": 0, "end": 2},
        ],
        "actions": [{"form": "ack"}],
    }
    defs = [dict(base, name="never"), dict(base, name="series", appliesIf=applies, resolvedIf=resolved)]
    sched = report(
        "s1",
        "sched",
        0,
        scheduled_tasks=[
            {"due": "2025-04-03T20:00:00.000Z", "state": "scheduled"},
            {"due": "2025-04-04T20:00:00.000Z", "state": "cleared"},
            {"due": "2025-04-05T21:00:00.000Z", "state": "pending"},
        ],
    )
    plain = report("s2", "sched", 0)
    out = by_id(run(defs, [container(reports=[sched, plain])], u))
    assert sorted(out) == [
        "s1~check~series-0",
        "s1~check~series-2",
        "s1~remind~series-0",
        "s1~remind~series-2",
    ]
    assert out["s1~remind~series-0"]["dueDate"] == "2025-04-03"  # 20:00Z is 23:00 in Nairobi
    assert out["s1~remind~series-2"]["dueDate"] == "2025-04-06"
    assert out["s1~check~series-2"]["dueDate"] == "2025-04-08"
    assert seen == [
        ("remind", 0, "2025-04-03"),
        ("check", 0, "2025-04-05"),
        ("remind", 2, "2025-04-06"),
        ("check", 2, "2025-04-08"),
    ]


# --- `this`, order of callbacks, arity, errors ----------------------------------------------------


def test_context_is_shared_per_definition_and_container() -> None:
    u = utils_at(NAIROBI, 2024, 3, 10, 12)

    def applies(ctx: Any, c: Any, r: Any) -> bool:
        ctx.count = (ctx.count or 0) + 1
        return True

    defs: list[dict[str, Any]] = [
        {
            "name": "a",
            "title": "t",
            "appliesTo": "reports",
            "appliesIf": applies,
            "events": [{"days": 0}],
            "resolvedIf": lambda ctx: ctx.count,
            "priority": lambda ctx: {"level": ctx.count},
            "actions": [{"form": "x", "modifyContent": lambda ctx, content: content.update(n=ctx.count)}],
        },
        {
            "name": "b",
            "title": "t",
            "appliesTo": "reports",
            "events": [{"days": 0}],
            "resolvedIf": lambda ctx: ctx.count,
            "actions": [{"form": "x"}],
        },
    ]
    reports = [report("r1", "f", 0), report("r2", "f", 1), report("r3", "f", 2)]
    out = run(
        defs, [container(reports=reports), container(dict(PATIENT, _id="c2"), [report("r4", "f", 0)])], u
    )
    a = [
        (e["_id"], e["_k_resolved_raw"], e["priority"], e["actions"][0]["content"]["n"])
        for e in out
        if e["_id"].endswith("~a")
    ]
    assert a == [("r1~0~a", 1, 1, 1), ("r2~0~a", 2, 2, 2), ("r3~0~a", 3, 3, 3), ("r4~0~a", 1, 1, 1)]
    assert all("_k_resolved_raw" not in e for e in out if e["_id"].endswith("~b"))  # b's ctx never set it


def test_callback_order_matches_cht() -> None:
    # appliesIf, then EVERY event's dueDate, then per event: contactLabel, resolvedIf, modifyContent, priority
    u = utils_at(NAIROBI, 2024, 3, 10, 12)
    log: list[str] = []

    def rec(name: str, value: Any = True) -> Any:
        def fn(ctx: Any, *args: Any) -> Any:
            log.append(name)
            return value

        return fn

    def due(name: str) -> Any:
        def fn(ctx: Any, *args: Any) -> Any:
            log.append(name)
            return ctx.utils.now()

        return fn

    defs = [
        {
            "name": "d",
            "title": "t",
            "appliesTo": "reports",
            "appliesIf": rec("appliesIf"),
            "contactLabel": rec("label", ""),
            "resolvedIf": rec("resolvedIf"),
            "priority": rec("priority", None),
            "events": [
                {"id": "1", "start": 0, "end": 0, "dueDate": due("due1")},
                {"id": "2", "start": 0, "end": 0, "dueDate": due("due2")},
            ],
            "actions": [
                {"form": "a", "modifyContent": rec("modify-a")},
                {"form": "b", "modifyContent": rec("modify-b")},
            ],
        }
    ]
    run(defs, [container(reports=[report("r", "f", 0)])], u)
    per_event = ["label", "resolvedIf", "modify-a", "modify-b", "priority"]
    assert log == ["appliesIf", "due1", "due2", *per_event, *per_event]


def test_arguments_passed_and_arity() -> None:
    u = utils_at(NAIROBI, 2024, 3, 10, 12)
    got: dict[str, Any] = {}

    def resolved(ctx: Any, c: Any, r: Any, event: Any, due: Any, idx: Any) -> bool:
        got["resolved"] = (c["contact"]["_id"], r, event["id"], due.isoformat(), idx)
        return True

    def everything(*args: Any) -> Any:
        got["applies"] = args
        return True

    defs = [
        {
            "name": "d",
            "title": "t",
            "appliesTo": "contacts",
            "appliesIf": everything,
            "events": [{"id": "e", "days": 0, "dueDate": None}],
            "resolvedIf": resolved,
            "priority": lambda: {"level": 1},
            "contactLabel": lambda ctx: None,
            "actions": [{"form": "x", "modifyContent": lambda ctx, content: None}],
        }
    ]
    [e] = run(defs, [container()], u)
    assert isinstance(got["applies"][0], TaskContext) and got["applies"][1]["contact"] is PATIENT
    assert got["applies"][2] is UNDEFINED
    assert got["resolved"] == ("c1", UNDEFINED, "e", "2024-03-10T00:00:00+03:00", UNDEFINED)
    assert e["priority"] == 1


def test_context_globals_and_definition() -> None:
    u = utils_at(NAIROBI, 2024, 3, 10, 12)
    cht = ChtApi(["chw"], {"permissions": {"can_x": ["chw"]}})
    user = {"_id": "me", "parent": {"_id": "hc"}}
    got: dict[str, Any] = {}

    def resolved(ctx: TaskContext, c: Any, r: Any, event: Any, due: Any) -> Any:
        got.update(
            utils=ctx.utils,
            user=ctx.user,
            perm=ctx.cht.v1.hasPermissions("can_x") if ctx.cht else None,
            name=ctx.definition["name"],
            unset=ctx.never_set,
            get=ctx.get("never_set", 5),
        )
        return ctx.definition.defaultResolvedIf(c, r, event, due) or "fallback"

    defs = [
        {
            "name": "d",
            "title": "t",
            "appliesTo": "contacts",
            "events": [{"days": 0, "start": 0, "end": 0}],
            "resolvedIf": resolved,
            "actions": [{"form": "visit"}],
        }
    ]
    [e] = run(defs, [container()], u, user=user, cht=cht)
    assert got == {"utils": u, "user": user, "perm": True, "name": "d", "unset": UNDEFINED, "get": 5}
    assert e["_k_resolved_raw"] == "fallback"
    [e] = run(defs, [container(reports=[report("v", "visit", u.now_ms)])], u, user=user, cht=cht)
    assert e["_k_resolved_raw"] is True


def test_callback_errors_are_located() -> None:
    u = utils_at(NAIROBI, 2024, 3, 10, 12)

    def boom(ctx: Any, content: Any) -> None:
        raise KeyError("fields")

    defs = [
        {
            "name": "ok",
            "title": "t",
            "appliesTo": "contacts",
            "events": [{"days": 0}],
            "resolvedIf": lambda: 0,
            "actions": [{"form": "x"}],
        },
        {
            "name": "bad",
            "title": "t",
            "appliesTo": "reports",
            "events": [{"days": 0}],
            "resolvedIf": lambda: 0,
            "actions": [{"form": "x"}, {"form": "y", "modifyContent": boom}],
        },
    ]
    emitter = PythonEmitter(defs, file="tasks.py")
    good, broken = container(dict(PATIENT, _id="good")), container(reports=[report("r9", "f", 0)])
    with pytest.raises(ConfigCodeError) as info:
        emitter.emit([good, broken], u)
    err = info.value
    assert (err.file, err.definition_index, err.definition_name, err.callback, err.contact_id) == (
        "tasks.py",
        1,
        "bad",
        "actions[1].modifyContent",
        "c1",
    )
    assert err.message == "KeyError: 'fields'" and err.details["report_id"] == "r9" and "boom" in err.stack
    assert str(err).startswith('tasks.py, definition 1 ("bad"), actions[1].modifyContent, contact c1')
    out, errors = emitter.emit([good, broken, good], u, collect=True)
    assert [e["_id"] for e in out] == ["good~0~ok", "good~0~ok"] and len(errors) == 1


def test_to_json() -> None:
    assert to_json({"a": UNDEFINED, 1: (1, UNDEFINED), "f": print, "n": math.inf, "x": -0.0, "y": 1e21}) == {
        "1": [1, None],
        "n": None,
        "x": 0,
        "y": 1e21,
    }
    assert to_json(UNDEFINED) is UNDEFINED
    assert to_json(datetime(999, 1, 2, 3, 4, 5, 678900, tzinfo=UTC)) == "0999-01-02T03:04:05.678Z"
    with pytest.raises(TypeError):
        to_json({1, 2})


def test_worked_example_section_4() -> None:
    tz = NAIROBI
    u = utils_at(tz, 2024, 3, 10, 12)
    day = 86_400_000
    c = {"_id": "c1", "type": "contact", "contact_type": "patient"}
    r1 = report("r1", "pregnancy", u.now_ms - 3 * day)
    r2 = report("r2", "pregnancy_visit", u.now_ms - day)

    def modify(ctx: Any, content: dict[str, Any], c: Any, r: Any, event: Any) -> None:
        content["extra"] = event.get("id", UNDEFINED)

    defs = [
        {
            "name": "t-report",
            "title": "t",
            "appliesTo": "reports",
            "appliesToType": ["pregnancy"],
            "events": [{"id": "e1", "days": 2, "start": 2, "end": 2}, {"days": 5, "start": 1, "end": 1}],
            "priority": {"level": "high", "label": "P"},
            "actions": [{"form": "pregnancy_visit", "modifyContent": modify}],
        }
    ]
    out = by_id(run(defs, [container(c, [r1, r2])], u))
    first, second = out["r1~e1~t-report"], out["r1~1~t-report"]
    assert (first["dueDate"], first["resolved"]) == ("2024-03-09", True)
    assert (second["dueDate"], second["resolved"]) == ("2024-03-12", False)
    assert first["actions"][0]["content"] == {
        "source": "task",
        "source_id": "r1",
        "contact": "c1",
        "extra": "e1",
    }
    assert second["actions"][0]["content"] == {"source": "task", "source_id": "r1", "contact": "c1"}
    assert (first["priority"], first["priorityLabel"]) == ("high", "P")
