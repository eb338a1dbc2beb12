"""StyleSpace: whitening makes similarity meaningful; blend/interpolate stay in raw space."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stylizer.style_space import StyleSpace


def _library(n: int = 14, dim: int = 100, seed: int = 0) -> np.ndarray:
    """Codes like the real encoder's: a big shared offset plus small style-specific parts."""
    rng = np.random.default_rng(seed)
    offset = rng.normal(0, 1, dim) * 5.0
    return (offset + rng.normal(0, 1, (n, dim))).astype(np.float32)


def test_whitened_similarity_separates_styles_raw_cosine_does_not() -> None:
    lib = _library()
    raw = lib / np.linalg.norm(lib, axis=1, keepdims=True)
    raw_cos = raw @ raw.T
    assert raw_cos[~np.eye(len(lib), dtype=bool)].min() > 0.9  # the problem
    space = StyleSpace().fit(lib)
    sim = space.similarity(lib, lib)
    assert sim.shape == (14, 14)
    np.testing.assert_allclose(np.diag(sim), 1.0, atol=1e-6)
    off = np.abs(sim[~np.eye(len(lib), dtype=bool)])
    assert off.mean() < 0.3
    # A slightly perturbed copy of style 3 is most similar to style 3.
    rng = np.random.default_rng(1)
    probe = lib[3] + rng.normal(0, 0.2, lib.shape[1])
    assert int(np.argmax(space.similarity(probe[None], lib)[0])) == 3
    assert isinstance(space.similarity(lib[0], lib[1]), float)


def test_fit_shapes_and_centring() -> None:
    lib = _library()
    space = StyleSpace().fit(lib)
    assert space.mean_.shape == (100,) and space.whitening_.shape == (100, 100)
    assert 0.0 < space.shrinkage_ <= 1.0
    white = space.transform(lib)
    np.testing.assert_allclose(white.mean(axis=0), 0.0, atol=1e-6)
    assert np.all(np.isfinite(white))
    assert space.transform(lib[0]).shape == (100,)
    with pytest.raises(ValueError, match="dims"):
        space.transform(np.zeros((2, 50)))


def test_fixed_shrinkage_and_errors() -> None:
    lib = _library(5)
    space = StyleSpace(shrinkage=0.5).fit(lib)
    assert space.shrinkage_ == 0.5
    auto = StyleSpace(shrinkage=None).fit(lib)  # Ledoit-Wolf picks it
    assert 0.0 < auto.shrinkage_ <= 1.0
    with pytest.raises(ValueError, match="at least 2"):
        StyleSpace().fit(lib[:1])
    with pytest.raises(ValueError, match="NaN"):
        StyleSpace().fit(np.full((3, 4), np.nan))
    with pytest.raises(RuntimeError, match="not fitted"):
        StyleSpace().transform(lib)


def test_save_load_roundtrip(tmp_path: Path) -> None:
    lib = _library()
    space = StyleSpace().fit(lib)
    path = space.save(tmp_path / "space.npz")
    back = StyleSpace.load(path)
    np.testing.assert_allclose(back.transform(lib), space.transform(lib))
    assert back.shrinkage_ == space.shrinkage_ and back.n_styles_ == 14


def test_blend_normalises_weights_in_raw_space() -> None:
    codes = np.array([[0.0, 2.0], [4.0, 6.0]])
    np.testing.assert_allclose(StyleSpace.blend(codes, [1, 3]), [3.0, 5.0])
    np.testing.assert_allclose(StyleSpace.blend(codes, [2, 0]), codes[0])
    with pytest.raises(ValueError, match="non-negative"):
        StyleSpace.blend(codes, [1, -1])
    with pytest.raises(ValueError, match="zero"):
        StyleSpace.blend(codes, [0, 0])
    with pytest.raises(ValueError, match="weights"):
        StyleSpace.blend(codes, [1, 2, 3])


def test_interpolate_strength() -> None:
    content = np.array([[0.0, 0.0], [2.0, 2.0]])
    target = np.array([10.0, -10.0])
    np.testing.assert_allclose(StyleSpace.interpolate(content, target, 0.0), content)
    np.testing.assert_allclose(StyleSpace.interpolate(content, target, 1.0), [target, target])
    np.testing.assert_allclose(StyleSpace.interpolate(content, target, 0.25)[1], [4.0, -1.0])
    with pytest.raises(ValueError, match="strength"):
        StyleSpace.interpolate(content, target, 1.5)
