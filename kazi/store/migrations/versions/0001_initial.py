"""The first schema: documents with their query columns, lineage and subjects, changes, task docs, users.

Written out by hand rather than imported from ``kazi.store.schema``: a migration must keep creating the
schema of its own version after ``schema.py`` has moved on.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    counters = op.create_table(
        "counters",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("value", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_counters"),
    )
    op.bulk_insert(counters, [{"name": "docs", "value": 0}, {"name": "tasks", "value": 0}])

    op.create_table(
        "docs",
        sa.Column("id", sa.String, nullable=False),
        sa.Column("rev", sa.String, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("type", sa.String),
        sa.Column("contact_type", sa.String),
        sa.Column("form", sa.String),
        sa.Column("parent_id", sa.String),
        sa.Column("contact_id", sa.String),
        sa.Column("subject", sa.String),
        sa.Column("reported_date", sa.BigInteger),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_docs"),
    )
    op.create_index("ix_docs_seq", "docs", ["seq"], unique=True)
    op.create_index("ix_docs_kind_contact_type", "docs", ["kind", "contact_type"])
    for column in ("type", "form", "parent_id", "contact_id", "subject", "reported_date"):
        op.create_index(f"ix_docs_{column}", "docs", [column])

    op.create_table(
        "doc_ancestors",
        sa.Column("doc_id", sa.String, nullable=False),
        sa.Column("ancestor_id", sa.String, nullable=False),
        sa.Column("depth", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("doc_id", "ancestor_id", name="pk_doc_ancestors"),
        sa.ForeignKeyConstraint(["doc_id"], ["docs.id"], name="fk_doc_ancestors_doc_id_docs", ondelete="CASCADE"),
    )
    op.create_index("ix_doc_ancestors_ancestor_id_doc_id", "doc_ancestors", ["ancestor_id", "doc_id"])

    op.create_table(
        "doc_subjects",
        sa.Column("doc_id", sa.String, nullable=False),
        sa.Column("subject_id", sa.String, nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.PrimaryKeyConstraint("doc_id", "subject_id", name="pk_doc_subjects"),
        sa.ForeignKeyConstraint(["doc_id"], ["docs.id"], name="fk_doc_subjects_doc_id_docs", ondelete="CASCADE"),
    )
    op.create_index("ix_doc_subjects_subject_id_kind", "doc_subjects", ["subject_id", "kind"])

    op.create_table(
        "changes",
        sa.Column("seq", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("doc_id", sa.String, nullable=False),
        sa.Column("rev", sa.String, nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("subjects", sa.Text, nullable=False),
        sa.Column("lineage", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_changes"),
    )
    op.create_index("ix_changes_doc_id", "changes", ["doc_id"])

    op.create_table(
        "task_docs",
        sa.Column("id", sa.String, nullable=False),
        sa.Column("rev", sa.String, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("user_id", sa.String, nullable=False),
        sa.Column("requester", sa.String),
        sa.Column("owner", sa.String),
        sa.Column("state", sa.String),
        sa.Column("emission_id", sa.String),
        sa.Column("due_date", sa.String),
        sa.Column("authored_on", sa.BigInteger),
        sa.Column("body", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_task_docs"),
    )
    op.create_index("ix_task_docs_seq", "task_docs", ["seq"], unique=True)
    for column in ("state", "requester", "owner", "emission_id"):
        op.create_index(f"ix_task_docs_user_id_{column}", "task_docs", ["user_id", column])

    op.create_table(
        "users",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=True),
        sa.Column("username", sa.String, nullable=False),
        sa.Column("password_hash", sa.String, nullable=False),
        sa.Column("roles", sa.Text, nullable=False),
        sa.Column("facility_id", sa.String),
        sa.Column("contact_id", sa.String),
        sa.Column("timezone", sa.String),
        sa.Column("national", sa.Boolean, nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("username", name="uq_users_username"),
    )

    op.create_table(
        "user_tokens",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("secret_hash", sa.String, nullable=False),
        sa.Column("label", sa.String, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("revoked_at", sa.BigInteger),
        sa.PrimaryKeyConstraint("id", name="pk_user_tokens"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_user_tokens_user_id_users", ondelete="CASCADE"),
    )
    op.create_index("ix_user_tokens_user_id", "user_tokens", ["user_id"])


def downgrade() -> None:
    for table in ("user_tokens", "users", "task_docs", "changes", "doc_subjects", "doc_ancestors", "docs",
                  "counters"):
        op.drop_table(table)
