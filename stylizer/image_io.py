"""Reading and writing catalog images safely.

Catalog images come from many hands: CMYK JPEGs from print workflows, 16-bit
PNGs from retouchers, phone photos that rely on an EXIF orientation tag,
cut-outs with an alpha channel, and now and then a corrupt upload or a
"decompression bomb" whose header declares a gigantic canvas.  Everything the
stylizer does downstream assumes an 8-bit sRGB ``H x W x 3`` array, so this
module is the single place where such files are normalised or refused with an
:class:`ImageError` that names the file, letting a batch report the bad file
and carry on with the rest.
"""

from __future__ import annotations

import io
import os
import secrets
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "MIN_SIDE",
    "ImageError",
    "LoadedImage",
    "load_image",
    "load_mask",
    "open_regular_file",
    "resize_max_side",
    "save_image",
    "encode_image",
]

#: Refuse images whose header declares more pixels than this (checked before decoding,
#: so a 20000 x 20000 bomb costs a header read, not 1.2 GB of memory).
DEFAULT_MAX_PIXELS = 50_000_000
#: Smaller images carry no usable product or style information.
MIN_SIDE = 8

_FORMATS = {"png": "PNG", "webp": "WEBP", "jpg": "JPEG", "jpeg": "JPEG"}


class ImageError(ValueError):
    """An image that cannot be used; carries the file so batch reports can name it.

    A ``ValueError`` subclass so that the CLI's user-error handling turns it into
    one clear line instead of a traceback.
    """

    def __init__(self, path: str | os.PathLike[str] | None, reason: str) -> None:
        self.path = None if path is None else str(path)
        self.reason = reason
        super().__init__(f"{self.path or '<image>'}: {reason}")


@dataclass(frozen=True)
class LoadedImage:
    """A decoded image: ``rgb`` uint8 ``H x W x 3`` sRGB, optional uint8 ``alpha`` ``H x W``.

    ``alpha`` is kept apart because a cut-out's alpha is the best product mask
    there is (it always wins over the estimated one); the RGB of transparent
    pixels is composited over white, the way shops display cut-outs.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    path: Path | None

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` of the decoded image."""
        return int(self.rgb.shape[0]), int(self.rgb.shape[1])


def _scaled_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    if max_side is None or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _float_to_rgb(arr: np.ndarray) -> np.ndarray:
    """A float (mode ``F``) image as 8-bit grey RGB, or :class:`ValueError` saying why not.

    Float TIFFs come in [0, 1] (linear scientific or HDR exports) or in the
    8/16-bit ranges; reading [0, 1] data as 0..255 rendered them black with no
    error.  Values outside [0, 65535] or non-finite ones have no meaning we can
    guess, so such files are refused with the reason.
    """
    if not np.isfinite(arr).all():
        raise ValueError("float image with NaN or infinite pixels")
    lo, hi = float(arr.min(initial=0.0)), float(arr.max(initial=0.0))
    if lo < 0.0 or hi > 65535.0:
        raise ValueError(f"float image with values in [{lo:g}, {hi:g}] (expected [0, 1] or 0..65535)")
    scale = 255.0 if hi <= 1.0 else (1.0 if hi <= 255.0 else 1.0 / 257.0)
    grey = np.clip(np.rint(arr * scale), 0, 255).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def open_regular_file(path: str | os.PathLike[str]) -> io.BufferedReader:
    """Open ``path`` for reading only if it is a regular file; never blocks.

    A FIFO (or a device) in an image folder made ``open()`` wait forever for a
    writer and hung the night.  The file is opened with ``O_NONBLOCK`` (which
    regular files ignore) and checked with ``fstat`` on the open descriptor, so
    there is no window between the check and the open.  Raises
    ``FileNotFoundError`` for a missing file and :class:`ImageError` for
    anything that is not a regular file.
    """
    p = Path(path)

    def _nonblocking(name: str, flags: int) -> int:
        return os.open(name, flags | getattr(os, "O_NONBLOCK", 0))

    try:
        # opener=: the file object keeps the path as its name (errors name the file).
        fh = open(p, "rb", opener=_nonblocking)  # noqa: SIM115 - returned to the caller
    except FileNotFoundError:
        raise FileNotFoundError(f"{p}: no such image file") from None
    except IsADirectoryError:
        raise ImageError(p, "is a directory, not an image file") from None
    except OSError as exc:
        raise ImageError(p, f"cannot open ({exc.strerror or exc})") from None
    try:
        mode = os.fstat(fh.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise ImageError(p, f"not a regular file ({_file_kind(mode)})")
        return fh
    except BaseException:
        fh.close()
        raise


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISDIR, "a directory"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "a special file"


def _to_rgb_alpha(im: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """Convert any Pillow mode to (uint8 RGB, uint8 alpha or None) without clipping 16-bit data."""
    mode = im.mode
    if mode == "F":
        return _float_to_rgb(np.asarray(im, dtype=np.float64)), None
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        arr = np.asarray(im).astype(np.float64)
        # 16-bit data must be scaled to 8 bit; clipping would turn every mid-grey white.
        # Mode "I" is what Pillow uses for 16-bit greyscale PNGs too, so scale when the
        # values exceed the 8-bit range.
        if mode.startswith("I;16") or arr.max(initial=0) > 255:
            arr = arr / 257.0
        grey = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2), None
    if mode == "CMYK":
        profile = im.info.get("icc_profile")
        if profile:
            # A CMYK file with an embedded profile is converted through it: the naive
            # formula gives visibly wrong (too saturated) colours for press profiles.
            try:
                src = ImageCms.ImageCmsProfile(io.BytesIO(profile))
                dst = ImageCms.createProfile("sRGB")
                im = ImageCms.profileToProfile(im, src, dst, outputMode="RGB")
            except (ImageCms.PyCMSError, OSError):
                im = im.convert("RGB")
        else:
            im = im.convert("RGB")
        return np.asarray(im, dtype=np.uint8).copy(), None
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        mode in ("P", "L", "RGB") and "transparency" in im.info
    )
    if has_alpha:
        rgba = np.asarray(im.convert("RGBA"), dtype=np.uint8)
        alpha = rgba[:, :, 3].copy()
        a = alpha[:, :, None].astype(np.float32) / 255.0
        rgb = np.rint(rgba[:, :, :3] * a + 255.0 * (1.0 - a)).astype(np.uint8)
        return rgb, alpha
    return np.asarray(im.convert("RGB"), dtype=np.uint8).copy(), None


def load_image(
    path: str | os.PathLike[str],
    max_side: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int = MIN_SIDE,
) -> LoadedImage:
    """Decode ``path`` into an 8-bit sRGB array, upright, at most ``max_side`` on the long side.

    The declared size is checked from the header before any pixel is decoded,
    so hostile or absurd files are refused cheaply.  Raises :class:`ImageError`
    (naming the file) for unreadable, corrupt, too small or too large images;
    ``FileNotFoundError`` for a missing file.
    """
    p = Path(path)
    fh = open_regular_file(p)
    try:
        with warnings.catch_warnings(), fh:
            # Pillow's own bomb guard warns between 1x and 2x its global limit and raises
            # above; make both an error and rely on our explicit max_pixels check too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fh) as im:
                width, height = im.size
                if width * height > max_pixels:
                    raise ImageError(
                        p,
                        f"declared size {width}x{height} exceeds the limit of "
                        f"{max_pixels} pixels (possible decompression bomb)",
                    )
                if min(width, height) < min_side:
                    raise ImageError(
                        p, f"image is too small ({width}x{height}; at least {min_side} px a side)"
                    )
                if max_side is not None and im.format == "JPEG":
                    # Let libjpeg decode at a reduced scale: much faster for large photos,
                    # and the result is still at least max_side on both axes.
                    im.draft(im.mode, (max_side, max_side))
                im.load()
                im = ImageOps.exif_transpose(im)
                rgb, alpha = _to_rgb_alpha(im)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(p, f"possible decompression bomb: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # UnidentifiedImageError and truncated-file errors are OSErrors.
        raise ImageError(p, f"cannot decode image ({type(exc).__name__}: {exc})") from exc
    rgb = resize_max_side(rgb, max_side)
    if min(rgb.shape[:2]) < min_side:
        # A 60000 x 8 strip passes the header check but is 384 x 1 after the downscale:
        # refuse it here, naming both sizes, rather than fail the renderer later.
        raise ImageError(
            p,
            f"image is too elongated ({width}x{height} is {rgb.shape[1]}x{rgb.shape[0]} "
            f"at max_side={max_side}; at least {min_side} px a side)",
        )
    if alpha is not None:
        alpha = resize_max_side(alpha, max_side)
        if alpha.min() == 255:
            alpha = None  # an all-opaque alpha says nothing about the product
    return LoadedImage(rgb=rgb, alpha=alpha, path=p)


def resize_max_side(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """Downscale (never upscale) so that the long side is at most ``max_side``.

    Uses area interpolation, which avoids the aliasing of nearest/bilinear when
    shrinking catalog photos.
    """
    import cv2

    h, w = image.shape[:2]
    new_w, new_h = _scaled_size(w, h, max_side)
    if (new_w, new_h) == (w, h):
        return image
    return cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)


def load_mask(path: str | os.PathLike[str], shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a user-supplied product mask file as float32 in [0, 1] (resized to ``shape``).

    A mask file may be greyscale, RGB, or carry the mask in its alpha channel
    (a cut-out); the alpha wins when present.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such mask file")
    fh = open_regular_file(p)  # a FIFO is refused, never waited on
    try:
        with fh, Image.open(fh) as im:
            im.load()
            if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
                arr = np.asarray(im.convert("RGBA"))[:, :, 3]
            elif im.mode in ("I;16", "I;16L", "I;16B", "I"):
                arr = np.asarray(im).astype(np.float64) / 65535.0 * 255.0
            else:
                arr = np.asarray(im.convert("L"))
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(p, f"cannot decode mask ({type(exc).__name__}: {exc})") from exc
    mask = np.asarray(arr, dtype=np.float32) / 255.0
    if shape is not None and mask.shape != tuple(shape):
        import cv2

        mask = cv2.resize(mask, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    return np.clip(mask, 0.0, 1.0)


def encode_image(
    rgb: np.ndarray,
    fmt: str = "png",
    quality: int = 95,
    lossless: bool = False,
    alpha: np.ndarray | None = None,
) -> bytes:
    """Encode an 8-bit RGB array as PNG, WebP or JPEG bytes.

    Lossy formats shift product colours (WebP at quality 90 adds roughly one
    CIEDE2000 unit inside the product), so PNG or lossless WebP is advised
    when colour fidelity is audited; the default quality is high for that reason.
    """
    key = fmt.lower().lstrip(".")
    if key not in _FORMATS:
        raise ValueError(f"unsupported image format {fmt!r}; use one of png, webp, jpg")
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected uint8 HxWx3, got {rgb.dtype} {rgb.shape}")
    im = Image.fromarray(rgb, "RGB")
    if alpha is not None and key in ("png", "webp"):
        im.putalpha(Image.fromarray(alpha.astype(np.uint8), "L"))
    buf = io.BytesIO()
    kwargs: dict[str, object] = {}
    if key == "webp":
        kwargs = {"quality": quality, "lossless": lossless, "method": 4}
    elif key in ("jpg", "jpeg"):
        kwargs = {"quality": quality, "subsampling": 0 if quality >= 90 else 2, "optimize": True}
    else:
        kwargs = {"optimize": False, "compress_level": 6}
    im.save(buf, format=_FORMATS[key], **kwargs)
    return buf.getvalue()


def save_image(
    path: str | os.PathLike[str],
    rgb: np.ndarray,
    fmt: str | None = None,
    quality: int = 95,
    lossless: bool = False,
) -> Path:
    """Write ``rgb`` atomically (temp file in the same folder, then rename).

    Atomic so that a crash or a concurrent reader never sees half a file in a
    render cache; the format follows ``fmt`` or the file suffix.
    """
    p = Path(path)
    key = (fmt or p.suffix.lstrip(".") or "png").lower()
    data = encode_image(rgb, key, quality=quality, lossless=lossless)
    p.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp: its 0600 mode would survive the rename, and a web server could not
    # serve the file.  An exclusive create of a unique name gets 0666 & ~umask instead.
    tmp = p.parent / f".{p.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p
