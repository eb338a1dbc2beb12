"""Deprecated home of the run-bundle file contract; :mod:`recsys.run_bundle` holds it now.

The readers and writers below delegate to :class:`recsys.run_bundle.RunBundle` and
warn (``DeprecationWarning``); they go in the next release.  The file-name
constants are re-exported unchanged; ``ModelArrays`` is
:class:`recsys.factors.StyleFactors` now.  :func:`write_model` (a servable model
from plain arrays, for synthetic runs and benchmarks) builds the factors and writes
them through :meth:`RunBundle.write_factors`.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys.factors import StyleFactors
from recsys.run_bundle import (  # noqa: F401  (re-exported names of the old contract)
    CODES,
    CONDITIONS,
    ITEM_INDEX,
    ITEM_MAP,
    ITEMS,
    MODEL,
    MODEL_FORMAT_VERSION,
    REQUIRED_FILES,
    SEGMENTATION,
    STYLE_EMBEDDINGS,
    STYLE_INDEX,
    USER_MAP,
    WHITENING,
    RunBundle,
    StyleTable,
)


def _deprecated(old: str, new: str) -> None:
    warnings.warn(f"recsys.serving.bundle.{old} is deprecated; use recsys.run_bundle.{new}",
                  DeprecationWarning, stacklevel=3)


def check_bundle(run_dir: str | Path) -> Path:
    """Deprecated: ``RunBundle.open(run_dir).check_servable()``."""
    _deprecated("check_bundle", "RunBundle.check_servable")
    return RunBundle.open(run_dir).check_servable().root


def read_style_embeddings(run_dir: str | Path) -> StyleTable:
    _deprecated("read_style_embeddings", "RunBundle.read_style_embeddings")
    return RunBundle.open(run_dir).read_style_embeddings()


def write_style_embeddings(run_dir: str | Path, style_ids: list[str], embeddings: Any) -> None:
    _deprecated("write_style_embeddings", "RunBundle.write_style_embeddings")
    RunBundle.create(run_dir).write_style_embeddings(style_ids, embeddings)


def read_whitening(run_dir: str | Path) -> tuple[np.ndarray, np.ndarray] | None:
    _deprecated("read_whitening", "RunBundle.read_whitening")
    wh = RunBundle.open(run_dir).read_whitening()
    return None if wh is None else (wh.mean.astype(np.float32), wh.matrix.astype(np.float32))


def write_whitening(run_dir: str | Path, mean: Any, matrix: Any) -> None:
    _deprecated("write_whitening", "RunBundle.write_whitening")
    RunBundle.create(run_dir).write_whitening(np.asarray(mean, np.float32),
                                              np.asarray(matrix, np.float32))


def read_conditions(run_dir: str | Path) -> list[dict[str, Any]]:
    _deprecated("read_conditions", "RunBundle.read_conditions")
    return RunBundle.open(run_dir).read_conditions()


def write_conditions(run_dir: str | Path, rows: list[dict[str, Any]]) -> None:
    _deprecated("write_conditions", "RunBundle.write_conditions")
    RunBundle.create(run_dir).write_conditions(rows)


def read_items(run_dir: str | Path) -> pd.DataFrame:
    _deprecated("read_items", "RunBundle.read_table(ITEMS)")
    return RunBundle.open(run_dir).read_table(ITEMS)


def write_items(run_dir: str | Path, items: pd.DataFrame) -> None:
    _deprecated("write_items", "RunBundle.write_table(ITEMS, ...)")
    RunBundle.create(run_dir).write_table(ITEMS, items)


def read_codes(run_dir: str | Path) -> tuple[list[str], np.ndarray] | None:
    _deprecated("read_codes", "RunBundle.read_codes")
    bundle = RunBundle.open(run_dir)
    if not bundle.has(CODES):
        return None
    codes = bundle.read_codes()
    return codes.item_ids, codes.item_codes


def write_codes(run_dir: str | Path, item_ids: Any, item_codes: Any,
                style_ids: Any = (), style_codes: Any = None) -> None:
    _deprecated("write_codes", "RunBundle.write_codes")
    RunBundle.create(run_dir).write_codes(list(item_ids), item_codes, list(style_ids),
                                          style_codes)


def read_model(run_dir: str | Path) -> StyleFactors:
    """Deprecated: ``RunBundle.open(run_dir).read_factors()``."""
    _deprecated("read_model", "RunBundle.read_factors")
    return RunBundle.open(run_dir).read_factors()


def write_model(
    run_dir: str | Path,
    *,
    user_ids: Any,
    item_ids: Any,
    user_factors: Any,
    item_factors: Any,
    item_bias: Any,
    item_popularity: Any,
    seen: Any = None,
    W: Any = None,
    code_mean: Any = None,
    code_scale: float | None = None,
) -> None:
    """Write ``model.npz``/``model.json`` and both id maps from plain arrays.

    The files are :meth:`StyleFactors.save`'s, the same the train stage writes
    (without the trainer's history encoder: such a model serves but cannot fold
    in).  ``item_factors`` are the full item vectors; ``W`` (code dim x factors)
    with ``code_mean``/``code_scale`` lets the service score catalogue items
    from their image codes.
    """
    import scipy.sparse as sp

    csr = None if seen is None else sp.csr_matrix(seen)
    factors = StyleFactors(
        user_factors=user_factors, item_factors=item_factors, item_bias=item_bias,
        item_popularity=item_popularity, W=W, code_mean=code_mean, code_scale=code_scale,
        seen_indptr=None if csr is None else csr.indptr,
        seen_indices=None if csr is None else csr.indices,
    )
    RunBundle.create(run_dir).write_factors(factors, list(user_ids), list(item_ids))


def read_ids(path: str | Path) -> list[str]:
    """Deprecated: ``RunBundle.read_ids("user" | "item")``."""
    _deprecated("read_ids", "RunBundle.read_ids")
    p = Path(path)
    bundle = RunBundle.open(p.parent)
    if p.name not in (USER_MAP, ITEM_MAP):
        raise ValueError(f"{p}: not a run bundle's id map ({USER_MAP} or {ITEM_MAP})")
    return bundle.read_ids("user" if p.name == USER_MAP else "item")


def write_ids(path: str | Path, ids: Any) -> None:
    """Deprecated: ``RunBundle.write_ids("user" | "item", ids)``."""
    _deprecated("write_ids", "RunBundle.write_ids")
    p = Path(path)
    if p.name not in (USER_MAP, ITEM_MAP):
        raise ValueError(f"{p}: not a run bundle's id map ({USER_MAP} or {ITEM_MAP})")
    RunBundle.create(p.parent).write_ids("user" if p.name == USER_MAP else "item", list(ids))


def __getattr__(name: str) -> Any:
    if name == "ModelArrays":  # the reader's old result type; StyleFactors has its fields
        warnings.warn("recsys.serving.bundle.ModelArrays is recsys.factors.StyleFactors now",
                      DeprecationWarning, stacklevel=2)
        return StyleFactors
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
