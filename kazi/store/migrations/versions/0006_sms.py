"""Cases by SMS (docs/sms.md): contacts' phone keys, incoming messages and outgoing replies.

* ``docs.phone``: the key of a contact's ``phone`` (:func:`kazi.sms.phones.phone_key`, the last nine digits),
  so matching an SMS sender to a contact is an indexed query, not a scan of every contact. Existing contacts
  get theirs here, in batches.
* ``sms_messages``: every message a gateway delivered, with what became of it (processed, refused with an
  error code, unknown sender); unique by the gateway's message id and the sender, which is what makes a
  message delivered twice processed once.
* ``sms_outgoing``: the replies, with their delivery state as the gateway reports it.

Written out by hand rather than imported from ``kazi.store.schema``: a migration must keep creating the
schema of its own version after ``schema.py`` has moved on.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from __future__ import annotations

import json
import re

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None

_BATCH = 1000
_KEY_DIGITS = 9  # kazi.sms.phones.KEY_DIGITS at the time of this migration


def _phone_key(value: object) -> str | None:
    # a frozen copy of kazi.sms.phones.phone_key: the migration must not change when that module does
    if not isinstance(value, str):
        return None
    digits = re.sub(r"\D", "", value)
    if len(digits) < 3:
        return None
    return digits[-_KEY_DIGITS:]


def upgrade() -> None:
    op.add_column("docs", sa.Column("phone", sa.String))
    op.create_index("ix_docs_phone", "docs", ["phone"])
    conn = op.get_bind()
    docs = sa.table("docs", sa.column("id", sa.String), sa.column("kind", sa.String), sa.column("deleted", sa.Boolean),
                    sa.column("body", sa.Text), sa.column("phone", sa.String))
    last = ""
    while True:
        rows = conn.execute(sa.select(docs.c.id, docs.c.body)
                            .where(docs.c.kind == "contact", docs.c.deleted.is_(False), docs.c.id > last)
                            .order_by(docs.c.id).limit(_BATCH)).all()
        if not rows:
            break
        last = rows[-1].id
        updates = []
        for row in rows:
            body = json.loads(row.body)
            key = _phone_key(body.get("phone")) if isinstance(body, dict) else None
            if key is not None:
                updates.append({"b_id": row.id, "b_phone": key})
        if updates:
            conn.execute(sa.update(docs).where(docs.c.id == sa.bindparam("b_id"))
                         .values(phone=sa.bindparam("b_phone")), updates)

    op.create_table(
        "sms_messages",
        sa.Column("seq", sa.Integer, nullable=False, autoincrement=True),
        sa.Column("id", sa.String, nullable=False),
        sa.Column("sender", sa.String, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("sent_at", sa.BigInteger),
        sa.Column("received_at", sa.BigInteger, nullable=False),
        sa.Column("stored_at", sa.BigInteger, nullable=False),
        sa.Column("gateway", sa.String(16), nullable=False),
        sa.Column("gateway_user", sa.String, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.String(32)),
        sa.Column("form", sa.String),
        sa.Column("contact_id", sa.String),
        sa.Column("report_id", sa.String),
        sa.Column("patient_id", sa.String),
        sa.Column("reply_id", sa.String),
        sa.Column("reply_to", sa.String),
        sa.Column("reply_text", sa.Text),
        sa.PrimaryKeyConstraint("seq", name="pk_sms_messages"),
    )
    op.create_index("ix_sms_messages_id_sender", "sms_messages", ["id", "sender"], unique=True)
    op.create_index("ix_sms_messages_status_seq", "sms_messages", ["status", "seq"])
    op.create_index("ix_sms_messages_contact_id", "sms_messages", ["contact_id"])

    op.create_table(
        "sms_outgoing",
        sa.Column("seq", sa.Integer, nullable=False, autoincrement=True),
        sa.Column("id", sa.String, nullable=False),
        sa.Column("to", sa.String, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("gateway", sa.String(16), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("in_reply_to", sa.Integer),
        sa.PrimaryKeyConstraint("seq", name="pk_sms_outgoing"),
    )
    op.create_index("ix_sms_outgoing_id", "sms_outgoing", ["id"], unique=True)
    op.create_index("ix_sms_outgoing_gateway_state", "sms_outgoing", ["gateway", "state"])


def downgrade() -> None:
    op.drop_table("sms_outgoing")
    op.drop_table("sms_messages")
    op.drop_index("ix_docs_phone", table_name="docs")
    # plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+): a batch-mode copy of `docs` would cascade-delete the
    # rows of doc_ancestors and doc_subjects that reference it
    op.drop_column("docs", "phone")
