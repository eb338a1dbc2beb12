"""The ``Store`` facade forwards every public method of its repositories, unchanged.

A repository method that the facade forgot would be unreachable through the
API every caller uses; a forwarded one must keep its signature and docstring
so that ``help(Store)`` stays the reference.
"""

from __future__ import annotations

import inspect

import pytest

from data.store import Store
from data.store.repository import Repository

REPOSITORIES = ("catalog", "runs", "segments", "renders", "quarantine")


@pytest.fixture
def store(tmp_path):
    with Store(f"sqlite:///{tmp_path / 'facade.db'}") as s:
        yield s


def test_every_repository_method_is_forwarded_with_its_signature(store: Store) -> None:
    seen = set()
    for attr in REPOSITORIES:
        repo = getattr(store, attr)
        assert isinstance(repo, Repository) and repo.db is store.db
        for name, method in inspect.getmembers(type(repo), inspect.isfunction):
            if name.startswith("_"):
                continue
            seen.add(name)
            facade = getattr(Store, name, None)
            assert facade is not None, f"Store does not forward {attr}.{name}"
            assert inspect.signature(facade) == inspect.signature(method), name
            assert facade.__doc__ == method.__doc__, name
    assert {"upsert_items", "publish", "write_user_segments", "add_renders",
            "add_quarantine"} <= seen  # fmt: skip


def test_forwarding_calls_the_instance_repository(store: Store) -> None:
    calls = []
    store.runs.current_run_id = lambda: calls.append("runs") or "r-1"  # type: ignore[method-assign]
    assert store.current_run_id() == "r-1" and calls == ["runs"]
    run = store.create_run({"a": 1}, stages=("x",))
    assert store.get_run(run)["params"] == {"a": 1}
    store.chunk_size = 7
    assert store.db.chunk_size == 7 == store.chunk_size
