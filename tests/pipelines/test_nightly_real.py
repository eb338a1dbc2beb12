"""The nightly job on real images: H&M product photos and real artworks.

Shoppers are simulated over the real catalogue (demo.over_catalog);
everything image-related is real.  Acceptance: every product is rendered for
every segment in ``background`` mode, each render keeps the product within
the just-noticeable colour difference (mean CIEDE2000 inside the product mask
<= 2.3, re-measured here on the decoded files, independently of what the
pipeline recorded), and the report's contact sheets show the renders.
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from nightly_report import check_report
from PIL import Image

from data.adapters.hm import load_articles
from data.store import Store
from demo.over_catalog import simulate_shop
from pipelines.config import load_config, write_config
from pipelines.runner import run_nightly
from stylizer.image_io import load_image
from stylizer.masks import product_mask
from stylizer.metrics import product_delta_e

K = 3
MAX_SIDE = 256
JND = 2.3


@pytest.fixture(scope="module")
def real_night(shared_data: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("real_shop")
    items = load_articles(shared_data / "hm" / "articles.csv", root=shared_data).items
    items = items[items["image_uri"].notna()].reset_index(drop=True)
    styles = pd.DataFrame({"style_id": [p.stem for p in sorted((shared_data / "styles").glob("*.jpg"))]})
    styles["image_uri"] = "styles/" + styles["style_id"] + ".jpg"
    styles["name"] = styles["style_id"].str.replace("_", " ")
    simulate_shop(out, items, styles, n_users=400, events_per_user=30, seed=3)
    cfg = {
        "inputs": {"events": ["events.parquet"], "catalog": "items.csv", "styles": "styles.csv",
                   "image_root": str(shared_data)},
        "model": {"factors": 16, "epochs": 4, "baselines": False},
        "segments": {"k": K, "n_blend": 2},
        "render": {"mode": "background", "max_side": MAX_SIDE, "format": "png"},
        "outputs": {"store_url": f"sqlite:///{out / 'store.db'}", "render_dir": "renders",
                    "work_dir": "work", "report_dir": "report"},
    }
    write_config(cfg, out / "stylerec.toml")
    summary = run_nightly(load_config(out / "stylerec.toml"))
    return out, summary, items


def test_every_product_rendered_for_every_segment(real_night) -> None:
    out, summary, items = real_night
    assert len(items) == 60
    assert summary.metrics["render"]["failed_items"] == 0
    with Store(f"sqlite:///{out / 'store.db'}") as store:
        assert store.current_run_id() == summary.run_id
        renders = store.renders_for_run(summary.run_id)
    assert len(renders) == 60 * K
    assert set(renders["item_id"]) == set(items["item_id"])
    assert renders.groupby("item_id")["condition_hash"].nunique().eq(K).all()


def test_products_keep_their_colours(real_night, shared_data: Path) -> None:
    out, summary, items = real_night
    with Store(f"sqlite:///{out / 'store.db'}") as store:
        renders = store.renders_for_run(summary.run_id)
    uri = dict(zip(items["item_id"], items["image_uri"], strict=True))
    worst = 0.0
    for row in renders.itertuples(index=False):
        original = load_image(shared_data / uri[row.item_id], max_side=MAX_SIDE).rgb
        rendered = np.asarray(Image.open(out / "renders" / row.uri).convert("RGB"))
        assert rendered.shape == original.shape
        mask = product_mask(original)
        de = product_delta_e(original, rendered, mask)
        worst = max(worst, de)
        assert de <= JND, f"{row.item_id}: product delta E {de:.2f} > {JND}"
        # The background did change: this is a render, not a copy.
        assert np.abs(rendered.astype(int) - original.astype(int)).mean() > 3
    # What the pipeline recorded agrees with the independent measurement.
    assert summary.metrics["render"]["product_delta_e_max"] <= JND
    assert worst <= JND


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.images.append(str(dict(attrs)["src"]))


def test_report_shows_segment_contact_sheets(real_night) -> None:
    _, summary, _ = real_night
    assert summary.report_path is not None
    # Every section, table and figure, and no "render missing" placeholder in any sheet.
    check_report(summary.report_path, summary.metrics, K, summary.metrics["train"]["users"],
                 baselines=False)
    parser = _Images()
    parser.feed(summary.report_path.read_text(encoding="utf-8"))
    sheets = [s for s in parser.images if s.startswith("sheet_")]
    assert len(sheets) == K
    for src in sheets:
        img = Image.open(summary.report_path.parent / src)
        img.load()
        # A grid of renders (several thumbnails wide), with real picture content.
        assert img.width >= 300 and img.height >= 100
        assert np.asarray(img.convert("L")).std() > 20
