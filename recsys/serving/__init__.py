"""Serving: the run-bundle contract (:mod:`.bundle`) and :class:`PersonalizationService`."""

from recsys.serving.overrides import StyledImage, StyleNote
from recsys.serving.service import (
    MAX_CANDIDATES,
    PersonalizationService,
    RankedItem,
    Ranking,
    RunSnapshot,
    StyledRanking,
    StyleScore,
)

__all__ = ["MAX_CANDIDATES", "PersonalizationService", "RankedItem", "Ranking", "RunSnapshot",
           "StyleNote", "StyleScore", "StyledImage", "StyledRanking"]
