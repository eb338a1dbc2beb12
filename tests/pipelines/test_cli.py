"""The ``stylerec`` command line: help everywhere, and ``stylerec demo`` end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from nightly_report import check_report

from data.store import Store
from pipelines.cli import build_parser, main

#: The commands issue 2 and issue 5 promise (others may add more).
COMMANDS = ("demo", "generate", "validate", "nightly", "publish", "runs", "gc")


def test_help_lists_the_subcommands_and_each_has_help() -> None:
    proc = subprocess.run([sys.executable, "-m", "pipelines", "--help"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    listed = proc.stdout
    for name in COMMANDS:
        assert f"    {name}" in listed, f"{name} missing from stylerec --help"
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name in sub.choices:
        with pytest.raises(SystemExit) as info:
            main([name, "--help"])
        assert info.value.code == 0, name


def test_demo_runs_the_whole_night_and_prints_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--users", "150", "--items", "12",
                 "--segments", "2", "--max-side", "64"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    report = Path(printed[-1])
    assert report.is_absolute() and report.name == "report.html" and report.is_file()
    with Store(f"sqlite:///{(out / 'stylerec.db').resolve()}") as store:
        run = store.get_run(store.current_run_id())
    assert run["status"] == "done"
    metrics = {s: v["metrics"] for s, v in run["stages"].items()}
    assert metrics["render"]["rendered"] == 12 * 2
    # The demo keeps the default world's events per shopper (about 50) at any size.
    assert 150 * 30 < metrics["ingest"]["events"] < 150 * 80
    check_report(report, metrics, 2, metrics["train"]["users"])

    # --json: stdout is one JSON document and nothing else, for the job and the run list.
    cfg = str(out / "stylerec.toml")
    assert main(["nightly", "--config", cfg, "--new", "--json"]) == 0
    night = json.loads(capsys.readouterr().out)
    assert night["rendered"] == 0 and night["reused"] == 12 * 2
    assert main(["runs", "--config", cfg, "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert len(runs) == 2 and runs[0]["run_id"] == night["run_id"] and runs[0]["is_current"]


def test_demo_refuses_bad_sizes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["demo", "--out", str(tmp_path / "d"), "--users", "0"]) == 2
    assert "--users" in capsys.readouterr().err
