"""Runs the nightly stages in order, resumably, and records each in the store.

The run record in the store keeps every stage's status.  A rerun after a crash
picks up the newest unfinished run (when its config is the same) and starts
at the first stage that is not ``done``; ``--only STAGE`` runs one stage of a
run alone.  Stages pass data to each other only through files in the run's
folder (``<work_dir>/runs/<run_id>/``) and rows in the store, never through
memory, which is what makes each of them re-runnable on its own.
"""

from __future__ import annotations

import importlib
import logging
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data.store import Store
from data.store.lock import RunLock
from pipelines import context as _context
from pipelines.config import Config, output_locations
from pipelines.context import STAGES as _STAGES
from pipelines.context import RunContext as _RunContext

log = logging.getLogger("stylerec.nightly")

StageFn = Callable[[_RunContext], dict[str, Any]]

#: Names that moved to :mod:`pipelines.context`; importing them from here warns.
_MOVED = ("RunContext", "STAGES", "RUN_ID_RE", "check_run_id", "run_folder")


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        warnings.warn(f"pipelines.runner.{name} moved to pipelines.context.{name}",
                      DeprecationWarning, stacklevel=2)
        return getattr(_context, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _stage_functions() -> dict[str, StageFn]:
    """``run`` of each stage module, imported by name when a night starts.

    Not at module level so that `stylerec --help` does not load torch and faiss;
    the stages import :mod:`pipelines.context`, never this module.
    """
    return {name: importlib.import_module(f"pipelines.stages.{name}").run for name in _STAGES}


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
    return store.create_run(params, stages=_STAGES), True


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
    if only is not None and only not in _STAGES:
        raise ValueError(f"unknown stage {only!r}; stages are {', '.join(_STAGES)}")
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
    run_dir = _context.run_folder(work, rid)
    run_dir.mkdir(parents=True, exist_ok=True)
    if created or "previous_run_id" not in (record or {}).get("params", {}):
        previous = store.current_run_id()
        store.update_run_params(rid, {
            "previous_run_id": previous,
            "run_dir": str(run_dir.resolve()),
            "render_root": str(cfg.path(cfg.outputs.render_dir).resolve()),
        })
    ctx = _RunContext(cfg, store, rid, run_dir, previous_run_id=previous)
    # Later stages (the report above all) read earlier stages' metrics; with --only
    # or on a resume those stages do not run in this process, so start from the record.
    for name, rec in (store.get_run(rid) or {}).get("stages", {}).items():
        if rec.get("status") == "done" and rec.get("metrics"):
            ctx.metrics[name] = dict(rec["metrics"])
    functions = _stage_functions()
    ran: list[str] = []
    skipped: list[str] = []
    todo = [only] if only else list(_STAGES)
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
