"""Planted truth of the demo world: shopper tastes, style and item latents, the click model.

Everything later stages are scored against is drawn here, from one seeded
generator, *before* any log or image exists.  Keeping the truth separate from
the simulation is what lets a test say "the preference model recovered the
planted affinity" rather than "the model agrees with itself".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ClickModel", "plant_truth", "format_ids", "sigmoid"]


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically safe logistic function (the click model lives in logit space)."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))


def format_ids(prefix: str, n: int, width: int) -> np.ndarray:
    """String ids such as ``u00042``: fixed width so that they sort like their index."""
    width = max(width, len(str(max(n - 1, 0))))
    return np.array([f"{prefix}{k:0{width}d}" for k in range(n)], dtype=f"<U{width + len(prefix)}")


@dataclass(frozen=True)
class ClickModel:
    """Parameters of the planted funnel, saved in ``truth.json`` so simulators can reuse them.

    ``logit(click) = b0 + popularity_i + alpha * affinity[u, s] + beta * taste_u . item_latent_i``
    with the affinity term 0 for the original image.  Add-to-cart (given a click) and
    purchase (given a cart) use the same score, so the shoppers who like what they see
    also convert more, which is what makes CVR lift measurable in the A/B notebooks.

    ``alpha`` is large on purpose: the product exists because the style of the image
    drives clicks, so a render in a shopper's favourite style is clicked several times
    as often as one in a style they dislike.  With a weak style term (it was 1.1) a
    shopper's few dozen views cannot reveal their top three styles to any estimator.
    """

    b0: float = -3.4
    alpha: float = 3.0
    beta: float = 0.5
    cart_b0: float = -1.8
    cart_gain: float = 0.4
    purchase_b0: float = -1.0
    purchase_gain: float = 0.4

    def score(
        self,
        truth: dict[str, np.ndarray],
        user_idx: np.ndarray | int,
        item_idx: np.ndarray | int,
        style_idx: np.ndarray | int,
    ) -> np.ndarray:
        """Taste part of the click logit (without ``b0``), broadcast over the index arrays.

        ``style_idx`` -1 means the original product photo, which carries no style affinity.
        """
        u = np.asarray(user_idx, dtype=np.int64)
        i = np.asarray(item_idx, dtype=np.int64)
        s = np.asarray(style_idx, dtype=np.int64)
        u, i, s = np.broadcast_arrays(u, i, s)
        n_styles = truth["affinity"].shape[1]
        if np.any(s < -1) or np.any(s >= n_styles):
            raise ValueError(f"style index out of range [-1, {n_styles - 1}]")
        shown = s >= 0
        aff = np.where(shown, truth["affinity"][u, np.where(shown, s, 0)], 0.0)
        match = np.einsum("...k,...k->...", truth["user_taste"][u], truth["item_latent"][i])
        return truth["item_popularity"][i] + self.alpha * aff + self.beta * match

    def click_probability(
        self,
        truth: dict[str, np.ndarray],
        user_idx: np.ndarray | int,
        item_idx: np.ndarray | int,
        style_idx: np.ndarray | int,
    ) -> np.ndarray:
        """P(click | impression), vectorised over broadcastable index arrays."""
        return sigmoid(self.b0 + self.score(truth, user_idx, item_idx, style_idx))

    def cart_probability(self, score: np.ndarray) -> np.ndarray:
        """P(add_to_cart | click) for a given score (from :meth:`score`)."""
        return sigmoid(self.cart_b0 + self.cart_gain * score)

    def purchase_probability(self, score: np.ndarray) -> np.ndarray:
        """P(purchase | add_to_cart) for a given score (from :meth:`score`)."""
        return sigmoid(self.purchase_b0 + self.purchase_gain * score)


def _spread_unit_vectors(rng: np.random.Generator, n: int, dim: int, steps: int = 60) -> np.ndarray:
    """``n`` unit vectors pushed apart on the sphere.

    Purely random directions in a 6-d space often land two styles close together, and
    then no log can tell them apart; a short repulsion keeps the planted styles distinct
    while staying random.
    """
    x = rng.normal(size=(n, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    if n < 2:
        return x
    for _ in range(steps):
        diff = x[:, None, :] - x[None, :, :]
        d2 = np.sum(diff**2, axis=-1) + np.eye(n)
        force = np.sum(diff / d2[..., None] ** 1.5, axis=1)
        x = x + 0.02 * force
        x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


# Each shopper's three favourite styles and the range of their weights, strongest first.
_FAVOURITE_WEIGHTS = ((1.4, 1.8), (1.0, 1.4), (0.7, 1.0))
# Personal taste beyond the favourites (per latent dimension).
_TASTE_NOISE = 0.15


def _separate_top(
    taste: np.ndarray, latent: np.ndarray, margin: float, k: int = 3, steps: int = 300
) -> np.ndarray:
    """Nudge each taste until its ``k``-th best style beats the ``(k+1)``-th by ``margin``.

    Affinity is ``taste . latent``, so moving the taste along ``latent[k-th] -
    latent[(k+1)-th]`` widens exactly that gap.  Without this, neighbouring styles in
    the 6-d latent space give many shoppers a near-tie at the top-3 boundary, and
    "their top-3 styles" is not a fact any log could reveal.
    """
    taste = taste.copy()
    if margin <= 0 or latent.shape[0] <= k:
        return taste
    rows = np.arange(len(taste))
    for _ in range(steps):
        aff = taste @ latent.T
        order = np.argsort(-aff, axis=1)
        hi, lo = order[:, k - 1], order[:, k]
        gap = aff[rows, hi] - aff[rows, lo]
        bad = gap < margin
        if not bad.any():
            break
        d = latent[hi[bad]] - latent[lo[bad]]
        step = (margin - gap[bad]) / np.sum(d**2, axis=1)
        taste[bad] += 0.5 * step[:, None] * d
    return taste


def plant_truth(
    rng: np.random.Generator,
    n_users: int,
    n_items: int,
    n_styles: int,
    n_latent: int,
    code_dim: int,
    holdout_styles: int,
    taste_margin: float = 1.0,
) -> dict[str, np.ndarray]:
    """Draw the planted truth arrays described in ``docs/demo_world.md``.

    Each user's taste is a weighted sum of the latents of three distinct favourite
    styles (strongest first) plus a little personal noise; ``taste_margin`` then
    separates the third-best style *among those shown in the logs* from the fourth
    (see :func:`_separate_top`), so every shopper has a clear top three.  Proxy style
    codes are one fixed random linear map of the latent plus small noise, shared by
    styles and items, so recsys can be built and tested without the image encoder.
    """
    style_latent = _spread_unit_vectors(rng, n_styles, n_latent)
    # A few styles are more popular favourites than others, as in any real catalogue.
    style_appeal = rng.dirichlet(np.full(n_styles, 2.0))
    n_fav = min(len(_FAVOURITE_WEIGHTS), n_styles)
    # Gumbel top-k: distinct favourites, each drawn in proportion to the style's appeal.
    keys = rng.gumbel(size=(n_users, n_styles)) + np.log(style_appeal)[None]
    favourites = np.argsort(-keys, axis=1)[:, :n_fav]
    weights = [rng.uniform(lo, hi, size=(n_users, 1)) for lo, hi in _FAVOURITE_WEIGHTS[:n_fav]]
    user_taste = rng.normal(scale=_TASTE_NOISE, size=(n_users, n_latent))
    for k in range(n_fav):
        user_taste = user_taste + weights[k] * style_latent[favourites[:, k]]
    holdout = np.sort(rng.choice(n_styles, size=holdout_styles, replace=False))
    shown = np.setdiff1d(np.arange(n_styles), holdout)
    user_taste = _separate_top(user_taste, style_latent[shown], taste_margin)

    item_latent = rng.normal(scale=0.6, size=(n_items, n_latent))
    item_popularity = rng.normal(scale=0.6, size=n_items)

    affinity = user_taste @ style_latent.T

    code_map = rng.normal(size=(n_latent, code_dim)) / np.sqrt(n_latent)
    style_codes = style_latent @ code_map + rng.normal(scale=0.05, size=(n_styles, code_dim))
    item_codes = item_latent @ code_map + rng.normal(scale=0.05, size=(n_items, code_dim))

    style_ids = format_ids("s", n_styles, 2)
    return {
        "user_ids": format_ids("u", n_users, 5),
        "item_ids": format_ids("i", n_items, 4),
        "style_ids": style_ids,
        "user_taste": user_taste.astype(np.float64),
        "style_latent": style_latent.astype(np.float64),
        "item_latent": item_latent.astype(np.float64),
        "item_popularity": item_popularity.astype(np.float64),
        "affinity": affinity.astype(np.float64),
        "style_codes": style_codes.astype(np.float32),
        "item_codes": item_codes.astype(np.float32),
        "holdout_style_ids": style_ids[holdout],
    }
