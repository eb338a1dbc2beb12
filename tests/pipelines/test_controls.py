"""Merchandising controls end to end: a nightly on the demo world with a block, a pin and a
disabled style, then serving overrides over Python and HTTP on the run it published.

The library: every artwork is blocked for mugs (so every segment whose blend has an
artwork needs a fallback for mugs, whichever segments k-means finds), the kraft-paper
material is a campaign pinned to seg-01 at weight 1 for a week around the run's day
(so seg-01 renders the campaign look alone: an exact override), and the concrete
material is disabled.  The night runs twice; the second renders nothing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from PIL import Image

from data.store import Store
from pipelines.config import load_config, write_config
from pipelines.runner import run_nightly

DAY = "2026-06-15"
BLOCKED_CAT = "mug"
PIN_STYLE, PIN_SEG = "m-kraft-paper", "seg-01"
DISABLED = "m-concrete"


@pytest.fixture(scope="module")
def night(small_world, tmp_path_factory) -> dict[str, Any]:
    world = tmp_path_factory.mktemp("controls") / "world"
    shutil.copytree(small_world.dir, world)
    lib = pd.read_csv(world / "library.csv", dtype=str, keep_default_na=False)
    artworks = ~lib["style_id"].str.startswith("m-")
    lib["blocked_categories"] = ""
    lib.loc[artworks, "blocked_categories"] = BLOCKED_CAT
    for col in ("pin_segments", "pin_weight", "active_from", "active_to"):
        lib[col] = ""
    pin = lib["style_id"] == PIN_STYLE
    lib.loc[pin, ["pin_segments", "pin_weight", "active_from", "active_to"]] = [
        PIN_SEG, "1", "2026-06-12", "2026-06-18"]
    lib.loc[lib["style_id"] == DISABLED, "enabled"] = "false"
    lib.to_csv(world / "library.csv", index=False)
    db = f"sqlite:///{world / 'store.db'}"
    write_config({
        "inputs": {"events": ["events.parquet"], "catalog": "items.csv", "styles": "library.csv",
                   "image_root": ".", "now": DAY},
        "model": {"factors": 8, "epochs": 2, "holdout_last": 2},
        "segments": {"k": 3, "n_blend": 2},
        "render": {"mode": "background", "max_side": 64, "format": "png"},
        "outputs": {"store_url": db, "render_dir": "renders", "work_dir": "work",
                    "report_dir": "report"},
    }, world / "stylerec.toml")
    cfg = load_config(world / "stylerec.toml")
    first = run_nightly(cfg)
    second = run_nightly(cfg)
    store = Store(db)
    run_dir = Path(store.get_run(second.run_id)["params"]["run_dir"])
    conds = json.loads((run_dir / "conditions.json").read_text())
    items = pd.read_csv(world / "items.csv", dtype=str)
    return {"world": world, "db": db, "store": store, "first": first, "second": second,
            "conds": conds, "category": dict(zip(items["item_id"], items["category"], strict=True)),
            "artworks": set(lib.loc[artworks, "style_id"])}


def _styles_by_hash(conds: list[dict[str, Any]]) -> dict[str, tuple[str, ...]]:
    out = {}
    for c in conds:
        out[c["condition_hash"]] = tuple(c["style_ids"])
        for v in (c.get("category_variants") or {}).values():
            if v.get("condition_hash"):
                out[v["condition_hash"]] = tuple(v["style_ids"])
    return out


def test_blocked_category_is_never_rendered_in_a_blocked_style(night) -> None:
    store, conds = night["store"], night["conds"]
    styles = _styles_by_hash(conds)
    renders = store.renders_for_run(night["second"].run_id)
    mugs = renders[renders["item_id"].map(night["category"]) == BLOCKED_CAT]
    assert len(mugs), "the run rendered no mug at all"
    for ch in mugs["condition_hash"]:
        assert not set(styles[ch]) & night["artworks"], styles[ch]
    # ...and other products still get the artworks: the block is per category.
    others = renders[renders["item_id"].map(night["category"]) != BLOCKED_CAT]
    assert any(set(styles[ch]) & night["artworks"] for ch in others["condition_hash"])
    # every segment whose own blend has an artwork has a mug fallback (its next allowed blend)
    for c in conds:
        if set(c["style_ids"]) & night["artworks"]:
            var = c["category_variants"][BLOCKED_CAT]
            assert var["style_ids"] and not set(var["style_ids"]) & night["artworks"]
            assert set(var["replaces"]) == set(c["style_ids"]) & night["artworks"]
    counts = night["first"].metrics["render"]["controls"]
    assert counts["blocked_fallback"] == sum(
        1 for c in conds if c.get("category_variants")) * sum(
        1 for v in night["category"].values() if v == BLOCKED_CAT)


def test_pinned_campaign_shows_in_that_segments_renders_and_report(night) -> None:
    conds = {c["segment_id"]: c for c in night["conds"]}
    seg = conds[PIN_SEG]
    assert seg["style_ids"] == [PIN_STYLE] and seg["weights"] == [1.0]
    assert all(PIN_STYLE not in c["style_ids"] for s, c in conds.items() if s != PIN_SEG)
    renders = night["store"].renders_for_run(night["second"].run_id)
    pinned = renders[renders["condition_hash"] == seg["condition_hash"]]
    assert set(pinned["item_id"]) == set(night["category"])  # every product, mugs included
    seg_metrics = night["second"].metrics["segment"]["controls"]
    assert seg_metrics["pinned"] == {PIN_SEG: PIN_STYLE} and seg_metrics["day"] == DAY
    report = night["second"].report_path
    html = report.read_text()
    assert 'id="controls"' in html and "Merchandising controls" in html
    sheet = report.parent / f"controls_pin_{PIN_SEG}.png"
    assert sheet.name in html and sheet.is_file()
    with Image.open(sheet) as im:
        assert im.size[0] > 300 and im.size[1] > 100
    assert (report.parent / "controls_blocked.png").is_file()


def test_disabled_style_leaves_every_condition(night) -> None:
    for c in night["conds"]:
        assert DISABLED not in c["style_ids"]
        for v in (c.get("category_variants") or {}).values():
            assert DISABLED not in v["style_ids"]
    assert DISABLED in night["second"].metrics["segment"]["controls"]["excluded_styles"]


def test_rerun_with_the_same_library_renders_nothing(night) -> None:
    first, second = night["first"].metrics["render"], night["second"].metrics["render"]
    assert first["rendered"] > 0
    assert second["rendered"] == 0 and second["reused"] == second["needed"] == first["needed"]
    assert second["controls"] == first["controls"]
    lib1 = night["store"].style_library_for_run(night["first"].run_id)
    lib2 = night["store"].style_library_for_run(night["second"].run_id)
    assert lib1["digest"] == lib2["digest"] and lib2["day"] == DAY


# ----------------------------------------------------------------------------- serving
@pytest.fixture(scope="module")
def service(night):
    from recsys.serving import PersonalizationService

    return PersonalizationService.from_store(night["db"])


def _user_in(service, seg: str) -> str:
    snap = service.snapshot()
    return next(u for u in snap.user_row if service.segment_of(u) == seg)


def test_override_exact_closest_and_refused_in_python(service, night) -> None:
    snap = service.snapshot()
    items = list(night["category"])
    mug = next(i for i, c in night["category"].items() if c == BLOCKED_CAT)
    user = _user_in(service, next(c["segment_id"] for c in night["conds"]
                                  if c["segment_id"] != PIN_SEG))
    # exact: seg-01 renders the campaign style alone, for every product
    ans = service.rank_response(user, items, style=PIN_STYLE)
    assert {n.status for n in ans.style_notes.values()} == {"exact"}
    assert all(r.style_ids == (PIN_STYLE,) for r in ans.items)
    pin_user = _user_in(service, PIN_SEG)
    same = {r.item_id: r.image_uri for r in service.rank(pin_user, items)}
    assert all(same[r.item_id] == r.image_uri for r in ans.items)
    # closest: an artwork alone was never rendered: the nearest cached blend, said so
    art = sorted(night["artworks"])[0]
    img = service.image_for(user, items[0] if night["category"][items[0]] != BLOCKED_CAT
                            else items[1], style=art)
    assert img.status == "closest" and img.style_ids and "closest" in img.reason
    # refused: an artwork on a mug
    ref = service.image_for(user, mug, style=art)
    assert ref.status == "refused" and f"blocked for category '{BLOCKED_CAT}'" in ref.reason
    assert ref.image_uri == service.image_for(user, mug)  # the shopper's usual image
    notes = service.rank_response(user, items, style=art).style_notes
    assert {i for i, n in notes.items() if n.status == "refused"} == {
        i for i, c in night["category"].items() if c == BLOCKED_CAT}
    # the usual (no override) answer never names a blocked style on a mug
    for r in service.rank(user, items):
        if night["category"][r.item_id] == BLOCKED_CAT:
            assert not set(r.style_ids) & night["artworks"]
    rec = service.recommend_response(user, k=5, style=PIN_STYLE)
    assert len(rec.items) == 5 and set(rec.style_notes) == {r.item_id for r in rec.items}
    with pytest.raises(ValueError, match="unknown style"):
        service.rank(user, items, style="no-such-style")
    assert snap is service.snapshot()


def test_override_over_http_matches_python(service, night) -> None:
    pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
    pytest.importorskip("httpx", reason="fastapi's TestClient needs httpx (serve extra)")
    from fastapi.testclient import TestClient

    from recsys.serving.http import create_app

    client = TestClient(create_app(service))
    items = list(night["category"])
    user = _user_in(service, PIN_SEG)
    art = sorted(night["artworks"])[0]
    body = client.post("/rank", json={"user_id": user, "candidates": items, "style": art}).json()
    py = service.rank_response(user, items, style=art)
    assert [i["item_id"] for i in body["items"]] == [r.item_id for r in py.items]
    assert [i["style_status"] for i in body["items"]] == [
        py.style_notes[r.item_id].status for r in py.items]
    mug = next(i for i, c in night["category"].items() if c == BLOCKED_CAT)
    refused = client.post("/image", json={"user_id": user, "item_id": mug, "style": art})
    assert refused.status_code == 409
    assert f"blocked for category '{BLOCKED_CAT}'" in refused.json()["detail"][0]["msg"]
    ok = client.post("/image", json={"user_id": user, "item_id": mug, "style": PIN_STYLE})
    assert ok.status_code == 200 and ok.json()["style_status"] == "exact"
    plain = client.post("/image", json={"user_id": user, "item_id": mug}).json()
    assert plain["image_uri"] == service.image_for(user, mug)
    rec = client.post("/recommend", json={"user_id": user, "k": 3, "style": PIN_STYLE}).json()
    assert all(i["style_status"] == "exact" for i in rec["items"])
    bad = client.post("/rank", json={"user_id": user, "candidates": items, "style": "nope"})
    assert bad.status_code == 422 and "unknown style" in bad.json()["detail"][0]["msg"]
