"""Runs in SQL: planned stages, resumable status, atomic publish (rollback = publish an older run).

Planning the stages up front is what lets :meth:`RunRepository.publish` tell a
finished run from one that merely has no failures yet; the single-row
``current_run`` pointer is moved in one transaction, so readers see the old
run or the new one, never half of each.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from .models import (
    STAGE_STATUSES,
    CurrentRun,
    Quarantine,
    Run,
    RunRender,
    RunStage,
    SegmentCondition,
    UserSegment,
)
from .repository import Repository
from .rows import IN_CHUNK, chunks
from .types import jsonable, utcnow

log = logging.getLogger(__name__)


class RunNotReadyError(ValueError):
    """``publish`` was asked to publish a run whose stages are not all done."""


def new_run_id(now: datetime) -> str:
    """Sortable by creation second, unique by a random suffix: ``20261122T153000-abc123``."""
    return f"{now.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"


def derive_status(statuses: Sequence[str]) -> str:
    """A run's status from its stages': failed > done (all) > running (any started) > pending."""
    if not statuses:
        return "pending"
    if "failed" in statuses:
        return "failed"
    if all(s == "done" for s in statuses):
        return "done"
    if "running" in statuses or "done" in statuses:
        return "running"
    return "pending"


def current_run_id(conn: Connection) -> str | None:
    """The published run's id on ``conn`` (``None`` before the first publish)."""
    return conn.execute(select(CurrentRun.run_id).where(CurrentRun.id == 1)).scalar()


class RunRepository(Repository):
    """The run lifecycle: create, stage status, metrics and params, publish, abandon, delete."""

    def create_run(
        self, params: Mapping[str, Any] | None = None, stages: Sequence[str] = ()
    ) -> str:
        """Record a new run with its parameters and planned stages (all ``pending``); return its id."""
        now = utcnow()
        run_id = new_run_id(now)
        if len(set(stages)) != len(stages):
            raise ValueError(f"duplicate stage names in {list(stages)}")
        with self.db.write() as conn:
            conn.execute(
                insert(Run),
                {
                    "run_id": run_id,
                    "status": "pending",
                    "params": jsonable(dict(params or {})),
                    "metrics": {},
                    "created_at": now,
                    "updated_at": now,
                },
            )
            if stages:
                conn.execute(
                    insert(RunStage),
                    [
                        {
                            "run_id": run_id,
                            "stage": s,
                            "position": i,
                            "status": "pending",
                            "updated_at": now,
                        }
                        for i, s in enumerate(stages)
                    ],
                )
        log.info("created run %s with stages %s", run_id, list(stages))
        return run_id

    def set_stage(
        self,
        run_id: str,
        stage: str,
        status: str,
        metrics: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        """Set one stage's status (adding the stage if new) and re-derive the run's status.

        ``running`` stamps ``started_at``; ``done``/``failed`` stamp
        ``finished_at``.  ``metrics`` replaces the stage's metrics when given.
        The run is ``failed`` if any stage failed, ``done`` when all are done,
        ``running`` once any stage started, else ``pending``.
        """
        if status not in STAGE_STATUSES:
            raise ValueError(f"stage status {status!r} is not one of {STAGE_STATUSES}")
        now = utcnow()
        with self.db.write() as conn:
            self.db.require_run(conn, run_id, lock=True)
            key = (RunStage.run_id == run_id) & (RunStage.stage == stage)
            exists = conn.execute(select(RunStage.position).where(key)).first()
            values: dict[str, Any] = {
                "status": status,
                "updated_at": now,
                "error": error if status == "failed" else None,
                "finished_at": now if status in ("done", "failed") else None,
            }
            if status == "running":
                values["started_at"] = now
            if metrics is not None:
                values["metrics"] = jsonable(dict(metrics))
            if exists is None:
                pos = conn.execute(
                    select(func.coalesce(func.max(RunStage.position) + 1, 0)).where(
                        RunStage.run_id == run_id
                    )
                ).scalar_one()
                conn.execute(
                    insert(RunStage), {"run_id": run_id, "stage": stage, "position": pos, **values}
                )
            else:
                conn.execute(update(RunStage).where(key).values(**values))
            statuses = list(
                conn.execute(select(RunStage.status).where(RunStage.run_id == run_id)).scalars()
            )
            run_status = derive_status(statuses)
            conn.execute(
                update(Run)
                .where(Run.run_id == run_id)
                .values(
                    status=run_status,
                    updated_at=now,
                    finished_at=now if run_status == "done" else None,
                )
            )

    def set_run_metrics(self, run_id: str, metrics: Mapping[str, Any]) -> None:
        """Merge ``metrics`` into the run's aggregate metrics (later keys win)."""
        self._merge(run_id, "metrics", metrics)

    def update_run_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Merge ``params`` into the run's parameters (later keys win)."""
        self._merge(run_id, "params", params)

    def _merge(self, run_id: str, column: str, values: Mapping[str, Any]) -> None:
        with self.db.write() as conn:
            run = self.db.require_run(conn, run_id, lock=True)
            merged = {**(getattr(run, column) or {}), **jsonable(dict(values))}
            conn.execute(
                update(Run).where(Run.run_id == run_id).values(
                    {column: merged, "updated_at": utcnow()}
                )
            )

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """A run as a dict, or ``None`` if there is no such run.

        Keys: ``run_id, status, params, metrics, created_at, updated_at,
        finished_at, published_at, is_current`` and ``stages`` (name -> dict
        of ``status, metrics, error, started_at, finished_at``, in plan order).
        """
        with self.db.read() as conn:
            runs = _runs(conn, select(Run).where(Run.run_id == run_id))
        return runs[0] if runs else None

    def list_runs(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Runs, newest first, in the shape of :meth:`get_run`."""
        stmt = select(Run).order_by(Run.created_at.desc(), Run.run_id.desc())
        if limit is not None:
            stmt = stmt.limit(int(limit))
        with self.db.read() as conn:
            return _runs(conn, stmt)

    def latest_unfinished_run(self) -> dict[str, Any] | None:
        """The newest run that is neither done nor abandoned (the one to resume), or ``None``.

        Returned in the shape of :meth:`get_run` so the caller can check that
        its ``params`` match before resuming it.
        """
        stmt = (
            select(Run)
            .where(Run.status.not_in(("done", "abandoned")))
            .order_by(Run.created_at.desc(), Run.run_id.desc())
            .limit(1)
        )
        with self.db.read() as conn:
            runs = _runs(conn, stmt)
        return runs[0] if runs else None

    def abandon_run(self, run_id: str) -> None:
        """Mark an unfinished run as never to be resumed (its rows stay until deleted)."""
        with self.db.write() as conn:
            run = self.db.require_run(conn, run_id, lock=True)
            if run.status == "done":
                raise ValueError(f"run {run_id!r} is done; only unfinished runs can be abandoned")
            conn.execute(
                update(Run)
                .where(Run.run_id == run_id)
                .values(status="abandoned", updated_at=utcnow())
            )

    def publish(
        self, run_id: str, *, force: bool = False, unfinished_ok: Iterable[str] = ()
    ) -> None:
        """Make ``run_id`` the current run, atomically; ``publish(older_id)`` is the rollback.

        One transaction updates the single-row ``current_run`` pointer, so
        readers see the old run or the new one, never half of each.  A run
        whose recorded stages are not all ``done`` is refused unless ``force``;
        ``unfinished_ok`` names stages that may still be pending or running
        (never failed): the stage that calls ``publish`` and those after it,
        such as the report.
        """
        ok = set(unfinished_ok)
        now = utcnow()
        with self.db.write() as conn:
            run = self.db.require_run(conn, run_id, lock=True)
            if not force:
                stages = conn.execute(
                    select(RunStage.stage, RunStage.status)
                    .where(RunStage.run_id == run_id)
                    .order_by(RunStage.position)
                ).all()
                blocking = {
                    s: st
                    for s, st in stages
                    if st != "done" and not (s in ok and st in ("pending", "running"))
                }
                if not stages or blocking or run.status == "abandoned":
                    raise RunNotReadyError(
                        f"run {run_id!r} is {run.status}; stages not done: "
                        f"{blocking or 'no stages recorded'}. Finish it or publish(force=True)."
                    )
            stmt = self.db.upsert(conn, CurrentRun.__table__)
            stmt = stmt.values(id=1, run_id=run_id, published_at=now).on_conflict_do_update(
                index_elements=["id"], set_={"run_id": run_id, "published_at": now}
            )
            conn.execute(stmt)
            conn.execute(update(Run).where(Run.run_id == run_id).values(published_at=now))
        log.info("published run %s", run_id)

    def current_run_id(self) -> str | None:
        """The published run's id, or ``None`` before the first publish."""
        with self.db.read() as conn:
            return current_run_id(conn)

    def delete_run(self, run_id: str) -> None:
        """Delete a run and its segments, conditions, links and quarantine rows (not the current run).

        Renders themselves stay: other runs may use them; see
        :meth:`~data.store.renders.RenderRepository.unreferenced_renders`.
        """
        with self.db.write() as conn:
            self.db.require_run(conn, run_id, lock=True)
            if current_run_id(conn) == run_id:
                raise ValueError(f"run {run_id!r} is the published run; publish another one first")
            for model in (UserSegment, SegmentCondition, RunRender, Quarantine, RunStage):
                conn.execute(delete(model).where(model.run_id == run_id))
            conn.execute(delete(Run).where(Run.run_id == run_id))


def _runs(conn: Connection, stmt: Any) -> list[dict[str, Any]]:
    """Runs selected by ``stmt`` in the shape of :meth:`RunRepository.get_run`."""
    rows = conn.execute(stmt).mappings().all()
    if not rows:
        return []
    current = current_run_id(conn)
    ids = [r["run_id"] for r in rows]
    stages: dict[str, dict[str, Any]] = {i: {} for i in ids}
    for chunk in chunks(ids, IN_CHUNK):
        q = (
            select(RunStage)
            .where(RunStage.run_id.in_(chunk))
            .order_by(RunStage.run_id, RunStage.position)
        )
        for s in conn.execute(q).mappings():
            stages[s["run_id"]][s["stage"]] = {
                k: s[k] for k in ("status", "metrics", "error", "started_at", "finished_at")
            }
    return [
        {
            **{k: r[k] for k in r},
            "is_current": r["run_id"] == current,
            "stages": stages[r["run_id"]],
        }
        for r in rows
    ]
