"""The Python ``Utils`` against cht-nootils semantics (cht-nootils 4.2.0, as bundled with cht-core 4.11).

Date vectors run in three zones: Africa/Nairobi (no DST), America/New_York (DST on 2024-03-10 and
2024-11-03) and Pacific/Auckland (DST ends 2024-04-07, starts 2024-09-29).  The epoch-ms values in
``V8`` were computed by running the same expressions (cht-nootils' ``addDate``/``getLmpDate`` and
``new Date``) in V8 with the process zone set to each zone, so they pin JavaScript's answers, not ours.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest

from kazi.engine.utils import (
    MS_IN_DAY,
    UNDEFINED,
    Utils,
    js_ge,
    js_gt,
    js_le,
    js_lt,
    js_or,
    js_same_value_zero,
    js_strict_equals,
    js_string,
    js_to_number,
    js_truthy,
)
from kazi.program import shape

ZONES = ["Africa/Nairobi", "America/New_York", "Pacific/Auckland"]

# name -> expected epoch ms (None = Invalid Date), per zone; computed in V8 (see module docstring)
V8: dict[str, dict[str, int | None]] = {
    "Africa/Nairobi": {
        "across": 1710104400000,
        "frac": 1710104400000,
        "negfrac": 1709845200000,
        "neg": 1709758800000,
        "str": 1718053200000,
        "lmp10": 1703970000000,
        "lmp_none": 1707598800000,
        "lmp_str": 1708808400000,
        "lmp_null_rd": -2430000000,
        "nz_dst_end": 1712437200000,
        "nz_dst_start": 1727557200000,
        "ny_fall": 1730581200000,
        "ny_gap_local": 1710027000000,
        "ny_amb_local": 1730586600000,
        "addm1": 1709154000000,
        "mk": 1739480400000,
        "iso_utc": 1743710400000,
        "iso_off": 1743703200000,
        "iso_date": 1743638400000,
        "iso_local": 1743699600000,
        "iso_frac": 1743710400123,
        "bad": None,
        "h24": 1743724800000,
        "h24bad": None,
    },
    "America/New_York": {
        "across": 1710129600000,
        "frac": 1710129600000,
        "negfrac": 1709874000000,
        "neg": 1709787600000,
        "str": 1718078400000,
        "lmp10": 1703998800000,
        "lmp_none": 1707627600000,
        "lmp_str": 1708837200000,
        "lmp_null_rd": -2487600000,
        "nz_dst_end": 1712462400000,
        "nz_dst_start": 1727582400000,
        "ny_fall": 1730606400000,
        "ny_gap_local": 1710055800000,
        "ny_amb_local": 1730611800000,
        "addm1": 1709182800000,
        "mk": 1739509200000,
        "iso_utc": 1743710400000,
        "iso_off": 1743703200000,
        "iso_date": 1743638400000,
        "iso_local": 1743724800000,
        "iso_frac": 1743710400123,
        "bad": None,
        "h24": 1743724800000,
        "h24bad": None,
    },
    "Pacific/Auckland": {
        "across": 1710068400000,
        "frac": 1710068400000,
        "negfrac": 1709809200000,
        "neg": 1709722800000,
        "str": 1718020800000,
        "lmp10": 1703934000000,
        "lmp_none": 1707562800000,
        "lmp_str": 1708772400000,
        "lmp_null_rd": -2462400000,
        "nz_dst_end": 1712401200000,
        "nz_dst_start": 1727524800000,
        "ny_fall": 1730545200000,
        "ny_gap_local": 1709991000000,
        "ny_amb_local": 1730550600000,
        "addm1": 1709118000000,
        "mk": 1739444400000,
        "iso_utc": 1743710400000,
        "iso_off": 1743703200000,
        "iso_date": 1743638400000,
        "iso_local": 1743663600000,
        "iso_frac": 1743710400123,
        "bad": None,
        "h24": 1743724800000,
        "h24bad": None,
    },
}


def _ms(u: Utils, value: datetime | None) -> int | None:
    t = u.to_ms(value)
    return None if t != t else int(t)


def _local(value: datetime | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    return (value.year, value.month, value.day, value.hour, value.minute, value.second)


def _vectors(u: Utils) -> dict[str, int | None]:
    """The same expressions as the V8 run, through the Python Utils."""
    mk, d = u.make_date, u.to_date
    rd = u.to_ms(mk(2024, 3, 10, 15))
    return {
        "across": _ms(u, u.add_date(d("2024-03-09T12:00"), 2)),
        "frac": _ms(u, u.add_date(d(rd), 1.5)),
        "negfrac": _ms(u, u.add_date(d(rd), -1.5)),
        "neg": _ms(u, u.add_date(d(rd), -3)),
        "str": _ms(u, u.add_date(d(rd), "3")),  # type: ignore[arg-type]
        "lmp10": _ms(u, u.get_lmp_date({"reported_date": rd, "fields": {"last_menstrual_period": 10}})),
        "lmp_none": _ms(u, u.get_lmp_date({"reported_date": rd, "fields": {}})),
        "lmp_str": _ms(u, u.get_lmp_date({"reported_date": rd, "fields": {"last_menstrual_period": "2"}})),
        "lmp_null_rd": _ms(u, u.get_lmp_date({"reported_date": None, "fields": {}})),
        "nz_dst_end": _ms(u, u.add_date(mk(2024, 4, 6, 12), 1)),
        "nz_dst_start": _ms(u, u.add_date(mk(2024, 9, 28, 12), 1)),
        "ny_fall": _ms(u, u.add_date(mk(2024, 11, 2, 23, 30), 1)),
        "ny_gap_local": _ms(u, mk(2024, 3, 10, 2, 30)),
        "ny_amb_local": _ms(u, mk(2024, 11, 3, 1, 30)),
        "addm1": _ms(u, u.add_date(mk(2024, 3, 1, 10), -1)),
        "mk": _ms(u, mk(2024, 13, 45)),
        "iso_utc": _ms(u, d("2025-04-03T20:00:00.000Z")),
        "iso_off": _ms(u, d("2025-04-03T20:00:00+02:00")),
        "iso_date": _ms(u, d("2025-04-03")),
        "iso_local": _ms(u, d("2025-04-03T20:00")),
        "iso_frac": _ms(u, d("2025-04-03T20:00:00.1234Z")),
        "bad": _ms(u, d("2025-13-03")),
        "h24": _ms(u, d("2025-04-03T24:00:00Z")),
        "h24bad": _ms(u, d("2025-04-03T24:00:01Z")),
    }


@pytest.fixture(params=ZONES)
def u(request: pytest.FixtureRequest) -> Utils:
    tz = request.param
    now = Utils(0, tz).to_ms(Utils(0, tz).make_date(2024, 3, 10, 15))
    return Utils(now, tz, [{"name": "anc", "events": [1]}, {"name": "anc", "events": [2]}, "junk"])


# --- dates: V8 parity --------------------------------------------------------------------------------------


@pytest.mark.parametrize("tz", ZONES)
@pytest.mark.parametrize("name", sorted(V8["Africa/Nairobi"]))
def test_date_vectors_match_v8(tz: str, name: str) -> None:
    assert _vectors(Utils(0, tz))[name] == V8[tz][name]


# --- addDate ------------------------------------------------------------------------------------------------


def test_add_date_crosses_dst_to_local_midnight(u: Utils) -> None:
    # CHT's addDate(new Date('2024-03-09T12:00'), 2) -> local 2024-03-11 00:00 (across NY's DST)
    result = u.add_date(u.to_date("2024-03-09T12:00"), 2)
    assert _local(result) == (2024, 3, 11, 0, 0, 0)
    assert result is not None and result.tzinfo is not None and result.utcoffset() == u.zone.utcoffset(result)


def test_add_date_fraction_truncates_the_day_sum(u: Utils) -> None:
    base = u.make_date(2024, 3, 10, 15)
    assert _local(u.add_date(base, 1.5)) == (2024, 3, 11, 0, 0, 0)  # Q4
    # JavaScript truncates getDate() + days: 10 + -1.5 = 8.5 -> the 8th (two days back, not one)
    assert _local(u.add_date(base, -1.5)) == (2024, 3, 8, 0, 0, 0)
    assert _local(u.add_date(base, 0)) == (2024, 3, 10, 0, 0, 0)
    assert _local(u.add_date(base, -10)) == (2024, 2, 29, 0, 0, 0)  # leap day


def test_add_date_invalid_inputs(u: Utils) -> None:
    assert u.add_date(None, 3) is None  # an invalid date stays invalid
    assert u.add_date(u.now(), math.nan) is None
    assert u.add_date(u.now(), UNDEFINED) is None  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        u.add_date(1_700_000_000_000, 1)  # type: ignore[arg-type]  # CHT: date.getTime is not a function
    with pytest.raises(TypeError):
        u.add_date(datetime(2024, 3, 10), 1)  # naive: no zone, not a date
    # null days add nothing (getDate() + null)
    assert _local(u.add_date(u.now(), None)) == (2024, 3, 10, 0, 0, 0)  # type: ignore[arg-type]


def test_add_date_accepts_other_zones_and_returns_the_computation_zone(u: Utils) -> None:
    other = datetime(2024, 3, 10, 12, 0, tzinfo=UTC)
    result = u.add_date(other, 0)
    assert result is not None and result.tzinfo == u.zone
    assert _local(result)[:3] == _local(other.astimezone(u.zone))[:3]  # type: ignore[index]


def test_add_date_is_local_midnight_in_dst_transition_days() -> None:
    ny = Utils(0, "America/New_York")
    assert _local(ny.add_date(ny.make_date(2024, 3, 9, 23, 30), 1)) == (2024, 3, 10, 0, 0, 0)
    assert (
        ny.to_ms(ny.add_date(ny.make_date(2024, 3, 10, 12), 1))
        - ny.to_ms(ny.add_date(ny.make_date(2024, 3, 10, 12), 0))
        == MS_IN_DAY - 3_600_000
    )  # 23-hour day
    nz = Utils(0, "Pacific/Auckland")
    assert (
        nz.to_ms(nz.add_date(nz.make_date(2024, 4, 7, 12), 1))
        - nz.to_ms(nz.add_date(nz.make_date(2024, 4, 7, 12), 0))
        == MS_IN_DAY + 3_600_000
    )  # 25-hour day


# --- getLmpDate ---------------------------------------------------------------------------------------------


def test_get_lmp_date(u: Utils) -> None:
    rd = u.to_ms(u.make_date(2024, 3, 10, 15))
    # values observed on CHT's getLmpDate
    assert _local(u.get_lmp_date({"reported_date": rd, "fields": {"last_menstrual_period": 10}})) == (
        2023,
        12,
        31,
        0,
        0,
        0,
    )
    assert _local(u.get_lmp_date({"reported_date": rd, "fields": {}})) == (2024, 2, 11, 0, 0, 0)
    assert _local(u.get_lmp_date({"reported_date": rd, "fields": {"last_menstrual_period": 0}})) == (
        2024,
        2,
        11,
        0,
        0,
        0,
    )  # 0 -> 4 weeks
    assert u.get_lmp_date({"fields": {}}) is None  # no reported_date: new Date(undefined) is invalid
    with pytest.raises(TypeError):
        u.get_lmp_date({"reported_date": rd})  # CHT throws without `fields`


# --- getSchedule ----------------------------------------------------------------------------------


def test_get_schedule(u: Utils) -> None:
    assert u.get_schedule("anc") == {"name": "anc", "events": [1]}  # the first match
    assert u.get_schedule("pnc") is UNDEFINED
    assert Utils(0, "Africa/Nairobi").get_schedule("anc") is UNDEFINED  # no schedules at all
    assert Utils(0, "Africa/Nairobi", [{"name": 1}]).get_schedule(True) is UNDEFINED  # ===


# --- getMostRecentReport / getMostRecentTimestamp -------------------------------------------------


REPORTS: list[dict[str, Any]] = [
    {"_id": "a", "form": "f", "reported_date": 10, "fields": {"n": 2, "flag": True, "g": {"x": "y"}}},
    {"_id": "b", "form": "f", "reported_date": 30, "deleted": True, "fields": {"n": 2}},
    {"_id": "c", "form": "g", "reported_date": 20, "fields": {"n": "2"}},
    {"_id": "d", "form": "f", "reported_date": 10, "fields": {"n": 2}},  # tie with "a"
    {"_id": "e", "form": "h", "reported_date": 5},
]


def test_get_most_recent_report(u: Utils) -> None:
    assert u.get_most_recent_report(REPORTS, "f")["_id"] == "a"  # deleted b ignored; tie keeps the earlier
    assert u.get_most_recent_report(REPORTS, ["f", "g"])["_id"] == "c"
    assert u.get_most_recent_report(REPORTS, "zzz") is None
    assert u.get_most_recent_report([], "f") is None
    # fields compare with ===: 2 !== '2', True !== 1
    assert u.get_most_recent_report(REPORTS, ["f", "g"], {"n": 2})["_id"] == "a"
    assert u.get_most_recent_report(REPORTS, ["f", "g"], {"n": "2"})["_id"] == "c"
    assert u.get_most_recent_report(REPORTS, "f", {"flag": 1}) is None
    assert u.get_most_recent_report(REPORTS, "f", {"g.x": "y"})["_id"] == "a"
    # an empty fields object is truthy in JavaScript: the report needs `fields`
    assert u.get_most_recent_report(REPORTS, "h", {}) is None
    assert u.get_most_recent_report(REPORTS, "h")["_id"] == "e"


def test_get_most_recent_report_keeps_a_first_candidate_without_date(u: Utils) -> None:
    # `5 > undefined` is false in JavaScript: a later dated report does not replace it
    reports = [{"_id": "x", "form": "f"}, {"_id": "y", "form": "f", "reported_date": 5}]
    assert u.get_most_recent_report(reports, "f")["_id"] == "x"


def test_get_most_recent_timestamp(u: Utils) -> None:
    assert u.get_most_recent_timestamp(REPORTS, "f") == 10
    assert u.get_most_recent_timestamp(REPORTS, "zzz") is None
    assert u.get_most_recent_timestamp([{"form": "f"}], "f") is UNDEFINED
    assert u.getMostRecentTimestamp(REPORTS, ["g"], {"n": "2"}) == 20


# --- isFormSubmittedInWindow --------------------------------------------------------------------------------


def test_is_form_submitted_in_window_count(u: Utils) -> None:
    # values observed on CHT's isFormSubmittedInWindow
    two = [{"form": "a", "reported_date": 5, "fields": {"follow_up_count": 2}}]
    three = [{"form": "a", "reported_date": 5, "fields": {"follow_up_count": 3}}]
    assert u.is_form_submitted_in_window(two, "a", 5, 5, 2) is False
    assert u.is_form_submitted_in_window(three, "a", 5, 5, 2) is True
    assert u.is_form_submitted_in_window(two, "a", 5, 5, 0) is True  # count 0 is "no count"
    assert u.is_form_submitted_in_window([{"form": "a", "reported_date": 5}], "a", 5, 5, 1) is False


def test_is_form_submitted_in_window_bounds_and_deleted(u: Utils) -> None:
    reports = [{"form": "a", "reported_date": 100, "deleted": True}]
    assert u.is_form_submitted_in_window(reports, "a", 100, 100) is True  # inclusive, deleted counts
    assert u.is_form_submitted_in_window(reports, "a", 101, 200) is False
    assert u.is_form_submitted_in_window(reports, "a", 0, 99) is False
    assert u.is_form_submitted_in_window(reports, "b", 0, 200) is False
    assert u.is_form_submitted_in_window(reports, "a", math.nan, 200) is False  # invalid window
    assert u.is_form_submitted_in_window(reports, "a", u.to_ms(None), 200) is False
    # cht-core 4.11 compares the form with ===: a list never matches
    assert u.is_form_submitted_in_window(reports, ["a"], 0, 200) is False
    # reported_date: null is 0 in a JavaScript comparison
    assert u.is_form_submitted_in_window([{"form": "a", "reported_date": None}], "a", 0, 0) is True
    assert u.is_form_submitted_in_window([{"form": "a"}], "a", -1, 1) is False


# --- isFirstReportNewer ---------------------------------------------------------------------------


def test_is_first_report_newer(u: Utils) -> None:
    # values observed on CHT's isFirstReportNewer
    assert u.is_first_report_newer({"reported_date": 1}, {"reported_date": 1}) is False
    assert u.is_first_report_newer(None, {"reported_date": 1}) is None
    assert u.is_first_report_newer({"reported_date": 1}, {}) is True
    assert u.is_first_report_newer({"reported_date": 2}, {"reported_date": 1}) is True
    assert u.is_first_report_newer({"reported_date": 1}, None) is True
    assert u.is_first_report_newer({"reported_date": 0}, {"reported_date": 1}) is None


# --- isDateValid, getField, fieldsMatch, misc -----------------------------------------------------


def test_is_date_valid(u: Utils) -> None:
    assert u.is_date_valid(u.now()) is True
    assert u.is_date_valid(None) is False
    assert u.is_date_valid(u.to_date("not a date")) is False
    with pytest.raises(TypeError):
        u.is_date_valid(0)  # type: ignore[arg-type]


def test_get_field(u: Utils) -> None:
    report = {"fields": {"a": {"b": {"c": 1}, "zero": 0, "empty": "", "none": None, "list": ["x", "y"]}}}
    assert u.get_field(report, "a.b.c") == 1
    assert u.get_field(report, "a.zero") == 0
    assert u.get_field(report, "a.empty") == ""
    assert u.get_field(report, "a.none") is None
    assert u.get_field(report, "a.missing") is UNDEFINED
    assert u.get_field(report, "a.missing.deeper") is UNDEFINED
    assert u.get_field(report, "a.none.deeper") is UNDEFINED
    assert u.get_field(report, "a.list.1") == "y"
    assert u.get_field(report, "a.list.length") == 2
    assert u.get_field({}, "a") is UNDEFINED
    with pytest.raises(TypeError):
        u.get_field(None, "a")  # reading `fields` of null throws, as in CHT


def test_fields_match(u: Utils) -> None:
    report = {"fields": {"n": 2, "s": "2", "t": True, "f": 2.0}}
    assert u.fields_match(report, {"n": 2, "s": "2", "t": True})
    assert u.fields_match(report, {"n": 2.0, "f": 2})
    assert not u.fields_match(report, {"n": "2"})
    assert not u.fields_match(report, {"t": 1})
    assert not u.fields_match(report, {"n": True})
    assert not u.fields_match(report, {"missing": None})  # undefined !== null
    assert u.fields_match(report, {"missing": UNDEFINED})
    assert u.fields_match(report, {})


def test_now_is_timely_and_constants(u: Utils) -> None:
    assert _local(u.now()) == (2024, 3, 10, 15, 0, 0)
    assert u.now() is u.now()
    assert u.is_timely() is True and u.is_timely(None, {"start": 1}) is True
    assert u.MS_IN_DAY == Utils.MS_IN_DAY == MS_IN_DAY == 86_400_000


def test_camel_case_aliases_are_the_same_functions() -> None:
    pairs = {
        "addDate": "add_date",
        "getLmpDate": "get_lmp_date",
        "getSchedule": "get_schedule",
        "getMostRecentReport": "get_most_recent_report",
        "getMostRecentTimestamp": "get_most_recent_timestamp",
        "isFormSubmittedInWindow": "is_form_submitted_in_window",
        "isFirstReportNewer": "is_first_report_newer",
        "isDateValid": "is_date_valid",
        "getField": "get_field",
        "fieldsMatch": "fields_match",
        "isTimely": "is_timely",
    }
    for camel, snake in pairs.items():
        assert getattr(Utils, camel) is getattr(Utils, snake)


def test_date_helpers(u: Utils) -> None:
    assert u.to_date(None) is None
    assert u.to_date(math.nan) is None
    assert u.to_date(8.64e15 + 1) is None  # beyond JavaScript's range
    assert u.to_date(1e15) is None  # valid in JavaScript, beyond datetime: treated as invalid
    assert _ms(u, u.to_date(0)) == 0
    assert math.isnan(u.to_ms(None))
    assert _local(u.make_date(2024, 1, 0)) == (2023, 12, 31, 0, 0, 0)  # day 0: last of previous month
    assert _local(u.make_date(2024, 2, 29, 25)) == (2024, 3, 1, 1, 0, 0)


# --- JavaScript value helpers ---------------------------------------------------------------------


def test_js_truthiness() -> None:
    for falsy in (None, UNDEFINED, shape.UNDEFINED, False, 0, 0.0, -0.0, math.nan, ""):
        assert not js_truthy(falsy), falsy
    for truthy in ({}, [], "0", " ", 1, -1, math.inf, True, datetime.now(UTC)):
        assert js_truthy(truthy), truthy
    assert not UNDEFINED and repr(UNDEFINED) == "UNDEFINED"
    assert js_or(0, 4) == 4 and js_or("x", 4) == "x"


def test_js_strict_equality() -> None:
    assert js_strict_equals(2, 2.0)
    assert not js_strict_equals(2, "2")
    assert not js_strict_equals(True, 1) and not js_strict_equals(1, True) and not js_strict_equals(0, False)
    assert js_strict_equals(True, True)
    assert not js_strict_equals(math.nan, math.nan) and js_same_value_zero(math.nan, math.nan)
    assert not js_strict_equals(None, UNDEFINED)
    assert js_strict_equals(UNDEFINED, shape.UNDEFINED)
    assert not js_strict_equals({"a": 1}, {"a": 1})  # objects by identity
    d: dict[str, int] = {}
    assert js_strict_equals(d, d)


def test_js_numbers_and_comparisons() -> None:
    assert js_to_number(" 12 ") == 12 and js_to_number("") == 0 and js_to_number("0x10") == 16
    assert (
        math.isnan(js_to_number("1_000"))
        and math.isnan(js_to_number("inf"))
        and math.isnan(js_to_number(UNDEFINED))
    )
    assert js_to_number("-Infinity") == -math.inf and js_to_number(None) == 0 and js_to_number(True) == 1
    assert js_to_number("1e3") == 1000 and js_to_number(".5") == 0.5
    assert not js_gt(UNDEFINED, 1) and js_ge(None, 0) and not js_gt("10", "9") and js_gt("10", 9)
    assert (
        js_gt(None, -1)
        and not js_ge(math.nan, math.nan)
        and not js_le(math.nan, 1)
        and not js_lt(1, math.nan)
    )
    assert js_string(1.0) == "1" and js_string(0.5) == "0.5" and js_string(None) == "null"
    assert js_string(UNDEFINED) == "undefined" and js_string(True) == "true" and js_string(1e21) == "1e+21"
    assert js_string(1e-7) == "1e-7"
