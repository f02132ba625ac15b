"""The web app's routes (kazi.server.app_api) with the demo program and a small demo population, on SQLite and
PostgreSQL: the caller's permissions and locale, forms, translations with fallback, task items with contact
and lineage, contact pages confined to the caller's place, and form submissions.

The two story tests act exactly as the web app does: take a Ready task from ``GET /api/v1/tasks``, find its
action's form in ``GET /api/v1/forms``, fill the hidden fields from the action's ``content`` (key or dotted
path, docs/api.md), answer the visible questions, ``POST /api/v1/reports``, then see the task leave the list
and its document become Completed.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from kazi.demo import PROGRAM_DIR
from kazi.demo.load import DemoUser, load_demo
from kazi.demo.population import DEFAULT_TZ, generate
from kazi.engine.dates import make_local
from kazi.program.forms import lookup
from kazi.server.api import create_app
from kazi.service.tasks import TaskService
from kazi.store import Store

DAY = date(2025, 8, 1)
NOW = int(make_local(DAY.year, DAY.month - 1, DAY.day, 10, tz=DEFAULT_TZ))
HOUSEHOLDS = 40  # with seed 1: the CHW has ANC visits to do, the site supervisor a missed appointment to verify
ANC = "task.anc.visit.title"
PNC = "task.pnc.home_visit.title"
VERIFY = "task.art.verify_missed_appointment.title"


@dataclass
class Demo:
    client: TestClient
    store: Store
    service: TaskService
    users: dict[str, DemoUser]  # by role

    def auth(self, role: str) -> tuple[str, str]:
        return (self.users[role].username, self.users[role].password)

    def get(self, path: str, role: str, **kw: Any) -> httpx.Response:
        return self.client.get(path, auth=self.auth(role), **kw)

    def post(self, path: str, role: str, **kw: Any) -> httpx.Response:
        return self.client.post(path, auth=self.auth(role), **kw)

    def ok(self, path: str, role: str, **kw: Any) -> Any:
        resp = self.get(path, role, **kw)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def account(self, role: str) -> Any:
        return self.store.users.get(self.users[role].username)


@pytest.fixture
def demo(store: Store) -> Iterator[Demo]:
    service = TaskService(store, clock=lambda: NOW)
    try:
        users = load_demo(store, service, generate(HOUSEHOLDS, 1, DAY))
        with TestClient(create_app(store=store, service=service)) as client:
            yield Demo(client, store, service, {u.roles[0]: u for u in users})
    finally:
        service.close()


def error(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    return resp.json()["error"]  # type: ignore[no-any-return]


# --------------------------------------------------------------------------------------------------------
# what a client does (docs/api.md, "Forms"): written here from the documented rules, not with kazi's code


def fill(form: dict[str, Any], content: dict[str, Any], answers: dict[str, Any]) -> dict[str, Any]:
    """The form's hidden fields from the action's content, then the visible answers given."""
    fields: dict[str, Any] = {}
    for field in form["fields"]:
        if field["type"] == "hidden":
            value = lookup(content, field.get("from") or field["name"])
            if isinstance(value, dict):
                value = value.get("_id")
            if value is not None:
                fields[field["name"]] = value
    return {**fields, **answers}


def task_by_title(demo: Demo, role: str, title: str) -> dict[str, Any]:
    items = demo.ok("/api/v1/tasks", role, params={"limit": 1000})["items"]
    return next(t for t in items if t["emission"]["title"] == title)


def submit_task_form(demo: Demo, role: str, task: dict[str, Any], answers: dict[str, Any],
                     report_id: str) -> dict[str, Any]:
    action = next(a for a in task["emission"]["actions"] if a["type"] == "report")
    forms = {f["id"]: f for f in demo.ok("/api/v1/forms", role)["forms"]}
    body = {"_id": report_id, "form": action["form"], "fields": fill(forms[action["form"]], action["content"],
                                                                     answers)}
    resp = demo.post("/api/v1/reports", role, json=body)
    assert resp.status_code == 201, resp.text
    assert resp.json()["status"] == "created"
    return resp.json()["doc"]  # type: ignore[no-any-return]


def assert_completed(demo: Demo, role: str, task: dict[str, Any]) -> None:
    ids = {t["_id"] for t in demo.ok("/api/v1/tasks", role, params={"limit": 1000})["items"]}
    assert task["_id"] not in ids
    doc = demo.ok(f"/api/v1/tasks/{task['_id']}", role)
    assert doc["state"] == "Completed"
    assert [h["state"] for h in doc["stateHistory"]][-2:] == ["Ready", "Completed"]


# --------------------------------------------------------------------------------------------------------
# the stories


def test_chw_completes_an_anc_visit_through_its_form_and_a_delivery_starts_pnc(demo: Demo) -> None:
    task = task_by_title(demo, "chw", ANC)
    woman = task["contact"]["_id"]
    assert task["contact"]["name"] and task["owner"] == woman
    chw = demo.account("chw")
    assert [p["contact_type"] for p in task["lineage"]] == ["clinic", "chw_area"]
    assert task["lineage"][-1]["_id"] == chw.facility_id  # up to the CHW's own area, not above it
    report = submit_task_form(demo, "chw", task, {"attended_anc_clinic": "yes", "next_clinic_date": "2025-08-20",
                                                  "danger_signs": ["none"]}, "anc-visit-report-1")
    assert report["fields"]["patient_uuid"] == woman
    assert report["fields"]["source_report_id"] == task["emission"]["actions"][0]["content"]["source_report_id"]
    assert report["fields"]["danger_signs"] == "none" and "referred_to_facility" not in report["fields"]
    assert report["contact"]["_id"] == chw.contact_id
    assert report["contact"]["parent"]["_id"] == chw.facility_id  # the submitter's minified lineage
    assert report["reported_date"] == NOW
    assert_completed(demo, "chw", task)

    # a delivery submitted through its form ends the pregnancy and starts the postnatal visits
    forms = {f["id"]: f for f in demo.ok("/api/v1/forms", "chw")["forms"]}
    content = {"source": "task", "contact": {"_id": woman}}
    body = {"_id": "delivery-report-1", "form": "delivery", "fields": fill(forms["delivery"], content, {
        "outcome": "live_birth", "delivery_date": "2025-07-31", "delivery_place": "home", "babies_alive": 1,
        "mother_alive": "yes"})}
    assert demo.post("/api/v1/reports", "chw", json=body).status_code == 201
    items = demo.ok("/api/v1/tasks", "chw", params={"limit": 1000})["items"]
    assert not [t for t in items if t["owner"] == woman and t["emission"]["title"] == ANC]
    pnc = [t for t in items if t["owner"] == woman and t["emission"]["title"] == PNC]
    assert len(pnc) == 1 and pnc[0]["emission"]["dueDate"] == "2025-08-01"
    assert pnc[0]["emission"]["actions"][0]["content"]["delivery_date"] == "2025-07-31"


def test_online_supervisor_verifies_a_missed_appointment_through_its_form(demo: Demo) -> None:
    task = task_by_title(demo, "site_supervisor", VERIFY)
    content = task["emission"]["actions"][0]["content"]
    assert content["contact"]["_id"] == task["contact"]["_id"]  # hydrated as CHT does before opening a form
    report = submit_task_form(demo, "site_supervisor", task, {"verified_by": "phone",
                                                              "outcome": "returned_to_care"}, "verification-1")
    assert report["fields"]["missed_appointment_id"] == content["missed_appointment_id"]
    assert report["fields"]["patient_id"] == content["patient_id"]
    assert_completed(demo, "site_supervisor", task)
    # the program officer's escalation of the same missed appointment, if any, is resolved too
    officer = demo.ok("/api/v1/tasks", "program_officer", params={"limit": 1000})["items"]
    assert not [t for t in officer if t["emission_id"].split("~")[0] == content["missed_appointment_id"]]


def test_a_submission_shows_at_once_when_a_worker_serves_the_others(demo: Demo) -> None:
    """With a background worker (`others_to_worker`, as `kazi serve` runs), a read computes only the caller's
    own writes: the form's report must count as one, or the task would stay listed until the worker's round."""
    demo.service.others_to_worker = True
    task = task_by_title(demo, "site_supervisor", VERIFY)
    submit_task_form(demo, "site_supervisor", task, {"verified_by": "phone", "outcome": "returned_to_care"},
                     "verification-own")
    assert_completed(demo, "site_supervisor", task)


# --------------------------------------------------------------------------------------------------------
# the caller, forms and translations


def test_me_gives_permissions_locale_and_program_version(demo: Demo) -> None:
    chw = demo.ok("/api/v1/me", "chw")
    assert chw["offline"] is True and chw["locale"] == "en" and chw["user_locale"] is None
    assert chw["program_version"] == 1
    assert {"can_view_tasks_group", "can_do_home_visits", "can_view_tasks"} <= set(chw["permissions"])
    assert "can_verify_missed_appointments" not in chw["permissions"]
    assert chw["permissions"] == sorted(chw["permissions"])
    sup = demo.ok("/api/v1/me", "site_supervisor")
    assert sup["offline"] is False and "can_view_tasks_group" not in sup["permissions"]
    assert "can_verify_missed_appointments" in sup["permissions"]
    program = demo.service.program()
    assert program is not None
    assert demo.ok("/api/v1/me", "admin")["permissions"] == sorted(program.permissions)  # admins hold all
    demo.store.users.update(demo.users["chw"].username, locale="ny")
    me = demo.ok("/api/v1/me", "chw")
    assert me["locale"] == "ny" and me["user_locale"] == "ny"


def test_forms_routes(demo: Demo) -> None:
    page = demo.ok("/api/v1/forms", "chw")
    assert page["program_version"] == 1
    assert [f["id"] for f in page["forms"]] == sorted(f["id"] for f in page["forms"])
    assert len(page["forms"]) == 11  # the ten task actions' forms and the supervisor task's follow-up
    one = demo.ok("/api/v1/forms/appointment_verification", "site_supervisor")
    assert one == next(f for f in page["forms"] if f["id"] == "appointment_verification")
    assert one["fields"][0] == {"name": "patient_id", "type": "hidden"}  # the file as written
    assert "form 'nope' not found" in error(demo.get("/api/v1/forms/nope", "chw"), 404)["message"]
    assert demo.client.get("/api/v1/forms").status_code == 401


def test_translations_fall_back_to_the_default_locale(demo: Demo, tmp_path: Path) -> None:
    ny = demo.ok("/api/v1/translations", "chw", params={"locale": "ny"})
    assert ny["locale"] == "ny" and ny["default_locale"] == "en" and ny["locales"] == ["en", "ny"]
    assert ny["messages"]["task.anc.visit.title"] == "Kuyendera mayi woyembekezera"
    assert demo.ok("/api/v1/translations", "chw", params={"locale": "ny-MW"})["messages"] == ny["messages"]
    en = demo.ok("/api/v1/translations", "chw")  # the caller's locale: none stored, the program's default
    assert en["locale"] == "en" and en["messages"]["task.anc.visit.title"] == "ANC visit"
    assert demo.ok("/api/v1/translations", "chw", params={"locale": "fr"})["messages"] == en["messages"]
    assert error(demo.get("/api/v1/translations", "chw", params={"locale": "Chichewa"}), 422)["field"] == \
        "query.locale"
    demo.store.users.update(demo.users["chw"].username, locale="ny")
    assert demo.ok("/api/v1/translations", "chw")["locale"] == "ny"

    # a key missing from Chichewa shows in English; one missing everywhere is absent
    program = tmp_path / "program"
    shutil.copytree(PROGRAM_DIR, program)
    ny_file = program / "translations" / "messages-ny.properties"
    ny_file.write_text("".join(line for line in ny_file.read_text().splitlines(keepends=True)
                               if not line.startswith("task.anc.visit.title")))
    en_file = program / "translations" / "messages-en.properties"
    en_file.write_text("".join(line for line in en_file.read_text().splitlines(keepends=True)
                               if not line.startswith("task.priority.low")))
    demo.service.load_program(program)
    messages = demo.ok("/api/v1/translations", "chw")["messages"]
    assert messages["task.anc.visit.title"] == "ANC visit"
    assert messages["task.pnc.home_visit.title"] == "Kuyendera mayi atabereka"
    assert messages["task.priority.low"] == "Zosafulumira"
    assert "task.priority.low" not in demo.ok("/api/v1/translations", "chw", params={"locale": "en"})["messages"]


# --------------------------------------------------------------------------------------------------------
# tasks and contacts


def test_task_items_and_state_filter(demo: Demo) -> None:
    ready = demo.ok("/api/v1/tasks", "chw", params={"limit": 1000})
    draft = demo.ok("/api/v1/tasks", "chw", params={"state": "Draft", "limit": 1000})
    both = demo.ok("/api/v1/tasks", "chw", params={"state": ["Ready", "Draft"], "limit": 1000})
    assert {t["state"] for t in ready["items"]} == {"Ready"} and {t["state"] for t in draft["items"]} == {"Draft"}
    assert draft["total"] > 0 and both["total"] == ready["total"] + draft["total"]
    for item in both["items"]:
        assert item["contact"]["_id"] == item["owner"] and item["contact"]["name"]
        assert item["emission_id"] == item["emission"]["_id"]
        assert [p["_id"] for p in item["lineage"]][-1] == demo.account("chw").facility_id
        assert set(item["lineage"][0]) == {"_id", "name", "contact_type"}
    assert error(demo.get("/api/v1/tasks", "chw", params={"state": "Completed"}), 422)["field"] == "query.state.0"
    # an admin sees every ancestor, the district included
    admin_items = demo.ok("/api/v1/tasks", "admin")["items"]
    assert admin_items and admin_items[0]["lineage"][-1]["contact_type"] == "district_hospital"


def test_contact_page_is_confined_to_the_callers_place(demo: Demo) -> None:
    chw = demo.account("chw")
    task = task_by_title(demo, "chw", ANC)
    woman = task["contact"]["_id"]
    page = demo.ok(f"/api/v1/contacts/{woman}", "chw")
    assert page["contact"]["_id"] == woman and page["lineage"] == task["lineage"]
    assert [t["_id"] for t in page["tasks"]] == [t["_id"] for t in demo.ok(
        "/api/v1/tasks", "chw", params={"limit": 1000})["items"] if t["owner"] == woman]
    assert page["reports"] and all(r["type"] == "data_record" for r in page["reports"])
    dates = [r["reported_date"] for r in page["reports"]]
    assert dates == sorted(dates, reverse=True)
    household = demo.ok(f"/api/v1/contacts/{task['lineage'][0]['_id']}", "chw")
    assert woman in {c["_id"] for c in household["children"]}
    assert all(set(c) == {"_id", "name", "contact_type"} for c in household["children"])

    # the health centre and the site supervisor's person are above or beside the CHW's area
    health_centre = demo.store.lineage(chw.facility_id)[0]
    sup = demo.account("site_supervisor")
    missing = error(demo.get("/api/v1/contacts/no-such-contact", "chw"), 404)["message"]
    for outside in (health_centre, sup.contact_id):
        assert error(demo.get(f"/api/v1/contacts/{outside}", "chw"), 404)["message"] == \
            missing.replace("no-such-contact", outside)
        assert demo.get(f"/api/v1/contacts/{outside}", "site_supervisor").status_code == 200
    # a report is not a contact
    report_id = page["reports"][0]["_id"]
    error(demo.get(f"/api/v1/contacts/{report_id}", "chw"), 404)


# --------------------------------------------------------------------------------------------------------
# submissions


def anc_body(demo: Demo, report_id: str, **answers: Any) -> dict[str, Any]:
    task = task_by_title(demo, "chw", ANC)
    forms = {f["id"]: f for f in demo.ok("/api/v1/forms", "chw")["forms"]}
    content = task["emission"]["actions"][0]["content"]
    fields = fill(forms["anc_visit"], content, {"attended_anc_clinic": "no", "danger_signs": "none", **answers})
    return {"_id": report_id, "form": "anc_visit", "fields": fields}


def test_the_same_submission_twice_is_stored_once(demo: Demo) -> None:
    body = anc_body(demo, "twice-1")
    first = demo.post("/api/v1/reports", "chw", json=body)
    assert first.status_code == 201 and first.json()["status"] == "created"
    seq = demo.store.last_seq()
    again = demo.post("/api/v1/reports", "chw", json=body)
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "unchanged"
    assert again.json()["rev"] == first.json()["rev"] and again.json()["doc"] == first.json()["doc"]
    assert demo.store.last_seq() == seq  # nothing written
    # with the time given by the client, the same holds
    timed = {**anc_body(demo, "twice-2"), "reported_date": NOW - 3_600_000}
    assert demo.post("/api/v1/reports", "chw", json=timed).status_code == 201
    assert demo.post("/api/v1/reports", "chw", json=timed).json()["status"] == "unchanged"
    assert demo.store.get_doc("twice-2")["reported_date"] == NOW - 3_600_000


def test_another_submission_under_a_used_id_is_a_conflict(demo: Demo) -> None:
    body = anc_body(demo, "conflict-1")
    assert demo.post("/api/v1/reports", "chw", json=body).status_code == 201
    stored = demo.store.get_doc("conflict-1")
    changed = anc_body(demo, "conflict-1", attended_anc_clinic="yes")
    err = error(demo.post("/api/v1/reports", "chw", json=changed), 409)
    assert err["field"] == "_id" and "already used" in err["message"]
    timed = {**body, "reported_date": NOW - 1}
    error(demo.post("/api/v1/reports", "chw", json=timed), 409)
    # an id of any other document is taken too, even one the caller cannot see
    other = demo.account("site_supervisor").contact_id
    error(demo.post("/api/v1/reports", "chw", json={**body, "_id": other}), 409)
    assert demo.store.get_doc("conflict-1") == stored


def test_invalid_answers_are_a_422_listing_each_field(demo: Demo) -> None:
    body = anc_body(demo, "bad-1")
    body["fields"].update({"attended_anc_clinic": "maybe", "next_clinic_date": "tomorrow", "colour": "red",
                           "danger_signs": ["fever", "sneezing"]})
    del body["fields"]["source_report_id"]
    err = error(demo.post("/api/v1/reports", "chw", json=body), 422)
    fields = {p["field"] for p in err["problems"]}
    assert fields == {"fields.colour", "fields.source_report_id", "fields.attended_anc_clinic",
                      "fields.danger_signs", "fields.referred_to_facility"}
    assert all(p["message"] for p in err["problems"])
    one = anc_body(demo, "bad-2", next_clinic_date="2025-13-01", attended_anc_clinic="yes")
    err = error(demo.post("/api/v1/reports", "chw", json=one), 422)
    assert err["field"] == "fields.next_clinic_date" and len(err["problems"]) == 1
    assert error(demo.post("/api/v1/reports", "chw", json={**body, "form": "nope"}), 422)["field"] == "form"
    assert error(demo.post("/api/v1/reports", "chw", json={**anc_body(demo, "_design/x")}), 422)["field"] == "_id"
    error(demo.post("/api/v1/reports", "chw", json={**anc_body(demo, "bad-3"), "extra": 1}), 422)
    assert demo.store.get_docs(["bad-1", "bad-2", "bad-3"]) == []


def test_a_report_about_a_contact_outside_the_place_is_refused(demo: Demo) -> None:
    outside = demo.account("site_supervisor").contact_id
    assert outside is not None
    body = anc_body(demo, "outside-1")
    body["fields"]["patient_uuid"] = outside
    err = error(demo.post("/api/v1/reports", "chw", json=body), 404)
    assert err["field"] == "fields.patient_uuid"
    assert demo.store.get_docs(["outside-1"]) == []
    # a subject Kazi does not know is kept, as CHT keeps it (it belongs to the submitter's place)
    body = anc_body(demo, "headless-1")
    body["fields"]["patient_uuid"] = "not-a-known-contact"
    assert demo.post("/api/v1/reports", "chw", json=body).status_code == 201
    assert demo.get("/api/v1/docs/headless-1", "chw").status_code == 200


def test_admins_set_a_users_locale_through_the_api(demo: Demo) -> None:
    chw = demo.account("chw")
    new = {"username": "grace", "password": "grace-password", "roles": ["chw"], "facility_id": chw.facility_id,
           "locale": "ny"}
    created = demo.post("/api/v1/users", "admin", json=new)
    assert created.status_code == 201 and created.json()["locale"] == "ny"
    assert error(demo.post("/api/v1/users", "admin", json={**new, "username": "kofi", "locale": "Chichewa"}),
                 422)["field"] == "locale"
    resp = demo.client.patch("/api/v1/users/grace", auth=demo.auth("admin"), json={"locale": None})
    assert resp.status_code == 200 and resp.json()["locale"] is None
    assert demo.client.get("/api/v1/me", auth=("grace", "grace-password")).json()["locale"] == "en"
    assert demo.ok("/api/v1/users/grace", "admin")["locale"] is None
