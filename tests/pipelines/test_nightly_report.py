"""The report's building blocks: the shopper/style map, label placement, safe names."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data.paths import UnsafePathError
from pipelines.context import check_run_id, run_folder
from pipelines.report import (
    Section,
    spread_labels,
    style_biplot,
    style_map_layout,
    write_html,
)
from pipelines.stages.report import figure_name


def _taste_world(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three groups of shoppers, each fond of two of six styles; all styles share a big
    common direction (as learned style embeddings do), which used to knot them together."""
    rng = np.random.default_rng(seed)
    d = 8
    basis = np.linalg.qr(rng.normal(size=(d, d)))[0]
    common, tastes = basis[:, 0], basis[:, 1:4].T
    groups = np.repeat(np.arange(3), 200)
    users = tastes[groups] + 0.3 * rng.normal(size=(len(groups), d)) + 0.5 * common
    users *= rng.uniform(0.2, 5.0, size=(len(groups), 1))  # activity must not matter
    styles = np.stack([6.0 * common + tastes[s // 2] + 0.2 * rng.normal(size=d)
                       for s in range(6)])
    return users, styles, groups


def test_map_points_each_style_at_its_fans_and_spreads_the_styles() -> None:
    users, styles, groups = _taste_world()
    layout = style_map_layout(users, styles)
    assert layout.users_2d.shape == (600, 2) and layout.styles_2d.shape == (6, 2)
    assert 0.5 < layout.explained.sum() <= 1.0 + 1e-9
    reach = np.percentile(np.linalg.norm(layout.users_2d, axis=1), 95)
    lengths = np.linalg.norm(layout.styles_2d, axis=1)
    assert lengths.max() == pytest.approx(reach)
    for g in range(3):
        centre = layout.users_2d[groups == g].mean(axis=0)
        for s in (2 * g, 2 * g + 1):
            tip = layout.styles_2d[s]
            cos = centre @ tip / (np.linalg.norm(centre) * np.linalg.norm(tip))
            assert cos > 0.9, (g, s, cos)
    # The styles are not one knot: the three pairs point three different ways, each arrow
    # reaching well into the shoppers' cloud.
    assert lengths.min() > 0.5 * reach
    pair_tips = [layout.styles_2d[[2 * g, 2 * g + 1]].mean(axis=0) for g in range(3)]
    assert min(np.linalg.norm(a - b) for a, b in combinations(pair_tips, 2)) > reach


def test_map_is_reproducible_and_handles_degenerate_input() -> None:
    users, styles, _ = _taste_world()
    a, b = style_map_layout(users, styles), style_map_layout(users.copy(), styles.copy())
    assert np.array_equal(a.styles_2d, b.styles_2d)
    one = style_map_layout(users, styles[:1])  # one style: nothing to contrast
    assert np.all(one.styles_2d == 0) and np.all(np.isfinite(one.users_2d))
    with pytest.raises(ValueError, match="same width"):
        style_map_layout(users, styles[:, :3])


def test_map_figure_is_drawn(tmp_path: Path) -> None:
    users, styles, groups = _taste_world()
    path = style_biplot(tmp_path / "map.png", style_map_layout(users, styles), groups,
                        ["seg-00", "seg-01", "seg-02"], [f"style {i}" for i in range(6)], "map")
    with Image.open(path) as img:
        assert img.width >= 600 and np.asarray(img.convert("L")).std() > 10


def test_spread_labels_removes_every_overlap() -> None:
    centres = np.zeros((8, 2)) + np.array([[0.01 * i, 0.0] for i in range(8)])
    sizes = np.tile([[1.0, 0.3]], (8, 1))
    placed = spread_labels(centres, sizes)
    for i, j in combinations(range(8), 2):
        gap = np.abs(placed[i] - placed[j]) - (sizes[i] + sizes[j]) / 2
        assert (gap >= -1e-6).any(), (i, j)
    apart = np.array([[0.0, 0.0], [5.0, 5.0]])
    assert np.array_equal(spread_labels(apart, np.ones((2, 2))), apart)


@pytest.mark.parametrize("bad", ["../x", "a/b", "", ".hidden", "x\x00y", "/abs", "a" * 200])
def test_ids_from_data_cannot_become_paths(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError):
        check_run_id(bad)
    with pytest.raises(ValueError):
        run_folder(tmp_path, bad)
    with pytest.raises(ValueError):
        figure_name("sheet", bad)


def test_run_folder_refuses_a_symlink_out_of_the_work_dir(tmp_path: Path) -> None:
    work = tmp_path / "work"
    (work / "runs").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (work / "runs" / "20260101T000000-abcdef").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UnsafePathError, match="outside the root"):
        run_folder(work, "20260101T000000-abcdef")
    assert run_folder(work, "20260102T000000-abcdef") == (work / "runs").resolve() / (
        "20260102T000000-abcdef")
    assert figure_name("sheet", "seg-03") == "sheet_seg-03.png"


def test_write_html_refuses_missing_figures_and_escapes_text(tmp_path: Path) -> None:
    sec = Section("s", "<b>title</b>", paragraphs=["a < b"], figures=[("nope.png", "x")])
    with pytest.raises(FileNotFoundError, match="nope.png"):
        write_html(tmp_path, "t", [sec])
    sec.figures = []
    html = write_html(tmp_path, "t", [sec]).read_text()
    assert "&lt;b&gt;title&lt;/b&gt;" in html and "a &lt; b" in html


def test_report_pictures_honour_the_umask(tmp_path: Path) -> None:
    """Contact sheets go through stylizer's atomic save_image: once it wrote 0600 files
    (mkstemp), which a web server serving the report could not read."""
    import os

    from stylizer.sheet import contact_sheet

    cells = [[np.full((20, 20, 3), 90, np.uint8)] * 3]
    for umask, expected in ((0o022, 0o644), (0o027, 0o640)):
        old = os.umask(umask)
        try:
            path = contact_sheet(cells, tmp_path / f"sheet_{umask:o}.png", thumb=32)
        finally:
            os.umask(old)
        assert path.stat().st_mode & 0o777 == expected
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]


def test_shoppers_without_signal_are_not_counted_as_a_style() -> None:
    """An all-zero (or NaN) preference vector has no favourite: `argmax` of it used to
    name style 0, so every shopper without history counted as a fan of the first style."""
    from pipelines.report import has_signal, predicted_favourites

    styles = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    users = np.array([[0.0, 0.0], [0.0, 0.0], [0.1, 2.0], [3.0, 0.1], [np.nan, 1.0],
                      [0.0, 5.0]])
    assert has_signal(users).tolist() == [False, False, True, True, False, True]
    counts, no_signal = predicted_favourites(users, styles)
    assert counts.tolist() == [1, 2, 0] and no_signal == 3
    assert counts.sum() + no_signal == len(users)
    counts, no_signal = predicted_favourites(np.zeros((4, 2)), styles)
    assert counts.tolist() == [0, 0, 0] and no_signal == 4


def test_holdout_paragraph_tells_the_ceiling_from_popularity() -> None:
    from pipelines.stages.report import ceiling_paragraph

    models = {"stylerec": {"ndcg@10": 0.0346}, "popularity": {"ndcg@10": 0.0350}}
    planted = {"personal": 0.0363, "personal_low": 0.0330, "personal_high": 0.0396,
               "population": 0.0357, "population_low": 0.0324, "population_high": 0.0390}
    at = ceiling_paragraph({"models": models, "planted": planted})
    assert "0.0363" in at and "0.0357" in at and "0.0346" in at and "0.0350" in at
    assert "at the attainable level" in at and "not measurably better" in at
    below = ceiling_paragraph({"models": {**models, "stylerec": {"ndcg@10": 0.0200}},
                               "planted": {**planted, "population": 0.0250,
                                           "population_low": 0.022, "population_high": 0.028}})
    assert "below the attainable level by 45%" in below and "+45.2%" in below
    unknown = ceiling_paragraph({"models": models})
    assert unknown.startswith("Attainable NDCG@10: unknown")


def test_planted_ceiling_on_a_generated_world(tmp_path: Path) -> None:
    """The planted ranking, on the same split as the model table, sits at or above about
    what popularity gets; a log with items the world lacks has no ceiling."""
    import pandas as pd

    from demo import WorldConfig, generate_world
    from pipelines.ceiling import find_world, planted_ceiling
    from recsys.holdout import run_holdout

    world = generate_world(tmp_path / "w", WorldConfig(n_users=400, n_items=40, seed=3,
                                                       target_events=20_000,
                                                       write_images=False))
    assert find_world([tmp_path, world.dir]) == world.dir
    ceiling = planted_ceiling(world, world.events, "last:2")
    assert ceiling is not None
    assert ceiling["personal_low"] <= ceiling["personal"] <= ceiling["personal_high"]
    pop = run_holdout(world.events, "last:2", models=["popularity"],
                      n_bootstrap=10).models["popularity"]["ndcg@10"]
    # Knowing the click model ranks about as well as the observed popularity, or better
    # (this world is popularity-led); far from it would mean a wrong split or wrong ids.
    assert 0.8 * pop <= ceiling["personal"] <= 1.0
    assert 0.8 * pop <= ceiling["population"] <= 1.0
    stranger = pd.concat([world.events, world.events.head(3).assign(item_id="i-unknown")])
    assert planted_ceiling(world, stranger, "last:2") is None
