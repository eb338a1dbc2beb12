"""What the nightly stages share: :class:`RunContext`, the stage list and the run-id checks.

Why a module of its own: the runner imports every stage, and every stage needs
the context; with the context in the runner the two imported each other.  It
imports only the standard library and :mod:`pipelines.config` at module level,
so the CLI's parser can list :data:`STAGES` without loading numpy, pandas or
the store (``import data.paths`` runs ``data/__init__``, which loads pandas).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.config import Config

if TYPE_CHECKING:
    from data.store import Store
    from recsys.run_bundle import RunBundle

log = logging.getLogger("stylerec.nightly")

STAGES: tuple[str, ...] = (
    "ingest", "embed", "train", "index", "segment", "render", "publish", "report",
)
"""The nightly stages in order; each is ``pipelines.stages.<name>.run(ctx) -> metrics``."""

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
    from data.paths import resolve_under  # for weight (data/__init__ loads pandas)

    runs = work_dir / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    return resolve_under(runs, check_run_id(run_id))


@dataclass
class RunContext:
    """What every stage gets: the config, the store, the run id and its folder.

    Stages read and write the run folder only through :attr:`bundle` (and the
    previous run's through :attr:`previous_bundle`).
    """

    config: Config
    store: Store
    run_id: str
    run_dir: Path
    previous_run_id: str | None = None
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def previous_run_dir(self) -> Path | None:
        """Folder of the run that was being served when this one started, if any."""
        from data.paths import resolve_under  # for weight, as in run_folder

        if self.previous_run_id is None:
            return None
        p = resolve_under(self.run_dir.parent, check_run_id(self.previous_run_id))
        return p if p.is_dir() else None

    @cached_property
    def bundle(self) -> RunBundle:
        """This run's files (:class:`recsys.run_bundle.RunBundle`, created when new)."""
        # Imported here for weight, not for a cycle: numpy and pandas stay out of the
        # CLI's parser, which imports this module for STAGES.
        from recsys.run_bundle import RunBundle

        return RunBundle.create(self.run_dir)

    @property
    def previous_bundle(self) -> RunBundle | None:
        """The served run's files when this run started, if any (read only)."""
        from recsys.run_bundle import RunBundle

        prev = self.previous_run_dir
        return None if prev is None else RunBundle.open(prev)

    def log(self, stage: str, event: str, **fields: Any) -> None:
        """One structured log line: ``stage=... event=... key=value ...``."""
        extra = " ".join(f"{k}={v}" for k, v in fields.items())
        log.info("run=%s stage=%s event=%s %s", self.run_id, stage, event, extra)


__all__ = ["RUN_ID_RE", "STAGES", "RunContext", "check_run_id", "run_folder"]
