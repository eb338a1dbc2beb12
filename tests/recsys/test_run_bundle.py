"""RunBundle: every file of a run round-trips, and a bad bundle is refused with a clear error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsys import run_bundle as RB
from recsys.run_bundle import BundleError, BundleVersionError, RunBundle
from recsys.segments import Segmentation, UserSegmenter


@pytest.fixture
def bundle(tmp_path: Path) -> RunBundle:
    return RunBundle.create(tmp_path / "run")


def _segmentation(rng: np.random.Generator, n_users: int = 60) -> tuple[Segmentation, list]:
    users = rng.normal(size=(n_users, 4)).astype(np.float32)
    styles = rng.normal(size=(5, 4)).astype(np.float32)
    seg = UserSegmenter(n_segments=3, n_blend=2, seed=0).fit(
        users, [f"u{i}" for i in range(n_users)], styles, [f"s{i}" for i in range(5)]
    ).to_segmentation()
    conditions = [{"segment_id": s, "style_ids": list(seg.conditions[s].style_ids),
                   "weights": list(seg.conditions[s].weights), "code": rng.normal(size=3),
                   "condition_hash": f"h{n}"} for n, s in enumerate(seg.segment_ids)]
    return seg, conditions


def test_every_table_round_trips(bundle: RunBundle) -> None:
    for name in RB.TABLES:
        df = pd.DataFrame({"item_id": ["a", "b"], "style_id": ["x", "y"],
                           "image_uri": ["a.jpg", None], "score": [0.5, 1.5]})
        bundle.write_table(name, df)
        got = bundle.read_table(name)
        pd.testing.assert_frame_equal(got, df, check_dtype=False)
        assert name in bundle.manifest()["files"]
    assert bundle.read_table(RB.EVENTS, columns=["score"]).columns.tolist() == ["score"]
    with pytest.raises(ValueError, match="not a run-bundle table"):
        bundle.write_table("secrets.parquet", pd.DataFrame())
    with pytest.raises(ValueError, match="image_uri"):
        bundle.write_table(RB.ITEMS, pd.DataFrame({"item_id": ["a"]}))


def test_codes_whitening_and_style_embeddings_round_trip(bundle: RunBundle) -> None:
    from stylizer.style_space import StyleSpace

    rng = np.random.default_rng(0)
    items, styles = rng.normal(size=(7, 6)).astype(np.float32), rng.normal(size=(4, 6))
    bundle.write_codes([f"i{n}" for n in range(7)], items, ["s0", "s1", "s2", "s3"], styles)
    codes = bundle.read_codes()
    assert codes.item_ids == [f"i{n}" for n in range(7)] and codes.style_ids[-1] == "s3"
    np.testing.assert_array_equal(codes.item_codes, items)
    np.testing.assert_array_equal(codes.style_codes, styles.astype(np.float32))
    with pytest.raises(ValueError, match="3 ids"):
        bundle.write_codes(["a", "b", "c"], items)

    space = StyleSpace().fit(styles.astype(np.float32))
    assert bundle.read_whitening() is None
    bundle.write_whitening(space.mean_, space.whitening_)
    wh = bundle.read_whitening()
    assert wh is not None and wh.matrix.dtype == space.whitening_.dtype
    # The one whitening file whitens exactly as the fitted space does.
    np.testing.assert_array_equal(wh.transform(items), space.transform(items))
    with pytest.raises(ValueError, match="does not fit"):
        bundle.write_whitening(np.zeros(3), np.eye(4))

    emb = rng.normal(size=(4, 3))
    bundle.write_style_embeddings(["s0", "s1", "s2", "s3"], emb)
    table = bundle.read_style_embeddings()
    assert table.style_ids == ["s0", "s1", "s2", "s3"]
    np.testing.assert_allclose(table.embeddings, emb, rtol=1e-6)
    assert {RB.CODES, RB.WHITENING, RB.STYLE_EMBEDDINGS} <= set(bundle.manifest()["files"])
    assert not bundle.has(RB.LEGACY_STYLE_SPACE)


def test_model_and_id_maps_round_trip(bundle: RunBundle) -> None:
    from recsys.model import StylePreferenceModel

    rng = np.random.default_rng(1)
    X = sp.csr_matrix((np.ones(300, np.float32), (rng.integers(0, 30, 300),
                                                  rng.integers(0, 20, 300))), shape=(30, 20))
    model = StylePreferenceModel(factors=4, epochs=1, validation_users=3, negatives=8,
                                 show_progress=False).fit(X, item_codes=rng.normal(size=(20, 5)))
    users, items = [f"u{n}" for n in range(30)], [f"i{n}" for n in range(20)]
    bundle.write_model(model, users, items)
    assert bundle.read_ids("user") == users and bundle.read_ids("item") == items
    assert list(bundle.read_id_map("item").ids) == items
    arrays = bundle.read_factors()
    np.testing.assert_array_equal(arrays.user_factors, model.user_factors_)
    np.testing.assert_allclose(arrays.item_factors, model.item_factors_, rtol=1e-5, atol=1e-6)
    loaded = bundle.load_model()
    np.testing.assert_array_equal(loaded.item_bias_, model.item_bias_)
    assert set(RB.MODEL_FILES) <= set(bundle.manifest()["files"])
    with pytest.raises(FileNotFoundError, match="conditions.json"):
        bundle.check_servable()
    # Duplicated ids in an id map are a broken file, not a smaller map.
    bundle.write_ids("user", ["a", "a"])
    with pytest.raises(BundleError, match="not unique"):
        bundle.read_id_map("user")


def test_indices_round_trip(bundle: RunBundle) -> None:
    from recsys.index import ItemIndex, StyleIndex

    rng = np.random.default_rng(2)
    items = rng.normal(size=(12, 4)).astype(np.float32)
    bundle.write_item_index(ItemIndex(use_gpu=False).fit(items, [f"i{n}" for n in range(12)]))
    got = bundle.read_item_index()
    assert got.ids_ == [f"i{n}" for n in range(12)]
    styles, users = rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=(5, 4))
    bundle.write_style_index(StyleIndex(use_gpu=False).fit(
        styles, ["a", "b", "c"], users.astype(np.float32), [f"u{n}" for n in range(5)]))
    ids, _ = bundle.read_style_index().top_styles(["u0"], 2)
    assert set(ids.ravel().tolist()) <= {"a", "b", "c"}
    assert {RB.ITEM_INDEX, RB.STYLE_INDEX} <= set(bundle.manifest()["files"])


def test_segments_live_once_and_round_trip(bundle: RunBundle) -> None:
    rng = np.random.default_rng(3)
    seg, conditions = _segmentation(rng)
    bundle.write_segments(seg, conditions)
    # The assignment is the store's: no user id is written into the bundle's files.
    with np.load(bundle.path(RB.SEGMENTATION) / "segments.npz") as z:
        assert z.files == ["centroids"]
    meta = json.loads((bundle.path(RB.SEGMENTATION) / "segments.json").read_text())
    assert "conditions" not in meta and meta["format_version"] == RB.SEGMENTS_FORMAT_VERSION
    rows = bundle.read_conditions()
    assert [r["segment_id"] for r in rows] == seg.segment_ids
    assert all("n_users" not in r and len(r["code"]) == 3 for r in rows)

    got = bundle.read_segmentation(seg.assignment.astype({"segment_id": str}))
    assert got is not None
    assert got.segment_ids == seg.segment_ids and got.default_segment == seg.default_segment
    assert got.next_index == seg.next_index and got.conditions == seg.conditions
    np.testing.assert_array_equal(got.centroids, seg.centroids)
    assert got.sizes == seg.sizes
    assert bundle.read_default_segment() == seg.default_segment
    assert bundle.read_segmentation().sizes == {s: 0 for s in seg.segment_ids}  # type: ignore[union-attr]

    wrong = [{**conditions[0], "weights": [0.1] * len(conditions[0]["weights"])},
             *conditions[1:]]
    with pytest.raises(ValueError, match="differs"):
        bundle.write_segments(seg, wrong)
    with pytest.raises(ValueError, match="name segments"):
        bundle.write_segments(seg, conditions[1:])


def test_copy_from_another_run(tmp_path: Path) -> None:
    old = RunBundle.create(tmp_path / "old")
    old.write_ids("user", ["a"])
    old.write_ids("item", ["b"])
    new = RunBundle.create(tmp_path / "new")
    assert not new.copy_from(old, list(RB.MODEL_FILES))  # the model itself is missing
    assert new.copy_from(old, [RB.USER_MAP, RB.ITEM_MAP])
    assert new.read_ids("item") == ["b"] and RB.USER_MAP in new.manifest()["files"]


def test_format_one_bundle_is_read(tmp_path: Path) -> None:
    """A run written before RunBundle (no manifest, assignment and conditions in
    segmentation/, a second whitening in style_space.npz) is served as it is."""
    rng = np.random.default_rng(4)
    root = tmp_path / "old"
    root.mkdir()
    seg, conditions = _segmentation(rng)
    seg.save(root / RB.SEGMENTATION)  # format 1, as the segment stage wrote it
    legacy = [{**c, "code": [float(x) for x in c["code"]], "n_users": seg.sizes[c["segment_id"]]}
              for c in conditions]
    (root / RB.CONDITIONS).write_text(json.dumps(legacy, indent=1))
    np.savez(root / RB.WHITENING, mean=np.zeros(3), matrix=np.eye(3))
    np.savez(root / RB.CODES, item_ids=np.array(["i"]), item_codes=np.ones((1, 3)),
             style_ids=np.array(["s"]), style_codes=np.ones((1, 3)))
    bundle = RunBundle.open(root)
    assert bundle.format_version == 1 and not bundle.has(RB.MANIFEST)
    assert bundle.read_codes().item_ids == ["i"]
    got = bundle.read_segmentation(seg.assignment)
    assert got is not None and got.sizes == seg.sizes and got.conditions == seg.conditions
    assert bundle.read_conditions()[0]["n_users"] == seg.sizes[seg.segment_ids[0]]
    # Reading never writes; opening for writing upgrades it to a manifest of format 2.
    assert not bundle.has(RB.MANIFEST)
    assert RunBundle.create(root).manifest()["format_version"] == RB.BUNDLE_FORMAT_VERSION
    assert RB.CODES in RunBundle.open(root).manifest()["files"]


@pytest.mark.parametrize(("content", "error", "message"), [
    ("{not json", BundleError, "corrupt run-bundle manifest"),
    (json.dumps({"kind": "someone-elses-run", "format_version": 1}), BundleError,
     "not a stylerec run bundle"),
    (json.dumps(["a", "list"]), BundleError, "not a stylerec run bundle"),
    (json.dumps({"kind": RB.BUNDLE_KIND, "format_version": "2"}), BundleError,
     "invalid format_version"),
    (json.dumps({"kind": RB.BUNDLE_KIND, "format_version": RB.BUNDLE_FORMAT_VERSION + 1}),
     BundleVersionError, "newer stylerec"),
])
def test_foreign_corrupt_or_too_new_manifest_is_refused(
        tmp_path: Path, content: str, error: type[Exception], message: str) -> None:
    (tmp_path / RB.MANIFEST).write_text(content)
    with pytest.raises(error, match=message):
        RunBundle.open(tmp_path)
    with pytest.raises(error, match=message):
        RunBundle.create(tmp_path)


def test_corrupt_files_are_refused_naming_the_file(bundle: RunBundle) -> None:
    with pytest.raises(FileNotFoundError, match="missing codes.npz"):
        bundle.read_codes()
    bundle.path(RB.CODES).write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(BundleError, match=r"codes\.npz: corrupt npz"):
        bundle.read_codes()
    np.savez(bundle.path(RB.CODES), something_else=np.zeros(2))
    with pytest.raises(BundleError, match=r"codes\.npz: arrays .*item_ids"):
        bundle.read_codes()
    bundle.path(RB.CONDITIONS).write_text('{"segment_id": "x"}')
    with pytest.raises(BundleError, match="expected a JSON list"):
        bundle.read_conditions()
    bundle.path(RB.CONDITIONS).write_text('[{"segment_id": "x", "weights": [1]}]')
    with pytest.raises(BundleError, match="entry 0 lacks 'style_ids'"):
        bundle.read_conditions()
    bundle.path(RB.USER_MAP).write_text("\xff{")
    with pytest.raises(BundleError, match="user_map.json: corrupt JSON"):
        bundle.read_ids("user")
    bundle.path(RB.ITEMS).write_bytes(b"not parquet at all")
    with pytest.raises(BundleError, match="unreadable parquet"):
        bundle.read_table(RB.ITEMS)
    folder = bundle.path(RB.SEGMENTATION)
    folder.mkdir()
    (folder / "segments.json").write_text(json.dumps({"format_version": 9}))
    with pytest.raises(BundleVersionError, match="segments format 9"):
        bundle.read_segmentation()


def test_service_serves_a_format_one_run(tmp_path: Path) -> None:
    """A run published by the code before RunBundle (no manifest, no segmentation/ in a
    synthetic run, sizes recorded in conditions.json) still loads and answers."""
    import shutil

    from data.store import Store
    from recsys.serving import PersonalizationService
    from recsys.serving.synthetic import make_run

    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    run = make_run(store, tmp_path, n_users=30, n_items=40, n_segments=3, seed=9, tag="v1")
    (run.run_dir / RB.MANIFEST).unlink()
    shutil.rmtree(run.run_dir / RB.SEGMENTATION)
    sizes = np.bincount(run.segment_of_user, minlength=3)
    rows = json.loads((run.run_dir / RB.CONDITIONS).read_text())
    smallest = int(np.argmin(sizes))
    legacy = [{**r, "n_users": int(sizes[n])} for n, r in enumerate(rows)]
    (run.run_dir / RB.CONDITIONS).write_text(json.dumps(legacy))
    svc = PersonalizationService.from_store(store)
    assert RunBundle.open(run.run_dir).format_version == 1
    assert svc.segment_of("someone-new") == run.segment_ids[int(np.argmax(sizes))]
    user = run.user_ids[int(np.flatnonzero(run.segment_of_user == smallest)[0])]
    assert svc.segment_of(user) == run.segment_ids[smallest]
    assert len(svc.recommend(user, 5)) == 5
