"""The run lock: one nightly job at a time per store.

Two nightlies started together on one store used to join the same run and
both render everything (896 and 960 renders for 480 needed).  The lock makes
the second one wait (``wait_s``) or stop with :class:`RunLockedError`, whose
message names the holder: pid, host, run and since when.

Both kinds of lock are held by the *operating system or the server on behalf
of a live process*, so a process that dies (even by SIGKILL) releases its lock
at once; nothing stale can block the next night.

* **PostgreSQL**: a session-level advisory lock (``pg_try_advisory_lock``) on a
  connection kept open for the run.  The key is derived from the schema, so
  stores in different schemas of one database do not block each other.  The
  holder describes itself in its connection's ``application_name``, which the
  next process reads from ``pg_stat_activity``.
* **SQLite**: ``flock`` on a file beside the database (``<db>.nightly.lock``),
  which holds the holder's description as JSON.  A description left behind
  by a dead process is overwritten by the next holder (logged as a takeover).
  An in-memory database has nobody to share it with and takes no lock.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

#: Seconds between two tries while waiting for the lock.
POLL_S = 0.25


class RunLockedError(ValueError):
    """Another live process holds the run lock; the message names it.

    A ``ValueError`` so that every command prints it as one clear line.
    """

    def __init__(self, store: str, holder: dict[str, Any] | None, waited_s: float) -> None:
        self.holder = holder or {}
        who = describe_holder(self.holder)
        super().__init__(
            f"another nightly holds the run lock of {store}: {who}; waited {waited_s:.0f} s. "
            "It will go on by itself; rerun later or pass --wait SECONDS "
            "(docs/operations.md says how to clear a stale lock)"
        )


def describe_holder(holder: dict[str, Any]) -> str:
    """``pid 123 on host h, run R, since T`` from what a holder recorded."""
    if not holder:
        return "holder unknown"
    parts = [f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}"]
    if holder.get("run"):
        parts.append(f"run {holder['run']}")
    if holder.get("since"):
        parts.append(f"since {holder['since']}")
    return ", ".join(parts)


def _me(run: str | None = None) -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "run": run or "",
            "since": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}


class RunLock:
    """A held run lock; :meth:`set_run` records which run the holder works on."""

    def __init__(self, store_name: str) -> None:
        self.store_name = store_name
        self.info = _me()

    def set_run(self, run_id: str) -> None:
        self.info["run"] = run_id

    def release(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class _NoLock(RunLock):
    def release(self) -> None:
        return None


class _FileLock(RunLock):
    """``flock`` on ``path``; the file holds the holder's description."""

    def __init__(self, store_name: str, path: Path) -> None:
        super().__init__(store_name)
        self.path = path
        self.fd = -1

    def try_acquire(self) -> bool:
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self.fd = fd
        previous = _read_json(self.path)
        if previous.get("pid"):
            log.warning("run lock %s: taking over from a holder that is gone (%s)",
                        self.path, describe_holder(previous))
        self._write()
        return True

    def holder(self) -> dict[str, Any]:
        return _read_json(self.path)

    def _write(self) -> None:
        data = json.dumps(self.info).encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)
        os.fsync(self.fd)

    def set_run(self, run_id: str) -> None:
        super().set_run(run_id)
        if self.fd >= 0:
            self._write()

    def release(self) -> None:
        if self.fd >= 0:
            import fcntl

            # Empty the description first: a file with no pid is a lock nobody holds.
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = -1


def _read_json(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_text(encoding="utf-8")
        data = json.loads(raw) if raw.strip() else {}
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class _AdvisoryLock(RunLock):
    """A PostgreSQL session advisory lock on a dedicated connection."""

    def __init__(self, store_name: str, engine: Engine) -> None:
        super().__init__(store_name)
        self.engine = engine
        self.conn: Any = None
        with engine.connect() as conn:
            schema = conn.execute(text("SELECT current_schema()")).scalar() or "public"
        digest = hashlib.sha256(f"stylerec-nightly:{schema}".encode()).digest()
        self.key = int.from_bytes(digest[:8], "big", signed=True)

    def _app_name(self) -> str:
        # application_name is cut at 63 bytes by the server: the pid comes first.
        i = self.info
        return f"stylerec pid={i['pid']} host={i['host'][:16]} run={i['run']}"[:63]

    def try_acquire(self) -> bool:
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar()
        except BaseException:
            conn.close()
            raise
        if not got:
            conn.close()
            return False
        self.conn = conn
        self._name()
        return True

    def _name(self) -> None:
        self.conn.execute(text("SELECT set_config('application_name', :n, false)"),
                          {"n": self._app_name()})

    def holder(self) -> dict[str, Any]:
        hi, lo = (self.key >> 32) & 0xFFFFFFFF, self.key & 0xFFFFFFFF
        sql = text(
            "SELECT a.pid, a.application_name, a.client_hostname, a.client_addr::text, "
            "a.backend_start FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.classid::bigint = :hi AND l.objid::bigint = :lo "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        with self.engine.connect() as conn:
            row = conn.execute(sql, {"hi": hi, "lo": lo}).first()
        if row is None:
            return {}
        out: dict[str, Any] = {"server_pid": row[0]}
        for part in str(row[1] or "").split():
            key, _, value = part.partition("=")
            if key in ("pid", "host", "run") and value:
                out[key] = value
        out.setdefault("host", row[2] or row[3] or "?")
        out["since"] = row[4].strftime("%Y-%m-%dT%H:%M:%SZ") if row[4] else ""
        return out

    def set_run(self, run_id: str) -> None:
        super().set_run(run_id)
        if self.conn is not None:
            self._name()

    def release(self) -> None:
        if self.conn is not None:
            try:
                self.conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            finally:
                self.conn.close()
                self.conn = None


def make_lock(engine: Engine) -> RunLock:
    """The lock kind for ``engine``'s backend (not yet acquired)."""
    url = engine.url
    name = url.render_as_string(hide_password=True)
    if engine.dialect.name == "postgresql":
        return _AdvisoryLock(name, engine)
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return _NoLock(name)
    return _FileLock(name, Path(f"{database}.nightly.lock"))


@contextlib.contextmanager
def run_lock(engine: Engine, wait_s: float = 0.0) -> Iterator[RunLock]:
    """Hold the run lock of ``engine``'s store for the ``with`` block.

    Waits up to ``wait_s`` seconds for a holder to finish, then raises
    :class:`RunLockedError` naming it.  Released on exit, and by the OS or the
    server if this process dies.
    """
    lock = make_lock(engine)
    if isinstance(lock, _NoLock):
        yield lock
        return
    t0 = time.monotonic()
    announced = False
    while not lock.try_acquire():  # type: ignore[attr-defined]
        waited = time.monotonic() - t0
        if waited >= wait_s:
            raise RunLockedError(lock.store_name, lock.holder(), waited)  # type: ignore[attr-defined]
        if not announced:
            log.warning("waiting up to %.0f s for the run lock: %s", wait_s,
                        describe_holder(lock.holder()))  # type: ignore[attr-defined]
            announced = True
        time.sleep(POLL_S)
    try:
        yield lock
    finally:
        lock.release()
