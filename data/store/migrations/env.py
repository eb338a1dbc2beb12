"""Alembic environment for the store.

``data.store.schema.upgrade`` runs this with a connection already inside a
transaction (``config.attributes["connection"]``), so a whole upgrade commits
or rolls back as one unit, also on SQLite.  Run from the ``alembic`` command
line (to write a new revision with ``--autogenerate``), it opens
``$STYLEREC_DB_URL`` (or ``sqlite:///stylerec.db``) itself::

    alembic -c data/store/alembic.ini revision --autogenerate -m "add x" --rev-id 0003
"""

from __future__ import annotations

from alembic import context

from data.store.engine import make_engine, resolve_url
from data.store.models import Base

config = context.config
connection = config.attributes.get("connection")

if connection is not None:
    context.configure(connection=connection, target_metadata=Base.metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = make_engine(resolve_url(config.get_main_option("sqlalchemy.url")))
    try:
        with engine.connect() as conn:
            context.configure(connection=conn, target_metadata=Base.metadata)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()
