"""The demo world: configuration, generation to a directory, and loading it back.

``generate_world`` writes a small, fully known shop (catalogue photos, style
library, event logs, planted truth) so that every later stage can be run end to
end and *scored* without any private data.  The file layout is the contract in
``docs/demo_world.md``; ``World.load`` reads exactly that layout back.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from tqdm import tqdm

from demo.images import (
    ProductSpec,
    draw_product,
    draw_style,
    product_spec,
    style_name_and_tags,
)
from demo.logs import EVENT_COLUMNS, LogSettings, events_to_arrow, simulate_events
from demo.shoppers import ClickModel, plant_truth

__all__ = ["WorldConfig", "World", "generate_world", "TRUTH_KEYS"]

log = logging.getLogger(__name__)

TRUTH_KEYS = (
    "user_ids",
    "item_ids",
    "style_ids",
    "user_taste",
    "style_latent",
    "item_latent",
    "item_popularity",
    "affinity",
    "style_codes",
    "item_codes",
    "holdout_style_ids",
)
_FILES = ("items.csv", "styles.csv", "events.parquet", "truth.npz", "truth.json")
_PNG_FLAGS = [cv2.IMWRITE_PNG_COMPRESSION, 1]


@dataclass(frozen=True)
class WorldConfig:
    """Everything that determines a demo world; the same config always gives the same files.

    ``end_date`` fixes where the logs stop (a date in the past), so the world does not
    depend on the day it was generated and "future timestamp" validation never trips.
    The share fields describe the earlier personalisation the logs were recorded under:
    ``control_share`` of users always saw originals; the others saw originals with
    probability ``original_share``, the next style of their own exploration cycle with
    ``exploration_share`` and their segment's style otherwise.  Activity is lognormal
    (``activity_sigma``) with a ``regular_share`` of regular shoppers ``regular_boost``
    times as active as occasional ones.  ``taste_margin`` is the planted gap between
    each shopper's third- and fourth-best shown style.

    The defaults make the planted style preferences identifiable from the logs, as
    issue 4's acceptance needs (docs/benchmarks.md, "Planted styles"): with the
    earlier defaults (control 0.2, exploration 0.25 of random styles, one lognormal
    activity, two favourites with a fuzzy top three, click-model ``alpha`` 1.1) even an
    estimator that knows the whole click model except each taste recovered only 0.59
    of the true top three styles.
    """

    seed: int = 0
    n_users: int = 2000
    n_items: int = 200
    n_styles: int = 12
    image_size: int = 512
    n_latent: int = 6
    days: int = 28
    target_events: int = 100_000
    code_dim: int = 100
    holdout_styles: int = 1
    write_images: bool = True
    end_date: str = "2026-01-31"
    control_share: float = 0.1
    original_share: float = 0.1
    exploration_share: float = 0.7
    segment_noise: float = 0.5
    activity_sigma: float = 0.5
    regular_share: float = 0.3
    regular_boost: float = 15.0
    taste_margin: float = 1.0

    def __post_init__(self) -> None:
        """Reject configs that cannot produce a usable world, naming the field."""
        for name in ("n_users", "n_items", "n_styles", "n_latent", "days", "code_dim"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"WorldConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.image_size < 32:
            raise ValueError(f"WorldConfig.image_size must be >= 32, got {self.image_size}")
        if not 0 <= self.holdout_styles < self.n_styles:
            raise ValueError(
                f"WorldConfig.holdout_styles must be in [0, n_styles), got {self.holdout_styles}"
            )
        if self.target_events < self.n_users:
            raise ValueError(
                f"WorldConfig.target_events ({self.target_events}) must be >= n_users "
                f"({self.n_users}): every user gets at least one view"
            )
        for name in ("control_share", "original_share", "exploration_share", "regular_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"WorldConfig.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.original_share + self.exploration_share > 1.0:
            raise ValueError("WorldConfig.original_share + exploration_share must be <= 1")
        for name in ("activity_sigma", "segment_noise", "taste_margin"):
            if not getattr(self, name) >= 0.0:
                raise ValueError(f"WorldConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not self.regular_boost >= 1.0:
            raise ValueError(
                f"WorldConfig.regular_boost must be >= 1 (regulars are the more active "
                f"shoppers), got {self.regular_boost}"
            )
        try:
            pd.Timestamp(self.end_date)
        except ValueError as err:
            raise ValueError(f"WorldConfig.end_date is not a date: {self.end_date!r}") from err

    @classmethod
    def from_dict(cls, values: dict) -> WorldConfig:
        """Build from a dict (e.g. ``truth.json``), ignoring unknown keys from newer versions."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


@dataclass
class World:
    """A generated world read back from disk, plus its planted click model.

    ``truth`` holds the arrays listed in :data:`TRUTH_KEYS`; indices into them (user,
    item, style) are the positions of the ids in ``truth["user_ids"]`` etc.
    """

    dir: Path
    config: WorldConfig
    items: pd.DataFrame
    styles: pd.DataFrame
    events: pd.DataFrame
    truth: dict[str, np.ndarray]
    click_model: ClickModel

    @classmethod
    def load(cls, out_dir: str | os.PathLike[str]) -> World:
        """Read a world written by :func:`generate_world`; missing files raise a clear error."""
        root = Path(out_dir)
        if not root.is_dir():
            raise FileNotFoundError(f"demo world directory {root} does not exist")
        missing = [name for name in _FILES if not (root / name).is_file()]
        if missing:
            raise FileNotFoundError(
                f"demo world {root} is incomplete: missing {', '.join(missing)} "
                "(regenerate it with 'stylerec generate --out DIR')"
            )
        meta = json.loads((root / "truth.json").read_text())
        config = WorldConfig.from_dict(meta["config"])
        click_model = ClickModel(**meta["click_model"])
        with np.load(root / "truth.npz", allow_pickle=False) as npz:
            absent = [k for k in TRUTH_KEYS if k not in npz.files]
            if absent:
                raise ValueError(f"{root / 'truth.npz'} lacks arrays: {', '.join(absent)}")
            truth = {k: npz[k] for k in TRUTH_KEYS}
        items = pd.read_csv(root / "items.csv", dtype=str, keep_default_na=False)
        styles = pd.read_csv(root / "styles.csv", dtype=str, keep_default_na=False)
        events = pd.read_parquet(root / "events.parquet")
        bad = [c for c in EVENT_COLUMNS if c not in events.columns]
        if bad:
            raise ValueError(f"{root / 'events.parquet'} lacks columns: {', '.join(bad)}")
        if config.write_images:
            uris = list(items["image_uri"]) + list(styles["image_uri"])
            lost = [u for u in uris if not (root / u).is_file()]
            if lost:
                raise FileNotFoundError(
                    f"demo world {root} lacks {len(lost)} image(s), first: {root / lost[0]}"
                )
        return cls(root, config, items, styles, events, truth, click_model)

    def click_probability(
        self,
        user_idx: np.ndarray | int,
        item_idx: np.ndarray | int,
        style_idx: np.ndarray | int,
    ) -> np.ndarray:
        """Planted P(click) for impressions (broadcast); ``style_idx`` -1 = original photo.

        The A/B simulator uses this to know the true lift of showing renders.
        """
        return self.click_model.click_probability(self.truth, user_idx, item_idx, style_idx)

    def funnel_probabilities(
        self,
        user_idx: np.ndarray | int,
        item_idx: np.ndarray | int,
        style_idx: np.ndarray | int,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Planted (P(click), P(cart | click), P(purchase | cart)) for impressions."""
        score = self.click_model.score(self.truth, user_idx, item_idx, style_idx)
        return (
            self.click_model.click_probability(self.truth, user_idx, item_idx, style_idx),
            self.click_model.cart_probability(score),
            self.click_model.purchase_probability(score),
        )

    def top_styles(self, k: int = 1, include_holdout: bool = False) -> np.ndarray:
        """Indices ``(n_users, k)`` of each user's best planted styles, best first.

        With ``include_holdout=False`` only styles that appear in the logs compete,
        which is what a log-based check can see.
        """
        aff = self.truth["affinity"].copy()
        if not include_holdout:
            hold = np.isin(self.truth["style_ids"], self.truth["holdout_style_ids"])
            aff[:, hold] = -np.inf
        return np.argsort(-aff, axis=1, kind="stable")[:, :k]

    def index(self, kind: str) -> dict[str, int]:
        """Id -> position map for ``kind`` in {"user", "item", "style"}."""
        if kind not in ("user", "item", "style"):
            raise ValueError(f"kind must be 'user', 'item' or 'style', got {kind!r}")
        return {sid: k for k, sid in enumerate(self.truth[f"{kind}_ids"].tolist())}


def _write_png(path: Path, rgb: np.ndarray) -> None:
    if not cv2.imwrite(str(path), rgb[..., ::-1] if rgb.ndim == 3 else rgb, _PNG_FLAGS):
        raise OSError(f"could not write image {path}")


def _image_job(
    k: int, ident: str, latent: np.ndarray, spec: ProductSpec | None, cfg: WorldConfig, root: Path
) -> None:
    """Draw and write one image; its own seed makes the result independent of thread order."""
    if spec is not None:
        rng = np.random.default_rng([cfg.seed, 2, k])
        img, mask = draw_product(spec, cfg.image_size, rng)
        _write_png(root / "images" / f"{ident}.png", img)
        _write_png(root / "masks" / f"{ident}.png", mask)
    else:
        rng = np.random.default_rng([cfg.seed, 3, k])
        _write_png(root / "styles" / f"{ident}.png", draw_style(k, latent, cfg.image_size, rng))


#: Scene strength of the demo's artworks in ``library.csv``: a hint of the painting behind
#: the product; backdrop materials show more (``materials.MATERIAL_STRENGTH``).
ARTWORK_STRENGTH = 0.45


def write_style_library(root: Path, styles: pd.DataFrame, size: int, seed: int = 0) -> Path:
    """Write ``library.csv``: the planted styles plus procedural backdrop materials.

    ``styles.csv`` stays the planted library (the truth and the logs refer to it);
    ``library.csv`` is what the demo's shop offers: the same artworks, each with a
    calm ``strength``, next to the materials a shop shoots on (drawn to
    ``styles/material-<name>.png``).  The materials have no events: the model
    gives them embeddings from their codes, as any new style.
    """
    from demo.materials import MATERIAL_STRENGTH, MATERIALS, draw_material
    from demo.style_descriptions import describe

    rows = styles.assign(strength=f"{ARTWORK_STRENGTH:g}")
    extra = []
    for name, (tags, _) in MATERIALS.items():
        uri = f"styles/material-{name}.png"
        _write_png(root / uri, draw_material(name, size, seed))
        extra.append({"style_id": f"m-{name}", "name": name, "image_uri": uri,
                      "tags": ";".join(tags), "strength": f"{MATERIAL_STRENGTH:g}"})
    library = pd.concat([rows, pd.DataFrame(extra)], ignore_index=True)
    # Words for the search (English and Chinese tags, a description per style).
    words = [describe(str(n)) for n in library["name"]]
    library["tags"] = [";".join(dict.fromkeys([*str(t).split(";"), *w[1]]))
                       for t, w in zip(library["tags"], words, strict=True)]
    library["description"] = [w[0] for w in words]
    library["enabled"] = "true"
    path = root / "library.csv"
    library.to_csv(path, index=False)
    return path


def generate_world(out_dir: str | os.PathLike[str], config: WorldConfig | None = None) -> World:
    """Generate a demo world into ``out_dir`` and return it loaded back.

    Files are written to fixed names (overwriting an earlier world there).  Images are
    drawn in a small thread pool: OpenCV releases the GIL, so this roughly halves the
    time on two cores.
    """
    cfg = config or WorldConfig()
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    (root / "truth.json").unlink(missing_ok=True)  # an older world here is now incomplete
    t0 = time.perf_counter()
    click_model = ClickModel()
    truth = plant_truth(
        np.random.default_rng([cfg.seed, 0]),
        cfg.n_users,
        cfg.n_items,
        cfg.n_styles,
        cfg.n_latent,
        cfg.code_dim,
        cfg.holdout_styles,
        taste_margin=cfg.taste_margin,
    )
    specs = [
        product_spec(np.random.default_rng([cfg.seed, 1, k]), truth["item_latent"][k])
        for k in range(cfg.n_items)
    ]
    prices = np.array([s.price for s in specs])

    items = pd.DataFrame(
        {
            "item_id": truth["item_ids"],
            "image_uri": [f"images/{i}.png" for i in truth["item_ids"]],
            "category": [s.category for s in specs],
            "attributes": [
                json.dumps(
                    {
                        "subtype": s.subtype,
                        "colour": s.colour,
                        "rgb": list(s.rgb),
                        "pattern": s.pattern,
                        "pattern_rgb": list(s.pattern_rgb),
                        "price": s.price,
                        "mask_uri": f"masks/{iid}.png",
                    },
                    sort_keys=True,
                )
                for s, iid in zip(specs, truth["item_ids"], strict=True)
            ],
        }
    )
    names = [style_name_and_tags(k, truth["style_latent"][k]) for k in range(cfg.n_styles)]
    styles = pd.DataFrame(
        {
            "style_id": truth["style_ids"],
            "name": [n for n, _ in names],
            "image_uri": [f"styles/{s}.png" for s in truth["style_ids"]],
            "tags": [";".join(t) for _, t in names],
        }
    )
    items.to_csv(root / "items.csv", index=False)
    styles.to_csv(root / "styles.csv", index=False)

    settings = LogSettings(
        n_users=cfg.n_users,
        days=cfg.days,
        target_events=cfg.target_events,
        end_date=cfg.end_date,
        control_share=cfg.control_share,
        original_share=cfg.original_share,
        exploration_share=cfg.exploration_share,
        segment_noise=cfg.segment_noise,
        activity_sigma=cfg.activity_sigma,
        regular_share=cfg.regular_share,
        regular_boost=cfg.regular_boost,
    )
    columns = simulate_events(
        np.random.default_rng([cfg.seed, 4]), truth, prices, click_model, settings
    )
    pq.write_table(events_to_arrow(columns), root / "events.parquet")
    np.savez(root / "truth.npz", **truth)
    meta = {
        "config": asdict(cfg),
        "click_model": asdict(click_model),
        "counts": {
            "users": cfg.n_users,
            "items": cfg.n_items,
            "styles": cfg.n_styles,
            "events": int(columns["price"].size),
        },
    }
    log.info("world %s: %d events simulated", root, columns["price"].size)

    if cfg.write_images:
        for sub in ("images", "masks", "styles"):
            (root / sub).mkdir(exist_ok=True)
        jobs: list[tuple[int, str, np.ndarray, ProductSpec | None]] = [
            (k, str(truth["item_ids"][k]), truth["item_latent"][k], specs[k])
            for k in range(cfg.n_items)
        ]
        jobs += [
            (k, str(truth["style_ids"][k]), truth["style_latent"][k], None)
            for k in range(cfg.n_styles)
        ]
        workers = max(1, min(4, os.cpu_count() or 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [
                pool.submit(_image_job, k, ident, lat, spec, cfg, root)
                for k, ident, lat, spec in jobs
            ]
            for fut in tqdm(
                futures,
                desc="images",
                unit="img",
                disable=None if sys.stderr.isatty() else True,
            ):
                fut.result()
        log.info("world %s: %d images written", root, len(jobs))
        write_style_library(root, styles, cfg.image_size, cfg.seed)
    # truth.json last: it marks the world complete, so an interrupted run fails to load.
    (root / "truth.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    log.info("world %s generated in %.1f s", root, time.perf_counter() - t0)
    return World.load(root)
