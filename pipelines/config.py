"""The nightly job's configuration (``stylerec.toml``), validated up front.

A night that fails on a typo three hours in is worse than one that refuses to
start, so every key is checked when the file is read: unknown keys, wrong
types and out-of-range values raise :class:`ConfigError` naming the key.
Relative paths are resolved against the config file's folder, so a config
and its data can move together.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

RENDER_MODES = ("full", "background", "harmonize")
RENDER_FORMATS = ("png", "webp", "jpg")
EXECUTORS = ("local", "ray")
EVENT_FORMATS = ("auto", "events", "csv", "parquet", "movielens", "sql")
STORE_BACKENDS = ("sqlite", "postgresql")
#: A config is a page of settings; anything bigger is a wrong file, not a config.
MAX_CONFIG_BYTES = 1 << 20


class ConfigError(ValueError):
    """A config value is missing, of the wrong type or out of range; names the key."""


@dataclass(frozen=True)
class InputsConfig:
    """Where the night's data comes from."""

    events: tuple[str, ...] = ()
    events_format: str = "auto"
    events_query: str = ""
    catalog: str = ""
    styles: str = ""
    image_root: str = "."
    window_days: int = 0
    now: str = ""


@dataclass(frozen=True)
class ModelConfig:
    """Preference-model parameters, passed to :class:`recsys.StylePreferenceModel`."""

    factors: int = 64
    epochs: int = 0
    half_life_days: float = 14.0
    seed: int = 0
    holdout_last: int = 2
    baselines: bool = True


@dataclass(frozen=True)
class SegmentsConfig:
    """How shoppers are grouped, and how many library styles blend into a condition."""

    k: int = 6
    n_blend: int = 2
    top_styles: int = 5


@dataclass(frozen=True)
class RenderConfig:
    """What gets rendered and how."""

    mode: str = "background"
    max_side: int = 384
    format: str = "webp"
    quality: int = 90
    strength: float = 1.0
    items: str = "all"
    batch_size: int = 8
    # a student generator's weights from `stylerec train-generator` ("" = the imported one)
    generator: str = ""
    # Background/harmonize scenes: the stylized scene's blend with the clean backdrop
    # (a style library's optional ``strength`` column overrides it per style), the
    # opacity of the product's contact/drop shadow, and the scene's tone harmonisation.
    scene_strength: float = 0.5
    shadow_strength: float = 0.3
    tone: float = 0.0


@dataclass(frozen=True)
class OutputsConfig:
    """Where results go: the store, render files, run artefacts and the report."""

    store_url: str = ""
    render_dir: str = "renders"
    work_dir: str = "work"
    report_dir: str = "report"


@dataclass(frozen=True)
class ExecutorConfig:
    """Which executor runs the embed and render stages."""

    kind: str = "local"
    address: str = ""
    num_workers: int = 1
    # Ray only.  ``num_cpus`` caps a local Ray instance (0: every core); a cluster named
    # by ``address`` (or $RAY_ADDRESS) brings its own resources.
    num_cpus: int = 0
    cpus_per_worker: float = 1.0
    # GPUs each worker actor takes when the cluster has any (0: stay on CPU).
    gpus_per_worker: float = 1.0
    # Retries of a batch whose worker died (killed, OOM, lost node) before the night fails.
    max_retries: int = 3
    # Render jobs (items) handed to a worker per call (embed batches follow the stage's
    # batch size).
    jobs_per_task: int = 4


@dataclass(frozen=True)
class Config:
    """The whole validated config. ``base_dir`` is the folder relative paths start from."""

    inputs: InputsConfig = field(default_factory=InputsConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    segments: SegmentsConfig = field(default_factory=SegmentsConfig)
    render: RenderConfig = field(default_factory=RenderConfig)
    outputs: OutputsConfig = field(default_factory=OutputsConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    base_dir: Path = Path(".")

    def path(self, value: str) -> Path:
        """Resolve a configured path relative to the config file's folder."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.base_dir / p)

    @property
    def store_url(self) -> str:
        """The store URL: the config's, else ``$STYLEREC_DB_URL``, else SQLite in the work dir."""
        if self.outputs.store_url:
            return self.outputs.store_url
        env = os.environ.get("STYLEREC_DB_URL")
        if env:
            return env
        return f"sqlite:///{self.path(self.outputs.work_dir) / 'stylerec.db'}"

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every section (for the run record and the report)."""
        out = {f.name: asdict(getattr(self, f.name)) for f in fields(self) if f.name != "base_dir"}
        out["inputs"]["events"] = list(out["inputs"]["events"])
        return out

    def section_json(self, section: str) -> str:
        """One section as canonical JSON (sorted keys): what stage input keys hash."""
        return json.dumps(self.to_dict()[section], sort_keys=True)

    def fingerprint(self, *sections: str) -> str:
        """Stable hash of the named sections (all when none): keys stage caches."""
        data = self.to_dict()
        chosen = {k: data[k] for k in (sections or data)}
        return hashlib.sha256(json.dumps(chosen, sort_keys=True).encode()).hexdigest()[:16]


_SECTIONS: dict[str, type] = {
    "inputs": InputsConfig,
    "model": ModelConfig,
    "segments": SegmentsConfig,
    "render": RenderConfig,
    "outputs": OutputsConfig,
    "executor": ExecutorConfig,
}


def _coerce(key: str, value: Any, default: Any) -> Any:
    """Check ``value`` against the type of the field's default; names ``key`` on error."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        if not math.isfinite(value):
            # TOML has inf and nan; no setting of ours means either (half_life_days = inf
            # silently switched time decay off).
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return float(value)
    if isinstance(default, tuple):
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key}: expected a list of strings, got {value!r}")
        return tuple(value)
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    return value


def _valid_timestamp(text: str) -> bool:
    """ISO 8601 date or date-time (``2026-01-31``, ``2026-01-31T06:00:00Z``)."""
    from datetime import datetime

    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _store_url_problem(url: str) -> str | None:
    """Why ``url`` is not a usable store URL, or None when it is (empty = the default)."""
    if not url:
        return None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError:
        return "not a database URL (e.g. sqlite:///stylerec.db or postgresql+psycopg://...)"
    if backend not in STORE_BACKENDS:
        return f"backend {backend!r} is not supported (use one of {STORE_BACKENDS})"
    return None


def _path_ok(value: str) -> bool:
    return bool(value.strip()) and "\x00" not in value


def _check_ranges(cfg: Config) -> None:
    """Value checks that types alone cannot express."""
    url_problem = _store_url_problem(cfg.outputs.store_url)
    checks: list[tuple[bool, str]] = [
        (all(_path_ok(e) for e in cfg.inputs.events),
         "inputs.events: every entry must be a non-empty path"),
        (not cfg.inputs.now or _valid_timestamp(cfg.inputs.now),
         f"inputs.now: an ISO 8601 date or date-time, got {cfg.inputs.now!r}"),
        (cfg.inputs.window_days <= 36_500, "inputs.window_days: must be at most 36500 (100 years)"),
        (_path_ok(cfg.inputs.image_root), "inputs.image_root: must be a non-empty path"),
        (0 <= cfg.model.seed < 2**32, "model.seed: must be between 0 and 2**32 - 1"),
        (url_problem is None, f"outputs.store_url: {url_problem}"),
        (_path_ok(cfg.outputs.render_dir), "outputs.render_dir: must be a non-empty path"),
        (_path_ok(cfg.outputs.work_dir), "outputs.work_dir: must be a non-empty path"),
        (_path_ok(cfg.outputs.report_dir), "outputs.report_dir: must be a non-empty path"),
        (cfg.inputs.events_format in EVENT_FORMATS,
         f"inputs.events_format: one of {EVENT_FORMATS}, got {cfg.inputs.events_format!r}"),
        (bool(cfg.inputs.events) or bool(cfg.inputs.events_query),
         "inputs.events: at least one event log (or inputs.events_query) is required"),
        (bool(cfg.inputs.catalog), "inputs.catalog: the item catalog file is required"),
        (bool(cfg.inputs.styles), "inputs.styles: the style library file is required"),
        (cfg.inputs.window_days >= 0, "inputs.window_days: must be >= 0 (0 = everything)"),
        (1 <= cfg.model.factors <= 1024, "model.factors: must be between 1 and 1024"),
        (0 <= cfg.model.epochs <= 1000, "model.epochs: must be between 0 (auto) and 1000"),
        (cfg.model.half_life_days > 0, "model.half_life_days: must be > 0"),
        (0 <= cfg.model.holdout_last <= 100, "model.holdout_last: must be between 0 and 100"),
        (1 <= cfg.segments.k <= 1024, "segments.k: must be between 1 and 1024"),
        (1 <= cfg.segments.n_blend <= 16, "segments.n_blend: must be between 1 and 16"),
        (1 <= cfg.segments.top_styles <= 100, "segments.top_styles: must be between 1 and 100"),
        (cfg.render.mode in RENDER_MODES,
         f"render.mode: one of {RENDER_MODES}, got {cfg.render.mode!r}"),
        (cfg.render.format in RENDER_FORMATS,
         f"render.format: one of {RENDER_FORMATS}, got {cfg.render.format!r}"),
        (32 <= cfg.render.max_side <= 4096, "render.max_side: must be between 32 and 4096"),
        (1 <= cfg.render.quality <= 100, "render.quality: must be between 1 and 100"),
        (0.0 <= cfg.render.strength <= 1.0, "render.strength: must be between 0 and 1"),
        (0.0 <= cfg.render.scene_strength <= 1.0,
         "render.scene_strength: must be between 0 and 1"),
        (0.0 <= cfg.render.shadow_strength <= 1.0,
         "render.shadow_strength: must be between 0 and 1"),
        (0.0 <= cfg.render.tone <= 1.0, "render.tone: must be between 0 and 1"),
        (1 <= cfg.render.batch_size <= 256, "render.batch_size: must be between 1 and 256"),
        ("\x00" not in cfg.render.generator, "render.generator: not a usable path"),
        (cfg.executor.kind in EXECUTORS,
         f"executor.kind: one of {EXECUTORS}, got {cfg.executor.kind!r}"),
        (1 <= cfg.executor.num_workers <= 1024, "executor.num_workers: must be between 1 and 1024"),
        (0 <= cfg.executor.num_cpus <= 4096, "executor.num_cpus: must be between 0 (all) and 4096"),
        (0 < cfg.executor.cpus_per_worker <= 256, "executor.cpus_per_worker: must be > 0 and <= 256"),
        (0 <= cfg.executor.gpus_per_worker <= 16, "executor.gpus_per_worker: must be between 0 and 16"),
        (0 <= cfg.executor.max_retries <= 100, "executor.max_retries: must be between 0 and 100"),
        (1 <= cfg.executor.jobs_per_task <= 4096, "executor.jobs_per_task: must be between 1 and 4096"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    items = cfg.render.items
    if items != "all":
        head, _, n = items.partition(":")
        if head != "top" or not n.isdigit() or int(n) < 1:
            raise ConfigError(f"render.items: 'all' or 'top:N' with N >= 1, got {items!r}")


def _too_broad(p: Path) -> str | None:
    """Why a configured folder is too broad to read from or write into, or None."""
    r = p.resolve()
    if r == Path(r.anchor):
        return "the filesystem root"
    if r == Path.home().resolve():
        return "the home folder itself"
    return None


def _check_paths(cfg: Config) -> None:
    """Refuse folders that are whole filesystems; say where outputs go when it is surprising.

    The image root bounds what catalogue URIs may reach (``/`` would let them
    reach everything; ``~`` is allowed with a warning), and ``stylerec gc``
    deletes files under the render folder, so no output folder may be ``/`` or ``~``.  Outputs outside the config's
    folder (``..``, absolute, ``~``) are allowed, with a warning naming the
    resolved place, because a typo there scatters files where nobody looks.
    """
    named = {
        "inputs.image_root": cfg.inputs.image_root,
        "outputs.render_dir": cfg.outputs.render_dir,
        "outputs.work_dir": cfg.outputs.work_dir,
        "outputs.report_dir": cfg.outputs.report_dir,
    }
    for key, value in named.items():
        problem = _too_broad(cfg.path(value))
        if problem == "the home folder itself" and key == "inputs.image_root":
            log.warning("inputs.image_root = %r: catalogue images may come from anywhere in %s",
                        value, cfg.path(value).resolve())
            continue
        if problem is not None:
            raise ConfigError(f"{key}: {value!r} is {problem}; point it at a folder of its own")
    base = cfg.base_dir.resolve()
    for key, value in list(named.items())[1:]:
        where = cfg.path(value).resolve()
        if not where.is_relative_to(base):
            log.warning("%s = %r puts outputs outside the config's folder, in %s", key, value,
                        where)


def output_locations(cfg: Config) -> dict[str, str]:
    """Where the night writes: resolved render, work and report folders and the store."""
    from sqlalchemy.engine import make_url

    out = cfg.outputs
    return {
        "render_dir": str(cfg.path(out.render_dir).resolve()),
        "work_dir": str(cfg.path(out.work_dir).resolve()),
        "report_dir": str(cfg.path(out.report_dir).resolve()),
        "store": make_url(cfg.store_url).render_as_string(hide_password=True),
    }


def config_from_dict(raw: dict[str, Any], base_dir: Path | str = ".") -> Config:
    """Validate a parsed TOML document into a :class:`Config`."""
    if not isinstance(raw, dict):
        raise ConfigError("the config must be a TOML table")
    unknown = sorted(set(raw) - set(_SECTIONS))
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown section (known: {', '.join(_SECTIONS)})")
    sections: dict[str, Any] = {}
    for name, cls in _SECTIONS.items():
        values = raw.get(name, {})
        if not isinstance(values, dict):
            raise ConfigError(f"{name}: expected a table, got {values!r}")
        defaults = cls()
        known = {f.name for f in fields(cls)}
        bad = sorted(set(values) - known)
        if bad:
            raise ConfigError(f"{name}.{bad[0]}: unknown key (known: {', '.join(sorted(known))})")
        kwargs = {
            k: _coerce(f"{name}.{k}", v, getattr(defaults, k)) for k, v in values.items()
        }
        sections[name] = cls(**kwargs)
    cfg = Config(**sections, base_dir=Path(base_dir).resolve())
    _check_ranges(cfg)
    _check_paths(cfg)
    return cfg


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate ``stylerec.toml``; errors name the file and the key."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"config file not found: {p}")
    size = p.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{p}: {size} bytes is too big for a config (limit {MAX_CONFIG_BYTES})")
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    try:
        return config_from_dict(raw, base_dir=p.parent)
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None


def write_config(cfg_dict: dict[str, Any], path: Path) -> None:
    """Write a config dict as TOML (flat tables of scalars and string lists only)."""
    lines: list[str] = []
    for section, values in cfg_dict.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))
