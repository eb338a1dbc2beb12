"""Tests of the generated demo world (demo): contract, planted truth, images, CLI.

The demo world is what every later stage is scored against, so these tests check
that the truth really shows in the logs and images, not only that files exist.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from skimage.color import deltaE_ciede2000, rgb2lab

from demo import TRUTH_KEYS, World, WorldConfig, generate_world
from demo.images import STYLE_KINDS, draw_style
from pipelines.cli import main as cli_main

TINY = {"n_users": 60, "n_items": 6, "n_styles": 12, "image_size": 64, "target_events": 1500}


def _read_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, f"unreadable image {path}"
    return img[..., ::-1]


def _tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``, by relative path."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _top_style_ctr(world: World) -> tuple[float, float, int]:
    """CTR of impressions rendered in each user's top planted style vs all other impressions."""
    ev = world.events
    top = world.top_styles(1)[:, 0]
    u = ev["user_id"].map(world.index("user")).to_numpy()
    s = ev["style_id"].map(world.index("style")).fillna(-1).astype(int).to_numpy()
    in_top = s == top[u]
    view = (ev["event_type"] == "view").to_numpy()
    click = (ev["event_type"] == "click").to_numpy()
    ctr_top = click[in_top].sum() / view[in_top].sum()
    ctr_other = click[~in_top].sum() / view[~in_top].sum()
    return float(ctr_top), float(ctr_other), int(view[in_top].sum())


# ----------------------------------------------------------------------------- contract


def test_files_and_tables_follow_the_contract(small_world: World) -> None:
    root = small_world.dir
    for name in ("items.csv", "styles.csv", "events.parquet", "truth.npz", "truth.json"):
        assert (root / name).is_file(), name
    cfg = small_world.config
    items, styles, ev = small_world.items, small_world.styles, small_world.events

    assert list(items.columns) == ["item_id", "image_uri", "category", "attributes"]
    assert len(items) == cfg.n_items and items["item_id"].is_unique
    assert items["item_id"].str.fullmatch(r"i\d{4}").all()
    assert set(items["category"]) <= {"garment", "mug", "shoe", "bag"}
    assert len(set(items["category"])) >= 3  # a catalogue, not one kind of product
    for row in items.itertuples():
        attrs = json.loads(row.attributes)
        assert {"colour", "pattern", "price", "rgb", "mask_uri"} <= set(attrs)
        assert attrs["price"] > 0
        assert (root / row.image_uri).is_file() and (root / attrs["mask_uri"]).is_file()

    assert list(styles.columns) == ["style_id", "name", "image_uri", "tags"]
    assert len(styles) == cfg.n_styles and styles["name"].is_unique
    assert styles["style_id"].str.fullmatch(r"s\d{2}").all()
    assert all(len(t.split(";")) >= 3 for t in styles["tags"])
    assert all((root / u).is_file() for u in styles["image_uri"])

    assert list(ev.columns) == [
        "user_id", "item_id", "event_type", "timestamp", "style_id",
        "segment_id", "experiment", "variant", "price",
    ]  # fmt: skip
    assert ev["user_id"].str.fullmatch(r"u\d{5}").all()
    assert set(ev["item_id"]) <= set(items["item_id"])
    assert set(ev["style_id"].dropna()) <= set(styles["style_id"])
    assert set(ev["event_type"]) == {"view", "click", "add_to_cart", "purchase"}
    assert set(ev["variant"]) == {"control", "treatment"}
    assert ev["price"].gt(0).all()
    # Every event's price is the item's catalogue price.
    catalogue = {r.item_id: json.loads(r.attributes)["price"] for r in items.itertuples()}
    assert np.allclose(ev["price"], ev["item_id"].map(catalogue))


def test_timestamps_are_utc_increasing_and_in_the_past(small_world: World) -> None:
    ts = small_world.events["timestamp"]
    assert str(ts.dt.tz) == "UTC"
    assert ts.is_monotonic_increasing
    end = pd.Timestamp(small_world.config.end_date, tz="UTC")
    assert ts.max() < end
    assert ts.min() >= end - pd.Timedelta(days=small_world.config.days)
    assert end < pd.Timestamp.now(tz="UTC")


def test_funnel_follows_the_impression(small_world: World) -> None:
    ev = small_world.events.assign(style=small_world.events["style_id"].fillna("-"))
    counts = ev.groupby(["user_id", "item_id", "style", "event_type"]).size().unstack(fill_value=0)
    assert (counts["view"] >= counts["click"]).all()
    assert (counts["click"] >= counts["add_to_cart"]).all()
    assert (counts["add_to_cart"] >= counts["purchase"]).all()
    first = ev.groupby(["user_id", "item_id", "style", "event_type"])["timestamp"].min().unstack()
    clicked = first["click"].notna()
    assert (first.loc[clicked, "click"] > first.loc[clicked, "view"]).all()
    rates = ev["event_type"].value_counts(normalize=True)
    assert rates["view"] > rates["click"] > rates["add_to_cart"] > rates["purchase"] > 0


def test_arms_segments_and_holdout(small_world: World) -> None:
    ev = small_world.events
    control = ev["variant"] == "control"
    assert control.any() and (~control).any()
    assert ev.loc[control, "style_id"].isna().all(), "control arm must only see originals"
    assert ev.loc[control, "segment_id"].isna().all()
    assert ev.loc[~control, "segment_id"].notna().all()
    assert ev.loc[~control, "style_id"].notna().mean() > 0.5
    assert ev.groupby("user_id")["variant"].nunique().eq(1).all()  # one arm per user
    holdout = set(small_world.truth["holdout_style_ids"].tolist())
    assert len(holdout) == small_world.config.holdout_styles
    assert holdout.isdisjoint(set(ev["style_id"].dropna()))
    # Every shown style appears, so each can be learnt from the logs.
    shown = set(small_world.styles["style_id"]) - holdout
    assert set(ev["style_id"].dropna()) == shown


def test_event_volume_and_user_activity(small_world: World) -> None:
    ev = small_world.events
    target = small_world.config.target_events
    assert abs(len(ev) - target) < 0.05 * target
    per_user = ev.groupby("user_id").size()
    assert len(per_user) == small_world.config.n_users  # every user has at least one view
    assert (per_user >= 20).sum() >= 10, "need heavy users"
    assert (per_user <= 5).sum() >= 3, "need light users"


def test_truth_arrays(small_world: World) -> None:
    t, cfg = small_world.truth, small_world.config
    assert set(t) == set(TRUTH_KEYS)
    assert t["user_taste"].shape == (cfg.n_users, cfg.n_latent)
    assert t["style_latent"].shape == (cfg.n_styles, cfg.n_latent)
    assert t["item_latent"].shape == (cfg.n_items, cfg.n_latent)
    assert t["item_popularity"].shape == (cfg.n_items,)
    assert np.allclose(t["affinity"], t["user_taste"] @ t["style_latent"].T)
    assert t["style_codes"].shape == (cfg.n_styles, cfg.code_dim)
    assert t["item_codes"].shape == (cfg.n_items, cfg.code_dim)
    assert list(t["item_ids"]) == list(small_world.items["item_id"])
    assert list(t["style_ids"]) == list(small_world.styles["style_id"])
    assert set(small_world.events["user_id"]) == set(t["user_ids"].tolist())
    meta = json.loads((small_world.dir / "truth.json").read_text())
    assert WorldConfig.from_dict(meta["config"]) == cfg
    assert meta["click_model"]["alpha"] > 0


def test_proxy_codes_are_a_linear_map_of_the_latent(small_world: World) -> None:
    t = small_world.truth
    latent = np.vstack([t["style_latent"], t["item_latent"]])
    codes = np.vstack([t["style_codes"], t["item_codes"]]).astype(np.float64)
    coef, *_ = np.linalg.lstsq(latent, codes, rcond=None)
    resid = codes - latent @ coef
    assert np.linalg.norm(resid) / np.linalg.norm(codes) < 0.15
    iu = np.triu_indices(len(latent), 1)
    d_lat = np.linalg.norm(latent[:, None] - latent[None], axis=-1)[iu]
    d_code = np.linalg.norm(codes[:, None] - codes[None], axis=-1)[iu]
    assert spearmanr(d_lat, d_code).statistic > 0.9


# ----------------------------------------------------------------------------- planted truth in the logs


@pytest.fixture(scope="module")
def default_logs_world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """Default-size logs without images (the acceptance check at the real scale, ~1 s)."""
    return generate_world(tmp_path_factory.mktemp("default_logs"), WorldConfig(write_images=False))


@pytest.mark.parametrize("which", ["small", "default"])
def test_users_click_their_top_style_at_least_twice_as_often(
    which: str, small_world: World, default_logs_world: World
) -> None:
    world = small_world if which == "small" else default_logs_world
    ctr_top, ctr_other, n_top = _top_style_ctr(world)
    assert n_top > 500
    assert ctr_top >= 2.0 * ctr_other, (ctr_top, ctr_other)


def test_every_shopper_has_a_clear_top_three(default_logs_world: World) -> None:
    """The planted third-best shown style beats the fourth by ``taste_margin`` (the
    iterative separation converges from below: within 1 %)."""
    w = default_logs_world
    hold = np.isin(w.truth["style_ids"], w.truth["holdout_style_ids"])
    aff = np.sort(w.truth["affinity"][:, ~hold], axis=1)[:, ::-1]
    assert np.all(aff[:, 2] - aff[:, 3] >= 0.99 * w.config.taste_margin)


def test_exploration_cycles_through_the_shown_styles(default_logs_world: World) -> None:
    """A treatment shopper's first exploration views are distinct styles; regular shoppers
    make most of the log, so many shoppers have enough events to read their taste from."""
    ev = default_logs_world.events
    views = ev[(ev["event_type"] == "view") & ev["style_id"].notna()]
    seg = views.groupby("user_id")["style_id"].agg(lambda s: s.value_counts().idxmax())
    per_user = ev.groupby("user_id").size()
    assert (per_user >= 20).sum() > 600
    shown = views["style_id"].nunique()
    # Views of styles other than the shopper's segment style come from exploration.
    explore = views[views["style_id"].to_numpy() != seg.reindex(views["user_id"]).to_numpy()]
    distinct = explore.groupby("user_id")["style_id"].nunique()
    heavy = distinct[per_user.reindex(distinct.index) >= 100]
    assert len(heavy) > 100 and (heavy == shown - 1).mean() > 0.9


def test_logged_clicks_follow_the_click_model(default_logs_world: World) -> None:
    w = default_logs_world
    ev = w.events.assign(style=w.events["style_id"].fillna("-"))
    keys = ["user_id", "item_id", "style"]
    counts = ev.groupby(keys)["event_type"].value_counts().unstack(fill_value=0)
    u = counts.index.get_level_values("user_id").map(w.index("user")).to_numpy()
    i = counts.index.get_level_values("item_id").map(w.index("item")).to_numpy()
    s = counts.index.get_level_values("style").map(w.index("style")).fillna(-1).astype(int)
    p = w.click_probability(u, i, s.to_numpy())  # the same for every view of one key
    views, clicks = counts["view"].to_numpy(), counts["click"].to_numpy()
    expected = np.sum(views * p)
    # The total is a sum of Bernoullis: within 4 standard deviations of its mean.
    assert abs(clicks.sum() - expected) < 4 * np.sqrt(np.sum(views * p * (1 - p)))
    # Calibration by decile of planted probability: empirical CTR tracks it.
    bins = pd.qcut(p, 10, labels=False, duplicates="drop")
    pred = np.array([np.sum((views * p)[bins == b]) / views[bins == b].sum() for b in range(10)])
    got = np.array([clicks[bins == b].sum() / views[bins == b].sum() for b in range(10)])
    assert np.all(np.diff(got) > -0.01)
    assert np.abs(pred - got).max() < 0.02


def test_click_probability_is_vectorised_and_matches_the_formula(small_world: World) -> None:
    w, t, m = small_world, small_world.truth, small_world.click_model
    users = np.array([0, 5, 9])
    items = np.array([[1], [2]])
    p = w.click_probability(users, items, -1)
    assert p.shape == (2, 3)
    u, i = 5, 2
    taste = t["user_taste"][u] @ t["item_latent"][i]
    base = m.b0 + t["item_popularity"][i] + m.beta * taste
    assert np.isclose(p[1, 1], 1 / (1 + np.exp(-base)))
    s = int(w.top_styles(1)[u, 0])
    styled = w.click_probability(u, i, s)
    assert np.isclose(styled, 1 / (1 + np.exp(-(base + m.alpha * t["affinity"][u, s]))))
    assert styled > p[1, 1]  # a user's top style has positive affinity
    pc, pcart, pbuy = w.funnel_probabilities(users, 1, 3)
    assert pc.shape == pcart.shape == pbuy.shape == (3,)
    assert np.all((pcart > 0) & (pcart < 1) & (pbuy > 0) & (pbuy < 1))
    with pytest.raises(ValueError, match="style index"):
        w.click_probability(0, 0, w.config.n_styles)


# ----------------------------------------------------------------------------- images


def test_product_photos_and_masks(small_world: World) -> None:
    size = small_world.config.image_size
    separations = []
    for row in small_world.items.itertuples():
        attrs = json.loads(row.attributes)
        img = _read_rgb(small_world.dir / row.image_uri)
        mask = cv2.imread(str(small_world.dir / attrs["mask_uri"]), cv2.IMREAD_GRAYSCALE)
        assert img.shape == (size, size, 3) and mask.shape == (size, size)
        assert set(np.unique(mask)) == {0, 255}
        area = (mask > 0).mean()
        assert 0.08 < area < 0.6, f"{row.item_id}: product covers {area:.2f} of the frame"
        border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
        assert border.min() > 190, f"{row.item_id}: background is not light"
        inner = cv2.erode(mask, np.ones((5, 5), np.uint8)) > 0
        outer = cv2.dilate(mask, np.ones((9, 9), np.uint8)) == 0
        lab = rgb2lab(img)
        bg = lab[outer].mean(axis=0)
        separations.append(np.median(deltaE_ciede2000(lab[inner], bg[None, :])))
        if attrs["pattern"] == "solid":
            # The dominant product colour is the catalogue colour (up to the gentle lighting).
            ref = rgb2lab(np.uint8([[attrs["rgb"]]]))[0, 0]
            d = deltaE_ciede2000(lab[inner], ref[None, :])
            assert np.median(d) < 8, f"{row.item_id}: colour drifted by {np.median(d):.1f}"
    assert min(separations) > 10, "every product must stand out from its background"


def test_style_images_are_distinct(small_world: World) -> None:
    assert len(STYLE_KINDS) >= 12
    thumbs = []
    for uri in small_world.styles["image_uri"]:
        img = _read_rgb(small_world.dir / uri)
        assert img.shape == (small_world.config.image_size,) * 2 + (3,)
        assert img.std() > 10, f"{uri} is nearly flat"
        # Colour statistics + texture energy: a crude but honest "looks different" signature.
        small = cv2.resize(img, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float64)
        grad = np.abs(np.diff(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(float), axis=1))
        thumbs.append(np.concatenate([small.ravel() / 255, [grad.mean() / 10]]))
    thumbs = np.array(thumbs)
    dist = np.linalg.norm(thumbs[:, None] - thumbs[None], axis=-1) / np.sqrt(thumbs.shape[1])
    np.fill_diagonal(dist, np.inf)
    assert dist.min() > 0.05, "two style images look the same"


def test_style_palette_follows_the_latent() -> None:
    rng_lat = np.random.default_rng(3)
    closer = 0
    for index in range(12):
        lat = rng_lat.normal(size=6)

        def render(latent: np.ndarray, k: int = index) -> np.ndarray:
            return draw_style(k, latent, 64, np.random.default_rng(0)).astype(float)

        base = render(lat)
        near = render(lat + 0.05 * rng_lat.normal(size=6))
        far = render(-lat)
        closer += np.abs(base - near).mean() < np.abs(base - far).mean()
    assert closer >= 11


# ----------------------------------------------------------------------------- reproducibility


def test_same_seed_same_files_different_seed_different(tmp_path: Path) -> None:
    a = _tree_digest(generate_world(tmp_path / "a", WorldConfig(seed=11, **TINY)).dir)
    b = _tree_digest(generate_world(tmp_path / "b", WorldConfig(seed=11, **TINY)).dir)
    c = _tree_digest(generate_world(tmp_path / "c", WorldConfig(seed=12, **TINY)).dir)
    from demo.materials import MATERIALS

    # + library.csv and one image per backdrop material (the demo's style library)
    assert len(a) == 5 + 2 * TINY["n_items"] + TINY["n_styles"] + 1 + len(MATERIALS)
    assert a == b
    assert a.keys() == c.keys()
    for name in ("events.parquet", "truth.npz", "images/i0000.png", "styles/s00.png"):
        assert a[name] != c[name], f"{name} did not change with the seed"


# ----------------------------------------------------------------------------- loading and errors


def test_load_round_trip_and_clear_errors(small_world: World, tmp_path: Path) -> None:
    again = World.load(small_world.dir)
    pd.testing.assert_frame_equal(again.events, small_world.events)
    assert again.config == small_world.config

    with pytest.raises(FileNotFoundError, match="does not exist"):
        World.load(tmp_path / "nowhere")
    copy = tmp_path / "copy"
    shutil.copytree(small_world.dir, copy)
    (copy / "images" / "i0003.png").unlink()
    with pytest.raises(FileNotFoundError, match="i0003.png"):
        World.load(copy)
    (copy / "events.parquet").unlink()
    with pytest.raises(FileNotFoundError, match="events.parquet"):
        World.load(copy)


def test_interrupted_generation_does_not_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generate_world(tmp_path, WorldConfig(seed=2, **TINY))

    def broken(*args: object, **kwargs: object) -> np.ndarray:
        raise OSError("disk full")

    monkeypatch.setattr("demo.world.draw_style", broken)
    with pytest.raises(OSError, match="disk full"):
        generate_world(tmp_path, WorldConfig(seed=3, **TINY))
    # The old world's files are partly overwritten: loading must refuse, not mix worlds.
    with pytest.raises(FileNotFoundError, match="truth.json"):
        World.load(tmp_path)


def test_world_without_images(tmp_path: Path) -> None:
    w = generate_world(tmp_path, WorldConfig(seed=1, write_images=False, **TINY))
    assert not (tmp_path / "images").exists() and not (tmp_path / "styles").exists()
    assert len(w.events) > 0 and len(w.items) == TINY["n_items"]


@pytest.mark.parametrize(
    "bad",
    [
        {"n_users": 0},
        {"holdout_styles": 12},
        {"original_share": 0.8, "exploration_share": 0.3},
        {"control_share": 1.5},
        {"image_size": 8},
        {"target_events": 10},
        {"end_date": "not a date"},
        {"regular_share": -0.1},
        {"regular_boost": 0.5},
        {"activity_sigma": -1.0},
        {"taste_margin": float("nan")},
    ],
)
def test_config_rejects_bad_values(bad: dict) -> None:
    with pytest.raises(ValueError, match=f"WorldConfig.{next(iter(bad))}"):
        WorldConfig(**bad)


def test_cli_generate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "w"
    status = cli_main(
        ["generate", "--out", str(out), "--seed", "4", "--users", "80", "--items", "5",
         "--styles", "12", "--no-images"]
    )  # fmt: skip
    assert status == 0
    text = capsys.readouterr().out
    assert str(out.resolve()) in text
    n_events = int(re.search(r"events=(\d+)", text).group(1))
    world = World.load(out)
    assert n_events == len(world.events)
    assert world.config.seed == 4 and len(world.items) == 5
    assert cli_main(["generate", "--out", str(out), "--users", "10", "--events", "3"]) == 2
    assert "target_events" in capsys.readouterr().err


@pytest.mark.slow
def test_default_world_generates_in_under_30_seconds(tmp_path: Path) -> None:
    t0 = time.perf_counter()
    world = generate_world(tmp_path, WorldConfig())
    elapsed = time.perf_counter() - t0
    assert len(list((tmp_path / "images").glob("*.png"))) == 200
    assert 90_000 < len(world.events) < 110_000
    assert elapsed < 30, f"default world took {elapsed:.1f} s"
