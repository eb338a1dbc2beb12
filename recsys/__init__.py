"""recsys: interactions, the style-preference model, baselines, evaluation, FAISS retrieval,
segments, A/B experiments and serving.

The public names below are imported on first use (PEP 562), not when the
package is imported: ``recsys.model`` pulls in PyTorch (~0.5 GB resident), and
a ranking process that only imports ``recsys.serving`` must not pay for it.
``from recsys import StylePreferenceModel`` and ``recsys.StyleIndex`` work as before.
"""

from __future__ import annotations

import importlib
from typing import Any

# --- retrieval and segments (recsys.index, recsys.segments) ---
# --- interactions, preference model, evaluation (recsys.interactions, recsys.model, recsys.evaluation) ---
_EXPORTS: dict[str, str] = {
    "EvaluationResult": "recsys.evaluation",
    "evaluate_rankings": "recsys.evaluation",
    "evaluate_scores": "recsys.evaluation",
    "ItemIndex": "recsys.index",
    "StyleIndex": "recsys.index",
    "IdMap": "recsys.interactions",
    "Interactions": "recsys.interactions",
    "build_interactions": "recsys.interactions",
    "split_by_time": "recsys.interactions",
    "split_last_n": "recsys.interactions",
    "StylePreferenceModel": "recsys.model",
    "StyleFactors": "recsys.factors",
    "FitInputs": "recsys.fit_inputs",
    "run_holdout": "recsys.holdout",
    "Segmentation": "recsys.segments",
    "SegmentCondition": "recsys.segments",
    "UserSegmenter": "recsys.segments",
    "segment_users": "recsys.segments",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        try:  # ``import recsys; recsys.index`` keeps working as when everything was eager
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
