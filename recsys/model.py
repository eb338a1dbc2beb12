"""The style-preference model: collaborative filtering whose item vectors know their style.

Score of user ``u`` for item ``i`` (optionally shown rendered in style ``s``)::

    score(u, i[, s]) = p_u . (q_i + W c_i [+ W c_s]) + b_i
    p_u             = sum_j x_uj y_j / ||x_u||  +  e_u

``q_i`` are free item vectors, ``c_i`` / ``c_s`` the style codes of the item's
image / of the style it was rendered in (standardised with the statistics of the
codes seen at fit time), ``W`` a learned linear projection of the code space into
the preference space and ``b_i`` an item bias.  ``W`` is what makes the model
"learn style embeddings from click/purchase logs": it maps *any* style code, even
that of a style never shown to anyone, into the space where ``p_u . W c_s`` is
user ``u``'s affinity for style ``s`` (relative to the original photo).

User vectors are the sum of two parts.  The first is an *encoder* of the user's
history ``x_u`` (a learned item-to-user embedding ``y_j``, L2-normalised weights,
input dropout while training): a free vector per user would have to be learned
from that user's few events alone, while ``y_j`` is shared by everyone who
touched item ``j``, and the encoder folds in new users without a refit
(:meth:`encode_users`).  The second is a free per-user offset ``e_u`` that carries
what the item history cannot show: the user's reactions to rendered styles.

Objective (why PyTorch rather than ``implicit``): a multinomial likelihood of each
user's positive entries under a softmax over the catalogue -- exact when the
catalogue has at most ``full_softmax_items`` items, otherwise a sampled softmax
with ``negatives`` popularity^0.75 negatives shared by the mini-batch of users and
the logQ correction.  ``implicit`` offers only ALS/BPR/LMF objectives and no way to
tie item factors to a projection of side features, which is the whole point here.

Style events add a second, small softmax: *given* a positive event on an image,
which of the images the user was exposed to (the original photo or a render in
some style) was it?  Its logits are ``log exposure(u, s) + p_u . W c_s`` (0 for
the original), so styles the user saw more often are not mistaken for styles the
user prefers, and the original photo anchors the scale of affinities.

Training, in two stages, each early-stopped on data carved out of the training
input:

1. *Collaborative*: ``Y``, ``Q``, ``b`` (and ``W`` through item codes) on the item
   likelihood, stopped on NDCG@10 of held-out positives.  The bias starts at log
   popularity.  No per-user parameters here: trained on the users' own items the
   free offsets fitted noise (measured, ``docs/benchmarks.md``).
2. *Style* (only with style events): ``W`` and the offsets ``e_u`` on the style
   and item likelihoods with the stage-1 tables frozen, stopped on the
   likelihood of held-out style events.

Each step gathers only the rows it uses (the batch's users, their history
items, the positives and the shared negatives; never a dense user x item
matrix), and a row-wise lazy Adam (:class:`_RowAdam`) writes the updates back.
Seeded and deterministic.  With no codes it is a plain CF model.

Where things live: the training loop is :mod:`recsys._trainer` (PyTorch), its
building blocks :mod:`recsys._torch_parts`; what ``fit`` produces is a
:class:`recsys.factors.StyleFactors` (``factors_``), which does every score,
recommendation and code projection, here and in serving.  This module is the
estimator: parameters, ``fit``, and the scoring and file API over ``factors_``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from recsys._trainer import _TorchTrainer, encode_history
from recsys.factors import FORMAT_VERSION, StyleFactors

_FORMAT_VERSION = FORMAT_VERSION  # the model file is the factors' file plus the trainer's arrays
_PARAMS = (
    "factors",
    "epochs",
    "batch_size",
    "learning_rate",
    "l2",
    "user_l2",
    "dropout",
    "negatives",
    "full_softmax_items",
    "sampling_power",
    "style_weight",
    "validation_users",
    "patience",
    "seed",
    "min_batches",
    "max_steps",
    "validate_every",
    "style_epochs",
    "validation_share_style",
)
_TRAINER_ARRAYS = ("history_item_factors", "user_offsets", "free_item_factors", "item_codes")
"""Arrays of a saved model beyond the factors: what a warm start and fold-in need."""


class StylePreferenceModel(_TorchTrainer, BaseEstimator):
    """User vectors ``p_u``, item vectors ``q_i + W c_i``, style embeddings ``W c_s``.

    Parameters are plain hyper-parameters (scikit-learn shape); learned
    attributes end in ``_``.  ``batch_size`` counts users; an epoch has at
    least ``min_batches`` optimizer steps (the batch shrinks on small logs) and
    a fit at most ``max_steps`` steps in all (``None``: no cap); early stopping
    validates every epoch or every ``validate_every`` steps, whichever comes
    first, and stops after ``patience`` rounds without improvement.  ``l2`` is
    the weight decay of the item-side parameters (1e-3 rather than 1e-4: mean
    NDCG@10 +1.6 % on MovieLens over 12 seeds, +2.3 % on the generated log,
    neutral on the demo world; 3e-3 already loses on MovieLens;
    docs/benchmarks.md); ``user_l2`` the precision of the Gaussian prior on a
    user's style offset, in units of that user's summed style log-likelihood
    (an offset moves only when the user's clicks on renders outweigh it);
    ``dropout`` the share of history entries hidden from the encoder at each
    step (the denoising that keeps it from learning the identity).
    ``validation_users`` bounds the early-stopping slice (see :meth:`fit`);
    ``style_epochs`` and ``validation_share_style`` drive the style stage.
    """

    def __init__(
        self,
        factors: int = 64,
        epochs: int = 100,
        batch_size: int = 512,
        learning_rate: float = 0.003,
        l2: float = 1e-3,
        user_l2: float = 1.0,
        dropout: float = 0.5,
        negatives: int = 2048,
        full_softmax_items: int = 20_000,
        sampling_power: float = 0.75,
        style_weight: float = 1.0,
        validation_users: int = 2000,
        patience: int = 5,
        seed: int = 0,
        min_batches: int = 16,
        max_steps: int | None = None,
        validate_every: int = 1000,
        style_epochs: int = 100,
        validation_share_style: float = 0.1,
        show_progress: bool | None = None,
    ) -> None:
        self.factors = factors
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.l2 = l2
        self.user_l2 = user_l2
        self.dropout = dropout
        self.negatives = negatives
        self.full_softmax_items = full_softmax_items
        self.sampling_power = sampling_power
        self.style_weight = style_weight
        self.validation_users = validation_users
        self.patience = patience
        self.seed = seed
        self.min_batches = min_batches
        self.max_steps = max_steps
        self.validate_every = validate_every
        self.style_epochs = style_epochs
        self.validation_share_style = validation_share_style
        self.show_progress = show_progress

    # ------------------------------------------------------------------ params
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Hyper-parameters as a dict (saved beside the weights; ``show_progress`` is not one)."""
        return {k: getattr(self, k) for k in _PARAMS}

    def _check_params(self) -> None:
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        for name in ("factors", "batch_size", "negatives", "min_batches", "validate_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 or None, got {self.max_steps}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")

    def fit(
        self,
        interactions: Any,
        item_codes: np.ndarray | None = None,
        style_codes: np.ndarray | None = None,
        style_events: np.ndarray | None = None,
        init_from: StylePreferenceModel | str | Path | None = None,
    ) -> StylePreferenceModel:
        """Fit on a user x item confidence matrix (CSR or :class:`recsys.Interactions`).

        ``item_codes`` ``(n_items, d)`` are aligned with the item IdMap; ``style_codes``
        ``(n_styles, d)``; ``style_events`` rows ``(user_idx, item_idx, style_idx, weight)``
        with ``style_idx = -1`` for the original image and ``weight <= 0`` for impressions
        without a positive event.  ``init_from`` warm-starts from a previous model:
        stable id maps make old rows line up by index, new rows start fresh.

        Early stopping watches NDCG@10 on positives carved out of the *training*
        matrix: up to ``validation_users`` users, and when fewer users qualify each
        gives several positives (at most a fifth of its own), so the slice holds
        about ``validation_users`` positives on a 300-user log as on a million-user
        one and the stopping signal is not the noise of a few hundred single items.
        """
        prev = _load_if_path(init_from)
        self._fit(interactions, item_codes, style_codes, style_events, prev)
        return self

    # ------------------------------------------------------- fitted factors
    def _factors(self) -> StyleFactors:
        check_is_fitted(self, "factors_")
        return self.factors_

    @property
    def user_factors_(self) -> np.ndarray:
        """User vectors ``p_u`` (history encoder + free offset), one row per user."""
        return self._factors().user_factors

    @property
    def item_factors_(self) -> np.ndarray:
        """Full item vectors ``q_i + W c_i`` (what scoring uses)."""
        return self._factors().item_factors

    @property
    def item_bias_(self) -> np.ndarray:
        return self._factors().item_bias

    @property
    def item_popularity_(self) -> np.ndarray:
        return self._factors().item_popularity

    @property
    def W_(self) -> np.ndarray:
        return self._factors().W

    @property
    def code_mean_(self) -> np.ndarray | None:
        return self._factors().code_mean

    @property
    def code_scale_(self) -> float | None:
        return self._factors().code_scale

    @property
    def n_users_(self) -> int:
        return self._factors().n_users

    @property
    def n_items_(self) -> int:
        return self._factors().n_items

    @property
    def seen_(self) -> sp.csr_matrix | None:
        """Each user's training items (user x item CSR of ones)."""
        f = self._factors()
        if f.seen_indptr is None:
            return None
        return sp.csr_matrix(
            (np.ones(len(f.seen_indices), np.float32), f.seen_indices, f.seen_indptr),
            shape=(f.n_users, f.n_items),
        )

    # --------------------------------------------------------------- scoring
    def encode_users(self, history: sp.spmatrix) -> np.ndarray:
        """History-encoder part of ``p_u`` for rows of a user x item matrix (fold-in).

        A user absent at fit time gets a vector from its history alone, without a
        refit; the rows of known users still need their free offset added
        (``user_factors_`` has both).  Negative entries (impressions) are ignored.
        """
        check_is_fitted(self, "factors_")
        if self.history_item_factors_ is None:
            raise ValueError(
                "this model was assembled from plain vectors and has no history encoder"
            )
        if history.shape[1] != self.n_items_:
            raise ValueError(f"history must have {self.n_items_} columns, got {history.shape[1]}")
        return encode_history(history, self.history_item_factors_)

    def style_embeddings(self, codes: np.ndarray) -> np.ndarray:
        """``W c`` for style codes ``(n, d)`` -> ``(n, factors)``; works for never-shown styles."""
        return self._factors().embed_codes(codes)

    def user_style_affinity(self, user_idx: np.ndarray, style_codes: np.ndarray) -> np.ndarray:
        """Affinity ``p_u . W c_s`` of users for styles, ``(len(user_idx), n_styles)``.

        Relative to the original image (affinity 0).  Unknown users get the
        population's mean affinity.
        """
        return self._factors().style_affinity(user_idx, style_codes)

    def popularity_scores(self) -> np.ndarray:
        """Log-popularity prior per item: the cold-start ranking for unknown users."""
        return self._factors().popularity_scores

    def user_scores(self, user_idx: np.ndarray) -> np.ndarray:
        """Dense scores ``(len(user_idx), n_items)``; unknown users get the popularity prior."""
        return self._factors().user_scores(user_idx)

    def score(
        self,
        user_idx: np.ndarray | int,
        item_idx: np.ndarray | int,
        item_codes: np.ndarray | None = None,
    ) -> np.ndarray:
        """Score (user, item) pairs elementwise (:meth:`recsys.factors.StyleFactors.score`).

        Cold start: an unknown user scores items by the popularity prior; an
        unknown item (index out of range) is scored from its image code when
        ``item_codes`` (one row per pair) is given, else gets the mean item bias.
        """
        return self._factors().score(user_idx, item_idx, item_codes)

    def score_new_items(self, user_idx: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Scores ``(len(user_idx), len(codes))`` of items never seen in training, from their codes."""
        return self._factors().score_new_items(user_idx, codes)

    def recommend(
        self, user_idx: np.ndarray | int, k: int = 10, exclude_seen: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` item indices and scores per user (best first), seen items excluded."""
        return self._factors().recommend(user_idx, k, exclude_seen)

    # ------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Write ``<path>.npz`` (arrays) and ``<path>.json`` (params, history); no pickle.

        The factors' file (:meth:`StyleFactors.save`, which serving reads) plus
        the trainer's arrays (``history_item_factors``, ``user_offsets``,
        ``free_item_factors``, ``item_codes``) and the fit's record.
        """
        factors = self._factors()
        extra = {name: getattr(self, name + "_") for name in _TRAINER_ARRAYS
                 if getattr(self, name + "_", None) is not None}
        meta = {
            "params": self.get_params(),
            "history": self.history_,
            "best_epoch": self.best_epoch_,
            "fit_seconds": self.fit_seconds_,
        }
        factors.save(path, extra_arrays=extra, meta=meta)

    @classmethod
    def from_factors(cls, learned: StyleFactors, /, **params: Any) -> StylePreferenceModel:
        """A model that serves ``factors`` (no history encoder: it cannot fold in or warm-start
        the encoder).  What a run produced by another trainer is wrapped in."""
        model = cls(**{"factors": learned.n_factors, **params})
        model.factors_ = learned
        for name in _TRAINER_ARRAYS:
            setattr(model, name + "_", None)
        model.free_item_factors_ = learned.item_factors
        model.history_, model.best_epoch_, model.fit_seconds_ = [], 0, 0.0
        return model

    @classmethod
    def load(cls, path: str | Path) -> StylePreferenceModel:
        """Read a model written by :meth:`save` (``path`` with or without suffix; versions 2, 3)."""
        factors, arrays, meta = StyleFactors.read(path)
        known = set(_PARAMS) | {"show_progress"}
        model = cls.from_factors(
            factors, **{k: v for k, v in meta.get("params", {}).items() if k in known})
        for name in _TRAINER_ARRAYS:
            setattr(model, name + "_", arrays.get(name))
        if model.free_item_factors_ is None:
            model.free_item_factors_ = factors.item_factors
        model.history_ = meta.get("history", [])
        model.best_epoch_ = meta.get("best_epoch", 0)
        model.fit_seconds_ = meta.get("fit_seconds", 0.0)
        return model


def _load_if_path(obj: Any) -> StylePreferenceModel | None:
    if obj is None:
        return None
    if isinstance(obj, StylePreferenceModel):
        return obj
    return StylePreferenceModel.load(obj)
