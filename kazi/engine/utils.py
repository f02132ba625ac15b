"""The Python ``Utils`` for ``tasks.py`` programs: cht-nootils semantics, plus JavaScript value rules.

CHT task code runs in JavaScript; a Python program must produce *the same emissions* as its ``tasks.js``
twin.  So this module reproduces two things exactly:

* the cht-nootils functions as bundled with cht-core 4.11 (cht-nootils 4.2.0, see the
conformance suite's README), with
  their quirks: ``addDate`` truncates fractional days and zeroes the time at *local* midnight of the
  computation zone, ``isFormSubmittedInWindow`` is inclusive at both ends, compares ``form`` with ``===`` and
  counts deleted reports, ``getMostRecentReport`` ignores deleted reports and keeps the earlier report on a
  ``reported_date`` tie, ``fieldsMatch`` compares with ``===`` (``2`` and ``'2'`` differ, so do ``True``
  and ``1``);
* the JavaScript value rules those functions rely on (truthiness, ``===``, ``<`` on mixed values,
  ``undefined`` vs ``null``), as small public helpers the emitter shares.

Representation of JavaScript values in Python definitions (documented for program authors):

* **Date** -> an *aware* :class:`~datetime.datetime`; the ones Kazi hands out are in the computation zone.
* **Invalid Date** -> ``None``.  Consequently ``add_date(None, n)`` is ``None`` (an invalid date stays
  invalid, as ``addDate(new Date(NaN), n)`` does in JavaScript); JavaScript's *other* use of a falsy date,
  ``addDate(null, n)`` meaning "from now", is written ``add_date(utils.now(), n)`` in Python.
* **undefined** -> :data:`UNDEFINED`, a falsy singleton (``get_field`` of a missing path, ``get_schedule``
  of an unknown name).  It matters because JavaScript drops ``undefined`` members when serialising action
  content while it keeps ``null``: ``content["phone"] = utils.get_field(r, "phone")`` leaves ``phone`` out
  of the task when the field is missing, exactly like the JavaScript original.
* **null** -> ``None``.  Where the two roles of ``None`` meet, the date one wins: ``to_date(None)`` is an
  invalid date, not the epoch that ``new Date(null)`` gives.

Kazi helpers for what JavaScript does with ``Date`` itself: :meth:`Utils.to_date` (``new Date(value)``),
:meth:`Utils.make_date` (``new Date(y, m - 1, d, ...)``: month 1-based, overflow normalised, years 0-99 not
mapped to 19xx) and :meth:`Utils.to_ms` (``getTime()``, NaN for an invalid date).

Dates beyond what :class:`datetime` can hold (years 1..9999) are treated as invalid.  Date strings are
parsed like ``new Date(string)`` for the ECMAScript date-time format only (``2024-03-10``,
``2024-03-10T15:00``, ``...Z``/offsets, a space instead of ``T``); other formats V8 accepts give ``None``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Final

from kazi.engine import dates
from kazi.program import shape

__all__ = [
    "MS_IN_DAY",
    "UNDEFINED",
    "Undefined",
    "Utils",
    "datetime_to_ms",
    "is_undefined",
    "js_add_one",
    "js_gt",
    "js_lt",
    "js_ge",
    "js_le",
    "js_new_date_ms",
    "js_or",
    "js_prop",
    "js_same_value_zero",
    "js_strict_equals",
    "js_string",
    "js_to_number",
    "js_truthy",
    "ms_to_datetime",
]

MS_IN_DAY: Final = dates.MS_IN_DAY

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS: Final = timedelta(milliseconds=1)
_NAN: Final = math.nan
_MAX_TIME: Final = 8.64e15


class Undefined:
    """JavaScript ``undefined``: falsy, equal only to itself, dropped from serialised objects."""

    __slots__ = ()
    _instance: Undefined | None = None

    def __new__(cls) -> Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "UNDEFINED"

    def __reduce__(self) -> str:
        return "UNDEFINED"


#: JavaScript ``undefined`` in Python definitions (falsy; distinct from ``None``, which is ``null``).
UNDEFINED: Final = Undefined()


def is_undefined(value: object) -> bool:
    """True for :data:`UNDEFINED` and for the validator's :data:`kazi.program.shape.UNDEFINED` marker."""
    return value is UNDEFINED or value is shape.UNDEFINED


# ---------------------------------------------------------------------------------------------------------
# JavaScript value semantics
# ---------------------------------------------------------------------------------------------------------


def js_truthy(value: object) -> bool:
    """``!!value``: ``{}`` and ``[]`` are truthy (unlike Python), ``NaN`` and ``undefined`` falsy."""
    t = type(value)
    if t is str:
        return value != ""
    if t is bool:
        return value  # type: ignore[return-value]
    if t is dict or t is list:
        return True
    if value is None or value is UNDEFINED or value is shape.UNDEFINED:
        return False
    if isinstance(value, (int, float)):
        return value == value and value != 0
    if isinstance(value, str):
        return value != ""
    return True


def js_or(value: object, default: object) -> object:
    """``value || default``."""
    return value if js_truthy(value) else default


def js_strict_equals(a: object, b: object) -> bool:
    """``a === b``: no coercion, ``True !== 1``, ``2 === 2.0``, ``NaN !== NaN``, objects by identity."""
    if a is b:
        return not (isinstance(a, float) and a != a)
    if type(a) is str:
        return type(b) is str and a == b
    a_bool = isinstance(a, bool)
    b_bool = isinstance(b, bool)
    if a_bool or b_bool:
        return a_bool and b_bool and a == b
    if isinstance(a, (int, float)):
        return isinstance(b, (int, float)) and a == b
    if isinstance(a, str):
        return isinstance(b, str) and a == b
    # both "undefined" markers are the same JavaScript value
    return is_undefined(a) and is_undefined(b)


def js_same_value_zero(a: object, b: object) -> bool:
    """``Array.prototype.includes`` equality: ``===`` except that ``NaN`` equals ``NaN``."""
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    return js_strict_equals(a, b)


_DECIMAL_RE: Final = re.compile(r"[+-]?(?:Infinity|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)")
_RADIX_RE: Final = re.compile(r"0([xXoObB])([0-9a-fA-F]+)")
_JS_WHITESPACE: Final = " \t\n\v\f\r\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008" \
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"


def _string_to_number(s: str) -> float:
    s = s.strip(_JS_WHITESPACE)
    if s == "":
        return 0.0
    if _DECIMAL_RE.fullmatch(s):
        return float(s.replace("Infinity", "inf"))
    m = _RADIX_RE.fullmatch(s)
    if m:
        base = {"x": 16, "o": 8, "b": 2}[m.group(1).lower()]
        try:
            return float(int(m.group(2), base))
        except ValueError:
            return _NAN
    return _NAN


def js_to_number(value: object) -> float:
    """``Number(value)``: ``null`` -> 0, ``undefined`` -> NaN, strings parsed as JavaScript, Dates -> ms."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return value
    if value is None:
        return 0.0
    if isinstance(value, str):
        return _string_to_number(value)
    if isinstance(value, datetime):
        return float(datetime_to_ms(value))
    if isinstance(value, (list, tuple)):
        if not value:
            return 0.0
        if len(value) == 1:
            return _string_to_number(js_string(value[0]))
    return _NAN


def _number_to_string(x: float) -> str:
    if x != x:
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == int(x) and abs(x) < 1e21:
        return str(int(x))
    r = repr(float(x))
    if "e" in r:  # Python '1e-07' / '1e+21' -> JavaScript '1e-7' / '1e+21'
        mant, exp = r.split("e")
        sign = exp[0] if exp[0] in "+-" else "+"
        return f"{mant}e{sign}{int(exp.lstrip('+-'))}"
    return r


def js_string(value: object) -> str:
    """``String(value)`` for the primitive values task code puts into ids and labels."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if is_undefined(value):
        return "undefined"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _number_to_string(value)
    if isinstance(value, (list, tuple)):
        return ",".join("" if v is None or is_undefined(v) else js_string(v) for v in value)
    if isinstance(value, Mapping):
        return "[object Object]"
    return str(value)


def _relational_operands(a: object, b: object) -> tuple[Any, Any]:
    if isinstance(a, str) and isinstance(b, str):
        return a, b
    return js_to_number(a), js_to_number(b)


def js_lt(a: object, b: object) -> bool:
    """``a < b``: two strings compare as strings, anything else as numbers (NaN -> false)."""
    if type(a) in (int, float) and type(b) in (int, float):
        return bool(a < b)  # type: ignore[operator]
    x, y = _relational_operands(a, b)
    return bool(x < y)


def js_gt(a: object, b: object) -> bool:
    """``a > b`` (see :func:`js_lt`)."""
    if type(a) in (int, float) and type(b) in (int, float):
        return bool(a > b)  # type: ignore[operator]
    x, y = _relational_operands(a, b)
    return bool(x > y)


def js_le(a: object, b: object) -> bool:
    """``a <= b`` (false when either side is NaN, unlike ``not a > b``)."""
    if type(a) in (int, float) and type(b) in (int, float):
        return bool(a <= b)  # type: ignore[operator]
    x, y = _relational_operands(a, b)
    return bool(x <= y)


def js_ge(a: object, b: object) -> bool:
    """``a >= b`` (false when either side is NaN)."""
    if type(a) in (int, float) and type(b) in (int, float):
        return bool(a >= b)  # type: ignore[operator]
    x, y = _relational_operands(a, b)
    return bool(x >= y)


def js_add_one(value: object) -> float:
    """``Number(value + 1)``: ``'5' + 1`` concatenates to ``'51'`` in JavaScript, then becomes 51."""
    if isinstance(value, str):
        return _string_to_number(value + "1")
    return js_to_number(value) + 1


_ARRAY_INDEX_RE: Final = re.compile(r"0|[1-9]\d*")


def js_prop(obj: object, key: str) -> Any:
    """``obj[key]`` for JSON-like values; :data:`UNDEFINED` when absent.

    Reading a property of ``null``/``undefined`` raises :class:`TypeError`, as JavaScript does, so a Python
    program crashes exactly where its JavaScript twin would.
    """
    if type(obj) is dict or isinstance(obj, Mapping):
        return obj.get(key, UNDEFINED)
    if obj is None or is_undefined(obj):
        raise TypeError(f"Cannot read properties of {js_string(obj)} (reading '{key}')")
    if isinstance(obj, (list, tuple, str)):
        if key == "length":
            return len(obj)
        if _ARRAY_INDEX_RE.fullmatch(key):
            i = int(key)
            return obj[i] if i < len(obj) else UNDEFINED
    return UNDEFINED


# ---------------------------------------------------------------------------------------------------------
# Dates
# ---------------------------------------------------------------------------------------------------------


def datetime_to_ms(value: datetime) -> int:
    """Epoch milliseconds of an aware datetime (sub-millisecond parts are floored, as ``Date`` holds ms)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise TypeError(
            "a naive datetime is not a date: give it a zone (tzinfo=utils.zone) or build it with "
            "utils.make_date(...)"
        )
    return (value - _EPOCH) // _ONE_MS


def ms_to_datetime(ms: float, zone: tzinfo) -> datetime | None:
    """The aware datetime in ``zone`` for epoch ``ms``; ``None`` for NaN or a value datetime cannot hold."""
    if ms != ms or math.isinf(ms):
        return None
    try:
        return (_EPOCH + timedelta(milliseconds=int(ms))).astimezone(zone)
    except (OverflowError, ValueError):
        return None


_ISO_RE: Final = re.compile(
    r"(?P<y>[+-]\d{6}|\d{4})(?:-(?P<mo>\d{2})(?:-(?P<d>\d{2}))?)?"
    r"(?:[T ](?P<h>\d{2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:\.(?P<f>\d+))?)?"
    r"(?P<z>Z|[+-]\d{2}:\d{2})?)?"
)


def _parse_date_string(s: str, tz: str) -> float:
    """``Date.parse`` for the ECMAScript date-time string format; NaN otherwise."""
    m = _ISO_RE.fullmatch(s.strip())
    if not m:
        return _NAN
    if m["y"] == "-000000":
        return _NAN
    year = int(m["y"])
    month = int(m["mo"] or 1)
    day = int(m["d"] or 1)
    hour = int(m["h"] or 0)
    minute = int(m["mi"] or 0)
    sec = int(m["s"] or 0)
    msec = int((m["f"] or "0")[:3].ljust(3, "0"))
    if not (1 <= month <= 12 and 1 <= day <= 31 and minute <= 59 and sec <= 59):
        return _NAN
    if hour > 24 or (hour == 24 and (minute or sec or msec)):
        return _NAN
    wall = dates.make_day(year, month - 1, day) * MS_IN_DAY + (
        hour * 3_600_000 + minute * 60_000 + sec * 1000 + msec
    )
    z = m["z"]
    if m["h"] is None or z == "Z":  # date-only forms are UTC
        return dates.time_clip(wall)
    if z is None:  # date-time without offset: local time
        return dates.time_clip(dates.wall_to_utc_ms(wall, tz))
    sign = 1 if z[0] == "+" else -1
    off = sign * (int(z[1:3]) * 60 + int(z[4:6])) * 60_000
    if int(z[1:3]) > 23 or int(z[4:6]) > 59:
        return _NAN
    return dates.time_clip(wall - off)


def js_new_date_ms(value: object, tz: str) -> float:
    """Epoch ms of ``new Date(value)`` (NaN for an Invalid Date); ``None`` is JavaScript ``null`` -> 0."""
    if isinstance(value, datetime):
        return float(datetime_to_ms(value))
    if isinstance(value, str):
        return _parse_date_string(value, tz)
    return dates.time_clip(js_to_number(value))


def add_date_ms(t_ms: float, days: object, tz: str) -> float:
    """``addDate`` on epoch ms: ``setDate(getDate() + days)`` then ``setHours(0, 0, 0, 0)``, local to ``tz``.

    Both steps are kept (rather than jumping straight to the target midnight) because a wall time that
    falls in a DST gap resolves to a later instant, which in zones whose gap spans midnight is the next day.
    ``getDate() + days`` follows JavaScript ``+``: the *sum* is truncated (``10 + -1.5`` -> day 8), a string
    concatenates (``10 + '3'`` -> day 103) and ``null`` adds nothing.

    Computed on day numbers rather than calendar fields (``MakeDay(y, m, d + k)`` is the day number plus
    ``k``): this runs several times per emission, hundreds of thousands of times per computation.
    """
    if t_ms != t_ms:
        return _NAN
    wall = int(t_ms) + dates.offset_ms(t_ms, tz)
    day, time_of_day = divmod(wall, MS_IN_DAY)
    if type(days) is int:
        delta = days
    else:
        d = dates.civil_from_days(day)[2]
        if type(days) is float:
            total: float = d + days
        elif isinstance(days, str):
            total = _string_to_number(str(d) + days)
        else:
            total = d + js_to_number(days)
        if total != total or math.isinf(total):
            return _NAN
        delta = math.trunc(total) - d
    if abs(delta) > 200_000_000:  # beyond JavaScript's date range whatever the start
        return _NAN
    t = dates.wall_to_utc_ms((day + delta) * MS_IN_DAY + time_of_day, tz)
    if not -_MAX_TIME <= t <= _MAX_TIME:  # TimeClip (all values here are integral)
        return _NAN
    day = (int(t) + dates.offset_ms(t, tz)) // MS_IN_DAY
    t = dates.wall_to_utc_ms(day * MS_IN_DAY, tz)
    return float(t) if -_MAX_TIME <= t <= _MAX_TIME else _NAN


def _ms_of(date: object, what: str) -> float:
    """Epoch ms of a Python "Date" argument: a datetime, or ``None`` (Invalid Date) -> NaN."""
    if date is None:
        return _NAN
    if isinstance(date, datetime):
        return float(datetime_to_ms(date))
    raise TypeError(f"{what}: expected a datetime (or None for an invalid date), got {type(date).__name__}")


# ---------------------------------------------------------------------------------------------------------
# Utils
# ---------------------------------------------------------------------------------------------------------


def _is_array(value: object) -> bool:
    return isinstance(value, (list, tuple))


class Utils:
    """cht-nootils for Python task definitions, bound to one computation instant and zone.

    ``now_ms`` is the calculation instant (epoch ms) and ``tz`` the IANA zone of the device being served:
    Kazi computes for many users in many zones from one process, so nothing here reads the machine clock or
    zone.  ``schedules`` is ``task-schedules.json`` (what ``getSchedule`` searches).

    Every method has its CHT (camelCase) name as an alias so a ``tasks.js`` ports line by line.
    """

    MS_IN_DAY: Final = MS_IN_DAY

    def __init__(self, now_ms: float, tz: str, schedules: Sequence[Any] | None = None) -> None:
        self.now_ms = int(now_ms)
        self.tz = tz
        self.zone = dates.zone(tz)
        self.schedules = schedules
        now = ms_to_datetime(self.now_ms, self.zone)
        if now is None:
            raise ValueError(f"now_ms out of range: {now_ms!r}")
        self._now = now

    def __repr__(self) -> str:
        return f"Utils(now={self._now.isoformat()}, tz={self.tz!r})"

    # --- Kazi helpers (no CHT equivalent; JavaScript has them on Date) ------------------------------------

    def to_date(self, value: object) -> datetime | None:
        """``new Date(value)``: epoch ms, an ISO date string or a datetime -> a datetime in the zone.

        ``None`` gives ``None`` (an invalid date) rather than JavaScript's epoch for ``new Date(null)``.
        """
        if value is None:
            return None
        return ms_to_datetime(js_new_date_ms(value, self.tz), self.zone)

    def make_date(
        self, year: float, month: float, day: float = 1, hours: float = 0, minutes: float = 0,
        seconds: float = 0, ms: float = 0,
    ) -> datetime | None:
        """``new Date(year, month - 1, day, ...)`` in the zone; **month is 1-based**, overflow normalises
        (month 13 is next January, day 0 the last day of the previous month), as JavaScript does."""
        t = dates.make_local(year, month - 1, day, hours, minutes, seconds, ms, tz=self.tz)
        return ms_to_datetime(t, self.zone)

    def to_ms(self, date: datetime | None) -> float:
        """``date.getTime()``: epoch ms (an ``int``), or NaN for ``None`` so comparisons fail as in JS."""
        if date is None:
            return _NAN
        return datetime_to_ms(date)

    # --- cht-nootils ---------------------------------------------------------------------------------------

    def now(self) -> datetime:
        """``Utils.now()``: the calculation instant, in the zone."""
        return self._now

    def is_timely(self, date: object = None, event: object = None) -> bool:
        """Always ``True``: a pass-through since nootils 4 (the rules engine applies the time limits)."""
        return True

    def add_date(self, date: datetime | None, days: float) -> datetime | None:
        """Local midnight ``days`` calendar days after ``date`` (DST-safe; fractions truncated).

        ``None`` (an invalid date) stays ``None``; a number (epoch ms) raises ``TypeError`` as in CHT
        (``date.getTime is not a function``): wrap it with :meth:`to_date` first.
        """
        t = _ms_of(date, "addDate")
        return ms_to_datetime(add_date_ms(t, days, self.tz), self.zone)

    def get_lmp_date(self, doc: Mapping[str, Any]) -> datetime | None:
        """Local midnight ``fields.last_menstrual_period`` weeks (default 4) before ``reported_date``."""
        weeks = js_or(js_prop(js_prop(doc, "fields"), "last_menstrual_period"), 4)
        base = js_new_date_ms(js_prop(doc, "reported_date"), self.tz)
        return ms_to_datetime(add_date_ms(base, js_to_number(weeks) * -7, self.tz), self.zone)

    def get_schedule(self, name: object) -> Any:
        """The first schedule whose ``name`` is ``name`` (``===``), else :data:`UNDEFINED`."""
        for schedule in self.schedules or ():
            if isinstance(schedule, Mapping) and "name" in schedule:
                if js_strict_equals(schedule["name"], name):
                    return schedule
        return UNDEFINED

    def get_most_recent_report(
        self, reports: Sequence[Any], forms: object, fields: object = UNDEFINED,
    ) -> Any:
        """The newest non-deleted report with a form in ``forms`` (string or list) matching ``fields``.

        Strictly newer only: on a ``reported_date`` tie the earlier report in the list wins.  ``None`` when
        none matches.
        """
        form_list: Sequence[object] = forms if _is_array(forms) else (forms,)  # type: ignore[assignment]
        # strings (the usual case) compare with a set; anything else with SameValueZero
        form_set = frozenset(form_list) if all(type(f) is str for f in form_list) else None
        check_fields = js_truthy(fields)
        result: Any = None
        for report in reports:
            form = js_prop(report, "form")
            if form_set is not None:
                if type(form) is not str or form not in form_set:
                    continue
            elif not any(js_same_value_zero(f, form) for f in form_list):
                continue
            if js_truthy(js_prop(report, "deleted")):
                continue
            if result is not None and not js_gt(
                js_prop(report, "reported_date"), js_prop(result, "reported_date")
            ):
                continue
            if check_fields and not (
                js_truthy(js_prop(report, "fields")) and self.fields_match(report, fields)  # type: ignore[arg-type]
            ):
                continue
            result = report
        return result

    def get_most_recent_timestamp(
        self, reports: Sequence[Any], form: object, fields: object = UNDEFINED,
    ) -> Any:
        """``reported_date`` of :meth:`get_most_recent_report`, ``None`` when there is none."""
        report = self.get_most_recent_report(reports, form, fields)
        if report is None:
            return None
        return js_prop(report, "reported_date")

    def is_form_submitted_in_window(
        self, reports: Sequence[Any], form: object, start: object, end: object, count: object = UNDEFINED,
    ) -> bool:
        """Whether a report of ``form`` has ``start <= reported_date <= end`` (inclusive both ends).

        Deleted reports count.  ``form`` is compared with ``===`` (cht-core 4.11: a list never matches).  With
        a truthy ``count``, the report also needs ``fields.follow_up_count > count``.
        """
        use_count = js_truthy(count)
        for report in reports:
            if not js_strict_equals(js_prop(report, "form"), form):
                continue
            rd = js_prop(report, "reported_date")
            if not (js_ge(rd, start) and js_le(rd, end)):
                continue
            if not use_count:
                return True
            fields = js_prop(report, "fields")
            if js_truthy(fields) and js_gt(js_prop(fields, "follow_up_count"), count):
                return True
        return False

    def is_first_report_newer(self, first: object, second: object) -> bool | None:
        """``None`` if ``first`` has no ``reported_date``; ``True`` if ``second`` has none; else ``>``."""
        if js_truthy(first) and js_truthy(js_prop(first, "reported_date")):
            if js_truthy(second) and js_truthy(js_prop(second, "reported_date")):
                return js_gt(js_prop(first, "reported_date"), js_prop(second, "reported_date"))
            return True
        return None

    def is_date_valid(self, date: datetime | None) -> bool:
        """``False`` for ``None`` (Invalid Date); other non-dates raise ``TypeError`` as in CHT."""
        if date is None:
            return False
        if isinstance(date, datetime):
            return True
        raise TypeError(f"isDateValid: expected a datetime (or None), got {type(date).__name__}")

    def get_field(self, report: object, path: str) -> Any:
        """``report.fields.<path>`` along a dotted path; :data:`UNDEFINED` when any step is missing.

        Falsy leaves (``0``, ``''``, ``None``) are returned as they are.
        """
        if not isinstance(path, str):
            raise TypeError("getField: the path must be a string")
        obj = js_prop(report, "fields")
        for key in path.split("."):
            if obj is None or is_undefined(obj):
                return UNDEFINED
            obj = js_prop(obj, key)
        return obj

    def fields_match(self, report: object, field_values: Mapping[str, Any]) -> bool:
        """Every ``path: value`` of ``field_values`` has ``get_field(report, path) === value``."""
        return all(js_strict_equals(self.get_field(report, k), v) for k, v in field_values.items())

    # --- CHT names ------------------------------------------------------------------------------------------

    isTimely = is_timely
    addDate = add_date
    getLmpDate = get_lmp_date
    getSchedule = get_schedule
    getMostRecentReport = get_most_recent_report
    getMostRecentTimestamp = get_most_recent_timestamp
    isFormSubmittedInWindow = is_form_submitted_in_window
    isFirstReportNewer = is_first_report_newer
    isDateValid = is_date_valid
    getField = get_field
    fieldsMatch = fields_match
