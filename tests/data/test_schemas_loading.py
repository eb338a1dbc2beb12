"""Loaders: typed frames from CSV, Parquet and SQL, streaming, clear errors, the validate CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from data.loading import (
    LoadReport,
    detect_format,
    iter_event_batches,
    load_events,
    load_items,
    load_styles,
    write_quarantine,
)
from data.schemas import EVENT_COLUMNS, EVENT_TYPES, empty_events, event_dtypes
from pipelines.cli import main as cli

NOW = pd.Timestamp("2025-01-01T00:00:00Z")


def _events(n: int = 50) -> pd.DataFrame:
    base = pd.Timestamp("2024-06-01T00:00:00Z")
    return pd.DataFrame(
        {
            "user_id": [f"u{i % 7}" for i in range(n)],
            "item_id": [str(100 + i) for i in range(n)],
            "event_type": [EVENT_TYPES[i % 4] for i in range(n)],
            "timestamp": [base + pd.Timedelta(minutes=i) for i in range(n)],
            "style_id": [f"s{i % 3}" if i % 2 else None for i in range(n)],
            "segment_id": ["seg1"] * n,
            "experiment": ["exp"] * n,
            "variant": [["a", "b"][i % 2] for i in range(n)],
            "price": [float(i) if i % 4 == 3 else np.nan for i in range(n)],
        }
    )


def test_schema_dtypes_are_what_loaders_return(tmp_path: Path) -> None:
    path = tmp_path / "e.parquet"
    _events().to_parquet(path, index=False)
    events = load_events(path, now=NOW).events
    assert list(events.columns) == list(EVENT_COLUMNS)
    assert {c: str(t) for c, t in events.dtypes.items()} == {
        c: str(t) for c, t in event_dtypes().items()
    }
    assert list(events["event_type"].cat.categories) == list(EVENT_TYPES)
    assert events["event_type"].cat.ordered  # view < click < add_to_cart < purchase
    assert list(empty_events().dtypes) == list(event_dtypes().values())


def test_csv_and_parquet_give_identical_frames(tmp_path: Path) -> None:
    log = _events()
    log.to_csv(tmp_path / "e.csv", index=False)
    log.to_parquet(tmp_path / "e.parquet", index=False)
    a = load_events(tmp_path / "e.csv", now=NOW).events
    b = load_events(tmp_path / "e.parquet", now=NOW).events
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == len(log)


def test_csv_ids_keep_leading_zeros(tmp_path: Path) -> None:
    (tmp_path / "e.csv").write_text(
        "user_id,item_id,event_type,timestamp\n007,0255396018,view,2024-01-01T00:00:00Z\n"
    )
    events = load_events(tmp_path / "e.csv", now=NOW).events
    assert events[["user_id", "item_id"]].iloc[0].tolist() == ["007", "0255396018"]


def test_streaming_yields_bounded_batches_and_fills_the_report(tmp_path: Path) -> None:
    path = tmp_path / "e.parquet"
    log = _events(1000)
    log = pd.concat([log, log.iloc[:10]], ignore_index=True)  # 10 duplicates in the last batch
    log.to_parquet(path, index=False)
    report = LoadReport(source=str(path))
    sizes, dup = [], 0
    for batch in iter_event_batches(path, now=NOW, batch_rows=128, report=report):
        sizes.append(len(batch.events) + len(batch.quarantine))
        dup += int((batch.quarantine["reason"] == "duplicate").sum())
    assert max(sizes) <= 128 and sum(sizes) == 1010
    assert dup == 10
    assert (report.rows_read, report.rows_valid, report.by_reason) == (
        1010,
        1000,
        {"duplicate": 10},
    )


def test_category_ids_survive_concatenation_of_batches(tmp_path: Path) -> None:
    path = tmp_path / "e.parquet"
    _events(400).to_parquet(path, index=False)
    events = load_events(path, now=NOW, batch_rows=64, id_dtype="category").events
    assert isinstance(events["user_id"].dtype, pd.CategoricalDtype)
    assert isinstance(events["item_id"].dtype, pd.CategoricalDtype)
    as_string = load_events(path, now=NOW, batch_rows=64).events
    assert events["item_id"].astype(str).tolist() == as_string["item_id"].tolist()


def test_dictionary_encoded_parquet_columns_are_read(tmp_path: Path) -> None:
    log = _events(30)
    table = pa.Table.from_pandas(log, preserve_index=False)
    table = table.set_column(0, "user_id", table.column("user_id").dictionary_encode())
    pq.write_table(table, tmp_path / "d.parquet")
    events = load_events(tmp_path / "d.parquet", now=NOW).events
    assert events["user_id"].tolist() == log["user_id"].tolist()


def test_malformed_csv_lines_are_quarantined_and_the_rest_loads(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text(
        "user_id,item_id,event_type,timestamp\n"
        "u1,i1,view,2024-01-01T00:00:00Z\n"
        "u2,i2,view\n"
        "u3,i3,click,2024-01-01T00:00:00Z,surplus\n"
        "u4,i4,purchase,1704067200\n"
    )
    result = load_events(path, now=NOW)
    assert result.events["user_id"].tolist() == ["u1", "u4"]
    assert result.quarantine["reason"].tolist() == ["malformed_row"] * 2
    assert result.quarantine["line"].tolist() == [
        "u2,i2,view",
        "u3,i3,click,2024-01-01T00:00:00Z,surplus",
    ]
    assert result.report.rows_read == 4


# ---- clear errors -----------------------------------------------------------------------
def test_missing_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.parquet"
    with pytest.raises(FileNotFoundError, match="nope.parquet"):
        load_events(missing)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_missing_columns_name_the_file_and_the_columns(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"e{suffix}"
    frame = _events().drop(columns=["timestamp", "item_id"])
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    with pytest.raises(
        ValueError, match=r"e\.(csv|parquet).*missing required columns.*'item_id'.*'timestamp'"
    ):
        load_events(path)


def test_png_passed_as_parquet_or_csv_is_a_clear_error(tmp_path: Path) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    for name, fmt in [("img.parquet", "auto"), ("img.png", "parquet"), ("img.csv", "csv")]:
        path = tmp_path / name
        path.write_bytes(png)
        with pytest.raises(ValueError, match=name.replace(".", r"\.")):
            load_events(path, fmt)


def test_format_detection(tmp_path: Path) -> None:
    _events(3).to_parquet(tmp_path / "log.bin", index=False)
    assert detect_format(tmp_path / "log.bin") == "parquet"  # by magic bytes
    assert detect_format("events.csv.gz") == "csv"
    assert detect_format("postgresql+psycopg://u@h/db") == "sql"
    assert detect_format(pd.DataFrame()) == "frame"


# ---- SQL ------------------------------------------------------------------------------
def test_sql_table_name_and_parameterized_query(db_url: str) -> None:
    log = _events(40)
    engine = sa.create_engine(db_url)
    stored = log.assign(timestamp=log["timestamp"].astype(str))  # SQLite has no tz-aware type
    stored.to_sql("events_log", engine, index=False)
    try:
        whole = load_events(db_url, query="events_log", now=NOW, batch_rows=16)
        assert len(whole.events) == 40 and whole.report.rows_quarantined == 0
        pd.testing.assert_frame_equal(whole.events, load_events(log, now=NOW).events)
        some = load_events(
            engine,
            "sql",
            query="SELECT * FROM events_log WHERE user_id = :u",
            params={"u": "u3"},
            now=NOW,
        )
        assert set(some.events["user_id"]) == {"u3"} and len(some.events) == len(
            log[log.user_id == "u3"]
        )
    finally:
        engine.dispose()


def test_sql_errors_are_clear_and_hide_passwords(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    with pytest.raises(ValueError, match="needs query="):
        load_events(url)
    with pytest.raises(ValueError, match="no_such_table"):
        load_events(url, query="no_such_table")
    engine = sa.create_engine(url)
    pd.DataFrame({"a": [1]}).to_sql("t", engine, index=False)
    engine.dispose()
    with pytest.raises(ValueError, match=r"missing required columns.*user_id"):
        load_events(url, query="t")


# ---- items and styles ---------------------------------------------------------------------
def test_load_items_and_styles_from_files(tmp_path: Path) -> None:
    pd.DataFrame(
        {
            "item_id": ["a", "b", "b"],
            "image_uri": ["a.jpg", None, "b.jpg"],
            "category": ["top", "shoe", "shoe"],
        }
    ).to_csv(tmp_path / "items.csv", index=False)
    items = load_items(tmp_path / "items.csv")
    assert items.items["item_id"].tolist() == ["a", "b"]
    assert items.items["attributes"].tolist() == ["{}", "{}"]
    assert items.report.by_reason == {"duplicate": 1}
    pd.DataFrame(
        {
            "style_id": ["s"],
            "name": ["Mondrian"],
            "image_uri": ["m.jpg"],
            "tags": [["abstract", "grid"]],
        }
    ).to_parquet(tmp_path / "styles.parquet")
    styles = load_styles(tmp_path / "styles.parquet")
    assert styles.styles.iloc[0].tolist() == ["s", "Mondrian", "m.jpg", '["abstract", "grid"]']
    with pytest.raises(ValueError, match=r"styles.csv.*image_uri"):
        pd.DataFrame({"style_id": ["s"]}).to_csv(tmp_path / "styles.csv", index=False)
        load_styles(tmp_path / "styles.csv")


def test_write_quarantine_round_trips(tmp_path: Path) -> None:
    log = pd.DataFrame(
        {
            "user_id": ["u", None],
            "item_id": ["i", "j"],
            "event_type": ["view"] * 2,
            "timestamp": ["2024-01-01"] * 2,
        }
    )
    q = load_events(log, now=NOW).quarantine
    for name in ("q.csv", "q.parquet"):
        out = write_quarantine(q, tmp_path / "sub" / name)
        back = pd.read_csv(out) if name.endswith(".csv") else pd.read_parquet(out)
        assert back["reason"].tolist() == ["missing_id"] and int(back["row"].iloc[0]) == 2
    with pytest.raises(ValueError, match="q.txt"):
        write_quarantine(q, tmp_path / "q.txt")


# ---- CLI ----------------------------------------------------------------------------------
def test_cli_validate_reports_and_writes_quarantine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = _events(20)
    log.loc[3, "event_type"] = "like"
    log.loc[5, "item_id"] = "999"
    log.to_csv(tmp_path / "e.csv", index=False)
    pd.DataFrame({"item_id": log["item_id"].drop(5)}).to_csv(tmp_path / "items.csv", index=False)
    status = cli(
        [
            "validate",
            str(tmp_path / "e.csv"),
            "--catalog",
            str(tmp_path / "items.csv"),
            "--quarantine",
            str(tmp_path / "q.parquet"),
            "--json",
        ]
    )
    report = json.loads(capsys.readouterr().out)
    assert status == 1
    assert (report["rows_valid"], report["rows_quarantined"]) == (18, 2)
    assert report["by_reason"] == {"unknown_event_type": 1, "unknown_item": 1}
    assert len(pd.read_parquet(tmp_path / "q.parquet")) == 2

    _events(5).to_parquet(tmp_path / "ok.parquet")
    assert cli(["validate", str(tmp_path / "ok.parquet")]) == 0
    assert "rows valid" in capsys.readouterr().out
    assert cli(["validate", str(tmp_path / "missing.csv")]) == 2
    assert "missing.csv" in capsys.readouterr().err
