"""Adapters for the real formats: MovieLens ratings/movies and H&M articles + images."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from data.adapters import hm, movielens
from data.loading import load_events
from data.paths import resolve_under
from pipelines.cli import main as cli


def test_movielens_ratings_are_all_valid_clicks(shared_data: Path) -> None:
    ratings = shared_data / "movielens" / "ratings.csv"
    raw = pd.read_csv(ratings)
    result = movielens.load_ratings(ratings, catalog=shared_data / "movielens" / "movies.csv")
    assert result.report.rows_read == len(raw)
    assert result.report.rows_valid == len(raw) and result.report.rows_quarantined == 0
    events = result.events
    assert set(events["event_type"].astype(str)) == {"click"}
    assert events["user_id"].tolist() == raw["userId"].astype(str).tolist()
    assert events["item_id"].tolist() == raw["movieId"].astype(str).tolist()
    seconds = events["timestamp"].astype("int64") // 10**9
    assert seconds.tolist() == raw["timestamp"].tolist()


def test_cli_validate_movielens_reports_every_row_valid(
    shared_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ratings = shared_data / "movielens" / "ratings.csv"
    status = cli(["validate", str(ratings), "--format", "movielens", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert status == 0
    assert report["rows_read"] == report["rows_valid"] == len(pd.read_csv(ratings))
    assert report["rows_quarantined"] == 0 and report["by_reason"] == {}


def test_movielens_bad_rows_are_quarantined_with_original_columns(tmp_path: Path) -> None:
    path = tmp_path / "ratings.csv"
    path.write_text(
        "userId,movieId,rating,timestamp\n"
        "1,10,4.0,964982703\n"
        "1,10,4.0,964982703\n"
        ",11,3.0,964982703\n"
        "2,12.5,3.0,964982703\n"
        "2,13,3.0,notatime\n"
    )
    result = load_events(path, "movielens")
    assert result.events["item_id"].tolist() == ["10"]
    assert result.quarantine["reason"].tolist() == [
        "duplicate",
        "missing_id",
        "bad_id_type",
        "bad_timestamp",
    ]
    assert {"userId", "movieId", "rating", "timestamp"} <= set(result.quarantine.columns)
    (tmp_path / "bad.csv").write_text("user,movieId,timestamp\n")
    with pytest.raises(ValueError, match=r"bad\.csv.*missing required columns \['userId'\]"):
        load_events(tmp_path / "bad.csv", "movielens")


def test_movielens_movies_become_image_less_items(shared_data: Path) -> None:
    result = movielens.load_movies(shared_data / "movielens" / "movies.csv")
    items = result.items
    raw = pd.read_csv(shared_data / "movielens" / "movies.csv")
    assert len(items) == len(raw) and result.report.rows_quarantined == 0
    assert items["image_uri"].isna().all()
    first = items.iloc[0]
    attrs = json.loads(first["attributes"])
    assert first["item_id"] == str(raw["movieId"].iloc[0])
    assert attrs["title"] == raw["title"].iloc[0]
    assert first["category"] == attrs["genres"][0] == raw["genres"].iloc[0].split("|")[0]


def test_hm_articles_link_every_image_by_padded_id(shared_data: Path) -> None:
    articles = shared_data / "hm" / "articles.csv"
    result = hm.load_articles(articles)
    items = result.items
    raw = pd.read_csv(articles)
    assert len(items) == len(raw) and result.report.rows_quarantined == 0
    assert items["item_id"].str.len().eq(10).all()
    assert items["item_id"].tolist() == [f"{a:010d}" for a in raw["article_id"]]
    assert items["category"].tolist() == raw["product_type_name"].tolist()
    for uri, item_id in zip(items["image_uri"], items["item_id"], strict=True):
        path = resolve_under(articles.parent, uri)
        assert path.is_file() and path.stem == item_id
    attrs = json.loads(items["attributes"].iloc[0])
    assert attrs["colour_group_name"] == raw["colour_group_name"].iloc[0]
    assert "product_type_no" not in attrs


def test_hm_articles_without_images_keep_a_missing_uri(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "0000000001.jpg").write_bytes(b"jpg")
    nested = tmp_path / "images" / "000"
    nested.mkdir()
    (nested / "0000000002.jpg").write_bytes(b"jpg")  # Kaggle's images/<id[:3]>/ layout
    (tmp_path / "articles.csv").write_text(
        "article_id,product_type_name,prod_name\n1,Hoodie,A\n2,Sock,B\n3,Hat,C\n"
    )
    items = hm.load_articles(tmp_path / "articles.csv").items
    assert items["image_uri"].tolist()[:2] == ["images/0000000001.jpg", "images/000/0000000002.jpg"]
    assert pd.isna(items["image_uri"].iloc[2])
    with pytest.raises(FileNotFoundError, match="nowhere"):
        hm.load_articles(tmp_path / "articles.csv", images_dir=tmp_path / "nowhere")


def test_catalog_files_of_each_kind_filter_events(shared_data: Path, tmp_path: Path) -> None:
    log = pd.DataFrame(
        {
            "user_id": ["u1", "u2"],
            "item_id": [
                pd.read_csv(shared_data / "hm" / "articles.csv")["article_id"]
                .map(lambda a: f"{a:010d}")
                .iloc[0],
                "0000000000",
            ],
            "event_type": ["view", "view"],
            "timestamp": ["2024-01-01", "2024-01-01"],
        }
    )
    result = load_events(log, catalog=shared_data / "hm" / "articles.csv")
    assert result.report.by_reason == {"unknown_item": 1}
    with pytest.raises(ValueError, match=r"nocatalog.csv.*item_id"):
        (tmp_path / "nocatalog.csv").write_text("a,b\n1,2\n")
        load_events(log, catalog=tmp_path / "nocatalog.csv")
