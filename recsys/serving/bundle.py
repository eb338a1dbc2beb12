"""Deprecated home of the run-bundle file contract; :mod:`recsys.run_bundle` holds it now.

The readers and writers below delegate to :class:`recsys.run_bundle.RunBundle` and
warn (``DeprecationWarning``); they go in the next release.  The file-name
constants and :class:`ModelArrays` are re-exported unchanged.
:func:`write_model` (a servable model from plain arrays, for synthetic runs and
benchmarks) stays here until the numpy factors core replaces it.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

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
    ModelArrays,
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


def read_model(run_dir: str | Path) -> ModelArrays:
    _deprecated("read_model", "RunBundle.read_model_arrays")
    return RunBundle.open(run_dir).read_model_arrays()


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

    Goes through ``StylePreferenceModel.save`` (via :meth:`RunBundle.write_model`)
    so the files are exactly what the train stage writes.  ``item_factors`` are
    the full item vectors; ``W`` (code dim x factors) with ``code_mean``/
    ``code_scale`` lets the service score catalogue items from their image codes.
    """
    import scipy.sparse as sp

    from recsys.model import StylePreferenceModel

    users = np.ascontiguousarray(user_factors, dtype=np.float32)
    items = np.ascontiguousarray(item_factors, dtype=np.float32)
    if users.ndim != 2 or items.ndim != 2 or users.shape[1] != items.shape[1]:
        raise ValueError(f"factor shapes differ: users {users.shape}, items {items.shape}")
    user_ids, item_ids = list(user_ids), list(item_ids)
    if len(user_ids) != len(users) or len(item_ids) != len(items):
        raise ValueError("id lists and factor rows differ in length")
    model = StylePreferenceModel(factors=users.shape[1])
    model.user_factors_ = users
    model.free_item_factors_ = items
    model.user_offsets_ = None  # no history encoder: the vectors are the whole model
    model.history_item_factors_ = None
    model.item_bias_ = np.asarray(item_bias, np.float32).ravel()
    model.item_popularity_ = np.asarray(item_popularity, np.float32).ravel()
    model.W_ = (np.zeros((0, users.shape[1]), np.float32) if W is None
                else np.asarray(W, np.float32))
    model.item_codes_ = None
    model.code_mean_ = None if code_mean is None else np.asarray(code_mean, np.float64)
    model.code_scale_ = None if code_scale is None else np.asarray(float(code_scale))
    model.seen_ = None if seen is None else sp.csr_matrix(seen)
    model.n_users_, model.n_items_ = len(users), len(items)
    model.history_, model.best_epoch_, model.fit_seconds_ = [], 0, 0.0
    RunBundle.create(run_dir).write_model(model, user_ids, item_ids)


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
