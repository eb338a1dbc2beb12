"""The nightly job against hostile input: paths that escape, image bombs, corrupt files.

Issue 5, item 7: image URIs cannot escape their configured root (no ``..``, no
absolute paths, no symlink escapes), sizes and pixel counts are bounded, and
bad rows go to quarantine with a reason naming them while the night proceeds.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from data.store import Store
from pipelines.config import load_config, write_config
from pipelines.runner import run_nightly

K = 2
N_ITEMS = 40


@pytest.fixture
def hostile_world(small_world, tmp_path: Path) -> tuple[Path, Path]:
    """The small world plus catalogue and style rows that point outside it or at bad images."""
    world = tmp_path / "world"
    shutil.copytree(small_world.dir, world)
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.png"
    Image.new("RGB", (64, 64), (255, 0, 0)).save(secret)
    os.symlink(secret, world / "images" / "link.png")
    os.symlink(outside, world / "images" / "linkdir")
    # Declares 10,000 x 10,000 pixels (2x the limit) in a file of a few kB.
    Image.new("1", (10_000, 10_000)).save(world / "images" / "bomb.png")
    (world / "images" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 40)

    items = pd.read_csv(world / "items.csv", dtype=str)
    template = items.iloc[0].to_dict()
    hostile = {
        "evil_dotdot": "../outside/secret.png",
        "evil_abs": str(secret),
        "evil_link": "images/link.png",
        "evil_linkdir": "images/linkdir/secret.png",
        "bomb": "images/bomb.png",
        "corrupt": "images/corrupt.png",
    }
    rows = [{**template, "item_id": k, "image_uri": v} for k, v in hostile.items()]
    pd.concat([items, pd.DataFrame(rows)]).to_csv(world / "items.csv", index=False)
    styles = pd.read_csv(world / "styles.csv", dtype=str)
    evil_style = {**styles.iloc[0].to_dict(), "style_id": "evil_style",
                  "image_uri": "styles/../../outside/secret.png"}
    pd.concat([styles, pd.DataFrame([evil_style])]).to_csv(world / "styles.csv", index=False)
    return world, outside


def test_hostile_catalog_rows_are_quarantined_and_the_night_proceeds(
    hostile_world: tuple[Path, Path],
) -> None:
    world, outside = hostile_world
    db_url = f"sqlite:///{world / 'store.db'}"
    cfg = {
        "inputs": {"events": ["events.parquet"], "catalog": "items.csv", "styles": "styles.csv",
                   "image_root": "."},
        "model": {"factors": 8, "epochs": 2, "baselines": False},
        "segments": {"k": K, "n_blend": 2},
        "render": {"mode": "background", "max_side": 64, "format": "png"},
        "outputs": {"store_url": db_url},
    }
    write_config(cfg, world / "stylerec.toml")
    outside_before = sorted(p.name for p in outside.iterdir())
    summary = run_nightly(load_config(world / "stylerec.toml"))

    with Store(db_url) as store:
        assert store.current_run_id() == summary.run_id
        q = store.read_quarantine(summary.run_id)
        items = set(store.get_items()["item_id"])
        styles = set(store.get_styles()["style_id"])
        renders = store.renders_for_run(summary.run_id)
    by_id = {rec.get("item_id", rec.get("style_id")): (reason, rec)
             for reason, rec in zip(q["reason"], q["record"], strict=True)}
    for item_id in ("evil_dotdot", "evil_abs", "evil_link", "evil_linkdir", "evil_style"):
        reason, rec = by_id[item_id]
        assert reason == "unsafe_path", item_id
        assert rec["image_uri"] in rec["detail"]  # the reason names the offending URI
    assert "absolute" in by_id["evil_abs"][1]["detail"]
    assert "'..'" in by_id["evil_dotdot"][1]["detail"]
    assert "outside the root" in by_id["evil_link"][1]["detail"]
    assert "outside the root" in by_id["evil_linkdir"][1]["detail"]
    assert by_id["bomb"][0] == "bad_image"
    assert "decompression bomb" in by_id["bomb"][1]["detail"]
    assert by_id["corrupt"][0] == "bad_image"
    assert "corrupt.png" in by_id["corrupt"][1]["detail"]

    # Unsafe rows never reach the store; unreadable images are kept out of rendering.
    assert not items & {"evil_dotdot", "evil_abs", "evil_link", "evil_linkdir"}
    assert "evil_style" not in styles
    assert set(renders["item_id"]) == set(pd.read_csv(world / "items.csv", dtype=str)
                                          ["item_id"].head(N_ITEMS))
    assert len(renders) == N_ITEMS * K
    assert summary.metrics["embed"]["items"]["bad"] == 2
    # Nothing was written outside the world.
    assert sorted(p.name for p in outside.iterdir()) == outside_before
    assert not list(outside.rglob("*.png"))[1:]

    # The report counts both reasons.
    html = summary.report_path.read_text(encoding="utf-8")
    assert "<td>unsafe_path</td><td>5</td>" in html
    assert "<td>bad_image</td><td>2</td>" in html
