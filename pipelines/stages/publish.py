"""Stage 7, publish: make this run the one that is served, atomically.

Until this point the previous run keeps being served.  The store flips its
single ``current run`` pointer in one transaction; the report stage, which
comes after, is allowed to be unfinished at that moment.
"""

from __future__ import annotations

from typing import Any

from pipelines.context import STAGES, RunContext


def run(ctx: RunContext) -> dict[str, Any]:
    """Publish the run; refuse if any stage before this one is not done."""
    later = STAGES[STAGES.index("publish"):]
    previous = ctx.store.current_run_id()
    ctx.store.publish(ctx.run_id, unfinished_ok=later)
    return {"published": ctx.run_id, "replaced": previous}
