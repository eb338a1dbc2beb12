"""Assignment by salted hash and the exposure logger."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from recsys.experiments import (
    EXPOSURE_COLUMNS,
    EXPOSURE_SCHEMA,
    HOLDOUT,
    Experiment,
    ExposureLogger,
    assign,
    exposures_frame,
    srm_check,
)

USERS = np.array([f"u{i:06d}" for i in range(200_000)])


def test_assignment_is_deterministic_and_order_independent() -> None:
    a = assign(USERS[:5000], "exp", salt="s1")
    b = assign(USERS[:5000][::-1], "exp", salt="s1")[::-1]
    assert (a == b).all()
    # Same user, computed alone, gets the same arm: no dependence on the batch.
    assert assign([USERS[17]], "exp", salt="s1")[0] == a[17]


def test_split_matches_weights_and_passes_srm() -> None:
    arms = assign(USERS, "exp", {"control": 0.2, "treatment": 0.8}, salt="x")
    counts = pd.Series(arms).value_counts().to_dict()
    assert abs(counts["control"] / len(USERS) - 0.2) < 0.005
    assert not srm_check(counts, {"control": 0.2, "treatment": 0.8}).flagged


def test_salt_and_experiment_rerandomise() -> None:
    a = assign(USERS[:20_000], "exp", salt="s1")
    b = assign(USERS[:20_000], "exp", salt="s2")
    c = assign(USERS[:20_000], "other", salt="s1")
    # Independent re-randomisation: agreement about 50%, not 0% or 100%.
    for other in (b, c):
        agree = (a == other).mean()
        assert 0.47 < agree < 0.53


def test_holdout_is_independent_of_arms() -> None:
    base = assign(USERS[:50_000], "exp", salt="s")
    held = assign(USERS[:50_000], "exp", salt="s", holdout=0.1)
    out = held == HOLDOUT
    assert 0.09 < out.mean() < 0.11
    # Changing the holdout does not move anyone between the remaining arms.
    assert (held[~out] == base[~out]).all()
    # The holdout takes users evenly from both arms.
    assert abs((base[out] == "control").mean() - 0.5) < 0.03


def test_three_arms_and_bad_input() -> None:
    arms = assign(USERS[:30_000], "e", {"a": 1, "b": 1, "c": 2})
    share = pd.Series(arms).value_counts(normalize=True)
    assert abs(share["c"] - 0.5) < 0.015 and abs(share["a"] - 0.25) < 0.015
    with pytest.raises(ValueError, match="holdout"):
        assign(USERS[:3], "e", holdout=1.0)
    with pytest.raises(ValueError, match="weights"):
        assign(USERS[:3], "e", {"a": -1, "b": 1})
    with pytest.raises(ValueError, match="reserved"):
        assign(USERS[:3], "e", {"holdout": 1, "b": 1})
    assert assign([], "e").shape == (0,)


def test_experiment_object() -> None:
    exp = Experiment("e", {"control": 1, "treatment": 3}, salt="z")
    assert (exp.assign(USERS[:100]) == assign(USERS[:100], "e", {"control": 1, "treatment": 3}, "z")).all()
    assert exp.expected_split() == {"control": 0.25, "treatment": 0.75}


def test_exposure_logger_threads_and_batches(tmp_path: Path) -> None:
    path = tmp_path / "exp" / "exposures.parquet"
    n_threads, per_thread = 8, 500

    with ExposureLogger(path, batch_size=300) as logger:
        def worker(k: int) -> None:
            for j in range(per_thread):
                uid = f"u{k}-{j}"
                logger.log(uid, f"i{j % 7}", "e", "control" if j % 2 else "treatment",
                           shown_image=f"images/i{j % 7}.png", segment_id=None if j % 3 else "s1")

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    table = pq.read_table(path)
    assert table.schema.equals(EXPOSURE_SCHEMA)
    assert table.num_rows == n_threads * per_thread == logger.rows_written
    assert pq.ParquetFile(path).num_row_groups >= n_threads * per_thread // 300
    df = table.to_pandas()
    assert df["user_id"].is_unique  # no row lost or duplicated under contention
    assert df["segment_id"].isna().sum() == n_threads * sum(1 for j in range(per_thread) if j % 3)
    with pytest.raises(ValueError, match="closed"):
        logger.log("u", "i", "e", "control")


def test_exposure_logger_batch_and_empty(tmp_path: Path) -> None:
    rows = pd.DataFrame({
        "user_id": ["u1", "u2"], "item_id": ["i1", "i2"], "experiment": "e",
        "variant": ["control", "treatment"], "timestamp": [datetime(2026, 1, 1, tzinfo=UTC)] * 2,
    })
    with ExposureLogger(tmp_path / "a.parquet") as logger:
        logger.log_many(rows)
    back = pd.read_parquet(tmp_path / "a.parquet")
    assert list(back.columns) == list(EXPOSURE_COLUMNS)
    assert back["shown_image"].isna().all() and len(back) == 2
    with ExposureLogger(tmp_path / "empty.parquet"):
        pass
    assert pq.read_table(tmp_path / "empty.parquet").num_rows == 0


def test_exposure_rows_are_validated() -> None:
    good = {"user_id": "u", "item_id": "i", "experiment": "e", "variant": "c",
            "timestamp": "2026-01-01T00:00:00Z"}
    assert exposures_frame([good])["timestamp"].dt.tz is not None
    with pytest.raises(ValueError, match="lack column"):
        exposures_frame([{k: v for k, v in good.items() if k != "variant"}])
    with pytest.raises(ValueError, match="row 1: user_id is null"):
        exposures_frame([good, {**good, "user_id": None}])
    with pytest.raises(ValueError, match="timestamp"):
        exposures_frame([{**good, "timestamp": "not a time"}])
