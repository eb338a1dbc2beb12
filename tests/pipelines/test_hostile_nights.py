"""Whole nights on hostile inputs and concurrent nightlies (issue 17), on SQLite and PostgreSQL.

Each night runs ``stylerec nightly`` in a subprocess with a timeout, so a
night that hangs (the FIFO in the image folder did, forever) fails the test
instead of the suite.  Worlds are the small demo world with K = 2 and 64-px
renders, so one night takes seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from data.store import Store
from pipelines.config import write_config

ROOT = Path(__file__).resolve().parents[2]
K = 2
NIGHT_TIMEOUT_S = 300
N_DUPLICATES = 30  # rows of events.parquet repeated in the second log
N_GOOD_EXTRA = 40  # new, valid rows of the second log


def _config(world: Path, db_url: str) -> Path:
    cfg = {
        "inputs": {"events": ["events.parquet", "extra.csv"], "catalog": "items.csv",
                   "styles": "styles.csv", "image_root": "."},
        "model": {"factors": 8, "epochs": 2, "holdout_last": 2, "baselines": False},
        "segments": {"k": K, "n_blend": 2},
        "render": {"mode": "background", "max_side": 64, "format": "png"},
        "outputs": {"store_url": db_url, "render_dir": "renders", "work_dir": "work",
                    "report_dir": "report"},
    }
    path = world / "stylerec.toml"
    write_config(cfg, path)
    return path


def _nightly(cfg: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines", "nightly", "--config", str(cfg), "--json", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


def _finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=NIGHT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"nightly hung for {NIGHT_TIMEOUT_S} s; stderr tail: {err[-2000:]}")
    return proc.returncode, out, err


def _csv_line(user: bytes, item: bytes, ts: str) -> bytes:
    # The small world's logs have 9 columns; the 5 optional ones are left empty.
    return user + b"," + item + b",view," + ts.encode() + b",,,,,\n"


@pytest.fixture
def hostile_world(small_world, tmp_path: Path) -> Path:
    """The small world plus a second, hostile event log and hostile catalogue rows."""
    world = tmp_path / "world"
    shutil.copytree(small_world.dir, world)
    events = pd.read_parquet(world / "events.parquet")
    items = pd.read_csv(world / "items.csv", dtype=str)
    ts = events["timestamp"].max().strftime("%Y-%m-%dT%H:%M:%SZ")
    item0 = items["item_id"].iloc[0].encode()

    # Second log: cross-file duplicates, good rows, and rows of every hostile kind.
    assert list(events.columns[:4]) == ["user_id", "item_id", "event_type", "timestamp"]
    lines = [events.head(N_DUPLICATES).to_csv(index=False).encode()]
    for i in range(N_GOOD_EXTRA):
        lines.append(_csv_line(b"newcomer%d" % i, item0, ts))
    lines.append(_csv_line(b"nul\x00user", item0, ts))  # NUL: bad_bytes
    lines.append(_csv_line(b"latin1\xe9user", item0, ts))  # not UTF-8: bad_bytes
    lines.append(_csv_line(b"x" * 300, item0, ts))  # id_too_long (PostgreSQL's String(255))
    lines.append(_csv_line(b"y" * (2 << 20), item0, ts))  # 2 MB line: line_too_long
    lines.append(_csv_line(b"=cmd|' /C calc'!A0", item0, ts))  # a valid (if odd) id
    (world / "extra.csv").write_bytes(b"".join(lines))

    # Catalogue: a long id, a long category, a NUL line, an elongated image, a FIFO,
    # a float TIFF (kept: converted) and a twin that shares item 0's image file.
    images = world / "images"
    Image.new("RGB", (60000, 8), (180, 30, 30)).save(images / "strip.png")
    os.mkfifo(images / "fifo.png")
    ramp = np.tile(np.linspace(0.1, 0.9, 96, dtype=np.float32), (96, 1))
    Image.fromarray(ramp, "F").save(images / "float.tif")
    template = items.iloc[0].to_dict()
    extra = [
        {**template, "item_id": "i" * 300},
        {**template, "item_id": "longcat", "category": "c" * 300},
        {**template, "item_id": "strip", "image_uri": "images/strip.png"},
        {**template, "item_id": "fifo", "image_uri": "images/fifo.png"},
        {**template, "item_id": "floaty", "image_uri": "images/float.tif"},
        {**template, "item_id": "twin"},  # same image_uri as item 0
    ]
    pd.concat([items, pd.DataFrame(extra)]).to_csv(world / "items.csv", index=False)
    with open(world / "items.csv", "ab") as fh:
        fh.write(b"nul\x00item,images/x.png,tops,{}\n")
    return world, len(items), items["item_id"].iloc[0]


def test_hostile_night_keeps_every_good_row_and_quarantines_every_bad_one(
    hostile_world: tuple[Path, int, str], db_url: str
) -> None:
    world, n_items, first = hostile_world
    rc, out, err = _finish(_nightly(_config(world, db_url)))
    assert rc == 0, err[-3000:]
    summary = json.loads(out.strip().splitlines()[-1])
    with Store(db_url) as store:
        run = store.get_run(summary["run_id"])
        q = store.read_quarantine(summary["run_id"])
        renders = store.renders_for_run(summary["run_id"])
        items = set(store.get_items()["item_id"])
    ingest, embed, render = (run["stages"][s]["metrics"] for s in ("ingest", "embed", "render"))

    extra = next(s for s in ingest["sources"] if s["source"].endswith("extra.csv"))
    assert extra["rows_valid"] == N_GOOD_EXTRA + 1  # newcomers + the formula-looking id
    assert extra["by_reason"] == {"bad_bytes": 2, "line_too_long": 1, "id_too_long": 1,
                                  "duplicate": N_DUPLICATES}
    by = q.groupby(["source", "reason"]).size().to_dict()
    assert by[("catalog", "id_too_long")] == 1
    assert by[("catalog", "bad_value")] == 1  # the 300-character category
    assert by[("catalog", "bad_bytes")] == 1
    bad_images = {r["item_id"]: r["detail"] for reason, r in zip(q["reason"], q["record"],
                                                                 strict=True)
                  if reason == "bad_image"}
    assert "too elongated" in bad_images["strip"]
    assert "not a regular file (a FIFO)" in bad_images["fifo"]
    assert embed["items"]["bad"] == 2
    assert all(isinstance(r, str) and r for r in q["reason"])  # every row has a reason

    # Every good item is rendered under every condition, the float TIFF and the twin too;
    # strip and fifo stay in the catalogue (recommendable) but have no usable image.
    assert {"floaty", "twin", "strip", "fifo"} <= items and "longcat" not in items
    assert len(renders) == (n_items + 2) * K
    assert render["failed_items"] == 0
    # Items that share one image share the file: rendered once, reused >= 0.
    uri = renders.set_index(["item_id", "condition_hash"])["uri"]
    for ch in renders["condition_hash"].unique():
        assert uri[("twin", ch)] == uri[(first, ch)]
    assert render["rendered"] == render["needed"] == renders["uri"].nunique()
    assert render["reused"] == 0
    float_png = world / "renders" / uri[("floaty", renders["condition_hash"].iloc[0])]
    assert np.asarray(Image.open(float_png)).mean() > 20  # not black
    print(f"hostile night: extra.csv {extra['rows_valid']} kept {extra['by_reason']}; "
          f"quarantine {by}; renders {len(renders)} rows, {render['rendered']} files")


def test_two_nightlies_started_together_run_once(small_world, tmp_path: Path, db_url: str) -> None:
    world = tmp_path / "world"
    shutil.copytree(small_world.dir, world)
    cfg = _config(world, db_url)
    raw = cfg.read_text().replace('"events.parquet", "extra.csv"', '"events.parquet"')
    cfg.write_text(raw)
    procs = [_nightly(cfg), _nightly(cfg)]
    results = [_finish(p) for p in procs]
    codes = sorted(rc for rc, _, _ in results)
    assert codes == [0, 75], [r[2][-1500:] for r in results]
    winner = next(p for p, r in zip(procs, results, strict=True) if r[0] == 0)
    _, loser_out, loser_err = next(r for r in results if r[0] == 75)
    assert f"pid {winner.pid}" in loser_err and "run lock" in loser_err
    assert json.loads(loser_out.strip().splitlines()[-1])["locked"] is True
    summary = json.loads(next(r for r in results if r[0] == 0)[1].strip().splitlines()[-1])
    with Store(db_url) as store:
        runs = store.list_runs()
        renders = store.renders_for_run(summary["run_id"])
        metrics = store.get_run(summary["run_id"])["stages"]["render"]["metrics"]
    assert len(runs) == 1 and runs[0]["status"] == "done"
    files = [p for p in (world / "renders").rglob("*") if p.is_file()]
    assert metrics["rendered"] == metrics["needed"] == len(files) == renders["uri"].nunique()
    print(f"two nightlies: exit codes {codes}, rendered {metrics['rendered']} "
          f"of {metrics['needed']} needed, {len(files)} files")


def test_waiting_nightly_runs_after_the_first_and_reuses_everything(
    small_world, tmp_path: Path
) -> None:
    """``--wait``: the second nightly waits for the lock, then finds nothing left to render."""
    world = tmp_path / "world"
    shutil.copytree(small_world.dir, world)
    cfg = _config(world, f"sqlite:///{tmp_path / 'night.db'}")
    cfg.write_text(cfg.read_text().replace('"events.parquet", "extra.csv"', '"events.parquet"'))
    first = _nightly(cfg)
    lock_file = tmp_path / "night.db.nightly.lock"
    deadline = time.monotonic() + 120
    while not (lock_file.is_file() and lock_file.read_text().strip()):
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.1)
    second = _nightly(cfg, "--wait", str(NIGHT_TIMEOUT_S), "--new")
    (rc1, out1, _), (rc2, out2, err2) = _finish(first), _finish(second)
    assert rc1 == 0 and rc2 == 0, err2[-1500:]
    s1 = json.loads(out1.strip().splitlines()[-1])
    s2 = json.loads(out2.strip().splitlines()[-1])
    assert s1["run_id"] != s2["run_id"]
    assert s2["rendered"] == 0 and s2["reused"] == s1["rendered"]
