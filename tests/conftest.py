"""Shared fixtures: the real reference data in ``../shared/data`` and database URLs.

Tests that need the real data use the ``shared_data`` fixture.  When the folder
is missing they skip with a clear reason, unless ``STYLEREC_REQUIRE_SHARED_DATA=1``
(set by CI), where a missing folder is a failure instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """Where the reference data lives: ``$STYLEREC_SHARED_DATA`` or ``../shared/data``."""
    env = os.environ.get("STYLEREC_SHARED_DATA")
    return Path(env) if env else ROOT.parent / "shared" / "data"


def _require_shared() -> bool:
    return os.environ.get("STYLEREC_REQUIRE_SHARED_DATA", "") not in ("", "0", "false")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of the real reference data; skip (or fail under CI) when it is absent."""
    path = shared_data_dir()
    if not path.is_dir():
        reason = f"real reference data not found at {path} (set STYLEREC_SHARED_DATA)"
        if _require_shared():
            pytest.fail(reason + " and STYLEREC_REQUIRE_SHARED_DATA=1", pytrace=False)
        pytest.skip(reason)
    return path


def pg_url() -> str:
    """PostgreSQL URL for store tests (CI's local server by default)."""
    return os.environ.get(
        "STYLEREC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL on SQLite and on PostgreSQL (one schema per test).

    PostgreSQL: the schema is put first in the ``search_path`` through libpq's
    ``options`` in the URL, which psycopg 3 passes to the server at connect, so
    every connection (also in a subprocess given the URL) lands in the schema.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    sqlalchemy = pytest.importorskip("sqlalchemy")
    url = pg_url()
    schema = f"t_{os.getpid()}_{abs(hash(request.node.nodeid)) % 10**8}"
    try:
        engine = sqlalchemy.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # noqa: BLE001 - any connection failure means "no server"
        if os.environ.get("CI") or _require_shared():
            pytest.fail(f"PostgreSQL at {url} is not reachable: {exc}", pytrace=False)
        pytest.skip(f"PostgreSQL at {url} is not reachable: {exc}")
    sep = "&" if "?" in url else "?"
    yield f"{url}{sep}options=-csearch_path%3D{schema}"
    with engine.begin() as conn:
        # A connection a failed test left inside a transaction would make DROP wait forever.
        conn.execute(sqlalchemy.text("SET LOCAL lock_timeout = '30s'"))
        conn.execute(sqlalchemy.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


# --- demo world (demo) --------------------------------------------------------
# Session-scoped: generating is deterministic, so every test can share one copy.  Tests
# must treat these worlds as read-only (copy the directory before changing files).

SMALL_WORLD_CONFIG = {
    "seed": 7,
    "n_users": 300,
    "n_items": 40,
    "n_styles": 12,
    "image_size": 128,
    "target_events": 15_000,
}


@pytest.fixture(scope="session")
def small_world(tmp_path_factory: pytest.TempPathFactory):
    """A small seeded demo world (300 users, 40 items, 12 styles, 128-px images): ~0.5 s."""
    from demo import WorldConfig, generate_world

    return generate_world(tmp_path_factory.mktemp("small_world"), WorldConfig(**SMALL_WORLD_CONFIG))


@pytest.fixture(scope="session")
def demo_world(tmp_path_factory: pytest.TempPathFactory):
    """The default-size demo world (2,000 users, 200 items, 12 styles, 512-px images): ~10 s."""
    from demo import WorldConfig, generate_world

    return generate_world(tmp_path_factory.mktemp("demo_world"), WorldConfig())
