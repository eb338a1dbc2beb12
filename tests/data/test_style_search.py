"""Text search over the style library (data.styles.search) and ``stylerec styles``.

Runs on the demo world's library (``library.csv``: artworks and backdrop
materials described in English and Chinese).  The demo's vintage/retro looks are
known by construction (demo.style_descriptions), so "vintage first"
is checked against that list, not against what the search returns.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from data.styles import load_style_library
from data.styles.search import StyleSearch, tokenize
from demo.style_descriptions import DESCRIPTIONS

ROOT = Path(__file__).resolve().parents[2]
VINTAGE_WORDS = {"vintage", "retro", "复古", "怀旧"}


@pytest.fixture(scope="module")
def library(small_world):
    return load_style_library(small_world.dir / "library.csv")


def _vintage_ids(lib) -> set[str]:
    """Styles whose demo description tags them vintage/retro (by construction)."""
    out = set()
    for e in lib.entries:
        kind = e.name.rsplit("-", 1)[0] if e.name.rsplit("-", 1)[-1].isdigit() else e.name
        if VINTAGE_WORDS & set(DESCRIPTIONS.get(kind, ("", ()))[1]):
            out.add(e.style_id)
    return out


def test_tokenizer_segments_chinese_and_stems_english() -> None:
    assert tokenize("复古风格的牛皮纸") == ["复古", "牛皮纸"]
    assert tokenize("Vintage looks, STRIPED streetwear") == ["vintag", "stripe", "streetwear"]
    assert tokenize("工业风 minimal") == ["工业风", "minim"]


@pytest.mark.parametrize("query", ["复古", "retro", "vintage look", "怀旧", "复古 vintage"])
def test_vintage_queries_return_the_vintage_styles_first(library, query: str) -> None:
    vintage = _vintage_ids(library)
    assert len(vintage) >= 4
    hits = StyleSearch(library).search(query, k=len(library))
    ids = [h.style_id for h in hits]
    assert set(ids[: len(vintage)]) == vintage, ids
    assert all(h.reasons for h in hits)


def test_synonym_match_says_through_which_word(library) -> None:
    hits = StyleSearch(library).search("怀旧", k=20)
    by_id = {h.style_id: h for h in hits}
    waves = next(e.style_id for e in library.entries if e.name == "waves")  # tagged 复古/retro only
    assert waves in by_id
    assert any("synonym of '怀旧'" in r for r in by_id[waves].reasons), by_id[waves].reasons


def test_mixed_language_query_adds_both_words(library) -> None:
    hits = StyleSearch(library).search("极简 studio", k=5)
    assert hits[0].name == "studio-gradient"  # both words: tag 极简 and name/tag studio
    assert len(hits[0].reasons) >= 2
    minimal = {e.style_id for e in library.entries if "极简" in e.tags}
    assert minimal <= {h.style_id for h in hits}


@pytest.mark.parametrize("query", ["xyzzy qwerty", "量子力学", "the of and", "", "   "])
def test_nonsense_queries_match_nothing(library, query: str) -> None:
    assert StyleSearch(library).search(query) == []


def test_more_like_this_uses_style_codes(library) -> None:
    rng = np.random.default_rng(0)
    codes = {e.style_id: rng.normal(size=100) for e in library.entries}
    target = next(e.style_id for e in library.entries if e.name == "woodcut")
    twin = next(e.style_id for e in library.entries if e.name == "mosaic")  # no vintage words
    codes[twin] = codes[target] + 0.01 * rng.normal(size=100)
    hits = StyleSearch(library, codes).search("复古", k=len(library))
    ids = [h.style_id for h in hits]
    vintage = _vintage_ids(library)
    assert set(ids[: len(vintage)]) == vintage  # words first
    assert twin in ids[len(vintage):]
    h = hits[ids.index(twin)]
    assert h.text_score == 0 and h.similarity > 0.9
    assert any(f"looks like {target}" in r for r in h.reasons), h.reasons
    words_only = [x.style_id for x in StyleSearch(library).search("复古", k=len(library))]
    assert twin not in words_only


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("STYLEREC_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], capture_output=True,
                          text=True, env=env, cwd=cwd or ROOT, timeout=120)


def test_cli_search_json_list_show_and_no_match(library) -> None:
    lib = library.source
    out = _cli("styles", "search", "复古", "--library", lib, "--json")
    assert out.returncode == 0, out.stderr
    ans = json.loads(out.stdout)  # only JSON on stdout
    assert {r["style_id"] for r in ans["results"][: len(_vintage_ids(library))]} == \
        _vintage_ids(library)
    assert ans["results"][0]["reasons"]
    text = _cli("styles", "search", "vintage look", "--library", lib)
    assert text.returncode == 0 and "tags has 'vintage'" in text.stdout, text.stdout
    none = _cli("styles", "search", "xyzzy", "--library", lib)
    assert none.returncode == 0 and "no style matches 'xyzzy'" in none.stdout
    assert len(none.stdout.strip().splitlines()) == 1
    listed = _cli("styles", "list", "--library", lib, "--json")
    assert [s["style_id"] for s in json.loads(listed.stdout)["styles"]] == library.ids
    shown = _cli("styles", "show", library.ids[0], "--library", lib)
    assert shown.returncode == 0 and "description" in shown.stdout


def test_cli_malformed_library_exits_2_naming_the_line(tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text("style_id,image_uri,active_to\na,nope.png,someday\n")
    out = _cli("styles", "list", "--library", str(tmp_path / "bad.csv"))
    assert out.returncode == 2
    assert "line 2" in out.stderr and "someday" in out.stderr and "not found" in out.stderr


def test_cli_uses_the_config_library_by_default(small_world, tmp_path: Path) -> None:
    from pipelines.config import write_config

    write_config({"inputs": {"events": [str(small_world.dir / "events.parquet")],
                             "catalog": str(small_world.dir / "items.csv"),
                             "styles": str(small_world.dir / "library.csv"),
                             "image_root": str(small_world.dir)}},
                 tmp_path / "stylerec.toml")
    out = _cli("styles", "search", "极简", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    names = [r["name"] for r in json.loads(out.stdout)["results"]]
    assert "studio-gradient" in names[:3]
