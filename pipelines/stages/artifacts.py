"""Reading what earlier stages of a run wrote, and reusing a previous run's output.

Stage outputs live in the run folder; these helpers keep the file names in
one place so that stages, the report and the serving loader agree on them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from pipelines.runner import RunContext

# The run bundle the serving API loads is defined in recsys.serving.bundle; the
# stages write it under those names.  The rest are the stages' own files.
from recsys.serving.bundle import (  # noqa: F401
    CODES,
    CONDITIONS,
    ITEM_INDEX,
    ITEM_MAP,
    ITEMS,
    MODEL,
    SEGMENTATION,
    STYLE_EMBEDDINGS,
    STYLE_INDEX,
    USER_MAP,
    WHITENING,
)

EVENTS = "events.parquet"
ITEMS_RAW = "items_raw.parquet"  # the catalog as loaded (ingest)
STYLES_RAW = "styles_raw.parquet"
STYLES = "styles.parquet"
STYLE_SPACE = "style_space.npz"


def load_codes(run_dir: Path) -> dict[str, np.ndarray]:
    """Item and style ids and codes written by the embed stage."""
    with np.load(run_dir / CODES, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def reuse_previous(ctx: RunContext, stage: str, key: str, names: list[str]) -> bool:
    """Copy ``names`` from the previous run when its ``stage`` had the same input key.

    Deterministic stages on unchanged inputs give unchanged outputs, so the
    night after a quiet day costs file copies instead of a retrain.
    """
    prev_dir = ctx.previous_run_dir
    if prev_dir is None or ctx.previous_run_id is None:
        return False
    prev = ctx.store.get_run(ctx.previous_run_id)
    prev_metrics = (prev or {}).get("stages", {}).get(stage, {}).get("metrics") or {}
    if prev_metrics.get("input_key") != key:
        return False
    sources = [prev_dir / n for n in names]
    if not all(p.exists() for p in sources):
        return False
    for src in sources:
        dest = ctx.run_dir / src.name
        if src.is_dir():
            shutil.copytree(src, dest, dirs_exist_ok=True)
        else:
            shutil.copy2(src, dest)
    return True
