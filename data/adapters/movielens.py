"""MovieLens (ml-latest / ml-latest-small) ratings and movies as stylerec events and items.

Choices, and why:

* **Every rating is one interaction** with ``event_type="click"``, whatever the
  star value.  MovieLens records that a user watched and rated a film, not how
  they would act in a shop; mapping stars to purchases would invent intent the
  data does not contain.  The star value is not carried into events (the
  events schema has no rating column).
* Ids are the decimal strings of ``userId`` and ``movieId`` (``"318"``), the
  same spelling :func:`load_movies` gives items, so ``catalog=movies.csv``
  matches.
* ``timestamp`` is epoch seconds, as in the files.
* Movies have no pictures: ``image_uri`` is missing (allowed for items; they
  are recommended but never rendered).  ``category`` is the first listed genre;
  ``attributes`` holds the title and the full genre list.

Adapters sit below :mod:`data.loading` (which names this format ``"movielens"``)
and build on the generic readers, :mod:`data.event_log` and :mod:`data.catalog`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from data.catalog import Catalog, ItemsResult, catalog_ids, load_items
from data.event_log import EventFormat, EventLoadOptions, LoadResult, load_event_log
from data.schemas import ITEM_COLUMNS

#: Columns a ratings file must have (``rating`` is read if present, not required).
RATINGS_REQUIRED: tuple[str, ...] = ("userId", "movieId", "timestamp")
#: Columns a movies file must have.
MOVIES_REQUIRED: tuple[str, ...] = ("movieId", "title", "genres")
#: The event type every rating becomes (see the module doc).
RATING_EVENT_TYPE = "click"


def ratings_to_events(raw: pd.DataFrame) -> pd.DataFrame:
    """Map a batch of ratings.csv rows to event columns (validation happens afterwards)."""
    return pd.DataFrame(
        {
            "user_id": raw["userId"],
            "item_id": raw["movieId"],
            "event_type": pd.Series(RATING_EVENT_TYPE, index=raw.index, dtype="string"),
            "timestamp": raw["timestamp"],
        },
        index=raw.index,
    )


#: A ratings.csv as an event log (``load_events(path, "movielens")``).
RATINGS = EventFormat("movielens", "csv", RATINGS_REQUIRED, ratings_to_events)


def load_ratings(path: str | Path, *, catalog: Catalog | None = None, **kwargs: Any) -> LoadResult:
    """Load a ratings.csv as validated events (``data.loading.load_events(path, "movielens")``).

    ``catalog``: item ids, an items frame, a stylerec items table or a
    movies.csv; other keyword arguments as for :func:`data.loading.load_events`.
    """
    ids = None if catalog is None else catalog_ids(catalog, {"movieId": load_movies})
    return load_event_log(path, RATINGS, EventLoadOptions(catalog=ids, **kwargs))


def movies_to_items(raw: pd.DataFrame) -> pd.DataFrame:
    """Map movies.csv rows to item columns (``image_uri`` missing, see the module doc)."""
    genres = raw["genres"].fillna("").astype(str)
    genre_lists = [[] if g in ("", "(no genres listed)") else g.split("|") for g in genres.tolist()]
    attributes = [
        json.dumps({"title": None if pd.isna(t) else str(t), "genres": gl}, sort_keys=True)
        for t, gl in zip(raw["title"].tolist(), genre_lists, strict=True)
    ]
    return pd.DataFrame(
        {
            "item_id": raw["movieId"],
            "image_uri": pd.Series(pd.NA, index=raw.index, dtype="string"),
            "category": pd.array([gl[0] if gl else None for gl in genre_lists], dtype="string"),
            "attributes": attributes,
        },
        index=raw.index,
    )[list(ITEM_COLUMNS)]


def load_movies(path: str | Path) -> ItemsResult:
    """Load a movies.csv as a validated catalog (:class:`data.catalog.ItemsResult`)."""
    raw = pd.read_csv(_existing(path), dtype=str, keep_default_na=False, na_values=[""])
    _require(path, raw.columns, MOVIES_REQUIRED)
    result = load_items(movies_to_items(raw), "frame")
    result.report.source = str(path)
    return result


def _existing(path: str | Path) -> Path:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file")
    return p


def _require(path: str | Path, found: Any, required: tuple[str, ...]) -> None:
    missing = [c for c in required if c not in list(found)]
    if missing:
        raise ValueError(f"{path}: missing required columns {missing} (found {list(found)})")
