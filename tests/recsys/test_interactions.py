"""Interactions: weights, impressions as weak negatives, stable id maps, temporal splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys.interactions import IdMap, build_interactions, split_by_time, split_last_n


def _events() -> pd.DataFrame:
    ts = pd.date_range("2026-01-01", periods=7, freq="D", tz="UTC")
    return pd.DataFrame(
        {
            "user_id": ["a", "a", "a", "b", "b", "b", "b"],
            "item_id": ["x", "x", "y", "x", "z", "y", "x"],
            "event_type": ["view", "click", "view", "purchase", "click", "add_to_cart", "click"],
            "timestamp": ts,
        }
    )


def test_weights_order_and_impressions_are_weak_negatives() -> None:
    inter = build_interactions(_events())
    m = inter.matrix.toarray()
    a, b = inter.user_map.index("a"), inter.user_map.index("b")
    x, y, z = (inter.item_map.index(k) for k in "xyz")
    assert m[a, x] == pytest.approx(1.0)  # the view does not cancel the click
    assert m[a, y] < 0  # impression without click
    assert m[b, x] > m[b, y] > m[b, z] > 0  # purchase+click > add_to_cart > click


def test_time_decay_halves_at_half_life() -> None:
    ev = _events().iloc[[1, 4]]  # a-x click (day 2), b-z click (day 5)
    inter = build_interactions(ev, half_life_days=3.0)
    m = inter.matrix.toarray()
    assert m[0, 0] == pytest.approx(0.5, rel=1e-5)
    assert m[1, 1] == pytest.approx(1.0)


def test_unknown_event_type_is_named() -> None:
    ev = _events().assign(event_type="like")
    with pytest.raises(ValueError, match="like"):
        build_interactions(ev)


def test_idmap_is_stable_and_roundtrips(tmp_path: Path) -> None:
    first = IdMap(["u1", "u2"])
    second = first.copy().extend(["u3", "u1"])
    assert second.indices(["u1", "u2", "u3", "nope"]).tolist() == [0, 1, 2, -1]
    assert len(first) == 2
    second.save(tmp_path / "m.json")
    assert IdMap.load(tmp_path / "m.json") == second
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="bad.json"):
        IdMap.load(tmp_path / "bad.json")


def test_split_last_n_holds_out_latest_positives_only() -> None:
    train, test = split_last_n(_events(), 1)
    # a has one positive only (needs n + min_train = 2): stays entirely in train
    assert set(zip(test.user_id, test.item_id, strict=True)) == {("b", "x")}
    assert (train.user_id == "a").sum() == 3
    # b: everything before the held-out click is train
    assert (train.user_id == "b").sum() == 3
    assert train[train.user_id == "b"].timestamp.max() < test.timestamp.min()


def test_split_by_time() -> None:
    train, test = split_by_time(_events(), "2026-01-05")
    assert train.timestamp.max() < pd.Timestamp("2026-01-05", tz="UTC")
    assert set(test.event_type) <= {"click", "add_to_cart", "purchase"}
    assert len(train) + len(test) == len(_events()) - 0
    assert np.all(test.timestamp >= pd.Timestamp("2026-01-05", tz="UTC"))
