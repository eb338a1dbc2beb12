"""``stylerec styles list|show|search``: read and search the described style library.

The three sub-commands share one loader (:func:`data.styles.load_style_library`),
so a file that ``list`` shows is the file ``search`` searches and the nightly
uses, with the same errors naming the line.  The library is ``--library``, else
the ``[inputs] styles`` of ``--config`` (else ``$STYLEREC_CONFIG``, else
``./stylerec.toml``).  ``search`` adds "more like this" from the style codes of
the config's latest run when there is one.  Standard library only at module
level (``stylerec --help`` stays fast).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

_LIB_HELP = ("style library file (CSV/Parquet); default: [inputs] styles of --config, "
             "$STYLEREC_CONFIG or ./stylerec.toml")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``styles`` with its ``list``, ``show`` and ``search`` sub-commands."""
    p = subparsers.add_parser(
        "styles", help="list, show and search the style library",
        description="Read the described style library (validated; errors name the line), "
                    "show one style, or search it in words (Chinese or English).")
    sub = p.add_subparsers(dest="styles_command", metavar="{list,show,search}", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--library", type=Path, help=_LIB_HELP)
    common.add_argument("--config", type=Path, help="stylerec.toml whose library to use")
    common.add_argument("--json", action="store_true", help="print only JSON on stdout")
    ls = sub.add_parser("list", parents=[common], help="list the library's styles",
                        description="One line per style: id, name, state today, tags.")
    ls.set_defaults(func=run_list)
    show = sub.add_parser("show", parents=[common], help="show one style in full",
                          description="Every field of one style of the library.")
    show.add_argument("style_id", metavar="STYLE_ID", help="the style's id")
    show.set_defaults(func=run_show)
    se = sub.add_parser(
        "search", parents=[common], help="search styles in words (zh/en, synonyms)",
        description="Rank the library's styles for QUERY by their names, tags and "
                    "descriptions (jieba for Chinese, Snowball stems for English, the shipped "
                    "synonym lexicon), then by style-code similarity to what the words "
                    "matched. Each result says why it matched; no match lists nothing (exit 0).")
    se.add_argument("query", metavar="QUERY", help="words, e.g. 复古 or \"vintage look\"")
    se.add_argument("-k", type=int, default=10, help="at most this many results (default 10)")
    se.add_argument("--no-codes", action="store_true",
                    help="words only: skip the style-code ('more like this') signal")
    se.set_defaults(func=run_search)


def _config_path(args: argparse.Namespace) -> Path | None:
    if args.config is not None:
        return Path(args.config)
    env = os.environ.get("STYLEREC_CONFIG")
    if env:
        return Path(env)
    here = Path("stylerec.toml")
    return here if here.is_file() else None


def _library(args: argparse.Namespace) -> tuple[Any, Any]:
    """(StyleLibrary, Config or None) from --library / the config in use."""
    from data.styles import load_style_library

    cfg = None
    cfg_path = _config_path(args)
    if cfg_path is not None:
        from pipelines.config import load_config

        cfg = load_config(cfg_path)
    if args.library is not None:
        return load_style_library(args.library), cfg
    if cfg is None:
        raise ValueError("no style library: give --library FILE or --config stylerec.toml "
                         "(or set STYLEREC_CONFIG)")
    return load_style_library(cfg.path(cfg.inputs.styles),
                              image_root=cfg.path(cfg.inputs.image_root)), cfg


def _today(cfg: Any) -> Any:
    from pipelines.controls import control_day

    return control_day(cfg)


def _state(entry: Any, day: Any) -> str:
    if not entry.enabled:
        return "disabled"
    if not entry.active_on(day):
        return "inactive"
    return "pinned" if entry.pin_segments else "active"


def run_list(args: argparse.Namespace) -> int:
    """Print the library, one style a line."""
    lib, cfg = _library(args)
    day = _today(cfg)
    rows = [{**e.to_record(), "state": _state(e, day)} for e in lib.entries]
    if args.json:
        print(json.dumps({"library": lib.source, "digest": lib.digest, "day": day.isoformat(),
                          "styles": rows}, ensure_ascii=False, indent=1))
        return 0
    print(f"{len(lib)} styles in {lib.source} (state on {day})")
    width = max(len(e.style_id) for e in lib.entries)
    for e, r in zip(lib.entries, rows, strict=True):
        print(f"  {e.style_id:<{width}}  {e.name[:18]:<18}  {r['state']:<8}  {';'.join(e.tags)}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    """Print every field of one style."""
    lib, cfg = _library(args)
    entry = lib[args.style_id]
    rec = {**entry.to_record(), "state": _state(entry, _today(cfg))}
    if args.json:
        print(json.dumps(rec, ensure_ascii=False, indent=1))
        return 0
    for key, value in rec.items():
        if isinstance(value, list):
            value = "; ".join(value) if value else "-"
        print(f"{key:>18}: {'-' if value in (None, '') else value}")
    return 0


def _codes(cfg: Any) -> tuple[dict[str, Any], str | None]:
    """Style codes from the config's latest run folder (None when no run has any yet)."""
    if cfg is None:
        return {}, None
    import numpy as np

    from recsys.serving.bundle import CODES

    runs = cfg.path(cfg.outputs.work_dir) / "runs"
    found = sorted(runs.glob(f"*/{CODES}"), key=lambda p: p.stat().st_mtime) if runs.is_dir() else []
    if not found:
        return {}, None
    with np.load(found[-1], allow_pickle=False) as z:
        if "style_ids" not in z.files or "style_codes" not in z.files:
            return {}, None
        return dict(zip((str(s) for s in z["style_ids"]), z["style_codes"], strict=True)), \
            str(found[-1].parent.name)


def run_search(args: argparse.Namespace) -> int:
    """Rank styles for the query; say so when nothing matches (exit 0)."""
    from data.styles.search import StyleSearch

    if args.k < 1:
        raise ValueError(f"-k must be >= 1, got {args.k}")
    lib, cfg = _library(args)
    codes, run = ({}, None) if args.no_codes else _codes(cfg)
    index = StyleSearch(lib, codes)
    hits = index.search(args.query, args.k)
    terms = index.query_words(args.query)
    if args.json:
        print(json.dumps({"query": args.query, "library": lib.source, "terms": terms,
                          "codes_from_run": run if index.has_codes else None,
                          "results": [{"rank": n + 1, **h.to_dict()} for n, h in enumerate(hits)]},
                         ensure_ascii=False, indent=1))
        return 0
    if not hits:
        print(f"no style matches {args.query!r} in {lib.source} "
              f"(searched names, tags and descriptions for: {', '.join(terms) or 'no words'})")
        return 0
    more = (f"; 'more like this' from run {run}" if index.has_codes
            else "; words only (no run with style codes yet)")
    print(f"{len(hits)} styles for {args.query!r} in {lib.source}{more}")
    width = max(len(h.style_id) for h in hits)
    for n, h in enumerate(hits, 1):
        print(f"{n:>3}. {h.style_id:<{width}}  {h.name[:18]:<18}  score {h.score:.2f}")
        for why in h.reasons:
            print(f"       - {why}")
    return 0
