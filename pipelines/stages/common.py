"""Helpers that more than one stage uses, so that no stage imports another.

* codes as the model sees them (:func:`whitened_codes`) and the model's
  constructor arguments (:func:`model_params`): train, index and evaluate;
* reuse of the served run's output on a quiet night (:func:`reuse_previous`);
* what the render stage renders and with which parameters (:func:`chosen_items`,
  :func:`condition_params`): render, and the report, which finds the files by them.

Every run file is read and written through :class:`recsys.run_bundle.RunBundle`
(``ctx.bundle``).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from pipelines.context import RunContext
from recsys.run_bundle import EVENTS, Codes, RunBundle

log = logging.getLogger("stylerec.render")


def whitened_codes(bundle: RunBundle) -> tuple[Codes, np.ndarray, np.ndarray]:
    """The embed stage's codes and their whitened item and style codes (float64).

    ``FileNotFoundError`` when the run has no codes or no whitening.
    """
    codes = bundle.read_codes()
    whitening = bundle.read_whitening()
    if whitening is None:
        raise FileNotFoundError(f"run bundle {bundle.root}: missing whitening.npz")
    return codes, whitening.transform(codes.item_codes), whitening.transform(codes.style_codes)


def model_params(ctx: RunContext) -> dict[str, Any]:
    """Constructor arguments for the model from the config (0 epochs = the model's default)."""
    m = ctx.config.model
    params: dict[str, Any] = {"factors": m.factors, "seed": m.seed}
    if m.epochs:
        params["epochs"] = m.epochs
    return params


def reuse_previous(ctx: RunContext, stage: str, key: str, names: list[str]) -> bool:
    """Copy ``names`` from the previous run when its ``stage`` had the same input key.

    Deterministic stages on unchanged inputs give unchanged outputs, so the
    night after a quiet day costs file copies instead of a retrain.
    """
    previous = ctx.previous_bundle
    if previous is None or ctx.previous_run_id is None:
        return False
    prev = ctx.store.get_run(ctx.previous_run_id)
    prev_metrics = (prev or {}).get("stages", {}).get(stage, {}).get("metrics") or {}
    if prev_metrics.get("input_key") != key:
        return False
    return ctx.bundle.copy_from(previous, names)


# ---------------------------------------------------------------- render parameters
def render_params(ctx: RunContext) -> dict[str, Any]:
    """The render parameters that change a render's pixels (and so its key).

    The scene strength is per condition (see :func:`condition_strengths`) and is
    added to each key's parameters by :func:`condition_params`.
    """
    from stylizer.mask_fusion import MASK_VERSION  # the mask model: only when rendering

    r = ctx.config.render
    return {"mode": r.mode, "max_side": r.max_side, "format": r.format, "quality": r.quality,
            "strength": r.strength, "shadow_strength": r.shadow_strength, "tone": r.tone,
            "mask": MASK_VERSION}


def style_strengths(ctx: RunContext) -> dict[str, float]:
    """Per-style scene strength from the style library's optional ``strength`` column.

    A library without the column is valid (every style gets ``render.scene_strength``);
    an empty cell means the default too; a value outside [0, 1] or not a number is
    ignored with a warning naming the style, and the default is used.
    """
    path = ctx.config.path(ctx.config.inputs.styles)
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            table = pd.read_parquet(path)
        elif suffix in (".csv", ".txt"):
            table = pd.read_csv(path, dtype=str, keep_default_na=False)
        else:
            return {}
    except (OSError, ValueError):
        return {}
    if "strength" not in table.columns or "style_id" not in table.columns:
        return {}
    out: dict[str, float] = {}
    for sid, raw in zip(table["style_id"].astype(str), table["strength"], strict=True):
        text = str(raw).strip()
        if text in ("", "nan", "None"):
            continue
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not 0.0 <= value <= 1.0:
            log.warning("style %s: strength %r is not in [0, 1]; using render.scene_strength",
                        sid, text)
            continue
        out[sid] = value
    return out


def condition_strengths(
    conditions: list[dict[str, Any]], per_style: dict[str, float], default: float
) -> list[float]:
    """Scene strength per condition: its styles' strengths, weighted as the styles are blended."""
    out = []
    for cond in conditions:
        styles = cond.get("style_ids") or []
        weights = np.asarray(cond.get("weights") or [1.0] * len(styles), dtype=np.float64)
        if not styles or weights.sum() <= 0:
            out.append(default)
            continue
        values = np.asarray([per_style.get(str(s), default) for s in styles], dtype=np.float64)
        out.append(round(float(values @ weights / weights.sum()), 4))
    return out


def condition_params(
    ctx: RunContext, conditions: list[dict[str, Any]]
) -> tuple[list[float], list[dict[str, Any]]]:
    """Scene strength and render-key parameters of each condition (the report finds files by them)."""
    strengths = condition_strengths(
        conditions, style_strengths(ctx), ctx.config.render.scene_strength
    )
    params = render_params(ctx)
    return strengths, [{**params, "scene_strength": s} for s in strengths]


def chosen_items(ctx: RunContext, items: pd.DataFrame) -> pd.DataFrame:
    """All items, or the top-N by interactions in this run's events (``render.items``)."""
    spec = ctx.config.render.items
    if spec == "all":
        return items
    n = int(spec.split(":", 1)[1])
    events = ctx.bundle.read_table(EVENTS, columns=["item_id"])
    counts = events["item_id"].astype(str).value_counts()
    order = counts.reindex(items["item_id"].astype(str)).fillna(0).to_numpy()
    top = np.argsort(-order, kind="stable")[:n]
    return items.iloc[np.sort(top)].reset_index(drop=True)
