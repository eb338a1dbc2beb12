"""The render index in SQL: content-addressed renders shared between runs, linked for gc.

A render row is keyed by its content key and created once; ``run_renders``
links it to every run that uses it (new renders and cache hits alike), so
garbage collection can find the renders that no kept run uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import pandas as pd
from sqlalchemy import Connection, delete, false, select

from .models import Render, Run, RunRender
from .repository import Repository
from .rows import IN_CHUNK, check_columns, chunks, json_obj, records, req_str
from .runs import current_run_id
from .types import utcnow


class RenderRef(NamedTuple):
    """A render that garbage collection may delete: its key and where its file is."""

    key: str
    uri: str


class RenderRepository(Repository):
    """Add, link, look up and garbage-collect renders."""

    def add_render(
        self,
        key: str,
        item_id: str,
        condition_hash: str,
        uri: str,
        run_id: str,
        params: Mapping[str, Any] | None = None,
    ) -> bool:
        """Record one render and link it to ``run_id``; idempotent on ``key``.

        Returns ``True`` when the render is new, ``False`` when the key was
        already known (the existing row is kept, and linked to the run).
        """
        row = {
            "key": key,
            "item_id": item_id,
            "condition_hash": condition_hash,
            "uri": uri,
            "params": params,
        }
        return self.add_renders(run_id, [row]) == 1

    def add_renders(self, run_id: str, rows: pd.DataFrame | Iterable[Mapping[str, Any]]) -> int:
        """Record renders (``key, item_id, condition_hash, uri``, optional ``params``) and link
        them all to ``run_id``, in one transaction; return how many keys were new."""
        cols, recs = records(rows, "renders")
        if not cols:
            return 0
        check_columns(cols, ("key", "item_id", "condition_hash", "uri"), ("params",), "renders")
        now = utcnow()

        def convert(i: int, rec: Mapping[str, Any]) -> dict[str, Any]:
            where = f"renders row {i}"
            key = req_str(rec.get("key"), where, "key")
            where = f"renders row {i} (key={key!r})"
            return {
                "key": key,
                "item_id": req_str(rec.get("item_id"), where, "item_id"),
                "condition_hash": req_str(rec.get("condition_hash"), where, "condition_hash"),
                "uri": req_str(rec.get("uri"), where, "uri"),
                "params": json_obj(rec.get("params"), where, "params"),
                "created_by_run": run_id,
                "created_at": now,
            }

        new = 0
        with self.db.write() as conn:
            self.db.require_run(conn, run_id)
            for chunk in chunks((convert(i, r) for i, r in enumerate(recs)), IN_CHUNK):
                by_key = {r["key"]: r for r in chunk}
                known = set(
                    conn.execute(select(Render.key).where(Render.key.in_(list(by_key)))).scalars()
                )
                fresh = [r for k, r in by_key.items() if k not in known]
                if fresh:
                    stmt = self.db.upsert(conn, Render.__table__).on_conflict_do_nothing(
                        index_elements=["key"]
                    )
                    conn.execute(stmt, fresh)
                    new += len(fresh)
                self._link(conn, run_id, list(by_key))
        return new

    def _link(self, conn: Connection, run_id: str, keys: Sequence[str]) -> None:
        if keys:
            stmt = self.db.upsert(conn, RunRender.__table__).on_conflict_do_nothing(
                index_elements=["run_id", "key"]
            )
            conn.execute(stmt, [{"run_id": run_id, "key": k} for k in keys])

    def link_renders(self, run_id: str, keys: Iterable[str]) -> set[str]:
        """Mark existing renders (cache hits) as used by ``run_id`` so gc keeps them.

        Returns the keys that are *not* in the store (deleted by a gc since the
        caller looked them up): those must be rendered again.
        """
        absent: set[str] = set()
        with self.db.write() as conn:
            self.db.require_run(conn, run_id)
            for chunk in chunks(dict.fromkeys(map(str, keys)), IN_CHUNK):
                known = set(conn.execute(select(Render.key).where(Render.key.in_(chunk))).scalars())
                absent.update(k for k in chunk if k not in known)
                self._link(conn, run_id, [k for k in chunk if k in known])
        return absent

    def has_renders(self, keys: Iterable[str]) -> set[str]:
        """The subset of ``keys`` already rendered (the render cache lookup)."""
        return self._present(Render.key, keys)

    def uris_in_use(self, uris: Iterable[str]) -> set[str]:
        """The subset of ``uris`` that some render row still points at.

        Items sharing one image share one file under several keys; gc deletes
        a file only when no remaining row names it.
        """
        return self._present(Render.uri, uris)

    def _present(self, column: Any, values: Iterable[str]) -> set[str]:
        found: set[str] = set()
        with self.db.read() as conn:
            for chunk in chunks(dict.fromkeys(map(str, values)), IN_CHUNK):
                found.update(conn.execute(select(column).where(column.in_(chunk))).scalars())
        return found

    def renders_for_run(self, run_id: str) -> pd.DataFrame:
        """Renders the run uses: ``key, item_id, condition_hash, uri, params, created_by_run, created_at``."""
        cols = ["key", "item_id", "condition_hash", "uri", "params", "created_by_run", "created_at"]
        stmt = (
            select(*(getattr(Render, c) for c in cols))
            .join(RunRender, RunRender.key == Render.key)
            .where(RunRender.run_id == run_id)
            .order_by(Render.key)
        )
        with self.db.read() as conn:
            rows = conn.execute(stmt).all()
        return pd.DataFrame([tuple(r) for r in rows], columns=cols)

    def unreferenced_renders(self, keep_runs: int) -> list[RenderRef]:
        """Renders no kept run uses: the gc candidates, as ``(key, uri)``.

        Kept runs are the ``keep_runs`` newest runs plus the published one
        (always, even if older: rollback must keep working).
        """
        if keep_runs < 0:
            raise ValueError(f"keep_runs must be >= 0, got {keep_runs}")
        with self.db.read() as conn:
            newest = (
                select(Run.run_id)
                .order_by(Run.created_at.desc(), Run.run_id.desc())
                .limit(keep_runs)
            )
            kept = set(conn.execute(newest).scalars())
            current = current_run_id(conn)
            if current is not None:
                kept.add(current)
            used = select(RunRender.key).where(RunRender.key == Render.key)
            if kept:
                used = used.where(RunRender.run_id.in_(sorted(kept)))
            else:
                used = used.where(false())
            stmt = select(Render.key, Render.uri).where(~used.exists()).order_by(Render.key)
            return [RenderRef(k, u) for k, u in conn.execute(stmt).all()]

    def delete_renders(self, keys: Iterable[str]) -> int:
        """Delete render rows and their run links (files are the caller's); return rows deleted."""
        n = 0
        with self.db.write() as conn:
            for chunk in chunks(dict.fromkeys(map(str, keys)), IN_CHUNK):
                conn.execute(delete(RunRender).where(RunRender.key.in_(chunk)))
                n += conn.execute(delete(Render).where(Render.key.in_(chunk))).rowcount
        return n
