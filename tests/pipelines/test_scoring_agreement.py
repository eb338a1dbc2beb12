"""One nightly run, four readers of its scores: they must agree (issue 14's acceptance).

The formula that turns factors and codes into scores lives in
``recsys.factors.StyleFactors`` alone; this night checks that every reader of a
run -- what the nightly serves (its top styles and the factors the service
loads), ``StylePreferenceModel.score``, the holdout harness's scorer and
``PersonalizationService.rank``/``recommend`` -- gives the same numbers to 1e-5.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data.store import Store
from pipelines.config import load_config, write_config
from pipelines.runner import run_nightly
from pipelines.stages.common import whitened_codes
from recsys.experiments.assignment import Experiment
from recsys.factors import StyleFactors, blend
from recsys.fit_inputs import FitInputs
from recsys.holdout import _StyleModelAdapter
from recsys.interactions import IdMap
from recsys.model import StylePreferenceModel
from recsys.run_bundle import ITEM_MAP, MODEL, TOP_STYLES, USER_MAP, RunBundle
from recsys.serving import PersonalizationService

TOL = 1e-5


@pytest.fixture(scope="module")
def night(small_world, tmp_path_factory: pytest.TempPathFactory):
    """One night of the small demo world (K = 3, 96-px background renders) on SQLite."""
    world = tmp_path_factory.mktemp("agree") / "world"
    shutil.copytree(small_world.dir, world)
    url = f"sqlite:///{world / 'store.db'}"
    cfg = {
        "inputs": {"events": ["events.parquet"], "catalog": "items.csv", "styles": "styles.csv",
                   "image_root": "."},
        # No baseline table: the harness's scorer is checked directly below.
        "model": {"factors": 16, "epochs": 4, "baselines": False},
        "segments": {"k": 3, "n_blend": 2},
        "render": {"mode": "background", "max_side": 96, "format": "png"},
        "outputs": {"store_url": url, "render_dir": "renders", "work_dir": "work",
                    "report_dir": "report"},
    }
    write_config(cfg, world / "stylerec.toml")
    summary = run_nightly(load_config(world / "stylerec.toml"))
    with Store(url) as store:
        run_dir = Path(store.get_run(summary.run_id)["params"]["run_dir"])
    svc = PersonalizationService.from_store(url)
    yield summary, run_dir, svc
    svc.close()


def test_every_reader_of_a_run_gives_the_same_scores(night) -> None:
    summary, run_dir, svc = night
    assert svc.run_id == summary.run_id
    bundle = RunBundle.open(run_dir)
    model = StylePreferenceModel.load(run_dir / MODEL)
    served = bundle.read_factors()  # what the service holds, read without PyTorch
    snap = svc.snapshot()
    np.testing.assert_array_equal(snap.factors.user_factors, served.user_factors)
    np.testing.assert_array_equal(snap.factors.item_factors[: served.n_items],
                                  served.item_factors)
    user_ids = [str(u) for u in IdMap.load(run_dir / USER_MAP).ids]
    item_ids = [str(i) for i in IdMap.load(run_dir / ITEM_MAP).ids]
    rng = np.random.default_rng(0)
    users = rng.choice(len(user_ids), size=25, replace=False)
    items = np.arange(len(item_ids))

    # 1. The model and the served factors: the same arrays, hence the same scores.
    u, i = np.repeat(users, len(items)), np.tile(items, len(users))
    by_model = model.score(u, i).reshape(len(users), len(items))
    np.testing.assert_allclose(served.user_scores(users), by_model, atol=TOL, rtol=0)
    assert np.abs(by_model).max() > 0.1  # real scores, not a table of zeros

    # 2. The holdout harness scores a fitted model through the same core.
    harness = _StyleModelAdapter(FitInputs(None), seed=0)  # type: ignore[arg-type]
    harness.model_ = model
    np.testing.assert_allclose(harness.user_scores(users), by_model, atol=TOL, rtol=0)

    # 3. rank without renders (everyone in control) is the model's score.
    control = Experiment("all-control", variants={"control": 1.0})
    for row, uix in enumerate(users.tolist()):
        ranked = svc.rank(user_ids[uix], item_ids, experiment=control)
        got = {r.item_id: r.score for r in ranked}
        want = dict(zip(item_ids, by_model[row].tolist(), strict=True))
        assert got.keys() == want.keys()
        np.testing.assert_allclose([got[k] for k in item_ids], [want[k] for k in item_ids],
                                   atol=TOL, rtol=0)

    # 4. The nightly's style embeddings and top styles are the model's affinities ...
    codes, _, style_w = whitened_codes(bundle)
    style_ids = [str(s) for s in codes.style_ids]
    table = bundle.read_style_embeddings()
    assert table.style_ids == style_ids
    np.testing.assert_allclose(table.embeddings, model.style_embeddings(style_w), atol=TOL)
    affinity = model.user_style_affinity(np.arange(len(user_ids)), style_w)
    top = bundle.read_table(TOP_STYLES)
    rows = pd.Index(user_ids).get_indexer(top["user_id"].astype(str))
    cols = pd.Index(style_ids).get_indexer(top["style_id"].astype(str))
    np.testing.assert_allclose(top["score"], affinity[rows, cols], atol=TOL, rtol=0)

    # ... and rank with renders adds the segment blend's affinity to rendered items only.
    conds = {str(c["segment_id"]): c for c in bundle.read_conditions()}
    n_styled = 0
    for row, uix in enumerate(users.tolist()):
        uid = user_ids[uix]
        cond = conds[svc.segment_of(uid)]
        pos = [style_ids.index(str(s)) for s in cond["style_ids"]]
        seg_vec = blend(model.style_embeddings(style_w[pos]), cond["weights"])
        term = float(model.user_factors_[uix] @ seg_vec)
        ranked = svc.rank(uid, item_ids)
        for r in ranked:
            j = item_ids.index(r.item_id)
            want = by_model[row, j] + (term if r.style_ids else 0.0)
            assert r.score == pytest.approx(want, abs=TOL)
            n_styled += bool(r.style_ids)
        # recommend is the exact top of the same scores, seen items left out.
        rec = svc.recommend(uid, k=5)
        seen = set(model.seen_[uix].indices.tolist())
        expect = sorted((-r.score, item_ids.index(r.item_id)) for r in ranked
                         if item_ids.index(r.item_id) not in seen)[:5]
        assert [item_ids.index(r.item_id) for r in rec] == [j for _, j in expect]
        np.testing.assert_allclose([r.score for r in rec], [-s for s, _ in expect], atol=TOL)
    assert n_styled > 0  # the night rendered, so the style term was exercised


def test_factors_file_round_trip_and_version_2_files_stay_readable(night, tmp_path: Path
                                                                   ) -> None:
    """The run's model file is read by the core; a version-2 file gives the same factors."""
    _, run_dir, _ = night
    factors, arrays, meta = StyleFactors.read(run_dir / MODEL)
    assert meta["format_version"] == 3
    factors.save(tmp_path / "f")
    again = StyleFactors.load(tmp_path / "f")
    np.testing.assert_array_equal(again.item_factors, factors.item_factors)
    np.testing.assert_array_equal(again.seen_indices, factors.seen_indices)
    # A version-2 model file (before this core): no full item vectors, free ones + codes.
    import json

    old = {k: v for k, v in arrays.items() if k != "item_factors"}
    np.savez(tmp_path / "v2.npz", **old)
    (tmp_path / "v2.json").write_text(json.dumps({**meta, "format_version": 2}))
    v2 = StyleFactors.load(tmp_path / "v2")
    np.testing.assert_allclose(v2.item_factors, factors.item_factors, atol=1e-6)
    assert StylePreferenceModel.load(tmp_path / "v2").score(0, 0) == pytest.approx(
        float(factors.score(0, 0)[0]), abs=TOL)
