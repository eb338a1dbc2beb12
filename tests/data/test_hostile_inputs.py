"""Hostile inputs (issue 17): each defect the probe found, reproduced, on SQLite and PostgreSQL.

Every good row is kept, every bad row is quarantined with a reason, and no
night fails or hangs.  The loader-level tests are fast; the nightly ones run
the small world in a subprocess with a timeout (see ``tests/hostile_night.py``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from data.ids import MAX_ID_LENGTH, check_ids, id_problem
from data.loading import escape_formula, load_events, load_items, write_quarantine
from data.store import Store
from data.validation import DuplicateFilter, EventValidator

NOW = "2026-02-01T00:00:00Z"
ROOT = Path(__file__).resolve().parents[2]
HEADER = b"user_id,item_id,event_type,timestamp\n"


def _line(user: bytes, item: bytes = b"i1", second: int = 0) -> bytes:
    return user + b"," + item + b",view,2026-01-01T00:00:%02dZ\n" % (second % 60)


# --------------------------------------------------------------------------- id policy
def test_id_policy_lengths_controls_and_nfc() -> None:
    ids = pd.Series(pd.array(["ok", "x" * MAX_ID_LENGTH, "x" * (MAX_ID_LENGTH + 1), "a\x00b",
                              "tab\there", "del\x7f", "c1\x85", "e\u0301", None], dtype="string"))
    out, too_long, control = check_ids(ids)
    assert too_long.tolist() == [False, False, True, False, False, False, False, False, False]
    assert control.tolist() == [False, False, False, True, True, True, True, False, False]
    assert out[7] == "\u00e9"  # NFC: e + combining acute -> one code point
    assert out[[0, 1]].tolist() == ["ok", "x" * MAX_ID_LENGTH]
    assert out[[2, 3, 8]].isna().all()
    assert id_problem("x" * 256) and id_problem("a\x00") and id_problem("ok") is None


def test_validator_quarantines_ids_that_postgres_would_refuse() -> None:
    frame = pd.DataFrame({
        "user_id": ["u1", "u\x002", "y" * 300, "e\u0301", "\u00e9", "ok"],
        "item_id": ["i1", "i1", "i1", "i1", "i1", "z" * 256],
        "event_type": ["view"] * 6,
        "timestamp": [f"2026-01-01T00:00:0{i}Z" for i in range(6)],
    })
    valid, q = EventValidator(now=NOW).validate(frame, source="t")
    assert valid["user_id"].tolist() == ["u1", "\u00e9", "\u00e9"]
    assert sorted(q["reason"]) == ["id_control_char", "id_too_long", "id_too_long"]


def test_store_refuses_an_id_that_breaks_the_policy(db_url: str) -> None:
    with Store(db_url) as store:
        with pytest.raises(ValueError, match="id policy"):
            store.upsert_items(pd.DataFrame({"item_id": ["x" * 300]}))
        with pytest.raises(ValueError, match="id policy"):
            store.upsert_items(pd.DataFrame({"item_id": ["a\x00b"]}))
        assert store.get_items().empty
        # A quarantined NUL id is kept as visible text (jsonb refuses \u0000).
        run = store.create_run({}, stages=("ingest",))
        store.add_quarantine(run, "t", pd.DataFrame({"user_id": ["a\x00b", "q" * 5000],
                                                     "reason": ["id_control_char",
                                                                "id_too_long"]}))
        rec = store.read_quarantine(run)["record"].tolist()
        assert rec[0]["user_id"] == "a\\x00b"
        assert len(rec[1]["user_id"]) < 1100 and "5000 characters" in rec[1]["user_id"]


def test_catalog_with_long_id_category_and_nul_text(tmp_path) -> None:
    path = tmp_path / "items.csv"
    pd.DataFrame({
        "item_id": ["a", "b" * 300, "c", "d", "e"],
        "image_uri": ["a.png", "b.png", "c.png", "d\\u0000.png", "e.png"],
        "category": ["tops", "tops", "t" * 300, "tops", "tops"],
        "attributes": ["{}", "{}", "{}", "{}", '{"k": "\\u0000"}'],
    }).to_csv(path, index=False)
    res = load_items(path)
    assert res.items["item_id"].tolist() == ["a", "d"]
    assert sorted(res.quarantine["reason"]) == ["bad_value", "bad_value", "id_too_long"]


# --------------------------------------------------------------------------- bytes
def test_bad_bytes_quarantine_only_their_rows(tmp_path) -> None:
    """A NUL in the first 64 KiB, one after it, non-UTF-8 bytes and a 30 MB id: 4 rows out."""
    good = [_line(b"u%d" % i, second=i) for i in range(4000)]  # ~150 kB
    lines = list(good)
    lines[3] = _line(b"u\x00nul")
    lines[3500] = _line(b"late\x00nul")
    lines[10] = _line(b"bad\xff\xfeutf8")
    lines[20] = _line(b"u" + b"z" * (30 << 20))
    path = tmp_path / "events.csv"
    path.write_bytes(HEADER + b"".join(lines))
    res = load_events(path, now=NOW)
    assert res.report.rows_valid == 4000 - 4
    assert res.report.by_reason == {"bad_bytes": 3, "line_too_long": 1}
    detail = res.quarantine["detail"].tolist()
    assert any(d.startswith("line 5: NUL") for d in detail)  # header is line 1
    assert any(d.startswith("line 3502: NUL") for d in detail)
    assert any("line 12: not UTF-8" in d for d in detail)
    assert set(res.events["user_id"]) == {f"u{i}" for i in range(4000)} - {"u3", "u3500", "u10",
                                                                            "u20"}


def test_header_that_is_not_text_still_refuses_the_file(tmp_path) -> None:
    path = tmp_path / "events.csv"
    path.write_bytes(b"user_id\x00,item_id,event_type,timestamp\n" + _line(b"u1"))
    with pytest.raises(ValueError, match="binary content in the header"):
        load_events(path, now=NOW)


# --------------------------------------------------------------------------- duplicates
def test_duplicates_are_found_across_files(tmp_path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_bytes(HEADER + _line(b"u1") + _line(b"u2"))
    b.write_bytes(HEADER + _line(b"u2") + _line(b"u3"))
    seen = DuplicateFilter()
    ra = load_events(a, now=NOW, duplicates=seen)
    rb = load_events(b, now=NOW, duplicates=seen)
    assert ra.report.rows_valid == 2 and rb.report.rows_valid == 1
    assert rb.quarantine["reason"].tolist() == ["duplicate"]


# --------------------------------------------------------------------------- CSV injection
def test_quarantine_csv_cells_are_escaped_against_formulas(tmp_path) -> None:
    payloads = ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1:A2)", "\t=1", "\r=1", "plain"]
    q = pd.DataFrame({"user_id": pd.array(payloads, dtype="string"), "reason": "bad_id_type",
                      "row": pd.array(range(1, 8), dtype="Int64")})
    out = write_quarantine(q, tmp_path / "q.csv")
    back = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert back["user_id"].tolist() == ["'" + p for p in payloads[:-1]] + ["plain"]
    assert back["row"].tolist() == [str(i) for i in range(1, 8)]
    assert escape_formula(3) == 3


# --------------------------------------------------------------------------- images
def test_elongated_float_and_fifo_images_are_refused_or_converted_with_a_reason(tmp_path) -> None:
    import os

    import numpy as np
    from PIL import Image

    from stylizer.image_io import ImageError, load_image

    Image.new("RGB", (60000, 8), (200, 10, 10)).save(tmp_path / "long.png")
    with pytest.raises(ImageError, match="too elongated.*60000x8 is 384x1"):
        load_image(tmp_path / "long.png", max_side=384)
    ramp = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    Image.fromarray(ramp, "F").save(tmp_path / "unit.tif")
    rgb = load_image(tmp_path / "unit.tif").rgb
    assert rgb.max() == 255 and 120 < rgb.mean() < 135  # not black
    ramp[0, 0] = np.nan
    Image.fromarray(ramp, "F").save(tmp_path / "nan.tif")
    with pytest.raises(ImageError, match="NaN or infinite"):
        load_image(tmp_path / "nan.tif")
    os.mkfifo(tmp_path / "fifo.png")
    with pytest.raises(ImageError, match="not a regular file \\(a FIFO\\)"):
        load_image(tmp_path / "fifo.png")  # returns at once instead of blocking forever


def test_any_exception_for_one_item_fails_that_item_only(tmp_path) -> None:
    import numpy as np
    from PIL import Image

    from pipelines.cache import RenderCache
    from pipelines.executors.work import RenderJob, embed_images, render_job

    good = tmp_path / "good.png"
    Image.new("RGB", (32, 32), (10, 200, 10)).save(good)

    class Boom:
        mode, max_side = "full", 64

        def render(self, images, codes, masks):
            raise RuntimeError("kaboom")

        def encode(self, images):
            if any(im.shape[0] == 33 for im in images):
                raise RuntimeError("bad batch")
            return np.ones((len(images), 100), np.float32)

    job = RenderJob("i1", str(good), ["ab" * 32], np.zeros((1, 100), np.float32), ["c"])
    out = render_job(Boom(), RenderCache(tmp_path / "r", "png"), job)
    assert out.error and "RuntimeError: kaboom" in out.error and not out.written
    odd = tmp_path / "odd.png"
    Image.new("RGB", (33, 33)).save(odd)
    emb = embed_images(Boom(), [str(good), str(odd), str(tmp_path / "missing.png")])
    assert np.isfinite(emb.codes[0]).all()
    assert "bad batch" in emb.errors[1] and "no such image" in emb.errors[2]


# --------------------------------------------------------------------------- run lock
_HOLD = """
import sys, time
from data.store import Store
store = Store(sys.argv[1])
with store.run_lock() as lock:
    lock.set_run("run-held-by-child")
    print("held", flush=True)
    time.sleep(60)
"""


def _hold_lock_in_child(db_url: str):
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", _HOLD, db_url], stdout=subprocess.PIPE,
                             env=env, text=True)
    assert child.stdout.readline().strip() == "held"
    return child


def test_run_lock_names_the_holder_and_a_dead_holder_is_taken_over(db_url: str) -> None:
    import signal
    import time

    from data.store import RunLockedError

    with Store(db_url) as store:
        child = _hold_lock_in_child(db_url)
        try:
            t0 = time.monotonic()
            with pytest.raises(RunLockedError) as info, store.run_lock(wait_s=0.6):
                pass
            assert time.monotonic() - t0 >= 0.5  # it waited as asked
            msg = str(info.value)
            assert f"pid {child.pid}" in msg and "run run-held-by-child" in msg
            assert info.value.holder["pid"] in (child.pid, str(child.pid))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(10)
        # The holder died without releasing: its lock goes with it, the next one takes over.
        deadline = time.monotonic() + 10
        with store.run_lock(wait_s=10) as lock:
            assert time.monotonic() < deadline
            lock.set_run("mine")
        # Released on exit: it can be taken again at once.
        with store.run_lock(wait_s=0):
            pass


def test_sweeper_never_deletes_a_live_writers_temp_file(tmp_path) -> None:
    """Writer and sweeper processes race for ~2 s; every write lands (the probe lost 1,247)."""
    import multiprocessing as mp

    from pipelines.cache import RenderCache  # imported before the fork: both start warm

    ctx = mp.get_context("fork")
    root = tmp_path / "renders"
    results, ready, go = ctx.Queue(), ctx.Semaphore(0), ctx.Event()
    writer = ctx.Process(target=_stress_writer, args=(root, ready, go, results))
    sweeper = ctx.Process(target=_stress_sweeper, args=(root, ready, go, results))
    writer.start()
    sweeper.start()
    assert ready.acquire(timeout=30) and ready.acquire(timeout=30)
    go.set()
    got = dict(results.get(timeout=30) for _ in range(2))
    writer.join(10)
    sweeper.join(10)
    written, failures = got["writer"]
    assert failures == [], failures[:3]
    assert len(written) > 50  # the race really ran

    cache = RenderCache(root, "png")
    lost = [k for k in written if not cache.exists(k)]
    print(f"stress: {len(written)} writes, {got['sweeper']} sweeps, {len(lost)} lost")
    assert lost == []
    assert got["sweeper"] >= 20  # sweeps ran all along


STRESS_S = 2.0


def _stress_writer(root, ready, go, results) -> None:
    import hashlib
    import time

    import numpy as np

    from pipelines.cache import RenderCache

    cache = RenderCache(root, "png")
    img = np.zeros((16, 16, 3), np.uint8)
    written, failures, i = [], [], 0
    ready.release()
    go.wait(30)
    stop_at = time.time() + STRESS_S
    while time.time() < stop_at:
        key = hashlib.sha256(str(i).encode()).hexdigest()
        try:
            cache.write(key, img)
            written.append(key)
        except Exception as exc:  # noqa: BLE001 - counted as a lost write
            failures.append(repr(exc))
        i += 1
    results.put(("writer", (written, failures)))


def _stress_sweeper(root, ready, go, results) -> None:
    import time

    from pipelines.cache import RenderCache

    cache = RenderCache(root, "png")
    sweeps = 0
    ready.release()
    go.wait(30)
    stop_at = time.time() + STRESS_S
    while time.time() < stop_at:
        cache.sweep_partials()
        sweeps += 1
    results.put(("sweeper", sweeps))


# --------------------------------------------------------------------------- config, stylize
_BASE_CFG = {"inputs": {"events": ["e.csv"], "catalog": "i.csv", "styles": "s.csv"}}


@pytest.mark.parametrize(("section", "key", "value"), [
    ("model", "half_life_days", float("inf")),
    ("model", "half_life_days", float("nan")),
    ("render", "strength", float("-inf")),
    ("executor", "cpus_per_worker", float("inf")),
])
def test_config_refuses_non_finite_numbers(tmp_path, section, key, value) -> None:
    from pipelines.config import ConfigError, config_from_dict

    raw = {**_BASE_CFG, section: {key: value}}
    with pytest.raises(ConfigError, match=f"{section}.{key}: expected a finite number"):
        config_from_dict(raw, tmp_path)


def test_config_refuses_root_and_home_and_says_where_outputs_go(tmp_path, caplog) -> None:
    import logging

    from pipelines.config import ConfigError, config_from_dict, output_locations

    for section, key, value in [("inputs", "image_root", "/"), ("outputs", "render_dir", "/"),
                                ("outputs", "work_dir", "~"), ("outputs", "report_dir", "/..")]:
        raw = {**_BASE_CFG, section: {**_BASE_CFG.get(section, {}), key: value}}
        with pytest.raises(ConfigError, match=f"{section}.{key}: .* is the (filesystem root|home)"):
            config_from_dict(raw, tmp_path)
    base = tmp_path / "cfg"
    base.mkdir()
    with caplog.at_level(logging.WARNING, logger="pipelines.config"):
        cfg = config_from_dict({**_BASE_CFG, "outputs": {"render_dir": "../elsewhere"}}, base)
    assert "outputs.render_dir = '../elsewhere' puts outputs outside" in caplog.text
    assert str(tmp_path / "elsewhere") in caplog.text
    assert output_locations(cfg)["render_dir"] == str((tmp_path / "elsewhere").resolve())


def test_stylize_gives_same_stem_inputs_distinct_output_names() -> None:
    from pipelines.commands._render_args import output_stems

    paths = [Path("a.jpg"), Path("a.tif"), Path("b.png"), Path("x/c.png"), Path("y/c.png")]
    assert output_stems(paths) == ["a_jpg", "a_tif", "b", "c_png", "c_png_2"]
    assert len(set(output_stems(paths))) == len(paths)


def test_a_log_whose_optional_column_is_all_empty_loads(tmp_path) -> None:
    """Found by the hostile night: an all-empty ``style_id`` column crashed the hashing."""
    path = tmp_path / "e.csv"
    path.write_bytes(b"user_id,item_id,event_type,timestamp,style_id\n"
                     b"u1,i1,view,2026-01-01T00:00:00Z,\nu1,i1,view,2026-01-01T00:00:00Z,\n")
    res = load_events(path, now=NOW)
    assert res.report.rows_valid == 1 and res.report.by_reason == {"duplicate": 1}


def test_clean_lines_matches_a_line_by_line_filter_at_any_chunk_size(tmp_path) -> None:
    """Lines straddling chunks, over-long lines across several chunks, no final newline."""
    import random

    from data.csv_bytes import CleanLines, line_problem

    rng = random.Random(3)
    pieces = [b"ok", b"a\x00b", b"\xff\xfe", b"\xc3\xa9t\xc3\xa9", b"L" * 70, b"", b"x,y,z"]
    lines = [rng.choice(pieces) + b"%d" % i for i in range(400)]
    data = b"\n".join(lines)  # no newline at the end
    path = tmp_path / "f.csv"
    path.write_bytes(data)
    expected = b"".join(ln for ln in data.splitlines(keepends=True)
                        if line_problem(ln, 50) is None)
    n_bad = sum(line_problem(ln, 50) is not None for ln in data.splitlines(keepends=True))
    for chunk in (7, 16, 64, 1000, 1 << 20):
        clean = CleanLines(path, max_line_bytes=50, chunk_bytes=chunk)
        got = clean.read()
        clean.close()
        assert got == expected, chunk
        assert len(clean.bad) == n_bad, chunk
        assert [b.line_no for b in clean.bad] == [
            i + 1 for i, ln in enumerate(data.splitlines(keepends=True))
            if line_problem(ln, 50) is not None]
