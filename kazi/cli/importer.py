"""``kazi import FILE [--db URL]``: CHT documents or an ``app_settings.json`` into the store.

Accepted files:

* a JSON array of documents; a CouchDB ``_all_docs?include_docs=true`` export (``{"rows": [{"doc": ...}]}``);
  ``kazi population``'s ``{"contacts": [...], "reports": [...]}``; NDJSON (one document per line);
* an ``app_settings.json`` (a JSON object without ``_id`` holding ``roles`` / ``permissions`` /
  ``contact_types``...): stored as a new program version whose settings are the loaded program's with these
  on top, so roles and permissions (who is offline, who may do what) follow the deployment's real settings.

Skipped, and counted by reason in the summary: design documents (``_design/*``: CouchDB's, not data), task
documents (Kazi computes every user's own), documents without ``_id``, deletions, and invalid documents
(listed with their problems). Documents are written in batches, each all or nothing; a batch the store
refuses (a lineage loop, say) is reported and the import goes on with the next. Re-importing a file changes
nothing (writes are idempotent by ``_id`` and content). A document replaces the stored one whatever its ``_rev``
(an export's revisions are CouchDB's, not Kazi's): the import is an administrator's load, so it writes without
the checks of a client's write (``Store.write_docs(check_rev=...)``, kazi.store.store.WriteChecks).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from kazi.errors import DocumentBatchError, DocumentError, KaziError
from kazi.store import documents, open_store

BATCH = 1000
PROGRESS_EVERY = 10_000
MAX_LISTED = 50
_SETTINGS_KEYS = ("roles", "permissions", "contact_types", "tasks", "locale", "locales")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("import", help="import CHT documents (JSON, NDJSON, _all_docs) or app_settings.json")
    p.add_argument("file", metavar="FILE", type=Path)
    p.add_argument("--db", metavar="URL", default=None, help="database URL (default: sqlite:///data/kazi.sqlite3)")
    p.add_argument("--batch", type=int, default=BATCH, help=f"documents per transaction (default {BATCH})")
    p.set_defaults(func=run)


def read_file(path: Path) -> tuple[str, Any]:
    """``("settings", dict)`` or ``("docs", iterator of documents)``; NDJSON is read line by line."""
    with path.open("r", encoding="utf-8") as fp:
        head = fp.read(1 << 16)
    text_start = head.lstrip()
    if text_start.startswith("{") and _is_ndjson(path):
        return "docs", _ndjson(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise KaziError(f"{path}: not JSON or NDJSON: line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc
    if isinstance(data, list):
        return "docs", iter(data)
    if isinstance(data, dict):
        if isinstance(data.get("rows"), list):
            return "docs", (r.get("doc") if isinstance(r, dict) and "doc" in r else r for r in data["rows"])
        if any(isinstance(data.get(k), list) for k in ("contacts", "reports", "docs")):
            return "docs", (d for k in ("contacts", "reports", "docs") for d in data.get(k) or [])
        if "_id" not in data and (path.name == "app_settings.json" or any(k in data for k in _SETTINGS_KEYS)):
            return "settings", data
        return "docs", iter([data])
    raise KaziError(f"{path}: expected a JSON array or object, got {type(data).__name__}")


def _is_ndjson(path: Path) -> bool:
    """Two or more lines that are each a whole JSON object."""
    with path.open("r", encoding="utf-8") as fp:
        lines = []
        for line in fp:
            if line.strip():
                lines.append(line)
            if len(lines) == 2:
                break
    if len(lines) < 2:
        return False
    try:
        return all(isinstance(json.loads(line), dict) for line in lines)
    except json.JSONDecodeError:
        return False


def _ndjson(path: Path) -> Iterator[Any]:
    with path.open("r", encoding="utf-8") as fp:
        for n, line in enumerate(fp, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                yield _Unreadable(f"line {n}: invalid JSON: {exc.msg}")


class _Unreadable:
    def __init__(self, reason: str) -> None:
        self.reason = reason


class Importer:
    """Counts and batches; :meth:`summary` says what happened to every document."""

    def __init__(self, store: Any, batch: int = BATCH, progress: TextIO | None = sys.stderr) -> None:
        self.store = store
        self.batch_size = max(1, batch)
        self.progress = progress
        self.seen = 0
        self.stored = 0
        self.unchanged = 0
        self.skipped: Counter[str] = Counter()
        self.problems: list[str] = []
        self._batch: list[dict[str, Any]] = []

    def add(self, doc: Any) -> None:
        index = self.seen
        self.seen += 1
        if isinstance(doc, _Unreadable):
            self._skip("invalid", doc.reason)
        elif not isinstance(doc, dict):
            self._skip("invalid", f"#{index}: not a JSON object")
        elif not doc.get("_id"):
            self.skipped["no _id"] += 1
        elif isinstance(doc["_id"], str) and doc["_id"].startswith("_design/"):
            self.skipped["design document"] += 1
        elif doc.get("type") == "task":
            self.skipped["task document (Kazi computes its own)"] += 1
        elif doc.get("_deleted") is True:
            self.skipped["deletion"] += 1
        else:
            checked = documents.prepare(doc, index)
            if isinstance(checked, list):
                self._skip("invalid", "; ".join(_describe(p) for p in checked))
            else:
                self._batch.append(doc)
                if len(self._batch) >= self.batch_size:
                    self.flush()
        if self.progress is not None and self.seen % PROGRESS_EVERY == 0:
            print(f"kazi import: {self.seen} documents read, {self.stored} stored", file=self.progress, flush=True)

    def flush(self) -> None:
        batch, self._batch = self._batch, []
        if not batch:
            return
        try:
            results = self.store.write_docs(batch)
        except DocumentBatchError as exc:
            self.skipped["refused batch"] += len(batch)
            for p in exc.problems:
                self._note(_describe(p))
            return
        for r in results:
            if r.changed:
                self.stored += 1
            else:
                self.unchanged += 1

    def _skip(self, reason: str, detail: str) -> None:
        self.skipped[reason] += 1
        self._note(detail)

    def _note(self, detail: str) -> None:
        if len(self.problems) < MAX_LISTED:
            self.problems.append(detail)

    def summary(self) -> str:
        lines = [f"{self.seen} documents read: {self.stored} stored, {self.unchanged} unchanged, "
                 f"{sum(self.skipped.values())} skipped"]
        for reason, n in sorted(self.skipped.items()):
            lines.append(f"  skipped {n}: {reason}")
        if self.problems:
            lines.append("problems:")
            lines.extend(f"  {p}" for p in self.problems)
            hidden = self.skipped["invalid"] + self.skipped["refused batch"] - len(self.problems)
            if hidden > 0:
                lines.append(f"  ... and more (first {MAX_LISTED} listed)")
        return "\n".join(lines)


def _describe(p: DocumentError) -> str:
    where = [f"#{p.index}"] if p.index is not None else []
    if p.doc_id is not None:
        where.append(f"_id {p.doc_id!r}")
    if p.field:
        where.append(f"field {p.field}")
    return f"{', '.join(where) or 'document'}: {p}"


def run(args: argparse.Namespace) -> int:
    path: Path = args.file
    if not path.is_file():
        raise KaziError(f"{path}: no such file")
    kind, content = read_file(path)
    with open_store(args.db) as store:
        if kind == "settings":
            from kazi.service.tasks import TaskService

            service = TaskService(store)
            try:
                info = service.import_settings(content)
            finally:
                service.close()
            print(f"app settings imported as program version {info.version} "
                  f"(roles: {len(content.get('roles') or {})}, permissions: {len(content.get('permissions') or {})})")
            return 0
        importer = Importer(store, args.batch)
        for doc in content:
            importer.add(doc)
        importer.flush()
        if importer.stored:
            store.analyze()  # the planner's statistics, for the store as it now is
    print(importer.summary())
    return 1 if importer.skipped["refused batch"] else 0
