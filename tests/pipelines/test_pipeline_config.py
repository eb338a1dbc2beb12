"""The nightly config: valid files load, every bad value is refused naming its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.config import ConfigError, config_from_dict, load_config, write_config

BASE = {
    "inputs": {"events": ["events.parquet"], "catalog": "items.csv", "styles": "styles.csv"},
}


def test_defaults_and_relative_paths(tmp_path: Path) -> None:
    path = tmp_path / "stylerec.toml"
    write_config(BASE | {"segments": {"k": 4}}, path)
    cfg = load_config(path)
    assert cfg.segments.k == 4
    assert cfg.render.mode == "background"
    assert cfg.path(cfg.inputs.catalog) == tmp_path.resolve() / "items.csv"
    assert cfg.store_url.startswith("sqlite:///")


def test_fingerprint_changes_with_values() -> None:
    a = config_from_dict(BASE)
    b = config_from_dict(BASE | {"render": {"max_side": 256}})
    assert a.fingerprint() != b.fingerprint()
    assert a.fingerprint("model") == b.fingerprint("model")


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"bogus": {}}, "bogus"),
        ({"render": {"colour": 1}}, "render.colour"),
        ({"render": {"mode": "sepia"}}, "render.mode"),
        ({"render": {"max_side": "big"}}, "render.max_side"),
        ({"render": {"max_side": 100000}}, "render.max_side"),
        ({"render": {"strength": 1.5}}, "render.strength"),
        ({"render": {"items": "top:zero"}}, "render.items"),
        ({"segments": {"k": 0}}, "segments.k"),
        ({"segments": {"k": True}}, "segments.k"),
        ({"model": {"half_life_days": -1}}, "model.half_life_days"),
        ({"executor": {"kind": "slurm"}}, "executor.kind"),
        ({"inputs": {"events": [1, 2]}}, "inputs.events"),
        ({"render": "fast"}, "render"),
        ({"inputs": {"now": "yesterday"}}, "inputs.now"),
        ({"inputs": {"window_days": 10**6}}, "inputs.window_days"),
        ({"inputs": {"events": [""]}}, "inputs.events"),
        ({"inputs": {"image_root": " "}}, "inputs.image_root"),
        ({"model": {"seed": -1}}, "model.seed"),
        ({"outputs": {"store_url": "not a url"}}, "outputs.store_url"),
        ({"outputs": {"store_url": "mysql://u@h/db"}}, "outputs.store_url"),
        ({"outputs": {"render_dir": ""}}, "outputs.render_dir"),
        ({"outputs": {"work_dir": "a\x00b"}}, "outputs.work_dir"),
        ({"outputs": {"report_dir": ""}}, "outputs.report_dir"),
        ({"executor": {"jobs_per_task": 0}}, "executor.jobs_per_task"),
        ({"render": {"batch_size": 1000}}, "render.batch_size"),
    ],
)
def test_bad_values_name_the_key(raw: dict, key: str) -> None:
    merged = {**BASE, **{k: ({**BASE.get(k, {}), **v} if isinstance(v, dict) else v)
                          for k, v in raw.items()}}
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        config_from_dict(merged)


def test_missing_required_inputs() -> None:
    with pytest.raises(ConfigError, match="inputs.catalog"):
        config_from_dict({"inputs": {"events": ["e.parquet"], "styles": "s.csv"}})


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.toml"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[render\nmode = 1")
    with pytest.raises(ConfigError, match="bad.toml"):
        load_config(bad)


def test_accepted_values_pass(tmp_path: Path) -> None:
    cfg = config_from_dict(BASE | {
        "inputs": {**BASE["inputs"], "now": "2026-01-31T06:00:00+00:00", "window_days": 28},
        "outputs": {"store_url": "postgresql+psycopg://u@127.0.0.1:5432/db"},
        "render": {"items": "top:50"},
    })
    assert cfg.inputs.now.startswith("2026-01-31") and cfg.store_url.startswith("postgresql")
    assert config_from_dict(BASE | {"outputs": {"store_url": "sqlite:///x.db"}}).store_url


def test_oversized_config_file_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * (1 << 20) + "\n")
    with pytest.raises(ConfigError, match="big.toml.*too big"):
        load_config(big)
