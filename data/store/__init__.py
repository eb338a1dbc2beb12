"""The SQL store: catalogue, runs, per-run segments, render index and quarantine.

SQLAlchemy 2 over SQLite (default ``sqlite:///stylerec.db``, WAL mode, so
the demo needs nothing installed) or PostgreSQL through psycopg 3
(``STYLEREC_DB_URL=postgresql+psycopg://user@host/db``).  The schema is
versioned with Alembic revisions shipped in ``data/store/migrations`` and
upgraded when a store is opened (see :mod:`data.store.schema`).

``Store`` is a facade over one repository per concern (``store.catalog``,
``store.runs``, ``store.segments``, ``store.renders``, ``store.quarantine``;
modules of the same names), sharing one :class:`~data.store.repository.Database`.

API (all writes are single transactions; all reads return plain Python or
pandas objects; a ``Store`` may be shared between threads)::

    store = Store(url=None, *, upgrade=True, chunk_size=20_000)  # also a context manager
    store.engine; store.backend; store.close(); store.upgrade(); store.schema_revision()

    # catalogue (bulk upserts; codes are float32 vectors stored as raw bytes, never pickle)
    store.upsert_items(df_or_records) -> int      # item_id, image_uri, category, attributes, image_hash, code
    store.upsert_styles(df_or_records) -> int     # style_id, name, image_uri, attributes, image_hash, code
    store.get_items(ids=None) / get_styles(ids=None) -> DataFrame
    store.item_codes(ids=None) / style_codes(ids=None) -> (ids, float32[N, D])

    # runs (resumable stages, atomic publish, rollback = publish(older))
    run_id = store.create_run(params, stages=("load", "train", ...))   # "20261122T153000-abc123"
    store.set_stage(run_id, stage, "running" | "done" | "failed" | "pending", metrics=None, error=None)
    store.set_run_metrics(run_id, metrics); store.update_run_params(run_id, params)   # merge
    store.get_run(run_id) -> dict | None; store.list_runs(limit=None) -> list[dict]
    store.latest_unfinished_run() -> dict | None; store.abandon_run(run_id)
    store.publish(run_id, force=False, unfinished_ok=()); store.current_run_id() -> str | None; store.delete_run(run_id)

    # per-run assignments (rewriting a run replaces its rows: re-running a stage is idempotent)
    store.write_user_segments(run_id, mapping | Series | DataFrame | iterable of pairs) -> int
    store.read_user_segments(run_id) -> DataFrame[user_id, segment_id]
    store.write_segment_conditions(run_id, rows) -> int   # segment_id, condition_hash, style_ids, weights, code, n_users
    store.read_segment_conditions(run_id) -> DataFrame
    store.save_style_library(run_id, digest, source, entries, day=None)   # the library a run used
    store.style_library_for_run(run_id) -> {digest, source, day, entries} | None

    # render index (content-addressed renders shared between runs; run_renders links them for gc)
    store.add_render(key, item_id, condition_hash, uri, run_id, params=None) -> bool (new?)
    store.add_renders(run_id, rows) -> int; store.link_renders(run_id, keys) -> set (missing keys)
    store.has_renders(keys) -> set; store.renders_for_run(run_id) -> DataFrame
    store.unreferenced_renders(keep_runs) -> list[RenderRef(key, uri)]; store.delete_renders(keys) -> int

    # one nightly at a time (data.store.lock)
    with store.run_lock(wait_s=0) as lock: lock.set_run(run_id)  # RunLockedError names the holder

    # quarantine
    store.add_quarantine(run_id | None, source, rows_with_reason_column) -> int
    store.quarantine_counts(run_id, source=None) -> {reason: count}; store.read_quarantine(run_id)
"""

from .engine import DEFAULT_URL, ENV_URL, resolve_url
from .lock import RunLockedError
from .schema import (
    SchemaError,
    SchemaOutdatedError,
    SchemaTooNewError,
    current_revision,
    ensure_schema,
    head_revision,
)
from .store import RenderRef, RunNotReadyError, Store
from .types import decode_vector, encode_vector

__all__ = [
    "DEFAULT_URL",
    "ENV_URL",
    "RenderRef",
    "RunLockedError",
    "RunNotReadyError",
    "SchemaError",
    "SchemaOutdatedError",
    "SchemaTooNewError",
    "Store",
    "current_revision",
    "decode_vector",
    "encode_vector",
    "ensure_schema",
    "head_revision",
    "resolve_url",
]
