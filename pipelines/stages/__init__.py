"""The nightly stages: each module has ``run(ctx) -> metrics``.

:data:`STAGES` is their order.  It lives here, not in :mod:`pipelines.runner`, so that
``stylerec nightly --help`` can list the stages without importing the store.
"""

STAGES: tuple[str, ...] = (
    "ingest", "embed", "train", "index", "segment", "render", "publish", "report",
)
