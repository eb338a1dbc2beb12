"""The run-bundle file contract: what the nightly pipeline writes for serving.

One published run = one folder (``store.get_run(run_id)["params"]["run_dir"]``)
holding the files named below, plus the store's per-run tables (user segments,
segment conditions, renders) and ``params["render_root"]``, the folder (or URL
prefix) the renders' relative URIs live under.  The names are the ones
``pipelines/stages/artifacts.py`` writes; they are repeated here because
``recsys`` must not import ``pipelines``, and ``tests/recsys/test_serving.py`` checks
that the two lists agree.  Everything is npz/json/parquet (no pickle) so a
bundle can be inspected by hand and loaded by a newer code version.

The writers below are the other half of the contract: a run produced by some
other trainer (or the synthetic runs of tests and benchmarks) is servable as
soon as it is written with them and registered in the store.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys.factors import FORMAT_VERSION, StyleFactors

MODEL = "model"  # model.npz + model.json (StylePreferenceModel.save)
USER_MAP = "user_map.json"  # IdMap.save: row order of user_factors_
ITEM_MAP = "item_map.json"  # IdMap.save: row order of item factors
ITEM_INDEX = "item_index"  # ItemIndex.save directory
STYLE_INDEX = "style_index"  # StyleIndex.save directory
STYLE_EMBEDDINGS = "style_embeddings.npz"  # style_ids (str), embeddings (n_styles, f)
WHITENING = "whitening.npz"  # mean (d,), matrix (d, d): whitened = (raw - mean) @ matrix
SEGMENTATION = "segmentation"  # Segmentation.save directory
CONDITIONS = "conditions.json"  # [{segment_id, style_ids, weights, code, condition_hash, n_users}]
ITEMS = "items.parquet"  # item_id, image_uri (the catalogue's), image_hash, [image_path]
CODES = "codes.npz"  # item_ids, item_codes (raw), style_ids, style_codes: cold items' vectors

REQUIRED_FILES: tuple[str, ...] = (
    MODEL + ".npz",
    MODEL + ".json",
    USER_MAP,
    ITEM_MAP,
    STYLE_EMBEDDINGS,
    CONDITIONS,
    ITEMS,
)
"""Files the service cannot answer without; the others degrade gracefully.

``item_index`` is not among them: the service builds its own exact index over
``[item vector, item bias]`` at load (see ``recsys.serving.service``), because
the pipeline's index ranks by ``p_u . v_i`` alone.  Without ``codes.npz``
(or without whitening/codes in the model) catalogue items nobody interacted
with are scored by the prior instead of by their image code.
"""


def check_bundle(run_dir: str | Path) -> Path:
    """Raise ``FileNotFoundError`` naming every missing required file of a bundle."""
    root = Path(run_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"run bundle directory not found: {root}")
    missing = [name for name in REQUIRED_FILES if not (root / name).exists()]
    if missing:
        raise FileNotFoundError(f"run bundle {root}: missing {', '.join(missing)}")
    return root


@dataclass(frozen=True)
class StyleTable:
    """Style ids and their embeddings in the preference space (``W c_s``)."""

    style_ids: list[str]
    embeddings: np.ndarray


def read_style_embeddings(run_dir: str | Path) -> StyleTable:
    """Read ``style_embeddings.npz`` (no pickle)."""
    with np.load(Path(run_dir) / STYLE_EMBEDDINGS, allow_pickle=False) as z:
        return StyleTable([str(s) for s in z["style_ids"]], np.asarray(z["embeddings"], np.float32))


def write_style_embeddings(run_dir: str | Path, style_ids: list[str], embeddings: Any) -> None:
    """Write ``style_embeddings.npz``."""
    np.savez(
        Path(run_dir) / STYLE_EMBEDDINGS,
        style_ids=np.asarray([str(s) for s in style_ids], dtype=str),
        embeddings=np.asarray(embeddings, dtype=np.float32),
    )


def read_whitening(run_dir: str | Path) -> tuple[np.ndarray, np.ndarray] | None:
    """``(mean, matrix)`` of ``whitening.npz``, or ``None`` when the run has none."""
    path = Path(run_dir) / WHITENING
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        return np.asarray(z["mean"], np.float32), np.asarray(z["matrix"], np.float32)


def write_whitening(run_dir: str | Path, mean: Any, matrix: Any) -> None:
    """Write ``whitening.npz``."""
    np.savez(
        Path(run_dir) / WHITENING,
        mean=np.asarray(mean, np.float32),
        matrix=np.asarray(matrix, np.float32),
    )


def read_conditions(run_dir: str | Path) -> list[dict[str, Any]]:
    """Read ``conditions.json``; a clear error names a malformed file."""
    path = Path(run_dir) / CONDITIONS
    rows = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(rows, list):
        raise ValueError(f"{path}: expected a JSON list of segment conditions")
    for n, row in enumerate(rows):
        for key in ("segment_id", "style_ids", "weights"):
            if key not in row:
                raise ValueError(f"{path}: entry {n} lacks {key!r}")
    return rows


def write_conditions(run_dir: str | Path, rows: list[dict[str, Any]]) -> None:
    """Write ``conditions.json`` (codes as plain float lists)."""
    out = []
    for row in rows:
        r = dict(row)
        if r.get("code") is not None:
            r["code"] = [float(x) for x in np.asarray(r["code"]).ravel()]
        r["weights"] = [float(w) for w in r["weights"]]
        r["style_ids"] = [str(s) for s in r["style_ids"]]
        out.append(r)
    (Path(run_dir) / CONDITIONS).write_text(json.dumps(out), encoding="utf-8")


def read_items(run_dir: str | Path) -> pd.DataFrame:
    """Read ``items.parquet`` (item_id, image_uri, ...); ids as ``str``."""
    df = pd.read_parquet(Path(run_dir) / ITEMS)
    for col in ("item_id", "image_uri"):
        if col not in df.columns:
            raise ValueError(f"{Path(run_dir) / ITEMS}: column {col!r} missing")
    df["item_id"] = df["item_id"].astype(str)
    return df


def write_items(run_dir: str | Path, items: pd.DataFrame) -> None:
    """Write ``items.parquet``; needs ``item_id`` and ``image_uri`` columns."""
    for col in ("item_id", "image_uri"):
        if col not in items.columns:
            raise ValueError(f"items: column {col!r} missing")
    out = items.copy()
    out["item_id"] = out["item_id"].astype(str)
    out.to_parquet(Path(run_dir) / ITEMS, index=False)


def read_ids(path: str | Path) -> list[str]:
    """The id list of an ``IdMap`` file (``{"ids": [...]}``) without building its dict.

    The service builds one ``id -> row`` dict itself; ``IdMap.load`` would
    build a second one, which for a million users costs ~100 MB at load.
    """
    payload = json.loads(Path(path).read_text(encoding="utf-8"))
    ids = payload.get("ids") if isinstance(payload, dict) else None
    if not isinstance(ids, list):
        raise ValueError(f"{path}: not an IdMap file (no 'ids' list)")
    return [str(i) for i in ids]


def write_ids(path: str | Path, ids: Any) -> None:
    """Write an id list in ``IdMap.save``'s format."""
    Path(path).write_text(json.dumps({"ids": [str(i) for i in ids]}), encoding="utf-8")


def read_codes(run_dir: str | Path) -> tuple[list[str], np.ndarray] | None:
    """``(item_ids, raw item codes)`` of ``codes.npz``, or ``None`` when absent."""
    path = Path(run_dir) / CODES
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        return [str(i) for i in z["item_ids"]], np.asarray(z["item_codes"], np.float32)


def write_codes(run_dir: str | Path, item_ids: Any, item_codes: Any,
                style_ids: Any = (), style_codes: Any = None) -> None:
    """Write ``codes.npz`` in the embed stage's layout."""
    codes = np.asarray(item_codes, np.float32)
    np.savez(
        Path(run_dir) / CODES,
        item_ids=np.asarray([str(i) for i in item_ids], dtype=str),
        item_codes=codes,
        style_ids=np.asarray([str(s) for s in style_ids], dtype=str),
        style_codes=np.asarray(
            np.zeros((0, codes.shape[1])) if style_codes is None else style_codes, np.float32
        ),
    )


MODEL_FORMAT_VERSION = FORMAT_VERSION
"""``format_version`` of ``model.json`` that the bundle writes (:data:`recsys.factors.FORMAT_VERSION`);
:func:`read_model` also reads the older versions in :data:`recsys.factors.READABLE_VERSIONS`."""


def read_model(run_dir: str | Path) -> StyleFactors:
    """The factors of ``model.npz``/``model.json`` (:meth:`StyleFactors.load`; numpy, no pickle).

    Why not ``StylePreferenceModel.load``: importing ``recsys.model`` loads
    PyTorch, about 0.5 GB resident in every ranking process, for arrays that
    numpy reads directly.  The whitening of the run is attached when the
    bundle has one, so that raw image codes project as in training.
    """
    factors = StyleFactors.load(Path(run_dir) / MODEL)
    wh = read_whitening(run_dir)
    return factors if wh is None else factors.with_whitening(*wh)


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

    user_ids, item_ids = list(user_ids), list(item_ids)
    if len(user_ids) != len(user_factors) or len(item_ids) != len(item_factors):
        raise ValueError("id lists and factor rows differ in length")
    csr = None if seen is None else sp.csr_matrix(seen)
    factors = StyleFactors(
        user_factors=user_factors, item_factors=item_factors, item_bias=item_bias,
        item_popularity=item_popularity, W=W, code_mean=code_mean, code_scale=code_scale,
        seen_indptr=None if csr is None else csr.indptr,
        seen_indices=None if csr is None else csr.indices,
    )
    root = Path(run_dir)
    factors.save(root / MODEL)
    write_ids(root / USER_MAP, user_ids)
    write_ids(root / ITEM_MAP, item_ids)


def __getattr__(name: str) -> Any:
    if name == "ModelArrays":  # the reader's old result type; StyleFactors has its fields
        warnings.warn("recsys.serving.bundle.ModelArrays is recsys.factors.StyleFactors now",
                      DeprecationWarning, stacklevel=2)
        return StyleFactors
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
