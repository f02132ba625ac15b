"""Synthetic population for Kazi's demo program (``kazi/demo/program``).

Why: the engine, the server and their benchmarks need data that looks like a real CHT deployment of the demo
program -- documents exactly as CHT stores them, in realistic proportions, with a year of history so that a
task calculation at ``end_date`` finds tasks in every state (Draft, Ready, Completed, Failed) for CHWs and for
the online site supervisors, and every demo user has work in progress (see "At the end" below). It must be
reproducible (same arguments, byte-identical output) and fast enough to produce 50,000 households in well
under a minute.

Hierarchy (``app_settings.json`` ``contact_types``; the legacy types plus one configurable level)::

    district_hospital        the district: program officer and admin persons
      health_center          a health facility with an ART clinic: site supervisor, CHW supervisor and
                             data clerk persons (their users' facility_id)
        chw_area             ``type: contact, contact_type: chw_area``: one CHW's catchment, with the CHW
          clinic             a household; its ``contact`` is the head of household
            person           household members, and newborns registered with their delivery

CHT's four legacy levels cannot hold district > facility > CHW area > household, so the CHW area is the one
configurable type; every other document keeps its legacy ``type``.

What happens during the 365 days before ``end_date`` (all ``reported_date`` values fall on those days, before
local midnight of ``end_date``; compute tasks on ``end_date``):

* pregnancies (Malawi's age-specific fertility: ~30 recorded deliveries a year per 1,000 persons; about 7%
  of households have an active registered pregnancy at the end): registration by app form ``pregnancy``
  (``fields.lmp_date``) or SMS ``P`` (``fields.last_menstrual_period`` in weeks), ANC visits ``anc_visit``
  around 12/20/28/36 weeks, losses ``pregnancy_loss``, deliveries ``delivery`` / SMS ``D``;
* newborns (person contacts created with the delivery), PNC visits ``pnc_visit`` on days 1/3/7, newborn
  checks ``newborn_check`` on days 3/10/42;
* danger signs ``danger_sign`` (pregnant women, mothers, newborns, and ~0.4 episodes a year per child under
  five), the CHW's ``danger_sign_follow_up`` and, when that was missed, the CHW supervisor's
  ``supervisor_case_review`` within the two weeks the review task is shown;
* ART clients (about 10% of adults, Southern Region levels): the electronic register's ``missed_appointment``
  reports (submitted under the facility's data clerk), the site supervisor's ``appointment_verification``
  and the CHW's ``client_tracing``.

CHWs differ in diligence (each area draws one, and areas take turns at three profiles: as drawn, diligent,
struggling): a CHW makes ~35-100% of the visits a diligent CHW would, so
that about two thirds of the CHWs' tasks end Completed and the rest Failed. Site supervisors verify most
missed appointments within days to weeks, but each has fallen behind since a day 25-31 days before
``end_date`` (leave, covering the clinic): since then only about one verification in eight was done.

At the end (tasks computed at 10:00 on ``end_date``), because visits are made during their windows or not at
all and some are still to come, every user has work in progress next to a history of Completed and Failed
tasks and upcoming (Draft) ones:

* a CHW (~130-250 households) has ~3-17 Ready tasks, typically ~8, of three to six kinds (ANC visits and the
  delivery reminder, newborn checks, PNC visits, ART client tracing, danger-sign follow-ups), some overdue,
  some due today or in the next days;
* the site supervisor has the facility's unverified missed appointments to verify: ~25 per 1,000
  households, e.g. 100-150 in a facility of ~5,000 households, a handful to a few dozen with 200-500;
* the CHW supervisor has ~0.7 danger signs to review per CHW supervised (a few with three CHWs) and the
  program officer the missed appointments whose verification window closed unverified (a few with 500
  households, a few dozen with 5,000).

Determinism: the structure comes from one seeded generator; each CHW area has its own generator seeded from
``(seed, area index)``, so areas are independent of each other (a facility's backlog start is seeded from
``(seed, facility index)``). Ids are UUID-4 strings and ``patient_id`` / ``place_id`` short codes are a
seeded permutation of 7-digit numbers (unique within a population). Nothing depends on the machine's clock,
zone or hash seed.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import IO, Any
from zoneinfo import ZoneInfo

Doc = dict[str, Any]

DEFAULT_TZ = "Africa/Blantyre"
HISTORY_DAYS = 365

# --- knobs (documented so that the proportions can be reasoned about) -----------------------------
AREAS_PER_FACILITY = (20, 40)
HOUSEHOLDS_PER_AREA = (130, 250)
# household size (persons) -> weight; mean ~5.2
HOUSEHOLD_SIZES = {1: 4, 2: 7, 3: 12, 4: 16, 5: 18, 6: 16, 7: 11, 8: 8, 9: 5, 10: 3}
# chance that a woman has a pregnancy whose LMP falls in the ~21 months before the end, by her age at the end
# (upper bound of the band -> chance): about 1.7 years of Malawi's age-specific fertility rates, so that
# there are ~30 recorded deliveries a year per 1,000 persons and ~7% of households have a registered,
# ongoing pregnancy
PREGNANCY_BY_AGE = ((20, 0.25), (25, 0.45), (30, 0.42), (35, 0.33), (40, 0.24), (46, 0.12))
PREGNANCY_REGISTERED = 0.92
# CHWs differ: each does this share of what a diligent CHW would (triangular low, high, mode), which scales the
# chances below that a visit is made at all and that it is made on time
CHW_DILIGENCE = (0.55, 1.0, 0.85)
# ... and areas take turns at three profiles (area index modulo 3), so that every facility's team has CHWs who
# do most visits on time, CHWs as drawn, and CHWs who miss many and are often late (what a supervisor's
# comparison is for): 0 as drawn, 1 diligent (two thirds of the way from the draw to 1), 2 struggling (the draw
# times this factor)
STRUGGLING_FACTOR = 0.65
ANC_VISIT_DONE = 0.85
DANGER_SIGN_IN_PREGNANCY = 0.20
DANGER_SIGN_POSTNATAL = 0.12
DANGER_SIGN_NEWBORN = 0.12
# episodes with a danger sign per child under five over the year (pneumonia -- fast breathing, chest
# indrawing --, dysentery and severe illness): up to CHILD_EPISODES, each with this chance -> ~0.4 a year
DANGER_SIGN_CHILD = 0.10
CHILD_EPISODES = 4
# ART: share of persons aged 15+ on treatment, by sex and age band (15-24, 25-49, 50+); Southern Region
# levels (~10% of adults)
ART_PREVALENCE = {"female": (0.05, 0.18, 0.13), "male": (0.03, 0.12, 0.10)}
ART_INTERVALS = {28: 20, 56: 30, 84: 40, 168: 10}  # days between appointments -> weight
ART_MISS = 0.25
# site supervisors verify most missed appointments: (share, min days, max days) after the verification task
# became visible; the rest are never verified
VERIFICATION_DELAYS = ((0.55, 0, 7), (0.30, 8, 20), (0.11, 21, 40))
# ... but each has fallen behind since a day this many days before the end (leave, covering the ART clinic):
# of the verifications that would have been done after that day, only this share was -> at the end every
# facility has a verification list (~100-150 for ~5,000 households; the task shows from 7 to 35 days after
# the appointment) and the program officer sees the cases whose window closed unverified
BEHIND_SINCE = (25, 31)
VERIFIED_WHILE_BEHIND = 0.12

PREGNANCY_SIGNS = ("vaginal_bleeding", "severe_headache", "blurred_vision", "fever", "reduced_fetal_movement",
                   "swelling_face_hands", "severe_abdominal_pain", "convulsions")
POSTNATAL_SIGNS = ("heavy_bleeding", "fever", "foul_smelling_discharge", "severe_headache", "convulsions")
NEWBORN_SIGNS = ("not_feeding", "fast_breathing", "fever", "feels_cold", "yellow_skin", "convulsions",
                 "red_umbilicus")
CHILD_SIGNS = ("unable_to_drink", "vomits_everything", "convulsions", "lethargic", "fast_breathing",
               "chest_indrawing", "blood_in_stool")
# what the site supervisor's verification finds -> weight
MISSED_OUTCOMES = {"returned_to_care": 52, "appointment_rescheduled": 15, "not_found": 12,
                   "transferred_out": 6, "stopped_treatment": 15}
# (event id, first day, last day, probability): the windows of tasks.js, counted from the delivery / birth
PNC_VISITS = (("pnc-day-1", 1, 2, 0.75), ("pnc-day-3", 3, 5, 0.8), ("pnc-day-7", 6, 10, 0.7))
NEWBORN_CHECKS = (("newborn-day-3", 2, 5, 0.8), ("newborn-day-10", 7, 14, 0.75),
                  ("newborn-day-42", 35, 49, 0.6))
TRACING_REASONS = ("transport", "travelling", "forgot", "felt_well", "side_effects", "working", "other")

FEMALE_NAMES = (
    "Chisomo", "Mphatso", "Tiyamike", "Thokozani", "Chikondi", "Madalitso", "Takondwa", "Tamanda", "Grace",
    "Esther", "Mary", "Ruth", "Agnes", "Dorothy", "Eliza", "Memory", "Patience", "Loveness", "Alinafe",
    "Tadala", "Thandiwe", "Chimwemwe", "Lusungu", "Mwayi", "Wezi", "Khumbo", "Chifundo", "Fanny", "Ellen",
    "Joyce", "Rose", "Faith", "Jessie", "Linda", "Margaret", "Annie", "Edina", "Yamikani", "Tionge",
    "Zione", "Temwa", "Ndaona", "Tawonga", "Chrissy", "Martha", "Violet", "Towera", "Maness", "Mercy",
    "Rachel",
)
MALE_NAMES = (
    "Kondwani", "Blessings", "Chikumbutso", "Limbani", "Yohane", "Mavuto", "Gift", "Innocent", "Patrick",
    "Peter", "Joseph", "John", "James", "Charles", "Francis", "Stanley", "Moses", "Lameck", "Austin",
    "Wongani", "Lusekelo", "Pemphero", "Fletcher", "Hastings", "Dyson", "Felix", "Steven", "Davie",
    "Lonjezo", "Kelvin", "Dalitso", "Emmanuel", "Gerald", "Owen", "Chimwemwe", "Madalitso", "Mphatso",
    "Chisomo", "Thokozani", "Yamikani", "Precious", "Bright", "Harold", "Isaac", "Jacob", "Luka", "Mabvuto",
    "Noel", "Samuel", "Tiwonge",
)
SURNAMES = (
    "Banda", "Phiri", "Mwale", "Tembo", "Chirwa", "Nyirenda", "Kumwenda", "Mbewe", "Gondwe", "Zulu", "Moyo",
    "Msiska", "Mhango", "Kaunda", "Chisale", "Chimwaza", "Kachale", "Mkandawire", "Nkhoma", "Ngwira", "Jere",
    "Mvula", "Kamanga", "Kalua", "Chikoti", "Mussa", "Saidi", "Kapito", "Ntaba", "Chiumia", "Mlenga",
    "Kalonga", "Mataka", "Chibwe", "Makwinja", "Chinsinga", "Masina", "Nkosi", "Kanyenda", "Luhanga",
    "Chisi", "Munthali", "Mtambo", "Lungu", "Kamwendo", "Mtonga", "Chipeta", "Gama", "Kambalame", "Nthala",
)
VILLAGES = (
    "Chilomoni", "Ndirande", "Bangwe", "Chigumula", "Lunzu", "Lirangwe", "Chileka", "Mpemba", "Machinjiri",
    "Nkolokosa", "Soche", "Chimwankhunda", "Mbayani", "Namiwawa", "Kachere", "Zingwangwa", "Chirimba",
    "Chinyonga", "Manja", "Nancholi", "Kanjedza", "Mudi", "Chitawira", "Misesa", "Kameza", "Makhetha",
    "Chadzunda", "Mdeka", "Chikunda", "Mombo", "Nthukwa", "Kunthembwe", "Mponda", "Kapeni", "Mlambe",
    "Kuntaja", "Chigaru", "Dziwe", "Makata", "Mbulumbuzi", "Chitsime", "Kalulu", "Ntonda", "Chavala",
    "Madziabango", "Chikowa", "Nkula", "Mikolongwe", "Namitambo", "Lundu",
)
FACILITIES = (
    "Chileka", "Lirangwe", "Lunzu", "Mpemba", "Madziabango", "Chikowa", "Makata", "Mdeka", "Chavala",
    "Ndirande", "Bangwe", "Zingwangwa", "Chilomoni", "Mlambe", "Nkula", "Mikolongwe", "Namitambo", "Lundu",
    "Kapeni", "Chigumula",
)
DISTRICTS = ("Blantyre", "Zomba", "Chiradzulu", "Thyolo", "Mulanje", "Balaka", "Machinga", "Mwanza", "Neno",
             "Phalombe")
PHONE_PREFIXES = ("+26599", "+26598", "+26588", "+26589")


# --- public API -----------------------------------------------------------------------------------
@dataclass
class Population:
    """A generated population: contacts (places and persons), reports and the users to log in as."""

    contacts: list[Doc] = field(default_factory=list)
    reports: list[Doc] = field(default_factory=list)
    users: list[Doc] = field(default_factory=list)

    def to_dict(self) -> Doc:
        return {"contacts": self.contacts, "reports": self.reports, "users": self.users}

    def write_json(self, fp: IO[str]) -> None:
        """Write the population as `kazi population` does (same bytes as :func:`write_population`)."""
        writer = _JsonWriter(fp)
        for doc in self.contacts:
            writer.contact(doc)
        writer.finish(((r["reported_date"], r["_id"], _dumps(r)) for r in self.reports), self.users)


def generate(households: int, seed: int, end_date: date, tz: str = DEFAULT_TZ) -> Population:
    """Generate a population of ``households`` households whose history ends the day before ``end_date``.

    Reports are sorted by ``reported_date`` (then ``_id``); contacts come parents first. Every nested
    lineage stub is a separate object, so documents can be modified independently.
    """
    gen = _Generator(households, seed, end_date, tz)
    pop = Population()
    for contacts, reports in gen.chunks():
        pop.contacts.extend(contacts)
        pop.reports.extend(reports)
    pop.reports.sort(key=lambda r: (r["reported_date"], r["_id"]))
    pop.users = gen.users
    return pop


@dataclass(frozen=True)
class Summary:
    """Document counts of a written population (what the CLI reports)."""

    contacts: int
    reports: int
    users: int


def write_population(
    fp: IO[str], households: int, seed: int, end_date: date, tz: str = DEFAULT_TZ
) -> Summary:
    """Generate and write a population, streaming contacts out area by area.

    Why not ``generate(...).write_json(fp)``: 50,000 households are ~300,000 contact dicts; here only one
    area's documents and the serialised reports (which must be sorted globally) are held in memory.
    """
    gen = _Generator(households, seed, end_date, tz)
    writer = _JsonWriter(fp)
    reports: list[tuple[int, str, str]] = []
    contacts = 0
    for chunk_contacts, chunk_reports in gen.chunks():
        for doc in chunk_contacts:
            writer.contact(doc)
        contacts += len(chunk_contacts)
        reports.extend((r["reported_date"], r["_id"], _dumps(r)) for r in chunk_reports)
    writer.finish(reports, gen.users)
    return Summary(contacts=contacts, reports=len(reports), users=len(gen.users))


# --- output ---------------------------------------------------------------------------------------
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _dumps(doc: Doc) -> str:
    return _ENCODER.encode(doc)


class _JsonWriter:
    """``{"contacts":[...],"reports":[...],"users":[...]}``, one document per line (diffable, greppable)."""

    def __init__(self, fp: IO[str]) -> None:
        self._fp = fp
        self._first = True
        fp.write('{"contacts":[')

    def contact(self, doc: Doc) -> None:
        self._fp.write("\n" if self._first else ",\n")
        self._first = False
        self._fp.write(_dumps(doc))

    def finish(self, reports: Iterable[tuple[int, str, str]], users: list[Doc]) -> None:
        """Reports as ``(reported_date, _id, json)``, written in that order; then the users."""
        fp = self._fp
        fp.write('\n],"reports":[')
        sep = "\n"
        for _rd, _id, text in sorted(reports):
            fp.write(sep)
            fp.write(text)
            sep = ",\n"
        fp.write('\n],"users":[')
        sep = "\n"
        for user in users:
            fp.write(sep)
            fp.write(_dumps(user))
            sep = ",\n"
        fp.write("\n]}\n")


# --- building blocks ------------------------------------------------------------------------------
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


class _Clock:
    """Local wall-clock time in one IANA zone -> epoch ms.

    Days are proleptic ordinals. The UTC offset is looked up once per day, at noon: every generated time of
    day is between 05:00 and 21:00, after the early-morning switch of zones that observe DST.
    """

    def __init__(self, tz: str) -> None:
        self._zone = ZoneInfo(tz)
        self._offsets: dict[int, int] = {}

    def ms(self, day: int, seconds: int, millis: int = 0) -> int:
        offset = self._offsets.get(day)
        if offset is None:
            d = date.fromordinal(day)
            delta = datetime(d.year, d.month, d.day, 12, tzinfo=self._zone).utcoffset()
            offset = int(delta.total_seconds()) if delta is not None else 0
            self._offsets[day] = offset
        return ((day - _EPOCH_ORDINAL) * 86_400 + seconds - offset) * 1000 + millis


class _Shortcodes:
    """Unique 7-digit ``patient_id`` / ``place_id`` codes in a seeded, scattered order (like Sentinel's)."""

    _SPAN = 9_000_000
    _STEP = 7_654_321  # coprime with _SPAN, so n -> n * STEP is a permutation

    def __init__(self, seed: int) -> None:
        self._offset = (seed * 2_654_435_761) % self._SPAN
        self._count = 0

    def next(self) -> str:
        if self._count >= self._SPAN:
            raise ValueError("population too large for 7-digit short codes")
        n = self._count
        self._count += 1
        return str(1_000_000 + (n * self._STEP + self._offset) % self._SPAN)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _lineage(chain: tuple[str, ...]) -> Doc:
    """Minified lineage stub ``{_id, parent: {_id, ...}}`` for ids listed nearest first."""
    node: Doc = {"_id": chain[-1]}
    for _id in reversed(chain[:-1]):
        node = {"_id": _id, "parent": node}
    return node


def _day_str(day: int) -> str:
    return date.fromordinal(day).isoformat()


def _pregnancy_chance(age: int) -> float:
    for below, chance in PREGNANCY_BY_AGE:
        if age < below:
            return chance
    return 0.0


def _phone(rng: random.Random) -> str:
    return rng.choice(PHONE_PREFIXES) + f"{rng.randrange(10_000_000):07d}"


@dataclass(slots=True)
class _Person:
    """A person contact plus what the simulation needs to know about them."""

    doc: Doc
    chain: tuple[str, ...]  # own _id, then the ancestors' _ids
    code: str
    name: str
    sex: str
    dob: int
    phone: str

    @property
    def id(self) -> str:
        return self.chain[0]


@dataclass(slots=True)
class _Household:
    chain: tuple[str, ...]
    surname: str
    members: list[_Person]
    first_day: int  # first day reports about this household can exist


@dataclass(slots=True)
class _Facility:
    chain: tuple[str, ...]
    name: str
    code: str
    area_sizes: list[int]
    site_supervisor: _Person | None = None
    chw_supervisor: _Person | None = None
    data_clerk: _Person | None = None
    art_numbers: int = 0
    behind_since: int = 0  # the day from which the site supervisor verifies only a few missed appointments


# --- the generator --------------------------------------------------------------------------------
class _Generator:
    def __init__(self, households: int, seed: int, end_date: date, tz: str) -> None:
        if households < 1:
            raise ValueError("households must be at least 1")
        self.households = households
        self.seed = seed
        self.tz = tz
        self.clock = _Clock(tz)
        self.end = end_date.toordinal()
        self.start = self.end - HISTORY_DAYS
        self.codes = _Shortcodes(seed)
        self.users: list[Doc] = []
        self._usernames: set[str] = set()
        rng = random.Random(f"kazi-population:{seed}:structure")
        self.rng = rng
        self.district_name = rng.choice(DISTRICTS)
        self.facilities = self._plan_facilities(rng)

    # -- structure ---------------------------------------------------------------------------------
    def _plan_facilities(self, rng: random.Random) -> list[_Facility]:
        facilities: list[_Facility] = []
        left = self.households
        names = list(FACILITIES)
        rng.shuffle(names)
        while left > 0:
            n = len(facilities)
            base = names[n % len(names)]
            name = base if n < len(names) else f"{base} {n // len(names) + 1}"
            sizes: list[int] = []
            for _ in range(rng.randint(*AREAS_PER_FACILITY)):
                if left <= 0:
                    break
                size = min(left, rng.randint(*HOUSEHOLDS_PER_AREA))
                if left - size < HOUSEHOLDS_PER_AREA[0] // 2:
                    size = left  # the last CHW takes the few households left rather than a tiny area
                sizes.append(size)
                left -= size
            code = f"{name[:3].upper()}{n + 1}"  # unique, for ART numbers
            behind = random.Random(f"kazi-population:{self.seed}:facility:{n}").randint(*BEHIND_SINCE)
            facilities.append(_Facility(chain=(), name=name, code=code, area_sizes=sizes,
                                        behind_since=self.end - behind))
        return facilities

    def _registered_ms(self, rng: random.Random, day: int) -> int:
        return self.clock.ms(day, rng.randint(8 * 3600, 16 * 3600), rng.randrange(1000))

    def _person(self, rng: random.Random, parent_chain: tuple[str, ...], name: str, sex: str, dob: int,
                phone: str, reported: int, role: str | None = None) -> _Person:
        _id = _uuid(rng)
        code = self.codes.next()
        doc: Doc = {
            "_id": _id, "type": "person", "name": name, "parent": _lineage(parent_chain),
            "reported_date": reported, "patient_id": code, "sex": sex, "date_of_birth": _day_str(dob),
            "phone": phone,
        }
        if role:
            doc["role"] = role
        return _Person(doc, (_id, *parent_chain), code, name, sex, dob, phone)

    def _staff(self, rng: random.Random, parent_chain: tuple[str, ...], role: str, reported: int) -> _Person:
        sex = "female" if rng.random() < 0.55 else "male"
        given = rng.choice(FEMALE_NAMES if sex == "female" else MALE_NAMES)
        dob = self.end - rng.randint(24, 55) * 365 - rng.randrange(365)
        name = f"{given} {rng.choice(SURNAMES)}"
        return self._person(rng, parent_chain, name, sex, dob, _phone(rng), reported, role)

    def _place(self, chain: tuple[str, ...], type_: str, name: str, reported: int) -> Doc:
        doc: Doc = {"_id": chain[0]}
        if type_ in ("district_hospital", "health_center", "clinic"):
            doc["type"] = type_
        else:
            doc["type"] = "contact"
            doc["contact_type"] = type_
        doc["name"] = name
        if len(chain) > 1:
            doc["parent"] = _lineage(chain[1:])
        doc["contact"] = None  # the primary contact, set once that person exists (keeps CHT's key order)
        doc["reported_date"] = reported
        doc["place_id"] = self.codes.next()
        return doc

    def _add_user(self, person: _Person, roles: list[str], facility_id: str, prefix: str = "") -> None:
        given, _, surname = person.name.partition(" ")
        base = prefix + f"{given}.{surname}".lower()
        username, n = base, 1
        while username in self._usernames:
            n += 1
            username = f"{base}{n}"
        self._usernames.add(username)
        self.users.append({"username": username, "contact_id": person.id, "roles": roles,
                           "facility_id": facility_id, "tz": self.tz})

    def chunks(self) -> Iterator[tuple[list[Doc], list[Doc]]]:
        """(contacts, reports) per unit of generation: the district and facility staff, then each CHW area."""
        rng = self.rng
        setup_day = self.start - 1200
        district_id = _uuid(rng)
        district_chain = (district_id,)
        district = self._place(district_chain, "district_hospital",
                               f"{self.district_name} District Hospital", self._registered_ms(rng, setup_day))
        officer = self._staff(rng, district_chain, "program_officer", self._registered_ms(rng, setup_day))
        admin = self._staff(rng, district_chain, "admin", self._registered_ms(rng, setup_day))
        district["contact"] = _lineage(officer.chain)
        self._add_user(officer, ["program_officer"], district_id)
        self._add_user(admin, ["admin"], district_id, prefix="admin.")
        top: list[Doc] = [district, officer.doc, admin.doc]
        for facility in self.facilities:
            facility.chain = (_uuid(rng), district_id)
            day = setup_day + rng.randint(0, 60)
            doc = self._place(facility.chain, "health_center", f"{facility.name} Health Centre",
                              self._registered_ms(rng, day))
            facility.site_supervisor = self._staff(rng, facility.chain, "site_supervisor",
                                                   self._registered_ms(rng, day + 1))
            facility.chw_supervisor = self._staff(rng, facility.chain, "chw_supervisor",
                                                  self._registered_ms(rng, day + 1))
            facility.data_clerk = self._staff(rng, facility.chain, "data_clerk",
                                              self._registered_ms(rng, day + 2))
            doc["contact"] = _lineage(facility.site_supervisor.chain)
            top += [doc, facility.site_supervisor.doc, facility.chw_supervisor.doc, facility.data_clerk.doc]
            self._add_user(facility.site_supervisor, ["site_supervisor"], facility.chain[0])
            self._add_user(facility.chw_supervisor, ["chw_supervisor"], facility.chain[0])
            self._add_user(facility.data_clerk, ["data_clerk"], facility.chain[0])
        yield top, []
        area_index = 0
        for f, facility in enumerate(self.facilities):
            villages = list(VILLAGES)
            random.Random(f"kazi-population:{self.seed}:villages:{f}").shuffle(villages)
            for i, size in enumerate(facility.area_sizes):
                village = villages[i % len(villages)]
                if i >= len(villages):
                    village += f" {i // len(villages) + 1}"
                area = _Area(self, facility, area_index, village, size)
                yield area.build()
                area_index += 1


def _profile(area_index: int, drawn: float) -> float:
    """A CHW's diligence from their area's profile (see ``STRUGGLING_FACTOR``) and the drawn value."""
    kind = area_index % 3
    if kind == 1:
        return 1.0 - (1.0 - drawn) / 3
    if kind == 2:
        return drawn * STRUGGLING_FACTOR
    return drawn


class _Area:
    """One CHW area: its households and a year of their history. Seeded on its own (see module docstring)."""

    def __init__(
        self, gen: _Generator, facility: _Facility, index: int, village: str, households: int
    ) -> None:
        self.gen = gen
        self.facility = facility
        self.village = village
        self.household_count = households
        self.rng = random.Random(f"kazi-population:{gen.seed}:area:{index}")
        self.index = index
        self.contacts: list[Doc] = []
        self.reports: list[Doc] = []
        self.chain: tuple[str, ...] = ()
        self.chw: _Person | None = None
        self.diligence = 1.0

    # -- helpers -----------------------------------------------------------------------------------
    def at(self, day: int, lo_hour: float, hi_hour: float) -> int | None:
        """Epoch ms at a random time of ``day`` between the two local hours; None outside the history."""
        if not (self.gen.start <= day < self.gen.end):
            return None
        seconds = self.rng.randint(int(lo_hour * 3600), int(hi_hour * 3600))
        return self.gen.clock.ms(day, seconds, self.rng.randrange(1000))

    def report(self, form: str, when: int, submitter: _Person, subject: _Person, fields: Doc) -> Doc:
        """An app-form report (``content_type: xml``) about ``subject``."""
        all_fields: Doc = {
            "patient_id": subject.code, "patient_uuid": subject.id, "patient_name": subject.name, **fields,
        }
        doc: Doc = {
            "_id": _uuid(self.rng), "type": "data_record", "form": form, "content_type": "xml",
            "reported_date": when, "contact": _lineage(submitter.chain), "fields": all_fields,
        }
        self.reports.append(doc)
        return doc

    def sms(self, form: str, when: int, submitter: _Person, message: str, fields: Doc) -> Doc:
        """An SMS report as CHT's gateway + Sentinel store it: sender resolved to a contact by phone."""
        doc: Doc = {
            "_id": _uuid(self.rng), "type": "data_record", "form": form, "reported_date": when,
            "from": submitter.phone, "contact": _lineage(submitter.chain), "fields": fields,
            "sms_message": {"message": message, "from": submitter.phone, "form": form, "locale": "en",
                            "type": "sms_message"},
            "locale": "en", "errors": [],
        }
        self.reports.append(doc)
        return doc

    # -- build -------------------------------------------------------------------------------------
    def build(self) -> tuple[list[Doc], list[Doc]]:
        gen, rng = self.gen, self.rng
        area_id = _uuid(rng)
        self.chain = (area_id, *self.facility.chain)
        area_day = gen.start - rng.randint(400, 1100)
        area_ms = gen._registered_ms(rng, area_day)
        area = gen._place(self.chain, "chw_area", f"{self.village} area", area_ms)
        chw = gen._staff(rng, self.chain, "chw", area_ms + rng.randint(60, 3600) * 1000)
        area["contact"] = _lineage(chw.chain)
        self.chw = chw
        self.diligence = _profile(self.index, rng.triangular(*CHW_DILIGENCE))
        gen._add_user(chw, ["chw"], area_id)
        self.contacts += [area, chw.doc]
        for _ in range(self.household_count):
            self.household(area_day)
        return self.contacts, self.reports

    def household(self, area_day: int) -> None:
        gen, rng = self.gen, self.rng
        hh_id = _uuid(rng)
        chain = (hh_id, *self.chain)
        if rng.random() < 0.94:
            reg_day = max(area_day + 1, gen.start - rng.randint(20, 1000))
        else:
            reg_day = gen.start + rng.randint(0, HISTORY_DAYS - 30)
        reg_ms = gen._registered_ms(rng, reg_day)
        hh_doc = gen._place(chain, "clinic", "", reg_ms)
        self.contacts.append(hh_doc)

        size = rng.choices(list(HOUSEHOLD_SIZES), weights=list(HOUSEHOLD_SIZES.values()))[0]
        head_sex = "male" if rng.random() < 0.72 else "female"
        surname = rng.choice(SURNAMES)
        head_age = int(rng.triangular(19, 78, 34))
        specs: list[tuple[str, int, str]] = [(head_sex, head_age, surname)]  # sex, age at end, surname
        if size >= 2 and rng.random() < 0.8:
            spouse_sex = "female" if head_sex == "male" else "male"
            gap = rng.randint(0, 8)
            spouse_age = max(17, head_age - gap if spouse_sex == "female" else head_age + gap)
            specs.append((spouse_sex, spouse_age, surname if rng.random() < 0.6 else rng.choice(SURNAMES)))
        if len(specs) < size and head_age < 60 and rng.random() < 0.12:
            elder_sex = "female" if rng.random() < 0.65 else "male"
            specs.append((elder_sex, rng.randint(60, 88), rng.choice(SURNAMES)))
        youngest_parent = min(age for _, age, _ in specs)
        while len(specs) < size:
            oldest_child = max(1, min(youngest_parent - 16, 24))
            specs.append(("female" if rng.random() < 0.5 else "male", rng.randint(1, oldest_child), surname))

        members: list[_Person] = []
        for i, (sex, age, member_surname) in enumerate(specs):
            given = rng.choice(FEMALE_NAMES if sex == "female" else MALE_NAMES)
            dob = gen.end - age * 365 - rng.randrange(365)
            phone = _phone(rng) if age >= 16 and (i == 0 or rng.random() < 0.55) else ""
            registered = max(reg_ms + i * rng.randint(40, 120) * 1000, gen._registered_ms(rng, dob + 30))
            members.append(gen._person(rng, chain, f"{given} {member_surname}", sex, dob, phone, registered))
        head = members[0]
        hh_doc["name"] = f"{head.name}'s household"
        hh_doc["contact"] = _lineage(head.chain)
        self.contacts += [m.doc for m in members]

        hh = _Household(chain=chain, surname=surname, members=members, first_day=max(gen.start, reg_day + 1))
        for woman in members:
            age = (gen.end - woman.dob) // 365
            if woman.sex == "female" and 15 <= age <= 45 and rng.random() < _pregnancy_chance(age):
                self.pregnancy(hh, woman)
        for person in members:
            if gen.end - person.dob < 5 * 365:
                for _ in range(CHILD_EPISODES):
                    if rng.random() < DANGER_SIGN_CHILD:
                        self.danger_sign(person, rng.randint(hh.first_day, gen.end - 1), CHILD_SIGNS)
            self.art_client(hh, person)

    # -- maternal and newborn care -----------------------------------------------------------------
    def pregnancy(self, hh: _Household, woman: _Person) -> None:
        gen, rng, chw = self.gen, self.rng, self.chw
        assert chw is not None
        lmp = gen.end - rng.randint(21, 290 + HISTORY_DAYS - 1)
        registered = rng.random() < PREGNANCY_REGISTERED
        reg_day = lmp + int(rng.triangular(6, 30, 12)) * 7 + rng.randrange(7)
        loss_day = lmp + rng.randint(8, 22) * 7 + rng.randrange(7) if rng.random() < 0.04 else None
        delivery_day = lmp + int(round(max(33.0, min(42.5, rng.gauss(39.2, 1.4))) * 7))
        end_day = loss_day if loss_day is not None else delivery_day
        if loss_day is not None and (not registered or loss_day <= reg_day):
            return  # lost before anyone knew: nothing recorded
        if registered and reg_day >= gen.end:
            return  # not registered yet at the end: nothing to see
        registration: Doc | None = None
        program_lmp = lmp
        when = self.at(reg_day, 7.5, 17.5) if registered and reg_day >= hh.first_day else None
        if when is not None:  # otherwise registered before the history starts (or before the household was)
            if rng.random() < 0.2:
                weeks = (reg_day - lmp) // 7
                program_lmp = reg_day - 7 * weeks  # what Utils.getLmpDate will compute
                registration = self.sms("P", when, chw, f"P {woman.code} {weeks}",
                                        {"patient_id": woman.code, "last_menstrual_period": weeks})
            else:
                registration = self.report("pregnancy", when, chw, woman, {
                    "lmp_date": _day_str(lmp), "edd": _day_str(lmp + 280), "gravida": rng.randint(1, 7),
                    "risk_factors": "none" if rng.random() < 0.8 else "previous_caesarean",
                })
        if registration is not None:
            self.anc_visits(woman, registration, program_lmp, reg_day, end_day)
            if rng.random() < DANGER_SIGN_IN_PREGNANCY and end_day - reg_day > 2:
                self.danger_sign(woman, rng.randint(reg_day + 1, end_day - 1), PREGNANCY_SIGNS)
        if loss_day is not None:
            when = self.at(loss_day + rng.randint(0, 5), 7.5, 17.5)
            if when is not None and registration is not None and when > registration["reported_date"]:
                self.report("pregnancy_loss", when, chw, woman, {
                    "source_report_id": registration["_id"], "loss_date": _day_str(loss_day),
                })
            return
        if delivery_day < hh.first_day or not (registered or rng.random() < 0.8):
            return
        self.delivery(hh, woman, delivery_day, registration)

    def anc_visits(self, woman: _Person, registration: Doc, lmp: int, reg_day: int, end_day: int) -> None:
        rng, chw = self.rng, self.chw
        assert chw is not None
        for week in (12, 20, 28, 36):
            due = lmp + 7 * week
            if due + 14 < reg_day or due - 7 >= end_day:
                continue  # window closed before registration, or the pregnancy was over
            if rng.random() >= ANC_VISIT_DONE * self.diligence:
                continue
            if rng.random() < 0.8 + 0.1 * self.diligence:
                day = due + int(round(rng.triangular(-7, 14, 4)))  # mostly in the days after the due date
            else:
                day = due + rng.randint(15, 24)  # too late: the task fails
            day = max(day, reg_day + 1)
            if day >= end_day:
                continue
            when = self.at(day, 7.5, 17.5)
            if when is None:
                continue
            self.report("anc_visit", when, chw, woman, {
                "source_report_id": registration["_id"], "gestation_weeks": (day - lmp) // 7,
                "anc_contact": f"anc-{week}w", "danger_signs": "none",
            })

    def delivery(self, hh: _Household, woman: _Person, delivery_day: int, registration: Doc | None) -> None:
        gen, rng, chw = self.gen, self.rng, self.chw
        assert chw is not None
        report_day = delivery_day + rng.choices((0, 1, 2, 3, 4, 5), weights=(40, 30, 15, 7, 5, 3))[0]
        when = self.at(report_day, 7.5, 18.5)
        if when is None or (registration is not None and when <= registration["reported_date"]):
            return
        stillbirth = rng.random() < 0.025
        babies = 0 if stillbirth else (2 if rng.random() < 0.02 else 1)
        place = rng.choices(("health_facility", "home", "en_route"), weights=(85, 12, 3))[0]
        by_sms = rng.random() < 0.15
        if by_sms:
            code = "F" if place == "health_facility" else "H"
            delivery = self.sms("D", when, chw, f"D {woman.code} {code}",
                                {"patient_id": woman.code, "delivery_place": place})
        else:
            delivery = self.report("delivery", when, chw, woman, {
                "source_report_id": registration["_id"] if registration else "",
                "delivery_date": _day_str(delivery_day), "delivery_place": place,
                "outcome": "stillbirth" if stillbirth else "live_birth", "babies_alive": babies,
                "mother_alive": "yes",
            })
        delivered_ms = delivery["reported_date"]
        # an SMS 'D' carries no date: tasks.js counts PNC days from the day it was sent
        self.pnc_visits(woman, delivery, report_day if by_sms else delivery_day, report_day)
        if rng.random() < DANGER_SIGN_POSTNATAL:
            self.danger_sign(woman, report_day + rng.randint(1, 10), POSTNATAL_SIGNS)
        for _ in range(babies):
            sex = "female" if rng.random() < 0.5 else "male"
            given = rng.choice(FEMALE_NAMES if sex == "female" else MALE_NAMES)
            # born in the app form's repeat (same minute); SMS deliveries are registered at the first visit
            registered = delivered_ms + rng.randint(60, 600) * 1000
            if by_sms:
                if report_day + 1 >= gen.end:
                    continue  # not registered yet
                registered = gen.clock.ms(report_day + 1, rng.randint(9 * 3600, 17 * 3600))
            baby = gen._person(rng, hh.chain, f"{given} {hh.surname}", sex, delivery_day, "", registered)
            if not by_sms:
                baby.doc["created_by_doc"] = delivery["_id"]
            hh.members.append(baby)
            self.contacts.append(baby.doc)
            self.newborn_checks(baby, delivery_day, registered)
            if rng.random() < DANGER_SIGN_NEWBORN:
                self.danger_sign(baby, delivery_day + rng.randint(2, 28), NEWBORN_SIGNS)

    def pnc_visits(self, mother: _Person, delivery: Doc, delivery_day: int, report_day: int) -> None:
        rng, chw = self.rng, self.chw
        assert chw is not None
        for visit, first, last, p in PNC_VISITS:
            if rng.random() >= p * self.diligence:
                continue
            lo = max(delivery_day + first, report_day + 1)
            hi = delivery_day + last + (rng.randint(1, 3) if rng.random() < 0.1 else 0)
            if lo > hi:
                continue  # the CHW heard of the delivery too late for this visit
            when = self.at(rng.randint(lo, hi), 7.5, 17.5)
            if when is None:
                continue
            self.report("pnc_visit", when, chw, mother, {
                "source_report_id": delivery["_id"], "pnc_visit": visit, "mother_danger_signs": "none",
            })

    def newborn_checks(self, baby: _Person, born: int, registered_ms: int) -> None:
        rng, chw = self.rng, self.chw
        assert chw is not None
        for check, first, last, p in NEWBORN_CHECKS:
            if rng.random() >= p * self.diligence:
                continue
            hi = born + last + (rng.randint(1, 4) if rng.random() < 0.1 else 0)
            when = self.at(rng.randint(born + first, hi), 7.5, 17.5)
            if when is None or when <= registered_ms:
                continue
            self.report("newborn_check", when, chw, baby, {
                "newborn_check": check, "weight_kg": round(rng.uniform(2.4, 4.2), 1),
                "breastfeeding": "yes" if rng.random() < 0.95 else "no", "danger_signs": "none",
            })

    def danger_sign(self, subject: _Person, day: int, pool: tuple[str, ...]) -> None:
        rng, chw = self.rng, self.chw
        assert chw is not None
        when = self.at(day, 7.0, 18.0)
        if when is None or when <= subject.doc["reported_date"]:
            return
        signs = " ".join(rng.sample(pool, rng.choice((1, 1, 2))))
        referred = "yes" if rng.random() < 0.7 else "no"
        report = self.report("danger_sign", when, chw, subject, {"danger_signs": signs,
                                                                 "referred_to_facility": referred})
        r = rng.random() / self.diligence
        if r < 0.8:
            follow_day: int | None = day + rng.choice((1, 1, 1, 2, 3))  # inside the task's window
        elif r < 0.9:
            follow_day = day + rng.randint(4, 7)  # too late
        else:
            follow_day = None
        followed = False
        if follow_day is not None:
            follow = self.at(follow_day, 7.5, 17.5)
            if follow is not None:
                followed = follow_day <= day + 3
                self.report("danger_sign_follow_up", follow, chw, subject, {
                    "source_report_id": report["_id"], "danger_signs": signs,
                    "condition": rng.choices(("improved", "referred", "same"), weights=(6, 3, 1))[0],
                })
        if not followed and rng.random() < 0.55:  # at a supervision visit in the two weeks the task is shown
            review = self.at(day + 4 + rng.randint(0, 14), 8.0, 16.0)
            supervisor = self.facility.chw_supervisor
            if review is not None and supervisor is not None:
                self.report("supervisor_case_review", review, supervisor, subject, {
                    "source_report_id": report["_id"], "chw_id": chw.id,
                    "finding": rng.choice(("chw_visited_late", "referred", "resolved", "not_reached")),
                })

    # -- ART ---------------------------------------------------------------------------------------
    def art_client(self, hh: _Household, person: _Person) -> None:
        gen, rng = self.gen, self.rng
        age = (gen.end - person.dob) // 365
        if age < 15:
            return
        band = 0 if age < 25 else 1 if age < 50 else 2
        if rng.random() >= ART_PREVALENCE[person.sex][band]:
            return
        facility = self.facility
        facility.art_numbers += 1
        art_number = f"{facility.code}-ARV-{facility.art_numbers:05d}"
        interval = rng.choices(list(ART_INTERVALS), weights=list(ART_INTERVALS.values()))[0]
        appointment = gen.start - rng.randrange(interval) + interval // 2
        while appointment < gen.end:
            if rng.random() >= ART_MISS:
                appointment += interval
                continue
            following = self.missed_appointment(hh, person, art_number, appointment, interval)
            if following is None:
                return  # transferred out: no more appointments here
            appointment = following

    def missed_appointment(self, hh: _Household, person: _Person, art_number: str, appointment: int,
                           interval: int) -> int | None:
        """Simulate one missed appointment; return the client's next appointment (None: left care)."""
        rng, facility = self.rng, self.facility
        assert facility.data_clerk is not None
        days_missed = rng.choices((1, 2, 3, 5, 7, 10, 14), weights=(20, 15, 15, 15, 15, 10, 10))[0]
        outcome = rng.choices(list(MISSED_OUTCOMES), weights=list(MISSED_OUTCOMES.values()))[0]
        report_day = appointment + days_missed
        when = self.at(report_day, 5.0, 6.0)  # the register's early-morning export
        if when is not None and report_day >= hh.first_day and when > person.doc["reported_date"]:
            missed = {
                "_id": _uuid(rng), "type": "data_record", "form": "missed_appointment", "reported_date": when,
                "contact": _lineage(facility.data_clerk.chain),
                "fields": {
                    "patient_id": person.code, "patient_name": person.name, "art_number": art_number,
                    "facility_id": facility.chain[0], "appointment_date": _day_str(appointment),
                    "days_missed": days_missed,
                },
            }
            self.reports.append(missed)
            self.verification(person, missed, appointment, report_day, outcome)
            self.tracing(person, missed, report_day)
        if outcome in ("transferred_out",):
            return None
        back = {"returned_to_care": rng.randint(days_missed + 1, days_missed + 25),
                "appointment_rescheduled": rng.randint(days_missed + 3, days_missed + 14),
                "not_found": rng.randint(30, 90), "stopped_treatment": rng.randint(60, 200)}[outcome]
        if outcome == "appointment_rescheduled":
            return appointment + back
        return appointment + back + interval

    def verification(
        self, person: _Person, missed: Doc, appointment: int, report_day: int, outcome: str
    ) -> None:
        rng, supervisor = self.rng, self.facility.site_supervisor
        assert supervisor is not None
        visible = max(report_day, appointment + 7)  # the task shows from a week after the appointment
        r = rng.random()
        for share, lo, hi in VERIFICATION_DELAYS:
            if r < share:
                day = visible + rng.randint(lo, hi)
                break
            r -= share
        else:
            return  # never verified
        if day >= self.facility.behind_since and rng.random() >= VERIFIED_WHILE_BEHIND:
            return  # still on the list at the end
        when = self.at(day, 8.0, 16.5)
        if when is None:
            return
        self.report("appointment_verification", when, supervisor, person, {
            "missed_appointment_id": missed["_id"], "source_report_id": missed["_id"],
            "appointment_date": missed["fields"]["appointment_date"], "outcome": outcome,
            "verified_by": rng.choices(("phone", "register", "home_visit"), weights=(6, 3, 1))[0],
        })

    def tracing(self, person: _Person, missed: Doc, report_day: int) -> None:
        rng, chw = self.rng, self.chw
        assert chw is not None
        r = rng.random() / self.diligence
        if r < 0.7:
            day = report_day + rng.randint(2, 9)
        elif r < 0.8:
            day = report_day + rng.randint(10, 20)
        else:
            return
        when = self.at(day, 7.5, 17.5)
        if when is None:
            return
        found = rng.random() < 0.8
        self.report("client_tracing", when, chw, person, {
            "missed_appointment_id": missed["_id"], "source_report_id": missed["_id"],
            "client_found": "yes" if found else "no",
            "reason_missed": rng.choice(TRACING_REASONS) if found else "",
        })
