"""The nightly stages' structure, read from the source with ``ast``.

* every run file goes through ``recsys.run_bundle.RunBundle``: no stage writes with
  ``np.savez``/``json.dump`` (the check the issue names: ``grep -rn "np.savez\\|json.dump"
  pipelines/stages`` finds nothing), nor reads or writes npz/parquet/JSON itself;
* no stage imports another stage (shared helpers live in ``pipelines.stages.common``);
* no import cycle inside ``pipelines``, function-local imports included.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from pipelines.context import STAGES

ROOT = Path(__file__).resolve().parents[2]
STAGE_DIR = ROOT / "pipelines" / "stages"


def _modules(package: Path) -> dict[str, Path]:
    out = {}
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(path: Path, module: str) -> set[str]:
    """Every module ``path`` imports, at any depth of the code (function-local ones too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import module`
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args
              and isinstance(node.args[0], ast.JoinedStr | ast.Constant)):
            # importlib.import_module(f"pipelines.stages.{name}"): every stage
            text = ast.unparse(node.args[0])
            if "pipelines.stages." in text:
                out.update(f"pipelines.stages.{s}" for s in STAGES)
    return out


def test_no_stage_writes_or_reads_run_files_itself() -> None:
    """The issue's grep, and its read-side twin: run files only through RunBundle."""
    raw_io = re.compile(r"np\.savez|json\.dump|np\.load\(|\.to_parquet\(|read_parquet\(|"
                        r"\.write_text\(|\.read_text\(|IdMap\.load|Segmentation\.(load|save)|"
                        r"StylePreferenceModel\.load|\.save\(ctx\.run_dir")
    found = []
    for path in sorted(STAGE_DIR.glob("*.py")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if raw_io.search(line):
                found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    # The one exception: the render stage's style library, an *input* file, not a run file.
    found = [f for f in found if "common.py" not in f or "table = pd.read_parquet(path)" not in f]
    assert not found, "run files written or read around RunBundle:\n" + "\n".join(found)


def test_no_stage_imports_another_stage() -> None:
    modules = _modules(STAGE_DIR)
    stage_modules = {f"pipelines.stages.{s}" for s in STAGES}
    assert stage_modules <= set(modules), "every stage in STAGES has a module"
    offenders = []
    for name, path in modules.items():
        hits = (_imports(path, name) & stage_modules) - {name}
        if hits:
            offenders.append(f"{name} imports {sorted(hits)}")
    assert not offenders, offenders


def test_no_import_cycle_in_pipelines() -> None:
    modules = _modules(ROOT / "pipelines")
    graph = {m: {i for i in _imports(p, m) if i in modules and i != m}
             for m, p in modules.items()}
    # A package's __init__ is imported by each of its modules; that edge is not a cycle
    # unless the __init__ imports them back, which the graph then shows.
    for m in graph:
        graph[m] -= {p for p in graph if m.startswith(p + ".")}
    seen: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        seen[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if seen.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in seen:
                visit(nxt)
        stack.pop()
        seen[node] = 2

    for m in sorted(graph):
        if m not in seen:
            visit(m)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_runner_reexports_moved_names_with_a_warning() -> None:
    import warnings

    import pipelines.context as context
    import pipelines.runner as runner

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert runner.RunContext is context.RunContext
        assert runner.check_run_id("a-1") == "a-1"
    assert [w.category for w in caught] == [DeprecationWarning, DeprecationWarning]
    assert "pipelines.context" in str(caught[0].message)
