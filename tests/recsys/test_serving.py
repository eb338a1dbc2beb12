"""PersonalizationService over synthetic published runs (bundle files + a SQLite store).

The runs are random but fully known (recsys.serving.synthetic), so every score
and image is checked against the formula computed here from the written files,
not against the service's own helpers.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from data.store import Store
from recsys import run_bundle as B
from recsys.experiments.assignment import Experiment, assign
from recsys.run_bundle import RunBundle
from recsys.serving import MAX_CANDIDATES, PersonalizationService
from recsys.serving.synthetic import SyntheticRun, make_run


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, SyntheticRun]:
    root = tmp_path_factory.mktemp("serving")
    store = Store(f"sqlite:///{root / 'store.db'}")
    run = make_run(store, root, n_users=120, n_items=300, n_cold=20, cold_with_code=10,
                   render_fraction=0.3, no_image_items=4, seed=1, tag="a")
    return store, run


@pytest.fixture(scope="module")
def svc(world: tuple[Store, SyntheticRun]) -> PersonalizationService:
    # An in-process caller that opens the render files asks for the run's folder as prefix;
    # the default (relative references) is checked in test_answer_flags_and_relative_images.
    return PersonalizationService.from_store(world[0], render_root=world[1].render_root)


def _segment_embeddings(run: SyntheticRun) -> np.ndarray:
    styles = RunBundle.open(run.run_dir).read_style_embeddings()
    pos = {s: n for n, s in enumerate(styles.style_ids)}
    out = []
    for cond in RunBundle.open(run.run_dir).read_conditions():
        w = np.asarray(cond["weights"]) / np.sum(cond["weights"])
        out.append(sum(wt * styles.embeddings[pos[s]] for s, wt in zip(cond["style_ids"], w,
                                                                     strict=True)))
    return np.asarray(out, np.float32)


def _expected(run: SyntheticRun, u: int, treated: bool = True) -> np.ndarray:
    """Scores of the run's model items for user row ``u`` by the documented formula."""
    p = run.user_factors[u]
    s = run.item_factors @ p + run.item_bias
    if treated:
        seg = run.segment_of_user[u]
        c = float(_segment_embeddings(run)[seg] @ p)
        s = s + run.rendered[: len(run.item_ids), seg] * c
    return s


def _seen(run: SyntheticRun) -> list[set[int]]:
    import scipy.sparse as sp

    with np.load(run.run_dir / "model.npz") as z:
        m = sp.csr_matrix((np.ones(len(z["seen_indices"])), z["seen_indices"], z["seen_indptr"]))
    return [set(m.indices[m.indptr[r]: m.indptr[r + 1]].tolist()) for r in range(m.shape[0])]


def test_old_bundle_module_still_reads_with_a_deprecation_warning(
        world: tuple[Store, SyntheticRun]) -> None:
    """``recsys.serving.bundle``'s readers moved to RunBundle; the old names warn for a release."""
    from recsys.serving import bundle as old

    _, run = world
    with pytest.warns(DeprecationWarning, match="RunBundle.read_codes"):
        ids, codes = old.read_codes(run.run_dir)  # type: ignore[misc]
    new = RunBundle.open(run.run_dir).read_codes()
    assert ids == new.item_ids and np.array_equal(codes, new.item_codes)
    assert old.CONDITIONS == B.CONDITIONS and old.MODEL == B.MODEL


def test_moved_factor_names_warn_and_still_work(world: tuple[Store, SyntheticRun]) -> None:
    """``read_model_arrays`` and ``ModelArrays`` became ``read_factors`` / ``StyleFactors``;
    the old names answer the same thing for one release, with a DeprecationWarning."""
    from recsys import run_bundle
    from recsys.factors import StyleFactors

    _, run = world
    bundle = RunBundle.open(run.run_dir)
    with pytest.warns(DeprecationWarning, match="read_factors"):
        old = bundle.read_model_arrays()
    new = bundle.read_factors()
    assert np.array_equal(old.user_factors, new.user_factors)
    with pytest.warns(DeprecationWarning, match="StyleFactors"):
        assert run_bundle.ModelArrays is StyleFactors


def test_model_reader_agrees_with_the_model_class(tmp_path: Path) -> None:
    """The service reads model.npz with numpy (no PyTorch); it must read what the model saves."""
    import scipy.sparse as sp

    from recsys import model as M

    assert B.MODEL_FORMAT_VERSION == M._FORMAT_VERSION
    rng = np.random.default_rng(0)
    rows, cols = rng.integers(0, 40, 400), rng.integers(0, 30, 400)
    X = sp.csr_matrix((np.ones(400, np.float32), (rows, cols)), shape=(40, 30))
    codes = rng.normal(size=(30, 6)).astype(np.float32)
    model = M.StylePreferenceModel(factors=8, epochs=2, validation_users=5, negatives=16,
                                   show_progress=False).fit(X, item_codes=codes)
    model.save(tmp_path / B.MODEL)
    got = RunBundle.open(tmp_path).read_factors()
    ref = M.StylePreferenceModel.load(tmp_path / B.MODEL)
    assert (got.n_users, got.n_items) == (ref.n_users_, ref.n_items_) == (40, 30)
    np.testing.assert_array_equal(got.user_factors, ref.user_factors_)
    np.testing.assert_allclose(got.item_factors, ref.item_factors_, rtol=1e-6, atol=1e-6)
    assert not np.allclose(got.item_factors, ref.free_item_factors_)  # codes do contribute
    np.testing.assert_array_equal(got.item_bias, ref.item_bias_)
    np.testing.assert_allclose(got.popularity_scores, ref.popularity_scores(), rtol=1e-6)
    np.testing.assert_array_equal(got.W, ref.W_)
    np.testing.assert_array_equal(got.code_mean, ref.code_mean_)
    assert got.code_scale == pytest.approx(float(ref.code_scale_))
    seen = sp.csr_matrix((np.ones(len(got.seen_indices)), got.seen_indices, got.seen_indptr),
                         shape=(40, 30))
    assert (seen != (ref.seen_ != 0)).nnz == 0
    meta = json.loads((tmp_path / "model.json").read_text())
    (tmp_path / "model.json").write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(B.BundleVersionError, match="format_version 99"):
        RunBundle.open(tmp_path).read_factors()


def test_serving_does_not_import_torch() -> None:
    """A ranking process must not carry PyTorch (~0.5 GB resident) it never uses."""
    import subprocess
    import sys

    code = ("import sys, recsys.serving, recsys.serving.service, recsys.serving.bundle, "
            "recsys.factors, recsys.fit_inputs, recsys.holdout, data.store; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "False"


def test_serving_ranks_without_faiss() -> None:
    """Serving ranks with the factors core; FAISS (and its OpenMP runtime) stays out of it."""
    import subprocess
    import sys

    code = ("import sys, recsys.serving, recsys.serving.service; "
            "print('faiss' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "False"


def test_rank_scores_images_and_styles(svc: PersonalizationService,
                                       world: tuple[Store, SyntheticRun]) -> None:
    _, run = world
    for u in (0, 7, 33):
        uid = run.user_ids[u]
        seg = int(run.segment_of_user[u])
        exp = _expected(run, u)
        cands = run.item_ids[::3]
        out = svc.rank(uid, cands)
        assert [r.item_id for r in out] == sorted(cands, key=lambda i: -exp[int(i[1:])])
        for r in out:
            row = int(r.item_id[1:])
            assert r.score == pytest.approx(exp[row], abs=1e-5)
            assert r.segment_id == run.segment_ids[seg] == svc.segment_of(uid)
            assert r.run_id == run.run_id
            if run.rendered[row, seg]:
                key = f"a{row:07d}{seg:03d}"
                assert r.image_uri == f"{run.render_root}/{key[:2]}/{key}.webp"
                assert len(r.style_ids) == 2
            else:
                assert r.style_ids == ()
                assert r.image_uri == (None if row >= 296 else f"a/img/{r.item_id}.jpg")


def test_style_term_changes_the_order_only_for_rendered_items(
        svc: PersonalizationService, world: tuple[Store, SyntheticRun]) -> None:
    _, run = world
    u = 5
    base = _expected(run, u, treated=False)
    styled = _expected(run, u, treated=True)
    assert not np.allclose(base, styled)  # the run has a non-trivial style term
    out = {r.item_id: r.score for r in svc.rank(run.user_ids[u], run.item_ids)}
    got = np.array([out[i] for i in run.item_ids])
    np.testing.assert_allclose(got, styled, atol=1e-5)


def test_k_duplicates_empty(svc: PersonalizationService, world: tuple[Store, SyntheticRun]) -> None:
    _, run = world
    uid = run.user_ids[3]
    full = svc.rank(uid, run.item_ids[:50])
    assert svc.rank(uid, run.item_ids[:50], k=7) == full[:7]
    assert svc.rank(uid, run.item_ids[:50], k=0) == []
    assert svc.rank(uid, run.item_ids[:50], k=500) == full
    assert svc.rank(uid, []) == []
    assert svc.rank(uid, iter(())) == []
    dup = svc.rank(uid, run.item_ids[:10] + run.item_ids[:10][::-1] + [run.item_ids[0]])
    assert [r.item_id for r in dup] == [r.item_id for r in svc.rank(uid, run.item_ids[:10])]
    with pytest.raises(ValueError, match="k must be"):
        svc.rank(uid, run.item_ids[:5], k=-1)
    with pytest.raises(TypeError, match="k must be an int"):
        svc.rank(uid, run.item_ids[:5], k=2.0)  # type: ignore[arg-type]


def test_ten_thousand_candidates_and_the_limit(svc: PersonalizationService,
                                               world: tuple[Store, SyntheticRun]) -> None:
    _, run = world
    uid = run.user_ids[9]
    cands = [f"x{n}" for n in range(10_000 - len(run.item_ids))] + run.item_ids
    ans = svc.rank_response(uid, cands)  # its latency is measured in benchmarks/bench_serving.py
    assert ans.items == svc.rank(uid, cands) and not ans.cold_start
    # Ids unknown to the run are not scored: listed, in input order, beside the ranking.
    assert ans.unknown_items == [c for c in cands if c.startswith("x")]
    assert sorted(r.item_id for r in ans.items) == sorted(run.item_ids)
    scores = [r.score for r in ans.items]
    assert scores == sorted(scores, reverse=True)
    with pytest.raises(ValueError, match="at most"):
        svc.rank(uid, [f"x{n}" for n in range(MAX_CANDIDATES + 1)])


def test_wrong_id_types(svc: PersonalizationService, world: tuple[Store, SyntheticRun]) -> None:
    _, run = world
    uid = run.user_ids[0]
    for bad_user in (1.0, None, b"u0000000", True, ["u0000000"]):
        with pytest.raises(TypeError, match="user_id"):
            svc.rank(bad_user, run.item_ids[:3])  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="user_id"):
            svc.recommend(bad_user, 3)  # type: ignore[arg-type]
    for bad_item in (1.5, None, b"i000001", False):
        with pytest.raises(TypeError, match="item_id"):
            svc.rank(uid, [run.item_ids[0], bad_item])  # type: ignore[list-item]
        with pytest.raises(TypeError, match="item_id"):
            svc.image_for(uid, bad_item)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="list of ids"):
        svc.rank(uid, "i000001")  # a bare string is not a candidate list
    with pytest.raises(TypeError, match="list of ids"):
        svc.rank(uid, None)  # type: ignore[arg-type]
    # int ids are str()-ed: 12, np.int64(12) and "12" are the same (unknown) item.
    ans = svc.rank_response(uid, [12, np.int64(12), "12", run.item_ids[0]])
    assert [r.item_id for r in ans.items] == [run.item_ids[0]] and ans.unknown_items == ["12"]
    assert svc.rank_response(7, ["7"]) == svc.rank_response("7", [7])
    # numpy string arrays work as candidate lists.
    arr = np.asarray(run.item_ids[:20])
    assert svc.rank(uid, arr) == svc.rank(uid, run.item_ids[:20])


def test_unknown_user_gets_popularity_and_default_segment(
        svc: PersonalizationService, world: tuple[Store, SyntheticRun]) -> None:
    _, run = world
    with np.load(run.run_dir / "model.npz") as z:
        pop = np.log1p(z["item_popularity"])
    sizes = np.bincount(run.segment_of_user, minlength=len(run.segment_ids))
    default = int(np.argmax(sizes))
    ans = svc.rank_response("never-seen", run.item_ids[:60])
    assert ans.cold_start and ans.unknown_items == [] and ans.user_id == "never-seen"
    out = ans.items
    assert out == svc.rank("never-seen", run.item_ids[:60])
    assert [r.item_id for r in out] == sorted(run.item_ids[:60], key=lambda i: -pop[int(i[1:])])
    assert all(r.segment_id == run.segment_ids[default] for r in out)
    for r in out:
        row = int(r.item_id[1:])
        assert r.score == pytest.approx(pop[row])
        assert ("renders-a" in (r.image_uri or "")) == bool(run.rendered[row, default])
    rec = svc.recommend("never-seen", 10)
    assert svc.recommend_response("never-seen", 10) == (run.run_id, "never-seen", rec, True, [])
    top = np.argsort(-pop, kind="stable")[:10]
    assert [r.item_id for r in rec] == [run.item_ids[i] for i in top]
    assert svc.segment_of("never-seen") == run.segment_ids[default]
    assert svc.image_for("never-seen", "i000000") == svc.rank("never-seen", ["i000000"])[0].image_uri


def test_unknown_items_cold_catalogue_and_code_scores(
        svc: PersonalizationService, world: tuple[Store, SyntheticRun]) -> None:
    _, run = world
    u = 11
    p = run.user_factors[u]
    prior = float(np.mean(run.item_bias))
    bundle = RunBundle.open(run.run_dir)
    ids, raw = bundle.read_codes().item_ids, bundle.read_codes().item_codes
    wh = bundle.read_whitening()
    assert wh is not None
    mean, mat = wh.mean.astype(np.float32), wh.matrix.astype(np.float32)
    with np.load(run.run_dir / "model.npz") as z:
        W, cmean, cscale = z["W"], z["code_mean"], float(z["code_scale"][0])
    code_of = dict(zip(ids, raw, strict=True))
    seg = int(run.segment_of_user[u])
    c = float(_segment_embeddings(run)[seg] @ p)
    ans = svc.rank_response(run.user_ids[u], run.cold_item_ids + ["ghost"])
    # Cold catalogue items are known to the run (scored, with their image); "ghost" is not.
    assert ans.unknown_items == ["ghost"] and not ans.cold_start
    out = {r.item_id: r for r in ans.items}
    for n, cid in enumerate(run.cold_item_ids):
        r = out[cid]
        rendered = run.rendered[len(run.item_ids) + n, seg]
        if n < 10:  # has an image code
            std = ((code_of[cid] - mean) @ mat - cmean) / cscale * np.sqrt(len(mean))
            want = float(std @ W @ p) + prior
        else:
            want = prior
        assert r.score == pytest.approx(want + c * rendered, abs=1e-4), cid
        assert r.image_uri is not None and (("renders-a" in r.image_uri) == rendered)
        if not rendered:
            assert r.image_uri == f"a/img/{cid}.jpg"  # its original image
    assert "ghost" not in out
    # score_new_items: the same formula for codes the run has never seen.
    got = svc.score_new_items(run.user_ids[u], raw[:3])
    std = ((raw[:3] - mean) @ mat - cmean) / cscale * np.sqrt(len(mean))
    np.testing.assert_allclose(got, std @ W @ p + prior, atol=1e-4)
    assert svc.image_for(run.user_ids[u], "ghost") is None
    # unknown user, cold item: popularity 0, the original image.
    cold = svc.rank("nobody", [run.cold_item_ids[-1]])[0]
    assert cold.score == 0.0 and cold.image_uri is not None


def _check_recommend(svc: PersonalizationService, run: SyntheticRun, k: int,
                     exclude_seen: bool, experiment: Experiment | None) -> None:
    seen = _seen(run)
    catalogue = run.item_ids + run.cold_item_ids
    for u in range(0, len(run.user_ids), 7):
        uid = run.user_ids[u]
        allowed = [i for n, i in enumerate(catalogue)
                   if not (exclude_seen and n < len(run.item_ids) and n in seen[u])]
        want = svc.rank(uid, allowed, k=k, experiment=experiment)
        got = svc.recommend(uid, k, exclude_seen=exclude_seen, experiment=experiment)
        assert [r.item_id for r in got] == [r.item_id for r in want], uid
        assert [r.score for r in got] == pytest.approx([r.score for r in want], abs=1e-5)
        assert [r.image_uri for r in got] == [r.image_uri for r in want]
        if exclude_seen:
            assert not {r.item_id for r in got} & {run.item_ids[i] for i in seen[u]}


@pytest.mark.parametrize("fraction", [0.02, 0.3, 0.98, 1.0])
def test_recommend_is_the_exact_top_k_of_rank(tmp_path: Path, fraction: float) -> None:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    run = make_run(store, tmp_path, n_users=60, n_items=400, n_cold=15, render_fraction=fraction,
                   seed=3, tag="r")
    svc = PersonalizationService.from_store(store)
    _check_recommend(svc, run, 10, True, None)
    _check_recommend(svc, run, 3, False, None)
    _check_recommend(svc, run, 10, True, Experiment("exp-rec"))
    with pytest.raises(ValueError, match="k must be"):
        svc.recommend(run.user_ids[0], 0)
    # k beyond the catalogue: everything not seen, still ordered.
    assert len(svc.recommend(run.user_ids[0], 10_000, exclude_seen=False)) == 415


def test_user_styles(svc: PersonalizationService, world: tuple[Store, SyntheticRun]) -> None:
    _, run = world
    styles = RunBundle.open(run.run_dir).read_style_embeddings()
    for u in (0, 50):
        s = styles.embeddings @ run.user_factors[u]
        got = svc.user_styles(run.user_ids[u], k=4)
        assert [g.style_id for g in got] == [styles.style_ids[j] for j in np.argsort(-s)[:4]]
        assert [g.score for g in got] == pytest.approx(np.sort(s)[::-1][:4].tolist(), abs=1e-5)
    mean = styles.embeddings @ run.user_factors.mean(axis=0)
    assert svc.user_styles("stranger", 1)[0].style_id == styles.style_ids[int(np.argmax(mean))]
    assert svc.user_styles(run.user_ids[0], 0) == []


def test_experiment_control_users_get_originals(world: tuple[Store, SyntheticRun]) -> None:
    store, run = world
    exp = Experiment("restyle", {"control": 0.5, "treatment": 0.5}, salt="s1")
    svc = PersonalizationService.from_store(store, experiments=[exp], render_root=run.render_root)
    arms = assign(run.user_ids, "restyle", {"control": 0.5, "treatment": 0.5}, salt="s1")
    assert {"control", "treatment"} <= set(arms)
    rendered_items = [run.item_ids[i] for i in np.flatnonzero(run.rendered[:300, 0])][:40]
    for u, arm in list(enumerate(arms))[:40]:
        uid = run.user_ids[u]
        by_name = svc.rank(uid, rendered_items, experiment="restyle")
        assert by_name == svc.rank(uid, rendered_items, experiment=exp)
        assert svc.variant(uid, "restyle") == arm
        seg = run.segment_of_user[u]
        if arm == "control":
            assert all(r.image_uri == f"a/img/{r.item_id}.jpg" and r.style_ids == ()
                       for r in by_name)
            exp_scores = _expected(run, u, treated=False)
            assert all(r.score == pytest.approx(exp_scores[int(r.item_id[1:])], abs=1e-5)
                       for r in by_name)
            assert svc.image_for(uid, rendered_items[0], experiment="restyle") == (
                f"a/img/{rendered_items[0]}.jpg")
        else:
            n_rendered = sum("renders-a" in (r.image_uri or "") for r in by_name)
            assert n_rendered == int(run.rendered[[int(i[1:]) for i in rendered_items], seg].sum())
    # An all-control experiment shows nobody a render; no experiment shows renders.
    allc = Experiment("off", {"control": 1.0})
    uid = run.user_ids[0]
    assert all(r.style_ids == () for r in svc.rank(uid, rendered_items, experiment=allc))
    assert all(r.style_ids == () for r in svc.recommend(uid, 20, experiment=allc))
    with pytest.raises(TypeError, match="experiment"):
        svc.rank(uid, rendered_items, experiment=3)  # type: ignore[arg-type]


def test_batch_forms_and_determinism(svc: PersonalizationService,
                                     world: tuple[Store, SyntheticRun]) -> None:
    store, run = world
    users = [run.user_ids[0], "newcomer", run.user_ids[17], 42]
    reqs = [(u, run.item_ids[n * 10: n * 10 + 30]) for n, u in enumerate(users)]
    assert svc.rank_many(reqs, k=5) == [svc.rank(u, c, k=5) for u, c in reqs]
    assert svc.recommend_many(users, k=4) == [svc.recommend(u, 4) for u in users]
    assert svc.user_styles_many(users, k=2) == [svc.user_styles(u, 2) for u in users]
    pairs = [(u, run.item_ids[n]) for n, u in enumerate(users)] + [("x", "ghost")]
    assert svc.image_for_many(pairs) == [svc.image_for(u, i) for u, i in pairs]
    # A second service over the same store answers identically, call after call.
    other = PersonalizationService.from_store(store, render_root=run.render_root)
    for u, c in reqs:
        assert other.rank(u, c) == svc.rank(u, c) == svc.rank(u, c)
        assert other.recommend(u, 8) == svc.recommend(u, 8)


def test_missing_bundle_file_and_unpublished_store(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    with pytest.raises(ValueError, match="no published run"):
        PersonalizationService.from_store(store)
    run = make_run(store, tmp_path, seed=2, tag="m")
    (run.run_dir / B.CONDITIONS).unlink()
    with pytest.raises(FileNotFoundError, match="conditions.json"):
        PersonalizationService.from_store(store)


def test_refresh_swaps_runs_and_keeps_the_old_one_on_failure(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    a = make_run(store, tmp_path, seed=4, tag="a")
    svc = PersonalizationService.from_store(store)
    assert svc.refresh() is False and svc.run_id == a.run_id
    b = make_run(store, tmp_path, seed=5, tag="b")
    assert svc.refresh() is True and svc.run_id == b.run_id
    assert svc.rank(b.user_ids[0], b.item_ids[:3])[0].run_id == b.run_id
    c = make_run(store, tmp_path, seed=6, tag="c")
    (c.run_dir / B.ITEMS).unlink()  # published, but broken
    with pytest.raises(FileNotFoundError):
        svc.refresh()
    assert svc.run_id == b.run_id and svc.recommend(b.user_ids[1], 3)[0].run_id == b.run_id
    store.publish(a.run_id)  # rollback = publish an older run
    svc.start_auto_refresh(0.02)
    try:
        deadline = time.monotonic() + 10
        while svc.run_id != a.run_id and time.monotonic() < deadline:
            time.sleep(0.02)
        assert svc.run_id == a.run_id
    finally:
        svc.close()


def test_refresh_under_load_answers_wholly_from_one_run(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    old = make_run(store, tmp_path, n_users=80, n_items=500, render_fraction=0.5, seed=7, tag="old")
    new = make_run(store, tmp_path, n_users=80, n_items=500, render_fraction=0.5, seed=8,
                   tag="new", publish=False)
    svc = PersonalizationService.from_store(store)
    rng = np.random.default_rng(0)
    requests = [(old.user_ids[int(rng.integers(80))] if n % 5 else "cold-user",
                 [old.item_ids[int(j)] for j in rng.choice(500, 60, replace=False)])
                for n in range(40)]
    # Expected answers of each run, computed single-threaded from services pinned to it.
    expected = {
        run.run_id: [PersonalizationService.from_store(store, run=run.run_id).rank(u, c)
                     for u, c in requests]
        for run in (old, new)
    }
    assert expected[old.run_id][0] != expected[new.run_id][0]
    errors: list[BaseException] = []
    seen: list[list[str]] = [[] for _ in range(4)]
    stop = threading.Event()

    def worker(w: int) -> None:
        n = w
        try:
            while not stop.is_set():
                q = n % len(requests)
                out = svc.rank(*requests[q])
                runs = {r.run_id for r in out}
                assert len(runs) == 1, f"mixed runs {runs}"
                rid = runs.pop()
                assert out == expected[rid][q], f"response {q} differs from run {rid}'s"
                seen[w].append(rid)
                n += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    store.publish(new.run_id)
    assert svc.refresh() is True
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors[:3]
    for s in seen:
        assert s and s[0] == old.run_id and s[-1] == new.run_id
        # A thread never goes back to the old run once it has seen the new one.
        switch = s.index(new.run_id)
        assert set(s[switch:]) == {new.run_id}


def test_a_call_in_flight_finishes_on_the_run_it_started_with(tmp_path: Path) -> None:
    """Deterministic torn-read check: the new run lands *during* each call.

    The old snapshot's ``user_vector`` (the first thing every call asks) is
    wrapped so that it swaps the new run in right after answering; a method
    that looked at the service's current run again later in the call would
    mix the two runs and differ from the old run's answer.
    """
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    old = make_run(store, tmp_path, n_users=40, n_items=200, render_fraction=0.5, seed=21,
                   tag="o")
    new = make_run(store, tmp_path, n_users=40, n_items=200, render_fraction=0.5, seed=22,
                   tag="n")  # published: "current" is now the new run
    pinned = PersonalizationService.from_store(store, run=old.run_id)
    users = [old.user_ids[3], "cold-user", old.user_ids[9]]
    cands = old.item_ids[::2]
    calls = {
        "rank": lambda s: s.rank(users[0], cands),
        "rank_k": lambda s: s.rank(users[1], cands, k=5),
        "rank_many": lambda s: s.rank_many([(u, cands) for u in users]),
        "recommend": lambda s: s.recommend(users[0], 10),
        "recommend_many": lambda s: s.recommend_many(users, 4),
        "user_styles_many": lambda s: s.user_styles_many(users, 3),
        "image_for_many": lambda s: s.image_for_many([(u, i) for u in users for i in cands[:5]]),
    }
    fresh_new = PersonalizationService.from_store(store)
    for name, call in calls.items():
        want = call(pinned)
        assert want != call(fresh_new), name  # the runs answer differently
        svc = PersonalizationService.from_store(store, run=old.run_id)
        snap = svc.snapshot()
        real = snap.user_vector

        def swap_after(user_id: str, svc: PersonalizationService = svc,
                       real=real) -> tuple[np.ndarray, int, int]:
            out = real(user_id)
            if svc.run_id == old.run_id:
                assert svc.refresh() is True
            return out

        snap.user_vector = swap_after  # type: ignore[method-assign]
        got = call(svc)
        assert svc.run_id == new.run_id, name  # the swap did happen mid-call
        assert got == want, f"{name}: answer mixes the old and the new run"


def test_freeze_gc_survives_refreshes_without_keeping_old_runs(tmp_path: Path) -> None:
    import gc
    import weakref

    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    make_run(store, tmp_path, n_users=20, n_items=30, seed=31, tag="g1")
    try:
        svc = PersonalizationService.from_store(store, freeze_gc=True)
        assert gc.get_freeze_count() > 0
        old = weakref.ref(svc.snapshot())
        b = make_run(store, tmp_path, n_users=20, n_items=30, seed=32, tag="g2")
        assert svc.refresh() is True and svc.run_id == b.run_id
        assert old() is None  # the old run is freed, frozen or not
        assert gc.get_freeze_count() > 0
        assert svc.rank(b.user_ids[0], b.item_ids[:5])[0].run_id == b.run_id
    finally:
        gc.unfreeze()


def test_answer_flags_and_relative_images(world: tuple[Store, SyntheticRun]) -> None:
    """By default no answer carries a server path: renders relative to the render folder."""
    store, run = world
    svc = PersonalizationService.from_store(store)
    assert svc.render_dir == run.render_root  # the folder, for in-process callers
    u = 4
    seg = int(run.segment_of_user[u])
    ans = svc.rank_response(run.user_ids[u], run.item_ids[:80] + ["nope", run.item_ids[0]])
    assert (ans.run_id, ans.user_id, ans.cold_start, ans.unknown_items) == (
        run.run_id, run.user_ids[u], False, ["nope"])
    assert len(ans.items) == 80
    for r in ans.items:
        row = int(r.item_id[1:])
        key = f"a{row:07d}{seg:03d}"
        want = f"{key[:2]}/{key}.webp" if run.rendered[row, seg] else f"a/img/{r.item_id}.jpg"
        assert r.image_uri == want
        assert bool(r.style_ids) == bool(run.rendered[row, seg])
    uris = [r.image_uri for r in ans.items] + [
        svc.image_for(run.user_ids[u], i) for i in run.item_ids[:80]]
    assert not any(Path(x).is_absolute() or run.render_root in x for x in uris if x)
    # A URL prefix (a CDN) makes them URLs.
    cdn = PersonalizationService.from_store(store, render_root="https://cdn.example/r",
                                            image_root="https://img.example")
    for r in cdn.rank(run.user_ids[u], run.item_ids[:80]):
        assert r.image_uri is None or r.image_uri.startswith(
            "https://cdn.example/r/" if r.style_ids else "https://img.example/")
    rec = svc.recommend_response(run.user_ids[u], 5)
    assert not rec.cold_start and rec.unknown_items == [] and len(rec.items) == 5
