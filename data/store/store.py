"""The :class:`Store` facade: every read and write the nightly job and the service make.

See ``data/store/__init__.py`` for the API overview.  The work is done by one
repository per concern, each in its own module, over one shared
:class:`~data.store.repository.Database`:

=========================  =====================================================
``store.catalog``          :class:`~data.store.catalog.CatalogRepository` (items, styles)
``store.runs``             :class:`~data.store.runs.RunRepository` (lifecycle, publish)
``store.segments``         :class:`~data.store.segments.SegmentRepository`
``store.renders``          :class:`~data.store.renders.RenderRepository` (index, gc)
``store.quarantine``       :class:`~data.store.quarantine.QuarantineRepository`
=========================  =====================================================

``Store`` keeps the flat API callers use (``store.publish(...)``): each public
method forwards to its repository with the repository's own signature and
docstring.  Adding a concern is a repository module, one attribute in
``__init__`` and one ``_forward`` line per method.

Design rules kept by every repository:

* every public write is **one transaction**: it commits whole or not at all,
  so a crash (or SIGKILL) mid-write leaves the previous data as it was;
* all SQL is built with SQLAlchemy constructs and bound parameters (PostgreSQL
  ``COPY`` takes identifiers through ``psycopg.sql.Identifier`` and streams the
  values as data), never by formatting values into SQL text;
* per-run tables (segments, conditions) are replaced as a whole by a rewrite
  of the same run, which makes a re-run stage idempotent;
* each call checks out its own pooled connection, so one ``Store`` may be
  shared by threads.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

from sqlalchemy import Engine

from .catalog import CatalogRepository
from .engine import make_engine, resolve_url
from .lock import RunLock, RunLockedError, run_lock
from .models import Base
from .quarantine import QuarantineRepository
from .renders import RenderRef, RenderRepository
from .repository import Database
from .rows import DEFAULT_CHUNK_SIZE
from .runs import RunNotReadyError, RunRepository
from .schema import current_revision, ensure_schema, head_revision
from .segments import SegmentRepository
from .style_library import StyleLibraryRepository

P = ParamSpec("P")
R = TypeVar("R")


def _forward(
    repository: str, method: Callable[Concatenate[Any, P], R]
) -> Callable[Concatenate[Store, P], R]:
    """A ``Store`` method that calls ``method`` on ``self.<repository>``.

    It carries the repository method's name, signature and docstring, so
    ``help(Store)`` reads as before the split.
    """
    name = method.__name__

    @functools.wraps(method)
    def forwarded(self: Store, *args: P.args, **kwargs: P.kwargs) -> R:
        return getattr(getattr(self, repository), name)(*args, **kwargs)

    return forwarded


class Store:
    """Metadata, per-run assignments and the render index in one SQL database.

    ``Store(url)`` opens ``url`` (``None``: ``$STYLEREC_DB_URL`` or
    ``sqlite:///stylerec.db``) and brings its schema to the newest revision
    unless ``upgrade=False`` (then an old schema raises
    :class:`~data.store.schema.SchemaOutdatedError`).  A schema newer than the
    code always raises :class:`~data.store.schema.SchemaTooNewError`.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        upgrade: bool = True,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        **engine_kwargs: Any,
    ) -> None:
        self.url = resolve_url(url)
        self.engine: Engine = make_engine(self.url, **engine_kwargs)
        try:
            ensure_schema(self.engine, upgrade=upgrade)
        except BaseException:
            self.engine.dispose()
            raise
        self.db = Database(self.engine, chunk_size)
        self.catalog = CatalogRepository(self.db)
        self.runs = RunRepository(self.db)
        self.segments = SegmentRepository(self.db)
        self.renders = RenderRepository(self.db)
        self.quarantine = QuarantineRepository(self.db)
        self.style_libraries = StyleLibraryRepository(self.db)

    # ----------------------------------------------------------------- lifecycle

    def __repr__(self) -> str:
        return f"Store({self.engine.url.render_as_string(hide_password=True)!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close pooled connections (the store can be reopened with a new ``Store``)."""
        self.engine.dispose()

    @property
    def chunk_size(self) -> int:
        """Rows per batch of a bulk write."""
        return self.db.chunk_size

    @chunk_size.setter
    def chunk_size(self, value: int) -> None:
        self.db.chunk_size = int(value)

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    def upgrade(self) -> str:
        """Migrate the schema to the newest revision (done on open); return the revision."""
        return ensure_schema(self.engine, upgrade=True)

    def schema_revision(self) -> str | None:
        """The schema revision recorded in the database (``head_revision()`` after open)."""
        with self.engine.connect() as conn:
            return current_revision(conn)

    @staticmethod
    def head_revision() -> str:
        """The newest schema revision this code knows."""
        return head_revision()

    def run_lock(self, wait_s: float = 0.0) -> AbstractContextManager[RunLock]:
        """Hold the store's run lock (one nightly at a time); see :mod:`data.store.lock`.

        Waits up to ``wait_s`` seconds, then raises :class:`RunLockedError`
        naming the holder (pid, host, run).
        """
        return run_lock(self.engine, wait_s)

    # ----------------------------------------------------------------- items and styles
    upsert_items = _forward("catalog", CatalogRepository.upsert_items)
    upsert_styles = _forward("catalog", CatalogRepository.upsert_styles)
    get_items = _forward("catalog", CatalogRepository.get_items)
    get_styles = _forward("catalog", CatalogRepository.get_styles)
    item_codes = _forward("catalog", CatalogRepository.item_codes)
    style_codes = _forward("catalog", CatalogRepository.style_codes)

    # ----------------------------------------------------------------- runs
    create_run = _forward("runs", RunRepository.create_run)
    set_stage = _forward("runs", RunRepository.set_stage)
    set_run_metrics = _forward("runs", RunRepository.set_run_metrics)
    update_run_params = _forward("runs", RunRepository.update_run_params)
    get_run = _forward("runs", RunRepository.get_run)
    list_runs = _forward("runs", RunRepository.list_runs)
    latest_unfinished_run = _forward("runs", RunRepository.latest_unfinished_run)
    abandon_run = _forward("runs", RunRepository.abandon_run)
    publish = _forward("runs", RunRepository.publish)
    current_run_id = _forward("runs", RunRepository.current_run_id)
    delete_run = _forward("runs", RunRepository.delete_run)

    # ----------------------------------------------------------------- segments
    write_user_segments = _forward("segments", SegmentRepository.write_user_segments)
    read_user_segments = _forward("segments", SegmentRepository.read_user_segments)
    write_segment_conditions = _forward("segments", SegmentRepository.write_segment_conditions)
    read_segment_conditions = _forward("segments", SegmentRepository.read_segment_conditions)

    # ----------------------------------------------------------------- style libraries
    save_style_library = _forward("style_libraries", StyleLibraryRepository.save_style_library)
    style_library_for_run = _forward("style_libraries",
                                     StyleLibraryRepository.style_library_for_run)

    # ----------------------------------------------------------------- renders
    add_render = _forward("renders", RenderRepository.add_render)
    add_renders = _forward("renders", RenderRepository.add_renders)
    link_renders = _forward("renders", RenderRepository.link_renders)
    has_renders = _forward("renders", RenderRepository.has_renders)
    renders_for_run = _forward("renders", RenderRepository.renders_for_run)
    unreferenced_renders = _forward("renders", RenderRepository.unreferenced_renders)
    uris_in_use = _forward("renders", RenderRepository.uris_in_use)
    delete_renders = _forward("renders", RenderRepository.delete_renders)

    # ----------------------------------------------------------------- quarantine
    add_quarantine = _forward("quarantine", QuarantineRepository.add_quarantine)
    quarantine_counts = _forward("quarantine", QuarantineRepository.quarantine_counts)
    read_quarantine = _forward("quarantine", QuarantineRepository.read_quarantine)


__all__ = ["Base", "RenderRef", "RunLock", "RunLockedError", "RunNotReadyError", "Store"]
