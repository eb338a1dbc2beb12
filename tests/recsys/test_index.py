"""Behaviour of recsys.index: exactness, ANN recall, exclusion, cold start, save/load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from recsys.index import ItemIndex, StyleIndex, faiss_threads


def _brute_topk(q: np.ndarray, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    s = q.astype(np.float64) @ x.astype(np.float64).T
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(s, order, axis=1)


def _clustered(rng: np.random.Generator, n: int, dim: int, centers: np.ndarray) -> np.ndarray:
    """Vectors around a few centres: like real embeddings, unlike isotropic noise."""
    pick = rng.integers(0, centers.shape[0], n)
    return (centers[pick] + 0.5 * rng.normal(size=(n, dim))).astype(np.float32)


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {
        "styles": rng.normal(size=(300, 16)).astype(np.float32),
        "users": rng.normal(size=(200, 16)).astype(np.float32),
    }


def _ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i:05d}" for i in range(n)]


def test_flat_equals_numpy_brute_force(data: dict[str, np.ndarray]) -> None:
    styles, users = data["styles"], data["users"]
    idx = StyleIndex(kind="flat", batch_size=37).fit(styles, _ids("s", 300))
    ids, scores = idx.search(users, 10)
    order, ref = _brute_topk(users, styles, 10)
    assert ids.shape == (200, 10) and scores.dtype == np.float32
    np.testing.assert_allclose(scores, ref, rtol=1e-4, atol=1e-4)
    # Ids must match wherever the reference has no near-tie at that rank.
    expected = np.array(_ids("s", 300), dtype=object)[order]
    gaps = np.abs(np.diff(ref, axis=1)).min(axis=1) > 1e-3
    assert gaps.sum() > 150
    assert (ids[gaps] == expected[gaps]).all()


def test_auto_is_exact_below_threshold_and_ivf_above(data: dict[str, np.ndarray]) -> None:
    styles = data["styles"]
    assert StyleIndex().fit(styles, _ids("s", 300)).kind_ == "flat"
    assert StyleIndex(exact_max=100).fit(styles, _ids("s", 300), ).kind_ == "ivf"


def test_cosine_metric_ranks_by_angle() -> None:
    x = np.array([[10.0, 0.0], [0.6, 0.8]], dtype=np.float32)
    q = np.array([[0.6, 0.8]], dtype=np.float32)
    ip_ids, _ = StyleIndex(metric="ip").fit(x, ["big", "aligned"]).search(q, 1)
    cos_ids, cos_s = StyleIndex(metric="cosine").fit(x, ["big", "aligned"]).search(q, 1)
    assert ip_ids[0, 0] == "big" and cos_ids[0, 0] == "aligned"
    assert cos_s[0, 0] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(
    "params",
    [
        {"kind": "ivf"},  # default nlist=4*sqrt(n), nprobe=max(16, nlist//8)
        {"kind": "hnsw"},  # M=32, efConstruction=80, efSearch=128
    ],
)
def test_ann_recall_at_10(params: dict[str, str]) -> None:
    rng = np.random.default_rng(3)
    dim = 32
    centers = rng.normal(size=(40, dim))
    x = _clustered(rng, 6000, dim, centers)
    q = _clustered(rng, 300, dim, centers)
    idx = ItemIndex(**params).fit(x, _ids("i", len(x)))
    labels, _ = idx.search_rows(q, 10)
    exact, _ = _brute_topk(q, x, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(labels, exact, strict=True)])
    assert recall >= 0.95, f"{params}: recall@10 = {recall:.3f}"


def test_k_larger_than_index_pads_with_none() -> None:
    x = np.eye(3, dtype=np.float32)
    ids, scores = StyleIndex().fit(x, ["a", "b", "c"]).search(x[:1], 5)
    assert ids.shape == (1, 5)
    assert ids[0, 0] == "a" and set(ids[0, :3]) == {"a", "b", "c"}
    assert list(ids[0, 3:]) == [None, None]
    assert np.isneginf(scores[0, 3:]).all() and np.isfinite(scores[0, :3]).all()


def test_exclude_id_sets_and_csr_agree(data: dict[str, np.ndarray]) -> None:
    styles, users = data["styles"][:50], data["users"][:20]
    idx = ItemIndex(kind="flat").fit(styles, _ids("i", 50))
    full, _ = idx.search(users, 50)
    # Exclude each query's top 3 plus some arbitrary others.
    sets = [set(full[r, :3]) | {"i00049", "i00000"} for r in range(20)]
    ids_a, sc_a = idx.search(users, 5, exclude=sets)
    rows = [[idx.rows_of([i])[0] for i in s] for s in sets]
    csr = sp.csr_matrix(
        (np.ones(sum(map(len, rows))), ([r for r, rr in enumerate(rows) for _ in rr], sum(rows, []))),
        shape=(20, 50),
    )
    ids_b, sc_b = idx.search(users, 5, exclude=csr)
    assert (ids_a == ids_b).all() and np.array_equal(sc_a, sc_b)
    for r in range(20):
        assert not (set(ids_a[r]) & sets[r])
        expected = [i for i in full[r] if i not in sets[r]][:5]
        assert list(ids_a[r]) == expected


def test_exclude_everything_leaves_padding() -> None:
    x = np.eye(4, dtype=np.float32)
    idx = ItemIndex().fit(x, list("abcd"))
    ids, scores = idx.search(x[:2], 3, exclude=[{"a", "b", "c"}, set()])
    assert list(ids[0]) == ["d", None, None]
    assert np.isneginf(scores[0, 1:]).all()
    assert None not in list(ids[1])


def test_top_styles_by_user_id_and_cold_start(data: dict[str, np.ndarray]) -> None:
    styles, users = data["styles"], data["users"]
    uids = _ids("u", 200)
    idx = StyleIndex().fit(styles, _ids("s", 300), user_vectors=users, user_ids=uids)
    ids, scores = idx.top_styles(["u00005", "nobody", "u00199"], 4)
    ref_ids, ref_scores = idx.search(users[[5, 199]], 4)
    assert (ids[[0, 2]] == ref_ids).all()
    # Unknown user: answered with the mean user vector (documented default).
    mean_ids, _ = idx.search(users.mean(axis=0), 4)
    assert (ids[1] == mean_ids[0]).all()
    # An explicit default vector takes precedence over the mean.
    idx.set_users(users, uids, default_vector=styles[42])
    ids2, _ = idx.top_styles(["nobody"], 1)
    assert ids2[0, 0] == "s00042"


def test_top_items_excludes_seen_and_popularity_cold_start() -> None:
    rng = np.random.default_rng(1)
    items = rng.normal(size=(40, 8)).astype(np.float32)
    users = rng.normal(size=(5, 8)).astype(np.float32)
    item_ids = _ids("i", 40)
    seen = sp.lil_matrix((5, 40), dtype=np.int8)
    unseen_top, _ = _brute_topk(users, items, 40)
    for u in range(5):
        for c in unseen_top[u, :2]:  # each user has seen their two best items
            seen[u, c] = 1
    popularity = np.arange(40, dtype=np.float32)  # i00039 most popular
    idx = ItemIndex().fit(
        items, item_ids, user_vectors=users, user_ids=_ids("u", 5), seen=seen, popularity=popularity
    )
    ids, scores = idx.top_items(["u00000", "stranger", "u00003"], 3)
    for row, u in ((0, 0), (2, 3)):
        assert list(ids[row]) == [item_ids[c] for c in unseen_top[u, 2:5]]
    assert list(ids[1]) == ["i00039", "i00038", "i00037"]
    np.testing.assert_array_equal(scores[1], [39.0, 38.0, 37.0])
    # Without exclusion the seen best items come back.
    ids_all, _ = idx.top_items(["u00000"], 2, exclude_seen=False)
    assert list(ids_all[0]) == [item_ids[c] for c in unseen_top[0, :2]]
    # Unknown users with an explicit exclusion skip those popular items.
    ids_x, _ = idx.top_items(["stranger"], 2, exclude=[{"i00039"}])
    assert list(ids_x[0]) == ["i00038", "i00037"]


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_save_load_round_trip_identical(tmp_path: Path, kind: str) -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2000, 16)).astype(np.float32)
    users = rng.normal(size=(50, 16)).astype(np.float32)
    seen = sp.random(50, 2000, density=0.01, format="csr", random_state=1)
    pop = rng.random(2000).astype(np.float32)
    uids = _ids("u", 50)
    idx = ItemIndex(kind=kind, nprobe=7, ef_search=64).fit(
        x, _ids("i", 2000), user_vectors=users, user_ids=uids, seen=seen, popularity=pop
    )
    query = [*uids[:10], "new-user"]
    before = idx.top_items(query, 10)
    idx.save(tmp_path / "idx")
    loaded = ItemIndex.load(tmp_path / "idx")
    after = loaded.top_items(query, 10)
    assert loaded.kind_ == kind and loaded.get_params() == idx.get_params()
    assert (before[0] == after[0]).all()
    np.testing.assert_array_equal(before[1], after[1])
    if kind == "ivf":
        assert loaded.index_.nprobe == 7
    with pytest.raises(ValueError, match="not a StyleIndex"):
        StyleIndex.load(tmp_path / "idx")


def test_add_new_items_become_searchable() -> None:
    x = np.eye(3, dtype=np.float32)
    idx = ItemIndex().fit(x[:2], ["a", "b"])
    idx.add(x[2:], ["c"])
    ids, _ = idx.search(x[2], 1)
    assert ids[0, 0] == "c"
    with pytest.raises(ValueError, match="already in the index"):
        idx.add(x[:1], ["a"])


def test_bad_input_is_named() -> None:
    x = np.eye(3, dtype=np.float32)
    with pytest.raises(ValueError, match="duplicate id 'a'"):
        StyleIndex().fit(x, ["a", "b", "a"])
    with pytest.raises(ValueError, match="2 ids for 3 vectors"):
        StyleIndex().fit(x, ["a", "b"])
    bad = x.copy()
    bad[1, 0] = np.nan
    with pytest.raises(ValueError, match="row 1 contains NaN"):
        StyleIndex().fit(bad, ["a", "b", "c"])
    idx = StyleIndex().fit(x, ["a", "b", "c"])
    with pytest.raises(ValueError, match="expected dimension 3"):
        idx.search(np.ones((1, 4)), 1)
    with pytest.raises(RuntimeError, match="no user table"):
        idx.top_styles(["u"], 1)
    with pytest.raises(ValueError, match="kind must be"):
        StyleIndex(kind="lsh").fit(x, ["a", "b", "c"])  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="use_gpu=True"):
        if not _has_gpu():
            StyleIndex(use_gpu=True).fit(x, ["a", "b", "c"])
        else:  # pragma: no cover - GPU boxes
            raise RuntimeError("use_gpu=True (skipped on GPU)")


def _has_gpu() -> bool:
    from compute.device import faiss_gpu_available

    return faiss_gpu_available()


def test_thread_count_respects_omp_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert faiss_threads() == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert faiss_threads() >= 1
