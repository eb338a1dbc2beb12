"""Per-style scene strength: the library's optional column, blended per condition."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from pipelines.config import ConfigError, load_config
from pipelines.stages.common import condition_strengths, style_strengths


def _ctx(styles: Path) -> SimpleNamespace:
    config = SimpleNamespace(inputs=SimpleNamespace(styles=str(styles)), path=lambda v: Path(v))
    return SimpleNamespace(config=config)


def test_library_strength_column_is_optional_and_checked(tmp_path: Path) -> None:
    lib = tmp_path / "styles.csv"
    pd.DataFrame({"style_id": ["a", "b"], "image_uri": ["a.png", "b.png"]}).to_csv(lib, index=False)
    assert style_strengths(_ctx(lib)) == {}
    pd.DataFrame({
        "style_id": ["a", "b", "c", "d", "e"], "image_uri": ["x"] * 5,
        "strength": ["0.4", "", "1.5", "soft", "1"],
    }).to_csv(lib, index=False)
    assert style_strengths(_ctx(lib)) == {"a": 0.4, "e": 1.0}  # empty / bad: the default


def test_condition_strength_is_the_blend_of_its_styles() -> None:
    conds = [
        {"style_ids": ["a", "m"], "weights": [0.75, 0.25]},
        {"style_ids": ["x"], "weights": [1.0]},
        {"style_ids": [], "weights": []},
    ]
    got = condition_strengths(conds, {"a": 0.4, "m": 0.8}, default=0.6)
    assert got == pytest.approx([0.5, 0.6, 0.6])


def test_render_config_keys_are_range_checked(tmp_path: Path) -> None:
    base = (
        '[inputs]\nevents = ["e.csv"]\ncatalog = "items.csv"\nstyles = "styles.csv"\n'
        "[render]\n"
    )
    cfg_path = tmp_path / "c.toml"
    cfg_path.write_text(base + "scene_strength = 0.3\nshadow_strength = 0.0\n")
    cfg = load_config(cfg_path)
    assert cfg.render.scene_strength == 0.3 and cfg.render.shadow_strength == 0.0
    for bad in ("scene_strength = 1.2", "shadow_strength = -0.1", "tone = nan"):
        cfg_path.write_text(base + bad + "\n")
        with pytest.raises(ConfigError, match=bad.split(" ")[0]):
            load_config(cfg_path)
