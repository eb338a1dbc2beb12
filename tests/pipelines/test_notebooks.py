"""The notebooks in notebooks/ execute headless, and their stored outputs match a fresh run.

The notebooks are stored *with* their outputs (so a reader sees figures and the
generated text without running anything); ``notebooks/execute.py`` re-executes
and saves them.  Each test here runs a notebook again with its default
parameters (the small world named in its ``WORLD`` cell) and compares every
output with the stored one, up to volatile parts (timings, memory addresses,
temp paths): a change to the code or the notebook that alters a number, a
sentence or a figure fails until the notebook is re-executed and committed.
Outputs (PNGs, Parquet) go to a temp dir.
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pandas as pd
import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("demo")

ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"
_spec = importlib.util.spec_from_file_location("stylerec_nb_execute", ROOT / "notebooks" / "execute.py")
nbexec = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(nbexec)  # type: ignore[union-attr]


def _stored(name: str) -> object:
    return nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)


def _outputs(nb: object, kind: str) -> list[str]:
    return [o["data"][kind] if kind in o.get("data", {}) else o.get("text", "")
            for c in nb.cells if c.cell_type == "code" for o in c.outputs
            if (kind == "stream" and o.output_type == "stream") or kind in o.get("data", {})]


def _check_stored_and_fresh(name: str, out: Path, n_png: int, rel: float = 1e-6) -> object:
    stored = _stored(name)
    assert len(_outputs(stored, "image/png")) >= n_png, f"{name} is stored without its figures"
    fresh = nbexec.execute(name, out)
    errors = [o for c in fresh.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors, errors
    assert len(_outputs(fresh, "image/png")) >= n_png
    problems = nbexec.differences(stored, fresh, rel=rel, png_tolerance=0.002)
    assert not problems, (f"stored outputs of notebooks/{name}.ipynb are stale (re-run "
                          "notebooks/execute.py):\n" + "\n".join(problems))
    return fresh


def test_ab_evaluation_notebook(tmp_path: Path) -> None:
    nb = _check_stored_and_fresh("ab_evaluation", tmp_path, 4)
    for name in ("lift_intervals.png", "segments_forest.png", "cumulative.png", "aa_pvalues.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG, name
    text = "".join(_outputs(nb, "stream"))
    assert "covers the true lift: True" in text
    md = "\n".join(_outputs(nb, "text/markdown"))
    # The prose is generated from the numbers: the world's configured 10/90 split, its SRM.
    assert "control_share = 0.1`, a 10% / 90% control / treatment split" in md
    assert "Against the configured split, SRM p = 1: no mismatch." in md
    assert "revenue_per_user_cuped" in md and "unbounded" not in md


def test_offline_evaluation_notebook(tmp_path: Path) -> None:
    pytest.importorskip("implicit")
    pytest.importorskip("recsys.model")
    # Trained models: allow a last-digit change from float summation order across machines.
    nb = _check_stored_and_fresh("offline_evaluation", tmp_path, 2, rel=2e-3)
    for name in ("offline_metrics.png", "recall_at_k.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG, name
    table = pd.read_csv(tmp_path / "offline_metrics.csv", index_col="model")
    assert set(table.index) == {"popularity", "ALS (implicit)", "BPR (implicit)",
                                "StylePreferenceModel"}
    assert ((table["ndcg@10"] >= 0) & (table["ndcg@10"] <= 1)).all()
    assert (table["ndcg@10 low"] <= table["ndcg@10"]).all()
    assert (table["ndcg@10"] <= table["ndcg@10 high"]).all()
    best = table["ndcg@10"].idxmax()
    assert f"Best ndcg@10: **{best}** ({table.loc[best, 'ndcg@10']:.4f})" in "\n".join(
        _outputs(nb, "text/markdown"))


def test_comparison_ignores_volatile_parts_and_catches_changed_numbers() -> None:
    stored = _stored("ab_evaluation")
    assert nbexec.differences(stored, copy.deepcopy(stored)) == []
    # Timings, addresses and temp paths may differ between runs...
    volatile = copy.deepcopy(stored)
    cell = next(c for c in volatile.cells if c.cell_type == "code" and c.outputs)
    cell.outputs.append(nbformat.v4.new_output("stream", name="stdout",
                                               text="took 1.25 s at 0x7f12ab34cd56 in /tmp/a/b\n"))
    other = copy.deepcopy(volatile)
    other.cells[volatile.cells.index(cell)].outputs[-1]["text"] = (
        "took 3.5 s at 0x7f00ffeeddcc in /tmp/zz/yy\n")
    assert nbexec.differences(volatile, other) == []
    # ... but a changed number in the generated prose is a difference.
    changed = copy.deepcopy(stored)
    for c in changed.cells:
        for o in c.get("outputs", []):
            if "text/markdown" in o.get("data", {}):
                o["data"]["text/markdown"] = o["data"]["text/markdown"].replace("10%", "20%")
    assert nbexec.differences(stored, changed)


def test_comparison_ignores_how_the_two_streams_interleave() -> None:
    """The kernel flushes stdout and stderr independently: a cell that writes to both
    stores them in either order, split into messages differently from run to run (the
    A/B notebook's first cell did both, and 3 of 5 fresh runs failed the check on it)."""
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("print('a'); import sys; print('w', file=sys.stderr)")
    cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text="warn\n"),
                    nbformat.v4.new_output("stream", name="stdout", text="rows 10\n")]
    nb.cells.append(cell)
    other = copy.deepcopy(nb)
    other.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text="rows "),
                              nbformat.v4.new_output("stream", name="stderr", text="warn\n"),
                              nbformat.v4.new_output("stream", name="stdout", text="10\n")]
    assert nbexec.differences(nb, other) == []
    # What a stream says still counts.
    other.cells[0].outputs[2]["text"] = "11\n"
    assert nbexec.differences(nb, other)
