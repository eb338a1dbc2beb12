"""``data.synthetic``, the demo world's old home, still imports for one release, with a warning."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_old_imports_warn_and_are_the_new_modules() -> None:
    # A fresh interpreter: in this one, data.synthetic may have been imported (and warned) already.
    code = """
import warnings
warnings.simplefilter("error", DeprecationWarning)
try:
    import data.synthetic
except DeprecationWarning as exc:
    assert "data.synthetic moved to demo" in str(exc), exc
else:
    raise AssertionError("no DeprecationWarning")
warnings.simplefilter("ignore", DeprecationWarning)
import demo, demo.world, demo.over_catalog
import data.synthetic
from data.synthetic import WorldConfig, generate_world
from data.synthetic.world import World
from data.synthetic.over_catalog import simulate_shop
from data.synthetic.shoppers import sigmoid
import data.synthetic.materials as materials
assert WorldConfig is demo.WorldConfig and generate_world is demo.generate_world
assert World is demo.World and simulate_shop is demo.over_catalog.simulate_shop
assert sys.modules["data.synthetic.world"] is demo.world and materials.MATERIALS
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", "import sys\n" + code], cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"
