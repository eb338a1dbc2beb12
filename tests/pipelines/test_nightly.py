"""The nightly job end to end on a small generated world, on SQLite and PostgreSQL.

Covers: every stage runs and is recorded; the report has every section with
figures that exist and decode; a second night on unchanged inputs renders
nothing; 10 new catalog items render exactly 10 x K images; a run killed with
SIGKILL during rendering resumes without duplicate or partial files, and the
served run does not change until the new one is published.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from nightly_report import check_report
from PIL import Image

from data.store import Store
from pipelines.cache import PARTIAL_MARK
from pipelines.config import load_config, write_config
from pipelines.context import STAGES
from pipelines.runner import run_nightly
from stylizer.image_io import load_image, load_mask
from stylizer.metrics import product_delta_e

K = 3
N_ITEMS = 40  # the small_world fixture's catalog size
MAX_SIDE = 96


def _config(world: Path, db_url: str, k: int = K) -> Path:
    cfg = {
        "inputs": {"events": ["events.parquet"], "catalog": "items.csv", "styles": "styles.csv",
                   "image_root": "."},
        "model": {"factors": 16, "epochs": 4, "holdout_last": 2},
        "segments": {"k": k, "n_blend": 2},
        "render": {"mode": "background", "max_side": MAX_SIDE, "format": "png"},
        "outputs": {"store_url": db_url, "render_dir": "renders", "work_dir": "work",
                    "report_dir": "report"},
    }
    path = world / "stylerec.toml"
    write_config(cfg, path)
    return path


@pytest.fixture
def world(small_world, tmp_path: Path) -> Path:
    """A private copy of the small world (tests add items to its catalog)."""
    dest = tmp_path / "world"
    shutil.copytree(small_world.dir, dest)
    return dest


def _render_files(world: Path) -> list[Path]:
    return sorted(p for p in (world / "renders").rglob("*") if p.is_file())


def _add_items(world: Path, n: int) -> None:
    """Append ``n`` new products (mirrored copies of existing photos) to the catalog."""
    items = pd.read_csv(world / "items.csv", dtype=str)
    new = []
    for i, row in enumerate(items.head(n).itertuples(index=False)):
        src = Image.open(world / row.image_uri)
        uri = f"images/new_{i:03d}.png"
        src.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(world / uri)
        new.append({**row._asdict(), "item_id": f"new{i:03d}", "image_uri": uri})
    pd.concat([items, pd.DataFrame(new)]).to_csv(world / "items.csv", index=False)


def test_nightly_end_to_end(world: Path, db_url: str) -> None:
    cfg = load_config(_config(world, db_url))
    first = run_nightly(cfg)
    assert first.ran == list(STAGES)
    n_first = len(_render_files(world))
    assert first.metrics["render"]["rendered"] == N_ITEMS * K == n_first
    assert first.report_path is not None
    check_report(first.report_path, first.metrics, K, first.metrics["train"]["users"])
    with Store(db_url) as store:
        assert store.current_run_id() == first.run_id
        run = store.get_run(first.run_id)
        assert all(s["status"] == "done" for s in run["stages"].values())
        assert len(store.renders_for_run(first.run_id)) == N_ITEMS * K
        assert store.read_user_segments(first.run_id)["segment_id"].nunique() == K
    holdout = first.metrics["train"]["holdout"]["models"]
    assert {"stylerec", "popularity", "als"} <= set(holdout)
    _check_products_kept(world, db_url, first.run_id)

    second = run_nightly(cfg)
    assert second.run_id != first.run_id
    assert second.metrics["render"]["rendered"] == 0
    assert second.metrics["render"]["reused"] == N_ITEMS * K
    assert len(_render_files(world)) == n_first
    # The costly stages are skipped, not redone: the second night is cheap.
    assert second.seconds < 0.2 * first.seconds + 2.0
    assert second.metrics["train"]["reused_from"] == first.run_id
    assert second.metrics["embed"]["items"]["computed"] == 0
    check_report(second.report_path, second.metrics, K, second.metrics["train"]["users"])

    _add_items(world, 10)
    third = run_nightly(cfg)
    assert third.metrics["render"]["rendered"] == 10 * K
    assert third.metrics["render"]["reused"] == N_ITEMS * K
    assert third.metrics["embed"]["items"]["computed"] == 10
    assert len(_render_files(world)) == n_first + 10 * K
    check_report(third.report_path, third.metrics, K, third.metrics["train"]["users"])
    with Store(db_url) as store:
        assert store.current_run_id() == third.run_id


def _check_products_kept(world: Path, db_url: str, run_id: str) -> None:
    """Every render keeps its product: mean CIEDE2000 inside the world's *exact* product
    mask (not the estimated one the renderer used) within the just-noticeable 2.3."""
    with Store(db_url) as store:
        renders = store.renders_for_run(run_id)
    items = pd.read_csv(world / "items.csv", dtype=str).set_index("item_id")
    worst = 0.0
    for row in renders.itertuples(index=False):
        item = items.loc[row.item_id]
        original = load_image(world / item.image_uri, max_side=MAX_SIDE).rgb
        mask = load_mask(world / json.loads(item.attributes)["mask_uri"], shape=original.shape[:2])
        rendered = np.asarray(Image.open(world / "renders" / row.uri).convert("RGB"))
        worst = max(worst, product_delta_e(original, rendered, mask))
        # The scene did take the style: a render, not a copy.
        assert np.abs(rendered.astype(int) - original.astype(int)).mean() > 3, row.item_id
    assert worst <= 2.3, f"product delta E {worst:.2f} inside the exact mask"


def _wait_for(predicate, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _keys(files: list[Path]) -> set[str]:
    return {p.stem for p in files if not p.name.startswith(PARTIAL_MARK)}


def test_sigkill_during_render_resumes_cleanly(world: Path, db_url: str) -> None:
    cfg_path = _config(world, db_url)
    served = run_nightly(load_config(cfg_path)).run_id
    before = _keys(_render_files(world))
    # A new K changes the conditions: the next night has new renders for every item.
    cfg_path = _config(world, db_url, k=K + 1)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipelines", "nightly", "--config", str(cfg_path)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        started = _wait_for(lambda: len(_keys(_render_files(world)) - before) >= 3, timeout=240)
        assert started, "the render stage never started writing files"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    at_kill = _keys(_render_files(world))
    with Store(db_url) as store:
        assert store.current_run_id() == served, "a killed run must not be served"
        killed = store.latest_unfinished_run()
        assert killed is not None
        # Killed inside the render stage: it had started and not finished.
        assert killed["stages"]["segment"]["status"] == "done"
        assert killed["stages"]["render"]["status"] == "running"
        assert killed["stages"]["publish"]["status"] == "pending"

    # Resume up to the end of rendering: everything is rendered, the old run still served.
    cfg = load_config(cfg_path)
    rendered = run_nightly(cfg, stop_after="render")
    assert rendered.run_id == killed["run_id"]
    assert rendered.skipped == ["ingest", "embed", "train", "index", "segment"]
    assert rendered.ran == ["render"]
    with Store(db_url) as store:
        assert store.current_run_id() == served, "served run changed before publish"
        run = store.get_run(rendered.run_id)
        assert run["stages"]["render"]["status"] == "done"
        assert run["stages"]["publish"]["status"] == "pending"

    resumed = run_nightly(cfg)
    assert resumed.run_id == killed["run_id"]
    assert resumed.ran == ["publish", "report"]
    files = _render_files(world)
    assert not [p for p in files if p.name.startswith(PARTIAL_MARK)], "partial file left"
    for p in files:
        Image.open(p).load()  # every file decodes: nothing partial
    with Store(db_url) as store:
        assert store.current_run_id() == resumed.run_id
        renders = store.renders_for_run(resumed.run_id)
    assert len(renders) == N_ITEMS * (K + 1)
    assert renders["key"].is_unique
    # Files are named by content (items sharing an image share one); rows by item.
    needed = {Path(u).stem for u in renders["uri"]}
    on_disk = _keys(files)
    assert needed <= on_disk
    # No stray files: everything on disk is a render of the first run or of this one.
    assert on_disk == before | needed
    # Each render was made exactly once: what the killed process finished was kept, and
    # the resumed stage rendered only the rest.
    new_before_kill = at_kill - before
    assert new_before_kill <= needed
    assert rendered.metrics["render"]["rendered"] == len(needed - at_kill)
    assert len(new_before_kill) + rendered.metrics["render"]["rendered"] == len(needed - before)
    assert rendered.metrics["render"]["rendered"] < N_ITEMS * (K + 1)
    check_report(resumed.report_path, resumed.metrics, K + 1, resumed.metrics["train"]["users"])

    # Rollback: the old run can be served again, then forward again.
    from pipelines.cli import main

    assert main(["publish", "--config", str(cfg_path), "--run", served]) == 0
    with Store(db_url) as store:
        assert store.current_run_id() == served
    assert main(["publish", "--config", str(cfg_path), "--run", resumed.run_id]) == 0

    # gc keeping only the newest run deletes the first run's renders that the kept run
    # does not share, and nothing the kept run references.
    assert main(["gc", "--config", str(cfg_path), "--keep-runs", "1"]) == 0
    left = _keys(_render_files(world))
    assert left == needed
    with Store(db_url) as store:
        assert store.unreferenced_renders(1) == []
        assert len(store.renders_for_run(resumed.run_id)) == N_ITEMS * (K + 1)
