"""Row rules, quarantine reasons and the LoadReport (data.validation, through data.loading).

The central test builds a clean log, corrupts 5% of rows per kind of problem
at known positions, and asserts that exactly the untouched rows survive and
exactly the corrupted rows are quarantined with the right reason, from every
kind of source (in-memory frame, CSV, Parquet, SQLite) and across streamed
batch boundaries.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from data.loading import load_events
from data.validation import (
    REASON_PRIORITY,
    DuplicateFilter,
    LoadReport,
    Reason,
    as_text_frame,
    normalise_ids,
    normalise_timestamps,
    validate_catalog_table,
)

NOW = pd.Timestamp("2025-01-01T00:00:00Z")
N_ROWS = 2000
KINDS = (
    Reason.UNKNOWN_EVENT_TYPE,
    Reason.MISSING_ID,
    Reason.BAD_ID_TYPE,
    Reason.BAD_TIMESTAMP,
    Reason.FUTURE_TIMESTAMP,
    Reason.NAN_VALUE,
    Reason.BAD_VALUE,
    Reason.UNKNOWN_ITEM,
    Reason.DUPLICATE,
)


def _clean_log(n: int, rng: np.random.Generator) -> tuple[pd.DataFrame, list[tuple]]:
    """A log where every row is valid and distinct, plus each row's expected normalised tuple."""
    base = pd.Timestamp("2024-01-01T00:00:00Z")
    times = [base + pd.Timedelta(seconds=int(s)) for s in rng.integers(0, 300 * 86400, n)]
    events = ["view", "click", "add_to_cart", "purchase"]
    rows, expected = [], []
    for i in range(n):
        user, item, etype, ts = f"u{i % 97}", i, events[i % 4], times[i]
        # Timestamps alternate between ISO text with an offset and epoch seconds.
        ts_in: object = ts.tz_convert("Europe/Paris").isoformat() if i % 2 else int(ts.timestamp())
        price = float(i % 50) + 0.5 if etype == "purchase" else np.nan
        rows.append(
            {
                "user_id": user,
                "item_id": item,
                "event_type": etype,
                "timestamp": ts_in,
                "price": price,
            }
        )
        expected.append((user, str(item), etype, ts, price))
    return pd.DataFrame(rows), expected


def _corrupt(log: pd.DataFrame, rng: np.random.Generator) -> dict[int, Reason]:
    """Corrupt 5% of rows per kind in place (disjoint rows, one problem each); row -> reason."""
    per_kind = N_ROWS // 20
    order = rng.permutation(np.arange(N_ROWS // 5, N_ROWS))  # dups need earlier originals
    bad: dict[int, Reason] = {}
    log["user_id"] = log["user_id"].astype(object)
    log["item_id"] = log["item_id"].astype(object)
    log["timestamp"] = log["timestamp"].astype(object)
    log["price"] = log["price"].astype(object)
    for k, kind in enumerate(KINDS):
        for j, row in enumerate(order[k * per_kind : (k + 1) * per_kind]):
            row = int(row)
            bad[row] = kind
            if kind is Reason.UNKNOWN_EVENT_TYPE:
                log.at[row, "event_type"] = ["like", "checkout", "7"][j % 3]
            elif kind is Reason.MISSING_ID:
                log.at[row, ["user_id", "item_id"][j % 2]] = [None, "", "   "][j % 3]
            elif kind is Reason.BAD_ID_TYPE:
                log.at[row, ["user_id", "item_id"][j % 2]] = [3.5, True, -0.25][j % 3]
            elif kind is Reason.BAD_TIMESTAMP:
                log.at[row, "timestamp"] = ["not a date", "2024-13-45T00:00:00", "yesterday"][j % 3]
            elif kind is Reason.FUTURE_TIMESTAMP:
                log.at[row, "timestamp"] = [
                    "2025-01-02T00:00:00Z",
                    int(NOW.timestamp()) + 7200,
                    "2999-01-01",
                ][j % 3]
            elif kind is Reason.NAN_VALUE:
                log.at[row, ["timestamp", "event_type"][j % 2]] = np.nan
            elif kind is Reason.BAD_VALUE:
                log.at[row, "price"] = ["abc", -5.0, float("inf")][j % 3]
            elif kind is Reason.UNKNOWN_ITEM:
                log.at[row, "item_id"] = 10_000_000 + row
    # Duplicates: exact copies of earlier rows that stay good (the first copy is kept).
    good_early = [r for r in range(N_ROWS // 5) if r not in bad]
    for row, kind in bad.items():
        if kind is Reason.DUPLICATE:
            src = good_early[int(rng.integers(len(good_early)))]
            log.loc[row] = log.loc[src].to_numpy()
    return bad


@pytest.fixture(scope="module")
def corrupted() -> tuple[pd.DataFrame, list[tuple], dict[int, Reason]]:
    rng = np.random.default_rng(7)
    log, expected = _clean_log(N_ROWS, rng)
    bad = _corrupt(log, rng)
    return log, expected, bad


def _as_text(log: pd.DataFrame) -> pd.DataFrame:
    """Every cell as text, missing as None: what a CSV/TEXT column holds."""
    text = as_text_frame(log)
    return text.mask(text == "")


def _write(log: pd.DataFrame, kind: str, tmp_path: Path) -> tuple[object, dict]:
    if kind == "frame":
        return log, {}
    if kind == "csv":
        path = tmp_path / "events.csv"
        log.to_csv(path, index=False)
        return path, {}
    if kind == "parquet":
        path = tmp_path / "events.parquet"
        _as_text(log).to_parquet(path, index=False)
        return path, {}
    url = f"sqlite:///{tmp_path / 'events.db'}"
    engine = sa.create_engine(url)
    _as_text(log).to_sql("events", engine, index=False)
    engine.dispose()
    return url, {"query": "events"}


@pytest.mark.parametrize("kind", ["frame", "csv", "parquet", "sql"])
def test_corrupted_log_keeps_every_good_row_and_quarantines_every_bad_one(
    corrupted: tuple[pd.DataFrame, list[tuple], dict[int, Reason]], kind: str, tmp_path: Path
) -> None:
    log, expected, bad = corrupted
    catalog = set(range(N_ROWS))  # ints on purpose: catalog ids are normalised like event ids
    source, extra = _write(log, kind, tmp_path)
    # batch_rows=300: duplicates of rows 0..399 land in later batches, so detection must span them.
    result = load_events(source, catalog=catalog, now=NOW, batch_rows=300, **extra)

    good_rows = [r for r in range(N_ROWS) if r not in bad]
    got = {
        (u, i, e, t, p)
        for u, i, e, t, p in zip(
            result.events["user_id"],
            result.events["item_id"],
            result.events["event_type"].astype(str),
            result.events["timestamp"],
            result.events["price"],
            strict=True,
        )
    }
    want = {expected[r] for r in good_rows}

    # NaN != NaN, so compare prices through a sentinel.
    def fix(rows: set[tuple]) -> set[tuple]:
        return {(*r[:4], -1.0 if pd.isna(r[4]) else r[4]) for r in rows}

    assert len(result.events) == len(good_rows)
    assert fix(got) == fix(want)
    assert len(fix(want)) == len(good_rows)  # the clean rows really were distinct

    q_rows = result.quarantine["row"].astype(int) - 1
    got_bad = dict(zip(q_rows, result.quarantine["reason"], strict=True))
    assert got_bad == {r: k.value for r, k in bad.items()}
    assert set(result.quarantine["source"]) == {result.report.source}

    report = result.report
    assert report.rows_read == N_ROWS
    assert report.rows_valid == len(good_rows)
    assert report.rows_quarantined == len(bad)
    assert report.by_reason == {k.value: N_ROWS // 20 for k in KINDS}


def test_quarantine_keeps_the_original_cells_as_text(tmp_path: Path) -> None:
    log = pd.DataFrame(
        {
            "user_id": ["u1", 3.5],
            "item_id": [1, 2],
            "event_type": ["view", "view"],
            "timestamp": [1_700_000_000] * 2,
            "extra": ["kept", "too"],
        }
    )
    result = load_events(log, now=NOW)
    q = result.quarantine
    assert list(q.columns) == [
        "user_id",
        "item_id",
        "event_type",
        "timestamp",
        "extra",
        "reason",
        "source",
        "row",
    ]
    assert q.iloc[0][["user_id", "item_id", "extra", "reason"]].tolist() == [
        "3.5",
        "2",
        "too",
        "bad_id_type",
    ]
    assert q.iloc[0]["row"] == 2
    assert "extra" not in result.events.columns  # unknown columns are not events columns


def test_a_row_with_several_problems_gets_the_first_reason_by_priority() -> None:
    log = pd.DataFrame(
        {
            "user_id": [None, 3.5, "u", "u", "u"],
            "item_id": ["i", "i", "i", "i", "zzz"],
            "event_type": ["bogus", "bogus", "bogus", "view", "view"],
            "timestamp": ["junk", "junk", "junk", "2999-01-01", "2024-01-01"],
            "price": ["x", "x", "x", "x", "x"],
        }
    )
    result = load_events(log, now=NOW, catalog={"i"})
    assert result.quarantine["reason"].tolist() == [
        "missing_id",
        "bad_id_type",
        "unknown_event_type",
        "future_timestamp",
        "bad_value",
    ]
    order = [r.value for r in REASON_PRIORITY]
    assert order.index("missing_id") < order.index("unknown_event_type") < order.index("duplicate")


def test_duplicate_of_a_bad_row_reports_the_row_problem_not_duplicate() -> None:
    row = {"user_id": "u", "item_id": "i", "event_type": "like", "timestamp": "2024-01-01"}
    result = load_events(pd.DataFrame([row, row]), now=NOW)
    assert result.quarantine["reason"].tolist() == ["unknown_event_type"] * 2


def test_future_tolerance_and_injected_now() -> None:
    log = pd.DataFrame(
        {
            "user_id": ["a", "b", "c"],
            "item_id": ["i"] * 3,
            "event_type": ["view"] * 3,
            "timestamp": [
                NOW + pd.Timedelta(minutes=4),
                NOW + pd.Timedelta(minutes=6),
                NOW + pd.Timedelta(hours=2),
            ],
        }
    )
    default = load_events(log, now=NOW)
    assert default.events["user_id"].tolist() == ["a"]
    wide = load_events(log, now=NOW, future_tolerance=timedelta(hours=3))
    assert wide.report.rows_valid == 3


def test_ids_accept_str_and_int_and_reject_floats_bools_and_blanks() -> None:
    ids, missing, bad = normalise_ids(
        pd.Series(["a", 7, 3.0, 3.5, True, None, "", " b ", np.nan, b"x"], dtype=object)
    )
    assert ids[~missing & ~bad].tolist() == ["a", "7", "3", "b"]
    assert missing.tolist() == [False, False, False, False, False, True, True, False, True, False]
    assert bad.tolist() == [False, False, False, True, True, False, False, False, False, True]
    assert str(ids.dtype) == "string"


@pytest.mark.parametrize(
    ("series", "want"),
    [
        (pd.Series([1, 22], dtype="int64"), ["1", "22"]),
        (pd.Series([1.0, np.nan], dtype="float64"), ["1", None]),
        (pd.Series(["3.0", "0042", "True"], dtype="string"), ["3", "0042", None]),
        (pd.Series(["x", "y", "x"], dtype="category"), ["x", "y", "x"]),
    ],
)
def test_typed_id_columns_take_the_same_rules(series: pd.Series, want: list) -> None:
    ids, _, _ = normalise_ids(series)
    assert [None if pd.isna(v) else v for v in ids] == want


def test_timestamps_from_every_accepted_form_become_utc_ns() -> None:
    ts, missing, bad = normalise_timestamps(
        pd.Series(
            [
                "2024-03-01T12:00:00+02:00",
                "2024-03-01 10:00:00",
                1_709_287_200,
                "1709287200",
                pd.Timestamp("2024-03-01T10:00:00Z"),
                np.nan,
                "garbage",
                1.7e12,
            ],
            dtype=object,
        )
    )
    assert str(ts.dtype) == "datetime64[ns, UTC]"
    want = pd.Timestamp("2024-03-01T10:00:00Z")
    assert (ts[:5] == want).all()
    assert missing.tolist() == [False] * 5 + [True, False, False]
    # 1.7e12 "seconds" is a milliseconds mistake: out of range, not silently year 55000.
    assert bad.tolist() == [False] * 6 + [True, True]


def test_duplicate_filter_spans_batches_and_within_batch() -> None:
    f = DuplicateFilter()
    assert f.mark(np.array([5, 1, 5], dtype=np.uint64)).tolist() == [False, False, True]
    assert f.mark(np.array([2, 1, 9, 2], dtype=np.uint64)).tolist() == [False, True, False, True]
    assert len(f) == 4


def test_load_report_counts_and_renders() -> None:
    report = LoadReport(source="x.csv")
    report.add(10, ["duplicate", "missing_id", "duplicate"])
    report.add(5, [])
    report.elapsed_s = 2.0
    d = report.to_dict()
    assert (d["rows_read"], d["rows_valid"], d["rows_quarantined"]) == (18, 15, 3)
    assert list(d["by_reason"]) == ["missing_id", "duplicate"]  # priority order
    text = str(report)
    assert "duplicate" in text and "x.csv" in text and "18" in text


def test_catalog_tables_quarantine_bad_rows() -> None:
    items = pd.DataFrame(
        {
            "item_id": [1, 1, None, 2, 3],
            "image_uri": ["a.jpg", "b.jpg", "c.jpg", None, "d.jpg"],
            "attributes": ['{"colour": "red"}', "{}", "{}", {"k": 1}, "[1, 2]"],
        }
    )
    valid, q = validate_catalog_table(items, "items", "items.csv")
    assert valid["item_id"].tolist() == ["1", "2"]
    assert valid["attributes"].tolist() == ['{"colour": "red"}', '{"k": 1}']
    assert q["reason"].tolist() == ["duplicate", "missing_id", "bad_value"]
    styles = pd.DataFrame(
        {"style_id": ["s1", "s2"], "image_uri": ["s1.jpg", None], "tags": ["oil|portrait", None]}
    )
    valid, q = validate_catalog_table(styles, "styles", "styles.csv")
    assert valid["tags"].tolist() == ['["oil", "portrait"]']
    assert q["reason"].tolist() == ["nan_value"]
