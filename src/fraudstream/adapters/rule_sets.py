"""PostgreSQL client of the rule sets: stored versions and the activation history.

Plain storage of documents (the mapping a rule set file holds) in ``rule_sets``, and of
activations in ``rule_set_activations`` (migration 0007); checking a document is the
caller's (``services.rules``). A version names one content for good: storing another
content under a used version raises ``VersionTakenError``. The active set is the latest
activation.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg2.extras import Json

from fraudstream.adapters.postgres import connect
from fraudstream.settings import PostgresSettings

_LOCK_ID = 7_201_312  # serialises activations (the previous version is read, then written)


class VersionTakenError(ValueError):
    """A rule set version already stored with another content."""


@dataclass(frozen=True)
class Activation:
    """One row of the history: ``version`` made active by ``activated_by``, replacing
    ``previous_version`` (None for the first)."""

    version: str
    previous_version: str | None
    activated_by: str
    comment: str
    activated_at: datetime


@dataclass(frozen=True)
class StoredRuleSet:
    """The active rule set's document and the activation that made it active."""

    document: dict[str, Any]
    activation: Activation


def checksum(document: dict[str, Any]) -> str:
    """The document's content hash (key order does not matter)."""
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def store_and_activate(
    settings: PostgresSettings,
    version: str,
    document: dict[str, Any],
    activated_by: str,
    comment: str = "",
) -> Activation:
    """Store ``document`` under ``version`` (unless stored already, with the same content)
    and make it the active set, in one transaction. Raises ``VersionTakenError``."""
    digest = checksum(document)
    with connect(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        cur.execute("SELECT checksum FROM rule_sets WHERE version = %s", (version,))
        row = cur.fetchone()
        if row is None:
            cur.execute(
                """INSERT INTO rule_sets (version, document, checksum, created_by)
                   VALUES (%s, %s, %s, %s)""",
                (version, Json(document), digest, activated_by),
            )
        elif row[0] != digest:
            raise VersionTakenError(
                f"rule set version {version!r} is already stored with other rules; "
                "give the changed set a new version"
            )
        cur.execute("SELECT version FROM rule_set_activations ORDER BY id DESC LIMIT 1")
        previous = cur.fetchone()
        cur.execute(
            """INSERT INTO rule_set_activations (version, previous_version, activated_by, comment)
               VALUES (%s, %s, %s, %s) RETURNING activated_at""",
            (version, previous[0] if previous else None, activated_by, comment),
        )
        (at,) = cur.fetchone() or (None,)
    return Activation(version, previous[0] if previous else None, activated_by, comment, at)


_ACTIVATION = "a.version, a.previous_version, a.activated_by, a.comment, a.activated_at"


def active_version(settings: PostgresSettings) -> str | None:
    """The active rule set's version (None: none was ever activated)."""
    with connect(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT version FROM rule_set_activations ORDER BY id DESC LIMIT 1")
        row = cur.fetchone()
    return None if row is None else str(row[0])


def active(settings: PostgresSettings) -> StoredRuleSet | None:
    """The active rule set's document and activation (None: none was ever activated)."""
    with connect(settings) as conn, conn.cursor() as cur:
        cur.execute(
            f"""SELECT s.document, {_ACTIVATION} FROM rule_set_activations a
                JOIN rule_sets s USING (version) ORDER BY a.id DESC LIMIT 1"""
        )
        row = cur.fetchone()
    if row is None:
        return None
    return StoredRuleSet(dict(row[0]), Activation(*row[1:]))


def stored(settings: PostgresSettings, version: str) -> dict[str, Any] | None:
    """The document stored under ``version``, or None."""
    with connect(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT document FROM rule_sets WHERE version = %s", (version,))
        row = cur.fetchone()
    return None if row is None else dict(row[0])


def history(settings: PostgresSettings, limit: int = 50) -> list[Activation]:
    """The latest activations, newest first."""
    with connect(settings) as conn, conn.cursor() as cur:
        cur.execute(
            f"SELECT {_ACTIVATION} FROM rule_set_activations a ORDER BY a.id DESC LIMIT %s",
            (limit,),
        )
        return [Activation(*row) for row in cur.fetchall()]
