"""The notebooks in notebooks/ execute headless against a demo world and produce their plots.

Each notebook reads its inputs from environment variables (``STYLEREC_WORLD``,
``STYLEREC_NOTEBOOK_OUT``), so no cell is rewritten by the test.  A private
kernelspec pointing at *this* interpreter is written to a temp ``JUPYTER_PATH``:
that runs the kernel in the same virtualenv whatever kernelspecs happen to be
installed on the machine.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pandas as pd
import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
synthetic = pytest.importorskip("data.synthetic")

ROOT = Path(__file__).resolve().parents[1]
KERNEL = "stylerec-test-python"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Env vars for a kernel running this interpreter."""
    base = tmp_path_factory.mktemp("jupyter")
    spec = base / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "stylerec tests",
        "language": "python",
    }))
    return {"JUPYTER_PATH": str(base), "MPLBACKEND": "module://matplotlib_inline.backend_inline"}


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo world (no images: the notebooks use logs and the planted truth)."""
    out = tmp_path_factory.mktemp("nbworld") / "world"
    synthetic.generate_world(out, synthetic.WorldConfig(seed=1, n_users=1200, n_items=120,
                                                        target_events=40_000, write_images=False))
    return out


def _execute(name: str, world: Path, out: Path, env: dict[str, str],
             monkeypatch: pytest.MonkeyPatch) -> object:
    for key, value in {**env, "STYLEREC_WORLD": str(world),
                       "STYLEREC_NOTEBOOK_OUT": str(out)}.items():
        monkeypatch.setenv(key, value)
    path = ROOT / "notebooks" / name
    nb = nbformat.read(path, as_version=4)
    # Stored without outputs, so diffs stay readable and no stale figure passes for a new one.
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{name} has outputs"
    client = nbclient.NotebookClient(nb, kernel_name=KERNEL, timeout=600,
                                     resources={"metadata": {"path": str(out)}})
    client.execute(env=dict(os.environ))
    return nb


def _pngs_in(nb: object) -> int:
    return sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code"
               for o in c.outputs)


def test_ab_evaluation_notebook(world_dir: Path, tmp_path: Path, kernel_env: dict[str, str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    nb = _execute("ab_evaluation.ipynb", world_dir, tmp_path, kernel_env, monkeypatch)
    assert _pngs_in(nb) >= 4
    for name in ("lift_intervals.png", "segments_forest.png", "cumulative.png", "aa_pvalues.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG, name
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "covers the true lift" in text


def test_offline_evaluation_notebook(world_dir: Path, tmp_path: Path, kernel_env: dict[str, str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("implicit")
    pytest.importorskip("recsys.model")
    monkeypatch.setenv("STYLEREC_OFFLINE_EPOCHS", "4")
    nb = _execute("offline_evaluation.ipynb", world_dir, tmp_path, kernel_env, monkeypatch)
    assert _pngs_in(nb) >= 2
    for name in ("offline_metrics.png", "recall_at_k.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG, name
    table = pd.read_csv(tmp_path / "offline_metrics.csv", index_col="model")
    assert set(table.index) == {"popularity", "ALS (implicit)", "BPR (implicit)",
                                "StylePreferenceModel"}
    assert ((table["ndcg@10"] >= 0) & (table["ndcg@10"] <= 1)).all()
    assert (table["ndcg@10 low"] <= table["ndcg@10"]).all()
    assert (table["ndcg@10"] <= table["ndcg@10 high"]).all()
