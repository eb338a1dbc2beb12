"""Simulated event logs: impressions, clicks, add-to-cart and purchases with timestamps.

The logs are what an online shop would have recorded while an *earlier*
personalisation was running: most shoppers (the ``treatment`` arm) saw products
either as the original photo, rendered in their segment's style, or rendered in the
next style of their own exploration cycle; a ``control`` arm always saw the originals.
That mix is what makes the planted preferences learnable (renders in many styles, for many
users) and an A/B lift measurable, with the truth known exactly.

Everything is vectorised with numpy: the default world's ~100k events take well
under a second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from data.schemas import EVENT_COLUMNS
from demo.shoppers import ClickModel, format_ids

__all__ = ["LogSettings", "simulate_events", "EVENT_COLUMNS", "events_to_arrow"]

EXPERIMENT = "style-render-v1"

# Delays after the parent event (seconds): minimum, mean of an exponential tail, cap.
# The caps add up to less than the two hours kept free before the end of the logs, so
# no event can fall after ``end_date``.
_CLICK_DELAY = (2, 20.0, 600)
_CART_DELAY = (5, 120.0, 1800)
_PURCHASE_DELAY = (30, 600.0, 3600)
_TAIL_GUARD_S = 2 * 3600


@dataclass(frozen=True)
class LogSettings:
    """The parts of ``WorldConfig`` the log simulation needs (kept separate to avoid a cycle)."""

    n_users: int
    days: int
    target_events: int
    end_date: str
    control_share: float
    original_share: float
    exploration_share: float
    segment_noise: float
    activity_sigma: float
    regular_share: float
    regular_boost: float


def _end_timestamp(end_date: str) -> pd.Timestamp:
    """The fixed end of the logs as a UTC timestamp (naive dates are read as UTC)."""
    ts = pd.Timestamp(end_date)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def simulate_events(
    rng: np.random.Generator,
    truth: dict[str, np.ndarray],
    prices: np.ndarray,
    click_model: ClickModel,
    settings: LogSettings,
) -> dict[str, np.ndarray]:
    """Simulate the event log; returns column arrays (see :data:`EVENT_COLUMNS`).

    Views are drawn i.i.d. (user by activity, item by popularity) after one view per
    user, so the log can be cut at exactly the number of views whose expected funnel
    gives ``target_events`` rows.  Clicks, carts and purchases follow the planted
    :class:`ClickModel`; they inherit the view's style, segment and variant because
    they happen on the same rendered image.
    """
    n_users = truth["user_taste"].shape[0]
    n_items = truth["item_latent"].shape[0]
    n_styles = truth["style_latent"].shape[0]
    holdout = set(truth["holdout_style_ids"].tolist())
    shown_styles = np.array(
        [k for k, sid in enumerate(truth["style_ids"]) if sid not in holdout], dtype=np.int64
    )

    # Activity: lognormal spread, and a share of regular shoppers ``regular_boost`` times
    # as active as occasional ones (who often leave only a handful of events).
    activity = rng.lognormal(mean=0.0, sigma=settings.activity_sigma, size=n_users)
    regular = rng.random(n_users) < settings.regular_share
    activity = np.where(regular, activity * settings.regular_boost, activity)
    activity /= activity.sum()
    exposure = np.exp(truth["item_popularity"])
    exposure /= exposure.sum()

    # The earlier personalisation put each user in the segment of the style it *thought*
    # they liked best: the true top style, blurred by estimation noise.
    noisy = truth["affinity"][:, shown_styles] + rng.normal(
        scale=settings.segment_noise, size=(n_users, shown_styles.size)
    )
    segment_style = shown_styles[np.argmax(noisy, axis=1)]
    used = np.unique(segment_style)
    segment_of_style = np.full(n_styles, -1, dtype=np.int64)
    segment_of_style[used] = np.arange(used.size)
    user_segment = segment_of_style[segment_style]
    segment_ids = format_ids("seg", used.size, 2)

    n_control = int(round(settings.control_share * n_users))
    is_control = np.zeros(n_users, dtype=bool)
    is_control[rng.permutation(n_users)[:n_control]] = True

    # Over-draw candidate views, then cut where the expected row count reaches the target.
    n_cand = max(settings.target_events, n_users) + n_users
    users = np.concatenate(
        [rng.permutation(n_users), rng.choice(n_users, size=n_cand - n_users, p=activity)]
    )
    items = rng.choice(n_items, size=n_cand, p=exposure)
    draw = rng.random(n_cand)
    orig_cut = settings.original_share
    explore_cut = orig_cut + settings.exploration_share
    # The exploration arm cycles each shopper through every shown style, in an order of
    # their own, so even a shopper with a dozen exploration views has seen most styles
    # once (independent random picks repeat some and miss others).
    cycle_order = np.argsort(rng.random((n_users, shown_styles.size)), axis=1)
    explore = np.flatnonzero((draw >= orig_cut) & (draw < explore_cut))
    explore_users = users[explore]
    by_user = np.argsort(explore_users, kind="stable")
    sorted_users = explore_users[by_user]
    nth = np.empty(explore.size, dtype=np.int64)  # this view is the user's nth exploration
    nth[by_user] = np.arange(explore.size) - np.searchsorted(sorted_users, sorted_users)
    explore_style = np.zeros(n_cand, dtype=np.int64)
    explore_style[explore] = shown_styles[
        cycle_order[explore_users, nth % shown_styles.size]
    ]
    styles = np.where(
        draw < orig_cut, -1, np.where(draw < explore_cut, explore_style, segment_style[users])
    )
    styles = np.where(is_control[users], -1, styles)

    score = click_model.score(truth, users, items, styles)
    p_click = click_model.click_probability(truth, users, items, styles)
    p_cart = click_model.cart_probability(score)
    p_buy = click_model.purchase_probability(score)
    expected_rows = np.cumsum(1.0 + p_click * (1.0 + p_cart * (1.0 + p_buy)))
    n_views = int(np.searchsorted(expected_rows, settings.target_events)) + 1
    n_views = min(max(n_views, n_users), n_cand)
    users, items, styles = users[:n_views], items[:n_views], styles[:n_views]
    p_click, p_cart, p_buy = p_click[:n_views], p_cart[:n_views], p_buy[:n_views]

    clicked = rng.random(n_views) < p_click
    carted = clicked & (rng.random(n_views) < p_cart)
    bought = carted & (rng.random(n_views) < p_buy)

    end = _end_timestamp(settings.end_date)
    span = settings.days * 86400 - _TAIL_GUARD_S
    if span <= 0:
        raise ValueError(f"days={settings.days} leaves no room for events")
    t_view = rng.integers(0, span, size=n_views)

    def delay(spec: tuple[int, float, int]) -> np.ndarray:
        tail = np.minimum(np.floor(rng.exponential(spec[1], size=n_views)), spec[2])
        return spec[0] + tail.astype(np.int64)

    t_click = t_view + delay(_CLICK_DELAY)
    t_cart = t_click + delay(_CART_DELAY)
    t_buy = t_cart + delay(_PURCHASE_DELAY)

    parts = [
        (np.ones(n_views, dtype=bool), t_view, 0),
        (clicked, t_click, 1),
        (carted, t_cart, 2),
        (bought, t_buy, 3),
    ]
    idx = np.concatenate([np.flatnonzero(m) for m, _, _ in parts])
    secs = np.concatenate([t[m] for m, t, _ in parts])
    kind = np.concatenate([np.full(int(m.sum()), k, dtype=np.int8) for m, _, k in parts])
    # Time first, then funnel step, then view index: a total, seed-stable order.
    order = np.lexsort((idx, kind, secs))
    idx, secs, kind = idx[order], secs[order], kind[order]

    start_ns = (end - pd.Timedelta(days=settings.days)).value
    timestamps = start_ns + secs.astype(np.int64) * 1_000_000_000
    ev_users, ev_items, ev_styles = users[idx], items[idx], styles[idx]
    control = is_control[ev_users]
    style_col = np.where(ev_styles >= 0, truth["style_ids"][np.maximum(ev_styles, 0)], None)
    segment_col = np.where(control, None, segment_ids[user_segment[ev_users]])
    event_types = np.array(["view", "click", "add_to_cart", "purchase"], dtype=object)
    return {
        "user_id": truth["user_ids"][ev_users].astype(object),
        "item_id": truth["item_ids"][ev_items].astype(object),
        "event_type": event_types[kind],
        "timestamp": timestamps,
        "style_id": style_col.astype(object),
        "segment_id": segment_col.astype(object),
        "experiment": np.full(idx.size, EXPERIMENT, dtype=object),
        "variant": np.where(control, "control", "treatment").astype(object),
        "price": np.round(prices[ev_items].astype(np.float64), 2),
    }


def events_to_arrow(columns: dict[str, np.ndarray]) -> pa.Table:
    """Column arrays -> an Arrow table with the contract's types (UTC timestamps, nullable ids)."""
    schema = pa.schema(
        [
            ("user_id", pa.string()),
            ("item_id", pa.string()),
            ("event_type", pa.string()),
            ("timestamp", pa.timestamp("us", tz="UTC")),
            ("style_id", pa.string()),
            ("segment_id", pa.string()),
            ("experiment", pa.string()),
            ("variant", pa.string()),
            ("price", pa.float64()),
        ]
    )
    arrays = []
    for field in schema:
        values = columns[field.name]
        if field.name == "timestamp":
            arrays.append(pa.array(values // 1000, type=pa.int64()).cast(field.type))
        else:
            arrays.append(pa.array(values, type=field.type, from_pandas=True))
    return pa.Table.from_arrays(arrays, schema=schema)
