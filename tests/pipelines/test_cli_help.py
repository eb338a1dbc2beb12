"""The first minute with ``stylerec``: instant help, help text on every option, clean
empty-folder answers, and ``--json`` that is only JSON."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pipelines.cli import build_parser, main

#: Heavy libraries `stylerec --help` must not load (they cost seconds at start-up).
HEAVY = ("torch", "pandas", "numpy", "sqlalchemy", "scipy", "faiss", "matplotlib")


def _subparsers(parser: argparse.ArgumentParser, prefix: str = "stylerec"):
    """Every (name, parser) pair, nested sub-commands (``ab analyze``) included."""
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _subparsers(sub, f"{prefix} {name}")


def test_every_option_of_every_command_has_help_text() -> None:
    missing = []
    for name, parser in _subparsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            text = (action.help or "").strip()
            if not text or text == argparse.SUPPRESS:
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, f"options without help text: {missing}"


def test_help_imports_no_heavy_library() -> None:
    """`stylerec --help` and every sub-command's `--help` in one fresh interpreter."""
    names = [n.split(" ", 1)[1].split() for n, _ in _subparsers(build_parser()) if " " in n]
    code = textwrap.dedent(f"""
        import contextlib, io, json, sys
        from pipelines.cli import main
        for argv in [[]] + {names!r}:
            with contextlib.redirect_stdout(io.StringIO()):
                try:
                    main(argv + ["--help"])
                except SystemExit as e:
                    assert e.code == 0, (argv, e.code)
        print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert loaded == [], f"--help imported {loaded}"


def test_defaults_spelled_out_for_the_parser_match_their_sources() -> None:
    from demo import WorldConfig
    from pipelines.commands.evaluate import MODEL_NAMES
    from pipelines.commands.generate import WORLD_DEFAULTS
    from recsys.baselines import MODEL_NAMES as BASELINE_NAMES

    world = WorldConfig()
    assert WORLD_DEFAULTS == {k: getattr(world, k) for k in WORLD_DEFAULTS}
    assert MODEL_NAMES == BASELINE_NAMES


def test_stylize_defaults_to_the_size_of_sheet_and_the_demo(tmp_path: Path) -> None:
    from pipelines.commands.nightly import DEMO_MAX_SIDE

    parser = build_parser()
    a = parser.parse_args(["stylize", "x.png", "--style", "s.png", "--out", str(tmp_path)])
    b = parser.parse_args(["sheet", "x.png", "--styles", "s.png", "--out", "x.png"])
    c = parser.parse_args(["demo"])
    assert a.max_side == b.max_side == c.max_side == DEMO_MAX_SIDE == 384


def _empty_config(tmp_path: Path) -> Path:
    from pipelines.commands.nightly import demo_config
    from pipelines.config import write_config

    cfg = tmp_path / "stylerec.toml"
    write_config(demo_config(tmp_path, 3, 64), cfg)
    return cfg


@pytest.mark.parametrize("argv", [["runs"], ["runs", "--json"], ["gc"], ["gc", "--dry-run"],
                                  ["publish", "--run", "20260101T000000-abcdef"]])
def test_upkeep_commands_on_an_empty_folder_say_there_are_no_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    cfg = _empty_config(tmp_path)
    status = main([*argv, "--config", str(cfg)])
    out, err = capsys.readouterr()
    if argv == ["runs", "--json"]:
        assert status == 0 and json.loads(out) == []
    elif argv[0] == "publish":
        assert status == 2 and "no runs yet" in err and "nothing to publish" in err
    else:
        assert status == 0 and "no runs yet" in out
    assert "Traceback" not in out + err
    # A read-only look must not leave an empty database behind.
    assert not (tmp_path / "stylerec.db").exists()


def test_upkeep_commands_on_a_store_without_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The database exists (say, made by `stylerec serve` or a crash) but holds no run."""
    from data.store import Store

    cfg = _empty_config(tmp_path)
    Store(f"sqlite:///{(tmp_path / 'stylerec.db').resolve()}").close()
    assert main(["runs", "--config", str(cfg)]) == 0
    assert "no runs yet" in capsys.readouterr().out
    assert main(["gc", "--config", str(cfg)]) == 0
    assert "nothing to delete" in capsys.readouterr().out
    assert main(["publish", "--config", str(cfg), "--run", "x1"]) == 2
    assert "nothing to publish" in capsys.readouterr().err


def test_validate_json_is_only_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "events.csv"
    log.write_text("user_id,item_id,event_type,timestamp\n"
                   "u1,i1,click,2026-01-01T00:00:00Z\n"
                   "u1,i2,teleport,2026-01-01T00:00:00Z\n")
    status = main(["validate", str(log), "--json", "--quarantine", str(tmp_path / "q.csv")])
    out, err = capsys.readouterr()
    assert status == 1
    report = json.loads(out)  # the whole of stdout
    assert report["rows_quarantined"] == 1
    assert "quarantine written" in err


def test_ab_power_json_is_only_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ab", "power", "--baseline-ctr", "0.05", "--lift", "0.1",
                 "--impressions-per-user", "5", "--json"]) == 0
    out, _ = capsys.readouterr()
    assert json.loads(out)["users_per_arm"] > 0


def test_demo_refuses_a_folder_with_another_world(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from demo import WorldConfig, generate_world

    generate_world(tmp_path / "d", WorldConfig(n_users=50, n_items=5, target_events=500,
                                               write_images=False))
    assert main(["demo", "--out", str(tmp_path / "d"), "--users", "50", "--items", "6"]) == 2
    err = capsys.readouterr().err
    assert "different demo world" in err and "--items 5 there, 6 asked" in err


def test_log_levels_per_verbosity() -> None:
    """Default: the stage lines (stylerec.*) but no training epochs and no Alembic lines;
    -v: training epochs; -vv: debug and Alembic."""
    import logging

    from pipelines.cli import configure_logging

    names = ("", "stylerec", "alembic")
    saved = {n: logging.getLogger(n).level for n in names}
    try:
        expected = {0: (False, True, False), 1: (True, True, False), 2: (True, True, True)}
        for verbose, (epochs, stages, alembic) in expected.items():
            configure_logging(verbose)
            assert logging.getLogger("recsys.model").isEnabledFor(logging.INFO) is epochs
            assert logging.getLogger("stylerec.nightly").isEnabledFor(logging.INFO) is stages
            assert logging.getLogger("alembic.runtime.migration").isEnabledFor(
                logging.INFO) is alembic
    finally:
        for n, level in saved.items():
            logging.getLogger(n).setLevel(level)
