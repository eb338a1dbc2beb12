"""Behaviour of recsys.segments: determinism, stable ids, kept conditions, cold start, save/load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recsys.segments import Segmentation, UserSegmenter, segment_users

DIM = 16
N_TASTES = 6


def _world(seed: int = 0, n_users: int = 3000) -> dict[str, object]:
    """Users around 6 taste directions (unequal group sizes), and 40 library styles."""
    rng = np.random.default_rng(seed)
    tastes = np.linalg.qr(rng.normal(size=(DIM, DIM)))[0][:N_TASTES] * 3.0
    probs = np.array([0.3, 0.25, 0.15, 0.12, 0.1, 0.08])
    group = rng.choice(N_TASTES, size=n_users, p=probs)
    scale = rng.uniform(0.5, 2.0, size=(n_users, 1))  # activity level: must not matter
    users = (scale * (tastes[group] + 0.4 * rng.normal(size=(n_users, DIM)))).astype(np.float32)
    styles = rng.normal(size=(40, DIM)).astype(np.float32)
    return {
        "users": users,
        "user_ids": [f"u{i:05d}" for i in range(n_users)],
        "group": group,
        "styles": styles,
        "style_ids": [f"style-{i:02d}" for i in range(40)],
    }


@pytest.fixture(scope="module")
def world() -> dict[str, object]:
    return _world()


def _fit(world: dict[str, object], previous: Segmentation | None = None, **params: object):
    seg = UserSegmenter(**{"n_segments": N_TASTES, "n_blend": 3, **params})  # type: ignore[arg-type]
    return seg.fit(
        world["users"], world["user_ids"], world["styles"], world["style_ids"], previous=previous
    )


def test_recovers_taste_groups_and_orders_first_ids_by_size(world: dict[str, object]) -> None:
    seg = _fit(world)
    group = np.asarray(world["group"])
    # Each true group maps (almost) entirely to one segment and vice versa.
    for g in range(N_TASTES):
        labels = seg.labels_[group == g]
        assert np.bincount(labels).max() / labels.size > 0.98
    assert len(set(seg.labels_)) == N_TASTES
    assert seg.segment_ids_ == [f"seg-{i:02d}" for i in range(N_TASTES)]
    assert list(seg.sizes_) == sorted(seg.sizes_, reverse=True)
    assert seg.default_segment_ == "seg-00"
    assert seg.sizes_.sum() == len(group)
    np.testing.assert_allclose(np.linalg.norm(seg.centroids_, axis=1), 1.0, atol=1e-5)


def test_same_seed_is_deterministic(world: dict[str, object]) -> None:
    a, b = _fit(world, seed=3), _fit(world, seed=3)
    assert a.segment_ids_ == b.segment_ids_ and a.conditions_ == b.conditions_
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_array_equal(a.centroids_, b.centroids_)


def test_conditions_blend_nearest_styles(world: dict[str, object]) -> None:
    seg = _fit(world)
    styles = np.asarray(world["styles"])
    style_ids = np.asarray(world["style_ids"])
    for centroid, cond in zip(seg.centroids_, seg.conditions_, strict=True):
        sims = styles @ centroid
        top = np.argsort(-sims)[:3]
        expected = [s for s, v in zip(style_ids[top], sims[top], strict=True) if v > 0]
        assert list(cond.style_ids) == expected
        assert all(w > 0 for w in cond.weights)
        assert sum(cond.weights) == pytest.approx(1.0, abs=1e-5)
        assert list(cond.weights) == sorted(cond.weights, reverse=True)


def test_disliked_styles_fall_back_to_single_best() -> None:
    users = np.tile([[1.0, 0.0]], (50, 1)).astype(np.float32)
    users[:, 1] = np.linspace(-0.01, 0.01, 50)
    styles = np.array([[-1.0, 0.0], [-2.0, 0.1], [-0.5, 0.0]], dtype=np.float32)
    seg = UserSegmenter(n_segments=1, n_blend=3).fit(
        users, [str(i) for i in range(50)], styles, ["a", "b", "c"]
    )
    assert seg.conditions_[0].style_ids == ("c",) and seg.conditions_[0].weights == (1.0,)


def test_unchanged_inputs_keep_ids_and_conditions(world: dict[str, object]) -> None:
    first = _fit(world).to_segmentation()
    again = _fit(world, previous=first)
    assert again.segment_ids_ == first.segment_ids
    assert [first.conditions[s] for s in again.segment_ids_] == again.conditions_
    assert again.kept_condition_.all()
    np.testing.assert_allclose(again.match_distance_, 0.0, atol=1e-5)
    assert (again.to_segmentation().assignment == first.assignment).all().all()


def test_permuted_and_perturbed_refit_keeps_ids(world: dict[str, object]) -> None:
    first = _fit(world).to_segmentation()
    rng = np.random.default_rng(11)
    perm = rng.permutation(len(world["user_ids"]))  # type: ignore[arg-type]
    users = np.asarray(world["users"])[perm]
    users = users + 0.02 * rng.normal(size=users.shape).astype(np.float32)
    moved = dict(world, users=users, user_ids=[world["user_ids"][i] for i in perm])  # type: ignore[index]
    # A different seed too: the raw cluster numbering changes, the ids must not.
    night2 = _fit(moved, previous=first, seed=5).to_segmentation()
    assert night2.segment_ids == first.segment_ids
    before = first.assignment.set_index("user_id")["segment_id"].astype(str)
    after = night2.assignment.set_index("user_id")["segment_id"].astype(str)
    assert (before.loc[after.index] == after).mean() > 0.99
    # Small drift: same conditions, so the render cache stays valid.
    assert night2.conditions == first.conditions


def test_ids_follow_centroids_not_cluster_numbering(world: dict[str, object]) -> None:
    """Rename last night's segments arbitrarily: tonight's users must get the renamed ids."""
    first = _fit(world).to_segmentation()
    rename = dict(zip(first.segment_ids, ["seg-07", "seg-02", "seg-11", "seg-00", "seg-05", "seg-09"], strict=True))
    renamed = Segmentation(
        segment_ids=[rename[s] for s in first.segment_ids],
        centroids=first.centroids,
        conditions={rename[s]: c for s, c in first.conditions.items()},
        assignment=first.assignment.assign(
            segment_id=first.assignment["segment_id"].astype(str).map(rename)
        ),
        default_segment=rename[first.default_segment],
        next_index=12,
    )
    night2 = _fit(world, previous=renamed, seed=9)
    assert night2.segment_ids_ == sorted(rename.values())
    got = np.asarray(night2.segment_ids_, dtype=object)[night2.labels_]
    expected = first.assignment["segment_id"].astype(str).map(rename).to_numpy()
    assert (got == expected).all()
    cond = dict(zip(night2.segment_ids_, night2.conditions_, strict=True))
    assert all(cond[rename[s]] == first.conditions[s] for s in first.segment_ids)
    assert night2.next_index_ == 12


def test_growing_and_shrinking_k_never_reuses_ids(world: dict[str, object]) -> None:
    four = _fit(world, n_segments=4).to_segmentation()
    six = _fit(world, previous=four, n_segments=6).to_segmentation()
    assert set(four.segment_ids) < set(six.segment_ids)
    assert set(six.segment_ids) - set(four.segment_ids) == {"seg-04", "seg-05"}
    assert six.next_index == 6
    three = _fit(world, previous=six, n_segments=3).to_segmentation()
    assert set(three.segment_ids) < set(six.segment_ids)
    back = _fit(world, previous=three, n_segments=6).to_segmentation()
    fresh = set(back.segment_ids) - set(three.segment_ids)
    assert fresh == {"seg-06", "seg-07", "seg-08"}


def test_changed_styles_change_the_condition(world: dict[str, object]) -> None:
    first = _fit(world).to_segmentation()
    # Drop the top style of seg-00 from the library: its condition must be recomputed.
    gone = first.conditions["seg-00"].style_ids[0]
    keep = [i for i, s in enumerate(world["style_ids"]) if s != gone]  # type: ignore[arg-type]
    smaller = dict(
        world,
        styles=np.asarray(world["styles"])[keep],
        style_ids=[world["style_ids"][i] for i in keep],  # type: ignore[index]
    )
    night2 = _fit(smaller, previous=first)
    cond = dict(zip(night2.segment_ids_, night2.conditions_, strict=True))
    assert gone not in cond["seg-00"].style_ids
    assert not night2.kept_condition_[night2.segment_ids_.index("seg-00")]
    # Segments that did not use the dropped style keep their conditions.
    for sid in night2.segment_ids_:
        if gone not in first.conditions[sid].style_ids:
            assert cond[sid] == first.conditions[sid]


def test_assign_and_unknown_users_get_default(world: dict[str, object]) -> None:
    result = _fit(world).to_segmentation()
    users = np.asarray(world["users"])
    fresh = users[:20] * 1.7  # same directions, other scale
    assigned = result.assign(np.vstack([fresh, np.zeros((1, DIM), np.float32)]))
    expected = np.asarray(result.assignment["segment_id"].astype(str))[:20]
    assert list(assigned[:20]) == list(expected)
    sizes = result.sizes
    largest = max(sizes, key=lambda s: sizes[s])
    assert result.default_segment == largest
    assert assigned[20] == largest  # an all-zero vector: no signal, default segment
    got = result.segment_of(["u00003", "brand-new-user", "u00004"])
    assert list(got) == [expected[3], largest, expected[4]]


def test_zero_vector_users_and_tiny_inputs() -> None:
    w = _world(n_users=10)
    users = np.asarray(w["users"]).copy()
    users[0] = 0.0
    seg = UserSegmenter(n_segments=20, n_blend=2).fit(
        users, w["user_ids"], w["styles"], w["style_ids"]
    )
    assert len(seg.segment_ids_) == 9  # only 9 users with a signal
    assert seg.segment_ids_[seg.labels_[0]] == seg.default_segment_
    assert seg.sizes_.sum() == 10


def test_save_load_round_trip(tmp_path: Path, world: dict[str, object]) -> None:
    result = segment_users(
        world["users"], world["user_ids"], world["styles"], world["style_ids"], n_segments=5
    )
    result.save(tmp_path / "seg")
    loaded = Segmentation.load(tmp_path / "seg")
    assert loaded.segment_ids == result.segment_ids
    assert loaded.conditions == result.conditions
    assert loaded.default_segment == result.default_segment
    assert loaded.next_index == result.next_index
    np.testing.assert_array_equal(loaded.centroids, result.centroids)
    pd_eq = loaded.assignment.astype(str).equals(result.assignment.astype(str))
    assert pd_eq
    users = np.asarray(world["users"])[:50]
    assert list(loaded.assign(users)) == list(result.assign(users))
    # A loaded segmentation works as "previous": nothing changes.
    again = _fit(world, previous=loaded, n_segments=5)
    assert again.segment_ids_ == result.segment_ids and again.kept_condition_.all()


def test_bad_input_is_named(world: dict[str, object]) -> None:
    users = np.asarray(world["users"]).copy()
    users[7, 2] = np.nan
    with pytest.raises(ValueError, match=r"row 7 \('u00007'\) contains NaN"):
        _fit(dict(world, users=users))
    with pytest.raises(ValueError, match="style embeddings: expected shape"):
        _fit(dict(world, styles=np.ones((40, DIM + 1), np.float32)))
    with pytest.raises(ValueError, match="every vector is zero"):
        _fit(dict(world, users=np.zeros_like(users)))
    with pytest.raises(ValueError, match="n_segments must be"):
        _fit(world, n_segments=0)
    with pytest.raises(FileNotFoundError, match="not a saved Segmentation"):
        Segmentation.load(Path("/nonexistent-segments"))
