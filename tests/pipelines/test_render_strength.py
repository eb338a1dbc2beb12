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


def test_the_night_judges_the_rim_against_the_scene_when_the_renderer_gives_it(tmp_path: Path) -> None:
    """A scene that matches the old paper next to the product is no rim; kept paper is one."""
    import cv2
    import numpy as np
    from PIL import Image

    from pipelines.cache import RenderCache
    from pipelines.executors.work import RenderJob, render_job

    photo = np.full((96, 96, 3), 230, np.uint8)
    photo[30:66, 30:66] = (150, 20, 40)
    Image.fromarray(photo).save(tmp_path / "p.png")
    mask = np.zeros((96, 96), np.float32)
    mask[30:66, 30:66] = 1.0
    ring = cv2.dilate(mask, np.ones((25, 25), np.uint8)) > 0

    class Fake:
        """Shows the paper in a ring around the product; the scene there is paper or dark."""

        mode, max_side = "background", 96

        def __init__(self, scene_is_paper: bool, detailed: bool) -> None:
            self.scene = np.full_like(photo, 60)
            if scene_is_paper:
                self.scene[ring] = 230
            if not detailed:
                self.render_detailed = None  # type: ignore[assignment]

        def mask_for(self, rgb: np.ndarray, alpha: np.ndarray | None = None) -> np.ndarray:
            return mask

        def render_detailed(self, images, codes, masks, **kw):  # noqa: ANN001, ANN003
            image = np.where(ring[..., None], photo, self.scene)
            return [SimpleNamespace(image=image, scene=self.scene) for _ in images]

        def render(self, images, codes, masks, **kw):  # noqa: ANN001, ANN003
            return [np.where(ring[..., None], photo, self.scene) for _ in images]

    job = RenderJob("i", str(tmp_path / "p.png"), ["ab" * 32], np.zeros((1, 100), np.float32), ["c"])
    rims = {}
    for name, fake in {
        "chance": Fake(scene_is_paper=True, detailed=True),
        "kept": Fake(scene_is_paper=False, detailed=True),
        "no_scene": Fake(scene_is_paper=True, detailed=False),
    }.items():
        out = render_job(fake, RenderCache(tmp_path / name, "png"), job)
        assert out.error is None and out.written == job.keys
        rims[name] = out.rim[job.keys[0]]
    assert rims["chance"] == 0.0  # the scene itself is the paper's colour there
    assert rims["kept"] > 0.9  # paper kept where the scene is dark
    assert rims["no_scene"] > 0.9  # without the scene, every unchanged pixel counts
