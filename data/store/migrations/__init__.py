"""Alembic migration environment of the store (run programmatically by ``data.store.schema``)."""
