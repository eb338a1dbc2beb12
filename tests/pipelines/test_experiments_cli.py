"""``stylerec ab analyze | simulate | power`` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from pipelines.cli import main

synthetic = pytest.importorskip("demo")


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("abcli") / "world"
    synthetic.generate_world(out, synthetic.WorldConfig(seed=5, n_users=600, n_items=80,
                                                        target_events=12_000, write_images=False))
    return out


def test_simulate_then_analyze(world_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    logs = tmp_path / "exposures.parquet"
    assert main(["ab", "simulate", "--world", str(world_dir), "--out", str(logs), "--users", "500",
                 "--days", "5"]) == 0
    out = capsys.readouterr().out
    assert "true lift" in out
    df = pd.read_parquet(logs)
    # Simulated exposures start after the world's own log ends (it can serve as pre-period).
    world_end = pd.read_parquet(world_dir / "events.parquet")["timestamp"].max()
    assert df["timestamp"].min() >= world_end

    plots = tmp_path / "plots"
    assert main(["ab", "analyze", "--logs", str(logs), "--experiment", "segment_renders",
                 "--json", "--plots", str(plots), "--bootstrap", "100"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["users"] == df["user_id"].nunique()
    ctr = next(m for m in report["metrics"] if m["metric"] == "ctr")
    assert ctr["ci_low"] > 0 and ctr["boot_low"] is not None
    for name in ("lift_intervals.png", "segments_forest.png", "cumulative.png"):
        png = plots / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["ab", "analyze", "--logs", str(logs), "--experiment", "segment_renders",
                 "--bootstrap", "0"]) == 0
    text = capsys.readouterr().out
    assert "SRM check" in text and "ctr" in text
    # The world's own log precedes the test: it serves as the CUPED pre-period.
    assert main(["ab", "analyze", "--logs", str(logs), "--experiment", "segment_renders", "--json",
                 "--bootstrap", "0", "--pre-events", str(world_dir / "events.parquet")]) == 0
    metrics = {m["metric"]: m for m in json.loads(capsys.readouterr().out)["metrics"]}
    assert metrics["clicks_per_user_cuped"]["variance_reduction"] > 0


def test_analyze_world_log_with_split(world_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The world was logged under its control_share split: right split, no SRM; default 50/50, SRM.
    from demo import World

    control = World.load(world_dir).config.control_share
    assert 0.0 < control < 0.4
    logs = str(world_dir / "events.parquet")
    exp = pd.read_parquet(logs)["experiment"].dropna().iloc[0]
    main(["ab", "analyze", "--logs", logs, "--experiment", exp, "--json", "--bootstrap", "0",
          "--split", f"control={control},treatment={1 - control}"])
    assert json.loads(capsys.readouterr().out)["srm"]["flagged"] is False
    main(["ab", "analyze", "--logs", logs, "--experiment", exp, "--json", "--bootstrap", "0"])
    assert json.loads(capsys.readouterr().out)["srm"]["flagged"] is True


def test_power(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ab", "power", "--baseline-ctr", "0.05", "--lift", "0.05", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["impressions_per_arm"] == plan["users_per_arm"] > 100_000
    main(["ab", "power", "--baseline-ctr", "0.05", "--lift", "0.05", "--impressions-per-user", "10",
          "--icc", "0.01"])
    assert "users per arm" in capsys.readouterr().out


def test_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ab", "analyze", "--logs", str(tmp_path / "missing.parquet"), "--experiment", "e"]) == 2
    assert "missing.parquet" in capsys.readouterr().err
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    assert main(["ab", "analyze", "--logs", str(bad), "--experiment", "e"]) == 2
    assert "bad.parquet" in capsys.readouterr().err
    assert main(["ab", "simulate", "--world", str(tmp_path), "--out", str(tmp_path / "x.parquet")]) == 2
    assert "not a demo world" in capsys.readouterr().err
    assert main(["ab", "power", "--baseline-ctr", "0.5", "--lift", "1.5"]) == 2
