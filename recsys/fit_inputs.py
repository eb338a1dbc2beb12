"""What the style-preference model is fitted on, built from events in one way.

Why one builder: the nightly train stage, ``stylerec train`` and the holdout
harness each assembled the interaction matrix, the item codes in item-map
order and the style events themselves, and they drifted apart (the holdout
fitted without the time decay production used, and filled items without a
code differently).  :meth:`FitInputs.from_events` is now the only place, so the
holdout model is fitted as the production model is.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from recsys.interactions import IdMap, Interactions, build_interactions, event_weight_series

log = logging.getLogger(__name__)

Codes = Mapping[str, np.ndarray]
"""Codes by id (item id or style id -> 1-D code)."""


def align_item_codes(codes: Codes | None, item_map: IdMap) -> np.ndarray | None:
    """Codes in item-map order; items without a code get the mean code of those with one.

    The mean code is neutral: after the model's standardisation it is the
    origin, so such items are scored by their collaborative part alone.
    """
    if not codes:
        return None
    ids = [str(i) for i in codes]
    arr = np.stack([np.asarray(codes[i], dtype=np.float32).ravel() for i in codes])
    rows = item_map.indices(ids)
    keep = rows >= 0
    out = np.empty((len(item_map), arr.shape[1]), dtype=np.float32)
    out[:] = arr[keep].mean(axis=0) if keep.any() else arr.mean(axis=0)
    out[rows[keep]] = arr[keep]
    n_missing = len(item_map) - int(keep.sum())
    if n_missing:
        log.info("item codes: %d of %d items have no code (mean code used)", n_missing,
                 len(item_map))
    return out


def style_event_array(
    events: pd.DataFrame,
    style_map: IdMap,
    user_map: IdMap,
    item_map: IdMap,
    event_weights: Mapping[str, float] | None = None,
) -> np.ndarray:
    """``(user_idx, item_idx, style_idx, weight)`` rows for the style model.

    Every event of a log that records which image was shown becomes a row: a
    missing ``style_id`` is the original photo (``style_idx = -1``), the anchor
    the model measures style affinities against; views are the exposures
    (weight <= 0), clicks and later steps the positives.  Events of styles, users
    or items outside the maps are dropped.
    """
    has_style = events["style_id"].notna().to_numpy()
    s = np.full(len(events), -1, dtype=np.int64)
    s[has_style] = style_map.indices(events.loc[has_style, "style_id"].astype(str).to_numpy())
    u = user_map.indices(events["user_id"].astype(str).to_numpy())
    i = item_map.indices(events["item_id"].astype(str).to_numpy())
    w = event_weight_series(events, event_weights)
    keep = (u >= 0) & (i >= 0) & ((s >= 0) | ~has_style)
    return np.stack([u[keep], i[keep], s[keep], w[keep]], axis=1).astype(np.float64)


@dataclass
class FitInputs:
    """The interactions and the arrays ``StylePreferenceModel.fit`` takes.

    ``item_codes`` ``(n_items, d)`` in item-map order; ``style_codes``
    ``(n_styles, d)`` in the order of the style ids given; ``style_events``
    ``(user_idx, item_idx, style_idx, weight)`` rows, ``None`` when the log never
    recorded which image was shown.
    """

    interactions: Interactions
    item_codes: np.ndarray | None = None
    style_codes: np.ndarray | None = None
    style_events: np.ndarray | None = None

    @classmethod
    def from_events(
        cls,
        events: pd.DataFrame,
        *,
        item_codes: Codes | None = None,
        style_codes: Codes | np.ndarray | None = None,
        user_map: IdMap | None = None,
        item_map: IdMap | None = None,
        half_life_days: float | None = None,
        event_weights: Mapping[str, float] | None = None,
    ) -> FitInputs:
        """Build the matrix (on the given, e.g. warm-start, id maps) and align the codes.

        ``style_codes`` as a mapping style id -> code lets the events'
        ``style_id`` be resolved into style events; a bare array is passed
        through without style events.
        """
        inter = build_interactions(events, user_map=user_map, item_map=item_map,
                                   weights=event_weights, half_life_days=half_life_days)
        styles: np.ndarray | None = None
        style_events: np.ndarray | None = None
        if isinstance(style_codes, Mapping):
            if style_codes:
                styles = np.stack([np.asarray(style_codes[s], dtype=np.float32).ravel()
                                   for s in style_codes])
                if "style_id" in events.columns and events["style_id"].notna().any():
                    style_events = style_event_array(
                        events, IdMap(str(s) for s in style_codes), inter.user_map,
                        inter.item_map, event_weights)
        elif style_codes is not None:
            styles = np.asarray(style_codes, dtype=np.float32)
        return cls(inter, align_item_codes(item_codes, inter.item_map), styles, style_events)

    def fit_kwargs(self) -> dict[str, Any]:
        """``item_codes``/``style_codes``/``style_events`` for ``fit`` (absent ones left out)."""
        out = {"item_codes": self.item_codes, "style_codes": self.style_codes,
               "style_events": self.style_events}
        return {k: v for k, v in out.items() if v is not None}


def codes_by_id(ids: Any, codes: np.ndarray | None) -> dict[str, np.ndarray] | None:
    """``{id: row}`` of an id list and its code rows (``None`` when there are none)."""
    if codes is None or ids is None or len(ids) == 0:
        return None
    return {str(i): codes[n] for n, i in enumerate(ids)}


__all__ = ["Codes", "FitInputs", "align_item_codes", "codes_by_id", "style_event_array"]
