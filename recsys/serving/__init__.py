"""Serving: the run-bundle contract (:mod:`.bundle`) and :class:`PersonalizationService`."""

from recsys.serving.service import (
    MAX_CANDIDATES,
    PersonalizationService,
    RankedItem,
    Ranking,
    RunSnapshot,
    StyleScore,
)

__all__ = ["MAX_CANDIDATES", "PersonalizationService", "RankedItem", "Ranking", "RunSnapshot", "StyleScore"]
