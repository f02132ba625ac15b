"""The task service: every user's task documents kept up to date on the server, offline CHW and online
supervisor alike.

CHT computes tasks on each offline device from its local data; Kazi computes them here, for every user with
roles, from the documents in the store, with the same engine. The service is the only writer of task
documents. It works from the store's change log:

* a document change makes its subjects dirty (the change log holds the subjects before *and* after the
  write, so a report re-addressed to another client dirties both); the users it affects are those whose
  place is above a dirty subject (now, or before: a moved contact's old lineage) and those holding task
  documents for a dirty subject (they may lose it). Each affected user gets an incremental round over the
  dirty containers only (:func:`kazi.engine.engine.compute` with ``subjects``), whose result equals a full
  recompute for those containers;
* a moved place dirties every contact below it (they change scope for the users of its old and new place);
* a program change, a change to the account (roles, place, contact, zone) and a change to a document the
  ``user`` global is built from (the user's contact and its lineage, so also a move of the user's place)
  recompute the user in full: they change what every container of the user emits;
* at each user's local midnight, open task documents advance (Draft -> Ready, Ready -> Failed). By default
  the user is then recomputed in full (``full_recompute_days = 1``): emissions may depend on the date (an
  age, the 180-day timeliness horizon), and only a full round catches those; CHT does it weekly (a
  contact's results expire after seven days), which ``full_recompute_days = 7`` reproduces.

Tasks come from the user's place (:func:`task_scope`): the contacts under it and the reports about them,
whatever else the user may read. Administrators and national users read everything, but their tasks too come
from their place only, and a user without a place gets none, so an admin account does not make every round
compute the whole deployment.

What a round processed is remembered in the store (the last change sequence, and per user the program
version, an account fingerprint and the local day): a restarted service resumes where it stopped. Rounds
are idempotent, so a crash between writing task documents and remembering the sequence only repeats work.

Program code errors (a callback that throws, overflows the stack, runs too long or eats memory) never stop
the service: they are collected per container (``collect_errors=True``); a container whose code failed keeps
its task documents as they were (:func:`kazi.engine.engine.compute`), every other container and user goes on,
and the errors are stored (:mod:`kazi.store.program_errors`) for admins, whichever process saw them. What
failing code may cost is bounded (:class:`kazi.program.limits.ProgramLimits`): a time and memory limit per
batch of containers, a number of aborts per computation, a deadline for an API read (past it the read
answers from the stored documents and leaves the user to the worker). A computation can be interrupted from
another thread (:meth:`TaskService.interrupt`: the process stops, or a newer program replaced the one it
runs). A new program version is first tried on a sample of the stored population
(:meth:`TaskService.load_program`): a version that fails there is refused, and the previous one keeps running.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.exc import SQLAlchemyError

from kazi.engine import dates, taskdocs
from kazi.engine.budget import Budget
from kazi.engine.containers import contact_subject_ids, is_contact
from kazi.engine.engine import Result, compute
from kazi.errors import ComputationInterrupted, ConfigCodeError, Problem, ProgramError, TaskDocsChangedError
from kazi.program import loader
from kazi.program.limits import ProgramLimits
from kazi.program.loader import Program, check_program, inspect_tasks, load_program
from kazi.service.supervisor_tasks import is_supervisor_doc, refresh_supervisor_tasks, rules_for
from kazi.store import NOTHING, Change, Scope, Store, StoredUser
from kazi.store import program_errors as perr
from kazi.store import tracking as tr

log = logging.getLogger("kazi.service")

#: the zone of users who have none (their local midnight and due dates are computed there)
DEFAULT_TZ = "UTC"
#: a user is recomputed in full at the first local midnight this many days after the last full recompute.
#: 1 (every midnight) keeps results identical to a full recompute even for emissions that depend on the date
#: (ages, "born in the last 56 days", the 180-day timeliness horizon); 7 is what CHT does (a contact's
#: results expire after a week) and leaves the other midnights to the cheap temporal update.
FULL_RECOMPUTE_DAYS = 1
#: change-log entries read per query
CHANGES_PAGE = 5000
#: change-log entries one round takes on at most (a large import is worked off in several bounded rounds)
CHANGES_PER_ROUND = 50_000
#: refresh_user leaves the user to the background worker when more changes than this are pending
REFRESH_MAX_PENDING = 2000
#: errors of program code an admin's list shows (the most recently seen)
MAX_ERRORS = 200
#: after an API read gave up computing its caller (deadline), how long later reads leave them to the worker
READ_RETRY_S = 30.0
#: users of the stored population a new program version's pre-flight computes for (their containers sampled)
PREFLIGHT_USERS = 3
#: computations of one user tried when another process keeps writing the same user's task documents
MAX_COMPUTE_ATTEMPTS = 3
#: advance_time checks every user's local day at least this often (ms), even when no midnight is due
DAY_CHECK_MAX_MS = 60_000
#: how long refresh_user waits for a round in progress before leaving the user to the background worker
REFRESH_WAIT_S = 2.0
_OPEN_STATES = (taskdocs.READY, taskdocs.DRAFT)

# Two services of one process (the API's and the background worker's) must never compute the same user at
# once: both would create task documents for a new emission. Each user has a lock of their own, so an API
# call's read-your-writes only waits for that user's computation in a round, never for the whole round (a
# report about a client is recomputed for ~6 users: the others are the worker's business). Rounds themselves
# (process_changes, recompute_all, advance_time) run one at a time.
_ROUND_LOCK = threading.RLock()


class _UserLocks:
    """One re-entrant lock per user id, made on first use (a few hundred users: never freed)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[int, threading.RLock] = {}

    def __call__(self, user_id: int) -> threading.RLock:
        with self._guard:
            lock = self._locks.get(user_id)
            if lock is None:
                lock = self._locks[user_id] = threading.RLock()
            return lock


_USER_LOCKS = _UserLocks()


class _Unknown:
    """The type of ``_UNKNOWN``: "not read yet", apart from ``None`` ("no program")."""


_UNKNOWN = _Unknown()


@dataclass(frozen=True)
class ProgramInfo:
    """The active program version: what an admin sees."""

    version: int
    loaded_at: int  # epoch ms
    warnings: list[dict[str, Any]]
    kind: str  # "js" | "python"

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "loaded_at": self.loaded_at, "warnings": self.warnings, "kind": self.kind}


@dataclass(frozen=True)
class TaskPage:
    """One page of a user's Tasks tab: ``total`` matching tasks, ``items`` the task docs of this page (each
    with its emission's id as ``emission_id``); in a delta (``since``), ``removed`` the ids of task documents
    that left the list."""

    total: int
    items: list[dict[str, Any]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # a delta's task documents that left the list


@dataclass
class _Loaded:
    version: int
    program: Program
    info: ProgramInfo
    folder: tempfile.TemporaryDirectory[str]
    parallel: Any = None  # a kazi.service.emission_pool.ParallelEmissionSource, opened on the first full recompute
    # One computation at a time on the program's V8 runtime: a computation is several calls (the user's
    # context, then batches of containers), and two API threads computing two users at once interleaved them
    # on one context: wrong emissions, and a segfault in mini-racer when 200 requests hit a fresh server.
    runtime_lock: threading.Lock = field(default_factory=threading.Lock)

    def interrupt(self) -> None:
        """End the computation running on this program, if any (its runtime and compute processes)."""
        runtime = self.program._js_runtime
        if runtime is not None:
            runtime.interrupt()
        if self.parallel is not None:
            self.parallel.interrupt()


@dataclass
class _Dirty:
    """What a batch of changes made dirty."""

    subjects: set[str] = field(default_factory=set)
    doc_ids: set[str] = field(default_factory=set)
    places: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.subjects or self.doc_ids)


class _Holders:
    """The users holding task documents for some subjects, queried on the first question: most readers a
    change concerns are concerned through their place (``_Dirty.places``), and never need it."""

    def __init__(self, store: Store, subjects: set[str]) -> None:
        self._store = store
        self._subjects = subjects
        self._found: set[str] | None = None
        self._lock = threading.Lock()

    def __contains__(self, settings_id: object) -> bool:
        if not self._subjects:
            return False
        with self._lock:
            if self._found is None:
                self._found = tr.task_holders(self._store, self._subjects)
            return settings_id in self._found


class TaskService:
    """Computes and serves every user's tasks from one store (see the module docstring)."""

    def __init__(self, store: Store, *, clock: Callable[[], int] | None = None, workers: int = 0,
                 default_tz: str = DEFAULT_TZ, others_to_worker: bool = False, limits: ProgramLimits | None = None,
                 process: str = "api") -> None:
        self.store = store
        self.limits = limits or ProgramLimits.from_env()
        self.process = process  # what stored errors say saw them: "api" | "worker"
        self._stopping = False
        self._gave_up: dict[int, tuple[int, float]] = {}  # user id -> (program version, monotonic time)
        # True when a background worker keeps everyone's tasks up to date (`kazi serve`, `kazi demo`): a read
        # then computes only what the caller's own writes changed, and leaves other people's changes to it
        self.others_to_worker = others_to_worker
        self._wrote: dict[int, int] = {}  # user id -> a change seq at or after their last write here
        self.clock: Callable[[], int] = clock or (lambda: int(time.time() * 1000))
        self.workers = workers
        self.default_tz = default_tz
        self._loaded: _Loaded | None = None
        self._activation_lock = threading.Lock()  # see _current
        self._identity: dict[int, tuple[int, frozenset[str]]] = {}  # user id -> (updated_at, contact+lineage)
        # read-your-writes bookkeeping of this process: the last change each user was brought up to date with,
        # and the digest of the pending changes ((processed seq, last seq) -> dirty, holders)
        self._refreshed: dict[int, int] = {}
        self._pending_cache: tuple[tuple[int, int], tuple[_Dirty, _Holders] | None] | None = None
        self.full_recompute_days = FULL_RECOMPUTE_DAYS
        # advance_time's memo: (program version, clock ms before which no user's local day can change)
        self._day_checked: tuple[int, int] = (-1, 0)
        # the last change committed when this service started: a write acknowledged before it may have been the
        # caller's own, answered by a process that died before any round processed it (see _own_write_pending)
        self._started_seq = store.last_seq()

    # ----------------------------------------------------------------------------------------------------
    # programs

    def load_program(self, program_dir: Path, *, if_changed: bool = False) -> ProgramInfo:
        """Validate a program folder and make it the active version (stored with its files).

        Errors block the load: :class:`ProgramError` lists every one and the previous program keeps running.
        The next :meth:`process_changes` recomputes every user in full with the new version.

        ``if_changed``: when the folder holds exactly the active version's files (and no imported settings lie
        over them), keep that version: no new version, no full recompute. What ``kazi serve --program DIR``
        does at every start; an explicit load or upload always makes a new version.
        """
        root = Path(program_dir)
        problems = check_program(root, consequence="the previous program stays")
        kind = "js" if (root / "tasks.js").is_file() else "python"
        files = program_files(root, kind)
        if if_changed:
            active = tr.active_program(self.store)
            if (active is not None and active.kind == kind and active.files == files
                    and active.settings_override is None):
                loaded = self._current()
                if loaded is not None and loaded.version == active.version:
                    log.info("program in %s unchanged: version %d stays active", root, active.version)
                    return loaded.info
        warnings = [p.to_dict() for p in problems]
        # what runs is rebuilt from what is stored: a file the collection missed shows here, not in production
        folder, program = _materialize(files, None)
        try:
            self._preflight(program)
            version = tr.add_program(self.store, kind=kind, files=files, settings_override=None, warnings=warnings,
                                     loaded_at=self.clock())
        except BaseException:
            folder.cleanup()
            raise
        self._activate(version, program, folder, warnings)
        log.info("program version %d loaded from %s (%d files, %d warnings)", version, root, len(files),
                 len(warnings))
        assert self._loaded is not None
        return self._loaded.info

    def import_settings(self, settings: dict[str, Any]) -> ProgramInfo:
        """A new program version: the active program's files with these app settings over its own (roles,
        permissions...: CHT's ``app_settings.json`` imported on its own). Needs a loaded program."""
        current = tr.active_program(self.store)
        if current is None:
            raise ProgramError("load a program first (kazi program load DIR): settings apply to a program")
        override = {**(current.settings_override or {}), **settings}
        folder, program = _materialize(current.files, override)
        try:
            self._preflight(program)
            version = tr.add_program(self.store, kind=current.kind, files=current.files, settings_override=override,
                                     warnings=current.warnings, loaded_at=self.clock())
        except BaseException:
            folder.cleanup()
            raise
        self._activate(version, program, folder, current.warnings)
        assert self._loaded is not None
        return self._loaded.info

    def _preflight(self, program: Program) -> None:
        """Run a new version over a sample of the stored population before it goes live: a few users' places,
        ``preflight_containers`` contacts in all, within ``preflight_s``. Program code that throws, overflows
        the stack or exceeds a limit there would do so in production for every round: the version is refused
        with each failure located (:class:`ProgramError`, a 422 on upload) and the previous one keeps running.
        A deployment without users or contacts yet has nothing to try it on."""
        program.limits = self.limits
        limits = self.limits
        users = [u for u in self.store.users.list_all(include_disabled=False)
                 if u.roles and not task_scope(u).empty]
        if not users or limits.preflight_containers <= 0:
            return
        step = max(1, len(users) // PREFLIGHT_USERS)
        chosen = users[::step][:PREFLIGHT_USERS]
        per_user = max(1, limits.preflight_containers // len(chosen))
        budget = Budget(max_aborts=0, deadline=time.monotonic() + limits.preflight_s)
        problems: list[Problem] = []
        tried = 0
        for user in chosen:
            assert user.facility_id is not None
            ids = tr.sample_contact_ids(self.store, user.facility_id, per_user)
            if not ids:
                continue
            docs = self.store.docs_for_subjects(ids, user=task_scope(user))
            wanted = set(ids)
            for d in docs:
                if is_contact(d):
                    wanted.update(contact_subject_ids(d))
            tried += len(ids)
            try:
                result = compute(program, docs=docs, subjects=wanted, user=self.store.engine_user(user),
                                 now_ms=self.clock(), tz=self._tz(user), collect_errors=True, budget=budget)
            except ComputationInterrupted as stopped:
                where = stopped.where
                callback = f"{where['callback']}: " if where.get("callback") else ""
                definition = where.get("definition")
                problems.append(Problem(
                    "error", where.get("definitionFile") or (program.js_spec.entry if program.js_spec else "tasks"),
                    f"{callback}timeout: still running after {limits.preflight_s:g} s, the time a trial on "
                    f"{tried} stored contacts may take (program code that loops, or is far too slow)",
                    rule="preflight", definition_index=definition if isinstance(definition, int) and definition >= 0
                    else None, definition_name=_text(where.get("definitionName")),
                    contact_id=_text(where.get("contact"))))
                break
            problems.extend(_preflight_problem(e) for e in result.errors)
            if problems:
                break
        if problems:
            raise ProgramError(f"the program failed on the stored population ({len(problems)} error(s) over a "
                               f"sample of {tried} contacts)", problems)

    def program_info(self) -> ProgramInfo | None:
        """The active version (the store's, which another process may have changed)."""
        loaded = self._current()
        return loaded.info if loaded is not None else None

    def program(self) -> Program | None:
        loaded = self._current()
        return loaded.program if loaded is not None else None

    def errors(self, limit: int = MAX_ERRORS, offset: int = 0) -> list[dict[str, Any]]:
        """The stored errors of program code, of every process, most recently seen first (for admins)."""
        return perr.recent(self.store, limit, offset)

    def close(self) -> None:
        """Stop worker processes and remove the program's scratch folder."""
        if self._loaded is not None:
            _close_loaded(self._loaded)
            self._loaded = None

    def interrupt(self) -> None:
        """Stop now: the computation running in another thread ends (:class:`ComputationInterrupted`), and so
        does any round (the process is stopping: ``kazi serve`` and ``kazi worker`` on SIGTERM)."""
        self._stopping = True
        loaded = self._loaded
        if loaded is not None:
            loaded.interrupt()

    def interrupt_if_replaced(self) -> bool:
        """End the computation running on this process's program when another version has become active since
        (a program uploaded while a round computes with the old one, which may be stuck): the round stops and
        the next one starts with the new version. Returns whether it did."""
        loaded = self._loaded
        if loaded is None:
            return False
        version = tr.active_program_version(self.store)
        if version is None or version == loaded.version:
            return False
        log.info("program version %s replaced version %d: ending the computation that runs it", version,
                 loaded.version)
        loaded.interrupt()
        return True

    def _activate(self, version: int, program: Program, folder: tempfile.TemporaryDirectory[str],
                  warnings: list[dict[str, Any]]) -> None:
        stored = tr.active_program(self.store)
        loaded_at = stored.loaded_at if stored is not None and stored.version == version else self.clock()
        old = self._loaded
        program.limits = self.limits
        self._loaded = _Loaded(version, program, ProgramInfo(version, loaded_at, warnings, program.kind), folder)
        if old is not None:
            _close_loaded(old)

    def _current(self, version: int | None | _Unknown = _UNKNOWN) -> _Loaded | None:
        """The active program, rebuilt from the store when another process loaded a newer version
        (``version``: the active version when the caller has just read it)."""
        if isinstance(version, _Unknown):
            version = tr.active_program_version(self.store)
        if version is None:
            return None
        if self._loaded is not None and self._loaded.version == version:
            return self._loaded
        # One thread builds the program; the others wait for it. Requests arriving together at a fresh server
        # each built one (a V8 context apiece), and the contexts dropped by the race, destroyed from another
        # thread, crashed the process in mini-racer.
        with self._activation_lock:
            if self._loaded is not None and self._loaded.version == version:
                return self._loaded
            stored = tr.active_program(self.store)
            if stored is None:
                return self._loaded
            folder, program = _materialize(stored.files, stored.settings_override)
            self._activate(stored.version, program, folder, stored.warnings)
            return self._loaded

    # ----------------------------------------------------------------------------------------------------
    # computing

    def process_changes(self) -> int:
        """Recompute what pending changes (documents, users, program) made dirty, for every affected user.

        Returns the number of user computations run (incremental or full); 0 when there was nothing to do.
        """
        with _ROUND_LOCK:
            try:
                return self._process_changes()
            except ComputationInterrupted as exc:
                # the process stops, or a newer program replaced this one: nothing of the round is remembered
                # (the next one, with the new version, recomputes everyone in full)
                log.info("round interrupted (%s)", exc)
                return 1

    def _process_changes(self) -> int:
        loaded = self._current()
        head = self.store.last_seq()  # read before any computation of this round
        since = tr.get_state(self.store, tr.PROCESSED_SEQ)
        changes = self._changes_since(since)
        last = changes[-1].seq if changes else since
        if loaded is None:  # nothing to compute with; a program load recomputes everyone anyway
            if last != since:
                tr.set_state(self.store, tr.PROCESSED_SEQ, last)
            return 0
        users = self.store.users.list_all()
        states = tr.task_user_states(self.store)
        for u in users:
            if u.disabled and u.id in states:
                tr.forget_task_user(self.store, u.id)  # re-enabled later: recomputed in full
        active = [u for u in users if not u.disabled and u.roles]
        full = {u.id for u in active if self._needs_full(u, states.get(u.id), loaded.version)}
        if all(u.id in full or task_scope(u).empty for u in active):
            # everyone is recomputed in full from the store as it is now, which holds every change up to
            # `head`: after a program change or a first import, the backlog is not worked off in incremental
            # rounds of CHANGES_PER_ROUND that would recompute the same users again and again
            dirty = _Dirty()
            last = max(last, head)
        else:
            dirty = self._dirty(changes)
        count = 0
        if dirty:
            for u in active:
                if u.id not in full and not task_scope(u).empty and self._identity_ids(u) & dirty.doc_ids:
                    full.add(u.id)  # the `user` global changed
            holders = tr.task_holders(self.store, dirty.subjects)
            for u in active:
                if u.id in full:
                    continue
                if (not task_scope(u).empty and u.facility_id in dirty.places) or u.settings_id in holders:
                    with _USER_LOCKS(u.id):
                        self._guarded(u, lambda u=u: self._incremental(  # type: ignore[misc]
                            loaded, u, dirty.subjects, tr.task_user_state(self.store, u.id)))
                    count += 1
        for u in active:
            if u.id in full:
                with _USER_LOCKS(u.id):
                    self._guarded(u, lambda u=u: self._full(loaded, u))  # type: ignore[misc]
                count += 1
        if last != since:
            tr.set_state(self.store, tr.PROCESSED_SEQ, last)
        return count

    def _guarded(self, user: StoredUser, compute_user: Callable[[], int]) -> int:
        """One user's computation in a round: whatever fails in it (short of the database, or an interruption)
        is logged and the round goes on with the next user; the user's state is forgotten, so the next round
        recomputes them in full instead of losing the changes this one was about."""
        if self._stopping:
            raise ComputationInterrupted("the service is stopping")
        try:
            return compute_user()
        except (ComputationInterrupted, SQLAlchemyError):
            raise
        except Exception:
            log.exception("computing the tasks of %s failed; they are recomputed in full next round",
                          user.username)
            tr.forget_task_user(self.store, user.id)
            return 0

    def note_write(self, user: StoredUser) -> None:
        """Remember that ``user`` just wrote documents (called by the API after a committed write), so that
        their next read brings their tasks up to date even when other people's changes are left to the
        background worker (``others_to_worker``)."""
        self._wrote[user.id] = self.store.last_seq()

    def _own_write_pending(self, user: StoredUser, fresh: tr.Freshness) -> bool:
        """Whether a write of ``user``'s is among the changes no round processed and this process has not
        brought them up to date with. The changes committed before this service started count as everyone's
        own: the process that acknowledged them may have been killed before the worker (killed with it, or
        not yet at them) processed them, and read-your-writes must hold across that crash too. Only until a
        round or this process's own computation of the user has passed them: one computation per user."""
        wrote = max(self._wrote.get(user.id, 0), self._started_seq)
        return wrote > max(fresh.processed_seq, self._refreshed.get(user.id, 0))

    def refresh_user(self, user: StoredUser) -> int | None:
        """Read-your-writes for one user: pending changes that affect them, then the temporal update at
        ``clock()``. With ``others_to_worker`` only the caller's own writes are waited for: another user's
        report reaches this user's list through the background worker's round, and the read stays a read
        (under load, 200 users reading while reports arrive would otherwise each compute in the API process).
        When a round is computing this user (the background worker's), waits up to ``REFRESH_WAIT_S`` and
        otherwise leaves the user to it: an API call is never held up longer.

        Returns None when no program is loaded, else the newest sequence number among the user's task
        documents afterwards (what a cached page of theirs is keyed by: :mod:`kazi.service.pages`).

        The common case, nothing pending and the user current for their local day, is one read transaction
        and no lock: a Tasks list under load costs no computation."""
        fresh = tr.freshness(self.store, user.id, user.settings_id)
        loaded = self._current(fresh.program_version)
        if loaded is None:
            return None
        if user.disabled or not user.roles or self._is_current(user, loaded, fresh):
            return fresh.task_seq
        gave_up = self._gave_up.get(user.id)
        if gave_up is not None and gave_up[0] == loaded.version and time.monotonic() - gave_up[1] < READ_RETRY_S:
            return fresh.task_seq  # a read just gave up computing them: the worker's business for a while
        lock = _USER_LOCKS(user.id)
        if not lock.acquire(timeout=REFRESH_WAIT_S):
            return fresh.task_seq
        try:
            self._refresh_locked(user, loaded, fresh)
        except ComputationInterrupted as exc:
            # the read's deadline passed (program code stuck, or slow): answer from the stored documents and
            # leave the user to the worker, whose rounds have no deadline
            log.warning("computing the tasks of %s for a read stopped (%s): left to the worker", user.username, exc)
            self._gave_up[user.id] = (loaded.version, time.monotonic())
            return fresh.task_seq
        finally:
            lock.release()
        self._gave_up.pop(user.id, None)
        return tr.user_task_seq(self.store, user.settings_id)

    def _read_budget(self) -> Budget:
        """What a read's computation may cost: with a worker to leave the rest to, ``read_compute_s``."""
        seconds = self.limits.read_compute_s if self.others_to_worker else None
        return Budget(max_aborts=self.limits.max_aborts,
                      deadline=None if seconds is None else time.monotonic() + seconds)

    def _budget(self) -> Budget:
        return Budget(max_aborts=self.limits.max_aborts)

    def _refresh_locked(self, user: StoredUser, loaded: _Loaded, fresh: tr.Freshness) -> None:
        budget = self._read_budget()
        user = self.store.users.get_by_id(user.id)  # the account as stored now
        state = tr.task_user_state(self.store, user.id)
        if self._needs_full(user, state, loaded.version):
            self._full(loaded, user, budget)
        elif task_scope(user).empty:
            pass  # no tasks to bring up to date (an admin without a place)
        elif self.others_to_worker and not self._own_write_pending(user, fresh):
            if state is not None:  # other people's changes are the worker's; the local day is not
                self._new_day(loaded, user, state, self.clock(), budget)
        elif (pending := self._pending(fresh)) is None:
            pass  # an import is being worked off: the background worker gets there
        else:
            dirty, holders = pending
            if dirty and self._identity_ids(user) & dirty.doc_ids:
                self._full(loaded, user, budget)
            elif dirty and (user.facility_id in dirty.places or user.settings_id in holders):
                self._incremental(loaded, user, dirty.subjects, state, budget)
            elif state is not None:
                self._new_day(loaded, user, state, self.clock(), budget)
            self._refreshed[user.id] = fresh.last_seq

    def _pending(self, fresh: tr.Freshness) -> tuple[_Dirty, _Holders] | None:
        """What the changes no round has processed yet made dirty, and who holds task documents for it; None
        when there are too many. Computed once per range of changes and shared by every caller until the next
        write or round: between two rounds, every user's read would otherwise read and digest the same log."""
        key = (fresh.processed_seq, fresh.last_seq)
        cached = self._pending_cache
        if cached is not None and cached[0] == key:
            return cached[1]
        changes = self._changes_since(fresh.processed_seq, REFRESH_MAX_PENDING + 1)
        result: tuple[_Dirty, _Holders] | None = None
        if len(changes) <= REFRESH_MAX_PENDING:
            changes = [c for c in changes if c.seq <= fresh.last_seq]
            dirty = self._dirty(changes)
            result = (dirty, _Holders(self.store, dirty.subjects))
        self._pending_cache = (key, result)
        return result

    def _is_current(self, user: StoredUser, loaded: _Loaded, fresh: tr.Freshness) -> bool:
        """Nothing to do for ``user``: no change pending (or none since this process last brought them up to
        date), same program and account, and their open documents already advanced to today (task states
        change with the local day only)."""
        if (fresh.last_seq != fresh.processed_seq and self._refreshed.get(user.id) != fresh.last_seq
                and (not self.others_to_worker or self._own_write_pending(user, fresh))):
            return False
        state = fresh.state
        return (state is not None and not self._needs_full(user, state, loaded.version)
                and self._day_is_current(user, state, self.clock()))

    def recompute_all(self) -> None:
        """Every user with roles in full (after a program change, or to check the incremental path)."""
        with _ROUND_LOCK:
            loaded = self._current()
            since = tr.get_state(self.store, tr.PROCESSED_SEQ)
            last = self.store.last_seq()
            if loaded is not None:
                for u in self.store.users.list_all(include_disabled=False):
                    if u.roles:
                        with _USER_LOCKS(u.id):
                            self._guarded(u, lambda u=u: self._full(loaded, u))  # type: ignore[misc]
            if last > since:
                tr.set_state(self.store, tr.PROCESSED_SEQ, last)

    def advance_time(self) -> int:
        """Temporal updates for the users whose local midnight passed since their last update (Draft -> Ready,
        Ready -> Failed), or a full recompute when theirs is ``full_recompute_days`` old. Returns the task
        documents written."""
        with _ROUND_LOCK:
            try:
                return self._advance_time()
            except ComputationInterrupted as exc:
                log.info("midnight updates interrupted (%s)", exc)
                return 1

    def _advance_time(self) -> int:
        loaded = self._current()
        if loaded is None:
            return 0
        now = self.clock()
        if loaded.version == self._day_checked[0] and now < self._day_checked[1]:
            return 0  # everyone was current at the last check, and no local midnight has come since
        states = tr.task_user_states(self.store)
        written = 0
        zones: set[str] = set()
        for u in self.store.users.list_all(include_disabled=False):
            zones.add(self._tz(u))
            state = states.get(u.id)
            if state is None or not u.roles or task_scope(u).empty or self._day_is_current(u, state, now):
                continue  # never computed (the next process_changes does it in full), no tasks, or current
            with _USER_LOCKS(u.id):
                state = tr.task_user_state(self.store, u.id)  # a refresh may have got there first
                if state is not None:
                    written += self._guarded(
                        u, lambda u=u, state=state: self._new_day(loaded, u, state, now))  # type: ignore[misc]
        # Until the next local midnight of any user's zone nobody's day can change, but a new account may
        # bring a zone not seen here: the check runs again after a minute at most. (At 300 users, checking
        # every round cost the worker a tenth of a core while nothing could change.)
        next_midnight = min((_next_local_midnight(now, tz) for tz in zones), default=now + DAY_CHECK_MAX_MS)
        self._day_checked = (loaded.version, min(now + DAY_CHECK_MAX_MS, next_midnight))
        return written

    def _day_is_current(self, user: StoredUser, state: tr.TaskUserState, now: int) -> bool:
        """The user's documents are advanced to their local day and no full recompute is due for it."""
        today = self._today(user, now)
        last_full = date.fromisoformat(_local_day(state.full_at, self._tz(user)))
        return state.local_day == today and (date.fromisoformat(today) - last_full).days < self.full_recompute_days

    def _new_day(self, loaded: _Loaded, user: StoredUser, state: tr.TaskUserState, now: int,
                 budget: Budget | None = None) -> int:
        """A new local day for ``user``: the full recompute when ``full_recompute_days`` have passed since the
        last one, else the temporal update of their open documents (the caller holds the user's lock)."""
        today = self._today(user, now)
        last_full = date.fromisoformat(_local_day(state.full_at, self._tz(user)))
        if (date.fromisoformat(today) - last_full).days >= self.full_recompute_days:
            return self._full(loaded, user, budget)
        if state.local_day != today:
            written = self._temporal(user, state)
            return written + self._supervise(loaded, user)
        return 0

    # -- one user

    def _computed(self, user: StoredUser, run: Callable[[], Result], version: int | None = None) -> Result:
        """Run a computation of ``user`` and store its writes, again when another process wrote the user's task
        documents in between (their newest sequence number is checked at the write): within a process the
        user's lock excludes that, across processes (the API's read-your-writes and a worker process) this
        does, without a lock held during the computation."""
        for _attempt in range(MAX_COMPUTE_ATTEMPTS - 1):
            seq = tr.user_task_seq(self.store, user.settings_id)
            result = run()
            try:
                self._store_result(user, result, expect=(user.settings_id, seq), version=version)
                return result
            except TaskDocsChangedError:
                log.info("task documents of %s changed during their computation: computing again", user.username)
        result = run()
        self._store_result(user, result, version=version)  # a last attempt: the engine's dedup mends a race
        return result

    def _full(self, loaded: _Loaded, user: StoredUser, budget: Budget | None = None) -> int:
        budget = budget or self._budget()
        now = self.clock()
        tz = self._tz(user)
        who = self.store.engine_user(user)

        def run() -> Result:
            nonlocal now
            now = self.clock()  # a repeated computation is of its own instant, after what the other one wrote
            contacts, reports = self.store.docs_in_scope(task_scope(user))
            existing = [d for d in self.store.task_docs(user) if not is_supervisor_doc(d)]  # theirs: _supervise
            source: Any = loaded.program
            batch = 400
            if self.workers > 1 and len(contacts) > 2000:
                source = self._parallel(loaded)
                batch = 2000
            with _turn(loaded, budget):
                return compute(source, docs=[*contacts, *reports], task_docs=existing, user=who, now_ms=now,
                               tz=tz, collect_errors=True, batch_size=batch, budget=budget)

        result = self._computed(user, run, loaded.version)
        self._supervise(loaded, user, always=True)
        self._identity[user.id] = (user.updated_at, self._identity_of(user))
        tr.save_task_user_state(self.store, tr.TaskUserState(user.id, loaded.version, _fingerprint(user),
                                                             _local_day(now, tz), now))
        return len(result.writes)

    def _incremental(self, loaded: _Loaded, user: StoredUser, subjects: set[str],
                     state: tr.TaskUserState | None, budget: Budget | None = None) -> int:
        budget = budget or self._budget()
        now = self.clock()
        tz = self._tz(user)

        def run() -> Result:
            nonlocal now
            now = self.clock()  # a repeated computation is of its own instant, after what the other one wrote
            docs = self.store.docs_for_subjects(subjects, user=task_scope(user))
            wanted = set(subjects)
            for d in docs:
                if is_contact(d):
                    wanted.update(contact_subject_ids(d))
            touched = [d for d in self.store.task_docs(user, requesters=wanted) if not is_supervisor_doc(d)]
            # every other open doc gets the temporal update too (CHT's fetchTasksFor), so the user's list is
            # current as of now and the local day can be remembered; when they were already advanced to today
            # (states change with the local day only) the update would write nothing, so they are not read
            others: list[dict[str, Any]] = []
            if state is None or state.local_day != _local_day(now, tz):
                others = [d for d in self.store.task_docs(user, states=_OPEN_STATES)
                          if d.get("requester") not in wanted and not is_supervisor_doc(d)]
            who = self.store.engine_user(user)
            with _turn(loaded, budget):
                return compute(loaded.program, docs=docs, task_docs=touched, untouched_task_docs=others,
                               subjects=wanted, user=who, now_ms=now, tz=tz, collect_errors=True, budget=budget)

        result = self._computed(user, run, loaded.version)
        self._supervise(loaded, user)
        if state is not None and state.local_day != _local_day(now, tz):  # a write only when the day moved
            tr.save_task_user_state(self.store, tr.TaskUserState(
                user.id, state.program_version, state.fingerprint, _local_day(now, tz), state.full_at))
        return len(result.writes)

    def _temporal(self, user: StoredUser, state: tr.TaskUserState) -> int:
        now = self.clock()
        tz = self._tz(user)
        today = _local_day(now, tz)
        if state.local_day == today:
            return 0
        for attempt in range(MAX_COMPUTE_ATTEMPTS):
            seq = tr.user_task_seq(self.store, user.settings_id)
            _, writes = taskdocs.update_temporal_states(self.store.task_docs(user, states=_OPEN_STATES), now, tz)
            last = attempt == MAX_COMPUTE_ATTEMPTS - 1
            try:
                if writes:
                    self.store.write_task_docs(writes, expect=None if last else (user.settings_id, seq))
                break
            except TaskDocsChangedError:
                continue  # another process advanced or recomputed them meanwhile: read them again
        if state.local_day != today:
            tr.save_task_user_state(self.store, tr.TaskUserState(
                user.id, state.program_version, state.fingerprint, today, state.full_at))
        return len(writes)

    def _supervise(self, loaded: _Loaded, user: StoredUser, *, always: bool = False) -> int:
        """The user's supervisor tasks (docs/supervision.md), re-evaluated after each computation of the user when the
        program defines any (``always``: a full recompute, which also cancels those of a rule since removed);
        see :mod:`kazi.service.supervisor_tasks` for what marks them dirty and the latency. Written with the
        same optimistic check as a computation. Returns the documents written."""
        if not always and not rules_for(loaded.program, user):
            # no rule gives this user supervisor tasks: a rule lost (an account or program change) is a full
            # recompute, ``always``, which cancels what it had left open
            return 0
        for attempt in range(MAX_COMPUTE_ATTEMPTS):
            seq = tr.user_task_seq(self.store, user.settings_id)
            writes = refresh_supervisor_tasks(self.store, loaded.program, user, now_ms=self.clock(),
                                              tz=self._tz(user), tz_of=self._tz)
            if not writes:
                return 0
            try:
                last = attempt == MAX_COMPUTE_ATTEMPTS - 1
                self.store.write_task_docs(writes, expect=None if last else (user.settings_id, seq))
                return len(writes)
            except TaskDocsChangedError:
                continue  # another process wrote the user's documents meanwhile: read them again
        return 0

    def _store_result(self, user: StoredUser, result: Result, *, expect: tuple[str, int] | None = None,
                      version: int | None = None) -> None:
        if result.writes:
            self.store.write_task_docs(result.writes, expect=expect)
        if result.errors:
            self._record_errors(user, result.errors, version)

    def _record_errors(self, user: StoredUser, errors: Sequence[ConfigCodeError], version: int | None) -> None:
        """Log a computation's program errors (one line) and store them for admins (``program_errors``)."""
        log.warning("program code failed for %d container(s) of %s (their task documents are kept); first: %s",
                    len(errors), user.username, errors[0])
        at = int(time.time() * 1000)  # when it was seen, even under a frozen task clock (kazi serve --now)
        events = [perr.ErrorEvent(
            program_version=version, kind=e.kind, message=e.message, definition_index=e.definition_index,
            definition_name=e.definition_name, contact_id=e.contact_id,
            report_id=_text(e.details.get("report_id")), file=e.file or None, callback=e.callback,
            stack=e.stack or None, user=user.username, process=self.process, at=at) for e in errors]
        try:
            perr.record(self.store, events, max_rows=self.limits.max_stored_errors)
        except SQLAlchemyError:
            log.exception("storing %d program error(s) failed", len(events))

    # -- dirty tracking

    def _changes_since(self, since: int, limit: int | None = None) -> list[Change]:
        limit = CHANGES_PER_ROUND if limit is None else limit  # read when called: tests and tuning change it
        out: list[Change] = []
        while len(out) < limit:
            asked = min(CHANGES_PAGE, limit - len(out))
            page = self.store.changes_since(since, limit=asked)
            out.extend(page)
            if len(page) < asked:  # the end of the log (no second query to learn it)
                break
            since = page[-1].seq
        return out

    def _dirty(self, changes: list[Change]) -> _Dirty:
        dirty = _Dirty()
        report_ids: list[str] = []
        stored = tr.lineages(self.store, {c.id for c in changes if c.kind == "contact" and not c.deleted})
        for c in changes:
            dirty.subjects.update(c.subjects)
            dirty.doc_ids.add(c.id)
            if c.kind == "contact":
                dirty.places.add(c.id)
                dirty.places.update(c.lineage)  # its places before and after the write
                # A moved place: everything below it changes scope for the users above (old and new place);
                # its entry holds the old and new ancestors, so it differs from the stored lineage only then.
                if not c.deleted and list(c.lineage) != stored.get(c.id, []):
                    dirty.subjects.update(tr.descendants_subjects(self.store, c.id))
            elif c.kind == "report":
                report_ids.append(c.id)
        if dirty:
            dirty.places.update(tr.places_of_subjects(self.store, dirty.subjects))
            dirty.places.update(tr.places_of_submitters(self.store, report_ids))
        return dirty

    def _needs_full(self, user: StoredUser, state: tr.TaskUserState | None, version: int) -> bool:
        return state is None or state.program_version != version or state.fingerprint != _fingerprint(user)

    def _identity_ids(self, user: StoredUser) -> frozenset[str]:
        cached = self._identity.get(user.id)
        if cached is not None and cached[0] == user.updated_at:
            return cached[1]
        ids = self._identity_of(user)
        self._identity[user.id] = (user.updated_at, ids)
        return ids

    def _identity_of(self, user: StoredUser) -> frozenset[str]:
        """The documents the ``user`` global is built from: the user's contact and its lineage."""
        if not user.contact_id:
            return frozenset()
        return frozenset([user.contact_id, *self.store.lineage(user.contact_id)])

    def local_day(self, user: StoredUser) -> str:
        """``YYYY-MM-DD`` now in the user's zone (what the ``overdue`` filter and midnight updates go by)."""
        return self._today(user, self.clock())

    def _tz(self, user: StoredUser) -> str:
        return user.timezone or self.default_tz

    def _today(self, user: StoredUser, now: int) -> str:
        return _local_day(now, self._tz(user))

    def _parallel(self, loaded: _Loaded) -> Any:
        if loaded.parallel is None:
            from kazi.service.emission_pool import ParallelEmissionSource

            loaded.parallel = ParallelEmissionSource(loaded.program.path, self.workers, self.limits)
        return loaded.parallel

    # ----------------------------------------------------------------------------------------------------
    # reading

    def tasks(self, user: StoredUser, *, overdue: bool | None = None, task_types: list[str] | None = None,
              places: list[str] | None = None, limit: int = 100, offset: int = 0,
              states: Sequence[str] = (taskdocs.READY,), owners: Sequence[str] | None = None,
              since: int | None = None) -> TaskPage:
        """The user's Tasks tab: Ready task docs, highest priority first, then by due date (reference 7.10).

        ``overdue``: due today or earlier in the user's zone (CHT marks a task due today as overdue) or, when
        false, due later; ``task_types``: the emission's title key or the definition name; ``places``: the
        task's owner is at or below one of these places; ``owners``: the task's owner is one of these contacts
        (a contact's page); ``states``: Ready by default (the web app also caches Draft tasks, which turn Ready
        on the device at local midnight).

        ``since`` (a task-document sequence number the caller had) makes the page a delta: only the task
        documents written after it, those in ``states`` as ``items`` (``total`` counts them) and the others'
        ids as ``removed`` (they left the list: completed, failed, cancelled). A device keeps its list and
        applies deltas, so a change to one task of a 600-task list costs one task, not the list.
        """
        tz = self._tz(user)
        removed: list[str] = []
        if since is not None:
            wanted = set(states)
            docs = []
            for d in self.store.task_docs(user, owners=owners, since=since):
                if d.get("state") in wanted:
                    docs.append(d)
                else:
                    removed.append(str(d.get("_id")))
        else:
            docs = self.store.task_docs(user, states=list(states), owners=owners)
        if overdue is not None:
            today = _local_day(self.clock(), tz)
            docs = [d for d in docs if _is_overdue(d, today) == overdue]
        if task_types:
            kinds = set(task_types)
            docs = [d for d in docs if _task_type(d) & kinds]
        if places:
            under = tr.contact_ids_under(self.store, places)
            docs = [d for d in docs if d.get("owner") in under]
        ordered = taskdocs.sort_for_tasks_tab(docs, tz)
        page = ordered[max(0, offset):max(0, offset) + max(0, limit)]
        return TaskPage(total=len(ordered), items=[{**d, "emission_id": _emission(d).get("_id")} for d in page],
                        removed=removed)


# --------------------------------------------------------------------------------------------------------
# helpers


def validate_program(program_dir: Path) -> list[Problem]:
    """Every problem of a program folder (errors and warnings), without loading it."""
    return inspect_tasks(Path(program_dir))


def program_files(root: Path, kind: str) -> dict[str, str]:
    """The files a program folder runs with, by relative path: ``tasks.js`` and the modules it requires
    (``node_modules`` packages included) or every ``.py`` file, the settings, ``task-schedules.json``,
    ``extension-libs/`` and ``translations/``. Nothing else is kept (``targets.js``, build output...)."""
    files: dict[str, str] = {}
    scratch: list[Problem] = []
    if kind == "js":
        settings = loader.read_settings(root, scratch)
        spec = loader._js_spec(root, settings, loader.read_schedules(root, settings, scratch), scratch)
        files.update(spec.files)
    else:
        for p in sorted(root.rglob("*.py")):
            if "__pycache__" not in p.parts:
                files[p.relative_to(root).as_posix()] = p.read_text(encoding="utf-8")
    for name in (*loader.SETTINGS_FILES, "task-schedules.json"):
        if (root / name).is_file():
            files[name] = (root / name).read_text(encoding="utf-8")
    for folder in ("extension-libs", "translations"):
        base = root / folder
        if base.is_dir():
            for p in sorted(base.rglob("*")):
                if p.is_file():
                    files[p.relative_to(root).as_posix()] = p.read_text(encoding="utf-8")
    for p in loader.form_paths(root):  # the web app's forms (forms/*.json), not CHT's XForms beside them
        files[p.relative_to(root).as_posix()] = p.read_text(encoding="utf-8")
    return files


def _materialize(files: dict[str, str], override: dict[str, Any] | None
                 ) -> tuple[tempfile.TemporaryDirectory[str], Program]:
    """Write stored files to a scratch folder and load them (worker processes load the same folder)."""
    folder = tempfile.TemporaryDirectory(prefix="kazi-program-")
    root = Path(folder.name)
    try:
        for rel, text in files.items():
            path = (root / rel).resolve()
            if not path.is_relative_to(root.resolve()):
                raise ProgramError(f"stored program file {rel!r} leaves the program folder")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        if override is not None:
            base: dict[str, Any] = loader.read_settings(root, [])
            (root / "app_settings.json").write_text(orjson.dumps({**base, **override}).decode(), encoding="utf-8")
        return folder, load_program(root)
    except BaseException:
        folder.cleanup()
        raise


def _close_loaded(loaded: _Loaded) -> None:
    """Free a program version's runtime, processes and folder; a computation still running on it (another
    thread's read of a program just replaced) is ended first: it would otherwise hold the runtime."""
    loaded.interrupt()
    if loaded.parallel is not None:
        loaded.parallel.close()
    runtime = loaded.program._js_runtime
    if runtime is not None:
        close = getattr(runtime, "close", None)
        if callable(close):
            close()
    loaded.folder.cleanup()


@contextmanager
def _turn(loaded: _Loaded, budget: Budget | None) -> Iterator[None]:
    """The program's runtime for one computation; with a deadline, waited for until it passes only."""
    left = budget.remaining() if budget is not None else None
    if not loaded.runtime_lock.acquire(timeout=-1 if left is None else max(left, 0.0)):
        raise ComputationInterrupted("another computation held the program's runtime until the deadline")
    try:
        yield
    finally:
        loaded.runtime_lock.release()


def _preflight_problem(err: ConfigCodeError) -> Problem:
    """A pre-flight failure as a validation problem: where (file, definition, contact) and what."""
    callback = f"{err.callback}: " if err.callback else ""
    return Problem("error", err.file or "tasks", f"{callback}{err.kind}: {err.message}", rule="preflight",
                   definition_index=err.definition_index, definition_name=err.definition_name,
                   contact_id=err.contact_id, report_id=_text(err.details.get("report_id")))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _next_local_midnight(now_ms: int, tz: str) -> int:
    """The first instant of the local day after the one holding ``now_ms`` in ``tz``."""
    return int(dates.add_days_local(dates.local_midnight(now_ms, tz), 1, tz))


def _local_day(now_ms: int, tz: str) -> str:
    """The local ``YYYY-MM-DD`` of a valid instant."""
    return dates.local_date_str(now_ms, tz) or ""


def task_scope(user: StoredUser) -> Scope:
    """Where a user's tasks come from: the contacts under their place (``facility_id``) and the reports about
    them; nothing for a user without a place or a disabled one.

    For most users this is what they may read (:func:`kazi.store.scope_of`). Administrators and national
    users read the whole deployment, but computing their tasks over it would make every round and every
    midnight of theirs a full-deployment computation (50,000 households) for a list nobody works through:
    CHT gives admins no tasks at all. So their tasks too come from their place: an admin account without one
    (``kazi users add admin --roles admin``) gets none and costs nothing, and one placed at the top of the
    hierarchy asks for the whole deployment's tasks explicitly (admins hold every permission, so every task
    of the program fires there).
    """
    if user.disabled or not user.facility_id:
        return NOTHING
    return Scope(places=(user.facility_id,))


def _fingerprint(user: StoredUser) -> str:
    """What a user's tasks depend on besides documents and the program: a change means a full recompute."""
    data = [user.username, sorted(user.roles), list(task_scope(user).places), user.contact_id, user.timezone]
    return hashlib.sha256(orjson.dumps(data)).hexdigest()[:32]


def _emission(doc: dict[str, Any]) -> dict[str, Any]:
    emission = doc.get("emission")
    return emission if isinstance(emission, dict) else {}


def _is_overdue(doc: dict[str, Any], today: str) -> bool:
    due = _emission(doc).get("dueDate")
    return isinstance(due, str) and due[:10] <= today


def _task_type(doc: dict[str, Any]) -> set[str]:
    emission = _emission(doc)
    out: set[str] = set()
    title = emission.get("title")
    if isinstance(title, str):
        out.add(title)
    eid = emission.get("_id")
    if isinstance(eid, str) and "~" in eid:
        name = eid.rsplit("~", 1)[1]
        out.add(name)
    return out
