"""Schema versioning: Alembic revisions kept in the package and run programmatically.

Why Alembic rather than hand-rolled versioned DDL: it already records the
version (``alembic_version``), orders revisions, emits dialect-correct DDL
(including SQLite's copy-and-move for ``ALTER``), and can autogenerate the
next revision from the models.  The revisions live in
``data/store/migrations/versions`` so an installed package can upgrade any
database it is pointed at, with no ``alembic.ini`` or command line needed.

Revision ids are zero-padded integers (``0001``, ``0002``, ...) so "schema
version" reads as a number.  Opening a database whose revision this code does
not know means the database was upgraded by a newer stylerec: we refuse
(:class:`SchemaTooNewError`) rather than write rows an unknown schema may not
accept.  The whole upgrade runs in one transaction (SQLite and PostgreSQL both
have transactional DDL) and, on PostgreSQL, under an advisory lock so that two
processes opening a fresh database at once do not both create the tables; on
SQLite ``BEGIN IMMEDIATE`` serialises them.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, func, literal, select

from .engine import WRITE_OPTION

MIGRATIONS_DIR = Path(__file__).resolve().with_name("migrations")


class SchemaError(RuntimeError):
    """The database schema cannot be used by this version of the code."""


class SchemaTooNewError(SchemaError):
    """The database was migrated by a newer stylerec than the one running."""


class SchemaOutdatedError(SchemaError):
    """The database is behind the code and upgrading was not allowed."""


@lru_cache(maxsize=1)
def _script() -> ScriptDirectory:
    return ScriptDirectory(str(MIGRATIONS_DIR))


def _config(connection: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest schema revision this code knows (what :func:`upgrade` goes to)."""
    head = _script().get_current_head()
    if head is None:  # pragma: no cover - the package always ships revisions
        raise SchemaError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


def known_revisions() -> list[str]:
    """All revisions this code knows, oldest first."""
    return [s.revision for s in reversed(list(_script().walk_revisions()))]


def current_revision(connection: Connection) -> str | None:
    """The revision recorded in the database, or ``None`` for an empty database."""
    return MigrationContext.configure(connection).get_current_revision()


def _check_known(revision: str | None, where: str) -> None:
    if revision is not None and revision not in known_revisions():
        raise SchemaTooNewError(
            f"database {where} has schema revision {revision!r}, which this stylerec does not "
            f"know (it knows up to {head_revision()!r}); it was upgraded by a newer stylerec. "
            "Upgrade stylerec instead of opening it with this version."
        )


def ensure_schema(engine: Engine, *, upgrade: bool = True, target: str | None = None) -> str:
    """Bring the database at ``engine`` to ``target`` (default: head); return the revision.

    The common case (already at head) costs one read on a plain connection and
    takes no write lock, so opening a store never blocks on a running writer.
    ``target`` exists for tests and tools that need an older schema.
    """
    where = engine.url.render_as_string(hide_password=True)
    target = target or head_revision()
    with engine.connect() as conn:
        revision = current_revision(conn)
    _check_known(revision, where)
    if revision == target:
        return revision
    if not upgrade:
        raise SchemaOutdatedError(
            f"database {where} is at schema revision {revision!r}, the code needs {target!r}; "
            "open it with upgrade=True (the default) to migrate it"
        )
    writer = engine.execution_options(**{WRITE_OPTION: True})
    with writer.begin() as conn:
        if conn.dialect.name == "postgresql":
            # One migrator per schema; the lock is released at commit.
            key = func.hashtext(literal("stylerec-schema:") + func.current_schema())
            conn.execute(select(func.pg_advisory_xact_lock(key)))
        revision = current_revision(conn)
        _check_known(revision, where)
        if revision != target:
            command.upgrade(_config(conn), target)
    return target
