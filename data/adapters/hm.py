"""H&M Personalized Fashion Recommendations: articles.csv + images as a stylerec catalog.

Choices, and why:

* ``item_id`` is ``article_id`` zero-padded to 10 digits (``"0255396018"``).
  That is how the competition's image files and transactions spell it;
  articles.csv stores it as a number, and reading it as one drops the zero, so
  it is read as text and padded.
* ``image_uri`` is the image's path *relative to* ``root`` (default: the folder
  of articles.csv, giving ``images/0255396018.jpg``), to be opened with
  :func:`data.paths.resolve_under`.  Both the flat layout
  (``images/<id>.jpg``) and Kaggle's (``images/<id[:3]>/<id>.jpg``) are found.
  An article without a picture keeps a missing ``image_uri`` (recommended,
  never rendered) and is counted in the log.
* ``category`` is ``product_type_name`` (Hoodie, Trousers, ...): the level at
  which shoppers browse.
* ``attributes`` is a JSON object of the descriptive ``*_name`` columns plus
  ``prod_name`` and ``detail_desc`` (the numeric codes duplicate the names).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from data.catalog import ItemsResult, load_items
from data.schemas import ITEM_COLUMNS

log = logging.getLogger(__name__)

ARTICLES_REQUIRED: tuple[str, ...] = ("article_id", "product_type_name")
#: Descriptive columns kept in ``attributes`` when present.
ATTRIBUTE_COLUMNS: tuple[str, ...] = (
    "prod_name",
    "product_group_name",
    "graphical_appearance_name",
    "colour_group_name",
    "perceived_colour_value_name",
    "perceived_colour_master_name",
    "department_name",
    "index_name",
    "index_group_name",
    "section_name",
    "garment_group_name",
    "detail_desc",
)
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".webp")


def article_item_id(article_id: object) -> str | None:
    """``813519001`` or ``"0813519001"`` -> ``"0813519001"``; None for non-numeric text."""
    if article_id is None or (isinstance(article_id, float) and pd.isna(article_id)):
        return None
    text = str(article_id).strip()
    if not text.isdigit():
        return text or None  # left for the id rules to judge
    return text.zfill(10)


def _find_image(images_dir: Path, item_id: str) -> Path | None:
    for candidate_dir in (images_dir, images_dir / item_id[:3]):
        for suffix in IMAGE_SUFFIXES:
            path = candidate_dir / f"{item_id}{suffix}"
            if path.is_file():
                return path
    return None


def articles_to_items(
    raw: pd.DataFrame, images_dir: Path | None = None, root: Path | None = None
) -> pd.DataFrame:
    """Map articles.csv rows to item columns, linking images found under ``images_dir``."""
    ids = [article_item_id(a) for a in raw["article_id"].tolist()]
    uris: list[str | None] = []
    for item_id in ids:
        found = _find_image(images_dir, item_id) if images_dir is not None and item_id else None
        if found is None:
            uris.append(None)
        else:
            base = root if root is not None else images_dir.parent  # type: ignore[union-attr]
            uris.append(found.resolve().relative_to(base.resolve()).as_posix())
    attr_cols = [c for c in ATTRIBUTE_COLUMNS if c in raw.columns]
    records = raw[attr_cols].astype(object).where(raw[attr_cols].notna(), None).to_dict("records")
    attributes = [json.dumps(r, sort_keys=True, ensure_ascii=False) for r in records]
    return pd.DataFrame(
        {
            "item_id": pd.array(ids, dtype="string"),
            "image_uri": pd.array(uris, dtype="string"),
            "category": raw["product_type_name"].astype("string"),
            "attributes": attributes,
        },
        index=raw.index,
    )[list(ITEM_COLUMNS)]


def load_articles(
    articles_csv: str | Path, images_dir: str | Path | None = None, root: str | Path | None = None
) -> ItemsResult:
    """Load articles.csv (+ its images) as a validated catalog (:class:`data.catalog.ItemsResult`).

    ``images_dir`` defaults to ``images/`` beside articles.csv when that exists;
    ``root`` (what ``image_uri`` is relative to) defaults to articles.csv's folder.
    """
    path = Path(articles_csv)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    missing = [c for c in ARTICLES_REQUIRED if c not in raw.columns]
    if missing:
        raise ValueError(f"{path}: missing required columns {missing} (found {list(raw.columns)})")
    if images_dir is None and (path.parent / "images").is_dir():
        images_dir = path.parent / "images"
    images = Path(images_dir) if images_dir is not None else None
    if images is not None and not images.is_dir():
        raise FileNotFoundError(f"{images}: images folder not found")
    base = Path(root) if root is not None else path.parent
    items = articles_to_items(raw, images, base)
    result = load_items(items, "frame")
    result.report.source = str(path)
    without = int(result.items["image_uri"].isna().sum())
    if without:
        log.warning("%s: %d of %d articles have no image", path, without, len(result.items))
    return result
