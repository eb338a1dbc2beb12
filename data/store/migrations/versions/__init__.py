"""Alembic revisions, one file each; ids are zero-padded integers so versions sort."""
