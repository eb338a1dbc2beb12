"""Contact sheets: grid geometry, placeholders, labels, header strip, paths, atomic write."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stylizer import contact_sheet
from stylizer.image_io import save_image
from stylizer.sheet import PLACEHOLDER_GREY

RED, BLUE, GREEN = (220, 20, 30), (20, 40, 210), (30, 180, 40)


def _solid(colour: tuple[int, int, int], h: int = 60, w: int = 40) -> np.ndarray:
    return np.broadcast_to(np.array(colour, np.uint8), (h, w, 3)).copy()


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.format == "PNG"
        return np.asarray(im.convert("RGB")).astype(int)


def _find(img: np.ndarray, colour: tuple[int, int, int]) -> tuple[int, int, int, int]:
    """Bounding box (y0, x0, y1, x1) of pixels within 3 levels of ``colour``."""
    hit = np.all(np.abs(img - np.array(colour)) <= 3, axis=-1)
    assert hit.any(), f"{colour} not found"
    ys, xs = np.nonzero(hit)
    return ys.min(), xs.min(), ys.max() + 1, xs.max() + 1


def test_grid_places_cells_in_order_and_keeps_aspect(tmp_path: Path) -> None:
    out = contact_sheet(
        [[_solid(RED), _solid(BLUE, 30, 90)], [_solid(GREEN)]], tmp_path / "s.png", thumb=64
    )
    img = _read(out)
    red, blue, green = _find(img, RED), _find(img, BLUE), _find(img, GREEN)
    # red (portrait 60x40) -> 64 tall, ~43 wide; blue (landscape 30x90) -> 64 wide, ~21 tall
    assert red[2] - red[0] == 64 and abs((red[3] - red[1]) - 43) <= 1
    assert blue[3] - blue[1] == 64 and abs((blue[2] - blue[0]) - 21) <= 1
    assert blue[1] > red[3]  # second column to the right of the first
    assert green[0] > red[2] and abs(green[1] - red[1]) <= 1  # next row, same column
    # two columns of 64 px plus padding; no label column
    assert img.shape[1] < 2 * 64 + 20 and img.shape[0] < 2 * 64 + 20


def test_missing_cells_and_unreadable_files_are_grey_placeholders(tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    out = contact_sheet([[None, broken, _solid(RED)]], tmp_path / "s.png", thumb=48)
    img = _read(out)
    grey = np.all(img == PLACEHOLDER_GREY, axis=-1)
    ys, xs = np.nonzero(grey)
    # two full 48x48 grey squares
    assert grey.sum() == 2 * 48 * 48
    assert xs.max() < _find(img, RED)[1]


def test_paths_and_grey_or_rgba_arrays_are_accepted(tmp_path: Path) -> None:
    p = save_image(tmp_path / "blue.png", _solid(BLUE, 200, 100))
    rgba = np.dstack([_solid(GREEN), np.full((60, 40), 255, np.uint8)])
    grey = np.full((50, 50), 90, np.uint8)
    img = _read(contact_sheet([[p, rgba, grey]], tmp_path / "s.png", thumb=40))
    blue = _find(img, BLUE)
    assert blue[2] - blue[0] == 40  # a 200-px file loaded at thumbnail size
    _find(img, GREEN)
    _find(img, (90, 90, 90))


def test_labels_and_title_take_space_and_draw_text(tmp_path: Path) -> None:
    rows = [[_solid(RED)], [_solid(BLUE)]]
    plain = _read(contact_sheet(rows, tmp_path / "a.png", thumb=64))
    labelled = _read(
        contact_sheet(
            rows,
            tmp_path / "b.png",
            row_labels=["maroon jacket", "blue dress"],
            col_labels=["mondrian"],
            header="segment 3",
            thumb=64,
        )
    )
    assert labelled.shape[1] > plain.shape[1] + 20  # a label column
    assert labelled.shape[0] > plain.shape[0] + 20  # title and column-label lines
    red = _find(labelled, RED)
    left_of_cells = labelled[:, : red[1] - 2]
    dark = np.all(left_of_cells < 100, axis=-1)
    assert dark.sum() > 30  # the row labels' glyphs
    above_cells = labelled[: red[0] - 2]
    assert np.all(above_cells < 100, axis=-1).sum() > 30  # title and column label


def test_header_strip_aligns_with_columns(tmp_path: Path) -> None:
    rows = [[_solid(RED), _solid(RED)]]
    img = _read(
        contact_sheet(rows, tmp_path / "s.png", header=[None, _solid(GREEN, 64, 64)], thumb=64)
    )
    green, red = _find(img, GREEN), _find(img, RED)
    assert green[2] <= red[0]  # above the grid
    assert green[1] > img.shape[1] // 2  # in the second column's slot
    # a None header slot is left empty, not grey
    assert not np.any(np.all(img == PLACEHOLDER_GREY, axis=-1))


def test_report_style_call(tmp_path: Path) -> None:
    """The nightly report's call: two rows, row labels, a strip of style thumbnails."""
    originals = [_solid(RED), _solid(BLUE)]
    renders = [_solid(GREEN), None]
    out = contact_sheet(
        [originals, renders],
        tmp_path / "seg.png",
        row_labels=["original", "segment 0"],
        header=[_solid(BLUE, 80, 120)],
        thumb=48,
    )
    assert out == tmp_path / "seg.png"
    img = _read(out)
    assert np.all(img == PLACEHOLDER_GREY, axis=-1).sum() == 48 * 48
    assert not list(tmp_path.glob("*.tmp"))  # atomic write leaves no temp file


def test_argument_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one"):
        contact_sheet([], tmp_path / "s.png")
    with pytest.raises(ValueError, match="row labels"):
        contact_sheet([[None]], tmp_path / "s.png", row_labels=["a", "b"])
    with pytest.raises(ValueError, match="column labels"):
        contact_sheet([[None, None]], tmp_path / "s.png", col_labels=["a"])
    with pytest.raises(ValueError, match="uint8"):
        contact_sheet([[np.zeros((4, 4, 3), np.float32)]], tmp_path / "s.png")
    assert not (tmp_path / "s.png").exists()


def test_webp_and_jpeg_by_suffix_are_smaller(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)
    rows = [[photo, photo[::-1]] for _ in range(3)]
    png = contact_sheet(rows, tmp_path / "s.png", thumb=64)
    webp = contact_sheet(rows, tmp_path / "s.webp", thumb=64, quality=60)
    jpg = contact_sheet(rows, tmp_path / "s.jpg", thumb=64, quality=60)
    with Image.open(webp) as a, Image.open(jpg) as b, Image.open(png) as c:
        assert (a.format, b.format, c.format) == ("WEBP", "JPEG", "PNG")
        assert a.size == b.size == c.size
    assert webp.stat().st_size < png.stat().st_size
    assert jpg.stat().st_size < png.stat().st_size
