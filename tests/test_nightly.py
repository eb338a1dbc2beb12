"""The nightly job end to end on a small generated world, on SQLite and PostgreSQL.

Covers: every stage runs and is recorded; the report has every section with
figures that exist and decode; a second night on unchanged inputs renders
nothing; 10 new catalog items render exactly 10 x K images; a run killed with
SIGKILL during rendering resumes without duplicate or partial files, and the
served run does not change until the new one is published.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from data.store import Store
from pipelines.cache import PARTIAL_MARK
from pipelines.config import load_config, write_config
from pipelines.runner import STAGES, run_nightly

K = 3
N_ITEMS = 40  # the small_world fixture's catalog size

SECTIONS = ("data-quality", "model", "segments", "map", "renders", "timings")


def _config(world: Path, db_url: str, k: int = K) -> Path:
    cfg = {
        "inputs": {"events": ["events.parquet"], "catalog": "items.csv", "styles": "styles.csv",
                   "image_root": "."},
        "model": {"factors": 16, "epochs": 4, "holdout_last": 2},
        "segments": {"k": k, "n_blend": 2},
        "render": {"mode": "background", "max_side": 96, "format": "png"},
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


class _Report(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section" and a.get("id"):
            self.sections.append(str(a["id"]))
        if tag == "img":
            self.images.append(str(a["src"]))


def _check_report(path: Path) -> _Report:
    parser = _Report()
    parser.feed(path.read_text(encoding="utf-8"))
    for sec in SECTIONS:
        assert sec in parser.sections, f"report lacks section {sec}"
    assert sum(s.startswith("segment-") for s in parser.sections) == K
    for src in parser.images:
        img = Image.open(path.parent / src)
        img.load()
        assert img.width > 50 and img.height > 50
        # A real figure, not a blank canvas.
        assert np.asarray(img.convert("L")).std() > 5, src
    assert len(parser.images) >= K + 4
    return parser


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
    _check_report(first.report_path)
    with Store(db_url) as store:
        assert store.current_run_id() == first.run_id
        run = store.get_run(first.run_id)
        assert all(s["status"] == "done" for s in run["stages"].values())
        assert len(store.renders_for_run(first.run_id)) == N_ITEMS * K
        assert store.read_user_segments(first.run_id)["segment_id"].nunique() == K
    holdout = first.metrics["train"]["holdout"]["models"]
    assert {"stylerec", "popularity", "als"} <= set(holdout)

    second = run_nightly(cfg)
    assert second.run_id != first.run_id
    assert second.metrics["render"]["rendered"] == 0
    assert second.metrics["render"]["reused"] == N_ITEMS * K
    assert len(_render_files(world)) == n_first
    # The costly stages are skipped, not redone: the second night is cheap.
    assert second.seconds < 0.2 * first.seconds + 2.0

    _add_items(world, 10)
    third = run_nightly(cfg)
    assert third.metrics["render"]["rendered"] == 10 * K
    assert len(_render_files(world)) == n_first + 10 * K
    with Store(db_url) as store:
        assert store.current_run_id() == third.run_id


def _wait_for(predicate, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_sigkill_during_render_resumes_cleanly(world: Path, tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'kill.db'}"
    cfg_path = _config(world, db_url)
    served = run_nightly(load_config(cfg_path)).run_id
    n_before = len(_render_files(world))
    # A new K changes every condition: the next night has K+1 new renders per item.
    cfg_path = _config(world, db_url, k=K + 1)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipelines", "nightly", "--config", str(cfg_path)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        started = _wait_for(lambda: len(_render_files(world)) >= n_before + 3, timeout=240)
        assert started, "the render stage never started writing files"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    with Store(db_url) as store:
        assert store.current_run_id() == served, "a killed run must not be served"
        killed = store.latest_unfinished_run()
        assert killed is not None
        assert killed["stages"]["render"]["status"] == "running"

    resumed = run_nightly(load_config(cfg_path))
    assert resumed.run_id == killed["run_id"]
    assert resumed.skipped[:5] == ["ingest", "embed", "train", "index", "segment"]
    files = _render_files(world)
    assert not [p for p in files if p.name.startswith(PARTIAL_MARK)]
    names = [p.name for p in files]
    assert len(names) == len(set(names))
    for p in files:
        Image.open(p).load()  # every file decodes: nothing partial
    with Store(db_url) as store:
        assert store.current_run_id() == resumed.run_id
        renders = store.renders_for_run(resumed.run_id)
    assert len(renders) == N_ITEMS * (K + 1)
    on_disk = {p.stem for p in files}
    assert set(renders["key"]) <= on_disk
    # Renders done before the kill were not redone after it.
    assert resumed.metrics["render"]["rendered"] < N_ITEMS * (K + 1)

    # Rollback: the old run can be served again, then forward again.
    from pipelines.cli import main

    assert main(["publish", "--config", str(cfg_path), "--run", served]) == 0
    with Store(db_url) as store:
        assert store.current_run_id() == served
    assert main(["publish", "--config", str(cfg_path), "--run", resumed.run_id]) == 0

    # gc keeping only the newest run deletes the first run's renders (its K conditions
    # differ from the K+1 of the resumed run) and nothing the kept run references.
    assert main(["gc", "--config", str(cfg_path), "--keep-runs", "1"]) == 0
    left = {p.stem for p in _render_files(world)}
    assert left == set(renders["key"])
    with Store(db_url) as store:
        assert store.unreferenced_renders(1) == []
        assert len(store.renders_for_run(resumed.run_id)) == N_ITEMS * (K + 1)
