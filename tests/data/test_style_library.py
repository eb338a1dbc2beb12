"""The described style library (data.styles.library): parsing, line-naming errors, the store's copy."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from data.store import Store
from data.styles import StyleLibrary, StyleLibraryError, load_style_library


def _images(folder: Path, *names: str) -> None:
    (folder / "styles").mkdir(exist_ok=True)
    for n in names:
        (folder / "styles" / f"{n}.png").write_bytes(b"png")


def test_todays_four_columns_stay_valid(tmp_path: Path) -> None:
    _images(tmp_path, "a", "b")
    (tmp_path / "styles.csv").write_text(
        "style_id,name,image_uri,tags\na,Alpha,styles/a.png,bold;warm\nb,,styles/b.png,\n")
    lib = load_style_library(tmp_path / "styles.csv")
    assert lib.ids == ["a", "b"]
    a = lib["a"]
    assert a.tags == ("bold", "warm") and a.enabled and a.allowed_categories is None
    assert a.allows("anything") and a.usable_on(date(2030, 1, 1)) and a.strength is None
    assert len(lib.digest) == 64


def test_every_optional_column_is_parsed(tmp_path: Path) -> None:
    _images(tmp_path, "a")
    (tmp_path / "lib.csv").write_text(
        "style_id,name,image_uri,tags,description,strength,allowed_categories,"
        "blocked_categories,active_from,active_to,enabled,pin_segments,pin_weight\n"
        "a,复古木刻,styles/a.png,复古;vintage,老式版画 old print,0.4,,baby;kids,"
        "2026-12-01,2026-12-07,yes,seg-01;seg-02,0.7\n", encoding="utf-8")
    e = load_style_library(tmp_path / "lib.csv")["a"]
    assert e.name == "复古木刻" and e.tags == ("复古", "vintage") and e.strength == 0.4
    assert e.blocked_categories == {"baby", "kids"} and e.pin_segments == ("seg-01", "seg-02")
    assert e.pin_weight == 0.7 and e.enabled
    assert not e.allows("baby") and e.allows("shoe") and "blocked" in e.refusal("kids")
    assert e.active_on(date(2026, 12, 7)) and not e.active_on(date(2026, 12, 8))
    assert not e.active_on(date(2026, 11, 30))


def test_allow_list_refuses_other_and_missing_categories(tmp_path: Path) -> None:
    _images(tmp_path, "a")
    (tmp_path / "lib.csv").write_text(
        "style_id,image_uri,allowed_categories,enabled\na,styles/a.png,shoe;bag,false\n")
    e = load_style_library(tmp_path / "lib.csv")["a"]
    assert e.allows("shoe") and not e.allows("mug") and not e.allows(None)
    assert not e.usable_on(date(2026, 1, 1))  # disabled
    assert "allowed only on bag, shoe" in e.refusal("mug")


def test_malformed_library_names_each_line(tmp_path: Path) -> None:
    _images(tmp_path, "a", "b")
    (tmp_path / "bad.csv").write_text(
        "style_id,name,image_uri,active_from,active_to,strength,enabled\n"   # line 1
        "a,A,styles/a.png,2026-01-01,2026-02-01,0.5,true\n"                 # 2: fine
        "a,dup,styles/b.png,,,,\n"                                          # 3: duplicate id
        "c,C,styles/missing.png,,,,\n"                                      # 4: missing image
        "d,D,styles/b.png,2026-13-01,,,\n"                                  # 5: bad date
        "e,E,styles/b.png,2026-03-01,2026-02-01,,\n"                        # 6: ends before start
        "f,F,styles/b.png,,,1.5,maybe\n"                                    # 7: strength, enabled
        "g,G,../outside.png,,,,\n"                                          # 8: escapes the folder
        ",H,styles/b.png,,,,\n")                                            # 9: empty id
    with pytest.raises(StyleLibraryError) as err:
        load_style_library(tmp_path / "bad.csv")
    by_line = {}
    for p in err.value.problems:
        by_line.setdefault(p.line, []).append(f"{p.column}: {p.message}")
    assert sorted(by_line) == [3, 4, 5, 6, 7, 8, 9], by_line
    assert "duplicate style_id 'a' (first on line 2)" in by_line[3][0]
    assert "not found" in by_line[4][0]
    assert "active_from" in by_line[5][0] and "not a date" in by_line[5][0]
    assert "ends" in by_line[6][0]
    assert any("strength" in m for m in by_line[7]) and any("enabled" in m for m in by_line[7])
    text = str(err.value)
    for line in (3, 4, 5, 6, 7, 8, 9):
        assert f"line {line}" in text


def test_unknown_and_missing_columns_are_header_errors(tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text("style_id,name,colour\na,A,red\n")
    with pytest.raises(StyleLibraryError) as err:
        load_style_library(tmp_path / "bad.csv")
    msgs = [str(p) for p in err.value.problems]
    assert any(m.startswith("line 1, colour: unknown column 'colour'") for m in msgs), msgs
    assert any("required column 'image_uri' is missing" in m for m in msgs), msgs


def test_records_round_trip_and_the_store_keeps_the_runs_library(tmp_path: Path) -> None:
    _images(tmp_path, "a")
    (tmp_path / "lib.csv").write_text(
        "style_id,image_uri,tags,blocked_categories,active_from,pin_segments\n"
        "a,styles/a.png,极简;minimal,mug,2026-12-01,seg-00\n", encoding="utf-8")
    lib = load_style_library(tmp_path / "lib.csv")
    again = StyleLibrary.from_records(lib.to_records(), lib.source, lib.digest)
    assert again.entries == lib.entries
    with Store(f"sqlite:///{tmp_path / 'db.sqlite'}") as store:
        r1 = store.create_run({}, stages=("ingest",))
        r2 = store.create_run({}, stages=("ingest",))
        store.save_style_library(r1, lib.digest, lib.source, lib.to_records(), "2026-12-02")
        store.save_style_library(r2, lib.digest, lib.source, lib.to_records(), "2026-12-03")
        assert store.style_library_for_run(r1)["day"] == "2026-12-02"
        rec = store.style_library_for_run(r2)
        assert rec["digest"] == lib.digest
        assert StyleLibrary.from_records(rec["entries"]).entries == lib.entries
        with store.engine.connect() as conn:  # one copy per digest, one pointer per run
            n = conn.exec_driver_sql("select count(*) from style_libraries").scalar()
        assert n == 1
        with pytest.raises(KeyError, match="no-such-run"):
            store.save_style_library("no-such-run", lib.digest, None, [])


def test_images_are_checked_under_the_given_root(tmp_path: Path) -> None:
    root = tmp_path / "shop"
    root.mkdir()
    _images(root, "a")
    (tmp_path / "lib.csv").write_text("style_id,image_uri\na,styles/a.png\n")
    with pytest.raises(StyleLibraryError, match="line 2, image_uri"):
        load_style_library(tmp_path / "lib.csv")  # default: relative to the file
    assert load_style_library(tmp_path / "lib.csv", image_root=root).ids == ["a"]
