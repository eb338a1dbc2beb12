"""The Ray executor: same outputs as the local one, and survives a killed worker.

Runs on a local Ray instance with 2 CPUs (what CI has), shared by the module.
Covers: embed and render through Ray match the local executor on the same
inputs (same files, pixels within the parity tolerance, same error reports);
a worker SIGKILLed in the middle of writing a render is restarted by Ray, its
batch re-runs, and every render ends up on disk exactly once with no partial
file; without retries the same kill fails the call loudly; and the nightly
embed and render stages, run with ``executor.kind = "ray"``, reproduce a local
night's codes and render files.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import ray
from PIL import Image

from pipelines.cache import PARTIAL_MARK, RenderCache, condition_hash
from pipelines.config import Config, config_from_dict, load_config, write_config
from pipelines.executors import LocalExecutor, RenderJob, make_executor
from pipelines.executors.ray_executor import RayExecutor, remove_partials
from pipelines.runner import run_nightly
from recsys.run_bundle import CODES, RunBundle

#: The stylizer's parity tolerance (tests/stylizer/test_stylizer_parity.py): PSNR >= 30 dB.
PARITY_PSNR = 30.0


@pytest.fixture(scope="module", autouse=True)
def ray_cluster():
    """One local Ray instance with 2 CPUs for the whole module."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=256 * 1024**2,
             logging_level="WARNING")
    yield
    ray.shutdown()


def _cfg(base: Path, **executor: object) -> Config:
    raw = {
        "inputs": {"events": ["events.parquet"], "catalog": "items.csv", "styles": "styles.csv"},
        "render": {"mode": "background", "max_side": 96, "format": "png"},
        "executor": {"kind": "ray", "num_workers": 2, **executor},
    }
    return config_from_dict(raw, base)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _assert_same_renders(a: RenderCache, b: RenderCache) -> int:
    """Same file names under both roots, each pair within the parity tolerance."""
    names_a = sorted(p.relative_to(a.root).as_posix() for p in a.files())
    names_b = sorted(p.relative_to(b.root).as_posix() for p in b.files())
    assert names_a and names_a == names_b
    for name in names_a:
        pa, pb = _pixels(a.root / name), _pixels(b.root / name)
        assert pa.shape == pb.shape, name
        assert _psnr(pa, pb) >= PARITY_PSNR, name
    return len(names_a)


def _jobs(world: Path, codes: np.ndarray, n_items: int) -> list[RenderJob]:
    items = pd.read_csv(world / "items.csv", dtype=str).head(n_items)
    jobs = []
    for i, uri in enumerate(items["image_uri"]):
        keys = [f"{i:04d}{j:02d}" + "ab" * 8 for j in range(len(codes))]
        jobs.append(RenderJob(items["item_id"].iloc[i], str(world / uri), keys, codes,
                              [condition_hash(c) for c in codes]))
    return jobs


def test_make_executor_builds_ray(small_world) -> None:
    ex = make_executor(_cfg(small_world.dir))
    assert isinstance(ex, RayExecutor) and ex.name == "ray"


def test_embed_and_render_match_local(small_world, tmp_path: Path) -> None:
    world = small_world.dir
    styles = pd.read_csv(world / "styles.csv", dtype=str)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    paths = [str(world / u) for u in styles["image_uri"]] + [str(bad)]
    cfg = _cfg(world)

    local = LocalExecutor(cfg).embed(paths, batch_size=4)
    remote = RayExecutor(cfg).embed(paths, batch_size=4)
    assert set(remote.errors) == set(local.errors) == {len(paths) - 1}
    assert remote.errors == local.errors  # the same reason, naming the file
    assert str(bad) in remote.errors[len(paths) - 1]
    ok = np.isfinite(local.codes).all(axis=1)
    assert ok.sum() == len(paths) - 1
    assert np.array_equal(np.isfinite(remote.codes).all(axis=1), ok)
    np.testing.assert_allclose(remote.codes[ok], local.codes[ok], atol=1e-4)

    jobs = _jobs(world, local.codes[:2], n_items=6)
    jobs.append(RenderJob("missing", str(tmp_path / "nope.png"), ["ff" * 8], local.codes[:1],
                          ["x"]))
    ca, cb = RenderCache(tmp_path / "local", "png"), RenderCache(tmp_path / "ray", "png")
    out_local = {o.item_id: o for o in LocalExecutor(cfg).render(jobs, ca)}
    out_ray = {o.item_id: o for o in RayExecutor(cfg).render(jobs, cb)}
    assert out_ray.keys() == out_local.keys()
    for item_id, o in out_local.items():
        assert out_ray[item_id].written == o.written
        assert out_ray[item_id].error == o.error
        # The product-fidelity figures survive the trip back from the workers
        # (within half a just-noticeable CIEDE2000 difference, as renders may differ
        # within the parity tolerance).
        assert out_ray[item_id].delta_e.keys() == o.delta_e.keys()
        assert out_ray[item_id].delta_e == pytest.approx(o.delta_e, abs=0.5)
    assert len(out_local["missing"].delta_e) == 0 and len(out_local[jobs[0].item_id].delta_e) == 2
    assert out_ray["missing"].error is not None
    assert _assert_same_renders(ca, cb) == 6 * 2


def _kill_once_cache(root: Path, marker: Path) -> RenderCache:
    """A cache whose 3rd write in a process dies mid-write (SIGKILL), once per test.

    Defined here so that Ray pickles the class by value for its workers.  The
    kill happens after the temp file got half its bytes, i.e. exactly the
    state a crashed writer leaves behind.
    """

    class KillOnceCache(RenderCache):
        writes = 0

        def write(self, key: str, rgb: np.ndarray) -> Path:
            type(self).writes += 1
            if type(self).writes == 3:
                try:
                    fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                except FileExistsError:
                    return super().write(key, rgb)
                os.write(fd, str(os.getpid()).encode())
                os.close(fd)
                dest = self.path(key)
                dest.parent.mkdir(parents=True, exist_ok=True)
                tmp = dest.with_name(f"{PARTIAL_MARK}{os.getpid()}-{dest.name}")
                tmp.write_bytes(b"\x89PNG\r\n\x1a\n half a file")
                os.kill(os.getpid(), signal.SIGKILL)
            return super().write(key, rgb)

    return KillOnceCache(root, "png")


def _codes(n: int) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, 100)).astype(np.float32)


def test_killed_worker_is_retried_without_duplicates_or_partials(
    small_world, tmp_path: Path
) -> None:
    marker = tmp_path / "killed.pid"
    cache = _kill_once_cache(tmp_path / "renders", marker)
    jobs = _jobs(small_world.dir, _codes(3), n_items=6)
    cfg = _cfg(small_world.dir, max_retries=2, jobs_per_task=1)
    outcomes = list(RayExecutor(cfg).render(jobs, cache))

    assert marker.is_file(), "no worker was killed: the test did not exercise a retry"
    dead = int(marker.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(dead, 0)  # the worker really died
    # Each item reported exactly once, all its keys written.
    assert Counter(o.item_id for o in outcomes) == Counter(j.item_id for j in jobs)
    assert all(o.error is None for o in outcomes)
    expected = sorted(k for j in jobs for k in j.keys)
    assert sorted(k for o in outcomes for k in o.written) == expected
    everything = sorted(p for p in cache.root.rglob("*") if p.is_file())
    assert not [p for p in everything if p.name.startswith(PARTIAL_MARK)]
    assert sorted(p.stem for p in everything) == expected  # no duplicates, nothing extra
    for p in everything:
        assert _pixels(p).shape[2] == 3  # every file decodes: nothing partial


def test_kill_without_retries_fails_loudly(small_world, tmp_path: Path) -> None:
    marker = tmp_path / "killed.pid"
    cache = _kill_once_cache(tmp_path / "renders", marker)
    jobs = _jobs(small_world.dir, _codes(3), n_items=2)
    cfg = _cfg(small_world.dir, max_retries=0, jobs_per_task=1, num_workers=1)
    with pytest.raises(RuntimeError, match="executor.max_retries"):
        list(RayExecutor(cfg).render(jobs, cache))
    assert marker.is_file()
    # The executor still cleans the dead writer's temp file up on the way out.
    assert not list(cache.root.glob(f"*/{PARTIAL_MARK}*"))


def test_remove_partials_only_touches_given_keys(tmp_path: Path) -> None:
    cache = RenderCache(tmp_path, "png")
    ours, theirs = "ab" * 10, "cd" * 10
    for key in (ours, theirs):
        p = cache.path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.with_name(f"{PARTIAL_MARK}123-{p.name}").write_bytes(b"x")
    assert remove_partials(cache, [ours]) == 1
    left = [p.name for p in tmp_path.rglob(f"{PARTIAL_MARK}*")]
    assert left == [f"{PARTIAL_MARK}123-{theirs}.png"]


def test_nightly_embed_and_render_stages_on_ray_match_local(small_world, tmp_path: Path) -> None:
    world = tmp_path / "world"
    shutil.copytree(small_world.dir, world)
    base = {
        "inputs": {"events": ["events.parquet"], "catalog": "items.csv", "styles": "styles.csv",
                   "image_root": "."},
        "model": {"factors": 8, "epochs": 2, "holdout_last": 2, "baselines": False},
        "segments": {"k": 2, "n_blend": 2},
        "render": {"mode": "background", "max_side": 64, "format": "png"},
        "outputs": {"store_url": f"sqlite:///{tmp_path / 'night.db'}", "render_dir": "renders",
                    "work_dir": "work", "report_dir": "report"},
    }
    write_config(base, world / "local.toml")
    local = run_nightly(load_config(world / "local.toml"), stop_after="render")
    assert local.ran[-1] == "render"
    run_dir = world / "work" / "runs" / local.run_id
    local_codes = RunBundle.open(run_dir).read_codes()
    n_renders = local.metrics["render"]["rendered"]
    assert n_renders == local.metrics["render"]["items"] * 2 > 0

    # The same run's embed and render stages again, on Ray, from scratch.
    ray_cfg = {**base, "outputs": {**base["outputs"], "render_dir": "renders_ray"},
               "executor": {"kind": "ray", "num_workers": 2}}
    write_config(ray_cfg, world / "ray.toml")
    shutil.rmtree(world / "work" / "code_cache")
    (run_dir / CODES).unlink()
    cfg = load_config(world / "ray.toml")
    embed = run_nightly(cfg, only="embed", run_id=local.run_id)
    assert embed.metrics["embed"]["items"]["computed"] == len(local_codes.item_ids)
    ray_codes = RunBundle.open(run_dir).read_codes()
    assert ray_codes.item_ids == local_codes.item_ids
    np.testing.assert_allclose(ray_codes.item_codes, local_codes.item_codes, atol=1e-4)
    np.testing.assert_allclose(ray_codes.style_codes, local_codes.style_codes, atol=1e-4)

    render = run_nightly(cfg, only="render", run_id=local.run_id)
    assert render.metrics["render"]["rendered"] == n_renders
    assert _assert_same_renders(RenderCache(world / "renders", "png"),
                                RenderCache(world / "renders_ray", "png")) == n_renders
