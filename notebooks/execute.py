"""Execute the notebooks and store them with their outputs; compare stored outputs with a fresh run.

    .venv/bin/python notebooks/execute.py                 # re-execute and save every notebook
    .venv/bin/python notebooks/execute.py ab_evaluation   # one of them

Why stored outputs: a reader of the repository sees the figures and the generated
text without running anything, and ``tests/pipelines/test_notebooks.py`` re-executes each
notebook and checks that the stored outputs still match (:func:`differences`), so
they cannot go stale.  The kernel is *this* interpreter (a private kernelspec in a
temp ``JUPYTER_PATH``) with this checkout first on ``PYTHONPATH``, whatever
kernelspecs or installed copies the machine has.  Output folders (PNGs, Parquet)
go to a temp dir, never into the repository.
"""

from __future__ import annotations

import base64
import io
import json
import os
import platform
import re
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import nbclient
import nbformat

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
KERNEL = "stylerec-notebooks"
NOTEBOOKS = ("ab_evaluation", "offline_evaluation")

# Volatile text: what may differ between two runs of the same notebook on the same data.
_VOLATILE = [
    (re.compile(r"0x[0-9a-fA-F]{6,}"), "0x?"),  # object reprs
    (re.compile(r"(?<![\w.])(?:/[\w.+~@-]+){2,}/?"), "<path>"),  # absolute paths (temp dirs)
    (re.compile(r"\b\d+(?:\.\d+)?\s?(?:ms|µs|us|s|sec|seconds|it/s|s/it)\b"), "<time>"),
]
_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


def kernel_env(base: Path) -> dict[str, str]:
    """Environment for a kernel running this interpreter with this checkout importable."""
    spec = base / "kernels" / KERNEL
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "stylerec notebooks", "language": "python"}))
    path = os.environ.get("PYTHONPATH", "")
    env = {"JUPYTER_PATH": str(base),
           "MPLBACKEND": "module://matplotlib_inline.backend_inline",
           "PYTHONPATH": str(ROOT) + (os.pathsep + path if path else ""),
           "PYTHONHASHSEED": "0"}
    if platform.machine().lower() in ("x86_64", "amd64"):
        # OpenBLAS picks its kernels by CPU (AVX2, AVX-512, Intel or AMD), which changes the
        # float summation inside implicit's ALS enough to flip one user's top-10 hit
        # (ALS hit_rate@10 0.2688 on one machine, 0.2670 on another).  The baseline AVX2
        # kernels run on every x86-64 machine this project targets, so every machine
        # computes the numbers the notebooks are stored with.
        env["OPENBLAS_CORETYPE"] = "Haswell"
    return env


def execute(name: str, out_dir: Path, env: Mapping[str, str] | None = None,
            timeout: int = 900) -> Any:
    """Run ``notebooks/<name>.ipynb`` (stored outputs are replaced) and return the notebook.

    ``env`` adds variables for the kernel (the notebooks read their parameters
    from ``STYLEREC_*``); ``STYLEREC_NOTEBOOK_OUT`` is set to ``out_dir``.
    """
    nb = nbformat.read(HERE / f"{name}.ipynb", as_version=4)
    with tempfile.TemporaryDirectory(prefix="stylerec-jupyter-") as tmp:
        kenv = {**os.environ, **kernel_env(Path(tmp)), **(env or {}),
                "STYLEREC_NOTEBOOK_OUT": str(out_dir)}
        client = nbclient.NotebookClient(nb, kernel_name=KERNEL, timeout=timeout,
                                         record_timing=False,
                                         resources={"metadata": {"path": str(out_dir)}})
        old = {k: os.environ.get(k) for k in ("JUPYTER_PATH",)}
        os.environ["JUPYTER_PATH"] = kenv["JUPYTER_PATH"]  # where the kernelspec is looked up
        try:
            client.execute(env=kenv)
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    return nb


def normalise(text: str) -> str:
    """Text with the volatile parts (addresses, paths, timings) replaced by placeholders."""
    for pattern, repl in _VOLATILE:
        text = pattern.sub(repl, text)
    return text


def _outputs(nb: Any) -> Iterator[tuple[str, str, Any]]:
    """(where, kind, value) of every output worth comparing, in order.

    A cell's stdout and stderr each come as one text, before its other outputs:
    the kernel flushes the two streams independently of each other and of
    displayed results, so how their messages interleave (and where a stream is
    split into several messages) changes from run to run; what each stream says
    does not.
    """
    code = [c for c in nb.cells if c.cell_type == "code"]
    for n, cell in enumerate(code):
        outputs = cell.get("outputs", [])
        for stream in ("stdout", "stderr"):
            parts = [o.text for o in outputs if o.output_type == "stream" and o.name == stream]
            if parts:
                yield f"code cell {n} {stream}", f"stream:{stream}", normalise("".join(parts))
        rich = [o for o in outputs if o.output_type != "stream"]
        for m, out in enumerate(rich):
            where = f"code cell {n} output {m}"
            if out.output_type == "error":
                yield where, "error", f"{out.ename}: {out.evalue}"
            else:
                data = out.get("data", {})
                for kind in ("text/plain", "text/markdown"):
                    if kind in data and "image/png" not in data:
                        yield where, kind, normalise(data[kind])
                if "image/png" in data:
                    yield where, "image/png", data["image/png"]


def _same_text(a: str, b: str, rel: float) -> bool:
    """Equal up to numbers within ``rel`` relative tolerance."""
    if _NUMBER.sub("#", a) != _NUMBER.sub("#", b):
        return False
    for x, y in zip(_NUMBER.findall(a), _NUMBER.findall(b), strict=True):
        fx, fy = float(x), float(y)
        if abs(fx - fy) > rel * max(abs(fx), abs(fy)) + 1e-12:
            return False
    return True


def _same_png(a: str, b: str, tolerance: float) -> bool:
    """Same size and at most ``tolerance`` of the pixels differing visibly."""
    import numpy as np
    from PIL import Image

    ia = np.asarray(Image.open(io.BytesIO(base64.b64decode(a))).convert("RGB"), np.int16)
    ib = np.asarray(Image.open(io.BytesIO(base64.b64decode(b))).convert("RGB"), np.int16)
    if ia.shape != ib.shape:
        return False
    return float((np.abs(ia - ib).max(axis=2) > 16).mean()) <= tolerance


def differences(stored: Any, fresh: Any, rel: float = 1e-9, png_tolerance: float = 0.0
                ) -> list[str]:
    """How the stored outputs differ from a fresh run's (empty: they match).

    Text is compared after :func:`normalise`, numbers within ``rel``; figures by
    their pixels (``png_tolerance``: share of pixels allowed to differ).
    """
    a, b = list(_outputs(stored)), list(_outputs(fresh))
    problems = []
    if [(w, k) for w, k, _ in a] != [(w, k) for w, k, _ in b]:
        problems.append(f"output layout differs: stored {[(w, k) for w, k, _ in a]} "
                        f"vs fresh {[(w, k) for w, k, _ in b]}")
        return problems
    for (where, kind, x), (_, _, y) in zip(a, b, strict=True):
        same = _same_png(x, y, png_tolerance) if kind == "image/png" else _same_text(x, y, rel)
        if not same:
            shown = "" if kind == "image/png" else f":\n--- stored\n{x[:600]}\n--- fresh\n{y[:600]}"
            problems.append(f"{where} ({kind}) differs{shown}")
    return problems


def main(argv: list[str] | None = None) -> int:
    """Re-execute the named notebooks (default: all) and save them with their outputs."""
    names = (argv if argv is not None else sys.argv[1:]) or list(NOTEBOOKS)
    for name in names:
        name = Path(name).stem
        with tempfile.TemporaryDirectory(prefix=f"{name}-out-") as out:
            nb = execute(name, Path(out))
        errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                  if o.output_type == "error"]
        if errors:
            print(f"{name}: {errors[0].ename}: {errors[0].evalue}", file=sys.stderr)
            return 1
        nbformat.write(nb, HERE / f"{name}.ipynb")
        print(f"{name}.ipynb executed and saved with its outputs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
