"""Column specifications and the pandas dtypes the loaders return.

Every part of stylerec meets the data through these three tables, so their
column names, which columns are required, and the dtypes a loader hands back
are defined here once.  Loaders, validators, the SQL store and the demo world
import these constants instead of spelling column names themselves, so a
renamed column is one edit, not a search.

Dtype choices (and why):

* ids (``user_id``, ``item_id``, ``style_id``, ``segment_id``) are pandas
  ``"string"`` (pyarrow-backed, ``pd.NA`` for missing).  Ids are strings
  everywhere outside model internals; the pyarrow storage keeps a 10M-row log
  at ~15 bytes per id instead of ~60 for Python ``object`` strings.  Loaders
  can return them as ``category`` instead (``id_dtype="category"``), smaller
  still when few distinct users/items repeat many times.
* ``event_type`` is an *ordered* categorical in increasing strength of
  intent (view < click < add_to_cart < purchase): one byte per row, and the
  order is what the preference model's confidence weights follow.
* ``timestamp`` is ``datetime64[ns, UTC]``: one unambiguous clock for logs
  that arrive as ISO strings with offsets, naive datetimes or epoch seconds.
* ``price`` is ``float64`` with ``NaN`` meaning "no price" (views often have
  none); numpy-friendly for the models.
"""

from __future__ import annotations

from typing import Final

import pandas as pd

#: Event types in increasing strength of intent; the order matters (see module doc).
EVENT_TYPES: Final[tuple[str, ...]] = ("view", "click", "add_to_cart", "purchase")

#: The dtype of ``event_type`` in every loaded events frame.
EVENT_TYPE_DTYPE: Final[pd.CategoricalDtype] = pd.CategoricalDtype(
    categories=list(EVENT_TYPES), ordered=True
)
#: The dtype of every id column (see the module doc for ``category``).
ID_DTYPE: Final[pd.StringDtype] = pd.StringDtype()
#: The dtype of free-text columns (experiment, variant, names, categories).
TEXT_DTYPE: Final[pd.StringDtype] = pd.StringDtype()
#: The dtype of every timestamp column.
TIMESTAMP_DTYPE: Final[pd.DatetimeTZDtype] = pd.DatetimeTZDtype(unit="ns", tz="UTC")
#: The dtype of ``price``.
PRICE_DTYPE: Final[str] = "float64"

# ---- events -----------------------------------------------------------------
EVENT_REQUIRED: Final[tuple[str, ...]] = ("user_id", "item_id", "event_type", "timestamp")
EVENT_OPTIONAL: Final[tuple[str, ...]] = (
    "style_id",
    "segment_id",
    "experiment",
    "variant",
    "price",
)
EVENT_COLUMNS: Final[tuple[str, ...]] = EVENT_REQUIRED + EVENT_OPTIONAL
#: Event columns holding ids (normalised with the id rules; optional ones may be missing).
EVENT_ID_COLUMNS: Final[tuple[str, ...]] = ("user_id", "item_id", "style_id", "segment_id")
#: Event columns holding free text.
EVENT_TEXT_COLUMNS: Final[tuple[str, ...]] = ("experiment", "variant")

# ---- items (the catalog) ----------------------------------------------------
#: ``image_uri`` may be missing for catalogs without pictures (e.g. MovieLens);
#: such items are recommended but never rendered.  ``attributes`` is a JSON
#: object serialised as a string, so that any catalog's descriptive columns fit
#: one column in files and in SQL alike.
ITEM_REQUIRED: Final[tuple[str, ...]] = ("item_id",)
ITEM_COLUMNS: Final[tuple[str, ...]] = ("item_id", "image_uri", "category", "attributes")

# ---- styles (the style library) --------------------------------------------
#: A style without an image cannot be encoded, so ``image_uri`` is required.
#: ``tags`` is a JSON array serialised as a string.
STYLE_REQUIRED: Final[tuple[str, ...]] = ("style_id", "image_uri")
STYLE_COLUMNS: Final[tuple[str, ...]] = ("style_id", "name", "image_uri", "tags")


def empty_events(id_dtype: str = "string") -> pd.DataFrame:
    """An events frame with no rows and the loader's dtypes (for empty logs and joins)."""
    return pd.DataFrame({name: pd.Series(dtype=dt) for name, dt in event_dtypes(id_dtype).items()})


def event_dtypes(id_dtype: str = "string") -> dict[str, object]:
    """The dtype of every event column; ``id_dtype`` is ``"string"`` or ``"category"``."""
    if id_dtype not in ("string", "category"):
        raise ValueError(f"id_dtype must be 'string' or 'category', not {id_dtype!r}")
    ids: object = ID_DTYPE if id_dtype == "string" else "category"
    return {
        "user_id": ids,
        "item_id": ids,
        "event_type": EVENT_TYPE_DTYPE,
        "timestamp": TIMESTAMP_DTYPE,
        "style_id": ids,
        "segment_id": ids,
        "experiment": TEXT_DTYPE,
        "variant": TEXT_DTYPE,
        "price": PRICE_DTYPE,
    }
