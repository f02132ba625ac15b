"""The store's tables, as SQLAlchemy Core metadata: the shape every query is written against.

The migrations in ``kazi/store/migrations/versions`` create this same shape step by step; a test compares the
migrated database with this metadata on both backends, so the two cannot drift apart unnoticed.

Why these tables:

* ``docs`` holds every CHT document (contacts, reports, anything else) with its JSON body kept as given, plus
  the columns the engine and the API filter on, so no query has to parse JSON;
* ``doc_ancestors`` is the closure of the contact hierarchy (a contact with each of its ancestors and itself
  at depth 0): "everything under this place" is one indexed lookup, whatever the depth;
* ``doc_subjects`` maps contacts and reports to their subject ids (CHT's ``_id``/``patient_id``/``place_id``
  short codes), which is how reports attach to contacts for scopes and for incremental recomputation;
* ``changes`` is an append-only log of document writes with the subjects each write touched, old and new,
  so a recompute worker that reads it never misses a subject a document moved away from;
* ``counters`` hands out change sequence numbers; the row is locked by every write transaction, which
  serialises writers and guarantees a change with a smaller sequence number is never committed later;
* ``task_docs`` holds each user's task documents (CHT's ``type: task``) with their state history in the body;
  the columns ``task_name``, ``title_key``, ``closed_at`` and ``on_time`` are what supervision reports count
  by (migration 0007; :mod:`kazi.store.supervision`);
* ``task_stats`` sums the task documents' events (generated, completed, completed on time, failed, cancelled)
  per user, UTC month, task name and title key, kept up to date by every task-document write, so a district's
  year of supervision report reads a row per worker, month and task instead of every document (migration
  0008; :mod:`kazi.store.task_stats`);
* ``users`` and ``user_tokens`` are the accounts (passwords and tokens only as hashes; ``users.locale``, the
  language the web app shows, came with migration 0003);
* ``login_failures`` counts recent failed password checks per account and per client address, so every API
  process throttles the same guesses and a restart forgets none of them; ``login_attempts`` holds the checks
  in flight, counted as pending until they end or lapse (migration 0010; :mod:`kazi.service.auth`);
* ``programs`` keeps every program version loaded, its files as JSON, so a server can rebuild the active one
  after a restart and an admin can see what ran when (migration 0002);
* ``service_state`` and ``task_users`` are the task service's memory: the last change it processed, and per
  user what their task documents were computed with (program version, account fingerprint, local day), so a
  restarted service resumes instead of recomputing everything (migration 0002);
* ``interaction_summaries`` keeps the task interaction summaries devices send (one per user, device and
  local day, docs/interactions.md), each version of an id kept: a conflicting copy is numbered, never lost (migration
  0004; :mod:`kazi.store.interactions`);
* ``sms_messages`` and ``sms_outgoing`` keep every SMS a gateway delivered (unique by the gateway's message id
  and sender: a message delivered twice is processed once) and the replies with their delivery state; a
  contact's phone key (``docs.phone``) finds an SMS sender by an index (migration 0006; :mod:`kazi.store.sms`).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

#: Deterministic constraint names, identical on SQLite and PostgreSQL, so later migrations can name them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

#: ``kind`` values of ``docs`` and ``doc_subjects``
CONTACT = "contact"
REPORT = "report"
OTHER = "other"

#: names of the ``counters`` rows
DOCS_COUNTER = "docs"
TASKS_COUNTER = "tasks"

counters = Table(
    "counters",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

docs = Table(
    "docs",
    metadata,
    Column("id", String, primary_key=True),
    Column("rev", String, nullable=False),  # "<generation>-<content hash>", CouchDB's _rev shape
    Column("seq", BigInteger, nullable=False),  # change sequence number of the last write
    Column("kind", String(8), nullable=False),  # contact | report | other
    Column("type", String),
    Column("contact_type", String),  # contact_type of type:contact, else the legacy type (person, clinic...)
    Column("form", String),
    Column("parent_id", String),  # parent._id of a contact
    Column("contact_id", String),  # contact._id: a report's submitter, a place's primary contact
    Column("subject", String),  # a report's single subject (CHT getSubjectId), NULL when it has none
    Column("reported_date", BigInteger),  # epoch ms when the body has a number there
    Column("deleted", Boolean, nullable=False),  # a tombstone (_deleted: true)
    Column("body", Text, nullable=False),  # the JSON body as given, without _rev
    Column("phone", String),  # a contact's phone key (kazi.sms.phones.phone_key): SMS senders (0006)
    Index(None, "seq", unique=True),
    Index(None, "kind", "contact_type"),
    Index(None, "type"),
    Index(None, "form"),
    Index(None, "parent_id"),
    Index(None, "contact_id"),
    Index(None, "subject"),
    Index(None, "reported_date"),
    Index(None, "phone"),
    # supervision reports count a worker's reports by form and month from this index alone (0008)
    Index("ix_docs_submitted", "contact_id", "form", "reported_date", "kind", "deleted"),
)

doc_ancestors = Table(
    "doc_ancestors",
    metadata,
    Column("doc_id", String, ForeignKey("docs.id", ondelete="CASCADE"), primary_key=True),
    Column("ancestor_id", String, primary_key=True),  # may name a contact not stored (yet)
    Column("depth", Integer, nullable=False),  # 0 = the contact itself, 1 = its parent, ...
    Index(None, "ancestor_id", "doc_id"),
)

doc_subjects = Table(
    "doc_subjects",
    metadata,
    Column("doc_id", String, ForeignKey("docs.id", ondelete="CASCADE"), primary_key=True),
    Column("subject_id", String, primary_key=True),
    Column("kind", String(8), nullable=False),  # contact | report, as the doc's kind
    Index(None, "subject_id", "kind"),
)

changes = Table(
    "changes",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("doc_id", String, nullable=False),
    Column("rev", String, nullable=False),
    Column("kind", String(8), nullable=False),
    Column("deleted", Boolean, nullable=False),
    Column("subjects", Text, nullable=False),  # JSON list: subject ids before and after the write
    Column("lineage", Text, nullable=False),  # JSON list: a contact's ancestor ids before and after
    Index(None, "doc_id"),
)

task_docs = Table(
    "task_docs",
    metadata,
    Column("id", String, primary_key=True),
    Column("rev", String, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("user_id", String, nullable=False),  # the body's `user`: "org.couchdb.user:<username>"
    Column("requester", String),
    Column("owner", String),
    Column("state", String),
    Column("emission_id", String),
    Column("due_date", String),  # emission.dueDate, local YYYY-MM-DD
    Column("authored_on", BigInteger),
    Column("body", Text, nullable=False),
    # supervision (migration 0007): what the indicators count by, so no report parses JSON
    Column("task_name", String),  # the definition's name, from emission._id
    Column("title_key", String),  # emission.title when a string
    Column("closed_at", BigInteger),  # when a terminal state (Completed, Failed, Cancelled) was reached
    Column("on_time", Boolean),  # Completed on or before emission.endDate in the user's zone
    Index(None, "seq", unique=True),
    Index(None, "user_id", "state"),
    Index(None, "user_id", "requester"),
    Index(None, "user_id", "owner"),
    Index(None, "user_id", "emission_id"),
    Index(None, "user_id", "seq"),  # the newest task document of a user (migration 0005)
    # supervision reports (0007): covering, so counting a team's year reads the index only, never the bodies
    Index("ix_task_docs_closed", "user_id", "closed_at", "state", "on_time", "task_name", "title_key"),
    Index("ix_task_docs_generated", "user_id", "authored_on", "task_name", "title_key"),
)

task_stats = Table(
    "task_stats",
    metadata,
    Column("user_id", String, primary_key=True),  # task_docs.user_id
    Column("month", BigInteger, primary_key=True),  # the UTC month's start, epoch ms
    Column("task_name", String, primary_key=True),  # task_docs.task_name, "" for none
    Column("title_key", String, primary_key=True),  # task_docs.title_key, "" for none
    Column("generated", Integer, nullable=False),  # authored_on in the month
    Column("completed", Integer, nullable=False),  # closed_at in the month, by state
    Column("completed_on_time", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    Column("cancelled", Integer, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String, nullable=False, unique=True),
    Column("password_hash", String, nullable=False),
    Column("roles", Text, nullable=False),  # JSON list of role ids
    Column("facility_id", String),
    Column("contact_id", String),
    Column("timezone", String),
    Column("national", Boolean, nullable=False),
    Column("disabled", Boolean, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("locale", String),  # the web app's language (en, ny, pt-BR); NULL: the program's default (0003)
)

user_tokens = Table(
    "user_tokens",
    metadata,
    Column("id", String(32), primary_key=True),  # the public part of the token, used to find it
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("secret_hash", String, nullable=False),
    Column("label", String, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger),
    Index(None, "user_id"),
)

login_failures = Table(
    "login_failures",
    metadata,
    # "account:" or "address:" and a SHA-256 of the username or address: fixed-size keys whatever a client sends
    Column("key", String(80), primary_key=True),
    Column("failures", Integer, nullable=False),  # counted failures, each forgotten after a decay period
    Column("last_failure_at", BigInteger, nullable=False),  # epoch ms
    Column("blocked_until", BigInteger, nullable=False),  # epoch ms; no password is checked before it
)

login_attempts = Table(
    "login_attempts",
    metadata,
    # password checks in flight, one row per attempt and key (a ``login_failures`` key): each counts as pending
    # until its check ends, and lapses on its own if the process checking it died
    Column("attempt", String(32), nullable=False),  # random, chosen by the process that checks it
    Column("key", String(80), nullable=False),
    Column("started_at", BigInteger, nullable=False),  # epoch ms
    PrimaryKeyConstraint("key", "attempt"),
)

programs = Table(
    "programs",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),  # 1, 2, ... in load order
    Column("kind", String(8), nullable=False),  # js | python
    Column("files", Text, nullable=False),  # JSON {relative path: text} of the program folder
    Column("settings_override", Text),  # JSON app settings imported separately (kazi import app_settings.json)
    Column("warnings", Text, nullable=False),  # JSON list of Problem dicts
    Column("loaded_at", BigInteger, nullable=False),
    Column("active", Boolean, nullable=False),
    Index(None, "active"),
)

service_state = Table(
    "service_state",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

program_errors = Table(
    "program_errors",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # what one error is aggregated by, hashed (sha256 hex) so that one unique index holds it whatever its size
    Column("key", String(64), nullable=False, unique=True),
    Column("program_version", Integer),  # NULL: no version yet (a pre-flight of a new version is not stored)
    Column("definition_index", Integer),
    Column("definition_name", String),
    Column("contact_id", String),
    Column("report_id", String),
    Column("kind", String(16), nullable=False),  # exception | timeout | memory | size
    Column("message", Text, nullable=False),
    Column("file", String),
    Column("callback", String),
    Column("stack", Text),  # the last occurrence's, cut to a few KB
    Column("last_user", String),  # the username of the last computation it happened in
    Column("last_process", String(16)),  # api | worker: the process that saw it last
    Column("count", BigInteger, nullable=False),
    Column("first_seen", BigInteger, nullable=False),  # epoch ms
    Column("last_seen", BigInteger, nullable=False),
    Index(None, "last_seen"),
)

task_users = Table(
    "task_users",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("program_version", Integer, nullable=False),  # the program the user's task docs come from
    Column("fingerprint", String, nullable=False),  # hash of what a full recompute depends on besides docs
    Column("local_day", String(10), nullable=False),  # the user's local date of the last temporal update
    Column("full_at", BigInteger, nullable=False),  # clock (ms) of the last full recompute
)

interaction_summaries = Table(
    "interaction_summaries",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),  # order of arrival
    Column("id", String, nullable=False),  # the summary's _id: interaction-<date>-<user>-<deviceId>
    Column("conflict", Integer, nullable=False),  # 0: first received under this id; n: the n-th conflicting one
    Column("username", String, nullable=False),
    Column("device_id", String, nullable=False),
    Column("day", String(10), nullable=False),  # the user's local date, YYYY-MM-DD
    Column("app_version", String, nullable=False),
    Column("events", Integer, nullable=False),
    Column("dropped", Integer, nullable=False),
    Column("content_hash", String(64), nullable=False),  # SHA-256 of the canonical JSON: same content, same hash
    Column("body", Text, nullable=False),  # the summary JSON as received
    Column("received_at", BigInteger, nullable=False),
    Index(None, "id", "conflict", unique=True),
    Index(None, "id", "content_hash", unique=True),
    Index(None, "day", "username"),
    Index(None, "username", "day"),
)

sms_messages = Table(
    "sms_messages",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),  # order of arrival
    Column("id", String, nullable=False),  # the gateway's message id
    Column("sender", String, nullable=False),  # the sender's number as the gateway gave it
    Column("text", Text, nullable=False),
    Column("sent_at", BigInteger),  # when the phone sent it (epoch ms), when the gateway says
    Column("received_at", BigInteger, nullable=False),  # when the gateway received it (epoch ms)
    Column("stored_at", BigInteger, nullable=False),  # when Kazi stored it (server clock)
    Column("gateway", String(16), nullable=False),  # medic-gateway | json: the endpoint it came through
    Column("gateway_user", String, nullable=False),  # the account that delivered it
    Column("status", String(16), nullable=False),  # processed | error | unknown_sender
    Column("error", String(32)),  # the error code when status is error
    Column("form", String),  # the SMS form's code, when recognised
    Column("contact_id", String),  # the sender's contact
    Column("report_id", String),  # the report it became
    Column("patient_id", String),  # the subject's short code (a registration's new one)
    Column("reply_id", String),  # sms_outgoing.id of the reply
    Column("reply_to", String),
    Column("reply_text", Text),
    Index(None, "id", "sender", unique=True),
    Index(None, "status", "seq"),
    Index(None, "contact_id"),
)

sms_outgoing = Table(
    "sms_outgoing",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String, nullable=False),  # the message id the gateway reports states under
    Column("to", String, nullable=False),
    Column("text", Text, nullable=False),
    Column("gateway", String(16), nullable=False),  # medic-gateway: queued for it; json: answered directly
    Column("state", String(32), nullable=False),  # CHT's message states: pending, forwarded-to-gateway, ...
    Column("reason", Text),  # why it failed, as the gateway reports it
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("in_reply_to", Integer),  # sms_messages.seq
    Index(None, "id", unique=True),
    Index(None, "gateway", "state"),
)
