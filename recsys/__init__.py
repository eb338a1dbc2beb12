
# --- retrieval and segments (recsys.index, recsys.segments) ---
# --- interactions, preference model, evaluation (recsys.interactions, recsys.model, recsys.evaluation) ---
from recsys.evaluation import EvaluationResult, evaluate_rankings, evaluate_scores  # noqa: E402,F401
from recsys.index import ItemIndex, StyleIndex  # noqa: E402,F401
from recsys.interactions import (  # noqa: E402,F401
    IdMap,
    Interactions,
    build_interactions,
    split_by_time,
    split_last_n,
)
from recsys.model import StylePreferenceModel  # noqa: E402,F401
from recsys.segments import (  # noqa: E402,F401
    Segmentation,
    SegmentCondition,
    UserSegmenter,
    segment_users,
)
