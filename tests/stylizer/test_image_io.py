"""Bad and unusual catalog images: each one renders correctly or fails naming the file."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from stylizer.image_io import (
    ImageError,
    encode_image,
    load_image,
    load_mask,
    resize_max_side,
    save_image,
)


def _gradient(h: int = 40, w: int = 60) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), np.full_like(x, 90)], -1).astype(
        np.uint8
    )


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_plain_rgb_roundtrip(tmp_path: Path) -> None:
    rgb = _gradient()
    path = save_image(tmp_path / "a.png", rgb)
    loaded = load_image(path)
    assert loaded.rgb.dtype == np.uint8 and loaded.rgb.shape == (40, 60, 3)
    np.testing.assert_array_equal(loaded.rgb, rgb)
    assert loaded.alpha is None and loaded.path == path


def test_corrupt_file_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "corrupt.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg" * 10)
    with pytest.raises(ImageError, match="corrupt.jpg") as info:
        load_image(bad)
    assert isinstance(info.value, ValueError)
    assert info.value.path == str(bad)


def test_truncated_file_is_an_image_error(tmp_path: Path) -> None:
    good = tmp_path / "full.png"
    save_image(good, np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    data = good.read_bytes()
    cut = tmp_path / "truncated.png"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated.png"):
        load_image(cut)


def test_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.png"):
        load_image(tmp_path / "nope.png")


def test_one_pixel_image_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dot.png"
    Image.new("RGB", (1, 1), (10, 20, 30)).save(path)
    with pytest.raises(ImageError, match="dot.png.*too small"):
        load_image(path)


def test_decompression_bomb_refused_before_decoding(tmp_path: Path) -> None:
    # A hand-made PNG whose IHDR declares 20000 x 20000 but carries almost no data:
    # refusing it must come from the header, not from trying to decode 400 M pixels.
    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1000)
    png = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat)
    path = tmp_path / "bomb.png"
    path.write_bytes(png + _png_chunk(b"IEND", b""))
    assert path.stat().st_size < 2000
    with pytest.raises(ImageError, match=r"bomb.png.*(20000x20000|bomb)"):
        load_image(path)


def test_max_pixels_is_honoured(tmp_path: Path) -> None:
    path = save_image(tmp_path / "big.png", np.zeros((100, 100, 3), np.uint8))
    with pytest.raises(ImageError, match="big.png.*exceeds"):
        load_image(path, max_pixels=5000)


def test_grayscale_becomes_rgb(tmp_path: Path) -> None:
    grey = np.tile(np.arange(0, 250, 5, dtype=np.uint8), (20, 1))
    path = tmp_path / "grey.png"
    Image.fromarray(grey, "L").save(path)
    rgb = load_image(path).rgb
    assert rgb.shape == (20, 50, 3)
    for c in range(3):
        np.testing.assert_array_equal(rgb[:, :, c], grey)


def test_16bit_grey_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (16, 1))
    path = tmp_path / "deep.png"
    assert cv2.imwrite(str(path), ramp)
    rgb = load_image(path).rgb
    expected = np.rint(ramp / 257.0).astype(np.uint8)
    assert np.abs(rgb[:, :, 0].astype(int) - expected).max() <= 1
    assert rgb[0, 32, 0] < 200  # mid-range stays mid-range (clipping would give 255)


def test_16bit_colour_png(tmp_path: Path) -> None:
    rgb8 = _gradient()
    rgb16 = rgb8.astype(np.uint16) * 257
    path = tmp_path / "deep_rgb.png"
    assert cv2.imwrite(str(path), rgb16[:, :, ::-1].copy())
    loaded = load_image(path).rgb
    assert np.abs(loaded.astype(int) - rgb8.astype(int)).max() <= 1


def test_cmyk_jpeg_converted(tmp_path: Path) -> None:
    path = tmp_path / "print.jpg"
    # Pure cyan in CMYK must come out with red low and green/blue high.
    Image.new("CMYK", (32, 32), (255, 0, 0, 0)).save(path, quality=95)
    rgb = load_image(path).rgb
    r, g, b = rgb[16, 16].astype(int)
    assert r < 60 and g > 180 and b > 180


def test_rgba_keeps_alpha_and_composites_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((30, 30, 4), np.uint8)
    rgba[:, :, 0] = 200
    rgba[10:20, 10:20, 3] = 255
    path = tmp_path / "cutout.png"
    Image.fromarray(rgba, "RGBA").save(path)
    loaded = load_image(path)
    assert loaded.alpha is not None
    assert loaded.alpha[15, 15] == 255 and loaded.alpha[0, 0] == 0
    np.testing.assert_array_equal(loaded.rgb[15, 15], [200, 0, 0])
    np.testing.assert_array_equal(loaded.rgb[0, 0], [255, 255, 255])


def test_opaque_alpha_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "opaque.png"
    Image.new("RGBA", (20, 20), (1, 2, 3, 255)).save(path)
    assert load_image(path).alpha is None


def test_palette_image_with_transparency(tmp_path: Path) -> None:
    im = Image.new("P", (20, 20), 0)
    im.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    im.paste(1, (0, 0, 10, 20))
    im.info["transparency"] = 0
    path = tmp_path / "pal.png"
    im.save(path, transparency=0)
    loaded = load_image(path)
    assert loaded.alpha is not None and loaded.alpha[5, 5] == 255 and loaded.alpha[5, 15] == 0
    np.testing.assert_array_equal(loaded.rgb[5, 5], [0, 0, 255])


def test_exif_rotation_is_applied(tmp_path: Path) -> None:
    rgb = np.zeros((20, 40, 3), np.uint8)  # wide; red mark on the left half
    rgb[:, :20] = (255, 0, 0)
    im = Image.fromarray(rgb)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "phone.jpg"
    im.save(path, exif=exif, quality=95)
    loaded = load_image(path).rgb
    assert loaded.shape[:2] == (40, 20)  # displayed upright: tall
    assert loaded[5, 10, 0] > 200 and loaded[35, 10, 0] < 60  # left half went to the top


def test_max_side_downscales(tmp_path: Path) -> None:
    path = save_image(tmp_path / "wide.jpg", _gradient(200, 400))
    loaded = load_image(path, max_side=100)
    assert loaded.shape == (50, 100)
    assert resize_max_side(loaded.rgb, 500) is loaded.rgb  # never upscales


def test_save_formats_and_atomicity(tmp_path: Path) -> None:
    rgb = _gradient()
    for fmt in ("png", "webp", "jpg"):
        out = save_image(tmp_path / f"x.{fmt}", rgb)
        back = load_image(out).rgb
        assert back.shape == rgb.shape
        assert np.abs(back.astype(int) - rgb.astype(int)).mean() < 3
    assert not list(tmp_path.glob(".*.tmp"))
    with pytest.raises(ValueError, match="unsupported"):
        encode_image(rgb, "gif")


def test_load_mask_from_grey_and_alpha(tmp_path: Path) -> None:
    grey = np.zeros((10, 10), np.uint8)
    grey[:, 5:] = 255
    Image.fromarray(grey, "L").save(tmp_path / "m.png")
    mask = load_mask(tmp_path / "m.png", shape=(20, 20))
    assert mask.shape == (20, 20) and mask.dtype == np.float32
    assert mask[10, 2] == 0.0 and mask[10, 18] == 1.0
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[:5, :, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    amask = load_mask(tmp_path / "a.png")
    assert amask[2, 2] == 1.0 and amask[8, 2] == 0.0
