"""Plots of an A/B analysis: lifts with intervals, a per-segment forest plot, cumulative lift.

Built on ``matplotlib.figure.Figure`` directly (no pyplot state), so the CLI
can write PNGs from any thread or headless server, and a notebook can show
the same figures with ``display(fig)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def plot_lifts(table: pd.DataFrame, title: str = "") -> Figure:
    """Relative lift of each metric with its interval (the test's inversion) and the bootstrap check."""
    rows = table.dropna(subset=["lift"]).reset_index(drop=True)
    fig = Figure(figsize=(7, 0.6 * max(len(rows), 1) + 1.4))
    ax = fig.add_subplot()
    y = np.arange(len(rows))[::-1]
    labels = [f"{m} ({v})" for m, v in zip(rows["metric"], rows["variant"], strict=True)]
    lift = rows["lift"].to_numpy(float) * 100
    lo = rows["ci_low"].to_numpy(float) * 100
    hi = rows["ci_high"].to_numpy(float) * 100
    ax.errorbar(lift, y, xerr=[lift - lo, hi - lift], fmt="o", capsize=4,
                label="interval of the test (Fieller)")
    if "boot_low" in rows.columns and rows["boot_low"].notna().any():
        bl = rows["boot_low"].to_numpy(float) * 100
        bh = rows["boot_high"].to_numpy(float) * 100
        ok = np.isfinite(bl)
        ax.errorbar(lift[ok], y[ok] - 0.2, xerr=[(lift - bl)[ok], (bh - lift)[ok]], fmt="s",
                    capsize=3, alpha=0.7, label="bootstrap")
    ax.axvline(0.0, color="grey", lw=1, ls="--")
    ax.set_yticks(y, labels)
    ax.set_xlabel("relative lift vs control (%)")
    ax.set_title(title or "Lift with 95% intervals")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig


def plot_segments(segments: pd.DataFrame, title: str = "") -> Figure:
    """Forest plot of the CTR lift per segment (segments without a control group are skipped)."""
    rows = segments.dropna(subset=["lift", "ci_low", "ci_high"]).reset_index(drop=True)
    fig = Figure(figsize=(7, 0.35 * max(len(rows), 1) + 1.4))
    ax = fig.add_subplot()
    if rows.empty:
        ax.text(0.5, 0.5, "no segment has users in both arms", ha="center", va="center")
        ax.set_axis_off()
        return fig
    y = np.arange(len(rows))[::-1]
    lift = rows["lift"].to_numpy(float) * 100
    lo = rows["ci_low"].to_numpy(float) * 100
    hi = rows["ci_high"].to_numpy(float) * 100
    size = (rows["users_control"] + rows["users_variant"]).to_numpy(float)
    ax.errorbar(lift, y, xerr=[lift - lo, hi - lift], fmt="none", ecolor="C0", capsize=3)
    ax.scatter(lift, y, s=20 + 80 * size / size.max(), color="C0", zorder=3)
    ax.axvline(0.0, color="grey", lw=1, ls="--")
    labels = [f"{s} ({v}, n={int(n)})" for s, v, n in
              zip(rows["segment_id"], rows["variant"], size, strict=True)]
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlabel("CTR lift vs control (%)")
    ax.set_title(title or "CTR lift per segment (95% intervals, not multiplicity-corrected)")
    fig.tight_layout()
    return fig


def plot_cumulative(cum: pd.DataFrame, title: str = "") -> Figure:
    """CTR per arm and the CTR lift with its interval as data accumulate."""
    fig = Figure(figsize=(8, 5.5))
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    for variant, g in cum.groupby("variant"):
        t = pd.to_datetime(g["until"]).dt.tz_localize(None)
        if variant == cum["variant"].iloc[0]:
            ax1.plot(t, g["ctr_control"] * 100, marker=".", label="control")
        ax1.plot(t, g["ctr_variant"] * 100, marker=".", label=str(variant))
        ax2.plot(t, g["lift"] * 100, marker=".", label=str(variant))
        ax2.fill_between(t, g["ci_low"] * 100, g["ci_high"] * 100, alpha=0.25)
    ax1.set_ylabel("cumulative CTR (%)")
    ax1.legend(fontsize=8)
    ax2.axhline(0.0, color="grey", lw=1, ls="--")
    ax2.set_ylabel("CTR lift (%)")
    ax2.set_xlabel("data up to")
    ax1.set_title(title or "Cumulative CTR and lift (95% interval)")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Write a figure as PNG, creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path
