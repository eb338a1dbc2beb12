"""Runs the nightly stages in order, resumably, and records each in the store.

The run record in the store keeps every stage's status.  A rerun after a crash
picks up the newest unfinished run (when its config is the same) and starts
at the first stage that is not ``done``; ``--only STAGE`` runs one stage of a
run alone.  Stages pass data to each other only through files in the run's
folder (``<work_dir>/runs/<run_id>/``) and rows in the store, never through
memory, which is what makes each of them re-runnable on its own.
"""

from __future__ import annotations

import logging
import re
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data.paths import resolve_under
from data.store import Store
from data.store.lock import RunLock
from pipelines.config import Config, output_locations
from pipelines.stages import STAGES  # listed there so that the CLI's parser needs no store

log = logging.getLogger("stylerec.nightly")

#: What a run id may look like (the store makes ``20261122T153000-abc123``).  Run ids
#: name folders, so one read back from a tampered store must not be a path.
RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_run_id(run_id: str) -> str:
    """``run_id`` itself when it is a plain name fit for a folder; ValueError otherwise."""
    if not isinstance(run_id, str) or not RUN_ID_RE.match(run_id) or ".." in run_id:
        raise ValueError(f"run id {run_id!r} is not a valid run id")
    return run_id


def run_folder(work_dir: Path, run_id: str) -> Path:
    """``<work_dir>/runs/<run_id>``, refusing ids that are not plain names or escape via symlinks."""
    runs = work_dir / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    return resolve_under(runs, check_run_id(run_id))


@dataclass
class RunContext:
    """What every stage gets: the config, the store, the run id and its folder."""

    config: Config
    store: Store
    run_id: str
    run_dir: Path
    previous_run_id: str | None = None
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def previous_run_dir(self) -> Path | None:
        """Folder of the run that was being served when this one started, if any."""
        if self.previous_run_id is None:
            return None
        p = resolve_under(self.run_dir.parent, check_run_id(self.previous_run_id))
        return p if p.is_dir() else None

    def log(self, stage: str, event: str, **fields: Any) -> None:
        """One structured log line: ``stage=... event=... key=value ...``."""
        extra = " ".join(f"{k}={v}" for k, v in fields.items())
        log.info("run=%s stage=%s event=%s %s", self.run_id, stage, event, extra)


StageFn = Callable[[RunContext], dict[str, Any]]


def _stage_functions() -> dict[str, StageFn]:
    # Imported here so that `stylerec --help` does not load torch and faiss.
    from pipelines.stages import embed, ingest, publish, render, report, segment, train
    from pipelines.stages import index as index_stage

    return {
        "ingest": ingest.run,
        "embed": embed.run,
        "train": train.run,
        "index": index_stage.run,
        "segment": segment.run,
        "render": render.run,
        "publish": publish.run,
        "report": report.run,
    }


@dataclass
class RunSummary:
    """What one invocation did: which run, which stages ran, and their metrics."""

    run_id: str
    ran: list[str]
    skipped: list[str]
    seconds: float
    report_path: Path | None
    metrics: dict[str, dict[str, Any]]


def _pick_run(store: Store, cfg: Config, run_id: str | None, resume: bool) -> tuple[str, bool]:
    """The run to work on: the named one, the newest unfinished one of this config, or new."""
    if run_id is not None:
        if store.get_run(run_id) is None:
            raise ValueError(f"no run with id {run_id!r} in the store")
        return run_id, False
    fingerprint = cfg.fingerprint()
    if resume:
        unfinished = store.latest_unfinished_run()
        if unfinished is not None and unfinished["params"].get("fingerprint") == fingerprint:
            return unfinished["run_id"], False
    params = {"fingerprint": fingerprint, "config": cfg.to_dict()}
    return store.create_run(params, stages=STAGES), True


def run_nightly(
    cfg: Config,
    only: str | None = None,
    run_id: str | None = None,
    resume: bool = True,
    stop_after: str | None = None,
    wait_s: float = 0.0,
) -> RunSummary:
    """Run (or resume) a nightly job; ``only`` runs one stage, even if already done.

    ``wait_s``: how long to wait for another nightly on the same store to
    finish before giving up with :class:`~data.store.RunLockedError`.
    """
    if only is not None and only not in STAGES:
        raise ValueError(f"unknown stage {only!r}; stages are {', '.join(STAGES)}")
    t0 = time.perf_counter()
    work = cfg.path(cfg.outputs.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    store = Store(cfg.store_url)
    try:
        # One nightly at a time per store: a second one waits up to wait_s for this one,
        # then stops with a RunLockedError naming the holder, before touching any run.
        with store.run_lock(wait_s) as lock:
            return _run_locked(cfg, store, lock, work, t0, only, run_id, resume, stop_after)
    finally:
        store.close()


def _run_locked(
    cfg: Config,
    store: Store,
    lock: RunLock,
    work: Path,
    t0: float,
    only: str | None,
    run_id: str | None,
    resume: bool,
    stop_after: str | None,
) -> RunSummary:
    """The body of :func:`run_nightly`, run while holding the store's run lock."""
    if only is not None and run_id is None:
        latest = store.list_runs()
        if not latest:
            raise ValueError(f"--only {only}: there is no run yet; run the whole job first")
        run_id = latest[0]["run_id"]
    rid, created = _pick_run(store, cfg, run_id, resume)
    lock.set_run(rid)
    log.info("run=%s outputs: %s", rid,
             " ".join(f"{k}={v}" for k, v in output_locations(cfg).items()))
    record = store.get_run(rid)
    previous = record["params"].get("previous_run_id") if record else None
    run_dir = run_folder(work, rid)
    run_dir.mkdir(parents=True, exist_ok=True)
    if created or "previous_run_id" not in (record or {}).get("params", {}):
        previous = store.current_run_id()
        store.update_run_params(rid, {
            "previous_run_id": previous,
            "run_dir": str(run_dir.resolve()),
            "render_root": str(cfg.path(cfg.outputs.render_dir).resolve()),
        })
    ctx = RunContext(cfg, store, rid, run_dir, previous_run_id=previous)
    # Later stages (the report above all) read earlier stages' metrics; with --only
    # or on a resume those stages do not run in this process, so start from the record.
    for name, rec in (store.get_run(rid) or {}).get("stages", {}).items():
        if rec.get("status") == "done" and rec.get("metrics"):
            ctx.metrics[name] = dict(rec["metrics"])
    functions = _stage_functions()
    ran: list[str] = []
    skipped: list[str] = []
    todo = [only] if only else list(STAGES)
    for stage in todo:
        status = store.get_run(rid)["stages"].get(stage, {}).get("status")
        if only is None and status == "done":
            skipped.append(stage)
            ctx.metrics[stage] = store.get_run(rid)["stages"][stage].get("metrics") or {}
            continue
        log.debug("run=%s stage=%s event=start", rid, stage)  # one INFO line per stage
        store.set_stage(rid, stage, "running")
        s0 = time.perf_counter()
        try:
            metrics = dict(functions[stage](ctx) or {})
        except Exception as exc:
            store.set_stage(
                rid, stage, "failed", {"trace": traceback.format_exc()[-4000:]},
                error=f"{type(exc).__name__}: {exc}",
            )
            ctx.log(stage, "failed", error=repr(exc))
            raise
        metrics["seconds"] = round(time.perf_counter() - s0, 3)
        ctx.metrics[stage] = metrics
        store.set_stage(rid, stage, "done", metrics)
        ctx.log(stage, "done", seconds=metrics["seconds"])
        ran.append(stage)
        if stop_after == stage:
            break
    report = _report_path(store, rid)
    return RunSummary(
        run_id=rid,
        ran=ran,
        skipped=skipped,
        seconds=round(time.perf_counter() - t0, 3),
        report_path=report,
        metrics=ctx.metrics,
    )


def _report_path(store: Store, run_id: str) -> Path | None:
    """Where the run's report stage wrote ``report.html`` (None before it ran)."""
    run = store.get_run(run_id) or {}
    path = ((run.get("stages") or {}).get("report") or {}).get("metrics", {}) or {}
    report = path.get("report")
    return Path(report) if report and Path(report).is_file() else None
