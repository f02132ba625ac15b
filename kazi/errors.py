"""Every error Kazi raises, drawn in one place.

Callers catch :class:`KaziError` for "Kazi refused this input" and let anything else propagate as a bug.
Each error carries enough location (file, definition, field, contact) to act on without a debugger.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class KaziError(Exception):
    """Base class: an input Kazi cannot accept, with a message meant for people."""


@dataclass
class Problem:
    """One located validation finding (error or warning) in a program."""

    severity: str  # "error" | "warning"
    file: str
    message: str
    rule: str = ""
    definition_index: int | None = None
    definition_name: str | None = None
    field: str | None = None
    hint: str = ""
    conflicts_with: str | None = None
    form: str | None = None  # a form's id: problems of forms/<id>.json, and task actions naming a form
    contact_id: str | None = None  # the stored contact program code failed for (a new version's pre-flight)
    report_id: str | None = None

    def location(self) -> str:
        """`file: definition 2 ("anc.visit"), field events[1].id` style location (`form "x"` for forms)."""
        parts = [self.file]
        if self.form is not None and self.definition_index is None:
            parts.append(f'form "{self.form}"')
        if self.definition_index is not None:
            name = f' ("{self.definition_name}")' if self.definition_name else ""
            parts.append(f"definition {self.definition_index}{name}")
        if self.field:
            parts.append(f"field {self.field}")
        if self.contact_id:
            parts.append(f"contact {self.contact_id}")
        if self.report_id:
            parts.append(f"report {self.report_id}")
        return ", ".join(parts)

    def __str__(self) -> str:
        hint = f"\n    fix: {self.hint}" if self.hint else ""
        return f"{self.severity}: {self.location()}: {self.message}{hint}"

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None and v != ""}


class ProgramError(KaziError):
    """A program folder cannot be loaded: unreadable, unparsable or invalid definitions."""

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        self.problems: list[Problem] = problems or []
        detail = "".join(f"\n  {p}" for p in self.problems)
        super().__init__(message + detail)


@dataclass
class ConfigCodeError(KaziError):
    """Program code (tasks.js / tasks.py callbacks) threw, ran too long or used too much memory."""

    message: str
    file: str = ""
    definition_index: int | None = None
    definition_name: str | None = None
    contact_id: str | None = None
    callback: str | None = None
    kind: str = "exception"  # "exception" | "timeout" | "memory"
    stack: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def __reduce__(self) -> tuple[Any, ...]:
        # Crosses process boundaries (kazi.service.emission_pool): rebuild from fields, not from Exception.args.
        return (_rebuild_config_code_error, (dict(self.__dict__),))

    def __str__(self) -> str:
        where = [self.file or "program code"]
        if self.definition_index is not None:
            name = f' ("{self.definition_name}")' if self.definition_name else ""
            where.append(f"definition {self.definition_index}{name}")
        if self.callback:
            where.append(self.callback)
        if self.contact_id:
            where.append(f"contact {self.contact_id}")
        return f"{', '.join(where)}: {self.kind}: {self.message}"


class ComputationInterrupted(KaziError):
    """A computation was stopped from outside before it finished: the process is stopping, a newer program
    version replaced the one it ran, or its deadline passed (an API read that leaves the rest to the worker).

    Nothing of an interrupted computation is stored: it is not the program's error, and the next round (or
    the worker) computes the user again. ``where``: what program code was running when a deadline passed
    (``contact``, ``definition``, ``definitionName``, ``callback``), when known."""

    def __init__(self, message: str, where: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.where: dict[str, Any] = where or {}


def _rebuild_config_code_error(fields: dict[str, Any]) -> ConfigCodeError:
    return ConfigCodeError(**fields)


class DocumentError(KaziError):
    """An input document is malformed (not an object, missing `_id`, ...).

    ``index`` is the document's position in the batch it came in, for documents without a usable ``_id``.
    """

    def __init__(
        self, message: str, doc_id: str | None = None, field: str | None = None, index: int | None = None,
    ) -> None:
        self.doc_id = doc_id
        self.field = field
        self.index = index
        super().__init__(message)

    def to_dict(self) -> dict[str, Any]:
        """What an API answers for this problem: the message and whatever locates it."""
        out: dict[str, Any] = {"message": str(self)}
        for key in ("index", "doc_id", "field"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


class DocumentBatchError(KaziError):
    """A batch of documents was refused as a whole: nothing of it was stored.

    Every problem found is listed (not only the first), so a client can fix the batch in one go.
    """

    def __init__(self, problems: list[DocumentError], total: int) -> None:
        self.problems = problems
        self.total = total
        lines = []
        for p in problems:
            where = [f"#{p.index}"] if p.index is not None else []
            if p.doc_id is not None:
                where.append(f"_id {p.doc_id!r}")
            if p.field:
                where.append(f"field {p.field}")
            lines.append(f"\n  {', '.join(where) or 'batch'}: {p}")
        bad = len({(p.index, p.doc_id) for p in problems})
        super().__init__(f"{bad} of {total} documents refused, none stored:" + "".join(lines))


class DocumentConflict(DocumentError):
    """A document that contradicts what is stored, rather than being malformed: its ``_rev`` is not the stored
    document's (a stale write would silently undo someone else's change), or its ``phone`` is another user's
    (SMS from that number would be attributed to it). ``current_rev`` is the stored revision when there is
    one the writer may see, so a client can re-read, merge and send again."""

    def __init__(self, message: str, doc_id: str, field: str, index: int | None = None,
                 current_rev: str | None = None) -> None:
        super().__init__(message, doc_id=doc_id, field=field, index=index)
        self.current_rev = current_rev

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if self.current_rev is not None:
            out["current_rev"] = self.current_rev
        return out


class DocumentConflictError(DocumentBatchError):
    """A batch refused only because some of its documents conflict with what is stored
    (:class:`DocumentConflict`): nothing of it was stored. The API answers 409, where other problems are 422."""


def batch_error(problems: list[DocumentError], total: int) -> DocumentBatchError:
    """The error for a refused batch: :class:`DocumentConflictError` when every problem is a conflict (the
    batch is well-formed and may be sent again once re-read), else :class:`DocumentBatchError`."""
    if problems and all(isinstance(p, DocumentConflict) for p in problems):
        return DocumentConflictError(problems, total)
    return DocumentBatchError(problems, total)


class NotFoundError(KaziError):
    """A document, task document or user does not exist, or is outside the caller's scope.

    Both cases give the same error and message on purpose: a caller must not learn that a document it may
    not see exists.
    """

    def __init__(self, what: str, key: str) -> None:
        self.what = what
        self.key = key
        super().__init__(f"{what} {key!r} not found")


class UserError(KaziError):
    """A user account cannot be created or changed as asked; ``field`` names the offending field."""

    def __init__(self, message: str, field: str | None = None) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class StoreError(KaziError):
    """The database cannot be used: unsupported URL, unreachable server, or a schema this Kazi does not know."""


class TaskDocsChangedError(KaziError):
    """A user's task documents changed between a computation's read and its write: another process computed
    the same user meanwhile. The computation is repeated from what is stored now (never shown to clients)."""


class DocumentExistsError(KaziError):
    """A write meant to create documents found one of their ``_id``s taken (``write_docs(create_only=True)``):
    the check and the write are one transaction, so two submissions racing for one ``_id`` cannot both win."""

    def __init__(self, doc_ids: list[str]) -> None:
        super().__init__(f"_id already used: {', '.join(repr(i) for i in doc_ids)}")
        self.doc_ids = doc_ids
