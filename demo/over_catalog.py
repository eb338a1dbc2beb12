"""Simulated shoppers over a *real* catalogue and style library.

Real product photos and real artworks exist (``../shared/data``), real logs of
shoppers reacting to styled renders do not.  This module plants the same
kind of truth as :func:`demo.generate_world` (tastes, favourite
styles, item popularity) over given items and styles and simulates their
logs, so the whole nightly job can run on real images: the images are real,
the behaviour is simulated, and the planted truth is saved beside the logs.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from demo.logs import LogSettings, events_to_arrow, simulate_events
from demo.shoppers import ClickModel, plant_truth
from demo.world import WorldConfig

__all__ = ["simulate_shop"]


def simulate_shop(
    out_dir: str | os.PathLike[str],
    items: pd.DataFrame,
    styles: pd.DataFrame,
    *,
    n_users: int = 500,
    events_per_user: int = 40,
    days: int = 28,
    end_date: str = "2026-11-01",
    seed: int = 0,
    n_latent: int = 6,
    holdout_styles: int = 1,
) -> dict[str, Path]:
    """Write ``items.csv``, ``styles.csv``, ``events.parquet`` and ``truth.npz`` to ``out_dir``.

    ``items`` needs ``item_id, image_uri`` (``category``, ``attributes`` kept when
    present); ``styles`` needs ``style_id, image_uri`` (``name``, ``tags`` kept).
    Image URIs are written unchanged, so they stay relative to whatever image
    root the caller's config names.  Returns the written paths by name.
    """
    for frame, name, cols in ((items, "items", ("item_id", "image_uri")),
                              (styles, "styles", ("style_id", "image_uri"))):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise ValueError(f"simulate_shop: {name} lacks columns {missing}")
        if frame.empty:
            raise ValueError(f"simulate_shop: no {name} given")
    if not 0 <= holdout_styles < len(styles):
        raise ValueError(f"holdout_styles must be in [0, {len(styles)}), got {holdout_styles}")
    if n_users < 1 or events_per_user < 1:
        raise ValueError("n_users and events_per_user must be >= 1")

    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    item_ids = items["item_id"].astype(str).to_numpy()
    style_ids = styles["style_id"].astype(str).to_numpy()
    rng = np.random.default_rng([seed, 0])
    truth = plant_truth(
        rng, n_users, len(item_ids), len(style_ids), n_latent,
        code_dim=100, holdout_styles=holdout_styles, taste_margin=WorldConfig.taste_margin,
    )
    # The planted arrays are indexed like the given frames; only the ids change.
    held = np.isin(truth["style_ids"], truth["holdout_style_ids"])
    truth["item_ids"] = item_ids
    truth["style_ids"] = style_ids
    truth["holdout_style_ids"] = style_ids[held]
    prices = np.round(np.random.default_rng([seed, 1]).lognormal(3.0, 0.5, len(item_ids)), 2)

    # The same logging policy and shopper activity as the demo world's defaults.
    policy = WorldConfig()
    settings = LogSettings(
        n_users=n_users, days=days, target_events=n_users * events_per_user,
        end_date=end_date, control_share=policy.control_share,
        original_share=policy.original_share, exploration_share=policy.exploration_share,
        segment_noise=policy.segment_noise, activity_sigma=policy.activity_sigma,
        regular_share=policy.regular_share, regular_boost=policy.regular_boost,
    )
    click_model = ClickModel()
    columns = simulate_events(np.random.default_rng([seed, 4]), truth, prices, click_model, settings)

    out_items = pd.DataFrame({
        "item_id": item_ids,
        "image_uri": items["image_uri"].astype(str).to_numpy(),
        "category": items["category"].to_numpy() if "category" in items else "product",
        "attributes": items["attributes"].to_numpy() if "attributes" in items else "{}",
    })
    out_styles = pd.DataFrame({
        "style_id": style_ids,
        "name": styles["name"].to_numpy() if "name" in styles else style_ids,
        "image_uri": styles["image_uri"].astype(str).to_numpy(),
        "tags": styles["tags"].to_numpy() if "tags" in styles else "",
    })
    paths = {
        "items": root / "items.csv",
        "styles": root / "styles.csv",
        "events": root / "events.parquet",
        "truth": root / "truth.npz",
    }
    out_items.to_csv(paths["items"], index=False)
    out_styles.to_csv(paths["styles"], index=False)
    pq.write_table(events_to_arrow(columns), paths["events"])
    np.savez(paths["truth"], **truth)
    (root / "shop.json").write_text(json.dumps({
        "click_model": asdict(click_model), "n_users": n_users,
        "events": int(columns["price"].size), "seed": seed,
    }, indent=2) + "\n")
    return paths
