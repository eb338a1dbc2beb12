"""The nightly stages: each module has ``run(ctx) -> metrics``.

The stage list, :data:`~pipelines.context.STAGES`, lives in :mod:`pipelines.context`
(re-exported here: ``from pipelines.stages import STAGES`` keeps working).  Stages
import :mod:`pipelines.context` and :mod:`pipelines.stages.common`, never each other.
"""

from pipelines.context import STAGES

__all__ = ["STAGES"]
